//! Event handlers: how each [`Event`](super::Event) moves tasks and executors between states.
//!
//! Placement decisions are not made here: after every event [`dispatch`](super::dispatch) fills
//! whatever slots are free.

use super::executors::Seq;
use super::protocol::{Command, Event, ExecutorMetrics, PreemptHow, RequeueReason, TaskSpec};
use super::{Scheduler, TaskEntry, TaskState};
use neptune_core::ids::{ExecutorId, JobId, JobKind, TaskId};
use std::time::Duration;
use tracing::{debug, warn};

impl Scheduler {
    pub(super) fn on_registered(
        &mut self,
        now: Duration,
        id: ExecutorId,
        cores: u32,
        memory_limit: u64,
        out: &mut Vec<Command>,
    ) {
        if let Some(old) = self.execs.seq_of(&id) {
            debug!(executor = %id, "executor re-registered: its previous incarnation is lost");
            self.remove_executor(old, RequeueReason::ExecutorLost, out);
        }
        self.execs.register(id, cores, memory_limit, now);
    }

    pub(super) fn on_lost(&mut self, id: &str, out: &mut Vec<Command>) {
        match self.execs.seq_of(id) {
            Some(seq) => self.remove_executor(seq, RequeueReason::ExecutorLost, out),
            None => debug!(executor = id, "loss of an unknown executor ignored"),
        }
    }

    pub(super) fn on_heartbeat(&mut self, now: Duration, id: &str, metrics: ExecutorMetrics) {
        match self.execs.seq_of(id) {
            Some(seq) => self.execs.heartbeat(seq, now, metrics),
            None => debug!(executor = id, "heartbeat of an unknown executor ignored"),
        }
    }

    pub(super) fn on_submitted(&mut self, tasks: Vec<TaskSpec>) {
        for spec in tasks {
            if self.tasks.contains_key(&spec.id) {
                warn!(task = %spec.id, "task submitted twice; the second submission is ignored");
                continue;
            }
            let (id, kind) = (spec.id, spec.kind);
            self.tasks.insert(
                id,
                TaskEntry {
                    spec,
                    state: TaskState::Queued,
                    failures: 0,
                    preemptions: 0,
                    protected_until: Duration::ZERO,
                    protected: false,
                    started_at: Duration::ZERO,
                    resume_pending: false,
                    cancelled: false,
                    ack_due: None,
                    suspend_sent: false,
                },
            );
            self.lanes.push_back(id, kind);
        }
    }

    /// The executor of a task event, if the event is current (see the holder rule in
    /// `acceptance.rs`). `None` means stale or forged: ignore the event.
    fn current(&self, id: TaskId, attempt: u32, executor: &str) -> Option<(Seq, TaskState)> {
        match self.holder(id, attempt, executor) {
            Ok(found) => Some(found),
            Err(why) => {
                debug!(task = %id, attempt, executor, %why, "task event ignored");
                None
            }
        }
    }

    /// The task that inherits `state`'s slot, if `state` is a victim of a preemption in flight.
    fn heir(state: TaskState) -> Option<TaskId> {
        match state {
            TaskState::Preempting { by, .. } => Some(by),
            _ => None,
        }
    }

    /// Gives a reserved task the slot its victim just vacated.
    fn inherit_slot(&mut self, heir: TaskId, out: &mut Vec<Command>) {
        let Some(TaskState::Reserved { exec, .. }) = self.tasks.get(&heir).map(|e| e.state) else {
            return;
        };
        self.relocate(heir, TaskState::Running { exec });
        if self.tasks[&heir].cancelled {
            out.push(Command::Kill {
                task: heir,
                attempt: self.tasks[&heir].spec.attempt,
                executor: self.execs.get(exec).name.clone(),
            });
        }
    }

