//! The driver's event loop: owns the task scheduler and the job manager, feeds them events from
//! the gRPC sessions and timers, and carries out their commands by sending messages to executors.
//! One task, no locks on the scheduling state.
//!
//! One flow of control: every input (a session event, a timer) becomes [`Work`] on the loop's
//! own queue, and [`drain`](EventLoop::drain) runs it to completion. Handlers that find more to
//! do (a launch that cannot go out, an executor to drop, a job-manager step to apply) queue it
//! rather than call back into the scheduler, so no handler re-enters the scheduler or the job
//! manager from inside one of their own commands.
//!
//! Module map: `sessions.rs` (registration, loss, heartbeats, receivers' placement),
//! `commands.rs` (the scheduler's commands as messages to executors, or as queued work),
//! `updates.rs` (task updates under the holder rule), `publish.rs` (the status document),
//! `processed.rs` (records processed per job, from the executors' counters).

use crate::DriverConfig;
use crate::jobs::{JobManager, Step};
use crate::metrics::DriverMetrics;
use crate::scheduler::{Event, Scheduler};
use crate::server::{Inbound, Outbox};
use crate::stats::{Histogram, HopLatencies, Resolution};
use crate::status::{Status, Totals};
use neptune_core::app::App;
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::state::Broadcasts;
use neptune_proto::{DriverMessage, driver_message};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod attrib;
mod clock;
mod commands;
mod processed;
mod publish;
mod sessions;
mod slo;
mod updates;

use commands::broadcast_msg;

#[cfg(test)]
mod tests;

/// Bytes of a launch message besides its parameters (task keys, flags, gRPC framing).
const LAUNCH_OVERHEAD: u64 = 256;

