//! Neptune driver: the job manager (DAG side), the task scheduler (a pure synchronous state
//! machine with the `neptune`/LMA and baseline policies), the executor registry fed by heartbeats,
//! and the gRPC and HTTP servers around them.
//!
//! [`Driver::bind`] opens the sockets (so callers learn the real ports before anything runs);
//! [`Driver::run`] serves until the app finishes, fails, or shutdown is requested.
//!
//! Transport (`neptune_net`): the gRPC port accepts only executors presenting the app's
//! certificate (mutual TLS) unless `--insecure`, with a connection cap, handshake timeout, TCP
//! and HTTP/2 keepalive; the HTTP port is plain HTTP with header and request timeouts.

pub mod config;
pub mod event_loop;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod registration;
pub mod scheduler;
pub mod server;
#[cfg(test)]
mod server_tests;
pub mod stats;
pub mod status;

pub use config::DriverConfig;
pub use status::Status;

use event_loop::{EventLoop, LoopEnd};
use metrics::DriverMetrics;
use neptune_core::app::App;
use neptune_net::{Limits, NetMetrics, Security};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;

/// Why the driver stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// A job failed (a task failed too often, or a commit failed).
    #[error("{0}")]
    JobFailed(String),
}

/// How the driver ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every job committed all its runs.
    Finished,
    /// Shutdown was requested (Ctrl-C, SIGTERM, `--duration`).
    Stopped,
}

/// A driver with its sockets bound.
pub struct Driver {
    cfg: DriverConfig,
    app: Arc<App>,
    grpc: TcpListener,
    http: TcpListener,
    metrics: DriverMetrics,
    status: Arc<RwLock<Status>>,
    security: Security,
    limits: Limits,
    net: NetMetrics,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("app", &self.cfg.app)
            .finish()
    }
}

impl Driver {
    /// Bind the gRPC and HTTP listeners; cluster connections will use `security`, every server
    /// `limits`.
    ///
    /// # Errors
    /// [`DriverError::Bind`] naming the address.
    pub async fn bind(
        cfg: DriverConfig,
        app: Arc<App>,
        security: Security,
        limits: Limits,
    ) -> Result<Self, DriverError> {
        let grpc = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| DriverError::Bind {
                what: "--listen",
                addr: cfg.listen,
                source,
            })?;
        let http = TcpListener::bind(cfg.http)
            .await
            .map_err(|source| DriverError::Bind {
                what: "--http",
                addr: cfg.http,
                source,
            })?;
        let status = Arc::new(RwLock::new(Status {
            app: app.name().to_string(),
            policy: cfg.scheduler.policy.as_str().to_string(),
            placement: cfg.scheduler.placement.as_str().to_string(),
            executors_expected: cfg.executors,
            transport: security.mode().to_string(),
            ..Status::default()
        }));
        if cfg.executors + 16 > limits.max_connections {
            tracing::warn!(
                executors = cfg.executors,
                max_connections = limits.max_connections,
                "the gRPC connection cap (a quarter of the open-file limit) is close to the number \
                 of executors; raise the process's open-file limit"
            );
        }
        let net = NetMetrics::new(&[], security.is_tls());
        Ok(Self {
            cfg,
            app,
            grpc,
            http,
            metrics: DriverMetrics::new(),
            status,
            security,
            limits,
            net,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().unwrap_or(self.cfg.listen)
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or(self.cfg.http)
    }

    /// A live view of the status (for progress displays).
    pub fn status(&self) -> Arc<RwLock<Status>> {
        self.status.clone()
    }

    /// Serve until the app finishes, a job fails, or `shutdown` resolves; returns the final status.
    ///
    /// # Errors
    /// [`DriverError::JobFailed`] when a job failed; [`DriverError::Grpc`] when the server died.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(Outcome, Status), DriverError> {
        let (tx, rx) = tokio::sync::mpsc::channel(server::INBOUND_CAPACITY);
        let max_message = usize::try_from(self.cfg.max_message_bytes).unwrap_or(usize::MAX);
        let stop = Arc::new(tokio::sync::Notify::new());
        let l = self.limits;
        let grpc = {
            let stop = stop.clone();
            let tls = match &self.security {
                Security::Mtls(t) => Some(t.grpc_server()),
                Security::Insecure => None,
            };
            // TCP options and the TLS handshake are the acceptor's (tonic ignores its own TCP
            // settings with a custom incoming stream).
            let incoming =
                neptune_net::accept::Acceptor::new("grpc", self.grpc, tls, l, self.net.clone())
                    .into_incoming();
            let service =
                server::DriverService::new(tx, self.metrics.refused_registrations.clone());
            let svc = neptune_proto::driver_server::DriverServer::new(service)
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message);
            tokio::spawn(async move {
                // No request timeout: the session is one stream for the executor's lifetime;
                // dead peers are found by HTTP/2 and TCP keepalive instead.
                tonic::transport::Server::builder()
                    .http2_keepalive_interval(Some(l.http2_keepalive_interval))
                    .http2_keepalive_timeout(Some(l.http2_keepalive_timeout))
                    .max_concurrent_streams(l.max_concurrent_streams)
                    .add_service(svc)
                    .serve_with_incoming_shutdown(incoming, async move { stop.notified().await })
                    .await
            })
        };
        let serving = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let http = {
            let stop = stop.clone();
            let router = http::router(
                self.metrics.clone(),
                self.status.clone(),
                self.net.clone(),
                http::Admin {
                    token: self.security.admin_token(),
                    config: self.cfg.config.clone(),
                },
                serving.clone(),
            );
            tokio::spawn(neptune_net::http::serve(
                "http",
                self.http,
                router,
                l,
                self.net.clone(),
                async move { stop.notified().await },
            ))
        };
        // Both listeners were bound in `bind` and the app was built before it: executors can
        // register from now on, so the driver is ready (it no longer waits for them to be).
        serving.store(true, std::sync::atomic::Ordering::SeqCst);
        let lp = EventLoop::new(self.cfg, self.app, self.metrics, self.status);
        let (end, status) = lp.run(rx, shutdown).await;
        serving.store(false, std::sync::atomic::Ordering::SeqCst);
        // Give executors a moment to read the Shutdown message before the streams close.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        stop.notify_waiters();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), grpc).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), http).await;
        match end {
            LoopEnd::Finished => Ok((Outcome::Finished, status)),
            LoopEnd::Stopped => Ok((Outcome::Stopped, status)),
            LoopEnd::Failed(f) => Err(DriverError::JobFailed(f)),
        }
    }
}
