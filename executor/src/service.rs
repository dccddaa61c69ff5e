//! The executor process, in the order its data flows: [`connect`] to the driver, start the block
//! server, [`register`](crate::register) on the session stream, then the
//! [session loop](crate::session), which hands driver messages to [`Tasks`](crate::tasks) (and
//! through it to the [task runtime](crate::runtime)) and sends the runtime's events back as
//! [updates](crate::updates). Also serves `/metrics`, `/healthz`, `/readyz`.
//!
//! Transport: the channel to the driver and block fetches use mutual TLS with the app's
//! credentials unless `--insecure` (see `neptune_net`); the driver URL's scheme must say so
//! (`https://` under TLS), so a plaintext connection is never made by mistake.
//!
//! Threads: tokio runs the network side; tasks run on the `may` workers of the task runtime
//! (CPU-bound work never runs on the threads serving RPC/HTTP).

use crate::blocks::{BlockStore, server};
use crate::metrics::ExecutorMetrics;
use neptune_core::app::AppEntry;
use neptune_net::{Limits, NetMetrics, Security};
use neptune_proto::Register;
use neptune_proto::driver_client::DriverClient;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Executor settings (from the CLI).
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Driver gRPC URL, e.g. `https://127.0.0.1:7077` (`http://` only under `--insecure`).
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
    /// Block server listen address (port 0: any free port); the executor advertises the address
    /// it bound.
    pub block_listen: SocketAddr,
    /// Mutual TLS or `--insecure`.
    pub security: Security,
    /// Server limits (connection caps, timeouts).
    pub limits: Limits,
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
    /// The block server's address could not be bound.
    #[error("cannot listen on --block-listen {addr}: {source}")]
    BindBlocks {
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
    /// The driver accepted the connection but sent no welcome in time (a stopped or wedged
    /// driver: its kernel still accepts connections).
    #[error(
        "the driver at {url} did not answer the registration within {timeout:?} (--connect-timeout)"
    )]
    NoWelcome {
        /// URL.
        url: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The driver's welcome is malformed (a driver of another version, or not a driver).
    #[error("the driver at {url} sent an invalid welcome: {reason}")]
    BadWelcome {
        /// URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The app the driver runs is not in this binary, or its config is bad.
    #[error("cannot build app: {0}")]
    App(#[from] neptune_core::app::BuildError),
    /// Nothing came from the driver (not even the keep-alive answering each heartbeat) for its
    /// `heartbeat.driver_timeout_ms`.
    #[error(
        "lost the driver at {url}: nothing from it for {silent_for:?}, past heartbeat.driver_timeout_ms ({timeout:?}); it is stopped, wedged or cut off"
    )]
    DriverSilent {
        /// URL.
        url: String,
        /// `heartbeat.driver_timeout_ms`.
        timeout: Duration,
        /// How long it was silent.
        silent_for: Duration,
    },
    /// The driver dropped this executor and it could not (or may not) register again.
    #[error(
        "the driver at {url} dropped this executor ({reason}) and it could not register again within executor.rejoin_attempts = {attempts}{}",
        last.as_deref().map(|l| format!(": {l}")).unwrap_or_default()
    )]
    Rejoin {
        /// URL.
        url: String,
        /// The driver's reason for the drop.
        reason: String,
        /// `executor.rejoin_attempts`.
        attempts: u32,
        /// The last registration's error, if any was tried.
        last: Option<String>,
    },
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
    check_scheme(&cfg)?;
    let listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .map_err(|source| ExecutorError::Bind {
            addr: cfg.http,
            source,
        })?;
    let blocks_listener = tokio::net::TcpListener::bind(cfg.block_listen)
        .await
        .map_err(|source| ExecutorError::BindBlocks {
            addr: cfg.block_listen,
            source,
        })?;
    let http_addr = listener.local_addr().unwrap_or(cfg.http);
    let labels: Vec<(&str, &str)> = cfg.id.iter().map(|id| ("executor", id.as_str())).collect();
    let net = NetMetrics::new(&labels, cfg.security.is_tls());
    let metrics_cell: Arc<OnceLock<ExecutorMetrics>> = Arc::new(OnceLock::new());
    let http_stop = Arc::new(tokio::sync::Notify::new());
    let http = tokio::spawn({
        let router = crate::http::router(metrics_cell.clone(), net.clone());
        let stop = http_stop.clone();
        neptune_net::http::serve(
            "http",
            listener,
            router,
            cfg.limits,
            net.clone(),
            async move { stop.notified().await },
        )
    });
    let result = serve(
        cfg,
        apps,
        http_addr,
        blocks_listener,
        net,
        metrics_cell,
        shutdown,
    )
    .await;
    http_stop.notify_waiters();
    let _ = tokio::time::timeout(Duration::from_secs(1), http).await;
    result
}

