//! The executor process: registers with the driver, holds the session stream, turns driver
//! messages into task runtime calls and runtime events into task updates, sends heartbeats, and
//! serves `/metrics`, `/healthz`, `/readyz`.
//!
//! Threads: tokio runs the network side; tasks run on the `may` workers of the task runtime
//! (CPU-bound work never runs on the threads serving RPC/HTTP).

use crate::memory;
use crate::metrics::ExecutorMetrics;
use crate::runtime::{RuntimeEvent, TaskBody, TaskOutcome, TaskRuntime};
use neptune_core::app::{App, AppEntry, build_app};
use neptune_core::config::Config;
use neptune_core::ids::JobKind;
use neptune_core::ids::TaskId;
use neptune_core::state::Broadcasts;
use neptune_proto::driver_client::DriverClient;
use neptune_proto::{
    DriverMessage, ExecutorMessage, Heartbeat, Hello, RegisterRequest, TaskKey, TaskUpdate,
    driver_message, executor_message, task_update,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

/// Executor settings (from the CLI).
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Driver gRPC URL, e.g. `http://127.0.0.1:7077`.
    pub driver_url: String,
    /// Task slots.
    pub cores: u32,
    /// Memory budget in bytes.
    pub memory: u64,
    /// HTTP listen address.
    pub http: SocketAddr,
    /// Executor id (empty: the driver assigns one).
    pub id: Option<String>,
    /// How long to keep trying to reach the driver at start.
    pub connect_timeout: Duration,
}

