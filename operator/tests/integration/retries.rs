//! Retry accounting: only real failures count against `restartPolicy.maxRetries` and
//! `executor.maxFailures`; operator-caused restarts, deleted pods and disruptions do not, and say
//! why in `status.lastRestart`; the counters reset after a stable period; the last failure's
//! exit code, reason and termination message reach the status; a deletion that did not happen is
//! not counted.

use crate::common;

use common::*;
use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use neptune_crds::StreamBatchAppStatus;
use neptune_crds::v1alpha1::{AppPhase, FailureStatus};
use neptune_operator::lifecycle::{Action, Counted, revert_unexecuted};

fn running(app: &neptune_crds::StreamBatchApp) -> neptune_operator::lifecycle::Observed {
    observed(
        Some(ready(driver_pod(app))),
        vec![ready(executor_pod(app, 0)), ready(executor_pod(app, 1))],
    )
}

#[test]
fn spec_changes_suspends_and_deleted_drivers_do_not_use_up_retries() {
    let mut app = app();
    assert_eq!(app.spec.restart_policy.max_retries, 3);
    let (_, mut app_) = step(&app, &observed(None, vec![]), 0);
    app.status = app_.status.take();
    let mut t = 10;
    for round in 0..3 {
        // A spec change: the operator replaces the driver.
        let before = running(&app);
        app.spec.scheduling.heartbeat_interval_ms = Some(300 + round);
        let (p, next) = step(&app, &before, t);
        assert!(deleted(&p).contains(&"fraud-detection-driver".to_string()));
        let (p, next) = step(&next, &observed(None, vec![]), t + 1);
        assert_eq!(created(&p)[0], "fraud-detection-driver");
        // Suspend and resume.
        let mut s = next.clone();
        s.spec.suspend = true;
        let (_, mut s) = step(&s, &running(&next), t + 2);
        s.spec.suspend = false;
        let (_, next) = step(&s, &observed(None, vec![]), t + 3);
        // Somebody deletes the running driver pod.
        let (_, next) = step(&next, &running(&next), t + 4);
        let (p, next) = step(&next, &observed(None, vec![]), t + 5);
        assert!(reasons(&p).contains(&"DriverPodDeleted"), "{:?}", p.events);
        assert_eq!(
            p.status.last_restart.as_ref().unwrap().reason,
            "DriverPodDeleted"
        );
        app = next;
        t += 10;
    }
    let st = app.status.as_ref().unwrap();
    assert_eq!(st.attempts, 10, "every new driver pod is an attempt");
    assert_eq!(st.driver_failures, 0, "none of them was a failure");
    // One real crash now restarts the app instead of failing it.
    let crashed = observed(Some(exited(driver_pod(&app), 1, t)), vec![]);
    let (p, _) = step(&app, &crashed, t + 100);
    assert_eq!(
        p.status.phase,
        Some(AppPhase::Restarting),
        "{:?}",
        p.status.message
    );
    assert_eq!(p.status.driver_failures, 1);
    assert_eq!(
        p.actions
            .iter()
            .find(|a| matches!(a, Action::DeletePod { .. })),
        Some(&Action::DeletePod {
            name: "fraud-detection-driver".into(),
            counted: Some(Counted::Driver)
        })
    );
    let r = p.status.last_restart.as_ref().unwrap();
    assert_eq!((r.reason.as_str(), r.counted), ("DriverFailed", true));
}

#[test]
fn oom_killed_driver_counts_and_its_termination_message_reaches_the_status() {
    let mut app = app();
    app.status = Some(StreamBatchAppStatus {
        attempts: 1,
        phase: Some(AppPhase::Running),
        ..Default::default()
    });
    let pod = terminated(
        driver_pod(&app),
        137,
        "OOMKilled",
        "memory limit 563Mi exceeded while building the model\n(last log line)",
        100,
    );
    let (p, _) = step(&app, &observed(Some(pod), vec![]), 101);
    let f = p.status.last_failure.as_ref().unwrap();
    assert_eq!(f.pod, "fraud-detection-driver");
    assert_eq!(f.role, "driver");
    assert_eq!(f.exit_code, Some(137));
    assert_eq!(f.reason, "OOMKilled");
    assert!(f.message.contains("memory limit 563Mi"), "{}", f.message);
    assert!(f.counted);
    let message = p.status.message.as_deref().unwrap();
    assert!(
        message.contains("exit code 137 (OOMKilled): memory limit 563Mi"),
        "{message}"
    );
    // Once the backoff has passed the restart is a Warning Event with the same words.
    let (p, _) = step(
        &p_app(&app, &p),
        &observed(
            Some(terminated(driver_pod(&app), 137, "OOMKilled", "boom", 100)),
            vec![],
        ),
        200,
    );
    let ev = p
        .events
        .iter()
        .find(|e| e.reason == "RestartingDriver")
        .unwrap();
    assert!(ev.note.contains("OOMKilled"), "{}", ev.note);
}

fn p_app(
    app: &neptune_crds::StreamBatchApp,
    p: &neptune_operator::lifecycle::Plan,
) -> neptune_crds::StreamBatchApp {
    let mut a = app.clone();
    a.status = Some(p.status.clone());
    a
}

