//! Public vocabulary of the task runtime: task bodies, outcomes, events, errors and snapshots.

use neptune_core::EventTimes;
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::task::{TaskContext, TaskPhase};
use std::time::{Duration, Instant};

/// The code of one task: runs on its own `may` coroutine, calls [`TaskContext::yield_point`] once
/// per record, and returns the task's serialized result or an error message.
pub type TaskBody = Box<dyn FnOnce(&TaskContext) -> Result<Vec<u8>, String> + Send + 'static>;

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The body returned `Ok` and was not killed.
    Succeeded(Vec<u8>),
    /// The body returned `Err`, or panicked (the message is the panic message).
    Failed(String),
    /// The task was killed; whatever the body returned is discarded.
    Killed,
}

/// What a task's context counted by the time it ended, carried in its `Finished` event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records processed (for a killed task: the work lost).
    pub records: u64,
    /// Malformed input records skipped under the `skip` policy.
    pub skipped: u64,
    /// The executor whose shuffle blocks could not be fetched, if the task failed that way.
    pub fetch_failed: Option<String>,
    /// Source timestamps of the records read, where the source has them (Kafka).
    pub event_times: Option<EventTimes>,
    /// When the task's coroutine first ran (set by the coroutine itself).
    pub started_at: Option<Instant>,
    /// When the task counted its first record.
    pub first_record_at: Option<Instant>,
}

impl Tally {
    /// A tally of `records` records and nothing else.
    pub fn records(records: u64) -> Self {
        Self {
            records,
            ..Self::default()
        }
    }

    /// What `ctx` counted.
    pub fn of(ctx: &TaskContext) -> Self {
        Self {
            records: ctx.records(),
            skipped: ctx.skipped(),
            fetch_failed: ctx.fetch_failed(),
            event_times: ctx.event_times(),
            started_at: None,
            first_record_at: ctx.first_record_at(),
        }
    }
}

/// Where a finished task's time went on this executor, as durations on the executor's monotonic
/// clock (the driver's per-hop latency attribution; see the `TaskTiming` message). The four hops
/// are consecutive and sum to launch received → finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskTiming {
    /// Launch received → core granted by the runtime (waiting for a free core, or for the
    /// launch's preemption victim to park).
    pub queued: Duration,
    /// Core granted → the task's coroutine runs on its worker (may's queue on that worker).
    pub start: Duration,
    /// Coroutine runs → first record counted (→ finished for a task that read none).
    pub first_record: Duration,
    /// First record → finished (zero for a task that read none).
    pub process: Duration,
}

impl TaskTiming {
    /// The hops between the instants a task went through; a missing instant (a task killed
    /// before it got a core, or one that read no record) closes its hop at the next one known,
    /// and instants out of order count as zero-length hops, never as negative ones.
    pub fn between(
        received: Instant,
        granted: Option<Instant>,
        started: Option<Instant>,
        first_record: Option<Instant>,
        finished: Instant,
    ) -> Self {
        let finished = finished.max(received);
        let granted = granted.unwrap_or(finished).clamp(received, finished);
        let started = started.unwrap_or(granted).clamp(granted, finished);
        let first = first_record.unwrap_or(finished).clamp(started, finished);
        Self {
            queued: granted - received,
            start: started - granted,
            first_record: first - started,
            process: finished - first,
        }
    }
}

/// What the runtime tells the executor (and through it the driver). Sent on the unbounded channel
/// given to [`TaskRuntime::new`](super::TaskRuntime::new).
///
/// # Guarantees
/// Events of one task are sent in the order they happened, and every accepted request is answered:
/// an accepted `suspend` by `Suspended` (once the coroutine has parked and its core is free), by
/// `Resumed` (a `resume` cancelled it before the task parked) or by `Finished` (the task ended
/// first); an accepted `resume` by `Resumed` or `Finished`; an accepted `kill` by
/// `Finished { outcome: Killed, .. }`. `Finished` is always the last event of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// The task is parked at a yield point and its core is free.
    Suspended {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// From the suspend request to the coroutine having parked (and left its worker).
        latency: Duration,
        /// What the task was doing when it parked (as its operators declared).
        phase: TaskPhase,
    },
    /// The task runs again.
    Resumed {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// From the resume request to the coroutine running again.
        latency: Duration,
    },
    /// The task ended; it is forgotten by the runtime.
    Finished {
        /// Task.
        id: TaskId,
        /// Attempt of the task.
        attempt: u32,
        /// How it ended.
        outcome: TaskOutcome,
        /// Records processed (for a killed task: the work lost).
        records: u64,
        /// Malformed input records skipped.
        skipped: u64,
        /// The executor whose shuffle blocks could not be fetched, if the task failed that way.
        fetch_failed: Option<String>,
        /// Source timestamps of the records read (a successful task whose source has them).
        event_times: Option<EventTimes>,
        /// From launch to end, including time queued and suspended.
        elapsed: Duration,
        /// Where that time went.
        timing: TaskTiming,
    },
}

