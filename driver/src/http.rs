//! The driver's HTTP endpoints, plain HTTP (served by `neptune_net::http` with its limits):
//! `/metrics` (Prometheus text, the driver's and the transport's), `/healthz`, `/readyz`,
//! `/status` (JSON).
//!
//! `/readyz` is ready while the driver serves: the app is built and both servers are up. It
//! does not wait for executors (that is `/status`'s `ready`, jobs started): on Kubernetes the
//! readiness of the driver pod publishes it, and executors may be waiting for it to register.
//!
//! Nothing public here is secret: `/status` carries counters, job results, addresses and the
//! transport mode, never config values or broadcast contents (the `--set` values may hold
//! credentials of the app's sources and sinks; broadcasts hold e.g. a fraud model). Routes under
//! `/admin/` need the app's admin token (`Authorization: Bearer`, see
//! `neptune_net::token`); state-changing endpoints belong there. `/admin/config` shows the
//! config the app runs with.

use crate::metrics::DriverMetrics;
use crate::status::Status;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use neptune_core::config::Config;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Clone)]
struct Http {
    metrics: DriverMetrics,
    status: Arc<RwLock<Status>>,
    net: neptune_net::NetMetrics,
    config: Arc<Config>,
    serving: Arc<AtomicBool>,
}

/// What the admin routes need.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin token (`None`: admin routes answer 403).
    pub token: neptune_net::token::AdminState,
    /// The app's config (`--set` values), shown by `/admin/config`.
    pub config: Config,
}

/// The router for the driver's HTTP server; `/readyz` answers 200 while `serving` is set.
pub fn router(
    metrics: DriverMetrics,
    status: Arc<RwLock<Status>>,
    net: neptune_net::NetMetrics,
    admin: Admin,
    serving: Arc<AtomicBool>,
) -> Router {
    let state = Http {
        metrics,
        status,
        net,
        config: Arc::new(admin.config),
        serving,
    };
    let public = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .route("/status", get(status_handler));
    let admin_routes = Router::new().route("/admin/config", get(config_handler));
    public
        .merge(neptune_net::token::guard(admin_routes, admin.token))
        .with_state(state)
}

async fn metrics_handler(State(h): State<Http>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        h.metrics.encode() + &h.net.encode(),
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

async fn config_handler(State(h): State<Http>) -> impl IntoResponse {
    let pairs: serde_json::Map<String, serde_json::Value> = h
        .config
        .pairs()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    axum::Json(serde_json::Value::Object(pairs))
}
