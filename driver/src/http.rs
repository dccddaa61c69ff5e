//! The driver's HTTP endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz` (ready once
//! jobs started, i.e. the expected executors registered), `/status` (JSON).

use crate::metrics::DriverMetrics;
use crate::status::Status;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::{Arc, RwLock};

#[derive(Clone)]
struct Http {
    metrics: DriverMetrics,
    status: Arc<RwLock<Status>>,
}

/// The router for the driver's HTTP server.
pub fn router(metrics: DriverMetrics, status: Arc<RwLock<Status>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .route("/status", get(status_handler))
        .with_state(Http { metrics, status })
}

async fn metrics_handler(State(h): State<Http>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

async fn ready_handler(State(h): State<Http>) -> impl IntoResponse {
    let ready = h.status.read().unwrap_or_else(|e| e.into_inner()).ready;
    if ready {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "waiting for executors\n")
    }
}

async fn status_handler(State(h): State<Http>) -> impl IntoResponse {
    let st = h.status.read().unwrap_or_else(|e| e.into_inner()).clone();
    axum::Json(st)
}
