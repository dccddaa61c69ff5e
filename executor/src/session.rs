//! The executor's side of the session with the driver: turns driver messages into task runtime
//! calls (launches carry shuffle input locations in `Launch.params`), and runtime events into
//! task updates (suspension phase, malformed records skipped, fetch failures), plus heartbeats.

use crate::blocks::BlockStore;
use crate::memory;
use crate::metrics::ExecutorMetrics;
use crate::runtime::{RuntimeEvent, TaskBody, TaskOutcome, TaskRuntime};
use neptune_core::app::App;
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::shuffle::ShuffleRead;
use neptune_core::state::Broadcasts;
use neptune_core::task::TaskControl;
use neptune_proto::{
    DriverMessage, ExecutorMessage, Heartbeat, TaskKey, TaskUpdate, driver_message,
    executor_message, task_update,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// What the executor learns about a task from its context (beyond what the runtime reports).
#[derive(Default)]
pub(crate) struct Extras {
    control: Option<Arc<TaskControl>>,
    skipped: u64,
    fetch_failed: Option<String>,
}

pub(crate) struct Running {
    /// Launches waiting for their preemption victim to give up its core, by victim. Launching
    /// only after the victim's outcome keeps the driver's contract (the victim's outcome is
    /// reported before any event of the launched task) and gives the launched task exactly the
    /// core its victim freed, never another queued task's.
    pub(crate) after_victim: HashMap<TaskId, neptune_proto::Launch>,
    pub(crate) app: Arc<App>,
    pub(crate) runtime: TaskRuntime,
    pub(crate) broadcasts: Arc<Broadcasts>,
    pub(crate) metrics: ExecutorMetrics,
    pub(crate) out: mpsc::UnboundedSender<ExecutorMessage>,
    pub(crate) blocks: Arc<BlockStore>,
    pub(crate) receivers: Arc<crate::receivers::Receivers>,
    pub(crate) extras: Arc<Mutex<HashMap<TaskId, Extras>>>,
    pub(crate) spilled_reported: u64,
    /// Broadcast counters already exported as metrics.
    pub(crate) broadcasts_reported: neptune_core::state::BroadcastStats,
}

impl Running {
    fn update(&self, key: TaskKey, state: task_update::State) {
        let u = TaskUpdate {
            task: Some(key),
            state: Some(state),
        };
        let _ = self.out.send(ExecutorMessage {
            msg: Some(executor_message::Msg::Update(u)),
        });
    }

    fn reject(&self, key: TaskKey, reason: String) {
        tracing::debug!(task = %key.id(), %reason, "request rejected");
        self.update(
            key,
            task_update::State::Rejected(neptune_proto::Rejected { reason }),
        );
    }

    pub(crate) fn on_driver_message(&mut self, m: DriverMessage) {
        let now = Instant::now();
        match m.msg {
            Some(driver_message::Msg::Launch(l)) => self.launch(l, now),
            Some(driver_message::Msg::Suspend(k)) => {
                if let Err(e) = self.runtime.suspend(k.id(), now) {
                    self.reject(k, e.to_string());
                }
            }
            Some(driver_message::Msg::Resume(k)) => {
                if let Err(e) = self.runtime.resume(k.id(), now) {
                    self.reject(k, e.to_string());
                }
            }
            Some(driver_message::Msg::Kill(k)) => {
                if let Err(e) = self.runtime.kill(k.id()) {
                    self.reject(k, e.to_string());
                }
            }
            Some(driver_message::Msg::Broadcast(b)) => {
                self.broadcasts.put(&b.name, b.version, b.value);
            }
            Some(driver_message::Msg::Release(r)) => self.blocks.release(r.job, r.run),
            Some(driver_message::Msg::StartReceiver(s)) => {
                if let Err(e) = self.receivers.start(s.index, s.first_run) {
                    tracing::warn!(error = %e, "cannot start a stream receiver");
                }
            }
            Some(driver_message::Msg::Shutdown(_)) | None => {}
        }
    }

    fn launch(&mut self, mut l: neptune_proto::Launch, now: Instant) {
        if let Some(victim) = l.preempt.take().and_then(|p| p.task.map(|t| (t, p.kill))) {
            let (victim, kill) = victim;
            let r = if kill {
                self.runtime.kill(victim.id())
            } else {
                self.runtime.suspend(victim.id(), now)
            };
            match r {
                Ok(()) => {
                    self.after_victim.insert(victim.id(), l);
                    return;
                }
                // The victim already ended (its Finished event is on the way): its core is free.
                Err(e) => {
                    tracing::debug!(task = %victim.id(), error = %e, "preemption target not running")
                }
            }
        }
        self.start(l);
    }

    fn start(&self, l: neptune_proto::Launch) {
        let Some(key) = l.task else {
            tracing::warn!("launch without a task key: ignored");
            return;
        };
        let id = key.id();
        let reads: Vec<ShuffleRead> = if l.params.is_empty() {
            Vec::new()
        } else {
            match postcard::from_bytes(&l.params) {
                Ok(r) => r,
                Err(e) => {
                    let reason = format!("task {id}: launch parameters do not decode: {e}");
                    self.update(key, failed(reason, 0, String::new()));
                    return;
                }
            }
        };
        let body: TaskBody = match self
            .app
            .jobs()
            .get(id.job as usize)
            .and_then(|j| j.stages.get(id.stage as usize))
        {
            Some(stage) if id.partition < stage.partitions => {
                let f = stage.run_task.clone();
                let blocks = self.blocks.clone();
                let extras = self.extras.clone();
                Box::new(move |ctx| {
                    ctx.set_shuffle(blocks, reads);
                    lock(&extras).entry(id).or_default().control = Some(ctx.control().clone());
                    let r = f(ctx);
                    let mut x = lock(&extras);
                    let e = x.entry(id).or_default();
                    e.skipped = ctx.skipped();
                    e.fetch_failed = ctx.fetch_failed();
                    r
                })
            }
            _ => {
                let reason = format!(
                    "task {id} does not exist in app `{}` on this executor",
                    self.app.name()
                );
                self.update(key, failed(reason, 0, String::new()));
                return;
            }
        };
        let kind = if l.stream {
            JobKind::Stream
        } else {
            JobKind::Batch
        };
        if let Err(e) = self.runtime.launch(id, key.attempt, kind, body) {
            // A launch that cannot start is a failed attempt: the driver frees the slot and
            // re-queues the task (a bare rejection would leave the slot held forever).
            let reason = format!("cannot start task {id} on this executor: {e}");
            let failed = neptune_proto::Failed {
                reason,
                records: 0,
                ..Default::default()
            };
            self.update(key, task_update::State::Failed(failed));
        }
    }

    fn kind_of(&self, job: u32) -> JobKind {
        self.app
            .jobs()
            .get(job as usize)
            .map_or(JobKind::Batch, |j| j.kind)
    }

    pub(crate) fn on_runtime_event(&mut self, ev: RuntimeEvent) {
        let id = ev.id();
        let freed_core = !matches!(ev, RuntimeEvent::Resumed { .. });
        self.report(ev);
        if let Some(l) = freed_core.then(|| self.after_victim.remove(&id)).flatten() {
            self.start(l);
        }
    }

    fn report(&self, ev: RuntimeEvent) {
        match ev {
            RuntimeEvent::Suspended {
                id,
                attempt,
                latency,
            } => {
                self.metrics.suspensions.inc();
                self.metrics.suspend_latency.observe(latency.as_secs_f64());
                let phase = lock(&self.extras)
                    .get(&id)
                    .and_then(|x| x.control.as_ref().map(|c| c.phase()))
                    .unwrap_or(neptune_core::task::Phase::Compute);
                self.metrics
                    .suspensions_by_phase
                    .with_label_values(&[phase.as_str()])
                    .inc();
                let s = neptune_proto::Suspended {
                    latency_ns: latency.as_nanos() as u64,
                    phase: phase.as_str().to_string(),
                };
                self.update(TaskKey::new(id, attempt), task_update::State::Suspended(s));
            }
            RuntimeEvent::Resumed {
                id,
                attempt,
                latency,
            } => {
                self.metrics.resumptions.inc();
                let r = neptune_proto::Resumed {
                    latency_ns: latency.as_nanos() as u64,
                };
                self.update(TaskKey::new(id, attempt), task_update::State::Resumed(r));
            }
            RuntimeEvent::Finished {
                id,
                attempt,
                outcome,
                records,
                elapsed,
            } => {
                let kind = self.kind_of(id.job).as_str();
                let key = TaskKey::new(id, attempt);
                let extras = lock(&self.extras).remove(&id).unwrap_or_default();
                let (label, state) = match outcome {
                    TaskOutcome::Succeeded(result) => {
                        self.metrics
                            .records
                            .with_label_values(&[kind])
                            .inc_by(records);
                        self.metrics.malformed_skipped.inc_by(extras.skipped);
                        let s = neptune_proto::Succeeded {
                            result,
                            records,
                            elapsed_us: elapsed.as_micros() as u64,
                            skipped: extras.skipped,
                        };
                        ("succeeded", task_update::State::Succeeded(s))
                    }
                    TaskOutcome::Failed(reason) => {
                        tracing::warn!(task = %id, %reason, "task failed");
                        let from = extras.fetch_failed.unwrap_or_default();
                        if !from.is_empty() {
                            self.metrics.fetch_failures.inc();
                        }
                        ("failed", failed(reason, records, from))
                    }
                    TaskOutcome::Killed => {
                        self.metrics.kills.inc();
                        (
                            "killed",
                            task_update::State::Killed(neptune_proto::Killed { records }),
                        )
                    }
                };
                self.metrics
                    .finished
                    .with_label_values(&[kind, label])
                    .inc();
                self.update(key, state);
            }
        }
    }

    pub(crate) fn heartbeat(&mut self, memory_limit: u64) {
        let snap = self.runtime.snapshot();
        let used = memory::rss_bytes();
        let spilled = self.blocks.spilled_total();
        self.metrics
            .spilled
            .inc_by(spilled.saturating_sub(self.spilled_reported));
        self.spilled_reported = spilled;
        self.export_broadcast_stats();
        let m = &self.metrics;
        m.memory_used.set(used as i64);
        m.retained.set(snap.suspended_retained_bytes as i64);
        for kind in [JobKind::Stream, JobKind::Batch] {
            m.running
                .with_label_values(&[kind.as_str()])
                .set(snap.running.get(kind) as i64);
            m.suspended
                .with_label_values(&[kind.as_str()])
                .set(snap.suspended.get(kind) as i64);
        }
        let hb = Heartbeat {
            memory_used: used,
            memory_limit,
            spilled_bytes_total: spilled,
            suspended_retained_bytes: snap.suspended_retained_bytes,
            running: snap.running.total() as u32,
            suspended: snap.suspended.total() as u32,
            records_total: 0,
        };
        let _ = self.out.send(ExecutorMessage {
            msg: Some(executor_message::Msg::Heartbeat(hb)),
        });
    }
}

impl Running {
    /// Bring the broadcast counters up to date (on every heartbeat: decodes happen in tasks).
    fn export_broadcast_stats(&mut self) {
        let now = self.broadcasts.stats();
        let was = self.broadcasts_reported;
        let m = &self.metrics;
        m.broadcast_versions
            .inc_by(now.stored.saturating_sub(was.stored));
        m.broadcast_duplicates
            .inc_by(now.duplicates.saturating_sub(was.duplicates));
        m.broadcast_decodes
            .inc_by(now.decodes.saturating_sub(was.decodes));
        self.broadcasts_reported = now;
    }
}

fn lock(m: &Mutex<HashMap<TaskId, Extras>>) -> std::sync::MutexGuard<'_, HashMap<TaskId, Extras>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn failed(reason: String, records: u64, fetch_failed_executor: String) -> task_update::State {
    task_update::State::Failed(neptune_proto::Failed {
        reason,
        records,
        fetch_failed_executor,
    })
}
