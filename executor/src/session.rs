//! The session loop of a registered executor: driver messages go to [`Tasks`] (and through it
//! to the task runtime), runtime events come back as task updates, heartbeats go out on the
//! driver's interval, until the driver says stop, the stream breaks, the driver falls silent, or
//! shutdown is asked.
//!
//! Driver liveness: the driver answers every heartbeat with a keep-alive, so a session that
//! heard nothing from the driver for the welcome's `driver_timeout` ends with
//! [`ExecutorError::DriverSilent`] (the process exits non-zero; Kubernetes restarts it). HTTP/2
//! keep-alive alone cannot tell: the kernel of a stopped (SIGSTOP) or wedged driver still ACKs.
//! Silence is counted only while this process runs: a heartbeat tick far later than due means
//! the executor itself was stopped or starved, and the driver gets a fresh window.

use crate::blocks::BlockStore;
use crate::metrics::ExecutorMetrics;
use crate::receivers::Receivers;
use crate::register::Registered;
use crate::runtime::TaskRuntime;
use crate::service::{ExecutorConfig, ExecutorError};
use crate::tasks::Tasks;
use crate::updates::Updates;
use neptune_core::state::Broadcasts;
use neptune_proto::driver_message;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

/// How a session ended without an error.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The driver said stop (the app is over), or shutdown was asked.
    Stopped,
    /// The driver dropped this executor for missed heartbeats and goes on without it: it may
    /// register again (a new session) up to `rejoin_attempts` times.
    Dropped {
        /// The id this executor had (offered again).
        id: String,
        /// The driver's reason.
        reason: String,
        /// `executor.rejoin_attempts` of the app.
        rejoin_attempts: u32,
    },
}

/// Run the session of `reg` until it ends; kills every task left when it does.
///
/// # Errors
/// [`ExecutorError::DriverLost`] when the stream breaks or the driver closes it without saying
/// stop; [`ExecutorError::DriverSilent`] when nothing came from the driver for its
/// `driver_timeout`; [`ExecutorError::App`] when the app's settings are invalid.
pub(crate) async fn run(
    reg: Registered,
    cfg: &ExecutorConfig,
    blocks: Arc<BlockStore>,
    metrics_cell: Arc<OnceLock<ExecutorMetrics>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<SessionEnd, ExecutorError> {
    let Registered {
        id,
        session,
        app,
        heartbeat,
        driver_timeout,
        max_message_bytes,
        mut incoming,
        out,
    } = reg;
    let url = &cfg.driver_url;
    let bad = |e: neptune_core::config::ConfigError| ExecutorError::App(e.into());
    let keys = (
        &neptune_core::config::keys::MAX_BLOCK_BYTES,
        &neptune_core::config::keys::REJOIN_ATTEMPTS,
    );
    blocks.set_max_block_bytes(keys.0.get(app.config()).map_err(bad)?);
    let rejoin_attempts = keys.1.get(app.config()).map_err(bad)?;
    let rejoin_attempts = u32::try_from(rejoin_attempts).unwrap_or(u32::MAX);

    // One registry per process: a re-registered executor keeps its counters (and its id).
    let metrics = metrics_cell
        .get_or_init(|| ExecutorMetrics::new(&id))
        .clone();
    metrics
        .memory_limit
        .set(i64::try_from(cfg.memory).unwrap_or(i64::MAX));
    metrics.slots.set(i64::from(cfg.cores));

    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let broadcasts = Arc::new(Broadcasts::default());
    let runtime = TaskRuntime::new(cfg.cores as usize, broadcasts.clone(), ev_tx);
    let nice = neptune_core::config::keys::WORKER_NICE
        .get(app.config())
        .map_err(bad)?;
    runtime.set_worker_nice(i32::try_from(nice).unwrap_or(i32::MAX));
    blocks.set_executor_id(&id);
    let receivers = Arc::new(Receivers::new(
        app.receivers().to_vec(),
        cfg.memory,
        Some(metrics.clone()),
    ));
    blocks.set_receivers(receivers.clone());
    let updates = Updates::new(out, metrics, max_message_bytes);
    let mut tasks = Tasks::new(app, runtime, broadcasts, blocks, receivers, updates);

    let period = heartbeat.max(Duration::from_millis(10));
    let mut hb = tokio::time::interval(period);
    hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut silence = Silence::new(driver_timeout);
    tokio::pin!(shutdown);
    let end = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break Ok(SessionEnd::Stopped),
            msg = incoming.next() => match msg {
                Some(Ok(m)) => {
                    silence.heard(Instant::now());
                    match m.msg {
                        Some(driver_message::Msg::Shutdown(s)) if s.rejoin => {
                            tracing::warn!(reason = %s.reason, session, "the driver dropped this executor");
                            break Ok(SessionEnd::Dropped { id: id.clone(), reason: s.reason, rejoin_attempts });
                        }
                        Some(driver_message::Msg::Shutdown(s)) => {
                            tracing::info!(reason = %s.reason, session, "driver asked this executor to stop");
                            break Ok(SessionEnd::Stopped);
                        }
                        Some(driver_message::Msg::KeepAlive(_)) => {}
                        _ => tasks.on_driver_message(m),
                    }
                }
                Some(Err(e)) => break Err(ExecutorError::DriverLost { url: url.clone(), reason: e.message().to_string() }),
                None => break Err(ExecutorError::DriverLost { url: url.clone(), reason: "the driver closed the session".into() }),
            },
            Some(ev) = ev_rx.recv() => tasks.on_runtime_event(ev),
            _ = hb.tick() => {
                if let Some(silent_for) = silence.tick(Instant::now()) {
                    tracing::error!(?silent_for, ?driver_timeout, session, "nothing from the driver within heartbeat.driver_timeout_ms: ending the session");
                    break Err(ExecutorError::DriverSilent { url: url.clone(), timeout: driver_timeout, silent_for });
                }
                tasks.heartbeat(cfg.memory);
            }
        }
    };
    tasks.kill_all();
    end
}

