//! Records processed per job, from the executors' own counters (the heartbeat's `job_records`):
//! what batch throughput is measured from.
//!
//! Why not from task updates alone: a `Succeeded` carries a task's records only when the task
//! ends, so a run of a few seconds is quantised to whole tasks, and the work of tasks still
//! running or suspended when the measurement stops is dropped (a 15 s run of 0.35 s tasks on two
//! cores: about 2.5 %). Each executor reports, per job, the records of its succeeded tasks
//! (`done`) and what its live tasks have processed so far (`in_flight`); killed and failed tasks
//! count in neither, so this is useful work, not work thrown away.
//!
//! The rate: every executor's figure is as of its last heartbeat, received at `t`; its rate is
//! `records / (t - start)`, and the job's rate the sum over executors. A session that ended
//! keeps its `done` (that work happened), spread over the whole time since the start; its
//! `in_flight` is dropped (those tasks are re-run elsewhere). Values from the wire are trusted as
//! an executor's own account of its tasks (like its task updates) but cannot break the driver:
//! entries for jobs the app lacks are ignored and every sum saturates.

use neptune_proto::JobRecords;
use std::collections::HashMap;
use std::time::Duration;

/// One session's latest figures.
#[derive(Debug, Clone)]
struct Latest {
    session: u64,
    /// `(done, in_flight)` per job of the app.
    jobs: Vec<(u64, u64)>,
    /// When its last heartbeat was received (loop time).
    at: Duration,
}

/// Per-job records processed, over the executors' sessions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Processed {
    jobs: usize,
    live: HashMap<String, Latest>,
    /// `done` of sessions that ended, per job.
    ended: Vec<u64>,
}

impl Processed {
    /// For an app of `jobs` jobs.
    pub(crate) fn new(jobs: usize) -> Self {
        Self {
            jobs,
            live: HashMap::new(),
            ended: vec![0; jobs],
        }
    }

    /// A heartbeat of session `session` of executor `id`, received `at`.
    pub(crate) fn heartbeat(
        &mut self,
        id: &str,
        session: u64,
        at: Duration,
        entries: &[JobRecords],
    ) {
        if self.live.get(id).is_some_and(|l| l.session != session) {
            self.ended(id);
        }
        let latest = self.live.entry(id.to_string()).or_insert_with(|| Latest {
            session,
            jobs: vec![(0, 0); self.jobs],
            at,
        });
        latest.at = at;
        for e in entries {
            if let Some(slot) = latest.jobs.get_mut(e.job as usize) {
                *slot = (e.done, e.in_flight);
            }
        }
    }

    /// Executor `id`'s session ended: keep its succeeded work, drop its tasks in flight.
    pub(crate) fn ended(&mut self, id: &str) {
        if let Some(l) = self.live.remove(id) {
            for (sum, (done, _)) in self.ended.iter_mut().zip(l.jobs) {
                *sum = sum.saturating_add(done);
            }
        }
    }

    /// Job `job`'s records processed (as of each executor's last heartbeat) and its rate in
    /// records per second since `start`, `now` being the loop time.
    pub(crate) fn job(&self, job: usize, start: Option<Duration>, now: Duration) -> (u64, f64) {
        let ended = self.ended.get(job).copied().unwrap_or(0);
        let mut total = ended;
        let mut rate = 0.0;
        let since = |t: Duration| start.map_or(0.0, |s| t.saturating_sub(s).as_secs_f64());
        if since(now) > 0.0 {
            rate += ended as f64 / since(now);
        }
        for l in self.live.values() {
            let (done, in_flight) = l.jobs.get(job).copied().unwrap_or_default();
            let records = done.saturating_add(in_flight);
            total = total.saturating_add(records);
            if since(l.at) > 0.0 {
                rate += records as f64 / since(l.at);
            }
        }
        (total, rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(job: u32, done: u64, in_flight: u64) -> JobRecords {
        JobRecords {
            job,
            done,
            in_flight,
        }
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn work_in_flight_counts_and_each_executor_is_timed_by_its_own_heartbeat() {
        let mut p = Processed::new(2);
        let start = Some(s(10));
        // exec-0 at t=20: 600 done + 400 running of job 1; exec-1 at t=15: 500 done.
        p.heartbeat("exec-0", 1, s(20), &[rec(1, 600, 400), rec(0, 7, 0)]);
        p.heartbeat("exec-1", 2, s(15), &[rec(1, 500, 0)]);
        let (total, rate) = p.job(1, start, s(21));
        assert_eq!(total, 1500);
        // 1000 over 10 s plus 500 over 5 s.
        assert!((rate - 200.0).abs() < 1e-9, "{rate}");
        assert_eq!(p.job(0, start, s(21)).0, 7);
    }

    #[test]
    fn an_ended_session_keeps_its_done_work_only() {
        let mut p = Processed::new(1);
        p.heartbeat("exec-0", 1, s(5), &[rec(0, 100, 50)]);
        p.ended("exec-0");
        // The same id registers again: a new session counts from zero.
        p.heartbeat("exec-0", 2, s(8), &[rec(0, 30, 0)]);
        let (total, rate) = p.job(0, Some(s(0)), s(10));
        assert_eq!(total, 130);
        assert!((rate - (100.0 / 10.0 + 30.0 / 8.0)).abs() < 1e-9, "{rate}");
        // A new session seen without the old one's end being noticed first ends it too.
        p.heartbeat("exec-0", 3, s(9), &[rec(0, 1, 1)]);
        assert_eq!(p.job(0, Some(s(0)), s(10)).0, 132);
    }

    #[test]
    fn wire_values_cannot_break_the_sums() {
        let mut p = Processed::new(1);
        p.heartbeat("a", 1, s(1), &[rec(0, u64::MAX, u64::MAX), rec(99, 1, 1)]);
        p.heartbeat("b", 1, s(1), &[rec(0, u64::MAX, 0), rec(u32::MAX, 1, 1)]);
        let (total, rate) = p.job(0, Some(s(0)), s(2));
        assert_eq!(total, u64::MAX);
        assert!(rate.is_finite());
        assert_eq!(p.job(5, Some(s(0)), s(2)), (0, 0.0), "no such job");
        assert_eq!(p.job(0, None, s(2)).1, 0.0, "no rate before jobs start");
    }
}
