//! Driver messages into task runtime calls: launches (with shuffle input locations and the task's
//! files of the run's input snapshot in `Launch.params`, and a preemption to carry out first),
//! standalone suspensions (ahead of a micro-batch: the core is left idle), resumes, kills,
//! broadcasts, run announcements and releases, receivers to start. Runtime events go back out through
//! [`Updates`]; a launch that preempts a task starts on that victim's core as soon as the
//! victim has let go of it (the runtime hands the core over, see `TaskRuntime::launch_after`).

use crate::blocks::BlockStore;
use crate::lifecycle::Lifecycle;
use crate::memory;
use crate::receivers::Receivers;
use crate::runtime::{
    RuntimeError, RuntimeEvent, RuntimeSnapshot, TaskBody, TaskRuntime, TaskState,
};
use crate::updates::Updates;
use neptune_core::app::App;
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::source_snapshot::LaunchParams;
use neptune_core::state::{BroadcastStats, Broadcasts};
use neptune_proto::{DriverMessage, Heartbeat, JobRecords, driver_message};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// The executor's tasks as the session sees them.
pub(crate) struct Tasks {
    /// Launches waiting for a task of the same id to end here (a newer attempt superseding an
    /// older one), by that task. Ordinary preemptions do not wait here: the runtime itself
    /// starts the launched task on its victim's core (`TaskRuntime::launch_after`), which keeps
    /// the driver's contract (the victim's outcome is reported before any event of the launched
    /// task) without a round trip through this session loop. Each keeps when it was received:
    /// its task's timing counts the wait.
    after_victim: HashMap<TaskId, (neptune_proto::Launch, Instant)>,
    app: Arc<App>,
    runtime: TaskRuntime,
    broadcasts: Arc<Broadcasts>,
    blocks: Arc<BlockStore>,
    receivers: Arc<Receivers>,
    updates: Updates,
    spilled_reported: u64,
    /// Broadcast counters already exported as metrics.
    broadcasts_reported: BroadcastStats,
    /// Task-life tracing spans.
    lifecycle: Lifecycle,
}

impl Tasks {
    pub(crate) fn new(
        app: Arc<App>,
        runtime: TaskRuntime,
        broadcasts: Arc<Broadcasts>,
        blocks: Arc<BlockStore>,
        receivers: Arc<Receivers>,
        updates: Updates,
    ) -> Self {
        Self {
            after_victim: HashMap::new(),
            app,
            runtime,
            broadcasts,
            blocks,
            receivers,
            updates,
            spilled_reported: 0,
            broadcasts_reported: BroadcastStats::default(),
            lifecycle: Lifecycle::default(),
        }
    }

    /// Carry out one driver message (the session loop handles `Shutdown` and `KeepAlive`).
    pub(crate) fn on_driver_message(&mut self, m: DriverMessage) {
        let now = Instant::now();
        match m.msg {
            Some(driver_message::Msg::Launch(l)) => self.launch(l, now),
            Some(driver_message::Msg::Suspend(k)) => {
                // A refusal changes nothing: the task runs on (or its end is on the way) and
                // keeps its slot in the driver's accounting until that end.
                if let Err(e) = self.runtime.suspend_attempt(k.id(), k.attempt, now) {
                    self.updates.reject(k, e.to_string());
                }
            }
            Some(driver_message::Msg::Resume(k)) => {
                if let Err(e) = self.runtime.resume(k.id(), now) {
                    self.updates.reject(k, e.to_string());
                }
            }
            Some(driver_message::Msg::Kill(k)) => {
                if let Err(e) = self.runtime.kill(k.id()) {
                    self.updates.reject(k, e.to_string());
                }
            }
            Some(driver_message::Msg::Broadcast(b)) => {
                self.broadcasts.put(&b.name, b.version, b.value);
            }
            Some(driver_message::Msg::Release(r)) => self.blocks.release(r.job, r.run),
            Some(driver_message::Msg::OpenRun(r)) => self.receivers.open_run(r.job, r.run),
            Some(driver_message::Msg::StartReceiver(s)) => {
                if let Err(e) = self.receivers.start(s.index, s.first_run) {
                    tracing::warn!(error = %e, "cannot start a stream receiver");
                }
            }
            Some(driver_message::Msg::Welcome(_)) => {
                tracing::warn!("a second welcome on the session ignored");
            }
            Some(driver_message::Msg::Shutdown(_) | driver_message::Msg::KeepAlive(_)) | None => {}
        }
    }

