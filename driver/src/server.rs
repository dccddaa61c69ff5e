//! The driver's gRPC service: one bidirectional session stream per executor. Handlers only
//! check and translate messages into [`Inbound`] events for the event loop (which owns all
//! scheduling state, and decides registrations) and forward its outgoing messages; they never
//! block on anything but the loop's bounded queue.
//!
//! A session starts with the executor's `Register`: its values are checked here
//! ([`registration::check`]), then the loop accepts it (its first outgoing message is the
//! `Welcome`) or refuses it (the stream ends with the loop's status). Every later message is
//! tagged with the executor id and session number it came from, so the loop can tell a current
//! session from a stale one.

use crate::registration::{self, Registration};
use neptune_proto::driver_server::Driver;
use neptune_proto::{DriverMessage, ExecutorMessage, Heartbeat, TaskUpdate, executor_message};
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Messages the loop may have queued for one executor before it counts as not reading its
/// session (and is dropped): far more than the launches, kills and announcements in flight to
/// an executor that keeps up.
pub const OUTBOX_CAPACITY: usize = 4096;
/// Events the session handlers may have queued for the loop; when it is full, handlers wait
/// (and executors' streams with them) instead of the queue growing without bound.
pub const INBOUND_CAPACITY: usize = 1024;
/// How long a new session may take to send its registration.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the loop sends one executor its messages.
pub type Outbox = mpsc::Sender<Result<DriverMessage, Status>>;

/// A registration the loop accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcomed {
    /// The executor's id (as asked, or assigned).
    pub id: String,
    /// The session's number.
    pub session: u64,
}

/// Events the gRPC handlers (and the admin endpoint) hand to the event loop.
#[derive(Debug)]
pub enum Inbound {
    /// A live scheduling change (`POST /admin/scheduling`): applied whole or refused.
    Reconfigure {
        /// `(key, value)` pairs of live settings.
        changes: Vec<(String, String)>,
        /// The scheduling in force afterwards, or why the change was refused.
        reply: oneshot::Sender<Result<crate::status::Scheduling, crate::scheduler::ConfigError>>,
    },
    /// An executor asks to register (its values are checked). The loop answers on `reply`;
    /// when it accepts, it has queued the `Welcome` on `outbox` first.
    Register {
        /// The checked registration.
        registration: Registration,
        /// Where to send this executor messages.
        outbox: Outbox,
        /// The loop's answer: the session, or the status ending the stream.
        reply: oneshot::Sender<Result<Welcomed, Status>>,
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
        /// Session number.
        session: u64,
        /// Metrics.
        heartbeat: Heartbeat,
    },
    /// A task update.
    Update {
        /// Executor id.
        id: String,
        /// Session number.
        session: u64,
        /// The update.
        update: TaskUpdate,
        /// When the session read it off the wire (before it waited in the loop's queue).
        received: std::time::Instant,
    },
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct DriverService {
    inbound: mpsc::Sender<Inbound>,
    /// Registrations refused here (malformed values), counted under `invalid`.
    refused: prometheus::IntCounterVec,
}

impl DriverService {
    /// A service handing its events to `inbound`, counting malformed registrations in
    /// `refused` (the driver's `refused_registrations` metric).
    pub fn new(inbound: mpsc::Sender<Inbound>, refused: prometheus::IntCounterVec) -> Self {
        Self { inbound, refused }
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<DriverMessage, Status>> + Send>>;

fn stopping() -> Status {
    Status::unavailable("the driver is stopping")
}

#[tonic::async_trait]
impl Driver for DriverService {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<ExecutorMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let peer = req.remote_addr();
        let mut incoming = req.into_inner();
        let first = tokio::time::timeout(REGISTER_TIMEOUT, incoming.next())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "session: no registration within {REGISTER_TIMEOUT:?}"
                ))
            })?
            .ok_or_else(|| Status::invalid_argument("session: closed before registering"))??;
        let Some(executor_message::Msg::Register(r)) = first.msg else {
            return Err(Status::invalid_argument(
                "session: the first message must be a registration",
            ));
        };
        let registration = match registration::check(r, peer) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(?peer, error = %e, "registration refused");
                self.refused.with_label_values(&["invalid"]).inc();
                return Err(Status::invalid_argument(format!("register: {e}")));
            }
        };
        let (outbox, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let (reply, answer) = oneshot::channel();
        self.inbound
            .send(Inbound::Register {
                registration,
                outbox,
                reply,
            })
            .await
            .map_err(|_| stopping())?;
        let Welcomed { id, session } = answer.await.map_err(|_| stopping())??;
        tokio::spawn(read_session(incoming, id, session, self.inbound.clone()));
        let out = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(out)))
    }
}

/// Hand every message of a registered session to the loop, then say it ended.
async fn read_session(
    mut incoming: Streaming<ExecutorMessage>,
    id: String,
    session: u64,
    inbound: mpsc::Sender<Inbound>,
) {
    let reason = loop {
        match incoming.next().await {
            None => break "session closed by executor".to_string(),
            Some(Err(e)) => break format!("session error: {e}"),
            Some(Ok(m)) => {
                let ev = match m.msg {
                    Some(executor_message::Msg::Heartbeat(heartbeat)) => Inbound::Heartbeat {
                        id: id.clone(),
                        session,
                        heartbeat,
                    },
                    Some(executor_message::Msg::Update(update)) => Inbound::Update {
                        id: id.clone(),
                        session,
                        update,
                        received: std::time::Instant::now(),
                    },
                    Some(executor_message::Msg::Register(_)) | None => {
                        tracing::debug!(executor = %id, "ignoring an unexpected session message");
                        continue;
                    }
                };
                if inbound.send(ev).await.is_err() {
                    return;
                }
            }
        }
    };
    let _ = inbound
        .send(Inbound::Disconnected {
            id,
            session,
            reason,
        })
        .await;
}
