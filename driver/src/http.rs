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
//! config the app runs with; `POST /admin/scheduling` changes the live scheduling settings.

use crate::metrics::DriverMetrics;
use crate::server::Inbound;
use crate::status::Status;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
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
    inbound: Option<tokio::sync::mpsc::Sender<Inbound>>,
}

/// What the admin routes need.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin token (`None`: admin routes answer 403).
    pub token: neptune_net::token::AdminState,
    /// The app's config (`--set` values), shown by `/admin/config`.
    pub config: Config,
    /// The event loop, which applies `POST /admin/scheduling` (`None`: that route answers 503).
    pub inbound: Option<tokio::sync::mpsc::Sender<Inbound>>,
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
        inbound: admin.inbound,
    };
    let public = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .route("/status", get(status_handler));
    let admin_routes = Router::new()
        .route("/admin/config", get(config_handler))
        .route(
            "/admin/scheduling",
            post(scheduling_handler).layer(DefaultBodyLimit::max(MAX_ADMIN_BODY)),
        );
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

/// Largest admin request body: a handful of settings.
const MAX_ADMIN_BODY: usize = 16 << 10;

/// `POST /admin/scheduling` with a JSON object of live settings, e.g.
/// `{"scheduler.policy": "fifo", "scheduler.quantum_ms": 500}`: applied by the running scheduler
/// all together or not at all. Answers the scheduling in force (200), why a change was refused
/// (400, naming the key), or 503 when the event loop is gone.
async fn scheduling_handler(State(h): State<Http>, body: axum::body::Bytes) -> impl IntoResponse {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m + "\n").into_response();
    let map: serde_json::Map<String, serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return bad(format!(
                "the body must be a JSON object of settings, e.g. {{\"scheduler.policy\": \"fifo\"}}: {e}"
            ));
        }
    };
    if map.is_empty() {
        return bad("no settings given".into());
    }
    let mut changes = Vec::with_capacity(map.len());
    for (k, v) in map {
        let value = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => return bad(format!("`{k}`: a string or a number, not {other}")),
        };
        changes.push((k, value));
    }
    let Some(tx) = h.inbound else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no scheduler\n").into_response();
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if tx
        .send(Inbound::Reconfigure { changes, reply })
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "the driver is stopping\n").into_response();
    }
    match answer.await {
        Ok(Ok(now)) => axum::Json(now).into_response(),
        Ok(Err(reason)) => bad(reason.to_string()),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the driver is stopping\n").into_response(),
    }
}

async fn config_handler(State(h): State<Http>) -> impl IntoResponse {
    let pairs: serde_json::Map<String, serde_json::Value> = h
        .config
        .pairs()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    axum::Json(serde_json::Value::Object(pairs))
}
