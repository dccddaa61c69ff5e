//! The reconcile function against a mocked apiserver (kube's `tower-test` pattern, as in
//! kube-rs/controller-rs `fixtures.rs`): every API call it makes is checked in order and
//! answered. Covers the status write's resourceVersion precondition, an apiserver refusal
//! reaching the status and Events, force deletion and in-place metadata patches.

use crate::apiserver;
use crate::common;

use std::sync::Arc;

use apiserver::*;
use http::Method;
use neptune_operator::metrics::Metrics;
use neptune_operator::reconcile::reconcile;
use serde_json::json;

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
