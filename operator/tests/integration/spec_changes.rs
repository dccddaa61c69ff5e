//! Spec changes: the hash covers exactly what defines each pod (all of the driver's args except
//! the executor count, including `app.args`); label and annotation edits are patched onto
//! running pods in place, removed keys deleted, keys others added left alone.

use crate::common;

use common::*;
use neptune_crds::StreamBatchApp;
use neptune_crds::StreamBatchAppStatus;
use neptune_operator::build;
use neptune_operator::lifecycle::Action;
use neptune_operator::validate::validate;
use serde_json::json;

fn driver_hash(a: &StreamBatchApp) -> String {
    let p = build::driver_pod(a, &validate(a).unwrap(), 1);
    p.metadata.annotations.unwrap()[neptune_crds::labels::SPEC_HASH].clone()
}

#[test]
fn app_args_are_hashed_and_the_executor_count_is_not() {
    let mut app = app();
    app.spec.app.args = vec!["--model-dir".into(), "/tmp/model".into()];
    let mut scaled = app.clone();
    scaled.spec.executor.replicas = 7;
    assert_eq!(
        driver_hash(&app),
        driver_hash(&scaled),
        "scaling restarts nothing"
    );
    let mut edited = app.clone();
    edited.spec.app.args[1] = "/tmp/other".into();
    assert_ne!(
        driver_hash(&app),
        driver_hash(&edited),
        "an args edit applies"
    );
    let mut edited = app.clone();
    edited.spec.app.args.pop();
    assert_ne!(driver_hash(&app), driver_hash(&edited));
    // Scaling with app args: executors added, the driver kept.
    app.status = Some(StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    });
    let obs = observed(
        Some(ready(driver_pod(&app))),
        vec![ready(executor_pod(&app, 0)), ready(executor_pod(&app, 1))],
    );
    let mut scaled = app.clone();
    scaled.spec.executor.replicas = 3;
    let (p, _) = step(&scaled, &obs, 10);
    assert!(deleted(&p).is_empty(), "{:?}", p.actions);
    assert_eq!(created(&p), ["fraud-detection-executor-2"]);
}

#[test]
fn label_and_annotation_edits_are_patched_in_place() {
    let mut app = app();
    app.spec.driver.pod.labels = [("team".to_string(), "risk".to_string())].into();
    app.spec.executor.pod.annotations = [("owner".to_string(), "a".to_string())].into();
    app.status = Some(StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    });
    let mut driver = ready(driver_pod(&app));
    // A label someone else added stays.
    driver
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("added-by-kubectl".into(), "yes".into());
    let obs = observed(
        Some(driver),
        vec![ready(executor_pod(&app, 0)), ready(executor_pod(&app, 1))],
    );
    let mut edited = app.clone();
    edited.spec.driver.pod.labels = [("tier".to_string(), "gold".to_string())].into();
    edited.spec.executor.pod.annotations = [("owner".to_string(), "b".to_string())].into();
    let (p, _) = step(&edited, &obs, 10);
    assert!(deleted(&p).is_empty(), "nothing restarts: {:?}", p.actions);
    assert!(created(&p).is_empty());
    let patches: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::PatchPodMetadata { name, patch } => Some((name.as_str(), patch.to_json())),
            _ => None,
        })
        .collect();
    assert_eq!(patches.len(), 3, "{patches:?}");
    let (name, driver_patch) = &patches[0];
    assert_eq!(*name, "fraud-detection-driver");
    assert_eq!(
        driver_patch["metadata"]["labels"],
        json!({"team": null, "tier": "gold"})
    );
    let recorded = driver_patch["metadata"]["annotations"]["neptune.dev/user-metadata"]
        .as_str()
        .unwrap();
    assert!(
        recorded.contains("tier") && !recorded.contains("team"),
        "{recorded}"
    );
    for (_, e) in &patches[1..] {
        assert_eq!(e["metadata"]["annotations"]["owner"], "b");
        assert_eq!(e["metadata"]["labels"], json!({}));
    }
    assert!(reasons(&p).contains(&"UpdatedMetadata"));
    // Once applied, nothing more to do.
    let mut driver = ready(driver_pod(&edited));
    driver
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("added-by-kubectl".into(), "yes".into());
    let obs = observed(
        Some(driver),
        vec![
            ready(executor_pod(&edited, 0)),
            ready(executor_pod(&edited, 1)),
        ],
    );
    let (p, _) = step(&edited, &obs, 11);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::PatchPodMetadata { .. })),
        "{:?}",
        p.actions
    );
}
