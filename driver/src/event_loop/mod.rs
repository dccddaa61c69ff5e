//! The driver's event loop: owns the task scheduler and the job manager, feeds them events from
//! the gRPC sessions and timers, and carries out their commands by sending messages to executors.
//! One task, no locks on the scheduling state.

use crate::DriverConfig;
use crate::jobs::{JobManager, LaunchBlocked, Step};
use crate::metrics::DriverMetrics;
use crate::scheduler::{Command, Event, ExecutorMetrics, PreemptHow, Scheduler};
use crate::server::Inbound;
use crate::stats::Samples;
use crate::status::{Status, Totals};
use neptune_core::app::App;
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::state::Broadcasts;
use neptune_proto::{DriverMessage, TaskKey, driver_message, task_update};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::Status as GrpcStatus;

type Outbox = mpsc::UnboundedSender<Result<DriverMessage, GrpcStatus>>;

mod publish;

struct Conn {
    session: u64,
    http_addr: String,
    block_addr: String,
    memory_limit: u64,
    memory_used: u64,
    outbox: Outbox,
}

/// Why the loop ended.
#[derive(Debug)]
pub enum LoopEnd {
    /// Every job finished its runs.
    Finished,
    /// Shutdown was requested.
    Stopped,
    /// A job failed.
    Failed(String),
}

/// State owned by the loop.
pub struct EventLoop {
    cfg: DriverConfig,
    app: Arc<App>,
    scheduler: Scheduler,
    jobs: JobManager,
    broadcasts: Arc<Broadcasts>,
    conns: HashMap<String, Conn>,
    epoch: Instant,
    started: bool,
    metrics: DriverMetrics,
    status: Arc<RwLock<Status>>,
    suspend_latency_us: Samples,
    totals: Totals,
    /// Latest `spilled_bytes_total` of every executor seen (kept after it is lost).
    spilled: HashMap<String, u64>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("app", &self.app.name())
            .finish()
    }
}

impl EventLoop {
    /// A loop for `app` publishing its status into `status`.
    pub fn new(
        cfg: DriverConfig,
        app: Arc<App>,
        metrics: DriverMetrics,
        status: Arc<RwLock<Status>>,
    ) -> Self {
        let broadcasts = Arc::new(Broadcasts::default());
        metrics.set_latency_targets(&app);
        Self {
            scheduler: Scheduler::new(cfg.scheduler.clone())
                .expect("scheduler config validated in DriverConfig::new"),
            jobs: JobManager::new(app.clone(), broadcasts.clone()),
            broadcasts,
            cfg,
            app,
            conns: HashMap::new(),
            epoch: Instant::now(),
            started: false,
            metrics,
            status,
            suspend_latency_us: Samples::default(),
            totals: Totals::default(),
            spilled: HashMap::new(),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Run until every job finished, a job failed, or `shutdown` resolves.
    pub async fn run(
        mut self,
        mut inbound: mpsc::UnboundedReceiver<Inbound>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> (LoopEnd, Status) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            let deadline = self
                .jobs
                .next_deadline()
                .map(|d| tokio::time::Instant::from_std(self.epoch + d))
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                () = &mut shutdown => break LoopEnd::Stopped,
                ev = inbound.recv() => match ev {
                    Some(ev) => self.on_inbound(ev),
                    None => break LoopEnd::Stopped,
                },
                () = tokio::time::sleep_until(deadline) => {
                    let now = self.now();
                    let step = self.jobs.tick(now);
                    self.apply_step(step);
                }
                _ = tick.tick() => {
                    self.maybe_start();
                    self.schedule(Event::Tick);
                    self.publish_status(false);
                }
            }
            if let Some(f) = self.jobs.any_failed() {
                break LoopEnd::Failed(f);
            }
            if self.started && self.jobs.all_done() {
                break LoopEnd::Finished;
            }
        };
        self.jobs.stop();
        let reason = match &end {
            LoopEnd::Finished => "app finished".to_string(),
            LoopEnd::Stopped => "driver stopping".to_string(),
            LoopEnd::Failed(f) => f.clone(),
        };
        for c in self.conns.values() {
            let msg = driver_message::Msg::Shutdown(neptune_proto::Shutdown {
                reason: reason.clone(),
            });
            let _ = c.outbox.send(Ok(DriverMessage { msg: Some(msg) }));
        }
        self.publish_status(true);
        let status = self
            .status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (end, status)
    }

