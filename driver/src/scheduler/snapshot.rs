//! A read-only view of the scheduler for `/status`, metrics and tests.

use super::config::{Placement, Policy};
use super::executors::STREAM_POOL;
use super::{Scheduler, TaskState};
use neptune_core::ids::{ExecutorId, JobKind, TaskId};
use serde::Serialize;

/// Counters since the scheduler started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Confirmed suspensions (`TaskSuspended`).
    pub suspensions: u64,
    /// Confirmed resumptions (`TaskResumed`).
    pub resumptions: u64,
    /// Confirmed preemptive kills (`kill` policy); kills of cancelled jobs are not counted.
    pub kills: u64,
    /// Records lost by preemptive kills.
    pub records_lost: u64,
    /// Launches of tasks with locality preferences onto a preferred executor.
    pub local_launches: u64,
    /// Launches of tasks with locality preferences onto another executor.
    pub non_local_launches: u64,
    /// Re-queues (executor lost, heartbeat timeout, kill, failure).
    pub requeued: u64,
    /// Tasks abandoned after `max_task_failures` failures.
    pub abandoned: u64,
    /// Launches not acknowledged within `launch_ack_timeout` (each re-queued its task and made
    /// its executor suspect).
    pub ack_timeouts: u64,
    /// SLO-aware mode acting ahead: slots reserved for imminent micro-batches (one per
    /// executor and announcement).
    pub reservations: u64,
    /// Reservations that ended at their deadline (the micro-batch did not launch in time) or
    /// because the mode stopped acting.
    pub reservations_expired: u64,
    /// Standalone suspensions sent to free reserved slots ([`Command::Suspend`](super::Command)).
    pub ahead_suspensions: u64,
}

/// One executor as the scheduler sees it. Task lists are sorted by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutorSnapshot {
    /// Executor id.
    pub id: ExecutorId,
    /// Task slots.
    pub cores: u32,
    /// Under `static`, the only kind it runs; `None` otherwise.
    pub dedicated_to: Option<JobKind>,
    /// Tasks holding a slot (including resumes not yet confirmed).
    pub running: Vec<TaskId>,
    /// Victims of preemptions in flight and tasks suspended ahead of a micro-batch, not yet
    /// parked (each still holds its slot).
    pub suspending: Vec<TaskId>,
    /// Tasks launched with a preemption, waiting for their victim's slot.
    pub reserved: Vec<TaskId>,
    /// Suspended tasks (no slot).
    pub suspended: Vec<TaskId>,
    /// LMA memory pressure (mean use plus retained), per mille of the limit.
    pub memory_pressure_permille: u64,
    /// Whether it spilled within the LMA window.
    pub spilling: bool,
    /// A launch to it went unacknowledged: no new work until it acknowledges something.
    pub suspect: bool,
}

/// The whole scheduler state, executors in registration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Policy in force.
    pub policy: Policy,
    /// Placement in force.
    pub placement: Placement,
    /// Registered executors.
    pub executors: Vec<ExecutorSnapshot>,
    /// Queued stream tasks.
    pub queued_stream: usize,
    /// Queued batch tasks.
    pub queued_batch: usize,
    /// Counters.
    pub totals: Totals,
}

impl Snapshot {
    /// The executor named `id`, if registered.
    pub fn executor(&self, id: &str) -> Option<&ExecutorSnapshot> {
        self.executors.iter().find(|e| e.id == id)
    }
}

impl Scheduler {
    /// The current state. O(executors + placed tasks): for status pages, not the hot path.
    pub fn snapshot(&self) -> Snapshot {
        let is_static = self.cfg.policy == Policy::Static;
        let mut execs: Vec<_> = self.execs.execs.values().collect();
        execs.sort_by_key(|e| e.seq);
        let executors = execs
            .into_iter()
            .map(|e| {
                let mut reserved: Vec<TaskId> = e
                    .preempting
                    .values()
                    .copied()
                    .filter(|s| matches!(self.tasks[s].state, TaskState::Reserved { .. }))
                    .collect();
                reserved.sort();
                let mut suspended: Vec<TaskId> = e.suspended.values().copied().collect();
                suspended.sort();
                ExecutorSnapshot {
                    id: e.name.clone(),
                    cores: e.cores,
                    dedicated_to: is_static.then_some(if e.pool == STREAM_POOL {
                        JobKind::Stream
                    } else {
                        JobKind::Batch
                    }),
                    running: e.running.iter().copied().collect(),
                    suspending: e
                        .preempting
                        .keys()
                        .chain(&e.suspending)
                        .copied()
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    reserved,
                    suspended,
                    memory_pressure_permille: e.window.pressure_permille(),
                    spilling: e.window.spilling(),
                    suspect: e.suspect,
                }
            })
            .collect();
        Snapshot {
            policy: self.cfg.policy,
            placement: self.cfg.placement,
            executors,
            queued_stream: self.lanes.queued(JobKind::Stream),
            queued_batch: self.lanes.queued(JobKind::Batch),
            totals: self.totals,
        }
    }
}
