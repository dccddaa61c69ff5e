//! The task scheduler: a pure synchronous state machine that places tasks on executor slots.
//!
//! No sockets, threads, async or wall clock: the driver's I/O adapters call
//! [`Scheduler::handle`] with the monotonic time and one [`Event`], and carry out the returned
//! [`Command`]s in order. Tests step it with a fake clock.
//!
//! # Policies
//! - `neptune` (default): stream tasks first (FIFO), then batch (FIFO). Batch tasks only take
//!   free slots. A stream task that finds no free slot in the cluster preempts a batch task:
//!   [`Command::Launch`] carries [`Preempt`] { victim, [`PreemptHow::Suspend`] }. When a slot frees
//!   on executor E the order is: queued stream tasks, then tasks suspended on E (oldest suspension
//!   first, resumed on E — suspended tasks never migrate), then queued batch tasks. Stream tasks
//!   are never preempted.
//! - `kill`: as `neptune`, preempting with [`PreemptHow::Kill`]; the victim goes back to the head
//!   of the batch queue with attempt + 1, and its `records_lost` are summed.
//! - `fifo`: one queue in submission order, head-of-line, no preemption.
//! - `fair`: stream and batch pools; the next task comes from the pool with the smallest
//!   `running / weight` (ties: stream), FIFO within a pool, no preemption.
//! - `static`: the first `static_stream_executors` registered executors (counted among those
//!   alive at registration time; a role never changes) take only stream tasks, the others only
//!   batch tasks; no preemption.
//!
//! # SLO-aware mode
//! With `scheduler.slo_aware`, `neptune` and `kill` hold a micro-batch's worth of cores (never
//! an executor's last) back from batch work (no batch launch or resume takes them) on the
//! executors a stream job's tasks run on while that job's recent p99 is near its latency
//! target, and give them back once the margin returns; see `slo.rs` for the thresholds and the
//! hysteresis. With `scheduler.slo_lead_us` > 0 they also *act ahead*: a lead before each
//! micro-batch of a job with a target is due ([`Event::StreamDueSoon`]), the slots its tasks
//! took last time are reserved on their executors and the batch tasks in them suspended
//! ([`Command::Suspend`]); the micro-batch's tasks launch into them without a preemption round
//! trip, and batch work gets them back as soon as those tasks launched; see `ahead.rs`.
//!
//! Victim choice on an executor: the batch task preempted least often, then the one started most
//! recently (least progress at stake), then the smallest id. **Anti-starvation**: a task
//! preempted more than `max_suspensions` times is not a candidate for `quantum` after it starts
//! running again (from its [`Event::TaskResumed`], or its relaunch under `kill`). Expiry takes
//! effect at the first event at or after it (the driver sends [`Event::Tick`] periodically);
//! protected tasks leave the victim index meanwhile, so victim search never skips executors.
//!
//! # Placement
//! With a free slot anywhere in the task's pool, a task takes one; only when the cluster is full
//! does a stream task preempt. Candidates are ordered as follows (smallest rank first; ties are
//! impossible because the registration order is the last key):
//!
//! - `lma`: (1) a preferred executor of the task (locality; the best-ranked one if several),
//!   then (2) executors that did **not** spill within the window before those that did, then
//!   (3) the memory-pressure band, in tenths: `mean(memory_used / memory_limit)` over the last
//!   `metrics_window` heartbeats `+ suspended_retained_bytes / memory_limit` of the latest
//!   one (0 for < 10 %, 1 for 10–19.9 %, ...; an executor with no heartbeat yet counts 0),
//!   then (4) the fewest tasks held (slots taken + suspended), then (5) registration order.
//!   "Spilled within the window" means `spilled_bytes_total` grew since the sample that last
//!   left the window. Bands rather than raw ratios let task balance decide among executors of
//!   similar pressure.
//! - `lb`: fewest tasks held, then registration order; locality and memory are ignored.
//! - `random`: uniform among candidates from the seeded RNG (each executor draws a fresh random
//!   key whenever its state changes); locality is ignored.
//!
//! For a preemption the same order applies to executors that have a preemptible batch task
//! (under `lma`: a preferred executor with one first).
//!
//! # Slot accounting and interleavings
//! A slot is free only once the executor said so. A launch with a preemption makes a *pair*:
//! the victim (state `Preempting`) keeps holding its slot and the launched task (`Reserved`)
//! waits for it; nothing else may take it. The pair resolves on the victim's outcome:
//! `TaskSuspended` (victim suspended on that executor), `TaskKilled` (victim re-queued),
//! `TaskFinished` / `TaskFailed` (the victim ended before the preemption landed: it is finished /
//! re-queued as usual) — in every case the launched task becomes `Running` in that slot. If the
//! executor is lost first, both are re-queued. Events about a `Reserved` task before its victim's
//! outcome break the executor contract (see [`Preempt`]) and are ignored.
//!
//! # Stale and forged events (the holder rule)
//! The scheduler records, for every placed task, its executor incarnation and its attempt. A
//! task event is applied only if its executor id is registered now, the task is placed on that
//! executor, and the event's attempt equals the task's current attempt; a suspension only while
//! one was asked for, a resumption only while one is pending. Anything else is ignored (logged at
//! debug), and [`Scheduler::check`] says why beforehand ([`Ignored`]), so the driver refuses an
//! update before it reaches the job manager or a total. Re-queueing always bumps the attempt,
//! and a re-registered executor id is a new incarnation, so late events of an older life never
//! match, and no executor can report on a task it was not given.
//!
//! # Failures
//! Executor lost (connection closed, or silent for longer than `heartbeat_timeout` at a `Tick`,
//! which also emits [`Command::DropExecutor`]): every task on it — running, being preempted,
//! reserved, suspended — goes back to the head of its queue with attempt + 1, stream tasks ahead
//! of batch tasks; loss does not count as a task failure. `TaskFailed` frees the slot and
//! re-queues the task at the head of its queue with attempt + 1 until its `max_task_failures`-th
//! failure, which emits [`Command::TaskAbandoned`] instead. `JobCancelled` drops the job's
//! queued tasks and emits [`Command::Kill`] for its placed ones (for a `Reserved` task, once its
//! slot is granted); they keep their slots until the executor reports their end.
//!
//! # Launch acknowledgement
//! A launch must be acknowledged (any applied update of that attempt, the first being the
//! executor's `TaskAcknowledged` on receipt) within `launch_ack_timeout`. At the first `Tick`
//! past it, a task still `Running` unacknowledged goes back to the head of its queue with
//! attempt + 1 (not a task failure) and its executor becomes *suspect*
//! ([`Command::ExecutorSuspect`]): it leaves the free, victim and resumable indices, so it gets
//! no launch, resume or preemption until one of its current attempts reports again, which clears
//! it (it is not dropped: a heartbeat timeout does that). A launch in a preemption pair is left
//! to its victim's outcome or the executor's loss.
//!
//! # Cost
//! Per event: O(log E) index updates per task moved, plus the placement work per task placed
//! (O(cores) for a victim choice, O(|preferred|) for locality); no scan over all executors or
//! all tasks (except `JobCancelled`, which visits the job's tasks and the queues). A `Tick`
//! costs O(log E) plus the executors that timed out.