    fn maybe_start(&mut self) {
        if self.started {
            return;
        }
        let enough = self.conns.len() >= self.cfg.executors;
        if enough || self.epoch.elapsed() >= self.cfg.start_timeout {
            if !enough {
                tracing::warn!(
                    registered = self.conns.len(),
                    expected = self.cfg.executors,
                    "start timeout: starting jobs with the executors registered so far"
                );
            }
            self.started = true;
            self.place_receivers();
            let step = self.jobs.start(self.now());
            tracing::info!(
                app = self.app.name(),
                executors = self.conns.len(),
                "jobs started"
            );
            self.apply_step(step);
        }
    }

    fn on_inbound(&mut self, ev: Inbound) {
        match ev {
            Inbound::Connected {
                id,
                session,
                cores,
                memory_limit,
                http_addr,
                block_addr,
                outbox,
            } => {
                for (name, _) in self.broadcasts.versions() {
                    if let Some((version, bytes)) = self.broadcasts.bytes(&name) {
                        send(&outbox, broadcast_msg(&name, version, &bytes));
                    }
                }
                self.conns.insert(
                    id.clone(),
                    Conn {
                        session,
                        http_addr,
                        block_addr,
                        memory_limit,
                        memory_used: 0,
                        outbox,
                    },
                );
                self.metrics.executors.set(self.conns.len() as i64);
                if self.started {
                    self.place_receivers();
                }
                self.schedule(Event::ExecutorRegistered {
                    id,
                    cores,
                    memory_limit,
                });
                self.maybe_start();
            }
            Inbound::Disconnected {
                id,
                session,
                reason,
            } => {
                if self.conns.get(&id).is_some_and(|c| c.session == session) {
                    tracing::warn!(executor = %id, %reason, "executor lost");
                    self.conns.remove(&id);
                    self.metrics.executors.set(self.conns.len() as i64);
                    self.metrics.executors_lost.inc();
                    self.totals.executors_lost += 1;
                    // Before the scheduler relaunches anything: tasks reading a receiver that
                    // ran there must be told its new place.
                    self.place_receivers();
                    self.schedule(Event::ExecutorLost { id: id.clone() });
                    let step = self.jobs.executor_lost(&id);
                    self.apply_step(step);
                }
            }
            Inbound::Heartbeat { id, heartbeat: hb } => {
                self.spilled.insert(id.clone(), hb.spilled_bytes_total);
                if let Some(c) = self.conns.get_mut(&id) {
                    c.memory_used = hb.memory_used;
                    if hb.memory_limit > 0 {
                        c.memory_limit = hb.memory_limit;
                    }
                }
                let metrics = ExecutorMetrics {
                    memory_used: hb.memory_used,
                    memory_limit: hb.memory_limit,
                    spilled_bytes_total: hb.spilled_bytes_total,
                    suspended_retained_bytes: hb.suspended_retained_bytes,
                };
                self.schedule(Event::Heartbeat { id, metrics });
            }
            Inbound::Update { id, update } => self.on_update(id, update),
        }
    }

