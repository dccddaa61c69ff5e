//! REST semantics through kube-rs over HTTPS: create conflicts and `generateName`, the
//! resourceVersion precondition, no-op writes, status-subresource isolation and generation on a
//! CRD kind, finalizers, and the ownerReference cascade.

use crate::common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

fn cm(v: serde_json::Value) -> ConfigMap {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn creates_updates_and_preconditions() {
    let twin = common::twin().await;
    let api: Api<ConfigMap> = Api::namespaced(twin.client().await.unwrap(), "default");
    let a = api
        .create(
            &PostParams::default(),
            &cm(json!({"metadata": {"name": "a"}, "data": {"k": "1"}})),
        )
        .await
        .unwrap();
    let dup = api
        .create(
            &PostParams::default(),
            &cm(json!({"metadata": {"name": "a"}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(dup, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{dup}"
    );
    let generated = api
        .create(
            &PostParams::default(),
            &cm(json!({"metadata": {"generateName": "gen-"}})),
        )
        .await
        .unwrap();
    assert!(generated.metadata.name.unwrap().starts_with("gen-"));

    // A stale resourceVersion is a conflict; the current one wins.
    let mut stale = a.clone();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );

    // A write that changes nothing keeps the resourceVersion.
    let before = api.get("a").await.unwrap();
    let same = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        before.metadata.resource_version,
        same.metadata.resource_version
    );

    // A namespace that does not exist.
    let other: Api<ConfigMap> = Api::namespaced(twin.client().await.unwrap(), "nowhere");
    let err = other
        .create(
            &PostParams::default(),
            &cm(json!({"metadata": {"name": "x"}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err}"
    );
}

#[tokio::test]
async fn status_writes_are_isolated_and_generation_counts_spec_changes() {
    let twin = common::twin().await;
    common::install_crd(&twin, "ns");
    let gvk = GroupVersionKind::gvk("neptune.dev", "v1alpha1", "StreamBatchApp");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "streambatchapps");
    let api: Api<DynamicObject> = Api::namespaced_with(twin.client().await.unwrap(), "ns", &ar);
    let app = json!({"apiVersion": "neptune.dev/v1alpha1", "kind": "StreamBatchApp", "metadata": {"name": "a"},
        "spec": {"image": "neptune:dev", "app": {"name": "synthetic"}}, "status": {"phase": "Running"}});
    let created = api
        .patch("a", &PatchParams::apply("me"), &Patch::Apply(&app))
        .await
        .unwrap();
    let v = serde_json::to_value(&created).unwrap();
    assert!(
        v.get("status").is_none() || v["status"].get("phase").is_none(),
        "main writes ignore status: {v}"
    );
    let st = json!({"apiVersion": "neptune.dev/v1alpha1", "kind": "StreamBatchApp", "status": {"phase": "Pending"}, "spec": {"image": "other"}});
    let after = api
        .patch_status("a", &PatchParams::apply("op").force(), &Patch::Apply(&st))
        .await
        .unwrap();
    let v = serde_json::to_value(&after).unwrap();
    assert_eq!(
        (v["status"]["phase"].clone(), v["spec"]["image"].clone()),
        (json!("Pending"), json!("neptune:dev"))
    );
    assert_eq!(v["metadata"]["generation"], 1);
    let scaled = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"executor": {"replicas": 5}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&scaled).unwrap()["metadata"]["generation"],
        2
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_and_owners_cascade() {
    let twin = common::twin().await;
    let api: Api<ConfigMap> = Api::namespaced(twin.client().await.unwrap(), "default");
    let owner = api
        .create(
            &PostParams::default(),
            &cm(json!({"metadata": {"name": "owner", "finalizers": ["test/hold"]}})),
        )
        .await
        .unwrap();
    let uid = owner.metadata.uid.clone().unwrap();
    api.create(
        &PostParams::default(),
        &cm(json!({"metadata": {"name": "child", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}})),
    )
    .await
    .unwrap();
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    let held = api.get("owner").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "the finalizer holds it"
    );
    assert!(api.get("child").await.is_ok(), "its owner still exists");
    api.patch(
        "owner",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    common::eventually("owner and child gone", || {
        (twin.get("v1", "ConfigMap", "default", "owner").is_none()
            && twin.get("v1", "ConfigMap", "default", "child").is_none())
        .then_some(())
    })
    .await;
}
