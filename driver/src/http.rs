//! The driver's HTTP endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz`, `/status`
//! (JSON).
//!
//! `/readyz` is ready while the driver serves: the app is built and both servers are up. It
//! does not wait for executors (that is `/status`'s `ready`, jobs started): on Kubernetes the
//! readiness of the driver pod publishes it, and executors may be waiting for it to register.

use crate::metrics::DriverMetrics;
use crate::status::Status;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Clone)]
struct Http {
    metrics: DriverMetrics,
    status: Arc<RwLock<Status>>,
    serving: Arc<AtomicBool>,
}

/// The router for the driver's HTTP server; `/readyz` answers 200 while `serving` is set.
pub fn router(
    metrics: DriverMetrics,
    status: Arc<RwLock<Status>>,
    serving: Arc<AtomicBool>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .route("/status", get(status_handler))
        .with_state(Http {
            metrics,
            status,
            serving,
        })
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
    if h.serving.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not serving\n")
    }
}

async fn status_handler(State(h): State<Http>) -> impl IntoResponse {
    let st = h.status.read().unwrap_or_else(|e| e.into_inner()).clone();
    axum::Json(st)
}