    pub(super) fn on_suspended(
        &mut self,
        id: TaskId,
        attempt: u32,
        executor: &str,
        out: &mut Vec<Command>,
    ) {
        let (exec, heir) = match self.current(id, attempt, executor) {
            Some((
                exec,
                TaskState::Preempting {
                    by,
                    how: PreemptHow::Suspend,
                    ..
                },
            )) => (exec, Some(by)),
            // Suspended ahead of a micro-batch: the slot is free (and reserved for it).
            Some((exec, TaskState::Suspending { .. })) => (exec, None),
            _ => {
                debug!(task = %id, executor, "suspension not asked for ignored");
                return;
            }
        };
        self.totals.suspensions += 1;
        let entry = self.tasks.get_mut(&id).expect("current task");
        entry.preemptions = entry.preemptions.saturating_add(1);
        entry.suspend_sent = false;
        let next = if entry.cancelled {
            TaskState::Killing { exec }
        } else {
            self.next_order += 1;
            TaskState::Suspended {
                exec,
                order: self.next_order,
            }
        };
        self.relocate(id, next);
        if let Some(by) = heir {
            self.inherit_slot(by, out);
        }
    }

    pub(super) fn on_resumed(&mut self, now: Duration, id: TaskId, attempt: u32, executor: &str) {
        let Some((_, TaskState::Running { .. })) = self.current(id, attempt, executor) else {
            return;
        };
        let max = self.cfg.max_suspensions;
        let quantum = self.cfg.quantum;
        let entry = self.tasks.get_mut(&id).expect("current task");
        if !entry.resume_pending {
            return;
        }
        entry.resume_pending = false;
        entry.started_at = now;
        if entry.preemptions > max {
            let until = now + quantum;
            entry.protected_until = until;
            entry.protected = true;
            self.protections.insert((until, id));
        }
        self.totals.resumptions += 1;
        self.refresh(id);
    }

    pub(super) fn on_finished(
        &mut self,
        id: TaskId,
        attempt: u32,
        executor: &str,
        out: &mut Vec<Command>,
    ) {
        let Some((_, state)) = self.current(id, attempt, executor) else {
            return;
        };
        self.forget(id);
        if let Some(heir) = Self::heir(state) {
            self.inherit_slot(heir, out);
        }
    }

    pub(super) fn on_failed(
        &mut self,
        id: TaskId,
        attempt: u32,
        executor: &str,
        reason: String,
        out: &mut Vec<Command>,
    ) {
        let Some((_, state)) = self.current(id, attempt, executor) else {
            return;
        };
        let max = self.cfg.max_task_failures;
        let entry = self.tasks.get_mut(&id).expect("current task");
        entry.failures += 1;
        let failures = entry.failures;
        if entry.cancelled {
            self.forget(id);
        } else if failures >= max {
            warn!(task = %id, failures, %reason, "task abandoned");
            self.forget(id);
            self.totals.abandoned += 1;
            out.push(Command::TaskAbandoned {
                task: id,
                failures,
                reason,
            });
        } else {
            debug!(task = %id, failures, %reason, "task failed; re-queued");
            self.requeue(id, RequeueReason::Failed, out);
        }
        if let Some(heir) = Self::heir(state) {
            self.inherit_slot(heir, out);
        }
    }

    pub(super) fn on_returned(
        &mut self,
        id: TaskId,
        attempt: u32,
        executor: &str,
        out: &mut Vec<Command>,
    ) {
        let Some((_, state)) = self.current(id, attempt, executor) else {
            return;
        };
        debug!(task = %id, "task returned: its inputs are lost");
        self.forget(id);
        if let Some(heir) = Self::heir(state) {
            self.inherit_slot(heir, out);
        }
    }

    pub(super) fn on_launch_cancelled(&mut self, id: TaskId, attempt: u32, executor: &str) {
        let Ok((exec, state)) = self.launched(id, attempt, executor) else {
            debug!(task = %id, executor, "cancelled launch of a task that moved on ignored");
            return;
        };
        debug!(task = %id, "launch cancelled: the task is handed back");
        if let TaskState::Reserved { victim, .. } = state
            && let Some(TaskState::Preempting { exec: at, by, .. }) =
                self.tasks.get(&victim).map(|e| e.state)
            && (at, by) == (exec, id)
        {
            // The preemption went out with the launch, so it never went out: the victim runs on
            // (or goes on parking, if a standalone suspension of it went out before).
            let back = if self.tasks[&victim].suspend_sent {
                TaskState::Suspending { exec }
            } else {
                TaskState::Running { exec }
            };
            self.relocate(victim, back);
        }
        self.forget(id);
    }

