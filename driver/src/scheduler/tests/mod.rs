//! Scheduler tests: fixtures (a cluster builder, a fake clock, task builders) and the suites.

mod ack;
mod ahead;
mod baselines;
mod failures;
mod holder;
mod invariants;
mod live;
mod neptune;
mod placement;
mod property;
mod slo;

use super::*;
use neptune_core::ids::{JobKind, TaskId};
use std::time::Duration;

/// Job 0 is the stream job, job 1 the batch job (a second batch job is job 2).
pub(super) const STREAM_JOB: u32 = 0;
pub(super) const BATCH_JOB: u32 = 1;

/// Stream task `p` of run 0.
pub(super) fn s(p: u32) -> TaskId {
    TaskId {
        job: STREAM_JOB,
        run: 0,
        stage: 0,
        partition: p,
    }
}

/// Batch task `p` of run 0.
pub(super) fn b(p: u32) -> TaskId {
    TaskId {
        job: BATCH_JOB,
        run: 0,
        stage: 0,
        partition: p,
    }
}

/// A fresh spec for `id` (kind from its job), no locality preference.
pub(super) fn spec(id: TaskId) -> TaskSpec {
    let kind = if id.job == STREAM_JOB {
        JobKind::Stream
    } else {
        JobKind::Batch
    };
    TaskSpec::new(id, kind)
}

/// A spec for `id` preferring `executors`.
pub(super) fn local(id: TaskId, executors: &[&str]) -> TaskSpec {
    TaskSpec {
        preferred: executors.iter().map(|e| e.to_string()).collect(),
        ..spec(id)
    }
}

/// Builds a scheduler with executors registered at t = 0.
pub(super) struct ClusterBuilder {
    cfg: SchedulerConfig,
    executors: Vec<(String, u32)>,
}

/// A cluster with the default config, except that executors never time out and launches need
/// no acknowledgement unless a test asks (the fake clock jumps seconds at a time without
/// heartbeats or updates).
pub(super) fn cluster() -> ClusterBuilder {
    ClusterBuilder {
        cfg: SchedulerConfig {
            heartbeat_timeout: Duration::from_secs(3600),
            launch_ack_timeout: Duration::from_secs(3600),
            ..SchedulerConfig::default()
        },
        executors: Vec::new(),
    }
}

impl ClusterBuilder {
    pub(super) fn policy(mut self, policy: Policy) -> Self {
        self.cfg.policy = policy;
        self
    }
    pub(super) fn placement(mut self, placement: Placement) -> Self {
        self.cfg.placement = placement;
        self
    }
    pub(super) fn config(mut self, f: impl FnOnce(&mut SchedulerConfig)) -> Self {
        f(&mut self.cfg);
        self
    }
    pub(super) fn executor(mut self, name: &str, cores: u32) -> Self {
        self.executors.push((name.to_owned(), cores));
        self
    }
    pub(super) fn build(self) -> Cluster {
        let mut c = Cluster {
            sched: Scheduler::new(self.cfg).expect("valid test config"),
            now: Duration::ZERO,
        };
        for (name, cores) in self.executors {
            c.register(&name, cores);
        }
        c
    }
}

/// A scheduler plus a fake clock; each method feeds one event and returns the commands.
pub(super) struct Cluster {
    pub(super) sched: Scheduler,
    pub(super) now: Duration,
}

pub(super) const GIB: u64 = 1 << 30;

