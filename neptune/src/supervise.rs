//! `neptune local`'s executor supervision, as a local cluster manager (Kubernetes' restart
//! policy, Spark's standalone worker) does it: an executor process that exits without being
//! told to (a crash, a kill, a lost or silent driver) is started again under the same id, after
//! an exponential back-off (the `backon` crate), at most `local.max_executor_restarts` times
//! within `local.restart_window_ms`. Past that budget the supervisor gives up and says why, and
//! the run fails rather than limp on with fewer executors than asked for.
//!
//! An executor that exits 0 was told to stop by the driver (the app is over): it is not
//! restarted. Every start prints `neptune local: executor ID pid N` (tests and users find the
//! processes by it) and every restart says why and when.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How many restarts one executor gets, over what window.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// `local.max_executor_restarts`.
    pub max_restarts: u32,
    /// `local.restart_window_ms`.
    pub window: Duration,
}

/// The executors' supervisors.
#[derive(Debug)]
pub struct Supervisor {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// Delay before the first restart, doubled each time up to [`MAX_DELAY`].
const MIN_DELAY: Duration = Duration::from_millis(200);
/// Longest delay between two restarts.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// How long a stopping executor gets to exit after the driver's shutdown before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

fn backoff() -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .without_max_times()
        .build()
}

impl Supervisor {
    /// Start executor `ids[i]` with `command(ids[i])` for every id, supervised under `budget`.
    /// A supervisor that gives up sends its reason on `gave_up`.
    pub fn start<F>(
        ids: Vec<String>,
        command: F,
        budget: Budget,
        gave_up: mpsc::UnboundedSender<String>,
    ) -> Self
    where
        F: Fn(&str) -> tokio::process::Command + Send + Sync + 'static,
    {
        let (stop, stop_rx) = watch::channel(false);
        let command = std::sync::Arc::new(command);
        let tasks = ids
            .into_iter()
            .map(|id| {
                let command = command.clone();
                let stop_rx = stop_rx.clone();
                let gave_up = gave_up.clone();
                tokio::spawn(async move {
                    if let Err(why) = supervise(&id, &*command, budget, stop_rx).await {
                        eprintln!("neptune local: {why}");
                        let _ = gave_up.send(why);
                    }
                })
            })
            .collect();
        Self { tasks, stop }
    }

    /// The run is over: restart nothing, give every executor [`STOP_GRACE`] to exit, then kill
    /// what is left.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Run executor `id` until it exits 0 or the run stops; restart it otherwise, within `budget`.
/// Err: why it gave up.
async fn supervise(
    id: &str,
    command: &(dyn Fn(&str) -> tokio::process::Command + Send + Sync),
    budget: Budget,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut restarts: VecDeque<Instant> = VecDeque::new();
    let mut delays = backoff();
    loop {
        let mut child = command(id)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start executor {id}: {e}"))?;
        eprintln!(
            "neptune local: executor {id} pid {}",
            child.id().unwrap_or(0)
        );
        let started = Instant::now();
        let stopping = async {
            let _ = stop.wait_for(|s| *s).await;
        };
        let status = tokio::select! {
            s = child.wait() => s,
            () = stopping => {
                if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
                return Ok(());
            }
        };
        if *stop.borrow() {
            return Ok(());
        }
        let status = match status {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => s.to_string(),
            Err(e) => format!("cannot be waited for: {e}"),
        };
        let now = Instant::now();
        restarts.retain(|t| now.duration_since(*t) < budget.window);
        if restarts.len() >= budget.max_restarts as usize {
            return Err(format!(
                "executor {id} exited ({status}) and was restarted {} time(s) within {:?} \
                 already (local.max_executor_restarts = {}, local.restart_window_ms = {}): \
                 giving up",
                restarts.len(),
                budget.window,
                budget.max_restarts,
                budget.window.as_millis()
            ));
        }
        // A process that ran for a whole window was healthy: its next failure starts the
        // back-off over.
        if started.elapsed() >= budget.window {
            delays = backoff();
        }
        let delay = delays.next().unwrap_or(MAX_DELAY);
        restarts.push_back(now);
        eprintln!(
            "neptune local: executor {id} exited ({status}); restarting it in {delay:?} \
             (restart {} of {} within {:?})",
            restarts.len(),
            budget.max_restarts,
            budget.window
        );
        let stopping = async {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopping => return Ok(()),
        }
    }
}
