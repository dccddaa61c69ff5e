//! The task runtime: runs each task on its own stackful `may` coroutine, one running task per
//! core, and suspends, resumes and kills tasks at their yield points.
//!
//! It is not a scheduler: the driver decides what runs; the runtime only keeps the executor's
//! promise that a core is handed over exactly when its task has really let go of it.
//!
//! # Model
//! `cores` may workers; each is one core. A task occupies one worker while it runs and none while
//! it is parked. Launches and resumes that find no idle worker wait in a queue and get the next
//! worker that frees up (kill wake-ups first, then stream tasks, then the rest in order). A
//! preempting launch ("suspend batch task X, run stream task S") is instead *promised* X's core
//! (`launch_after`): the step that frees it — X's confirm coroutine, or X ending — reports X's
//! outcome and places S on that worker at once, so S neither waits for a round trip through the
//! executor's session loop nor reports anything before X's outcome (the driver's contract). All bookkeeping is a synchronous state machine (`table.rs`) under one mutex;
//! the may glue (`coroutines.rs`) only carries out its decisions.
//!
//! Suspension: `suspend` sets the task's control state to SUSPEND. At its next yield point the
//! task commits to parking and, *before* parking, spawns a tiny "confirm" coroutine onto its own
//! worker's queue. may runs that coroutine only after the task has left the worker, so when it
//! runs the park is real: it frees the core, sends `Suspended` (latency = request → parked) and
//! hands the core on. Resume and kill wake the task through a "wake" coroutine spawned onto the
//! worker the task is given, which unparks it from there.
//!
//! # may 0.3.51 hazards and how they are avoided
//! 1. *Unpark racing park, then exit with the last handle, livelocks in `Park::drop`.* A task's
//!    handle stays in the table until the task has finished, and the task's last act is one
//!    `yield_now()`, so its exit never runs inside the `Park::subscribe` call that resumed it.
//! 2. *Coroutines spawned or unparked from non-worker threads wait in an injection queue that a
//!    busy worker never drains.* Coroutines are never churned with `yield_now`; tasks run until
//!    they park or end. No coroutine is ever unparked from a tokio thread: every placement is a
//!    spawn with `Builder::id(worker)` onto a worker the table knows to be idle (or about to be,
//!    as the confirm coroutine is queued behind its task), and wake-ups are done by a helper
//!    running on that worker, so may queues the woken task locally there. may's `work_steal`
//!    feature is off (see `Cargo.toml`) so nothing moves a coroutine to another worker behind
//!    the table's back; were it turned on again by feature unification, tasks would still run
//!    and finish, but a stolen task could delay a task placed on its worker.
//! 3. *Thread-locals are unsound in coroutines; blocking calls stall a worker.* The danger is a
//!    thread-local's address cached across a park that resumes on another thread; the runtime's
//!    coroutine code declares none and reaches them only inside calls that never park (std's
//!    panic machinery, tokio's channel waker, `tracing` on failure paths). It blocks only on the
//!    table mutex, held for microseconds and never across a park or spawn. No timed park is used
//!    (may would resume the coroutine on its timer thread). Task bodies must follow the same
//!    rules: `coroutine_local!` instead of `thread_local!`, no blocking channel receives.
//!
//! # Races
//! * *Resume before the task parked* (still running toward its yield point): the request is
//!   cancelled, the task keeps its core and never parks; `Resumed` is sent at once and no
//!   `Suspended`. If the task already committed to parking, it is woken on the core it still
//!   holds; its park loop re-reads the control state, so a wake-up that arrives before the park
//!   is not lost (may's park keeps a permit) and a stale one only re-parks.
//! * *Kill while suspended*: the task gets a core (first in line), is woken, sees KILL at its
//!   yield point and unwinds; `Finished(Killed)` follows. *Kill while parking*: the confirm
//!   coroutine sees KILL and wakes the task on its core instead of freeing it. *Kill racing
//!   suspend*: kill wins; a later suspend or resume is refused with `Killing`.
//! * *Finished as a suspend arrives*: if the task has ended, `suspend` returns `UnknownTask`
//!   (its `Finished` is already on the channel); if the suspend was accepted and the task ends
//!   before reaching a yield point, only `Finished` is sent. The driver is never told a finished
//!   task was suspended.
//!
//! # Lifetime
//! Tasks hold the runtime's state: dropping every `TaskRuntime` handle does not stop them; kill
//! them first. A parked task needs a core to die (unwinding drops its state), so killing it
//! while every core is busy completes when the next core frees up, ahead of any other waiter.
//!
//! # Process-wide configuration
//! may's worker count, stack size and pinning are process-global and fixed at the first spawn.
//! The first `TaskRuntime` configures them; a later one asking for a different `cores` gets the
//! existing worker count (with a warning) and accounts by it. Runtimes sharing a process also
//! share the workers without knowing of each other, so an executor process holds one runtime.

mod coroutines;
mod table;
mod types;

pub use coroutines::STACK_BYTES;
pub use types::{
    KindCounts, RuntimeError, RuntimeEvent, RuntimeSnapshot, Tally, TaskBody, TaskOutcome,
    TaskState, TaskSummary, TaskTiming,
};

use coroutines::{Shared, configure, perform, set_worker_nice};
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::state::Broadcasts;
use std::sync::Arc;
use std::time::Instant;
use table::Table;
use tokio::sync::mpsc::UnboundedSender;

