//! Serves this executor's shuffle blocks to other executors' reduce tasks (tokio; block reads,
//! which may touch spill files, run on the blocking pool, never on the RPC threads).
//!
//! Requests are fixed 24-byte frames (see [`fetch`](super::fetch) for the format), so nothing a
//! client sends decides an allocation. A request for a block this executor does not hold is
//! answered "missing" and changes nothing; a receiver cut is made only for a run the driver
//! announced (see [`Receivers`](crate::receivers::Receivers)), so a request with an invented
//! run id cannot take lines from the runs they belong to.

use super::fetch::{FOUND, MISSING, NOT_OPEN, REQUEST_LEN, decode_request, encode_reply_head};
use super::{BlockStore, Lookup};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Bind the block server on `ip` (any port) and serve `store` until the returned task is
/// aborted. Returns the bound address.
///
/// # Errors
/// When the address cannot be bound.
pub async fn start(
    ip: std::net::IpAddr,
    store: Arc<BlockStore>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let served = match conn.set_nodelay(true) {
                            Ok(()) => serve(conn, store).await,
                            Err(e) => Err(e),
                        };
                        if let Err(e) = served {
                            tracing::debug!(error = %e, "block connection ended");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "block server accept failed"),
            }
        }
    });
    Ok((addr, task))
}

/// Answer block requests on `conn` until the client closes it.
///
/// # Errors
/// When the connection fails or a spilled block cannot be read back.
pub async fn serve<S>(mut conn: S, store: Arc<BlockStore>) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = [0u8; REQUEST_LEN];
    loop {
        match conn.read_exact(&mut req).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let id = decode_request(&req);
        let s = store.clone();
        let found = tokio::task::spawn_blocking(move || s.lookup(id))
            .await
            .map_err(std::io::Error::other)??;
        match found {
            Lookup::Found(bytes) => {
                conn.write_all(&encode_reply_head(FOUND, bytes.len() as u64))
                    .await?;
                conn.write_all(&bytes).await?;
            }
            Lookup::Missing => conn.write_all(&encode_reply_head(MISSING, 0)).await?,
            Lookup::NotOpen => conn.write_all(&encode_reply_head(NOT_OPEN, 0)).await?,
        }
        conn.flush().await?;
    }
}