impl Cluster {
    pub(super) fn send(&mut self, event: Event) -> Vec<Command> {
        let out = self.sched.handle(self.now, event);
        if let Err(broken) = invariants::check(&self.sched) {
            panic!("invariant broken after an event: {broken}");
        }
        out
    }
    pub(super) fn advance_ms(&mut self, ms: u64) -> &mut Self {
        self.now += Duration::from_millis(ms);
        self
    }
    pub(super) fn register(&mut self, name: &str, cores: u32) -> Vec<Command> {
        self.send(Event::ExecutorRegistered {
            id: name.to_owned(),
            cores,
            memory_limit: 4 * GIB,
        })
    }
    pub(super) fn submit(&mut self, tasks: impl IntoIterator<Item = TaskSpec>) -> Vec<Command> {
        self.send(Event::TasksSubmitted {
            tasks: tasks.into_iter().collect(),
        })
    }
    /// Submits tasks by id with default specs.
    pub(super) fn submit_ids(&mut self, ids: impl IntoIterator<Item = TaskId>) -> Vec<Command> {
        self.submit(ids.into_iter().map(spec))
    }
    /// The executor name and attempt of a placed task.
    pub(super) fn placement_of(&self, id: TaskId) -> (String, u32) {
        let entry = &self.sched.tasks[&id];
        let exec = entry
            .state
            .exec()
            .unwrap_or_else(|| panic!("{id} is not placed"));
        (self.sched.execs.get(exec).name.clone(), entry.spec.attempt)
    }
    pub(super) fn attempt_of(&self, id: TaskId) -> u32 {
        self.sched.tasks[&id].spec.attempt
    }
    pub(super) fn finish(&mut self, id: TaskId) -> Vec<Command> {
        let (executor, attempt) = self.placement_of(id);
        self.send(Event::TaskFinished {
            id,
            attempt,
            executor,
        })
    }
    pub(super) fn fail(&mut self, id: TaskId) -> Vec<Command> {
        let (executor, attempt) = self.placement_of(id);
        let reason = "boom".to_owned();
        self.send(Event::TaskFailed {
            id,
            attempt,
            executor,
            reason,
        })
    }
    pub(super) fn confirm_suspended(&mut self, id: TaskId) -> Vec<Command> {
        let (executor, attempt) = self.placement_of(id);
        self.send(Event::TaskSuspended {
            id,
            attempt,
            executor,
        })
    }
    pub(super) fn confirm_resumed(&mut self, id: TaskId) -> Vec<Command> {
        let (executor, attempt) = self.placement_of(id);
        self.send(Event::TaskResumed {
            id,
            attempt,
            executor,
        })
    }
    pub(super) fn confirm_killed(&mut self, id: TaskId, records_lost: u64) -> Vec<Command> {
        let (executor, attempt) = self.placement_of(id);
        self.send(Event::TaskKilled {
            id,
            attempt,
            executor,
            records_lost,
        })
    }
    pub(super) fn heartbeat(&mut self, name: &str, metrics: ExecutorMetrics) -> Vec<Command> {
        self.send(Event::Heartbeat {
            id: name.to_owned(),
            metrics,
        })
    }
    pub(super) fn tick(&mut self) -> Vec<Command> {
        self.send(Event::Tick)
    }
    pub(super) fn lose(&mut self, name: &str) -> Vec<Command> {
        self.send(Event::ExecutorLost {
            id: name.to_owned(),
        })
    }
    pub(super) fn snapshot(&self) -> Snapshot {
        self.sched.snapshot()
    }
    pub(super) fn executor(&self, name: &str) -> ExecutorSnapshot {
        self.snapshot()
            .executor(name)
            .unwrap_or_else(|| panic!("no executor {name}"))
            .clone()
    }
}

/// Heartbeat metrics with `used_pct` % of a 4 GiB limit in use.
pub(super) fn memory(used_pct: u64) -> ExecutorMetrics {
    ExecutorMetrics {
        memory_used: 4 * GIB * used_pct / 100,
        memory_limit: 4 * GIB,
        spilled_bytes_total: 0,
        suspended_retained_bytes: 0,
    }
}

/// The (task, executor, preempt) of every launch in `cmds`.
pub(super) fn launches(cmds: &[Command]) -> Vec<(TaskId, String, Option<Preempt>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Launch {
                task,
                executor,
                preempt,
            } => Some((task.id, executor.clone(), *preempt)),
            _ => None,
        })
        .collect()
}

/// A plain launch of `id` on `executor`, as [`launches`] reports it.
pub(super) fn on(id: TaskId, executor: &str) -> (TaskId, String, Option<Preempt>) {
    (id, executor.to_owned(), None)
}

/// A launch of `id` on `executor` suspending `victim`, as [`launches`] reports it.
pub(super) fn suspending(
    id: TaskId,
    executor: &str,
    victim: TaskId,
) -> (TaskId, String, Option<Preempt>) {
    (
        id,
        executor.to_owned(),
        Some(Preempt {
            task: victim,
            how: PreemptHow::Suspend,
        }),
    )
}

/// The (task, executor) of every resume in `cmds`.
pub(super) fn resumes(cmds: &[Command]) -> Vec<(TaskId, String)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Resume { task, executor } => Some((*task, executor.clone())),
            _ => None,
        })
        .collect()
}
