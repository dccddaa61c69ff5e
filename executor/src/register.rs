//! The registration handshake, on the session stream itself: the executor's first message is a
//! `Register` (id, cores, memory, addresses), the driver's first message a `Welcome` (the id it
//! confirmed or assigned, a session number, the app and its config, the heartbeat interval and
//! its message size limit), or an error status saying why it refused.
//!
//! A driver refuses an id that has a live session (ALREADY_EXISTS) rather than let a newcomer
//! take it over. An executor restarted under its old id may register before the driver has
//! noticed the old session's end (its stream closing, or its heartbeats stopping), so this
//! refusal is retried until the connect timeout; every other refusal is final.

use crate::service::{ExecutorConfig, ExecutorError};
use neptune_core::app::{App, AppEntry, build_app};
use neptune_core::config::Config;
use neptune_core::ids::check_executor_id;
use neptune_proto::driver_client::DriverClient;
use neptune_proto::{
    DriverMessage, ExecutorMessage, Register, Welcome, driver_message, executor_message,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// Pause between two registrations refused because the id's old session still lives.
const RETRY_TAKEN_ID: Duration = Duration::from_millis(500);

/// The least time given to one registration's welcome, however little of the connect timeout
/// is left (a driver that answered "id taken" just before the deadline gets this much more).
const MIN_WELCOME_WAIT: Duration = Duration::from_secs(1);

/// A registered executor: what the driver's welcome said, and the session stream.
pub(crate) struct Registered {
    /// The id the driver confirmed or assigned.
    pub(crate) id: String,
    /// The session number the driver gave this registration.
    pub(crate) session: u64,
    /// The app the driver runs, built from the driver's config.
    pub(crate) app: Arc<App>,
    /// How often to send heartbeats.
    pub(crate) heartbeat: Duration,
    /// Driver silence after which the session ends.
    pub(crate) driver_timeout: Duration,
    /// Largest message the driver accepts.
    pub(crate) max_message_bytes: u64,
    /// Messages from the driver (after the welcome).
    pub(crate) incoming: tonic::Streaming<DriverMessage>,
    /// Messages to the driver.
    pub(crate) out: mpsc::UnboundedSender<ExecutorMessage>,
}

/// Open the session stream and register with `offer`; retry while the driver says the id is
/// taken, until `cfg.connect_timeout`, which also bounds the wait for each welcome: a stopped
/// driver's kernel still accepts the stream, and HTTP/2 keep-alive would notice only after tens
/// of seconds.
///
/// # Errors
/// [`ExecutorError::NoWelcome`] when the driver does not answer in time,
/// [`ExecutorError::Refused`] with the driver's reason, [`ExecutorError::BadWelcome`] when the
/// welcome is malformed, [`ExecutorError::App`] when the app cannot be built here.
pub(crate) async fn register(
    client: &mut DriverClient<Channel>,
    cfg: &ExecutorConfig,
    offer: Register,
    apps: &'static [AppEntry],
) -> Result<Registered, ExecutorError> {
    let deadline = Instant::now() + cfg.connect_timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(answered) = tokio::time::timeout(
            left.max(MIN_WELCOME_WAIT),
            attempt(client, cfg, offer.clone()),
        )
        .await
        else {
            return Err(ExecutorError::NoWelcome {
                url: cfg.driver_url.clone(),
                timeout: cfg.connect_timeout,
            });
        };
        match answered {
            Err(s) if s.code() == tonic::Code::AlreadyExists && Instant::now() < deadline => {
                tracing::warn!(reason = s.message(), "executor id in use; retrying");
                tokio::time::sleep(RETRY_TAKEN_ID).await;
            }
            Err(s) => {
                return Err(ExecutorError::Refused {
                    url: cfg.driver_url.clone(),
                    reason: s.message().to_string(),
                });
            }
            Ok((welcome, incoming, out)) => {
                return welcomed(cfg, welcome, incoming, out, apps);
            }
        }
    }
}

type Opened = (
    Welcome,
    tonic::Streaming<DriverMessage>,
    mpsc::UnboundedSender<ExecutorMessage>,
);

/// One registration: open the stream, send `offer`, read the first reply.
async fn attempt(
    client: &mut DriverClient<Channel>,
    cfg: &ExecutorConfig,
    offer: Register,
) -> Result<Opened, tonic::Status> {
    let (out, out_rx) = mpsc::unbounded_channel::<ExecutorMessage>();
    let _ = out.send(ExecutorMessage {
        msg: Some(executor_message::Msg::Register(offer)),
    });
    let mut incoming = client
        .session(tokio_stream::wrappers::UnboundedReceiverStream::new(out_rx))
        .await?
        .into_inner();
    match incoming.next().await {
        Some(Ok(DriverMessage {
            msg: Some(driver_message::Msg::Welcome(w)),
        })) => Ok((w, incoming, out)),
        Some(Ok(_)) => Err(tonic::Status::internal(format!(
            "the driver at {} did not start the session with a welcome",
            cfg.driver_url
        ))),
        Some(Err(s)) => Err(s),
        None => Err(tonic::Status::unavailable(
            "the driver closed the session before welcoming this executor",
        )),
    }
}

