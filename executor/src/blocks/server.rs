//! Serves this executor's shuffle blocks to other executors' reduce tasks (tokio; block reads,
//! which may touch spill files, run on the blocking pool, never on the RPC threads).
//!
//! Connections come through a [`neptune_net::accept::Acceptor`]: under mutual TLS only peers
//! holding the app's certificate get past the handshake. Each connection serves requests one
//! after another; between requests it is idle, may be evicted when the server is full, and is
//! closed after the idle timeout; a request or reply that stalls part-way is cut after the frame
//! timeout. So neither idle nor stalled peers can pin descriptors.
//!
//! Requests are fixed 24-byte frames (see [`fetch`](super::fetch) for the format), so nothing a
//! client sends decides an allocation. A request for a block this executor does not hold is
//! answered "missing" and changes nothing; a receiver cut is made only for a run the driver
//! announced (see [`Receivers`](crate::receivers::Receivers)), so a request with an invented
//! run id cannot take lines from the runs they belong to.

use super::fetch::{FOUND, MISSING, NOT_OPEN, REQUEST_LEN, decode_request, encode_reply_head};
use super::{BlockStore, Lookup};
use neptune_net::accept::Acceptor;
use neptune_net::gate::SlotHandle;
use neptune_net::metrics::{Closed, NetMetrics};
use neptune_net::{Limits, Security};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
            let slot = conn.slot().handle();
            if let Err(e) = serve(conn, store, limits, metrics, Some(slot)).await {
                tracing::debug!(%peer, error = %e, "block connection ended");
            }
        });
    });
    Ok((addr, task))
}

/// Answer block requests on `conn` until the client closes it, it idles past the idle timeout,
/// stalls a frame past the frame timeout, or `slot` (the connection's place in the server's
/// connection cap, if any) is evicted while idle.
///
/// # Errors
/// When the connection fails or a spilled block cannot be read back.
pub async fn serve<S>(
    mut conn: S,
    store: Arc<BlockStore>,
    limits: Limits,
    metrics: NetMetrics,
    slot: Option<SlotHandle>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = [0u8; REQUEST_LEN];
    loop {
        // Idle until the next request starts: evictable, and closed after the idle timeout.
        if let Some(s) = &slot {
            s.set_evictable(true);
        }
        let first = tokio::select! {
            r = tokio::time::timeout(limits.idle_timeout, conn.read(&mut req)) => r,
            () = evicted(&slot) => return Ok(()),
        };
        let n = match first {
            Err(_) => {
                metrics.closed(SERVER, Closed::IdleTimeout);
                return Ok(());
            }
            Ok(Ok(0)) => return Ok(()),
            Ok(r) => r?,
        };
        if let Some(s) = &slot {
            s.set_evictable(false);
        }
        match tokio::time::timeout(limits.frame_timeout, conn.read_exact(&mut req[n..])).await {
            Ok(Ok(_)) => {}
            // A partial request at the end of the stream: nothing to answer.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                metrics.closed(SERVER, Closed::FrameTimeout);
                return Ok(());
            }
        }
        let id = decode_request(&req);
        let s = store.clone();
        let found = tokio::task::spawn_blocking(move || s.lookup(id))
            .await
            .map_err(std::io::Error::other)??;
        let (head, body) = match &found {
            Lookup::Found(bytes) => (
                encode_reply_head(FOUND, bytes.len() as u64),
                bytes.as_slice(),
            ),
            Lookup::Missing => (encode_reply_head(MISSING, 0), &[][..]),
            Lookup::NotOpen => (encode_reply_head(NOT_OPEN, 0), &[][..]),
        };
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

/// Resolves once `slot` is evicted; never without a slot.
async fn evicted(slot: &Option<SlotHandle>) {
    match slot {
        Some(s) => s.evicted().await,
        None => std::future::pending().await,
    }
}
