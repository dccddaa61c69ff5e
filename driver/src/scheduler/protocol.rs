//! The scheduler's inputs ([`Event`]) and outputs ([`Command`]): what the driver's I/O adapters
//! feed it and carry out. Plain data, no I/O.

use neptune_core::ids::{ExecutorId, JobId, JobKind, TaskId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One task to place, as handed over by the DAG scheduler (and echoed in [`Command::Launch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task.
    pub id: TaskId,
    /// Stream or batch: decides queue, priority and preemptibility.
    pub kind: JobKind,
    /// Attempt number, from 0. The scheduler bumps it on every re-queue; executors echo it in
    /// their task events so late events of an older attempt are recognised and ignored.
    pub attempt: u32,
    /// Executors holding this task's input (locality preferences), best first. Used by `lma`.
    pub preferred: Vec<ExecutorId>,
}

impl TaskSpec {
    /// The first attempt of task `id`, without locality preferences.
    pub fn new(id: TaskId, kind: JobKind) -> Self {
        Self {
            id,
            kind,
            attempt: 0,
            preferred: Vec::new(),
        }
    }
}

/// Memory metrics carried by one executor heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecutorMetrics {
    /// Bytes in use now.
    pub memory_used: u64,
    /// The executor's memory limit in bytes (0: use the limit given at registration).
    pub memory_limit: u64,
    /// Bytes spilled to disk since the executor started (monotonic counter).
    pub spilled_bytes_total: u64,
    /// Bytes held by suspended tasks now.
    pub suspended_retained_bytes: u64,
}

/// Something that happened, fed to [`Scheduler::handle`](super::Scheduler::handle) with the
/// monotonic time since driver start.
///
/// Task events carry the `attempt` of the [`TaskSpec`] they refer to: an event whose executor is
/// not (or no longer) registered, or whose task is not placed on that executor with that attempt,
/// is stale and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An executor connected. Re-registering a known id first handles the old one as lost.
    ExecutorRegistered {
        /// Executor id.
        id: ExecutorId,
        /// Task slots.
        cores: u32,
        /// Memory limit in bytes.
        memory_limit: u64,
    },
    /// The executor's connection closed.
    ExecutorLost {
        /// Executor id.
        id: ExecutorId,
    },
    /// A heartbeat: proves liveness and feeds the LMA metrics window.
    Heartbeat {
        /// Executor id.
        id: ExecutorId,
        /// Its metrics now.
        metrics: ExecutorMetrics,
    },
    /// One task set (a stage of one run of a job), appended to its queue in the given order.
    /// Ids already known to the scheduler are ignored.
    TasksSubmitted {
        /// The tasks.
        tasks: Vec<TaskSpec>,
    },
    /// The executor parked the task (it was the victim of a [`Preempt`] by suspension, or of a
    /// [`Command::Suspend`]). Its slot now runs the task launched with that preemption, or is
    /// free.
    TaskSuspended {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// Reporting executor.
        executor: ExecutorId,
    },
    /// The executor resumed the task after a [`Command::Resume`].
    TaskResumed {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// Reporting executor.
        executor: ExecutorId,
    },
    /// The task succeeded; its slot is free.
    TaskFinished {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// Reporting executor.
        executor: ExecutorId,
    },
    /// The task failed; its slot is free.
    TaskFailed {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// Reporting executor.
        executor: ExecutorId,
        /// Why, for logs and [`Command::TaskAbandoned`].
        reason: String,
    },
    /// The task could not run because inputs it reads are lost (a shuffle fetch failed). Its
    /// slot is free and the scheduler forgets it without counting a failure: the DAG side
    /// resubmits it (with a higher attempt) once the lost inputs are recomputed.
    TaskReturned {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// Reporting executor.
        executor: ExecutorId,
    },
    /// The driver could not send the [`Command::Launch`] of this task (its inputs were lost after
    /// it was queued, or its run is over): the scheduler forgets it, and if the launch carried a
    /// [`Preempt`], the victim keeps its slot and runs on (the executor never heard of either).
    LaunchCancelled {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// The executor the launch was for.
        executor: ExecutorId,
    },
    /// The task was killed (after a [`Preempt`] by kill or a [`Command::Kill`]); its slot is free.
    TaskKilled {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// Reporting executor.
        executor: ExecutorId,
        /// Records the task had processed, now lost.
        records_lost: u64,
    },
    /// The executor acknowledged the launch of this attempt (its first update for it). Any
    /// applied update of the attempt acknowledges it too.
    TaskAcknowledged {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// Reporting executor.
        executor: ExecutorId,
    },
    /// Drop the job's queued tasks and kill its placed ones (shutdown, or the job failed).
    JobCancelled {
        /// The job.
        job: JobId,
    },
    /// Periodic: heartbeat timeouts, launch-acknowledgement timeouts and anti-starvation
    /// quantum expiry are checked here.
    Tick,
    /// A stream job with a latency target committed a micro-batch: the p99 of its micro-batches
    /// in the recent window (`scheduler.slo_window_ms`), for the SLO-aware mode (ignored
    /// unless `scheduler.slo_aware` is on under a preempting policy).
    StreamLatency {
        /// The stream job.
        job: JobId,
        /// p99 of its micro-batches committed in the recent window.
        recent_p99: Duration,
        /// Its latency target.
        target: Duration,
    },
    /// A stream job's next micro-batch is due at `due` (monotonic time since driver start), a
    /// lead ahead: under the SLO-aware mode's acting ahead (`scheduler.slo_lead_us` > 0), the
    /// scheduler frees the cores the job's tasks will take (see `ahead.rs`). Ignored otherwise.
    StreamDueSoon {
        /// The stream job.
        job: JobId,
        /// When its micro-batch is due.
        due: Duration,
    },
}

impl Event {
    /// `(task, attempt, reporting executor)` of an executor's report about one task attempt
    /// (suspended, resumed, finished, failed, returned, killed, acknowledged); `None` for every
    /// other event, including the driver's own [`Event::LaunchCancelled`].
    pub fn task_report(&self) -> Option<(TaskId, u32, &str)> {
        match self {
            Event::TaskAcknowledged {
                id,
                attempt,
                executor,
            }
            | Event::TaskSuspended {
                id,
                attempt,
                executor,
            }
            | Event::TaskResumed {
                id,
                attempt,
                executor,
            }
            | Event::TaskFinished {
                id,
                attempt,
                executor,
            }
            | Event::TaskFailed {
                id,
                attempt,
                executor,
                ..
            }
            | Event::TaskReturned {
                id,
                attempt,
                executor,
            }
            | Event::TaskKilled {
                id,
                attempt,
                executor,
                ..
            } => Some((*id, *attempt, executor.as_str())),
            Event::ExecutorRegistered { .. }
            | Event::ExecutorLost { .. }
            | Event::Heartbeat { .. }
            | Event::TasksSubmitted { .. }
            | Event::LaunchCancelled { .. }
            | Event::JobCancelled { .. }
            | Event::Tick
            | Event::StreamLatency { .. }
            | Event::StreamDueSoon { .. } => None,
        }
    }
}

/// How a [`Preempt`] frees its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PreemptHow {
    /// Park the victim at its next yield point; it keeps its progress and its executor.
    Suspend,
    /// Abort the victim; it is re-queued and its work is lost.
    Kill,
}

/// "Free a slot by preempting `task`", carried in the same message as the launch it makes room
/// for.
///
/// # Executor contract
/// The executor preempts `task` (if it is still running; if it already ended, the slot is already
/// free) and starts the launched task in the freed slot. It reports the victim's outcome
/// ([`Event::TaskSuspended`], [`Event::TaskKilled`], or the [`Event::TaskFinished`] /
/// [`Event::TaskFailed`] it sent if the victim ended first) before any event of the launched task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Preempt {
    /// The batch task to preempt (same executor).
    pub task: TaskId,
    /// Suspend or kill.
    pub how: PreemptHow,
}

/// Why a task went back to its queue (attempt bumped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequeueReason {
    /// Its executor's connection closed.
    ExecutorLost,
    /// Its executor missed heartbeats for longer than `heartbeat_timeout`.
    HeartbeatTimeout,
    /// It was killed to make room for a stream task (`kill` policy) or by the executor.
    Killed,
    /// It failed (fewer than `max_task_failures` times so far).
    Failed,
    /// Its executor did not acknowledge the launch within `launch_ack_timeout`.
    AckTimeout,
}

/// What the driver's adapters must do (or, for the informative ones, record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start `task` on `executor`, first preempting `preempt.task` there if given.
    Launch {
        /// The task, with its current attempt.
        task: TaskSpec,
        /// Target executor.
        executor: ExecutorId,
        /// The task to preempt to make room, in the same message.
        preempt: Option<Preempt>,
    },
    /// Suspend the running batch `task` (attempt `attempt`) on `executor` and leave its core
    /// idle: the SLO-aware mode frees a core ahead of a micro-batch (see `ahead.rs`). The
    /// executor parks it at its next yield point and reports [`Event::TaskSuspended`], or the
    /// task's end if it ended first; until then the task holds its slot.
    Suspend {
        /// Task.
        task: TaskId,
        /// Its attempt.
        attempt: u32,
        /// Its executor.
        executor: ExecutorId,
    },
    /// Resume the suspended `task` on `executor` (always the executor it was suspended on).
    Resume {
        /// Task.
        task: TaskId,
        /// Its executor.
        executor: ExecutorId,
    },
    /// Kill attempt `attempt` of `task` on `executor`: its job was cancelled, or it is a stale
    /// attempt (its launch timed out and the task was re-queued) that the executor turned out
    /// to run after all.
    Kill {
        /// Task.
        task: TaskId,
        /// The attempt to kill.
        attempt: u32,
        /// Its executor.
        executor: ExecutorId,
    },
    /// Close the executor's connection: it missed heartbeats. Its tasks are already re-queued.
    DropExecutor {
        /// Executor id.
        id: ExecutorId,
        /// How long it had been silent.
        silent_for: Duration,
    },
    /// Informative: `executor` did not acknowledge the launch of `task` (attempt `attempt`)
    /// within `launch_ack_timeout`: it is suspect (no new work until it acknowledges something
    /// again) and the task is re-queued.
    ExecutorSuspect {
        /// Executor id.
        id: ExecutorId,
        /// The task whose launch went unacknowledged.
        task: TaskId,
        /// Its attempt on that executor.
        attempt: u32,
    },
    /// Informative: `task` is queued again with a bumped attempt.
    Requeued {
        /// Task.
        task: TaskId,
        /// Why.
        reason: RequeueReason,
    },
    /// `task` failed `failures` (= `max_task_failures`) times: the job must fail.
    TaskAbandoned {
        /// Task.
        task: TaskId,
        /// Failures counted.
        failures: u32,
        /// Reason given by the last failure.
        reason: String,
    },
}