    pub(super) fn on_killed(
        &mut self,
        id: TaskId,
        attempt: u32,
        executor: &str,
        records_lost: u64,
        out: &mut Vec<Command>,
    ) {
        let Some((_, state)) = self.current(id, attempt, executor) else {
            return;
        };
        let heir = Self::heir(state);
        if heir.is_some() {
            // A preemptive kill: the work lost is the price of the `kill` policy.
            self.totals.kills += 1;
            self.totals.records_lost = self.totals.records_lost.saturating_add(records_lost);
            let entry = self.tasks.get_mut(&id).expect("current task");
            entry.preemptions = entry.preemptions.saturating_add(1);
        }
        if self.tasks[&id].cancelled {
            self.forget(id);
        } else {
            self.requeue(id, RequeueReason::Killed, out);
        }
        if let Some(heir) = heir {
            self.inherit_slot(heir, out);
        }
    }

    pub(super) fn on_job_cancelled(&mut self, job: JobId, out: &mut Vec<Command>) {
        for id in self.lanes.remove_job(job) {
            self.forget(id);
        }
        let first = TaskId {
            job,
            run: 0,
            stage: 0,
            partition: 0,
        };
        let last = TaskId {
            job,
            run: u64::MAX,
            stage: u32::MAX,
            partition: u32::MAX,
        };
        let placed: Vec<TaskId> = self.tasks.range(first..=last).map(|(id, _)| *id).collect();
        for id in placed {
            let entry = self.tasks.get_mut(&id).expect("task in range");
            if entry.cancelled {
                continue;
            }
            entry.cancelled = true;
            let state = entry.state;
            let kill_on = match state {
                // Killed once its victim's slot is granted (see `inherit_slot`).
                TaskState::Queued | TaskState::Reserved { .. } | TaskState::Killing { .. } => None,
                TaskState::Running { exec }
                | TaskState::Preempting { exec, .. }
                | TaskState::Suspending { exec } => {
                    self.refresh(id);
                    Some(exec)
                }
                TaskState::Suspended { exec, .. } => {
                    self.relocate(id, TaskState::Killing { exec });
                    Some(exec)
                }
            };
            if let Some(exec) = kill_on {
                out.push(Command::Kill {
                    task: id,
                    attempt: self.tasks[&id].spec.attempt,
                    executor: self.execs.get(exec).name.clone(),
                });
            }
        }
    }

    pub(super) fn on_tick(&mut self, now: Duration, out: &mut Vec<Command>) {
        for seq in self.execs.timed_out(now, self.cfg.heartbeat_timeout) {
            let e = self.execs.get(seq);
            warn!(executor = %e.name, "executor missed heartbeats; dropping it");
            out.push(Command::DropExecutor {
                id: e.name.clone(),
                silent_for: now.saturating_sub(e.last_seen),
            });
            self.remove_executor(seq, RequeueReason::HeartbeatTimeout, out);
        }
        self.expire_acks(now, out);
    }