/// One live executor session.
struct Conn {
    session: u64,
    http_addr: String,
    block_addr: String,
    memory_limit: u64,
    memory_used: u64,
    outbox: Outbox,
    /// Its outbox overflowed: it is being dropped, nothing more is sent to it.
    stalled: bool,
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

/// Work for the loop, run in order by [`EventLoop::drain`].
#[derive(Debug)]
enum Work {
    /// Feed the scheduler one event and carry out its commands.
    Schedule(Event),
    /// Carry out a job-manager step.
    Step(Step),
    /// A launch could not be sent: withdraw it from the scheduler and hand the task back to its
    /// job (`gone`: the executor whose outputs it needs is gone).
    LaunchBlocked {
        id: TaskId,
        attempt: u32,
        executor: String,
        gone: Option<String>,
    },
    /// An executor is lost: its connection closed, it missed heartbeats, or it does not read
    /// its session. `notify`: tell it why before closing its session.
    Lose {
        id: String,
        reason: String,
        notify: bool,
    },
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
    suspend_latency: Histogram,
    totals: Totals,
    /// Latest `spilled_bytes_total` of every executor seen (kept after it is lost).
    spilled: HashMap<String, u64>,
    /// Records processed per job, from the executors' heartbeats.
    processed: processed::Processed,
    /// Driver-side marks of stream runs in flight (per-hop latency attribution).
    attribution: attrib::Attribution,
    /// Per-hop latency statistics per job (stream jobs record; batch jobs hold nothing).
    hops: Vec<HopLatencies>,
    /// SLO-aware mode acting ahead: the lead and the micro-batches announced.
    ahead: slo::Ahead,
    work: VecDeque<Work>,
    next_session: u64,
    next_id: u64,
    /// Since when no executor has been registered while jobs had work (`None`: some is).
    unserved_since: Option<Duration>,
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
        let mut jobs = JobManager::new(app.clone(), broadcasts.clone());
        jobs.set_max_fetch_failures(cfg.max_fetch_failures);
        jobs.set_warmup(cfg.warmup);
        jobs.set_max_message_bytes(cfg.max_message_bytes);
        for why in crate::scheduler::Ignored::ALL {
            metrics.rejected_updates.with_label_values(&[why.as_str()]);
        }
        let processed = processed::Processed::new(app.jobs().len());
        let hops = vec![HopLatencies::new(cfg.warmup); app.jobs().len()];
        Self {
            processed,
            attribution: attrib::Attribution::default(),
            hops,
            ahead: slo::Ahead::default(),
            scheduler: Scheduler::new(cfg.scheduler.clone())
                .expect("scheduler config validated in DriverConfig::new"),
            jobs,
            broadcasts,
            cfg,
            app,
            conns: HashMap::new(),
            epoch: Instant::now(),
            started: false,
            metrics,
            status,
            suspend_latency: Histogram::new(Resolution::Nanos),
            totals: Totals::default(),
            spilled: HashMap::new(),
            work: VecDeque::new(),
            next_session: 1,
            next_id: 0,
            unserved_since: None,
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Run until every job finished, a job failed, or `shutdown` resolves.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> (LoopEnd, Status) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut clock, mut due) = match clock::start() {
            Ok(c) => c,
            Err(e) => {
                let why = format!("could not start the micro-batch clock thread: {e}");
                return (LoopEnd::Failed(why), self.status_now());
            }
        };
        self.refresh_lead();
        let end = loop {
            // Acting ahead: announcements due now go out before the micro-batches themselves.
            let ahead = self.announce_due_soon();
            self.drain();
            let next = match (self.jobs.next_deadline(), ahead) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            clock.arm(next.map(|d| self.epoch + d));
            let mut ticked = false;
            // Biased, due micro-batches first: a busy inbound queue must not delay them.
            tokio::select! {
                biased;
                () = &mut shutdown => break LoopEnd::Stopped,
                Some(_) = due.recv() => {
                    clock.fired();
                    // A loop that woke late announces before it plans what fell due meanwhile.
                    self.announce_due_soon();
                    let step = self.jobs.tick(self.now());
                    self.work.push_back(Work::Step(step));
                }
                ev = inbound.recv() => match ev {
                    Some(ev) => self.on_inbound(ev),
                    None => break LoopEnd::Stopped,
                },
                _ = tick.tick() => {
                    self.maybe_start();
                    self.refresh_lead();
                    self.work.push_back(Work::Schedule(Event::Tick));
                    ticked = true;
                }
            }
            self.drain();
            if ticked {
                self.publish_status(false);
            }
            if let Some(f) = self.jobs.any_failed() {
                break LoopEnd::Failed(f);
            }
            if ticked && let Some(f) = self.unserved() {
                tracing::error!(reason = %f, "app failed");
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
                rejoin: false,
            });
            let _ = c.outbox.try_send(Ok(DriverMessage { msg: Some(msg) }));
        }
        self.publish_status(true);
        (end, self.status_now())
    }

    fn status_now(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why the app must fail for want of executors: jobs have work and none was registered for
    /// `driver.no_executors_timeout_ms`. Nothing would ever run it otherwise — the driver
    /// would wait forever with tasks queued.
    fn unserved(&mut self) -> Option<String> {
        if !self.started || !self.conns.is_empty() || self.jobs.all_done() {
            self.unserved_since = None;
            return None;
        }
        let now = self.now();
        let since = *self.unserved_since.get_or_insert(now);
        let timeout = self.cfg.no_executors_timeout;
        (now.saturating_sub(since) >= timeout).then(|| {
            format!(
                "no executor registered for {:?} while jobs have work \
                 (driver.no_executors_timeout_ms = {}); {} executor(s) lost so far",
                now.saturating_sub(since),
                timeout.as_millis(),
                self.totals.executors_lost
            )
        })
    }

    /// Start the jobs once enough executors registered (or the start timeout passed).
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
            self.work.push_back(Work::Step(step));
        }
    }

    fn on_inbound(&mut self, ev: Inbound) {
        match ev {
            Inbound::Reconfigure { changes, reply } => {
                let result = self
                    .scheduler
                    .reconfigure(&changes)
                    .map(|()| crate::status::Scheduling::of(self.scheduler.config()));
                if result.is_ok() {
                    // A new policy may start or preempt tasks at once; /status shows it now.
                    self.work.push_back(Work::Schedule(Event::Tick));
                    self.publish_status(false);
                }
                let _ = reply.send(result);
            }
            Inbound::Register {
                registration,
                outbox,
                reply,
            } => self.register(registration, outbox, reply),
            Inbound::Disconnected {
                id,
                session,
                reason,
            } => {
                if self.is_current(&id, session) {
                    self.work.push_back(Work::Lose {
                        id,
                        reason,
                        notify: false,
                    });
                }
            }
            Inbound::Heartbeat {
                id,
                session,
                heartbeat,
            } => self.on_heartbeat(id, session, heartbeat),
            Inbound::Update {
                id,
                session,
                update,
                received,
            } => {
                let received = received.saturating_duration_since(self.epoch);
                self.on_update(id, session, update, received)
            }
        }
    }

    /// Run queued work until none is left.
    fn drain(&mut self) {
        while let Some(w) = self.work.pop_front() {
            match w {
                Work::Schedule(ev) => self.schedule(ev),
                Work::Step(step) => self.apply_step(step),
                Work::LaunchBlocked {
                    id,
                    attempt,
                    executor,
                    gone,
                } => {
                    let ev = Event::LaunchCancelled {
                        id,
                        attempt,
                        executor,
                    };
                    // Only a launch still standing is handed back (the task may have moved on).
                    if self.scheduler.check(&ev).is_ok() {
                        self.schedule(ev);
                        let step = self.jobs.task_returned(id, gone.as_deref(), false);
                        self.work.push_back(Work::Step(step));
                    }
                }
                Work::Lose { id, reason, notify } => self.lose(&id, &reason, notify),
            }
        }
    }

    fn apply_step(&mut self, step: Step) {
        let now = self.now();
        for tasks in &step.submit {
            for t in tasks.iter().filter(|t| t.kind == JobKind::Stream) {
                self.attribution.submitted(t.id, now);
            }
        }
        for (job, run) in &step.released {
            self.attribution.ended(*job, *run);
            let msg = driver_message::Msg::Release(neptune_proto::Release {
                job: *job,
                run: *run,
            });
            self.send_all(&msg);
        }
        for (job, run) in &step.opened {
            let msg = driver_message::Msg::OpenRun(neptune_proto::OpenRun {
                job: *job,
                run: *run,
            });
            self.send_all(&msg);
        }
        for (name, version) in &step.published {
            if let Some((v, bytes)) = self.broadcasts.bytes(name) {
                debug_assert!(v >= *version);
                self.send_all(&broadcast_msg(name, v, &bytes));
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
                self.stream_committed(*job);
            }
        }
        for (job, latency) in &step.source_to_commit {
            let def = &self.app.jobs()[*job as usize];
            self.metrics
                .source_to_commit
                .with_label_values(&[&def.name])
                .observe(latency.as_secs_f64());
        }
        for (job, reason) in step.failed {
            tracing::error!(job, %reason, "job failed");
            self.work
                .push_back(Work::Schedule(Event::JobCancelled { job }));
        }
        for tasks in step.submit {
            self.work
                .push_back(Work::Schedule(Event::TasksSubmitted { tasks }));
        }
        self.refresh_job_metrics();
    }

    /// Whether `session` is the live session of executor `id`.
    fn is_current(&self, id: &str, session: u64) -> bool {
        self.conns.get(id).is_some_and(|c| c.session == session)
    }

    fn refresh_job_metrics(&self) {
        if self.jobs.started_at().is_none() {
            return;
        }
        for (j, def) in self.app.jobs().iter().enumerate() {
            if def.kind == JobKind::Batch {
                // From the executors' record counters, as `records_processed_per_sec` in
                // `/status`: not quantised to finished tasks.
                let (_, rps) = self.processed.job(j, self.jobs.started_at(), self.now());
                self.metrics
                    .batch_rps
                    .with_label_values(&[&def.name])
                    .set(rps);
            }
        }
    }
}