    fn on_update(&mut self, executor: String, u: neptune_proto::TaskUpdate) {
        let Some(key) = u.task else { return };
        let (task, attempt) = (key.id(), key.attempt);
        let Some(state) = u.state else { return };
        let ev = match state {
            task_update::State::Suspended(s) => {
                self.totals.suspensions += 1;
                *self
                    .totals
                    .suspensions_by_phase
                    .entry(s.phase.clone())
                    .or_default() += 1;
                self.metrics.suspensions.inc();
                self.suspend_latency_us.push(s.latency_ns as f64 / 1000.0);
                Event::TaskSuspended {
                    id: task,
                    attempt,
                    executor,
                }
            }
            task_update::State::Resumed(_) => {
                self.totals.resumptions += 1;
                self.metrics.resumptions.inc();
                Event::TaskResumed {
                    id: task,
                    attempt,
                    executor,
                }
            }
            task_update::State::Succeeded(s) => {
                let now = self.now();
                self.jobs.note_skipped(task.job as usize, s.skipped);
                self.totals.malformed_skipped += s.skipped;
                let step = self
                    .jobs
                    .task_succeeded(now, task, s.result, s.records, &executor);
                if let Some(job) = self.app.jobs().get(task.job as usize) {
                    self.metrics
                        .job_records
                        .with_label_values(&[&job.name, job.kind.as_str()])
                        .inc_by(s.records);
                }
                self.schedule(Event::TaskFinished {
                    id: task,
                    attempt,
                    executor,
                });
                self.apply_step(step);
                return;
            }
            task_update::State::Failed(f) if !f.fetch_failed_executor.is_empty() => {
                tracing::warn!(%task, attempt, reason = %f.reason, "fetch failed: recomputing lost map outputs");
                self.totals.fetch_failures += 1;
                self.schedule(Event::TaskReturned {
                    id: task,
                    attempt,
                    executor,
                });
                let step = self
                    .jobs
                    .task_returned(task, Some(&f.fetch_failed_executor));
                self.apply_step(step);
                return;
            }
            task_update::State::Failed(f) => {
                tracing::warn!(%task, attempt, reason = %f.reason, "task failed");
                Event::TaskFailed {
                    id: task,
                    attempt,
                    executor,
                    reason: f.reason,
                }
            }
            task_update::State::Killed(k) => {
                self.totals.kills += 1;
                self.totals.records_lost += k.records;
                self.metrics.kills.inc();
                Event::TaskKilled {
                    id: task,
                    attempt,
                    executor,
                    records_lost: k.records,
                }
            }
            task_update::State::Rejected(r) => {
                tracing::debug!(%task, attempt, reason = %r.reason, "executor rejected a request");
                return;
            }
        };
        self.schedule(ev);
    }

    fn apply_step(&mut self, step: Step) {
        for (job, run) in &step.released {
            let msg = driver_message::Msg::Release(neptune_proto::Release {
                job: *job,
                run: *run,
            });
            for c in self.conns.values() {
                send(
                    &c.outbox,
                    DriverMessage {
                        msg: Some(msg.clone()),
                    },
                );
            }
        }
        for (name, version) in &step.published {
            if let Some((v, bytes)) = self.broadcasts.bytes(name) {
                debug_assert!(v >= *version);
                for c in self.conns.values() {
                    send(&c.outbox, broadcast_msg(name, v, &bytes));
                }
            }
        }
        for (job, latency_ms) in &step.committed {
            let def = &self.app.jobs()[*job as usize];
            self.metrics
                .job_runs
                .with_label_values(&[&def.name, def.kind.as_str()])
                .inc();
            if let Some(ms) = latency_ms {
                self.metrics
                    .stream_latency
                    .with_label_values(&[&def.name])
                    .observe(ms / 1000.0);
            }
        }
        for (job, reason) in step.failed {
            tracing::error!(job, %reason, "job failed");
            self.schedule(Event::JobCancelled { job });
        }
        for tasks in step.submit {
            self.schedule(Event::TasksSubmitted { tasks });
        }
        self.refresh_job_metrics();
    }

    fn schedule(&mut self, ev: Event) {
        let t0 = Instant::now();
        let now = self.now();
        let cmds = self.scheduler.handle(now, ev);
        self.metrics.decision.observe(t0.elapsed().as_secs_f64());
        for c in cmds {
            self.dispatch(c);
        }
    }

