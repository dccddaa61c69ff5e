//! The reconcile function against a mocked apiserver (kube's `tower-test` pattern, as in
//! kube-rs/controller-rs `fixtures.rs`): every API call it makes is checked in order and
//! answered. Covers the status write's resourceVersion precondition, an apiserver refusal
//! reaching the status and Events, force deletion and in-place metadata patches.

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
struct ApiServerVerifier(Handle, String);

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
    (Arc::new(ctx), ApiServerVerifier(handle, String::new()))
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
const SECRETS: &str = "/api/v1/namespaces/streaming/secrets/fraud-detection-tls";
const NETPOL: &str =
    "/apis/networking.k8s.io/v1/namespaces/streaming/networkpolicies/fraud-detection-neptune";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/streaming/events";

/// Answers the Event POSTs left until `task` (the reconcile) ends; returns its result and the
/// events' bodies.
async fn events_until_done<T>(
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

fn reasons(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect()
}

/// Log lines captured by a test's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn new_app_applies_service_driver_and_executors_then_status_then_events() {
    // The test runtime is single-threaded, so the reconcile task logs to this subscriber.
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );
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
    let policy = api
        .expect(
            Method::PATCH,
            &format!("{NETPOL}?&force=true&fieldManager=neptune-operator"),
            200,
            json!({}),
        )
        .await;
    assert_eq!(policy["kind"], "NetworkPolicy");
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 7077);
    let secret = api
        .expect(
            Method::PATCH,
            "/api/v1/namespaces/streaming/secrets/fraud-detection-tls?&force=true&fieldManager=neptune-operator",
            200,
            json!({}),
        )
        .await;
    assert_eq!(secret["type"], "kubernetes.io/tls");
    for key in ["ca.crt", "tls.crt", "tls.key", "token"] {
        assert!(secret["data"][key].is_string(), "{key} in {secret}");
    }
    let pod = api
        .expect(
            Method::PATCH,
            &format!("{PODS}/fraud-detection-driver?"),
            200,
            json!({}),
        )
        .await;
    assert_eq!(pod["spec"]["containers"][0]["args"][0], "driver");
    for i in 0..2 {
        let pod = api
            .expect(
                Method::PATCH,
                &format!("{PODS}/fraud-detection-executor-{i}?"),
                200,
                json!({}),
            )
            .await;
        assert_eq!(pod["metadata"]["labels"]["neptune.dev/attempt"], "1");
    }
    let status = api.expect(Method::PUT, STATUS, 200, reply).await;
    assert_eq!(status["metadata"]["resourceVersion"], "41", "precondition");
    assert_eq!(status["status"]["phase"], "Pending");
    assert_eq!(status["status"]["attempts"], 1);
    assert_eq!(
        status["status"]["executors"]["selector"],
        "neptune.dev/app=fraud-detection,neptune.dev/role=executor"
    );
    let (action, events) = events_until_done(&mut api, task).await;
    assert_eq!(
        reasons(&events),
        ["CreatedDriver", "CreatedExecutors", "Pending"]
    );
    let action = action.unwrap();
    assert!(format!("{action:?}").contains("10s"), "{action:?}");
    assert_eq!(ctx.metrics.reconciles.get(), 1);
    // Every line of the reconcile is inside its span, which names the app.
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let planned = logs
        .lines()
        .find(|l| l.contains("planned"))
        .unwrap_or_else(|| panic!("no `planned` line in:\n{logs}"));
    assert!(
        planned.contains("reconcile{app=\"fraud-detection\" ns=\"streaming\"")
            && planned.contains("create pod fraud-detection-driver"),
        "{planned}"
    );
}

#[tokio::test]
async fn failed_executor_past_backoff_is_deleted_and_counted() {
    let (ctx, mut api) = setup();
    let mut app = common::app();
    let first = neptune_operator::lifecycle::plan(
        &app,
        &common::observed(None, vec![]),
        common::at(0),
        &Default::default(),
    );
    app.status = Some(first.status);
    let driver = owned(&app, common::ready(common::driver_pod(&app)));
    let e0 = owned(&app, common::ready(common::executor_pod(&app, 0)));
    let e1 = owned(
        &app,
        common::terminated(
            common::executor_pod(&app, 1),
            137,
            "OOMKilled",
            "out of memory in reduce",
            500,
        ),
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
    api.expect(Method::PATCH, NETPOL, 200, json!({})).await;
    api.expect(
        Method::DELETE,
        &format!("{PODS}/fraud-detection-executor-1"),
        200,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    )
    .await;
    let status = api
        .expect(
            Method::PUT,
            STATUS,
            200,
            serde_json::to_value(&app).unwrap(),
        )
        .await;
    assert_eq!(status["status"]["phase"], "Running");
    assert_eq!(status["status"]["executorFailures"], 1);
    assert_eq!(status["status"]["lastFailure"]["reason"], "OOMKilled");
    assert_eq!(status["status"]["lastFailure"]["exitCode"], 137);
    assert_eq!(
        status["status"]["lastFailure"]["message"],
        "out of memory in reduce"
    );
    let (r, events) = events_until_done(&mut api, task).await;
    r.unwrap();
    let replacing = events
        .iter()
        .find(|e| e["reason"] == "ReplacingExecutor")
        .unwrap();
    assert_eq!(replacing["type"], "Warning");
    assert!(
        replacing["note"].as_str().unwrap().contains("OOMKilled"),
        "{replacing}"
    );
}

#[tokio::test]
async fn status_write_has_a_resource_version_precondition_and_a_conflict_is_retried() {
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
    api.expect(Method::PATCH, NETPOL, 200, json!({})).await;
    api.expect(Method::PATCH, SECRETS, 200, json!({})).await;
    for pod in ["driver", "executor-0", "executor-1"] {
        api.expect(
            Method::PATCH,
            &format!("{PODS}/fraud-detection-{pod}"),
            200,
            json!({}),
        )
        .await;
    }
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "message": "the object has been modified", "code": 409});
    let body = api.expect(Method::PUT, STATUS, 409, conflict).await;
    assert_eq!(body["metadata"]["resourceVersion"], "41");
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.category(), "conflict");
    assert_eq!(err.retry_after(), std::time::Duration::from_secs(1));
    assert_eq!(ctx.metrics.errors.with_label_values(&["conflict"]).get(), 1);
}

