//! Node loss: a pod stuck Terminating past its deletion deadline plus the operator's margin is
//! force-deleted (with its uid as precondition), with a Warning Event and `Degraded`; before
//! that the planner waits and looks again when it will be overdue; the margin is configurable
//! and force deletion can be turned off.

use crate::common;

use common::*;
use neptune_crds::StreamBatchAppStatus;
use neptune_crds::v1alpha1::condition_types as ct;
use neptune_operator::Settings;
use neptune_operator::lifecycle::{Action, plan};

fn app_attempt_1() -> neptune_crds::StreamBatchApp {
    let mut app = app();
    app.status = Some(StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    });
    app
}

#[test]
fn executor_stuck_terminating_is_force_deleted_once_overdue() {
    let app = app_attempt_1();
    let mut stuck = terminating(ready(executor_pod(&app, 1)));
    stuck.spec.as_mut().unwrap().node_name = Some("node-7".into());
    let obs = observed(
        Some(ready(driver_pod(&app))),
        vec![ready(executor_pod(&app, 0)), stuck],
    );
    // Deadline at(0) + 60 s margin: at 30 s it waits, and looks again by then.
    let (p, _) = step(&app, &obs, 30);
    assert!(force_deleted(&p).is_empty());
    assert!(created(&p).is_empty(), "its name is still taken");
    assert!(p.requeue_after.as_secs() <= 30, "{:?}", p.requeue_after);
    let (p, _) = step(&app, &obs, 61);
    assert_eq!(
        p.actions
            .iter()
            .find(|a| matches!(a, Action::ForceDeletePod { .. })),
        Some(&Action::ForceDeletePod {
            name: "fraud-detection-executor-1".into(),
            uid: Some("uid-executor-1-1".into())
        })
    );
    let ev = p
        .events
        .iter()
        .find(|e| e.reason == "ForceDeleted")
        .unwrap();
    assert!(ev.note.contains("node-7"), "{}", ev.note);
    assert_eq!(cond(&p, ct::DEGRADED), ("True", "ForceDeleted"));
    // Gone: the slot is filled again.
    let (p, _) = step(
        &app,
        &observed(
            Some(ready(driver_pod(&app))),
            vec![ready(executor_pod(&app, 0))],
        ),
        62,
    );
    assert_eq!(created(&p), ["fraud-detection-executor-1"]);
}

#[test]
fn driver_stuck_terminating_is_force_deleted_and_the_margin_is_configurable() {
    let app = app_attempt_1();
    let obs = observed(Some(terminating(ready(driver_pod(&app)))), vec![]);
    let (p, _) = step(&app, &obs, 61);
    assert_eq!(force_deleted(&p), ["fraud-detection-driver"]);
    let patient = Settings {
        force_delete_after_seconds: Some(600),
        ..Settings::default()
    };
    let p = plan(&app, &obs, at(61), &patient);
    assert!(force_deleted(&p).is_empty());
    let never = Settings {
        force_delete_after_seconds: None,
        ..Settings::default()
    };
    let p = plan(&app, &obs, at(100_000), &never);
    assert!(force_deleted(&p).is_empty());
}

#[test]
fn force_deletion_flags_parse_into_settings() {
    use clap::Parser;
    let c: neptune_operator::Config =
        neptune_operator::Args::parse_from(["neptune-operator"]).into();
    assert_eq!(c.settings.force_delete_after_seconds, Some(60));
    let c: neptune_operator::Config = neptune_operator::Args::parse_from([
        "neptune-operator",
        "--force-delete-after-seconds",
        "120",
    ])
    .into();
    assert_eq!(c.settings.force_delete_after_seconds, Some(120));
    let c: neptune_operator::Config =
        neptune_operator::Args::parse_from(["neptune-operator", "--no-force-delete"]).into();
    assert_eq!(c.settings.force_delete_after_seconds, None);
}
