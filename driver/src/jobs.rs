//! The job manager (DAG side of the driver): turns the app's jobs into runs, runs into stages,
//! stages into task sets; triggers stream micro-batches at their due times; collects task results
//! and commits each run on the driver. Pure and synchronous like the task scheduler: the event
//! loop passes the time in.
//!
//! Stream latency of a micro-batch = its due time → its results committed. Batch records/s counts
//! records of successful tasks (work lost to kills does not count).

use crate::scheduler::TaskSpec;
use crate::stats::Samples;
use neptune_core::app::{App, CommitCtx};
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::state::Broadcasts;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Per-job counters and latencies.
#[derive(Debug, Clone, Default)]
pub struct JobStats {
    /// Runs committed.
    pub runs: u64,
    /// Records read by successful tasks.
    pub records: u64,
    /// Micro-batch end-to-end latencies (stream jobs), milliseconds.
    pub latency_ms: Samples,
    /// (seconds since the jobs started, latency ms) per committed micro-batch, in commit order.
    pub latency_series: Vec<(f64, f64)>,
    /// Result of the last committed run (JSON), as the app's action shaped it.
    pub last_result: serde_json::Value,
    /// Failure, if the job failed.
    pub failed: Option<String>,
}

struct RunState {
    due: Duration,
    stage: usize,
    results: Vec<Option<Vec<u8>>>,
    remaining: usize,
    records: u64,
}

struct JobState {
    kind: JobKind,
    interval: Duration,
    runs_limit: Option<u64>,
    next_run: u64,
    next_due: Option<Duration>,
    active: BTreeMap<u64, RunState>,
    stats: JobStats,
}

/// What the event loop must do after a job-manager step.
#[derive(Debug, Default)]
pub struct Step {
    /// Task sets to submit to the scheduler, in order.
    pub submit: Vec<Vec<TaskSpec>>,
    /// Shared-state versions published by commits (send them to executors).
    pub published: Vec<(String, u64)>,
    /// Jobs that failed in this step: (job, reason).
    pub failed: Vec<(u32, String)>,
    /// Runs committed in this step: (job, end-to-end latency in ms for stream micro-batches).
    pub committed: Vec<(u32, Option<f64>)>,
}

/// The driver's view of every job's runs.
pub struct JobManager {
    app: Arc<App>,
    broadcasts: Arc<Broadcasts>,
    jobs: Vec<JobState>,
    started_at: Option<Duration>,
    stopped: bool,
}

impl std::fmt::Debug for JobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobManager")
            .field("app", &self.app.name())
            .finish()
    }
}

impl JobManager {
    /// A manager for `app`'s jobs, committing shared state into `broadcasts`.
    pub fn new(app: Arc<App>, broadcasts: Arc<Broadcasts>) -> Self {
        let jobs = app
            .jobs()
            .iter()
            .map(|j| JobState {
                kind: j.kind,
                interval: j.interval,
                runs_limit: j.runs,
                next_run: 0,
                next_due: None,
                active: BTreeMap::new(),
                stats: JobStats::default(),
            })
            .collect();
        Self {
            app,
            broadcasts,
            jobs,
            started_at: None,
            stopped: false,
        }
    }

    /// Start every job: batch jobs submit run 0 now; stream jobs' first micro-batch is due one
    /// interval from now.
    pub fn start(&mut self, now: Duration) -> Step {
        self.started_at = Some(now);
        let mut step = Step::default();
        for j in 0..self.jobs.len() {
            match self.jobs[j].kind {
                JobKind::Batch => self.begin_run(j, now, &mut step),
                JobKind::Stream => self.jobs[j].next_due = Some(now + self.jobs[j].interval),
            }
        }
        step
    }

    /// When the job clock started.
    pub fn started_at(&self) -> Option<Duration> {
        self.started_at
    }

    /// Stop triggering new runs (shutdown); runs in flight may still commit.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Earliest due time of a stream micro-batch.
    pub fn next_deadline(&self) -> Option<Duration> {
        if self.stopped {
            return None;
        }
        self.jobs.iter().filter_map(|j| j.next_due).min()
    }

