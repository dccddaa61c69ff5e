//! The driver's gRPC service: executors register, then hold one bidirectional session stream.
//! Handlers only translate messages into [`Inbound`] events for the event loop (which owns all
//! scheduling state) and forward its outgoing messages; they never block.

use neptune_proto::driver_server::Driver;
use neptune_proto::{
    ConfigEntry, DriverMessage, ExecutorMessage, Heartbeat, RegisterReply, RegisterRequest,
    TaskUpdate, executor_message,
};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Events the gRPC handlers hand to the event loop.
#[derive(Debug)]
pub enum Inbound {
    /// An executor opened its session.
    Connected {
        /// Executor id.
        id: String,
        /// Session number (a reconnect gets a new one; stale disconnects are ignored).
        session: u64,
        /// Task slots.
        cores: u32,
        /// Memory limit, bytes.
        memory_limit: u64,
        /// The executor's HTTP address (metrics).
        http_addr: String,
        /// Where the executor serves its shuffle blocks.
        block_addr: String,
        /// Where to send this executor messages.
        outbox: mpsc::UnboundedSender<Result<DriverMessage, Status>>,
    },
    /// The session stream ended or failed.
    Disconnected {
        /// Executor id.
        id: String,
        /// Session number.
        session: u64,
        /// Why.
        reason: String,
    },
    /// A heartbeat.
    Heartbeat {
        /// Executor id.
        id: String,
        /// Metrics.
        heartbeat: Heartbeat,
    },
    /// A task state change.
    Update {
        /// Executor id.
        id: String,
        /// The update.
        update: TaskUpdate,
    },
}

/// What the service needs to know, shared with the event loop.
#[derive(Debug)]
pub struct ServiceState {
    /// App name sent to executors.
    pub app: String,
    /// `--set` values sent to executors.
    pub config: Vec<(String, String)>,
    /// Heartbeat interval executors must use.
    pub heartbeat_interval: Duration,
    /// Events to the loop.
    pub inbound: mpsc::UnboundedSender<Inbound>,
    /// Registrations seen so far (cores and memory per id, for the session's Connected event).
    pub registered: std::sync::Mutex<std::collections::HashMap<String, (u32, u64, String, String)>>,
    next_id: AtomicU64,
    next_session: AtomicU64,
}

impl ServiceState {
    /// New service state.
    pub fn new(
        app: String,
        config: Vec<(String, String)>,
        heartbeat_interval: Duration,
        inbound: mpsc::UnboundedSender<Inbound>,
    ) -> Self {
        Self {
            app,
            config,
            heartbeat_interval,
            inbound,
            registered: Default::default(),
            next_id: AtomicU64::new(0),
            next_session: AtomicU64::new(1),
        }
    }
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct DriverService {
    state: Arc<ServiceState>,
}

impl DriverService {
    /// A service over `state`.
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<DriverMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Driver for DriverService {
    async fn register(
        &self,
        req: Request<RegisterRequest>,
    ) -> Result<Response<RegisterReply>, Status> {
        let peer = req.remote_addr();
        let r = req.into_inner();
        let block_addr = advertised(&r.block_addr, peer);
        if r.cores == 0 {
            return Err(Status::invalid_argument(
                "register: cores must be at least 1",
            ));
        }
        let id = if r.executor_id.is_empty() {
            format!(
                "exec-{}",
                self.state.next_id.fetch_add(1, Ordering::Relaxed)
            )
        } else {
            r.executor_id.clone()
        };
        self.state
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.clone(),
                (r.cores, r.memory_limit, r.http_addr.clone(), block_addr),
            );
        tracing::info!(executor = %id, cores = r.cores, memory = r.memory_limit, http = %r.http_addr, "executor registered");
        Ok(Response::new(RegisterReply {
            executor_id: id,
            app: self.state.app.clone(),
            config: self
                .state
                .config
                .iter()
                .map(|(k, v)| ConfigEntry {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            heartbeat_interval_ms: self.state.heartbeat_interval.as_millis() as u64,
        }))
    }

    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<ExecutorMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut incoming = req.into_inner();
        let first = incoming
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("session: stream closed before hello"))??;
        let Some(executor_message::Msg::Hello(hello)) = first.msg else {
            return Err(Status::invalid_argument(
                "session: first message must be hello",
            ));
        };
        let id = hello.executor_id;
        let (cores, memory_limit, http_addr, block_addr) = self
            .state
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .ok_or_else(|| {
                Status::failed_precondition(format!("session: executor `{id}` has not registered"))
            })?;
        let session = self.state.next_session.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let inbound = self.state.inbound.clone();
        let _ = inbound.send(Inbound::Connected {
            id: id.clone(),
            session,
            cores,
            memory_limit,
            http_addr,
            block_addr,
            outbox: tx,
        });
        tokio::spawn(async move {
            let reason = loop {
                match incoming.next().await {
                    None => break "session closed by executor".to_string(),
                    Some(Err(e)) => break format!("session error: {e}"),
                    Some(Ok(m)) => {
                        let ev = match m.msg {
                            Some(executor_message::Msg::Heartbeat(heartbeat)) => {
                                Inbound::Heartbeat {
                                    id: id.clone(),
                                    heartbeat,
                                }
                            }
                            Some(executor_message::Msg::Update(update)) => Inbound::Update {
                                id: id.clone(),
                                update,
                            },
                            Some(executor_message::Msg::Hello(_)) | None => {
                                tracing::warn!(executor = %id, "ignoring unexpected session message");
                                continue;
                            }
                        };
                        if inbound.send(ev).is_err() {
                            return;
                        }
                    }
                }
            };
            let _ = inbound.send(Inbound::Disconnected {
                id,
                session,
                reason,
            });
        });
        let out = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        Ok(Response::new(Box::pin(out)))
    }
}

/// The block server address to give other executors: the executor's own, with an unspecified
/// host (it listens on all interfaces) replaced by the address its connection came from.
fn advertised(block_addr: &str, peer: Option<std::net::SocketAddr>) -> String {
    match (block_addr.parse::<std::net::SocketAddr>(), peer) {
        (Ok(a), Some(p)) if a.ip().is_unspecified() => {
            std::net::SocketAddr::new(p.ip(), a.port()).to_string()
        }
        _ => block_addr.to_string(),
    }
}