/// What is wrong with welcome `w`, for an executor that asked for id `asked`.
fn check_welcome(asked: Option<&str>, w: &Welcome) -> Result<(), String> {
    check_executor_id(&w.executor_id).map_err(|e| e.to_string())?;
    if let Some(asked) = asked
        && asked != w.executor_id
    {
        return Err(format!(
            "it registered this executor as `{}`, not `{asked}`",
            w.executor_id
        ));
    }
    if !(1..=60_000).contains(&w.heartbeat_interval_ms) {
        return Err(format!(
            "heartbeat interval {} ms is not within 1..=60000",
            w.heartbeat_interval_ms
        ));
    }
    let silence = w.heartbeat_interval_ms.saturating_mul(3)..=600_000;
    if !silence.contains(&w.driver_timeout_ms) {
        return Err(format!(
            "driver timeout {} ms is not within {silence:?} (3 heartbeat intervals to 10 minutes)",
            w.driver_timeout_ms
        ));
    }
    let limits = neptune_proto::MIN_MAX_MESSAGE_BYTES..=neptune_proto::MAX_MAX_MESSAGE_BYTES;
    if !limits.contains(&w.max_message_bytes) {
        return Err(format!(
            "message size limit {} is not within {limits:?}",
            w.max_message_bytes
        ));
    }
    Ok(())
}

/// Check the welcome and build the app it names.
fn welcomed(
    cfg: &ExecutorConfig,
    w: Welcome,
    incoming: tonic::Streaming<DriverMessage>,
    out: mpsc::UnboundedSender<ExecutorMessage>,
    apps: &'static [AppEntry],
) -> Result<Registered, ExecutorError> {
    check_welcome(cfg.id.as_deref(), &w).map_err(|reason| ExecutorError::BadWelcome {
        url: cfg.driver_url.clone(),
        reason,
    })?;
    let config = Config::from_pairs(w.config.into_iter().map(|e| (e.key, e.value)));
    let app = Arc::new(build_app(apps, &w.app, Arc::new(config))?);
    app.check_memory(cfg.memory)
        .map_err(neptune_core::app::BuildError::from)?;
    tracing::info!(executor = %w.executor_id, session = w.session, app = %w.app, cores = cfg.cores, "registered with the driver");
    Ok(Registered {
        id: w.executor_id,
        session: w.session,
        app,
        heartbeat: Duration::from_millis(w.heartbeat_interval_ms),
        driver_timeout: Duration::from_millis(w.driver_timeout_ms),
        max_message_bytes: w.max_message_bytes,
        incoming,
        out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Welcome {
        Welcome {
            executor_id: "exec-0".into(),
            session: 1,
            app: "x".into(),
            config: Vec::new(),
            heartbeat_interval_ms: 250,
            max_message_bytes: neptune_proto::DEFAULT_MAX_MESSAGE_BYTES,
            driver_timeout_ms: 5000,
        }
    }

    #[test]
    fn a_welcome_is_checked_before_the_executor_trusts_it() {
        assert_eq!(check_welcome(Some("exec-0"), &ok()), Ok(()));
        assert_eq!(check_welcome(None, &ok()), Ok(()));
        let cases = [
            (Some("exec-1"), ok(), "not `exec-1`"),
            (
                None,
                Welcome {
                    executor_id: "../x".into(),
                    ..ok()
                },
                "executor id",
            ),
            (
                None,
                Welcome {
                    heartbeat_interval_ms: 0,
                    ..ok()
                },
                "heartbeat interval 0",
            ),
            (
                None,
                Welcome {
                    driver_timeout_ms: 0,
                    ..ok()
                },
                "driver timeout 0",
            ),
            (
                None,
                Welcome {
                    driver_timeout_ms: 700,
                    ..ok()
                },
                "driver timeout 700",
            ),
            (
                None,
                Welcome {
                    max_message_bytes: 10,
                    ..ok()
                },
                "message size limit 10",
            ),
            (
                None,
                Welcome {
                    max_message_bytes: u64::MAX,
                    ..ok()
                },
                "message size limit",
            ),
        ];
        for (asked, w, want) in cases {
            let e = check_welcome(asked, &w).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
