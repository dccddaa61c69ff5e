//! Connections to other executors' block servers, made and kept for reduce tasks' fetches:
//! blocking TCP (see `fetch` for why not may's sockets) under mutual TLS (rustls' blocking
//! `ClientConnection`, the app's credentials, ALPN `neptune-blocks/1`), or plain TCP under
//! `--insecure`.
//!
//! Every wait is chunked into [`READ_TICK`]s with a yield point between them, the TLS handshake
//! included, so a suspend or kill is honoured within a tick even while a peer is slow to answer.
//!
//! Connections are pooled per peer: a TLS handshake costs two round trips and signatures on
//! both sides, so a reduce task fetching hundreds of blocks from the same few peers reuses a
//! connection instead of paying it per block. Idle connections are dropped after
//! [`POOL_IDLE`], below the servers' idle timeout, so a pooled connection is rarely stale; one
//! that is fails before any reply byte and is replaced at once (see `fetch`).

use neptune_core::task::TaskContext;
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest blocking read before the task passes a yield point.
pub const READ_TICK: Duration = Duration::from_millis(20);
/// A peer silent for this long is given up on (per attempt).
pub const IDLE_LIMIT: Duration = Duration::from_secs(20);
/// Connect timeout.
const CONNECT: Duration = Duration::from_secs(2);
/// Idle pooled connections older than this are closed rather than reused.
pub const POOL_IDLE: Duration = Duration::from_secs(30);
/// Idle connections kept per peer (a peer is fetched from by up to `cores` tasks at once).
const POOL_PER_PEER: usize = 8;

/// One connection to a block server.
pub struct BlockConn {
    tcp: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
    addr: String,
    idle_since: Instant,
}

impl std::fmt::Debug for BlockConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockConn")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

impl BlockConn {
    /// Connect to `addr` (and complete the TLS handshake under `tls`). `Ok(None)`: the task was
    /// killed meanwhile.
    ///
    /// # Errors
    /// Connection refused or timed out, handshake refused (e.g. the peer is not of this app).
    pub fn connect(
        ctx: &TaskContext,
        addr: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> std::io::Result<Option<Self>> {
        let sa = addr.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(ErrorKind::NotFound, "address resolves to nothing")
        })?;
        let tcp = TcpStream::connect_timeout(&sa, CONNECT)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(READ_TICK))?;
        tcp.set_write_timeout(Some(IDLE_LIMIT))?;
        let tls = match tls {
            None => None,
            Some(cfg) => {
                let name = ServerName::try_from(neptune_net::tls::SERVER_NAME)
                    .map_err(std::io::Error::other)?;
                Some(Box::new(
                    rustls::ClientConnection::new(cfg.clone(), name)
                        .map_err(std::io::Error::other)?,
                ))
            }
        };
        let mut c = Self {
            tcp,
            tls,
            addr: addr.to_string(),
            idle_since: Instant::now(),
        };
        if let Some(tls) = c.tls.as_mut() {
            let mut last_progress = Instant::now();
            while tls.is_handshaking() {
                match tls.complete_io(&mut c.tcp) {
                    Ok((r, w)) if r + w > 0 => last_progress = Instant::now(),
                    Ok(_) => {}
                    Err(e) if would_block(&e) => {
                        if last_progress.elapsed() > IDLE_LIMIT {
                            return Err(ErrorKind::TimedOut.into());
                        }
                    }
                    Err(e) => return Err(e),
                }
                if !ctx.yield_point() {
                    return Ok(None);
                }
            }
        }
        Ok(Some(c))
    }

    /// The peer's address as dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Read for BlockConn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.tls.as_mut() {
            None => self.tcp.read(buf),
            Some(tls) => rustls::Stream::new(tls.as_mut(), &mut self.tcp).read(buf),
        }
    }
}

impl Write for BlockConn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.tls.as_mut() {
            None => self.tcp.write(buf),
            Some(tls) => rustls::Stream::new(tls.as_mut(), &mut self.tcp).write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.tls.as_mut() {
            None => self.tcp.flush(),
            Some(tls) => rustls::Stream::new(tls.as_mut(), &mut self.tcp).flush(),
        }
    }
}

/// Idle connections by peer address, and the TLS configuration new ones use.
pub struct Pool {
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<HashMap<String, Vec<BlockConn>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Pool {
    /// A pool whose connections use `tls` (`None`: plaintext, `--insecure`).
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self {
            tls,
            idle: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<BlockConn>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pooled connection to `addr` not idle for too long, if any.
    pub fn take(&self, addr: &str) -> Option<BlockConn> {
        let mut idle = self.lock();
        let conns = idle.get_mut(addr)?;
        // Newest last: reuse it, drop any that aged out.
        conns.retain(|c| c.idle_since.elapsed() < POOL_IDLE);
        conns.pop()
    }

    /// A new connection to `addr` (`Ok(None)`: killed while connecting).
    ///
    /// # Errors
    /// As [`BlockConn::connect`].
    pub fn connect(&self, ctx: &TaskContext, addr: &str) -> std::io::Result<Option<BlockConn>> {
        BlockConn::connect(ctx, addr, self.tls.as_ref())
    }

    /// Return a connection that finished an exchange cleanly.
    pub fn put(&self, mut conn: BlockConn) {
        conn.idle_since = Instant::now();
        let mut idle = self.lock();
        let conns = idle.entry(conn.addr.clone()).or_default();
        if conns.len() < POOL_PER_PEER {
            conns.push(conn);
        }
    }

    /// Connections pooled for `addr` (tests).
    pub fn idle_count(&self, addr: &str) -> usize {
        self.lock().get(addr).map_or(0, Vec::len)
    }
}
