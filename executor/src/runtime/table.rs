//! The runtime's bookkeeping as a synchronous state machine: which task is in which phase, which
//! may worker (core) each task occupies, and who gets the next free core.
//!
//! It knows nothing about coroutines: every transition that needs one returns an [`Action`] the
//! caller performs *after* releasing the lock (spawning or waking a coroutine on a chosen worker).
//! Events are sent under the lock, so the order of a task's events is the order of its
//! transitions. Generic over the wake handle `H` so the transitions are unit-tested without `may`.

use super::types::{
    RuntimeError, RuntimeEvent, Tally, TaskBody, TaskOutcome, TaskState, TaskTiming,
};
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::task::{KILL, SUSPEND, TaskControl};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Where a task is. Phases that carry a `worker` hold that core.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Launched, in `pending`, never ran.
    Queued,
    /// On `worker`.
    Running { worker: usize },
    /// Control state is SUSPEND; the task has not reached a yield point yet.
    SuspendRequested {
        worker: usize,
        requested_at: Instant,
    },
    /// The task reached a yield point and is parking; the confirm coroutine for `epoch`, queued
    /// on `worker` behind the task, frees the core once it runs (i.e. once the task is off it).
    Parking {
        worker: usize,
        requested_at: Instant,
        epoch: u64,
    },
    /// Parked, no core.
    Suspended,
    /// Resume (`requested_at` set) or kill accepted for a parked task, in `pending`.
    WakeQueued { requested_at: Option<Instant> },
    /// A wake-up for the task was sent to `worker`; the task has not run yet.
    Waking {
        worker: usize,
        requested_at: Option<Instant>,
    },
}

impl Phase {
    fn worker(self) -> Option<usize> {
        match self {
            Phase::Running { worker }
            | Phase::SuspendRequested { worker, .. }
            | Phase::Parking { worker, .. }
            | Phase::Waking { worker, .. } => Some(worker),
            Phase::Queued | Phase::Suspended | Phase::WakeQueued { .. } => None,
        }
    }

    fn public(self) -> TaskState {
        match self {
            Phase::Queued => TaskState::Queued,
            Phase::Running { .. } => TaskState::Running,
            Phase::SuspendRequested { .. } | Phase::Parking { .. } => TaskState::Suspending,
            Phase::Suspended => TaskState::Suspended,
            Phase::WakeQueued { .. } | Phase::Waking { .. } => TaskState::Resuming,
        }
    }
}

struct Entry<H> {
    attempt: u32,
    kind: JobKind,
    /// Unique per launch, so late helpers of an earlier attempt never touch a new one.
    serial: u64,
    control: Arc<TaskControl>,
    /// When the launch reached the executor.
    launched_at: Instant,
    /// When the task was first given a core.
    granted_at: Option<Instant>,
    phase: Phase,
    /// Number of park commitments so far; names the confirm coroutine of each.
    epoch: u64,
    body: Option<TaskBody>,
    /// The task coroutine's handle, stored by the coroutine itself before its first yield point.
    handle: Option<H>,
}

/// Everything a new task coroutine needs.
pub(crate) struct StartTask {
    pub id: TaskId,
    pub attempt: u32,
    pub kind: JobKind,
    pub serial: u64,
    pub control: Arc<TaskControl>,
    pub body: TaskBody,
}

/// Work for the caller once the lock is released.
pub(crate) enum Action<H> {
    /// Spawn the task's coroutine on `worker`.
    Start { worker: usize, task: StartTask },
    /// Unpark the task's coroutine *from* `worker`, so that it runs there.
    Wake { worker: usize, handle: H },
}

/// Answer to a task that found SUSPEND at a yield point.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Park now; first queue the confirm coroutine for `epoch` on `worker`.
    Park { worker: usize, epoch: u64 },
    /// Already committed (a stale wake-up): park again.
    Wait,
    /// The request changed meanwhile: read the control state again.
    Recheck,
}

pub(crate) struct Table<H> {
    entries: HashMap<TaskId, Entry<H>>,
    /// Occupant of each worker (core); `None` means the worker is idle.
    workers: Vec<Option<TaskId>>,
    /// Launches, resumes and kill wake-ups waiting for a core.
    pending: VecDeque<TaskId>,
    /// Launches waiting for the core of one task, their preemption victim (victim → heir): not
    /// in `pending`; the victim's core goes to its heir the moment the victim lets go of it.
    heirs: HashMap<TaskId, TaskId>,
    next_serial: u64,
    events: UnboundedSender<RuntimeEvent>,
}

impl<H: Clone> Table<H> {
    pub fn new(cores: usize, events: UnboundedSender<RuntimeEvent>) -> Self {
        Self {
            entries: HashMap::new(),
            workers: vec![None; cores],
            pending: VecDeque::new(),
            heirs: HashMap::new(),
            next_serial: 0,
            events,
        }
    }