/// The driver URL's scheme must match the transport: `https` under mutual TLS, `http` under
/// `--insecure` (tonic would silently speak plaintext to an `http://` URL even with TLS set up).
fn check_scheme(cfg: &ExecutorConfig) -> Result<(), ExecutorError> {
    let want = cfg.security.scheme();
    let scheme = cfg.driver_url.split_once("://").map(|(s, _)| s);
    if scheme == Some(want) {
        return Ok(());
    }
    Err(ExecutorError::BadDriverUrl {
        url: cfg.driver_url.clone(),
        reason: if cfg.security.is_tls() {
            "the driver is reached over mutual TLS: use https://HOST:PORT (or --insecure with http:// \
             if the driver runs --insecure too)"
                .into()
        } else {
            "under --insecure the driver is reached in plaintext: use http://HOST:PORT".into()
        },
    })
}

async fn connect(
    cfg: &ExecutorConfig,
) -> Result<DriverClient<tonic::transport::Channel>, ExecutorError> {
    let bad_url = |e: tonic::transport::Error| ExecutorError::BadDriverUrl {
        url: cfg.driver_url.clone(),
        reason: e.to_string(),
    };
    let l = &cfg.limits;
    let mut endpoint = tonic::transport::Endpoint::from_shared(cfg.driver_url.clone())
        .map_err(bad_url)?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .tcp_keepalive(Some(l.tcp_keepalive))
        .http2_keep_alive_interval(l.http2_keepalive_interval)
        .keep_alive_timeout(l.http2_keepalive_timeout)
        .keep_alive_while_idle(true);
    if let Security::Mtls(tls) = &cfg.security {
        endpoint = endpoint
            .tls_config(tls.grpc_client(l.handshake_timeout))
            .map_err(bad_url)?;
    }
    // On Kubernetes executors start with their driver and retry until it listens: exponential
    // back-off (50 ms doubling to 1 s, the `backon` crate) for at most the connect timeout,
    // saying so at info level once at the first failure, then every 10 s.
    let started = Instant::now();
    let mut next_log = started;
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(1))
        .with_total_delay(Some(cfg.connect_timeout))
        .without_max_times();
    // The total delay bounds the sleeps; the deadline bounds the wall time (slow attempts too).
    let deadline = started + cfg.connect_timeout;
    let connected = backon::Retryable::retry(|| endpoint.connect(), backoff)
        .when(|_| Instant::now() < deadline)
        .notify(|e, _| {
            if Instant::now() >= next_log {
                tracing::info!(
                    url = %cfg.driver_url,
                    error = %e,
                    waited = ?started.elapsed(),
                    gives_up_after = ?cfg.connect_timeout,
                    "driver not reachable yet; retrying with back-off"
                );
                next_log = Instant::now() + Duration::from_secs(10);
            }
        })
        .await;
    match connected {
        Ok(ch) => {
            if next_log > started {
                tracing::info!(url = %cfg.driver_url, waited = ?started.elapsed(), "reached the driver");
            }
            // The driver's own limit arrives with its welcome; until then accept the most any
            // driver may send (results sent back are checked against its limit).
            let max = neptune_proto::MAX_MAX_MESSAGE_BYTES as usize;
            Ok(DriverClient::new(ch)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max))
        }
        Err(e) => Err(ExecutorError::Connect {
            url: cfg.driver_url.clone(),
            timeout: cfg.connect_timeout,
            reason: format!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
        }),
    }
}