    fn dispatch(&mut self, cmd: Command) {
        match cmd {
            Command::Launch {
                task,
                executor,
                preempt,
            } => {
                let conns = &self.conns;
                let params = match self
                    .jobs
                    .params_for(task.id, |e| conns.get(e).map(|c| c.block_addr.clone()))
                {
                    Ok(params) => params,
                    Err(blocked) => {
                        // An input was lost after the task was queued (hand it back until it is
                        // recomputed), or its run is over (drop it).
                        tracing::debug!(task = %task.id, %blocked, "task not launched");
                        let gone = match blocked {
                            LaunchBlocked::ExecutorGone(e) => Some(e),
                            _ => None,
                        };
                        let (id, attempt) = (task.id, task.attempt);
                        self.schedule(Event::TaskReturned {
                            id,
                            attempt,
                            executor,
                        });
                        let step = self.jobs.task_returned(id, gone.as_deref());
                        self.apply_step(step);
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
            }
            Command::Resume { task, executor } => {
                let key = TaskKey::new(task, self.attempt_of(task));
                self.send_to(&executor, driver_message::Msg::Resume(key));
            }
            Command::Kill { task, executor } => {
                let key = TaskKey::new(task, self.attempt_of(task));
                self.send_to(&executor, driver_message::Msg::Kill(key));
            }
            Command::DropExecutor { id, silent_for } => {
                tracing::warn!(executor = %id, ?silent_for, "executor missed heartbeats: dropping it");
                let removed = self.conns.remove(&id);
                self.place_receivers();
                let step = self.jobs.executor_lost(&id);
                self.apply_step(step);
                if let Some(c) = removed {
                    let msg = driver_message::Msg::Shutdown(neptune_proto::Shutdown {
                        reason: format!("no heartbeat for {silent_for:?}"),
                    });
                    let _ = c.outbox.send(Ok(DriverMessage { msg: Some(msg) }));
                    self.metrics.executors_lost.inc();
                    self.totals.executors_lost += 1;
                    self.metrics.executors.set(self.conns.len() as i64);
                }
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
                self.jobs.fail_job(task.job as usize, &why);
                self.schedule(Event::JobCancelled { job: task.job });
            }
        }
    }

    /// Pin every receiver that has no live executor to the live executor running the fewest
    /// receivers (ties: smallest id), and tell that executor to start it. A receiver stays
    /// where it is while its executor lives.
    fn place_receivers(&mut self) {
        let placed: Vec<Option<String>> = self.jobs.receiver_placement().to_vec();
        let mut load: HashMap<&str, usize> = self.conns.keys().map(|k| (k.as_str(), 0)).collect();
        for e in placed.iter().flatten() {
            if let Some(n) = load.get_mut(e.as_str()) {
                *n += 1;
            }
        }
        let mut moves = Vec::new();
        for (index, at) in placed.iter().enumerate() {
            if at.as_ref().is_some_and(|e| self.conns.contains_key(e)) {
                continue;
            }
            let target = load
                .iter()
                .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
                .map(|(e, _)| e.to_string());
            if let Some(e) = &target {
                *load.get_mut(e.as_str()).expect("listed") += 1;
            }
            moves.push((index, target));
        }
        for (index, target) in moves {
            let name = &self.app.receivers()[index].name;
            match &target {
                Some(e) => {
                    tracing::info!(source = %name, executor = %e, "receiver placed");
                    self.send_to(
                        e,
                        driver_message::Msg::StartReceiver(neptune_proto::StartReceiver {
                            index: index as u32,
                            first_run: self.jobs.receiver_first_run(index),
                        }),
                    );
                }
                None => tracing::warn!(source = %name, "no executor left to run the receiver"),
            }
            self.jobs.place_receiver(index, target);
        }
    }

    fn attempt_of(&self, task: TaskId) -> u32 {
        self.scheduler.attempt_of(task).unwrap_or(0)
    }

    fn send_to(&self, executor: &str, msg: driver_message::Msg) {
        match self.conns.get(executor) {
            Some(c) => send(&c.outbox, DriverMessage { msg: Some(msg) }),
            None => tracing::warn!(executor, "command for an executor that is gone"),
        }
    }

    fn refresh_job_metrics(&self) {
        let elapsed = self.jobs.started_at().map(|s| self.now().saturating_sub(s));
        let Some(e) = elapsed.filter(|e| !e.is_zero()) else {
            return;
        };
        for (j, def) in self.app.jobs().iter().enumerate() {
            if def.kind == JobKind::Batch {
                let rps = self.jobs.stats(j).records as f64 / e.as_secs_f64();
                self.metrics
                    .batch_rps
                    .with_label_values(&[&def.name])
                    .set(rps);
            }
        }
    }
}

fn send(outbox: &Outbox, msg: DriverMessage) {
    // A closed outbox means the session ended; its Disconnected event is on its way.
    let _ = outbox.send(Ok(msg));
}

fn broadcast_msg(name: &str, version: u64, bytes: &[u8]) -> DriverMessage {
    DriverMessage {
        msg: Some(driver_message::Msg::Broadcast(neptune_proto::Broadcast {
            name: name.to_string(),
            version,
            value: bytes.to_vec(),
        })),
    }
}