    fn emit(&self, event: RuntimeEvent) {
        // A closed channel means the executor is shutting down; nobody is left to tell.
        let _ = self.events.send(event);
    }

    fn entry(&mut self, id: TaskId) -> Result<&mut Entry<H>, RuntimeError> {
        self.entries
            .get_mut(&id)
            .ok_or(RuntimeError::UnknownTask { id })
    }

    /// The entry for `id` if it is still the launch `serial`.
    fn live(&mut self, id: TaskId, serial: u64) -> Option<&mut Entry<H>> {
        self.entries.get_mut(&id).filter(|e| e.serial == serial)
    }

    pub fn launch(
        &mut self,
        id: TaskId,
        attempt: u32,
        kind: JobKind,
        body: TaskBody,
        received_at: Instant,
    ) -> Result<Vec<Action<H>>, RuntimeError> {
        self.enter(id, attempt, kind, body, received_at)?;
        self.pending.push_back(id);
        Ok(self.dispatch())
    }

    /// Launch `id` onto the core of `victim` (being suspended or killed for it): it starts on
    /// that core the moment the victim has let go of it — in the same step that reports the
    /// victim's outcome, so the victim's event always precedes any of the heir's. A victim that
    /// holds no core (it ended meanwhile) leaves its heir to the ordinary queue.
    ///
    /// # Errors
    /// [`RuntimeError::AlreadyRunning`] as [`launch`](Self::launch);
    /// [`RuntimeError::VictimTaken`] if another launch already waits for `victim`'s core.
    pub fn launch_after(
        &mut self,
        victim: TaskId,
        id: TaskId,
        attempt: u32,
        kind: JobKind,
        body: TaskBody,
        received_at: Instant,
    ) -> Result<Vec<Action<H>>, RuntimeError> {
        let holds_core = self
            .entries
            .get(&victim)
            .is_some_and(|v| v.phase.worker().is_some());
        if !holds_core {
            return self.launch(id, attempt, kind, body, received_at);
        }
        if let Some(&heir) = self.heirs.get(&victim) {
            return Err(RuntimeError::VictimTaken { victim, heir });
        }
        self.enter(id, attempt, kind, body, received_at)?;
        self.heirs.insert(victim, id);
        Ok(Vec::new())
    }

    /// A new entry for a launch, in phase `Queued` (not yet in any queue).
    fn enter(
        &mut self,
        id: TaskId,
        attempt: u32,
        kind: JobKind,
        body: TaskBody,
        received_at: Instant,
    ) -> Result<(), RuntimeError> {
        if let Some(e) = self.entries.get(&id) {
            return Err(RuntimeError::AlreadyRunning {
                id,
                attempt: e.attempt,
            });
        }
        self.next_serial += 1;
        let entry = Entry {
            attempt,
            kind,
            serial: self.next_serial,
            control: Arc::new(TaskControl::new()),
            launched_at: received_at,
            granted_at: None,
            phase: Phase::Queued,
            epoch: 0,
            body: Some(body),
            handle: None,
        };
        self.entries.insert(id, entry);
        Ok(())
    }

    /// `victim` let go of `worker` (or, with `None`, ended holding no core): its heir, if any,
    /// takes the core, ahead of everything pending.
    fn inherit(&mut self, victim: TaskId, worker: Option<usize>) -> Vec<Action<H>> {
        let Some(heir) = self.heirs.remove(&victim) else {
            return Vec::new();
        };
        match worker {
            Some(w) => self.place(heir, w).into_iter().collect(),
            None => {
                self.pending.push_back(heir);
                Vec::new()
            }
        }
    }

    /// [`suspend`](Self::suspend) of attempt `attempt` only (a standalone suspension names it).
    pub fn suspend_attempt(
        &mut self,
        id: TaskId,
        attempt: u32,
        requested_at: Instant,
    ) -> Result<(), RuntimeError> {
        let alive = self.entry(id)?.attempt;
        if alive != attempt {
            return Err(RuntimeError::OtherAttempt {
                id,
                alive,
                asked: attempt,
            });
        }
        self.suspend(id, requested_at)
    }

    pub fn suspend(&mut self, id: TaskId, requested_at: Instant) -> Result<(), RuntimeError> {
        let e = self.entry(id)?;
        if e.control.state() == KILL {
            return Err(RuntimeError::Killing { id });
        }
        match e.phase {
            Phase::Running { worker } if e.control.request_suspend() => {
                e.phase = Phase::SuspendRequested {
                    worker,
                    requested_at,
                };
                Ok(())
            }
            other => Err(RuntimeError::NotRunning {
                id,
                state: other.public(),
            }),
        }
    }

