//! The executor process: registers with the driver, holds the session stream, turns driver
//! messages into task runtime calls and runtime events into task updates, sends heartbeats, and
//! serves `/metrics`, `/healthz`, `/readyz`.
//!
//! Threads: tokio runs the network side; tasks run on the `may` workers of the task runtime
//! (CPU-bound work never runs on the threads serving RPC/HTTP).

use crate::blocks::{BlockStore, server};
use crate::metrics::ExecutorMetrics;
use crate::receivers::Receivers;
use crate::runtime::TaskRuntime;
use crate::session::Running;
use neptune_core::app::{AppEntry, build_app};
use neptune_core::config::Config;
use neptune_core::state::Broadcasts;
use neptune_proto::driver_client::DriverClient;
use neptune_proto::{ExecutorMessage, Hello, RegisterRequest, driver_message, executor_message};
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
    /// The block store's spill directory could not be created.
    #[error("cannot create the shuffle spill directory: {source}")]
    BlockStore {
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

async fn session(
    cfg: ExecutorConfig,
    apps: &'static [AppEntry],
    http_addr: SocketAddr,
    metrics_cell: Arc<OnceLock<ExecutorMetrics>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ExecutorError> {
    let url = cfg.driver_url.clone();
    let mut client = connect(&cfg).await?;
    let store_id = cfg
        .id
        .clone()
        .unwrap_or_else(|| format!("pid{}", std::process::id()));
    let blocks = Arc::new(
        BlockStore::new(&store_id, cfg.memory, cfg.cores)
            .map_err(|source| ExecutorError::BlockStore { source })?,
    );
    let (block_addr, block_server) = server::start(http_addr.ip(), blocks.clone())
        .await
        .map_err(|source| ExecutorError::Bind {
            addr: cfg.http,
            source,
        })?;
    let reply = client
        .register(RegisterRequest {
            executor_id: cfg.id.clone().unwrap_or_default(),
            cores: cfg.cores,
            memory_limit: cfg.memory,
            http_addr: http_addr.to_string(),
            pid: std::process::id(),
            block_addr: block_addr.to_string(),
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
    app.check_memory(cfg.memory)
        .map_err(neptune_core::app::BuildError::from)?;
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
    blocks.set_executor_id(&id);
    let receivers = Arc::new(Receivers::new(
        app.receivers().to_vec(),
        cfg.memory,
        Some(metrics.clone()),
    ));
    blocks.set_receivers(receivers.clone());
    let mut st = Running {
        after_victim: HashMap::new(),
        app,
        runtime,
        broadcasts,
        metrics,
        out,
        blocks,
        receivers,
        extras: Arc::default(),
        spilled_reported: 0,
        broadcasts_reported: Default::default(),
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
    block_server.abort();
    for t in st.runtime.snapshot().tasks {
        let _ = st.runtime.kill(t.id);
    }
    end
}