#[tokio::test]
async fn a_pod_the_apiserver_refuses_is_reported_in_status_and_a_warning_event() {
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
    api.expect(Method::PATCH, NETPOL, 200, json!({})).await;
    api.expect(Method::PATCH, SECRETS, 200, json!({})).await;
    let invalid = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
        "message": "Pod \"fraud-detection-driver\" is invalid: spec.volumes[1].configMap.name: Required value"});
    api.expect(
        Method::PATCH,
        &format!("{PODS}/fraud-detection-driver"),
        422,
        invalid,
    )
    .await;
    let status = api
        .expect(
            Method::PUT,
            STATUS,
            200,
            serde_json::to_value(&app).unwrap(),
        )
        .await;
    let degraded = status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap()
        .clone();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "FailedCreate");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("spec.volumes[1].configMap.name"),
        "{degraded}"
    );
    assert_eq!(status["status"]["attempts"], 0, "no driver was created");
    let (r, events) = events_until_done(&mut api, task).await;
    assert_eq!(r.unwrap_err().category(), "invalid");
    assert_eq!(reasons(&events), ["FailedCreate"]);
    assert_eq!(events[0]["type"], "Warning");
    assert!(
        events[0]["note"]
            .as_str()
            .unwrap()
            .contains("spec.volumes[1]")
    );
}

#[tokio::test]
async fn overdue_pod_is_force_deleted_with_its_uid_and_labels_are_merge_patched() {
    let (ctx, mut api) = setup();
    let mut app = common::app();
    app.status = Some(neptune_crds::StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    });
    let driver = owned(&app, common::ready(common::driver_pod(&app)));
    let e0 = owned(&app, common::ready(common::executor_pod(&app, 0)));
    let e1 = owned(
        &app,
        common::terminating(common::ready(common::executor_pod(&app, 1))),
    );
    app.spec.driver.pod.labels = [("team".to_string(), "risk".to_string())].into();
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
    api.expect(Method::PATCH, NETPOL, 200, json!({})).await;
    let patch = api
        .expect(
            Method::PATCH,
            &format!("{PODS}/fraud-detection-driver?"),
            200,
            json!({}),
        )
        .await;
    assert_eq!(api.1, "application/merge-patch+json");
    assert_eq!(patch["metadata"]["labels"]["team"], "risk");
    assert!(patch.get("spec").is_none(), "the pod spec is never touched");
    let delete = api
        .expect(
            Method::DELETE,
            &format!("{PODS}/fraud-detection-executor-1"),
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        )
        .await;
    assert_eq!(delete["gracePeriodSeconds"], 0);
    assert_eq!(delete["preconditions"]["uid"], "uid-executor-1-1");
    api.expect(
        Method::PUT,
        STATUS,
        200,
        serde_json::to_value(&app).unwrap(),
    )
    .await;
    let (r, events) = events_until_done(&mut api, task).await;
    r.unwrap();
    assert!(reasons(&events).contains(&"ForceDeleted"), "{events:?}");
}

#[test]
fn watch_errors_are_counted_and_reconcile_errors_are_not_double_counted() {
    use kube::runtime::controller::Error as E;
    use kube::runtime::watcher;
    let metrics = Metrics::new();
    let watch: Result<(), E<neptune_operator::error::Error, watcher::Error>> =
        Err(E::QueueError(watcher::Error::NoResourceVersion));
    neptune_operator::controller::on_result(&watch, &metrics);
    neptune_operator::controller::on_result(&watch, &metrics);
    assert_eq!(metrics.watch_errors.get(), 2);
    assert!(
        metrics
            .render()
            .contains("neptune_operator_watch_errors_total 2")
    );
    let ok: Result<(), E<neptune_operator::error::Error, watcher::Error>> = Ok(());
    neptune_operator::controller::on_result(&ok, &metrics);
    assert_eq!(metrics.watch_errors.get(), 2);
}
