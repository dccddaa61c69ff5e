//! A mocked apiserver for reconcile tests (kube's `tower-test` pattern, as in kube-rs/controller-rs
//! `fixtures.rs`): every API call a reconcile makes is checked in order and answered.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::Arc;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use neptune_crds::StreamBatchApp;
use neptune_operator::context::Context;
use neptune_operator::driver_status::NoDriverStatus;
use neptune_operator::metrics::Metrics;
use serde_json::{Value, json};

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Answers the apiserver calls one reconcile makes, asserting each request.
pub struct ApiServerVerifier(pub Handle, pub String);

impl ApiServerVerifier {
    /// Expects the next request; returns its method, path+query and JSON body; answers `reply`.
    pub async fn expect(
        &mut self,
        method: Method,
        path_prefix: &str,
        status: u16,
        reply: Value,
    ) -> Value {
        let (request, send) = self
            .0
            .next_request()
            .await
            .expect("the reconcile made no further request");
        let uri = request.uri().to_string();
        assert_eq!(request.method(), method, "{uri}");
        assert!(
            uri.starts_with(path_prefix),
            "expected {method} {path_prefix}..., got {uri}"
        );
        if let Some(ct) = request.headers().get("content-type") {
            self.1 = ct.to_str().unwrap().to_string();
        }
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap(),
        );
        body
    }
}

pub fn fixed_now() -> k8s_openapi::jiff::Timestamp {
    super::common::at(1000)
}

pub fn setup() -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let reporter = Reporter {
        controller: "neptune-operator".into(),
        instance: Some("test".into()),
    };
    let mut ctx = Context::new(client, reporter, Metrics::new(), Arc::new(NoDriverStatus));
    ctx.now = fixed_now;
    (Arc::new(ctx), ApiServerVerifier(handle, String::new()))
}

pub fn pod_list(pods: Vec<k8s_openapi::api::core::v1::Pod>) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods})
}

pub fn owned(
    app: &StreamBatchApp,
    mut pod: k8s_openapi::api::core::v1::Pod,
) -> k8s_openapi::api::core::v1::Pod {
    pod.metadata.owner_references = Some(vec![neptune_operator::build::owner_reference(app)]);
    pod
}

pub const PODS: &str = "/api/v1/namespaces/streaming/pods";
pub const STATUS: &str =
    "/apis/neptune.dev/v1alpha1/namespaces/streaming/streambatchapps/fraud-detection/status";
pub const SECRETS: &str = "/api/v1/namespaces/streaming/secrets/fraud-detection-tls";
pub const NETPOL: &str =
    "/apis/networking.k8s.io/v1/namespaces/streaming/networkpolicies/fraud-detection-neptune";
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/streaming/events";

/// Answers the Event POSTs left until `task` (the reconcile) ends; returns its result and the
/// events' bodies.
pub async fn events_until_done<T>(
    api: &mut ApiServerVerifier,
    task: tokio::task::JoinHandle<T>,
) -> (T, Vec<Value>) {
    tokio::pin!(task);
    let mut events = Vec::new();
    loop {
        tokio::select! {
            r = &mut task => return (r.unwrap(), events),
            next = api.0.next_request() => {
                let (request, send) = next.expect("a request");
                let uri = request.uri().to_string();
                // A repeated event (same reason and note) is a PATCH of its series.
                assert!(
                    (request.method() == Method::POST || request.method() == Method::PATCH) && uri.starts_with(EVENTS),
                    "unexpected {} {uri}",
                    request.method()
                );
                let bytes = request.into_body().collect_bytes().await.unwrap();
                events.push(serde_json::from_slice(&bytes).unwrap());
                send.send_response(Response::builder().status(201).body(Body::from(b"{}".to_vec())).unwrap());
            }
        }
    }
}

pub fn reasons(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect()
}

/// Log lines captured by a test's subscriber.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