    pub fn resume(
        &mut self,
        id: TaskId,
        requested_at: Instant,
    ) -> Result<Vec<Action<H>>, RuntimeError> {
        let e = self.entry(id)?;
        if e.control.state() == KILL {
            return Err(RuntimeError::Killing { id });
        }
        match e.phase {
            Phase::SuspendRequested { worker, .. } => {
                // The task never reached a yield point: cancel the request; it keeps its core.
                e.control.request_resume();
                e.phase = Phase::Running { worker };
                let event = RuntimeEvent::Resumed {
                    id,
                    attempt: e.attempt,
                    latency: requested_at.elapsed(),
                };
                self.emit(event);
                Ok(Vec::new())
            }
            Phase::Parking { worker, .. } => {
                // Parked or about to: it still owns `worker`, so wake it there. If it sees RUN
                // before parking, the wake-up is stale and its park loop absorbs it.
                e.control.request_resume();
                e.phase = Phase::Waking {
                    worker,
                    requested_at: Some(requested_at),
                };
                Ok(e.handle
                    .clone()
                    .map(|handle| Action::Wake { worker, handle })
                    .into_iter()
                    .collect())
            }
            Phase::Suspended => {
                // Control stays SUSPEND until a core is found, so a stray wake-up re-parks.
                e.phase = Phase::WakeQueued {
                    requested_at: Some(requested_at),
                };
                self.pending.push_back(id);
                Ok(self.dispatch())
            }
            other => Err(RuntimeError::NotSuspended {
                id,
                state: other.public(),
            }),
        }
    }

    pub fn kill(&mut self, id: TaskId) -> Result<Vec<Action<H>>, RuntimeError> {
        let e = self.entry(id)?;
        if e.control.state() == KILL {
            return Ok(Vec::new()); // idempotent: one Finished(Killed) follows either way
        }
        e.control.request_kill();
        match e.phase {
            Phase::Queued => {
                let e = self.entries.remove(&id).expect("entry checked above");
                self.pending.retain(|p| *p != id);
                self.heirs.retain(|_, heir| *heir != id);
                self.emit(RuntimeEvent::Finished {
                    id,
                    attempt: e.attempt,
                    outcome: TaskOutcome::Killed,
                    records: 0,
                    skipped: 0,
                    fetch_failed: None,
                    event_times: None,
                    elapsed: e.launched_at.elapsed(),
                    timing: TaskTiming::between(e.launched_at, None, None, None, Instant::now()),
                });
                Ok(Vec::new())
            }
            Phase::Suspended => {
                // Dying needs a core (unwinding drops the task's state); kill wake-ups go first.
                e.phase = Phase::WakeQueued { requested_at: None };
                self.pending.push_back(id);
                Ok(self.dispatch())
            }
            // Running ones stop at their next yield point; a parking one is woken by its confirm
            // coroutine; queued or sent wake-ups find KILL when the task runs.
            Phase::Running { .. }
            | Phase::SuspendRequested { .. }
            | Phase::Parking { .. }
            | Phase::WakeQueued { .. }
            | Phase::Waking { .. } => Ok(Vec::new()),
        }
    }

    /// Called by the task coroutine when it starts: remember its handle for wake-ups.
    pub fn set_handle(&mut self, id: TaskId, serial: u64, handle: H) {
        if let Some(e) = self.live(id, serial) {
            e.handle = Some(handle);
        }
    }

    /// Called by the task at a yield point that found SUSPEND.
    pub fn commit_park(&mut self, id: TaskId, serial: u64) -> Commit {
        let Some(e) = self.live(id, serial) else {
            return Commit::Recheck;
        };
        if e.control.state() != SUSPEND {
            return Commit::Recheck;
        }
        match e.phase {
            Phase::SuspendRequested {
                worker,
                requested_at,
            } => {
                e.epoch += 1;
                e.phase = Phase::Parking {
                    worker,
                    requested_at,
                    epoch: e.epoch,
                };
                Commit::Park {
                    worker,
                    epoch: e.epoch,
                }
            }
            Phase::Parking { .. } | Phase::Suspended | Phase::WakeQueued { .. } => Commit::Wait,
            Phase::Queued | Phase::Running { .. } | Phase::Waking { .. } => Commit::Recheck,
        }
    }

    /// Called by the task when it found RUN in its yield hook: it is running again.
    pub fn note_running(&mut self, id: TaskId, serial: u64) {
        let Some(e) = self.live(id, serial) else {
            return;
        };
        if let Phase::Waking {
            worker,
            requested_at,
        } = e.phase
        {
            e.phase = Phase::Running { worker };
            let attempt = e.attempt;
            if let Some(at) = requested_at {
                self.emit(RuntimeEvent::Resumed {
                    id,
                    attempt,
                    latency: at.elapsed(),
                });
            }
        }
    }