    /// Submit every micro-batch due at `now`.
    pub fn tick(&mut self, now: Duration) -> Step {
        let mut step = Step::default();
        if self.stopped {
            return step;
        }
        for j in 0..self.jobs.len() {
            while let Some(due) = self.jobs[j].next_due {
                if due > now || self.runs_exhausted(j) {
                    break;
                }
                self.jobs[j].next_due = Some(due + self.jobs[j].interval);
                self.begin_run(j, due, &mut step);
            }
            if self.runs_exhausted(j) {
                self.jobs[j].next_due = None;
            }
        }
        step
    }

    fn runs_exhausted(&self, j: usize) -> bool {
        self.jobs[j]
            .runs_limit
            .is_some_and(|n| self.jobs[j].next_run >= n)
    }

    fn begin_run(&mut self, j: usize, due: Duration, step: &mut Step) {
        if self.runs_exhausted(j) || self.jobs[j].stats.failed.is_some() {
            return;
        }
        let run = self.jobs[j].next_run;
        self.jobs[j].next_run += 1;
        let st = RunState {
            due,
            stage: 0,
            results: Vec::new(),
            remaining: 0,
            records: 0,
        };
        self.jobs[j].active.insert(run, st);
        self.begin_stage(j, run, 0, step);
    }

    fn begin_stage(&mut self, j: usize, run: u64, stage: usize, step: &mut Step) {
        let def = &self.app.jobs()[j];
        let parts = def.stages[stage].partitions as usize;
        let kind = self.jobs[j].kind;
        let st = self.jobs[j].active.get_mut(&run).expect("run is active");
        st.stage = stage;
        st.results = vec![None; parts];
        st.remaining = parts;
        let tasks = (0..parts as u32)
            .map(|p| TaskSpec {
                id: TaskId {
                    job: j as u32,
                    run,
                    stage: stage as u32,
                    partition: p,
                },
                kind,
                attempt: 0,
                preferred: Vec::new(),
            })
            .collect::<Vec<_>>();
        if tasks.is_empty() {
            // A stage without partitions completes at once.
            self.finish_stage(j, run, Duration::ZERO, step);
        } else {
            step.submit.push(tasks);
        }
    }

    /// A task succeeded with `result` after reading `records`. Duplicate results (a rerun that
    /// raced its first attempt) are ignored: the first one wins, and results are deterministic.
    pub fn task_succeeded(
        &mut self,
        now: Duration,
        id: TaskId,
        result: Vec<u8>,
        records: u64,
    ) -> Step {
        let mut step = Step::default();
        let j = id.job as usize;
        let Some(job) = self.jobs.get_mut(j) else {
            return step;
        };
        let Some(st) = job.active.get_mut(&id.run) else {
            return step;
        };
        if st.stage != id.stage as usize {
            return step;
        }
        let Some(slot) = st.results.get_mut(id.partition as usize) else {
            return step;
        };
        if slot.is_some() {
            return step;
        }
        *slot = Some(result);
        st.remaining -= 1;
        st.records += records;
        job.stats.records += records;
        if st.remaining == 0 {
            self.finish_stage(j, id.run, now, &mut step);
        }
        step
    }

    fn finish_stage(&mut self, j: usize, run: u64, now: Duration, step: &mut Step) {
        let stages = self.app.jobs()[j].stages.len();
        let stage = self.jobs[j].active[&run].stage;
        if stage + 1 < stages {
            self.begin_stage(j, run, stage + 1, step);
            return;
        }
        let st = self.jobs[j].active.remove(&run).expect("run is active");
        let parts: Vec<Vec<u8>> = st
            .results
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let mut ctx = CommitCtx::new(run, st.records, &self.broadcasts);
        let commit = self.app.jobs()[j].commit.clone();
        match commit(&mut ctx, parts) {
            Ok(v) => {
                step.published.extend(ctx.published().iter().cloned());
                let job = &mut self.jobs[j];
                job.stats.runs += 1;
                job.stats.last_result = v;
                if job.kind == JobKind::Stream {
                    let ms = now.saturating_sub(st.due).as_secs_f64() * 1000.0;
                    job.stats.latency_ms.push(ms);
                    let t = now
                        .saturating_sub(self.started_at.unwrap_or_default())
                        .as_secs_f64();
                    job.stats.latency_series.push((t, ms));
                    step.committed.push((j as u32, Some(ms)));
                } else {
                    step.committed.push((j as u32, None));
                }
                if job.kind == JobKind::Batch && !self.stopped {
                    self.begin_run(j, now, step);
                }
            }
            Err(e) => {
                let reason = format!("run {run} failed to commit: {e}");
                self.fail_job(j, &reason);
                step.failed.push((j as u32, reason));
            }
        }
    }