/// Handle to the task runtime of one executor. Cheap to clone; all clones drive the same tasks.
/// Every method returns without waiting for coroutines and may be called from any thread.
#[derive(Clone)]
pub struct TaskRuntime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TaskRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRuntime")
            .field("cores", &self.shared.lock().cores())
            .finish()
    }
}

impl TaskRuntime {
    /// A runtime running at most `cores` tasks at once, sending its events to `events`.
    ///
    /// The first runtime in a process configures may's (process-wide) worker pool with `cores`
    /// workers; see the module docs for later runtimes.
    pub fn new(
        cores: usize,
        broadcasts: Arc<Broadcasts>,
        events: UnboundedSender<RuntimeEvent>,
    ) -> Self {
        let cores = configure(cores);
        Self {
            shared: Arc::new(Shared::new(Table::new(cores, events), broadcasts)),
        }
    }

    /// Give the task worker threads the OS nice value `nice` (`executor.worker_nice`; 0: leave
    /// them be). Process-wide and once, like the workers themselves.
    pub fn set_worker_nice(&self, nice: i32) {
        set_worker_nice(self.shared.lock().cores(), nice);
    }

    /// Start `body` as task `id`, now if a core is idle, otherwise as soon as one frees up.
    ///
    /// # Errors
    /// [`RuntimeError::AlreadyRunning`] if a task `id` (any attempt) is still alive here.
    pub fn launch(
        &self,
        id: TaskId,
        attempt: u32,
        kind: JobKind,
        body: TaskBody,
    ) -> Result<(), RuntimeError> {
        self.launch_received(id, attempt, kind, body, Instant::now())
    }

    /// [`launch`](Self::launch) of a launch that reached the executor at `received_at` (it may
    /// have waited for its preemption victim since): the `Finished` event's
    /// [`TaskTiming`] counts from it.
    ///
    /// # Errors
    /// As [`launch`](Self::launch).
    pub fn launch_received(
        &self,
        id: TaskId,
        attempt: u32,
        kind: JobKind,
        body: TaskBody,
        received_at: Instant,
    ) -> Result<(), RuntimeError> {
        let actions = self
            .shared
            .lock()
            .launch(id, attempt, kind, body, received_at)?;
        perform(&self.shared, actions);
        Ok(())
    }

    /// Launch task `id` onto the core of `victim`, whose suspension or kill was just requested:
    /// it starts there the moment the victim has let go of the core, on the worker that ran the
    /// victim, without a round trip through the caller; the victim's `Suspended` or `Finished`
    /// event precedes every event of `id`. If `victim` holds no core (it ended meanwhile), this
    /// is [`launch_received`](Self::launch_received).
    ///
    /// # Errors
    /// As [`launch`](Self::launch), and [`RuntimeError::VictimTaken`] if another launch already
    /// waits for `victim`'s core.
    pub fn launch_after(
        &self,
        victim: TaskId,
        id: TaskId,
        attempt: u32,
        kind: JobKind,
        body: TaskBody,
        received_at: Instant,
    ) -> Result<(), RuntimeError> {
        let actions =
            self.shared
                .lock()
                .launch_after(victim, id, attempt, kind, body, received_at)?;
        perform(&self.shared, actions);
        Ok(())
    }

    /// Ask running task `id` to park at its next yield point. `requested_at` is when the request
    /// reached the executor; the `Suspended` event's latency is measured from it.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownTask`] if it is not alive (e.g. it just finished),
    /// [`RuntimeError::NotRunning`] if it is queued, suspending, suspended or resuming,
    /// [`RuntimeError::Killing`] if it is being killed.
    pub fn suspend(&self, id: TaskId, requested_at: Instant) -> Result<(), RuntimeError> {
        self.shared.lock().suspend(id, requested_at)
    }

    /// [`suspend`](Self::suspend) of attempt `attempt` of task `id`, leaving its core idle once
    /// it parked (the driver's standalone `Suspend`, ahead of a micro-batch): no launch waits
    /// for that core, so it goes to whatever waits for one, or stays idle.
    ///
    /// # Errors
    /// As [`suspend`](Self::suspend), and [`RuntimeError::OtherAttempt`] if another attempt of
    /// the task is alive here.
    pub fn suspend_attempt(
        &self,
        id: TaskId,
        attempt: u32,
        requested_at: Instant,
    ) -> Result<(), RuntimeError> {
        self.shared
            .lock()
            .suspend_attempt(id, attempt, requested_at)
    }

    /// Let task `id` run again: cancels a suspension not yet reached, or puts a parked task back
    /// on a core (waiting for one if none is idle).
    ///
    /// # Errors
    /// [`RuntimeError::UnknownTask`], [`RuntimeError::NotSuspended`] if it is neither suspended
    /// nor suspending, [`RuntimeError::Killing`] if it is being killed.
    pub fn resume(&self, id: TaskId, requested_at: Instant) -> Result<(), RuntimeError> {
        let actions = self.shared.lock().resume(id, requested_at)?;
        perform(&self.shared, actions);
        Ok(())
    }

    /// Kill task `id`, running, suspended or queued. Idempotent: exactly one
    /// `Finished { outcome: Killed, .. }` follows.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownTask`] if it is not alive.
    pub fn kill(&self, id: TaskId) -> Result<(), RuntimeError> {
        let actions = self.shared.lock().kill(id)?;
        perform(&self.shared, actions);
        Ok(())
    }

    /// Counts by kind, retained bytes of parked tasks, and every live task.
    pub fn snapshot(&self) -> RuntimeSnapshot {
        self.shared.lock().snapshot()
    }
}

#[cfg(test)]
mod tests;