impl RuntimeEvent {
    /// The task the event is about.
    pub fn id(&self) -> TaskId {
        match self {
            RuntimeEvent::Suspended { id, .. }
            | RuntimeEvent::Resumed { id, .. }
            | RuntimeEvent::Finished { id, .. } => *id,
        }
    }
}

/// Why a runtime request was refused. Refusals change nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The task was never launched here, or it has finished (its `Finished` event is already on
    /// the channel).
    #[error("task {id} is not known to this executor (never launched, or finished)")]
    UnknownTask {
        /// Task.
        id: TaskId,
    },
    /// `launch` of a task that is still alive here (any attempt).
    #[error("task {id} is already running on this executor (attempt {attempt})")]
    AlreadyRunning {
        /// Task.
        id: TaskId,
        /// Attempt that is alive.
        attempt: u32,
    },
    /// `suspend` of a task that is not running (queued, suspending, suspended or resuming).
    #[error("task {id} cannot be suspended: it is {state}")]
    NotRunning {
        /// Task.
        id: TaskId,
        /// What the task is doing instead.
        state: TaskState,
    },
    /// `resume` of a task that is neither suspended nor being suspended.
    #[error("task {id} cannot be resumed: it is {state}")]
    NotSuspended {
        /// Task.
        id: TaskId,
        /// What the task is doing instead.
        state: TaskState,
    },
    /// `suspend` or `resume` of a task that is being killed.
    #[error("task {id} is being killed")]
    Killing {
        /// Task.
        id: TaskId,
    },
    /// `launch_after` a victim whose core another launch already waits for.
    #[error("task {victim}'s core is already promised to task {heir}")]
    VictimTaken {
        /// The preemption victim.
        victim: TaskId,
        /// The launch already waiting for its core.
        heir: TaskId,
    },
    /// A request naming another attempt of the task than the one alive here.
    #[error("task {id} runs here as attempt {alive}, not attempt {asked}")]
    OtherAttempt {
        /// Task.
        id: TaskId,
        /// The attempt alive here.
        alive: u32,
        /// The attempt the request named.
        asked: u32,
    },
}

impl RuntimeError {
    /// Stable low-cardinality label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            RuntimeError::UnknownTask { .. } => "unknown_task",
            RuntimeError::AlreadyRunning { .. } => "already_running",
            RuntimeError::NotRunning { .. } => "not_running",
            RuntimeError::NotSuspended { .. } => "not_suspended",
            RuntimeError::Killing { .. } => "killing",
            RuntimeError::VictimTaken { .. } => "victim_taken",
            RuntimeError::OtherAttempt { .. } => "other_attempt",
        }
    }
}

/// What a live task is doing, as seen by [`TaskRuntime::snapshot`](super::TaskRuntime::snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Launched, waiting for a free core.
    Queued,
    /// On a core.
    Running,
    /// Asked to suspend; still holds its core until it has parked.
    Suspending,
    /// Parked at a yield point; holds no core.
    Suspended,
    /// Asked to resume; waiting for a core or being woken on one.
    Resuming,
}

impl TaskState {
    /// Lower-case name for messages and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Suspending => "suspending",
            TaskState::Suspended => "suspended",
            TaskState::Resuming => "resuming",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A count per job kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// Stream tasks.
    pub stream: usize,
    /// Batch tasks.
    pub batch: usize,
}

impl KindCounts {
    /// Count for `kind`.
    pub fn get(&self, kind: JobKind) -> usize {
        match kind {
            JobKind::Stream => self.stream,
            JobKind::Batch => self.batch,
        }
    }

    /// Sum over kinds.
    pub fn total(&self) -> usize {
        self.stream + self.batch
    }

    pub(crate) fn add(&mut self, kind: JobKind) {
        match kind {
            JobKind::Stream => self.stream += 1,
            JobKind::Batch => self.batch += 1,
        }
    }
}

/// One live task in a [`RuntimeSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSummary {
    /// Task.
    pub id: TaskId,
    /// Attempt.
    pub attempt: u32,
    /// Job kind.
    pub kind: JobKind,
    /// What it is doing.
    pub state: TaskState,
    /// Whether it occupies a core (running, suspending, or woken on a core to resume or die).
    pub holds_core: bool,
    /// Records processed, as last published by the task.
    pub records: u64,
    /// Bytes the task declared it holds.
    pub retained_bytes: u64,
}

/// Point-in-time view of a runtime, for heartbeats and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeSnapshot {
    /// Cores (may workers) the runtime places tasks on.
    pub cores: usize,
    /// Tasks occupying a core, by kind.
    pub running: KindCounts,
    /// Tasks parked without a core (suspended, or resumed but waiting for a core), by kind.
    pub suspended: KindCounts,
    /// Tasks launched but waiting for their first core, by kind.
    pub queued: KindCounts,
    /// Bytes retained by tasks that are parked without a core.
    pub suspended_retained_bytes: u64,
    /// Every live task, ordered by id.
    pub tasks: Vec<TaskSummary>,
}
