//! The session loop of a registered executor: driver messages go to [`Tasks`] (and through it
//! to the task runtime), runtime events come back as task updates, heartbeats go out on the
//! driver's interval, until the driver says stop, the stream breaks, or shutdown is asked.

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
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

/// Run the session of `reg` until it ends; kills every task left when it does.
///
/// # Errors
/// [`ExecutorError::DriverLost`] when the stream breaks or the driver closes it without saying
/// stop; [`ExecutorError::App`] when the app's shuffle settings are invalid.
pub(crate) async fn run(
    reg: Registered,
    cfg: &ExecutorConfig,
    blocks: Arc<BlockStore>,
    metrics_cell: Arc<OnceLock<ExecutorMetrics>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ExecutorError> {
    let Registered {
        id,
        session,
        app,
        heartbeat,
        max_message_bytes,
        mut incoming,
        out,
    } = reg;
    let url = &cfg.driver_url;
    let max_block = neptune_core::config::keys::MAX_BLOCK_BYTES.get(app.config());
    blocks.set_max_block_bytes(max_block.map_err(|e| ExecutorError::App(e.into()))?);

    let metrics = ExecutorMetrics::new(&id);
    metrics
        .memory_limit
        .set(i64::try_from(cfg.memory).unwrap_or(i64::MAX));
    metrics.slots.set(i64::from(cfg.cores));
    let _ = metrics_cell.set(metrics.clone());

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
    let updates = Updates::new(out, metrics, max_message_bytes);
    let mut tasks = Tasks::new(app, runtime, broadcasts, blocks, receivers, updates);

    let mut hb = tokio::time::interval(heartbeat.max(std::time::Duration::from_millis(10)));
    hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let end = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            msg = incoming.next() => match msg {
                Some(Ok(m)) => {
                    if let Some(driver_message::Msg::Shutdown(s)) = &m.msg {
                        tracing::info!(reason = %s.reason, session, "driver asked this executor to stop");
                        break Ok(());
                    }
                    tasks.on_driver_message(m);
                }
                Some(Err(e)) => break Err(ExecutorError::DriverLost { url: url.clone(), reason: e.message().to_string() }),
                None => break Err(ExecutorError::DriverLost { url: url.clone(), reason: "the driver closed the session".into() }),
            },
            Some(ev) = ev_rx.recv() => tasks.on_runtime_event(ev),
            _ = hb.tick() => tasks.heartbeat(cfg.memory),
        }
    };
    tasks.kill_all();
    end
}
