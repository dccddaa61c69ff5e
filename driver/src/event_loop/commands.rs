//! Carrying out the scheduler's commands in the event loop: launches (with their parameters,
//! checked against the message limit), resumes and kills become messages on the executors'
//! outboxes; a drop, an abandoned task or a launch that cannot go out becomes [`Work`] on the
//! loop's own queue, never a call back into the scheduler.

use super::{Conn, EventLoop, LAUNCH_OVERHEAD, Work};
use crate::jobs::LaunchBlocked;
use crate::scheduler::{Command, Event, PreemptHow};
use neptune_core::ids::{JobKind, TaskId};
use neptune_proto::{DriverMessage, TaskKey, driver_message};
use std::time::Instant;
use tokio::sync::mpsc::error::TrySendError;

impl EventLoop {
    /// Hand `ev` to the scheduler and carry out its commands.
    pub(super) fn schedule(&mut self, ev: Event) {
        let t0 = Instant::now();
        let now = self.now();
        let cmds = self.scheduler.handle(now, ev);
        self.metrics.decision.observe(t0.elapsed().as_secs_f64());
        for c in cmds {
            self.dispatch(c);
        }
    }

    /// Carry out one scheduler command: send it, or queue what follows from it.
    pub(super) fn dispatch(&mut self, cmd: Command) {
        match cmd {
            Command::Launch {
                task,
                executor,
                preempt,
            } => {
                let conns = &self.conns;
                let params = self
                    .jobs
                    .params_for(task.id, |e| conns.get(e).map(|c| c.block_addr.clone()));
                let params = match params {
                    Ok(p) if p.len() as u64 + LAUNCH_OVERHEAD > self.cfg.max_message_bytes => {
                        let why = format!(
                            "launch parameters of task {} are {} bytes, too many for a message \
                             of grpc.max_message_bytes = {}",
                            task.id,
                            p.len(),
                            self.cfg.max_message_bytes
                        );
                        let step = self.jobs.fail_job(task.id.job as usize, &why);
                        self.work.push_back(Work::Step(step));
                        Err(LaunchBlocked::RunOver)
                    }
                    other => other,
                };
                let params = match params {
                    Ok(params) => params,
                    Err(blocked) => {
                        // An input was lost after the task was queued (hand it back until it is
                        // recomputed), or its run is over (drop it).
                        tracing::debug!(task = %task.id, %blocked, "task not launched");
                        let gone = match blocked {
                            LaunchBlocked::ExecutorGone(e) => Some(e),
                            _ => None,
                        };
                        self.work.push_back(Work::LaunchBlocked {
                            id: task.id,
                            attempt: task.attempt,
                            executor,
                            gone,
                        });
                        return;
                    }
                };
                let launch = neptune_proto::Launch {
                    task: Some(TaskKey::new(task.id, task.attempt)),
                    stream: task.kind == JobKind::Stream,
                    preempt: preempt.map(|p| neptune_proto::Preempt {
                        task: Some(TaskKey::new(p.task, self.attempt_of(p.task))),
                        kill: p.how == PreemptHow::Kill,
                    }),
                    params,
                };
                self.send_to(&executor, driver_message::Msg::Launch(launch));
                if task.kind == JobKind::Stream {
                    let now = self.now();
                    self.attribution.launched(task.id, task.attempt, now);
                }
            }
            Command::Suspend {
                task,
                attempt,
                executor,
            } => {
                let key = TaskKey::new(task, attempt);
                self.send_to(&executor, driver_message::Msg::Suspend(key));
            }
            Command::Resume { task, executor } => {
                let key = TaskKey::new(task, self.attempt_of(task));
                self.send_to(&executor, driver_message::Msg::Resume(key));
            }
            Command::Kill {
                task,
                attempt,
                executor,
            } => {
                let key = TaskKey::new(task, attempt);
                self.send_to(&executor, driver_message::Msg::Kill(key));
            }
            Command::DropExecutor { id, silent_for } => {
                tracing::warn!(executor = %id, ?silent_for, "executor missed heartbeats: dropping it");
                self.work.push_back(Work::Lose {
                    id,
                    reason: format!("no heartbeat for {silent_for:?}"),
                    notify: true,
                });
            }
            Command::ExecutorSuspect { id, task, attempt } => {
                tracing::warn!(executor = %id, %task, attempt, timeout = ?self.cfg.scheduler.launch_ack_timeout, "launch not acknowledged: task re-queued, executor suspect");
                self.metrics.launch_ack_timeouts.inc();
            }
            Command::Requeued { task, reason } => {
                tracing::debug!(%task, ?reason, "task re-queued");
            }
            Command::TaskAbandoned {
                task,
                failures,
                reason,
            } => {
                let why = format!("task {task} failed {failures} times; last error: {reason}");
                let step = self.jobs.fail_job(task.job as usize, &why);
                self.work.push_back(Work::Step(step));
            }
        }
    }

    pub(super) fn attempt_of(&self, task: TaskId) -> u32 {
        self.scheduler.attempt_of(task).unwrap_or(0)
    }

    /// Queue `msg` for executor `executor`.
    pub(super) fn send_to(&mut self, executor: &str, msg: driver_message::Msg) {
        match self.conns.get_mut(executor) {
            Some(c) => {
                let msg = DriverMessage { msg: Some(msg) };
                if let Some(lose) = push(executor, c, msg) {
                    self.work.push_back(lose);
                }
            }
            None => tracing::warn!(executor, "command for an executor that is gone"),
        }
    }

    /// Queue `msg` for every executor.
    pub(super) fn send_all(&mut self, msg: &driver_message::Msg) {
        let mut lost = Vec::new();
        for (id, c) in &mut self.conns {
            let m = DriverMessage {
                msg: Some(msg.clone()),
            };
            lost.extend(push(id, c, m));
        }
        self.work.extend(lost);
    }
}

/// Queue `msg` on `c`'s outbox. A closed outbox means the session ended (its Disconnected
/// event is on its way); a full one means the executor does not read its session: it is lost.
pub(super) fn push(id: &str, c: &mut Conn, msg: DriverMessage) -> Option<Work> {
    if c.stalled {
        return None;
    }
    match c.outbox.try_send(Ok(msg)) {
        Ok(()) | Err(TrySendError::Closed(_)) => None,
        Err(TrySendError::Full(_)) => {
            c.stalled = true;
            Some(Work::Lose {
                id: id.to_string(),
                reason: format!(
                    "it does not read its session ({} messages waiting)",
                    crate::server::OUTBOX_CAPACITY
                ),
                notify: false,
            })
        }
    }
}

/// The message that hands every executor version `version` of broadcast `name`.
pub(super) fn broadcast_msg(name: &str, version: u64, bytes: &[u8]) -> driver_message::Msg {
    driver_message::Msg::Broadcast(neptune_proto::Broadcast {
        name: name.to_string(),
        version,
        value: bytes.to_vec(),
    })
}
