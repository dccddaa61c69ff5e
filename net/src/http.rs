//! Serving the plain-HTTP endpoints (`/metrics`, `/healthz`, `/readyz`, the driver's `/status`)
//! with the limits `axum::serve` does not offer: a connection cap (evicting the oldest
//! connection when full), a header read timeout (which in hyper also closes a keep-alive
//! connection idle between requests), a whole-request timeout, HTTP/1.1 only.
//!
//! Plain HTTP on purpose: Prometheus and the kubelet's probes scrape these without client
//! certificates, and nothing served here is secret (see `docs/security.md`); endpoints that
//! change state sit behind [`crate::token::guard`].

use crate::Limits;
use crate::gate::{Admit, Gate};
use crate::metrics::{Closed, NetMetrics};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;

async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response(),
    }
}

/// Serve `router` on `listener` as server `name` until `shutdown` resolves; then stop accepting
/// and ask open connections to finish their current request.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    metrics: NetMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        request_timeout,
    ));
    let gate = Gate::new(limits.max_connections, metrics.open(name));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let warn = crate::accept::RateLimitedWarn::default();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    warn.warn(name, &format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Every HTTP connection may be evicted: the oldest is most likely an idle keep-alive
        // or a stalled one, and a scraper whose request is cut simply retries.
        let slot = match gate.admit() {
            Admit::Admitted(s) => s,
            Admit::Evicted(s) => {
                metrics.closed(name, Closed::Evicted);
                s
            }
            Admit::Full => {
                metrics.closed(name, Closed::Limit);
                tracing::debug!(server = name, %peer, "refused: too many connections");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop_rx.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.frame_timeout.min(limits.handshake_timeout))
                .keep_alive(true)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        if e.is_timeout() {
                            metrics.closed(name, Closed::IdleTimeout);
                        }
                        tracing::debug!(server = name, %peer, error = %e, "HTTP connection ended");
                    }
                }
                () = slot.evicted() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.request_timeout, conn).await;
                }
            }
            drop(slot);
        });
    }
    let _ = stop_tx.send(true);
}
