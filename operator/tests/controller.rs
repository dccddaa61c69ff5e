//! The reconcile function against a mocked apiserver (kube's `tower-test` pattern, as in
//! kube-rs/controller-rs `fixtures.rs`): every API call it makes is checked in order and
//! answered.

mod common;

use std::sync::Arc;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use neptune_crds::StreamBatchApp;
use neptune_operator::context::Context;
use neptune_operator::driver_status::NoDriverStatus;
use neptune_operator::metrics::Metrics;
use neptune_operator::reconcile::reconcile;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Answers the apiserver calls one reconcile makes, asserting each request.
struct ApiServerVerifier(Handle);

impl ApiServerVerifier {
    /// Expects the next request; returns its method, path+query and JSON body; answers `reply`.
    async fn expect(
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

fn fixed_now() -> k8s_openapi::jiff::Timestamp {
    common::at(1000)
}

fn setup() -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let reporter = Reporter {
        controller: "neptune-operator".into(),
        instance: Some("test".into()),
    };
    let mut ctx = Context::new(client, reporter, Metrics::new(), Arc::new(NoDriverStatus));
    ctx.now = fixed_now;
    (Arc::new(ctx), ApiServerVerifier(handle))
}

fn pod_list(pods: Vec<k8s_openapi::api::core::v1::Pod>) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods})
}

fn owned(
    app: &StreamBatchApp,
    mut pod: k8s_openapi::api::core::v1::Pod,
) -> k8s_openapi::api::core::v1::Pod {
    pod.metadata.owner_references = Some(vec![neptune_operator::build::owner_reference(app)]);
    pod
}

const PODS: &str = "/api/v1/namespaces/streaming/pods";
const STATUS: &str =
    "/apis/neptune.dev/v1alpha1/namespaces/streaming/streambatchapps/fraud-detection/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/streaming/events";

#[tokio::test]
async fn new_app_applies_service_and_driver_then_status_then_events() {
    let (ctx, mut api) = setup();
    let app = common::app();
    let reply = serde_json::to_value(&app).unwrap();
    let task = tokio::spawn(reconcile(Arc::new(app.clone()), ctx.clone()));
    api.expect(
        Method::GET,
        &format!("{PODS}?&labelSelector=neptune.dev%2Fapp%3Dfraud-detection"),
        200,
        pod_list(vec![]),
    )
    .await;
    let svc = api
        .expect(Method::PATCH, "/api/v1/namespaces/streaming/services/fraud-detection-driver?&force=true&fieldManager=neptune-operator", 200, json!({}))
        .await;
    assert_eq!(svc["spec"]["clusterIP"], "None");
    let pod = api
        .expect(
            Method::PATCH,
            &format!("{PODS}/fraud-detection-driver?"),
            200,
            json!({}),
        )
        .await;
    assert_eq!(pod["spec"]["containers"][0]["args"][0], "driver");
    let status = api.expect(Method::PATCH, STATUS, 200, reply).await;
    assert_eq!(status["status"]["phase"], "Pending");
    assert_eq!(status["status"]["attempts"], 1);
    assert_eq!(
        status["status"]["executors"]["selector"],
        "neptune.dev/app=fraud-detection,neptune.dev/role=executor"
    );
    let e1 = api.expect(Method::POST, EVENTS, 201, json!({})).await;
    assert_eq!(e1["reason"], "CreatedDriver");
    let e2 = api.expect(Method::POST, EVENTS, 201, json!({})).await;
    assert_eq!(e2["reason"], "Pending");
    let action = task.await.unwrap().unwrap();
    assert!(format!("{action:?}").contains("10s"), "{action:?}");
    assert_eq!(ctx.metrics.reconciles.get(), 1);
}

#[tokio::test]
async fn failed_executor_past_backoff_is_deleted_and_counted() {
    let (ctx, mut api) = setup();
    let mut app = common::app();
    let first =
        neptune_operator::lifecycle::plan(&app, &common::observed(None, vec![]), common::at(0));
    app.status = Some(first.status);
    let driver = owned(&app, common::ready(common::driver_pod(&app)));
    let e0 = owned(&app, common::ready(common::executor_pod(&app, 0)));
    let e1 = owned(
        &app,
        common::exited(common::executor_pod(&app, 1), 137, 500),
    );
    let task = tokio::spawn(reconcile(Arc::new(app.clone()), ctx.clone()));
    api.expect(Method::GET, PODS, 200, pod_list(vec![driver, e0, e1]))
        .await;
    api.expect(
        Method::PATCH,
        "/api/v1/namespaces/streaming/services/",
        200,
        json!({}),
    )
    .await;
    api.expect(
        Method::DELETE,
        &format!("{PODS}/fraud-detection-executor-1"),
        200,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    )
    .await;
    let status = api
        .expect(
            Method::PATCH,
            STATUS,
            200,
            serde_json::to_value(&app).unwrap(),
        )
        .await;
    assert_eq!(status["status"]["phase"], "Running");
    assert_eq!(status["status"]["executorFailures"], 1);
    let mut reasons = Vec::new();
    for _ in 0..2 {
        reasons.push(api.expect(Method::POST, EVENTS, 201, json!({})).await["reason"].clone());
    }
    assert!(reasons.contains(&json!("ReplacingExecutor")), "{reasons:?}");
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn status_conflict_is_an_error_with_its_category_counted() {
    let (ctx, mut api) = setup();
    let app = common::app();
    let task = tokio::spawn(reconcile(Arc::new(app.clone()), ctx.clone()));
    api.expect(Method::GET, PODS, 200, pod_list(vec![])).await;
    api.expect(
        Method::PATCH,
        "/api/v1/namespaces/streaming/services/",
        200,
        json!({}),
    )
    .await;
    api.expect(
        Method::PATCH,
        &format!("{PODS}/fraud-detection-driver"),
        200,
        json!({}),
    )
    .await;
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "message": "conflict", "code": 409});
    api.expect(Method::PATCH, STATUS, 409, conflict).await;
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.category(), "conflict");
    assert_eq!(ctx.metrics.errors.with_label_values(&["conflict"]).get(), 1);
}
