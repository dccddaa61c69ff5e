//! The operator's HTTP server: `/metrics` (Prometheus text), `/healthz` (process alive) and
//! `/readyz` (controllers running). Stops on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::controller::Shutdown;
use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    ready: Arc<AtomicBool>,
}

/// The router (exposed for tests).
pub fn router(metrics: Metrics, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, ready })
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    shutdown: Shutdown,
) {
    if let Err(e) = axum::serve(listener, router(metrics, ready))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("HTTP server: {e}");
    }
}

async fn metrics_handler(
    State(s): State<AppState>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