mod acceptance;
mod ahead;
mod config;
mod dispatch;
mod executors;
mod live;
mod placement;
mod protocol;
mod queues;
mod slo;
mod snapshot;
mod transitions;

#[cfg(test)]
mod tests;

pub use acceptance::Ignored;
pub use config::{FairWeights, Placement, Policy, SchedulerConfig};
pub use neptune_config::ConfigError;
pub use protocol::{Command, Event, ExecutorMetrics, Preempt, PreemptHow, RequeueReason, TaskSpec};
pub use snapshot::{ExecutorSnapshot, Snapshot, Totals};

use executors::{Registry, Seq};
use neptune_core::ids::{JobKind, TaskId};
use queues::Lanes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Where a known task is. Each task is in exactly one state, and each placed state is mirrored in
/// exactly one set of its executor (see `executors::Executor`); [`Scheduler::relocate`] keeps the
/// two in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskState {
    /// In its lane.
    Queued,
    /// Holds a slot on `exec`.
    Running { exec: Seq },
    /// Victim of a preemption in flight: holds its slot, which `by` inherits.
    Preempting {
        exec: Seq,
        by: TaskId,
        how: PreemptHow,
    },
    /// Launched with a preemption of `victim`: waits for the victim's slot.
    Reserved { exec: Seq, victim: TaskId },
    /// A [`Command::Suspend`] is in flight (acting ahead of a micro-batch): holds its slot
    /// until the executor reports it parked; no task inherits the slot.
    Suspending { exec: Seq },
    /// Parked on `exec`, no slot; `order` is its place in the resume order.
    Suspended { exec: Seq, order: u64 },
    /// Parked on `exec` with its job cancelled: a kill is in flight, no slot.
    Killing { exec: Seq },
}