    /// Mark job `j` failed (a task was abandoned or a commit failed): no more runs.
    pub fn fail_job(&mut self, j: usize, reason: &str) {
        if let Some(job) = self.jobs.get_mut(j) {
            job.stats.failed.get_or_insert_with(|| reason.to_string());
            job.active.clear();
            job.next_due = None;
        }
    }

    /// Whether every job has a run limit and has committed all its runs (or failed).
    pub fn all_done(&self) -> bool {
        self.jobs.iter().all(|j| {
            j.stats.failed.is_some()
                || j.runs_limit
                    .is_some_and(|n| j.stats.runs >= n && j.active.is_empty())
        })
    }

    /// Whether any job failed.
    pub fn any_failed(&self) -> Option<String> {
        self.jobs.iter().zip(self.app.jobs()).find_map(|(j, d)| {
            j.stats
                .failed
                .as_ref()
                .map(|f| format!("job `{}` failed: {f}", d.name))
        })
    }

    /// Stats of job `j`.
    pub fn stats(&self, j: usize) -> &JobStats {
        &self.jobs[j].stats
    }

    /// Micro-batches (or epochs) in flight for job `j`.
    pub fn active_runs(&self, j: usize) -> usize {
        self.jobs[j].active.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neptune_core::config::Config;
    use neptune_core::{Dataset, TaskContext};

    fn app(stream_runs: Option<u64>, batch_runs: Option<u64>) -> Arc<App> {
        let mut app = App::new("t", Arc::new(Config::default()));
        let ds = Dataset::from_fn(2, |ctx| Box::new(0..u64::from(ctx.partition()) + 1));
        app.batch("b", ds.count()).runs(batch_runs);
        app.stream("s", ds.count())
            .runs(stream_runs)
            .interval(Duration::from_millis(100));
        Arc::new(app)
    }

    fn result_of(app: &App, id: TaskId) -> Vec<u8> {
        let ctx = TaskContext::detached(id, JobKind::Batch);
        (app.jobs()[id.job as usize].stages[0].run_task)(&ctx).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn batch_runs_follow_each_other_until_their_limit() {
        let a = app(Some(0), Some(2));
        let mut m = JobManager::new(a.clone(), Arc::default());
        let s = m.start(ms(0));
        assert_eq!(s.submit.len(), 1);
        for t in s.submit[0].clone() {
            let next = m.task_succeeded(ms(5), t.id, result_of(&a, t.id), 1);
            if t.id.partition == 1 {
                assert_eq!(next.submit.len(), 1, "epoch 1 starts when epoch 0 commits");
                assert_eq!(next.submit[0][0].id.run, 1);
            }
        }
        assert_eq!(m.stats(0).runs, 1);
        assert_eq!(m.stats(0).last_result, serde_json::json!(3));
        assert!(!m.all_done());
    }

    #[test]
    fn stream_micro_batches_are_due_every_interval_and_latency_is_measured_from_due_time() {
        let a = app(Some(3), Some(0));
        let mut m = JobManager::new(a.clone(), Arc::default());
        assert!(m.start(ms(0)).submit.is_empty());
        assert_eq!(m.next_deadline(), Some(ms(100)));
        assert!(m.tick(ms(99)).submit.is_empty());
        let due = m.tick(ms(250));
        assert_eq!(due.submit.len(), 2, "micro-batches due at 100 and 200");
        for t in due.submit.concat() {
            m.task_succeeded(ms(260), t.id, result_of(&a, t.id), 1);
        }
        let lat = m.stats(1).latency_ms.clone();
        assert_eq!(lat.len(), 2);
        assert_eq!(lat.max(), 160.0);
    }

    #[test]
    fn duplicate_results_are_ignored() {
        let a = app(Some(0), Some(1));
        let mut m = JobManager::new(a.clone(), Arc::default());
        let s = m.start(ms(0));
        let t = s.submit[0][0].id;
        m.task_succeeded(ms(1), t, result_of(&a, t), 1);
        m.task_succeeded(ms(2), t, result_of(&a, t), 1);
        assert_eq!(m.stats(0).records, 1);
        assert_eq!(m.stats(0).runs, 0);
    }
}