    fn launch(&mut self, mut l: neptune_proto::Launch, now: Instant) {
        // Acknowledge receipt first: the driver re-launches elsewhere what is not acknowledged.
        if let Some(key) = l.task {
            self.updates.update(
                key,
                neptune_proto::task_update::State::Accepted(neptune_proto::Accepted {}),
            );
            let victim = l
                .preempt
                .as_ref()
                .and_then(|p| Some((p.task?.id(), p.kill)));
            self.lifecycle
                .launched(key.id(), key.attempt, kind_of_launch(&l), victim);
        }
        if let Some(victim) = l.preempt.take().and_then(|p| p.task.map(|t| (t, p.kill))) {
            let (victim, kill) = victim;
            let r = if kill {
                self.runtime.kill(victim.id())
            } else {
                self.runtime.suspend(victim.id(), now)
            };
            match r {
                Ok(()) => {
                    if let Some(task) = l.task {
                        self.lifecycle.waiting(task.id(), task.attempt, victim.id());
                    }
                    // The runtime starts it on the victim's core once the victim let go of it.
                    self.start(l, now, Some(victim.id()));
                    return;
                }
                // Already parking: the driver's standalone suspend (ahead of a micro-batch) got
                // there first, and this launch takes over the core it is leaving. The runtime
                // promises it that core, as for a preemption of its own: started anywhere else
                // (another core freeing first), its events could overtake the victim's
                // `Suspended`, which the driver must see first.
                Err(RuntimeError::NotRunning {
                    state: TaskState::Suspending,
                    ..
                }) => {
                    if let Some(task) = l.task {
                        self.lifecycle.waiting(task.id(), task.attempt, victim.id());
                    }
                    self.start(l, now, Some(victim.id()));
                    return;
                }
                // The victim already ended (its Finished event is on the way): its core is free.
                Err(e) => {
                    tracing::debug!(task = %victim.id(), error = %e, "preemption target not running")
                }
            }
        }
        self.start(l, now, None);
    }

