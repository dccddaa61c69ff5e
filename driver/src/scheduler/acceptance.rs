//! Which task events the scheduler applies: the *holder rule*. A task event counts only if it
//! comes from the executor that holds the task's current attempt, in a state where that event can
//! happen (a suspension only while one was asked for, a resumption only while one is pending).
//! [`Scheduler::check`] answers without changing anything, so the driver can refuse an update
//! before it touches the job manager or any total; the handlers apply the same rule.

use super::executors::Seq;
use super::protocol::{Event, PreemptHow};
use super::{Scheduler, TaskState};
use neptune_core::ids::TaskId;

/// Why a task event is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// The reporting executor is not registered (never was, or was dropped).
    UnknownExecutor,
    /// No such task: never submitted, or it ended already (a duplicate).
    UnknownTask,
    /// The task is not placed on the reporting executor (queued, or on another one).
    NotHolder,
    /// The event names another attempt than the task's current one.
    StaleAttempt,
    /// The task was launched with a preemption whose victim has not reported yet.
    BeforeVictim,
    /// A suspension or resumption the scheduler did not ask for.
    NotAsked,
}

impl Ignored {
    /// Stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::UnknownExecutor => "unknown_executor",
            Ignored::UnknownTask => "unknown_task",
            Ignored::NotHolder => "not_holder",
            Ignored::StaleAttempt => "stale_attempt",
            Ignored::BeforeVictim => "before_victim",
            Ignored::NotAsked => "not_asked",
        }
    }

    /// Every reason, for pre-registering metric series.
    pub const ALL: [Ignored; 6] = [
        Ignored::UnknownExecutor,
        Ignored::UnknownTask,
        Ignored::NotHolder,
        Ignored::StaleAttempt,
        Ignored::BeforeVictim,
        Ignored::NotAsked,
    ];
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Scheduler {
    /// Whether [`handle`](Scheduler::handle) would apply `event`. Events that are not about one
    /// task (registrations, heartbeats, submissions, ticks, cancellations) are always `Ok`.
    ///
    /// # Errors
    /// [`Ignored`] saying why the task event would be ignored.
    pub fn check(&self, event: &Event) -> Result<(), Ignored> {
        if let Event::LaunchCancelled {
            id,
            attempt,
            executor,
        } = event
        {
            return self.launched(*id, *attempt, executor).map(|_| ());
        }
        let Some((id, attempt, executor)) = event.task_report() else {
            return Ok(());
        };
        match event {
            // Also a late one, of a launch that timed out on that executor (it clears its
            // suspicion; it changes no task).
            Event::TaskAcknowledged { .. } => match self.launched(id, attempt, executor) {
                Ok(_) => Ok(()),
                Err(_) if self.late_ack(id, attempt, executor).is_some() => Ok(()),
                Err(why) => Err(why),
            },
            Event::TaskSuspended { .. } => match self.holder(id, attempt, executor)?.1 {
                TaskState::Preempting {
                    how: PreemptHow::Suspend,
                    ..
                }
                | TaskState::Suspending { .. } => Ok(()),
                _ => Err(Ignored::NotAsked),
            },
            Event::TaskResumed { .. } => match self.holder(id, attempt, executor)?.1 {
                TaskState::Running { .. } if self.tasks[&id].resume_pending => Ok(()),
                _ => Err(Ignored::NotAsked),
            },
            // Finished, failed, returned, killed.
            _ => self.holder(id, attempt, executor).map(|_| ()),
        }
    }

    /// The executor and state of task `id` if `executor` holds its attempt `attempt` and may
    /// report on it now (a task waiting for its victim may not).
    pub(super) fn holder(
        &self,
        id: TaskId,
        attempt: u32,
        executor: &str,
    ) -> Result<(Seq, TaskState), Ignored> {
        let (seq, state) = self.launched(id, attempt, executor)?;
        if matches!(state, TaskState::Reserved { .. }) {
            return Err(Ignored::BeforeVictim);
        }
        Ok((seq, state))
    }

    /// As [`holder`](Self::holder), also accepting a task that waits for its victim.
    pub(super) fn launched(
        &self,
        id: TaskId,
        attempt: u32,
        executor: &str,
    ) -> Result<(Seq, TaskState), Ignored> {
        let seq = self
            .execs
            .seq_of(executor)
            .ok_or(Ignored::UnknownExecutor)?;
        let entry = self.tasks.get(&id).ok_or(Ignored::UnknownTask)?;
        if entry.state.exec() != Some(seq) {
            return Err(Ignored::NotHolder);
        }
        if entry.spec.attempt != attempt {
            return Err(Ignored::StaleAttempt);
        }
        Ok((seq, entry.state))
    }
}
