//! A new app's first reconcile against the mocked apiserver: every call in order (Service,
//! NetworkPolicy, TLS Secret, driver and executor pods, status with its precondition, Events),
//! and its log lines inside the `reconcile` span.
//!
//! Alone in its test binary on purpose: tracing caches each callsite's interest process-wide,
//! so a test thread that hits a callsite while another thread installs a scoped subscriber
//! can leave that subscriber blind (it failed a CI run with an empty capture). Here no other
//! test thread exists.

use crate::apiserver;
use crate::common;

use std::sync::Arc;

use apiserver::*;
use http::Method;
use neptune_operator::reconcile::reconcile;
use serde_json::json;

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
