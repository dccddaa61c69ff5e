//! A listener that hands out authenticated connections: accepts TCP, admits through a [`Gate`]
//! (cap, eviction of idle ones), sets TCP_NODELAY and keepalive, and under mutual TLS completes
//! the handshake within the handshake timeout before anything else sees the connection. Used by
//! the driver's gRPC server (as tonic's incoming stream) and the executors' block servers.
//!
//! Handshakes run in their own tasks, so a peer that never finishes one holds up nobody else;
//! failed handshakes (no or wrong certificate, wrong ALPN) are counted and logged at most every
//! few seconds, so a flood of them cannot flood the log.

use crate::Limits;
use crate::gate::{Admit, Gate, Slot};
use crate::metrics::{Closed, NetMetrics};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A connection the acceptor admitted (and, under TLS, authenticated).
pub struct ServerConn {
    io: Io,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    slot: Slot,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("peer", &self.peer)
            .field("tls", &matches!(self.io, Io::Tls(_)))
            .finish()
    }
}

impl ServerConn {
    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The connection's place in its server's gate (mark it idle/busy, watch for eviction).
    pub fn slot(&self) -> &Slot {
        &self.slot
    }
}

macro_rules! delegate {
    ($self:ident, $io:ident => $e:expr) => {
        match &mut $self.get_mut().io {
            Io::Plain($io) => {
                let $io = Pin::new($io);
                $e
            }
            Io::Tls($io) => {
                let $io = Pin::new($io.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for ServerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        delegate!(self, io => io.poll_read(cx, buf))
    }
}

impl AsyncWrite for ServerConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, io => io.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, io => io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, io => io.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, io => io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

impl tonic::transport::server::Connected for ServerConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo {
            local_addr: self.local,
            remote_addr: Some(self.peer),
        }
    }
}

/// A bound listener with its server's limits and (optional) TLS configuration.
pub struct Acceptor {
    name: &'static str,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    limits: Limits,
    gate: Gate,
    metrics: NetMetrics,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("name", &self.name)
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

impl Acceptor {
    /// An acceptor for server `name` (the metrics' `server` label) on `listener`; `tls` is the
    /// server configuration under mutual TLS, `None` under `--insecure`.
    pub fn new(
        name: &'static str,
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        limits: Limits,
        metrics: NetMetrics,
    ) -> Self {
        let gate = Gate::new(limits.max_connections, metrics.open(name));
        Self {
            name,
            listener,
            tls,
            limits,
            gate,
            metrics,
        }
    }

    /// The bound address.
    ///
    /// # Errors
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept until the returned task is aborted, calling `on_conn` with every admitted,
    /// authenticated connection (from the handshake's task; `on_conn` should not block).
    pub fn spawn(
        self,
        on_conn: impl Fn(ServerConn) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let on_conn = Arc::new(on_conn);
        let warn = Arc::new(RateLimitedWarn::default());
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match self.listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors (EMFILE) or similar: back off instead of spinning;
                        // idle connections are being timed out meanwhile.
                        warn.warn(self.name, &format!("accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let slot = match self.gate.admit() {
                    Admit::Admitted(s) => s,
                    Admit::Evicted(s) => {
                        self.metrics.closed(self.name, Closed::Evicted);
                        s
                    }
                    Admit::Full => {
                        self.metrics.closed(self.name, Closed::Limit);
                        warn.warn(
                            self.name,
                            &format!(
                                "refused a connection from {peer}: {} connections, all busy",
                                self.limits.max_connections
                            ),
                        );
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(self.limits.tcp_keepalive)
                    .with_interval(self.limits.tcp_keepalive / 3);
                let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
                let local = tcp.local_addr().ok();
                let (tls, on_conn, metrics, warn) = (
                    self.tls.clone(),
                    on_conn.clone(),
                    self.metrics.clone(),
                    warn.clone(),
                );
                let (name, timeout) = (self.name, self.limits.handshake_timeout);
                tokio::spawn(async move {
                    let io = match tls {
                        None => Io::Plain(tcp),
                        Some(cfg) => {
                            let hs = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp);
                            tokio::select! {
                                r = tokio::time::timeout(timeout, hs) => match r {
                                    Ok(Ok(s)) => Io::Tls(Box::new(s)),
                                    Ok(Err(e)) => {
                                        metrics.closed(name, Closed::HandshakeFailed);
                                        warn.warn(name, &format!("refused {peer}: TLS handshake failed: {e}"));
                                        return;
                                    }
                                    Err(_) => {
                                        metrics.closed(name, Closed::HandshakeTimeout);
                                        tracing::debug!(server = name, %peer, "TLS handshake timed out");
                                        return;
                                    }
                                },
                                () = slot.evicted() => return,
                            }
                        }
                    };
                    // Authenticated (or insecure): whoever serves it decides when it is idle.
                    slot.set_evictable(false);
                    on_conn(ServerConn {
                        io,
                        peer,
                        local,
                        slot,
                    });
                });
            }
        })
    }

    /// The acceptor as tonic's incoming stream (for `serve_with_incoming_shutdown`); the accept
    /// loop stops when the stream is dropped.
    pub fn into_incoming(self) -> Incoming {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = self.spawn(move |c| {
            let _ = tx.send(Ok(c));
        });
        Incoming { rx, task }
    }
}

/// Authenticated connections for tonic; aborts the accept loop when dropped.
pub struct Incoming {
    rx: tokio::sync::mpsc::UnboundedReceiver<std::io::Result<ServerConn>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Incoming")
    }
}

impl tokio_stream::Stream for Incoming {
    type Item = std::io::Result<ServerConn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A warning per server at most every few seconds, with the count of those left out.
#[derive(Default)]
pub(crate) struct RateLimitedWarn {
    last: std::sync::Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimitedWarn {
    const EVERY: Duration = Duration::from_secs(5);

    pub(crate) fn warn(&self, server: &str, msg: &str) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(server, suppressed, "{msg}");
    }
}
