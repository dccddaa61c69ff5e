//! Serves this executor's shuffle blocks to other executors' reduce tasks (tokio; block reads,
//! which may touch spill files, run on the blocking pool, never on the RPC threads).
//!
//! Connections come through a [`neptune_net::accept::Acceptor`]: under mutual TLS only peers
//! holding the app's certificate get past the handshake. Each connection serves requests one
//! after another; between requests it is idle, may be evicted when the server is full, and is
//! closed after the idle timeout; a request or reply that stalls part-way is cut after the frame
//! timeout. So neither idle nor stalled peers can pin descriptors.

use super::BlockStore;
use super::fetch::decode_request;
use neptune_net::accept::{Acceptor, ServerConn};
use neptune_net::metrics::{Closed, NetMetrics};
use neptune_net::{Limits, Security};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The `server` label of the block server's metrics.
pub const SERVER: &str = "blocks";
/// Bytes written per step of a reply (each step must finish within the frame timeout).
const WRITE_STEP: usize = 256 << 10;

/// Serve `store` on `listener` under `security` and `limits` until the returned task is aborted.
/// Returns the bound address.
///
/// # Errors
/// When the bound address cannot be read.
pub fn start(
    listener: TcpListener,
    store: Arc<BlockStore>,
    security: &Security,
    limits: Limits,
    metrics: NetMetrics,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let tls = match security {
        Security::Mtls(t) => Some(t.blocks_server()),
        Security::Insecure => None,
    };
    let acceptor = Acceptor::new(SERVER, listener, tls, limits, metrics.clone());
    let addr = acceptor.local_addr()?;
    let task = acceptor.spawn(move |conn| {
        let (store, metrics) = (store.clone(), metrics.clone());
        tokio::spawn(async move {
            let peer = conn.peer();
            if let Err(e) = serve(conn, store, limits, &metrics).await {
                tracing::debug!(%peer, error = %e, "block connection ended");
            }
        });
    });
    Ok((addr, task))
}

async fn serve(
    mut conn: ServerConn,
    store: Arc<BlockStore>,
    limits: Limits,
    metrics: &NetMetrics,
) -> std::io::Result<()> {
    let slot = conn.slot().handle();
    let mut req = [0u8; 24];
    loop {
        // Idle until the next request starts: evictable, and closed after the idle timeout.
        slot.set_evictable(true);
        let first = tokio::select! {
            r = tokio::time::timeout(limits.idle_timeout, conn.read(&mut req)) => r,
            () = slot.evicted() => return Ok(()),
        };
        let n = match first {
            Err(_) => {
                metrics.closed(SERVER, Closed::IdleTimeout);
                return Ok(());
            }
            Ok(Ok(0)) => return Ok(()),
            Ok(r) => r?,
        };
        slot.set_evictable(false);
        match tokio::time::timeout(limits.frame_timeout, conn.read_exact(&mut req[n..])).await {
            Ok(r) => r.map(|_| ())?,
            Err(_) => {
                metrics.closed(SERVER, Closed::FrameTimeout);
                return Ok(());
            }
        }
        let id = decode_request(&req);
        let s = store.clone();
        let block = tokio::task::spawn_blocking(move || s.get(id))
            .await
            .map_err(std::io::Error::other)??;
        let mut head = [1u8, 0, 0, 0, 0, 0, 0, 0, 0];
        if let Some(b) = &block {
            head[0] = 0;
            head[1..9].copy_from_slice(&(b.len() as u64).to_be_bytes());
        }
        let body = block.as_deref().unwrap_or_default();
        let steps = std::iter::once(&head[..]).chain(body.chunks(WRITE_STEP));
        for step in steps {
            match tokio::time::timeout(limits.frame_timeout, conn.write_all(step)).await {
                Ok(r) => r?,
                Err(_) => {
                    metrics.closed(SERVER, Closed::FrameTimeout);
                    return Ok(());
                }
            }
        }
        match tokio::time::timeout(limits.frame_timeout, conn.flush()).await {
            Ok(r) => r?,
            Err(_) => {
                metrics.closed(SERVER, Closed::FrameTimeout);
                return Ok(());
            }
        }
    }
}