/// Why the executor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The HTTP address could not be bound.
    #[error("cannot listen on --http {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// `--driver` is not a valid URL.
    #[error("invalid --driver URL `{url}`: {reason}")]
    BadDriverUrl {
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The driver could not be reached within the connect timeout.
    #[error("cannot reach the driver at {url} within {timeout:?}: {reason}")]
    Connect {
        /// URL.
        url: String,
        /// Timeout.
        timeout: Duration,
        /// Last error.
        reason: String,
    },
    /// The driver refused the registration or the session.
    #[error("the driver at {url} refused this executor: {reason}")]
    Refused {
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The app the driver runs is not in this binary, or its config is bad.
    #[error("cannot build app: {0}")]
    App(#[from] neptune_core::app::BuildError),
    /// The driver went away without telling us to stop.
    #[error("lost the driver at {url}: {reason}")]
    DriverLost {
        /// URL.
        url: String,
        /// What happened.
        reason: String,
    },
}

/// Run an executor until the driver tells it to stop (Ok) or disappears (Err), or `shutdown`.
///
/// # Errors
/// [`ExecutorError`] naming what failed: bind, connect, registration, app, or the lost driver.
pub async fn run_executor(
    cfg: ExecutorConfig,
    apps: &'static [AppEntry],
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ExecutorError> {
    let listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .map_err(|source| ExecutorError::Bind {
            addr: cfg.http,
            source,
        })?;
    let http_addr = listener.local_addr().unwrap_or(cfg.http);
    let metrics_cell: Arc<OnceLock<ExecutorMetrics>> = Arc::new(OnceLock::new());
    let http_stop = Arc::new(tokio::sync::Notify::new());
    let http = tokio::spawn({
        let router = crate::http::router(metrics_cell.clone());
        let stop = http_stop.clone();
        async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await;
        }
    });
    let result = session(cfg, apps, http_addr, metrics_cell, shutdown).await;
    http_stop.notify_waiters();
    let _ = tokio::time::timeout(Duration::from_secs(1), http).await;
    result
}

async fn connect(
    cfg: &ExecutorConfig,
) -> Result<DriverClient<tonic::transport::Channel>, ExecutorError> {
    let endpoint = tonic::transport::Endpoint::from_shared(cfg.driver_url.clone())
        .map_err(|e| ExecutorError::BadDriverUrl {
            url: cfg.driver_url.clone(),
            reason: e.to_string(),
        })?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + cfg.connect_timeout;
    let mut delay = Duration::from_millis(50);
    loop {
        match endpoint.connect().await {
            Ok(ch) => return Ok(DriverClient::new(ch).max_decoding_message_size(256 << 20)),
            Err(e) if Instant::now() + delay < deadline => {
                tracing::debug!(error = %e, "driver not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(ExecutorError::Connect {
                    url: cfg.driver_url.clone(),
                    timeout: cfg.connect_timeout,
                    reason: format!(
                        "{e}: {}",
                        std::error::Error::source(&e)
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    ),
                });
            }
        }
    }
}

struct Running {
    /// Launches waiting for their preemption victim to give up its core, by victim. Launching
    /// only after the victim's outcome keeps the driver's contract (the victim's outcome is
    /// reported before any event of the launched task) and gives the launched task exactly the
    /// core its victim freed, never another queued task's.
    after_victim: HashMap<TaskId, neptune_proto::Launch>,
    app: Arc<App>,
    runtime: TaskRuntime,
    broadcasts: Arc<Broadcasts>,
    metrics: ExecutorMetrics,
    out: mpsc::UnboundedSender<ExecutorMessage>,
}

async fn session(
    cfg: ExecutorConfig,
    apps: &'static [AppEntry],
    http_addr: SocketAddr,
    metrics_cell: Arc<OnceLock<ExecutorMetrics>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ExecutorError> {
    let url = cfg.driver_url.clone();
    let mut client = connect(&cfg).await?;
    let reply = client
        .register(RegisterRequest {
            executor_id: cfg.id.clone().unwrap_or_default(),
            cores: cfg.cores,
            memory_limit: cfg.memory,
            http_addr: http_addr.to_string(),
            pid: std::process::id(),
        })
        .await
        .map_err(|s| ExecutorError::Refused {
            url: url.clone(),
            reason: s.message().to_string(),
        })?
        .into_inner();
    let id = reply.executor_id.clone();
    let config = Config::from_pairs(reply.config.into_iter().map(|e| (e.key, e.value)));
    let app = Arc::new(build_app(apps, &reply.app, Arc::new(config))?);
    tracing::info!(executor = %id, app = %reply.app, cores = cfg.cores, "registered with the driver");

    let metrics = ExecutorMetrics::new(&id);
    metrics.memory_limit.set(cfg.memory as i64);
    metrics.slots.set(i64::from(cfg.cores));
    let _ = metrics_cell.set(metrics.clone());

    let (out, out_rx) = mpsc::unbounded_channel::<ExecutorMessage>();
    let hello = executor_message::Msg::Hello(Hello {
        executor_id: id.clone(),
    });
    let _ = out.send(ExecutorMessage { msg: Some(hello) });
    let mut incoming = client
        .session(tokio_stream::wrappers::UnboundedReceiverStream::new(out_rx))
        .await
        .map_err(|s| ExecutorError::Refused {
            url: url.clone(),
            reason: s.message().to_string(),
        })?
        .into_inner();

    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let broadcasts = Arc::new(Broadcasts::default());
    let runtime = TaskRuntime::new(cfg.cores as usize, broadcasts.clone(), ev_tx);
    let mut st = Running {
        after_victim: HashMap::new(),
        app,
        runtime,
        broadcasts,
        metrics,
        out,
    };
    let mut hb = tokio::time::interval(Duration::from_millis(reply.heartbeat_interval_ms.max(10)));
    hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let end = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            msg = incoming.next() => match msg {
                Some(Ok(m)) => {
                    if let Some(driver_message::Msg::Shutdown(s)) = &m.msg {
                        tracing::info!(reason = %s.reason, "driver asked this executor to stop");
                        break Ok(());
                    }
                    st.on_driver_message(m);
                }
                Some(Err(e)) => break Err(ExecutorError::DriverLost { url: url.clone(), reason: e.message().to_string() }),
                None => break Err(ExecutorError::DriverLost { url: url.clone(), reason: "the driver closed the session".into() }),
            },
            Some(ev) = ev_rx.recv() => st.on_runtime_event(ev),
            _ = hb.tick() => st.heartbeat(cfg.memory),
        }
    };
    for t in st.runtime.snapshot().tasks {
        let _ = st.runtime.kill(t.id);
    }
    end
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

    fn on_driver_message(&mut self, m: DriverMessage) {
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
        let body: TaskBody = match self
            .app
            .jobs()
            .get(id.job as usize)
            .and_then(|j| j.stages.get(id.stage as usize))
        {
            Some(stage) if id.partition < stage.partitions => {
                let f = stage.run_task.clone();
                Box::new(move |ctx| f(ctx))
            }
            _ => {
                let reason = format!(
                    "task {id} does not exist in app `{}` on this executor",
                    self.app.name()
                );
                self.update(
                    key,
                    task_update::State::Failed(neptune_proto::Failed { reason, records: 0 }),
                );
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
            self.update(
                key,
                task_update::State::Failed(neptune_proto::Failed { reason, records: 0 }),
            );
        }
    }

    fn kind_of(&self, job: u32) -> JobKind {
        self.app
            .jobs()
            .get(job as usize)
            .map_or(JobKind::Batch, |j| j.kind)
    }

    fn on_runtime_event(&mut self, ev: RuntimeEvent) {
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
                let s = neptune_proto::Suspended {
                    latency_ns: latency.as_nanos() as u64,
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
                let (label, state) = match outcome {
                    TaskOutcome::Succeeded(result) => {
                        self.metrics
                            .records
                            .with_label_values(&[kind])
                            .inc_by(records);
                        let s = neptune_proto::Succeeded {
                            result,
                            records,
                            elapsed_us: elapsed.as_micros() as u64,
                        };
                        ("succeeded", task_update::State::Succeeded(s))
                    }
                    TaskOutcome::Failed(reason) => {
                        tracing::warn!(task = %id, %reason, "task failed");
                        (
                            "failed",
                            task_update::State::Failed(neptune_proto::Failed { reason, records }),
                        )
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

    fn heartbeat(&self, memory_limit: u64) {
        let snap = self.runtime.snapshot();
        let used = memory::rss_bytes();
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
            spilled_bytes_total: 0,
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