impl TaskState {
    fn exec(self) -> Option<Seq> {
        match self {
            TaskState::Queued => None,
            TaskState::Running { exec }
            | TaskState::Preempting { exec, .. }
            | TaskState::Reserved { exec, .. }
            | TaskState::Suspending { exec }
            | TaskState::Suspended { exec, .. }
            | TaskState::Killing { exec } => Some(exec),
        }
    }
}

/// Everything the scheduler knows about one task, from submission until it ends.
#[derive(Debug)]
struct TaskEntry {
    spec: TaskSpec,
    state: TaskState,
    failures: u32,
    /// Confirmed suspensions plus preemptive kills.
    preemptions: u32,
    /// End of the current anti-starvation protection, if `protected`.
    protected_until: Duration,
    /// Not a preemption candidate until `protected_until` (anti-starvation).
    protected: bool,
    /// When it last started running (launch or resume): most recent is preempted first.
    started_at: Duration,
    /// A `Resume` was sent and not yet confirmed: holds the slot, not a candidate.
    resume_pending: bool,
    /// Its job was cancelled: it ends without being re-queued.
    cancelled: bool,
    /// Launched and not acknowledged yet: re-queued if still so at this time.
    ack_due: Option<Duration>,
    /// A standalone [`Command::Suspend`] went out for it and it has not parked yet (it may have
    /// been paired with a launch since: a cancelled launch leaves it `Suspending`, not running).
    suspend_sent: bool,
}

impl TaskEntry {
    fn is_candidate(&self) -> bool {
        matches!(self.state, TaskState::Running { .. })
            && self.spec.kind == JobKind::Batch
            && !self.resume_pending
            && !self.cancelled
            && !self.protected
    }
}

/// The task scheduler. See the [module docs](self) for its semantics.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    tasks: BTreeMap<TaskId, TaskEntry>,
    lanes: Lanes,
    execs: Registry,
    totals: Totals,
    /// Tasks in state `Running`, by kind (stream, batch): the `fair` shares.
    running_by_kind: [u64; 2],
    /// Anti-starvation protections by end time (entries of tasks that moved on are skipped).
    protections: BTreeSet<(Duration, TaskId)>,
    /// Launch-acknowledgement deadlines (entries of tasks acknowledged or moved on are skipped).
    acks: BTreeSet<(Duration, TaskId)>,
    next_order: u64,
    now: Duration,
    /// SLO-aware mode: stream jobs' guards and the executors they hold a slot on.
    slo: slo::SloGuards,
    /// SLO-aware mode, acting ahead: the slots freed for each stream job's next micro-batch.
    ahead: ahead::Reservations,
}

