//! The executor's HTTP endpoints: `/metrics`, `/healthz`, `/readyz` (ready once registered).

use crate::metrics::ExecutorMetrics;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::{Arc, OnceLock};

type Cell = Arc<OnceLock<ExecutorMetrics>>;

/// The router; `metrics` is filled once the executor has registered.
pub fn router(metrics: Cell) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(metrics)
}

async fn metrics_handler(State(m): State<Cell>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.get().map(ExecutorMetrics::encode).unwrap_or_default(),
    )
}

async fn ready_handler(State(m): State<Cell>) -> impl IntoResponse {
    if m.get().is_some() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not registered with the driver yet\n",
        )
    }
}