    /// Start the task of launch `l`, received at `received_at`: on the core of `victim` once it
    /// let go of it, or on the next free core.
    fn start(&mut self, l: neptune_proto::Launch, received_at: Instant, victim: Option<TaskId>) {
        let Some(key) = l.task else {
            tracing::warn!("launch without a task key: ignored");
            return;
        };
        let id = key.id();
        let params: LaunchParams = if l.params.is_empty() {
            LaunchParams::default()
        } else {
            match postcard::from_bytes(&l.params) {
                Ok(r) => r,
                Err(e) => {
                    let reason = format!("task {id}: launch parameters do not decode: {e}");
                    self.refuse(key, reason);
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
                let LaunchParams {
                    reads,
                    files,
                    kafka,
                    kafka_batch,
                    epoch,
                } = params;
                Box::new(move |ctx| {
                    ctx.set_shuffle(blocks, reads);
                    ctx.set_kafka_ranges(kafka);
                    ctx.set_kafka_batch(kafka_batch);
                    ctx.set_output_epoch(epoch);
                    if let Some(files) = files {
                        ctx.set_input_files(files);
                    }
                    // The failure crosses the wire as text (`Failed.reason`): the typed
                    // error's own message.
                    f(ctx).map_err(|e| e.to_string())
                })
            }
            _ => {
                let reason = format!(
                    "task {id} does not exist in app `{}` on this executor",
                    self.app.name()
                );
                self.refuse(key, reason);
                return;
            }
        };
        let kind = kind_of_launch(&l);
        let launched = match victim {
            Some(v) => self
                .runtime
                .launch_after(v, id, key.attempt, kind, body, received_at),
            None => self
                .runtime
                .launch_received(id, key.attempt, kind, body, received_at),
        };
        match launched {
            Ok(()) => {}
            // Another attempt of this task is alive here too: decide once the victim's core is
            // free (below, as a launch without a victim).
            Err(RuntimeError::AlreadyRunning { .. }) if victim.is_some() => {
                if let Some(v) = victim {
                    self.after_victim.insert(v, (l, received_at));
                }
            }
            // The driver gave up on an older attempt here (its launch was acknowledged too late)
            // and sent a newer one: the newer supersedes it. The old one is killed (its update
            // is stale to the driver) and the new one starts in the core it frees, as after a
            // preemptive kill.
            Err(RuntimeError::AlreadyRunning { attempt, .. })
                if attempt < key.attempt
                    && !self.after_victim.contains_key(&id)
                    && self.runtime.kill(id).is_ok() =>
            {
                tracing::info!(task = %id, old = attempt, new = key.attempt, "a newer attempt supersedes the one running here");
                let next = neptune_proto::Launch {
                    task: Some(key),
                    stream: l.stream,
                    preempt: None,
                    params: l.params,
                };
                self.after_victim.insert(id, (next, received_at));
            }
            Err(e) => {
                // A launch that cannot start is a failed attempt: the driver frees the slot and
                // re-queues the task (a bare rejection would leave the slot held forever).
                let reason = format!("cannot start task {id} on this executor: {e}");
                self.refuse(key, reason);
            }
        }
    }

    /// Fail a launch that cannot start (the driver frees its slot and re-queues the task).
    fn refuse(&mut self, key: neptune_proto::TaskKey, reason: String) {
        self.lifecycle.refused(key.id(), key.attempt, &reason);
        self.updates.fail(key, reason);
    }

    fn kind_of(&self, job: u32) -> JobKind {
        self.app
            .jobs()
            .get(job as usize)
            .map_or(JobKind::Batch, |j| j.kind)
    }

    /// Report a runtime event; a launch parked behind the task starts once its core is free.
    pub(crate) fn on_runtime_event(&mut self, ev: RuntimeEvent) {
        let id = ev.id();
        let freed_core = !matches!(ev, RuntimeEvent::Resumed { .. });
        self.lifecycle.event(&ev);
        self.updates.report(ev, self.kind_of(id.job));
        if let Some((l, received_at)) = freed_core.then(|| self.after_victim.remove(&id)).flatten()
        {
            self.start(l, received_at, None);
        }
    }

    /// Send a heartbeat (and refresh the gauges it reads).
    pub(crate) fn heartbeat(&mut self, memory_limit: u64) {
        let snap = self.runtime.snapshot();
        let used = memory::rss_bytes();
        let spilled = self.blocks.spilled_total();
        self.export_broadcast_stats();
        let m = self.updates.metrics();
        m.spilled
            .inc_by(spilled.saturating_sub(self.spilled_reported));
        self.spilled_reported = spilled;
        m.memory_used.set(i64::try_from(used).unwrap_or(i64::MAX));
        m.retained
            .set(i64::try_from(snap.suspended_retained_bytes).unwrap_or(i64::MAX));
        for kind in [JobKind::Stream, JobKind::Batch] {
            m.running
                .with_label_values(&[kind.as_str()])
                .set(snap.running.get(kind) as i64);
            m.suspended
                .with_label_values(&[kind.as_str()])
                .set(snap.suspended.get(kind) as i64);
        }
        let job_records = job_records(self.updates.done(), &snap);
        self.updates.heartbeat(Heartbeat {
            memory_used: used,
            memory_limit,
            spilled_bytes_total: spilled,
            suspended_retained_bytes: snap.suspended_retained_bytes,
            job_records,
        });
    }

    /// Bring the broadcast counters up to date (on every heartbeat: decodes happen in tasks).
    fn export_broadcast_stats(&mut self) {
        let now = self.broadcasts.stats();
        let was = self.broadcasts_reported;
        let m = self.updates.metrics();
        m.broadcast_versions
            .inc_by(now.stored.saturating_sub(was.stored));
        m.broadcast_duplicates
            .inc_by(now.duplicates.saturating_sub(was.duplicates));
        m.broadcast_decodes
            .inc_by(now.decodes.saturating_sub(was.decodes));
        self.broadcasts_reported = now;
    }

    /// Kill every task still alive (the session is over).
    pub(crate) fn kill_all(&self) {
        for t in self.runtime.snapshot().tasks {
            let _ = self.runtime.kill(t.id);
        }
    }
}

/// The heartbeat's records processed per job: `done` (records of tasks that succeeded) plus, as
/// `in_flight`, what the tasks alive in `snap` last published.
///
/// A task that has just ended is in neither for one heartbeat at most (the runtime forgets it
/// before its `Finished` event reaches `done`), never in both: the figure may lag by one task,
/// it never counts one twice.
pub(crate) fn job_records(
    done: &std::collections::BTreeMap<u32, u64>,
    snap: &RuntimeSnapshot,
) -> Vec<JobRecords> {
    let mut by_job: std::collections::BTreeMap<u32, (u64, u64)> =
        done.iter().map(|(j, d)| (*j, (*d, 0))).collect();
    for t in &snap.tasks {
        let e = by_job.entry(t.id.job).or_default();
        e.1 = e.1.saturating_add(t.records);
    }
    by_job
        .into_iter()
        .map(|(job, (done, in_flight))| JobRecords {
            job,
            done,
            in_flight,
        })
        .collect()
}

#[cfg(test)]
#[path = "tasks_fuzz.rs"]
mod fuzz;

fn kind_of_launch(l: &neptune_proto::Launch) -> JobKind {
    if l.stream {
        JobKind::Stream
    } else {
        JobKind::Batch
    }
}