impl Scheduler {
    /// A scheduler with no executors and no tasks.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first invalid key.
    pub fn new(cfg: SchedulerConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let static_stream = (cfg.policy == Policy::Static).then_some(cfg.static_stream_executors);
        Ok(Scheduler {
            tasks: BTreeMap::new(),
            lanes: Lanes::new(cfg.policy),
            execs: Registry::new(cfg.placement, cfg.metrics_window, static_stream, cfg.seed),
            totals: Totals::default(),
            running_by_kind: [0, 0],
            protections: BTreeSet::new(),
            acks: BTreeSet::new(),
            next_order: 0,
            now: Duration::ZERO,
            slo: slo::SloGuards::default(),
            ahead: ahead::Reservations::default(),
            cfg,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// Current attempt of a task the scheduler knows (queued, placed or suspended).
    pub fn attempt_of(&self, task: TaskId) -> Option<u32> {
        self.tasks.get(&task).map(|t| t.spec.attempt)
    }

    /// Applies one event at `now` (monotonic time since driver start; a smaller value than a
    /// previous call is treated as the previous one) and returns the commands to carry out, in
    /// order.
    ///
    /// # Guarantees
    /// Never panics on any sequence of events; unknown executors, unknown tasks and stale events
    /// are ignored.
    pub fn handle(&mut self, now: Duration, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        self.handle_into(now, event, &mut out);
        out
    }

    /// As [`handle`](Self::handle), appending to `out` (lets the caller reuse one buffer).
    pub fn handle_into(&mut self, now: Duration, event: Event, out: &mut Vec<Command>) {
        let now = now.max(self.now);
        self.now = now;
        self.expire_protections(now);
        self.note_ack(&event, out);
        match event {
            Event::ExecutorRegistered {
                id,
                cores,
                memory_limit,
            } => self.on_registered(now, id, cores, memory_limit, out),
            Event::ExecutorLost { id } => self.on_lost(&id, out),
            Event::Heartbeat { id, metrics } => self.on_heartbeat(now, &id, metrics),
            Event::TasksSubmitted { tasks } => self.on_submitted(tasks),
            Event::TaskSuspended {
                id,
                attempt,
                executor,
            } => self.on_suspended(id, attempt, &executor, out),
            Event::TaskResumed {
                id,
                attempt,
                executor,
            } => self.on_resumed(now, id, attempt, &executor),
            Event::TaskFinished {
                id,
                attempt,
                executor,
            } => self.on_finished(id, attempt, &executor, out),
            Event::TaskFailed {
                id,
                attempt,
                executor,
                reason,
            } => self.on_failed(id, attempt, &executor, reason, out),
            Event::TaskReturned {
                id,
                attempt,
                executor,
            } => self.on_returned(id, attempt, &executor, out),
            Event::LaunchCancelled {
                id,
                attempt,
                executor,
            } => self.on_launch_cancelled(id, attempt, &executor),
            Event::TaskKilled {
                id,
                attempt,
                executor,
                records_lost,
            } => self.on_killed(id, attempt, &executor, records_lost, out),
            // `note_ack` did all there is to do.
            Event::TaskAcknowledged { .. } => {}
            Event::JobCancelled { job } => self.on_job_cancelled(job, out),
            Event::Tick => self.on_tick(now, out),
            Event::StreamLatency {
                job,
                recent_p99,
                target,
            } => self.on_stream_latency(now, job, recent_p99, target),
            Event::StreamDueSoon { job, due } => self.on_stream_due_soon(now, job, due, out),
        }
        self.expire_reservations(now);
        self.dispatch(now, out);
    }

    /// Moves a known task to `new`, keeping its executors' sets, the indices and the per-kind
    /// running counts in step. The lanes are the caller's business.
    fn relocate(&mut self, id: TaskId, new: TaskState) {
        let entry = self.tasks.get_mut(&id).expect("relocating a known task");
        let old = std::mem::replace(&mut entry.state, new);
        let candidate = entry.is_candidate();
        let kind = usize::from(entry.spec.kind == JobKind::Batch);
        if matches!(old, TaskState::Running { .. }) {
            self.running_by_kind[kind] -= 1;
        }
        if matches!(new, TaskState::Running { .. }) {
            self.running_by_kind[kind] += 1;
        }
        if let Some(seq) = old.exec() {
            self.execs.with_mut(seq, |e| match old {
                TaskState::Queued | TaskState::Reserved { .. } => {}
                TaskState::Running { .. } => {
                    e.running.remove(&id);
                    e.candidates.remove(&id);
                }
                TaskState::Preempting { .. } => {
                    e.preempting.remove(&id);
                }
                TaskState::Suspending { .. } => {
                    e.suspending.remove(&id);
                }
                TaskState::Suspended { order, .. } => {
                    e.suspended.remove(&order);
                }
                TaskState::Killing { .. } => {
                    e.killing.remove(&id);
                }
            });
        }
        if let Some(seq) = new.exec() {
            self.execs.with_mut(seq, |e| match new {
                TaskState::Queued | TaskState::Reserved { .. } => {}
                TaskState::Running { .. } => {
                    e.running.insert(id);
                    if candidate {
                        e.candidates.insert(id);
                    }
                }
                TaskState::Preempting { by, .. } => {
                    e.preempting.insert(id, by);
                }
                TaskState::Suspending { .. } => {
                    e.suspending.insert(id);
                }
                TaskState::Suspended { order, .. } => {
                    e.suspended.insert(order, id);
                }
                TaskState::Killing { .. } => {
                    e.killing.insert(id);
                }
            });
        }
    }

    /// Ends the anti-starvation protections due by `now`: those tasks become candidates again.
    fn expire_protections(&mut self, now: Duration) {
        while let Some(&(until, id)) = self.protections.first() {
            if until > now {
                break;
            }
            self.protections.pop_first();
            if let Some(entry) = self.tasks.get_mut(&id)
                && entry.protected
                && entry.protected_until == until
            {
                entry.protected = false;
                self.refresh(id);
            }
        }
    }

    /// Re-applies a task's state after one of its flags changed (candidate membership).
    fn refresh(&mut self, id: TaskId) {
        let state = self.tasks[&id].state;
        self.relocate(id, state);
    }

    /// Takes a task off its executor and forgets it (it ended, or its job was cancelled).
    fn forget(&mut self, id: TaskId) {
        self.relocate(id, TaskState::Queued);
        self.tasks.remove(&id);
    }
}
