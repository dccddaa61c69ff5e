//! The executor's HTTP endpoints: `/metrics` (the executor's metrics once registered, and the
//! transport's from the start), `/healthz`, `/readyz` (ready once registered). Plain HTTP, served
//! by `neptune_net::http` with its limits; nothing here is secret.

use crate::metrics::ExecutorMetrics;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::{Arc, OnceLock};

type Cell = Arc<OnceLock<ExecutorMetrics>>;

#[derive(Clone)]
struct Http {
    metrics: Cell,
    net: neptune_net::NetMetrics,
}

/// The router; `metrics` is filled once the executor has registered.
pub fn router(metrics: Cell, net: neptune_net::NetMetrics) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(Http { metrics, net })
}

async fn metrics_handler(State(h): State<Http>) -> impl IntoResponse {
    let mut text = h
        .metrics
        .get()
        .map(ExecutorMetrics::encode)
        .unwrap_or_default();
    text += &h.net.encode();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn ready_handler(State(h): State<Http>) -> impl IntoResponse {
    if h.metrics.get().is_some() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not registered with the driver yet\n",
        )
    }
}
