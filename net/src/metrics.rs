//! Transport metrics of one process, in a registry of its own that exists from the start (before
//! an executor knows its id): whether TLS is on, connections open and closed per server, and the
//! process collector's `process_open_fds` / `process_max_fds` (Linux).

use neptune_core::metric_names as n;
use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use std::collections::HashMap;

/// Why a server closed a connection (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Refused at accept: the server was full and nothing could be evicted.
    Limit,
    /// Closed to make room for a newer connection (it was idle or unauthenticated).
    Evicted,
    /// The TLS handshake failed (no or wrong certificate, wrong protocol).
    HandshakeFailed,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// Idle for too long.
    IdleTimeout,
    /// A frame stalled part-way.
    FrameTimeout,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Self::Limit => "limit",
            Self::Evicted => "evicted",
            Self::HandshakeFailed => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::FrameTimeout => "frame_timeout",
        }
    }
}

/// The process's transport metrics.
#[derive(Clone)]
pub struct NetMetrics {
    registry: Registry,
    tls: IntGauge,
    open: IntGaugeVec,
    closed: IntCounterVec,
}

impl std::fmt::Debug for NetMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetMetrics")
    }
}

impl NetMetrics {
    /// A registry with `labels` on every series (e.g. `executor=<id>`), TLS state `tls`.
    pub fn new(labels: &[(&str, &str)], tls: bool) -> Self {
        let labels: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let registry =
            Registry::new_custom(None, (!labels.is_empty()).then_some(labels)).expect("labels");
        let tls_g = IntGauge::new(
            n::TRANSPORT_TLS,
            "1 when cluster connections use mutual TLS, 0 when running --insecure.",
        )
        .expect("valid");
        tls_g.set(i64::from(tls));
        let open = IntGaugeVec::new(
            Opts::new(
                n::TRANSPORT_CONNECTIONS_OPEN,
                "Connections open, by server.",
            ),
            &["server"],
        )
        .expect("valid");
        let closed = IntCounterVec::new(
            Opts::new(
                n::TRANSPORT_CONNECTIONS_CLOSED,
                "Connections the server closed (limits, timeouts, failed handshakes), by server \
                 and reason.",
            ),
            &["server", "reason"],
        )
        .expect("valid");
        for c in [
            Box::new(tls_g.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(open.clone()),
            Box::new(closed.clone()),
        ] {
            registry.register(c).expect("unique names");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique names");
        Self {
            registry,
            tls: tls_g,
            open,
            closed,
        }
    }

    /// Gauge of connections open on `server`.
    pub fn open(&self, server: &str) -> IntGauge {
        self.open.with_label_values(&[server])
    }

    /// Count a connection `server` closed for `why`.
    pub fn closed(&self, server: &str, why: Closed) {
        self.closed.with_label_values(&[server, why.label()]).inc();
    }

    /// How many connections `server` closed for `why` so far.
    pub fn closed_count(&self, server: &str, why: Closed) -> u64 {
        self.closed.with_label_values(&[server, why.label()]).get()
    }

    /// Whether TLS is on (as exported).
    pub fn tls(&self) -> bool {
        self.tls.get() == 1
    }

    /// Prometheus text of these metrics.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