    /// An event from the executor holding the current attempt of its task acknowledges that
    /// launch and clears the executor's suspicion. Stale and forged events acknowledge nothing.
    ///
    /// A late report of a launch that timed out (the task was re-queued meanwhile) also
    /// clears the suspicion; if that stale attempt is still alive on the executor (the report
    /// is not its end), it is killed: the scheduler gave its slot away when it re-queued the
    /// task, and the executor must not run more tasks than it has cores.
    pub(super) fn note_ack(&mut self, event: &Event, out: &mut Vec<Command>) {
        let Some((id, attempt, executor)) = event.task_report() else {
            return;
        };
        let seq = match self.launched(id, attempt, executor) {
            Ok((seq, _)) => {
                if let Some(entry) = self.tasks.get_mut(&id) {
                    entry.ack_due = None;
                }
                seq
            }
            Err(_) => match self.late_ack(id, attempt, executor) {
                Some(seq) => {
                    self.execs.with_mut(seq, |e| {
                        e.timed_out.remove(&(id, attempt));
                    });
                    let alive = matches!(
                        event,
                        Event::TaskAcknowledged { .. }
                            | Event::TaskSuspended { .. }
                            | Event::TaskResumed { .. }
                    );
                    if alive {
                        debug!(task = %id, attempt, executor, "killing a stale attempt that turned up late");
                        out.push(Command::Kill {
                            task: id,
                            attempt,
                            executor: executor.to_string(),
                        });
                    }
                    seq
                }
                None => return,
            },
        };
        if self.execs.get(seq).suspect {
            debug!(
                executor,
                "suspect executor acknowledged a task: no longer suspect"
            );
            self.execs.with_mut(seq, |e| {
                e.suspect = false;
                e.timed_out.clear();
            });
        }
    }

    /// The executor, if `executor` is acknowledging (late) a launch of its own that timed out.
    pub(super) fn late_ack(&self, id: TaskId, attempt: u32, executor: &str) -> Option<Seq> {
        let seq = self.execs.seq_of(executor)?;
        self.execs
            .get(seq)
            .timed_out
            .contains(&(id, attempt))
            .then_some(seq)
    }

    /// Re-queues the running tasks whose launch went unacknowledged past its deadline, and
    /// marks their executors suspect.
    fn expire_acks(&mut self, now: Duration, out: &mut Vec<Command>) {
        while let Some(&(due, id)) = self.acks.first() {
            if due > now {
                break;
            }
            self.acks.pop_first();
            let Some(entry) = self.tasks.get_mut(&id) else {
                continue;
            };
            if entry.ack_due != Some(due) {
                continue;
            }
            entry.ack_due = None;
            let TaskState::Running { exec } = entry.state else {
                continue;
            };
            if entry.cancelled {
                continue;
            }
            let attempt = entry.spec.attempt;
            let name = self.execs.get(exec).name.clone();
            warn!(task = %id, attempt, executor = %name, "launch not acknowledged in time: re-queued, executor suspect");
            self.totals.ack_timeouts += 1;
            self.execs.with_mut(exec, |e| {
                e.suspect = true;
                e.timed_out.insert((id, attempt));
            });
            out.push(Command::ExecutorSuspect {
                id: name,
                task: id,
                attempt,
            });
            self.requeue(id, RequeueReason::AckTimeout, out);
        }
    }

    /// Re-queues every task of the executor (stream tasks ahead of batch tasks, each in id
    /// order, all ahead of what was queued) and removes it.
    fn remove_executor(&mut self, seq: Seq, reason: RequeueReason, out: &mut Vec<Command>) {
        let all = self.execs.get(seq).all_tasks();
        let (stream, batch): (Vec<TaskId>, Vec<TaskId>) = all
            .into_iter()
            .partition(|id| self.tasks[id].spec.kind == JobKind::Stream);
        // Pushed to the front in reverse, so the first pushed ends up last.
        for id in batch.into_iter().rev().chain(stream.into_iter().rev()) {
            if self.tasks[&id].cancelled {
                self.forget(id);
            } else {
                self.requeue(id, reason.clone(), out);
            }
        }
        self.execs.remove(seq);
        self.forget_reserved_on(seq);
    }

    /// Puts a task back at the head of its lane with attempt + 1.
    pub(super) fn requeue(&mut self, id: TaskId, reason: RequeueReason, out: &mut Vec<Command>) {
        self.relocate(id, TaskState::Queued);
        let entry = self.tasks.get_mut(&id).expect("requeueing a known task");
        // Saturates: an executor reporting kills of its own task forever must not wrap it.
        entry.spec.attempt = entry.spec.attempt.saturating_add(1);
        entry.resume_pending = false;
        entry.ack_due = None;
        entry.suspend_sent = false;
        let kind = entry.spec.kind;
        self.lanes.push_front(id, kind);
        self.totals.requeued += 1;
        out.push(Command::Requeued { task: id, reason });
    }
}