/// Connect, start the block server, register, and run the session until it ends.
async fn serve(
    cfg: ExecutorConfig,
    apps: &'static [AppEntry],
    http_addr: SocketAddr,
    blocks_listener: tokio::net::TcpListener,
    net: NetMetrics,
    metrics_cell: Arc<OnceLock<ExecutorMetrics>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ExecutorError> {
    let mut client = connect(&cfg).await?;
    let store_id = cfg
        .id
        .clone()
        .unwrap_or_else(|| format!("pid{}", std::process::id()));
    let client_tls = match &cfg.security {
        Security::Mtls(t) => Some(t.blocks_client()),
        Security::Insecure => None,
    };
    let blocks = Arc::new(
        BlockStore::new(&store_id, cfg.memory, cfg.cores, client_tls)
            .map_err(|source| ExecutorError::BlockStore { source })?,
    );
    let (block_addr, block_server) = server::start(
        blocks_listener,
        blocks.clone(),
        &cfg.security,
        cfg.limits,
        net,
    )
    .map_err(|source| ExecutorError::BindBlocks {
        addr: cfg.block_listen,
        source,
    })?;
    let offer = Register {
        executor_id: cfg.id.clone().unwrap_or_default(),
        cores: cfg.cores,
        memory_limit: cfg.memory,
        http_addr: http_addr.to_string(),
        block_addr: block_addr.to_string(),
    };
    let result = sessions(
        &mut client,
        &cfg,
        offer,
        apps,
        &blocks,
        &metrics_cell,
        shutdown,
    )
    .await;
    block_server.abort();
    result
}

/// Register with `offer` and run sessions until one ends for good: the driver says stop (Ok),
/// it is lost or silent (Err), or it dropped this executor and registering again failed
/// `executor.rejoin_attempts` times in a row (Err). A dropped executor starts its new session
/// empty: the driver re-ran its tasks and forgot its blocks, so they are dropped here too.
async fn sessions(
    client: &mut DriverClient<tonic::transport::Channel>,
    cfg: &ExecutorConfig,
    mut offer: Register,
    apps: &'static [AppEntry],
    blocks: &Arc<BlockStore>,
    metrics_cell: &Arc<OnceLock<ExecutorMetrics>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ExecutorError> {
    use crate::session::SessionEnd;
    use backon::{ExponentialBuilder, Retryable};
    tokio::pin!(shutdown);
    let mut registered = crate::register::register(client, cfg, offer.clone(), apps).await?;
    loop {
        // Every session's log lines (and the task spans within) say which executor and session.
        let span =
            tracing::info_span!("session", executor = %registered.id, session = registered.session);
        let end = tracing::Instrument::instrument(
            crate::session::run(
                registered,
                cfg,
                blocks.clone(),
                metrics_cell.clone(),
                shutdown.as_mut(),
            ),
            span,
        )
        .await?;
        let (id, reason, attempts) = match end {
            SessionEnd::Stopped => return Ok(()),
            SessionEnd::Dropped {
                id,
                reason,
                rejoin_attempts,
            } => (id, reason, rejoin_attempts),
        };
        blocks.clear();
        let gave_up = |last: Option<String>| ExecutorError::Rejoin {
            url: cfg.driver_url.clone(),
            reason: reason.clone(),
            attempts,
            last,
        };
        if attempts == 0 {
            return Err(gave_up(None));
        }
        offer.executor_id = id;
        // Exponential back-off (100 ms doubling to 5 s, jittered) between registrations; the
        // first comes after the first delay so a driver that just resumed settles first.
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(attempts as usize)
            .with_jitter();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rejoin = (|| {
            let mut client = client.clone();
            let offer = offer.clone();
            async move { crate::register::register(&mut client, cfg, offer, apps).await }
        })
        .retry(backoff)
        // A driver that refuses for good (another app, a bad welcome) will not change its mind.
        .when(|e| {
            matches!(
                e,
                ExecutorError::Refused { .. }
                    | ExecutorError::Connect { .. }
                    | ExecutorError::NoWelcome { .. }
            )
        })
        .notify(
            |e, after| tracing::warn!(error = %e, ?after, "registering again failed; retrying"),
        );
        registered = tokio::select! {
            biased;
            () = shutdown.as_mut() => return Ok(()),
            r = rejoin => r.map_err(|e| gave_up(Some(e.to_string())))?,
        };
        tracing::info!(executor = %registered.id, session = registered.session, "registered again after the driver dropped this executor");
    }
}