/// How long the driver has been silent, counted only while this process runs.
#[derive(Debug)]
struct Silence {
    timeout: Duration,
    heard: Instant,
    last_tick: Instant,
}

impl Silence {
    fn new(timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            timeout,
            heard: now,
            last_tick: now,
        }
    }

    /// A message came from the driver at `now`.
    fn heard(&mut self, now: Instant) {
        self.heard = now;
    }

    /// A heartbeat tick at `now`: how long the driver has been silent, if past the timeout.
    /// A tick more than half the timeout after the previous one means this process was not
    /// running in between (stopped, or starved of CPU): the silence restarts from now rather
    /// than blame the driver for it.
    fn tick(&mut self, now: Instant) -> Option<Duration> {
        if now.saturating_duration_since(self.last_tick) > self.timeout / 2 {
            self.heard = self.heard.max(now);
        }
        self.last_tick = now;
        let silent = now.saturating_duration_since(self.heard);
        (silent > self.timeout).then_some(silent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_counted_while_this_process_runs() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Silence {
            timeout: ms(500),
            heard: t0,
            last_tick: t0,
        };
        // Ticks every 50 ms and nothing heard: silent past 500 ms.
        let mut fired = None;
        for i in 1..=20 {
            if let Some(d) = s.tick(t0 + ms(50 * i)) {
                fired = Some((i, d));
                break;
            }
        }
        assert_eq!(fired.map(|(i, _)| i), Some(11));
        // Heard recently: quiet.
        s.heard(t0 + ms(1000));
        assert_eq!(s.tick(t0 + ms(1050)), None);
        // This process stopped for 10 s: a fresh window, not a silent driver.
        assert_eq!(s.tick(t0 + ms(11_050)), None);
        let mut later = None;
        for i in 1..=20 {
            if let Some(d) = s.tick(t0 + ms(11_050 + 50 * i)) {
                later = Some((i, d));
                break;
            }
        }
        assert_eq!(later, Some((11, ms(550))));
    }
}
