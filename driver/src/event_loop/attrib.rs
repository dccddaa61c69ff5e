//! The event loop's side of per-hop latency attribution (`crate::stats::hops` has the model):
//! it timestamps the driver's points of every stream task on the loop's clock — submitted to the
//! scheduler, launch sent — and, when a task's success commits its run, hands the critical
//! path's points to [`attribute`].
//!
//! Memory is bounded by the runs in flight: a run's marks are dropped when it commits or ends
//! otherwise (its release), and at most [`MAX_RUNS`] runs are tracked (the oldest is dropped
//! first; its micro-batch is then left out of the breakdown, never attributed wrongly).

use crate::stats::{Breakdown, DriverMarks, ExecutorHops, attribute};
use neptune_core::ids::TaskId;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Runs tracked at most: far more stream micro-batches than are ever in flight together.
pub(super) const MAX_RUNS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct TaskMarks {
    /// First submitted to the scheduler.
    submitted: Duration,
    /// Last launch sent: (attempt, when).
    launched: Option<(u32, Duration)>,
}

#[derive(Debug, Default)]
struct RunMarks {
    /// When its first task set was submitted (the job manager began it in the same step).
    planned: Duration,
    tasks: HashMap<(u32, u32), TaskMarks>,
}

/// Driver-side marks of the stream runs in flight.
#[derive(Debug, Default)]
pub(super) struct Attribution {
    runs: BTreeMap<(u32, u64), RunMarks>,
}

impl Attribution {
    /// Stream task `id` was submitted to the scheduler at `now`.
    pub(super) fn submitted(&mut self, id: TaskId, now: Duration) {
        if !self.runs.contains_key(&(id.job, id.run)) && self.runs.len() >= MAX_RUNS {
            self.runs.pop_first();
        }
        let run = self
            .runs
            .entry((id.job, id.run))
            .or_insert_with(|| RunMarks {
                planned: now,
                tasks: HashMap::new(),
            });
        run.tasks
            .entry((id.stage, id.partition))
            .or_insert(TaskMarks {
                submitted: now,
                launched: None,
            });
    }

    /// Attempt `attempt` of stream task `id` was sent to its executor at `now`.
    pub(super) fn launched(&mut self, id: TaskId, attempt: u32, now: Duration) {
        if let Some(t) = self
            .runs
            .get_mut(&(id.job, id.run))
            .and_then(|r| r.tasks.get_mut(&(id.stage, id.partition)))
        {
            t.launched = Some((attempt, now));
        }
    }

    /// Task `id` (attempt `attempt`) succeeded and its success committed its run, due at `due`:
    /// its update was received at `received` and the run committed at `committed`. The run's
    /// marks are dropped; its breakdown, if the task's points are known.
    pub(super) fn committed(
        &mut self,
        id: TaskId,
        attempt: u32,
        due: Duration,
        received: Duration,
        committed: Duration,
        exec: Option<&ExecutorHops>,
    ) -> Option<Breakdown> {
        let run = self.runs.remove(&(id.job, id.run))?;
        let task = run.tasks.get(&(id.stage, id.partition))?;
        let (a, launched) = task.launched?;
        if a != attempt {
            return None;
        }
        let marks = DriverMarks {
            due,
            planned: run.planned,
            submitted: task.submitted,
            launched,
            received,
            committed,
        };
        Some(attribute(&marks, exec))
    }

    /// Run `run` of job `job` ended (committed without attribution, failed, or released).
    pub(super) fn ended(&mut self, job: u32, run: u64) {
        self.runs.remove(&(job, run));
    }

    /// Runs tracked now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Hop;

    fn id(run: u64, stage: u32) -> TaskId {
        TaskId {
            job: 0,
            run,
            stage,
            partition: 0,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_two_stage_run_is_attributed_to_its_last_task() {
        let mut a = Attribution::default();
        a.submitted(id(7, 0), ms(11));
        a.launched(id(7, 0), 0, ms(12));
        a.submitted(id(7, 1), ms(20));
        a.submitted(id(7, 0), ms(30)); // a resubmission keeps the first time
        a.launched(id(7, 1), 0, ms(21));
        a.launched(id(7, 1), 1, ms(22)); // a second attempt replaces the first
        let e = ExecutorHops::default();
        let b = a
            .committed(id(7, 1), 1, ms(10), ms(25), ms(26), Some(&e))
            .unwrap();
        assert_eq!(b.get(Hop::Trigger), Some(ms(1)));
        assert_eq!(
            b.get(Hop::Upstream),
            Some(ms(9)),
            "stage 0 ran from 11 to 20"
        );
        assert_eq!(b.get(Hop::Schedule), Some(ms(2)));
        assert_eq!(b.get(Hop::Network), Some(ms(3)));
        assert_eq!(b.get(Hop::Commit), Some(ms(1)));
        assert_eq!(b.known_total(), ms(16));
        assert_eq!(a.len(), 0, "committed runs are forgotten");
    }

    #[test]
    fn unknown_points_give_no_breakdown_and_memory_stays_bounded() {
        let mut a = Attribution::default();
        assert!(
            a.committed(id(1, 0), 0, ms(0), ms(1), ms(2), None)
                .is_none()
        );
        a.submitted(id(1, 0), ms(1));
        assert!(
            a.committed(id(1, 0), 0, ms(0), ms(1), ms(2), None)
                .is_none(),
            "never launched"
        );
        a.submitted(id(2, 0), ms(1));
        a.launched(id(2, 0), 0, ms(1));
        assert!(
            a.committed(id(2, 0), 3, ms(0), ms(1), ms(2), None)
                .is_none(),
            "another attempt's success"
        );
        a.submitted(id(3, 0), ms(1));
        a.ended(0, 3);
        assert_eq!(a.len(), 0);
        for run in 0..(MAX_RUNS as u64 + 10) {
            a.submitted(id(run, 0), ms(run));
        }
        assert_eq!(a.len(), MAX_RUNS, "the oldest runs are dropped");
    }
}
