//! Serves this executor's shuffle blocks to other executors' reduce tasks (tokio; block reads,
//! which may touch spill files, run on the blocking pool, never on the RPC threads).

use super::BlockStore;
use super::fetch::decode_request;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
                        if let Err(e) = serve(conn, store).await {
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

async fn serve(mut conn: TcpStream, store: Arc<BlockStore>) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut req = [0u8; 24];
    loop {
        match conn.read_exact(&mut req).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let id = decode_request(&req);
        let s = store.clone();
        let block = tokio::task::spawn_blocking(move || s.get(id))
            .await
            .map_err(std::io::Error::other)??;
        match block {
            Some(bytes) => {
                let mut head = [0u8; 9];
                head[1..9].copy_from_slice(&(bytes.len() as u64).to_be_bytes());
                conn.write_all(&head).await?;
                conn.write_all(&bytes).await?;
            }
            None => conn.write_all(&[1, 0, 0, 0, 0, 0, 0, 0, 0]).await?,
        }
        conn.flush().await?;
    }
}