#[test]
fn a_disrupted_driver_restarts_at_once_without_counting() {
    let mut app = app();
    app.status = Some(StreamBatchAppStatus {
        attempts: 1,
        phase: Some(AppPhase::Running),
        ..Default::default()
    });
    let mut pod = driver_pod(&app);
    pod.status = Some(PodStatus {
        phase: Some("Failed".into()),
        reason: Some("Evicted".into()),
        conditions: Some(vec![PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("PreemptionByScheduler".into()),
            message: Some("preempted by a pod of higher priority".into()),
            last_transition_time: Some(Time(at(50))),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    let (p, _) = step(&app, &observed(Some(pod), vec![]), 51);
    assert_eq!(
        p.actions
            .iter()
            .find(|a| matches!(a, Action::DeletePod { .. })),
        Some(&Action::DeletePod {
            name: "fraud-detection-driver".into(),
            counted: None
        }),
        "no backoff for a disruption"
    );
    assert_eq!(p.status.driver_failures, 0);
    let r = p.status.last_restart.as_ref().unwrap();
    assert_eq!((r.reason.as_str(), r.counted), ("DriverDisrupted", false));
    let f = p.status.last_failure.as_ref().unwrap();
    assert_eq!(
        (f.reason.as_str(), f.counted),
        ("PreemptionByScheduler", false)
    );
}

#[test]
fn disrupted_executors_are_replaced_at_once_and_not_counted() {
    let mut app = app();
    app.spec.executor.max_failures = 0;
    app.status = Some(StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    });
    let mut lost = executor_pod(&app, 1);
    lost.status = Some(PodStatus {
        phase: Some("Failed".into()),
        reason: Some("NodeLost".into()),
        ..PodStatus::default()
    });
    let (p, _) = step(
        &app,
        &observed(
            Some(ready(driver_pod(&app))),
            vec![ready(executor_pod(&app, 0)), lost],
        ),
        10,
    );
    assert_eq!(deleted(&p), ["fraud-detection-executor-1"]);
    assert_eq!(p.status.executor_failures, 0);
    assert_eq!(
        p.status
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded")
            .unwrap()
            .status,
        "False",
        "maxFailures 0 is not reached by a disruption"
    );
}

#[test]
fn failure_counters_reset_after_a_stable_period() {
    let mut app = app();
    assert_eq!(app.spec.restart_policy.reset_after_seconds, 600);
    app.status = Some(StreamBatchAppStatus {
        attempts: 3,
        driver_failures: 2,
        executor_failures: 5,
        phase: Some(AppPhase::Running),
        running_since: Some(Time(at(0))),
        last_failure: Some(FailureStatus {
            time: Time(at(100)),
            pod: "fraud-detection-executor-0".into(),
            pod_uid: "u".into(),
            role: "executor".into(),
            exit_code: Some(1),
            reason: "Error".into(),
            message: String::new(),
            counted: true,
        }),
        ..Default::default()
    });
    let obs = running(&app);
    let (p, _) = step(&app, &obs, 699);
    assert_eq!(
        (p.status.driver_failures, p.status.executor_failures),
        (2, 5)
    );
    assert!(p.requeue_after.as_secs() <= 1, "{:?}", p.requeue_after);
    let (p, _) = step(&app, &obs, 700);
    assert_eq!(
        (p.status.driver_failures, p.status.executor_failures),
        (0, 0)
    );
    assert!(reasons(&p).contains(&"FailuresReset"));
    // Not while the driver is not Ready.
    let (p, _) = step(
        &app,
        &observed(Some(pending(driver_pod(&app))), vec![]),
        10_000,
    );
    assert_eq!(p.status.driver_failures, 2);
    assert_eq!(p.status.running_since, None);
}

#[test]
fn counts_of_deletions_not_carried_out_are_taken_back() {
    let previous = StreamBatchAppStatus {
        attempts: 2,
        driver_failures: 1,
        executor_failures: 4,
        ..Default::default()
    };
    let mut status = StreamBatchAppStatus {
        attempts: 3,
        driver_failures: 2,
        executor_failures: 5,
        ..Default::default()
    };
    let app = app();
    let pending = vec![
        Action::DeletePod {
            name: "e1".into(),
            counted: Some(Counted::Executor),
        },
        Action::DeletePod {
            name: "d".into(),
            counted: Some(Counted::Driver),
        },
        Action::CreatePod(Box::new(driver_pod(&app))),
        Action::CreatePod(Box::new(executor_pod(&app, 0))),
    ];
    revert_unexecuted(&mut status, &previous, &pending);
    assert_eq!(
        (
            status.attempts,
            status.driver_failures,
            status.executor_failures
        ),
        (2, 1, 4)
    );
}

#[test]
fn executors_of_an_earlier_driver_attempt_are_replaced_uncounted() {
    let mut app = app();
    app.status = Some(StreamBatchAppStatus {
        attempts: 2,
        ..Default::default()
    });
    let old = ready(executor_pod_of(&app, 0, 1));
    let (p, _) = step(
        &app,
        &observed(
            Some(pending(driver_pod_of(&app, 2))),
            vec![old, ready(executor_pod(&app, 1))],
        ),
        10,
    );
    assert_eq!(deleted(&p), ["fraud-detection-executor-0"]);
    assert!(
        created(&p).is_empty(),
        "index 0 is recreated once the old pod is gone"
    );
    assert_eq!(p.status.executor_failures, 0);
}
