//! Timeouts and caps of every server, with their defaults (also listed in `docs/security.md`),
//! and the process's open-file limit.
//!
//! Why each exists: a peer that connects and sends nothing, sends half a request, or stops
//! reading must not hold a connection (a file descriptor) for ever; with a 1024-descriptor limit
//! a thousand idle connections used to make every block fetch of an executor fail with "Too many
//! open files". So every server caps its connections below the descriptor limit, evicts the
//! oldest idle or unauthenticated one when full, and times out handshakes, idle connections and
//! stalled frames.

use std::time::Duration;

/// Timeouts and caps of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Once a frame (a block request, an HTTP request head) has started, or a reply is being
    /// written, each step must make progress within this.
    pub frame_timeout: Duration,
    /// An HTTP request must be answered within this (handlers included).
    pub request_timeout: Duration,
    /// TCP keepalive probes start after this much silence (dead peers are noticed even where no
    /// protocol-level ping runs).
    pub tcp_keepalive: Duration,
    /// HTTP/2 PING interval on gRPC connections, both sides.
    pub http2_keepalive_interval: Duration,
    /// A PING unanswered for this long closes the connection.
    pub http2_keepalive_timeout: Duration,
    /// Most concurrent HTTP/2 streams per gRPC connection (an executor uses one or two).
    pub max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            frame_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            tcp_keepalive: Duration::from_secs(30),
            http2_keepalive_interval: Duration::from_secs(20),
            http2_keepalive_timeout: Duration::from_secs(20),
            max_concurrent_streams: 16,
        }
    }
}

impl Limits {
    /// Defaults with the connection cap fitted to `fds` open files: at most a quarter of them
    /// per server (a process runs up to three servers and needs descriptors for its own outgoing
    /// connections and spill files), at least 16.
    pub fn for_fds(fds: u64) -> Self {
        let d = Self::default();
        let quarter = usize::try_from(fds / 4).unwrap_or(usize::MAX);
        Self {
            max_connections: d.max_connections.min(quarter).max(16),
            ..d
        }
    }
}

/// Raise the soft open-file limit to the hard limit, and return the limit in force. The soft
/// limit is often 1024 while the hard limit is far higher; a driver with many executors or an
/// executor serving many fetches needs more.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => {
            tracing::debug!(limit = n, "open file limit");
            n
        }
        Err(e) => {
            let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
            tracing::warn!(error = %e, limit = soft, "cannot raise the open file limit");
            soft
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_fits_the_descriptor_limit() {
        assert_eq!(Limits::for_fds(1024).max_connections, 256);
        assert_eq!(Limits::for_fds(1 << 20).max_connections, 1024);
        assert_eq!(Limits::for_fds(20).max_connections, 16);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let n = raise_fd_limit();
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!(soft, n);
        // rlimit caps at the kernel's nr_open on Linux, which may be below an infinite hard limit.
        assert!(soft == hard || hard == rlimit::INFINITY, "{soft} {hard}");
    }
}