    /// Called by the confirm coroutine of `epoch`, which runs on the task's worker only once the
    /// task has left it: the park is real, so the core is free.
    pub fn confirm_parked(&mut self, id: TaskId, serial: u64, epoch: u64) -> Vec<Action<H>> {
        let Some(e) = self.live(id, serial) else {
            return Vec::new();
        };
        let Phase::Parking {
            worker,
            requested_at,
            epoch: committed,
        } = e.phase
        else {
            return Vec::new(); // resumed or killed before parking: nothing to confirm
        };
        if committed != epoch {
            return Vec::new();
        }
        if e.control.state() == KILL {
            // Killed while parking: wake it on the core it still holds so it can unwind.
            e.phase = Phase::Waking {
                worker,
                requested_at: None,
            };
            return e
                .handle
                .clone()
                .map(|handle| Action::Wake { worker, handle })
                .into_iter()
                .collect();
        }
        e.phase = Phase::Suspended;
        let attempt = e.attempt;
        let phase = e.control.phase();
        self.workers[worker] = None;
        self.emit(RuntimeEvent::Suspended {
            id,
            attempt,
            latency: requested_at.elapsed(),
            phase,
        });
        let mut actions = self.inherit(id, Some(worker));
        actions.extend(self.dispatch());
        actions
    }

    /// Called by the task coroutine when its body has returned (or panicked).
    pub fn finish(
        &mut self,
        id: TaskId,
        serial: u64,
        outcome: TaskOutcome,
        tally: Tally,
    ) -> Vec<Action<H>> {
        if self.live(id, serial).is_none() {
            return Vec::new();
        }
        let e = self.entries.remove(&id).expect("entry checked above");
        let freed = e.phase.worker().filter(|&w| self.workers[w] == Some(id));
        if let Some(w) = freed {
            self.workers[w] = None;
        }
        let outcome = if e.control.state() == KILL {
            TaskOutcome::Killed
        } else {
            outcome
        };
        // A fetch failure explains a failure only; a killed or successful task carries none.
        let fetch_failed = match outcome {
            TaskOutcome::Failed(_) => tally.fetch_failed,
            _ => None,
        };
        // Source timestamps describe a success's records only.
        let event_times = match outcome {
            TaskOutcome::Succeeded(_) => tally.event_times,
            _ => None,
        };
        self.emit(RuntimeEvent::Finished {
            id,
            attempt: e.attempt,
            outcome,
            records: tally.records,
            skipped: tally.skipped,
            fetch_failed,
            event_times,
            elapsed: e.launched_at.elapsed(),
            timing: TaskTiming::between(
                e.launched_at,
                e.granted_at,
                tally.started_at,
                tally.first_record_at,
                Instant::now(),
            ),
        });
        let mut actions = self.inherit(id, freed);
        actions.extend(self.dispatch());
        actions
    }

    /// Give free cores to pending work: kill wake-ups first (they free memory and are short),
    /// then stream tasks (latency-sensitive), then the rest in arrival order.
    fn dispatch(&mut self) -> Vec<Action<H>> {
        let mut actions = Vec::new();
        while let Some(worker) = self.workers.iter().position(Option::is_none) {
            let Some(id) = self.pop_pending() else { break };
            if let Some(action) = self.place(id, worker) {
                actions.push(action);
            }
        }
        actions
    }

    fn pop_pending(&mut self) -> Option<TaskId> {
        let rank = |id: &TaskId| {
            let e = &self.entries[id];
            match (e.control.state() == KILL, e.kind) {
                (true, _) => 0,
                (false, JobKind::Stream) => 1,
                (false, JobKind::Batch) => 2,
            }
        };
        let (index, _) = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(i, id)| (rank(id), *i))?;
        self.pending.remove(index)
    }

    fn place(&mut self, id: TaskId, worker: usize) -> Option<Action<H>> {
        let e = self.entries.get_mut(&id)?;
        self.workers[worker] = Some(id);
        match e.phase {
            Phase::Queued => {
                e.phase = Phase::Running { worker };
                e.granted_at = Some(Instant::now());
                let task = StartTask {
                    id,
                    attempt: e.attempt,
                    kind: e.kind,
                    serial: e.serial,
                    control: e.control.clone(),
                    body: e.body.take()?,
                };
                Some(Action::Start { worker, task })
            }
            Phase::WakeQueued { requested_at } => {
                if requested_at.is_some() {
                    // Only now, with a core in hand, may the task see RUN. Fails if killed, and
                    // then the wake-up serves the kill.
                    e.control.request_resume();
                }
                e.phase = Phase::Waking {
                    worker,
                    requested_at,
                };
                e.handle
                    .clone()
                    .map(|handle| Action::Wake { worker, handle })
            }
            _ => {
                self.workers[worker] = None;
                None
            }
        }
    }
}

#[path = "table_snapshot.rs"]
mod snapshot;

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
