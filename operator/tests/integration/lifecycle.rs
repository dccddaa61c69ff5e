//! The lifecycle planner as tables and scenarios: status for given pod states, executor backoff,
//! driver restart policy, scale up/down, suspend/resume, stuck pods, TTL, spec changes.

use crate::common;

use common::*;
use neptune_crds::v1alpha1::{AppPhase, JobStatus, condition_types as ct};
use neptune_operator::Settings;
use neptune_operator::lifecycle::{Action, plan};
use neptune_operator::pods::backoff_seconds;

#[test]
fn status_for_given_pod_states() {
    let app = app();
    let d = || driver_pod(&app);
    let e = |i| executor_pod(&app, i);
    // (driver, executors, phase, DriverReady, ExecutorsReady, ready count)
    let table = vec![
        (None, vec![], AppPhase::Pending, "False", "False", 0),
        (
            Some(pending(d())),
            vec![],
            AppPhase::Pending,
            "False",
            "False",
            0,
        ),
        (
            Some(ready(d())),
            vec![],
            AppPhase::Running,
            "True",
            "False",
            0,
        ),
        (
            Some(ready(d())),
            vec![ready(e(0)), pending(e(1))],
            AppPhase::Running,
            "True",
            "False",
            1,
        ),
        (
            Some(ready(d())),
            vec![ready(e(0)), ready(e(1))],
            AppPhase::Running,
            "True",
            "True",
            2,
        ),
        (
            Some(exited(d(), 0, 5)),
            vec![ready(e(0))],
            AppPhase::Succeeded,
            "False",
            "False",
            0,
        ),
    ];
    for (i, (driver, executors, phase, dr, er, n)) in table.into_iter().enumerate() {
        let mut a = app.clone();
        a.status = Some(Default::default());
        a.status.as_mut().unwrap().attempts = 1;
        let (p, _) = step(&a, &observed(driver, executors), 10);
        assert_eq!(p.status.phase, Some(phase), "row {i}");
        assert_eq!(cond(&p, ct::DRIVER_READY).0, dr, "row {i} DriverReady");
        assert_eq!(
            cond(&p, ct::EXECUTORS_READY).0,
            er,
            "row {i} ExecutorsReady"
        );
        assert_eq!(p.status.executors.ready, n, "row {i}");
        assert_eq!(cond(&p, ct::INVALID_SPEC).0, "False", "row {i}");
    }
}

#[test]
fn new_app_gets_service_driver_and_executors_together() {
    // Executors no longer wait for a Ready driver (and the driver's readiness no longer waits
    // for executors): both start in the first reconcile, labelled with attempt 1.
    let app = app();
    let (p, app) = step(&app, &observed(None, vec![]), 0);
    assert!(matches!(p.actions[0], Action::ApplyService(_)));
    // The app's NetworkPolicy goes with the Service, before any pod.
    assert!(
        matches!(&p.actions[1], Action::ApplyNetworkPolicy(np) if np.metadata.name.as_deref() == Some("fraud-detection-neptune")),
        "{:?}",
        p.actions[1]
    );
    let without = plan(
        &app,
        &observed(None, vec![]),
        at(0),
        &Settings {
            network_policy: None,
            ..Settings::default()
        },
    );
    assert!(
        !without
            .actions
            .iter()
            .any(|a| matches!(a, Action::ApplyNetworkPolicy(_))),
        "--no-network-policy makes none"
    );
    assert_eq!(
        created(&p),
        [
            "fraud-detection-driver",
            "fraud-detection-executor-0",
            "fraud-detection-executor-1"
        ]
    );
    for a in &p.actions {
        if let Action::CreatePod(pod) = a {
            assert_eq!(
                pod.metadata.labels.as_ref().unwrap()["neptune.dev/attempt"],
                "1"
            );
        }
    }
    assert_eq!(p.status.attempts, 1);
    assert!(reasons(&p).contains(&"CreatedDriver"));
    assert!(reasons(&p).contains(&"CreatedExecutors"));
    // Driver starting, executors starting: nothing more to create, nothing deleted.
    let obs = observed(
        Some(pending(driver_pod(&app))),
        vec![
            pending(executor_pod(&app, 0)),
            pending(executor_pod(&app, 1)),
        ],
    );
    let (p, app) = step(&app, &obs, 5);
    assert!(created(&p).is_empty(), "{:?}", p.actions);
    assert!(deleted(&p).is_empty(), "{:?}", p.actions);
    assert_eq!(p.status.phase, Some(AppPhase::Pending));
    let (p, _) = step(&app, &observed(Some(ready(driver_pod(&app))), vec![]), 10);
    assert_eq!(
        created(&p),
        ["fraud-detection-executor-0", "fraud-detection-executor-1"]
    );
    assert_eq!(p.status.phase, Some(AppPhase::Running));
    assert!(reasons(&p).contains(&"Running"));
}

#[test]
fn executor_backoff_doubles_up_to_the_maximum() {
    assert_eq!(backoff_seconds(0, 10, 300), 10);
    assert_eq!(backoff_seconds(1, 10, 300), 20);
    assert_eq!(backoff_seconds(3, 10, 300), 80);
    assert_eq!(backoff_seconds(5, 10, 300), 300);
    assert_eq!(backoff_seconds(1000, 10, 300), 300);
}

#[test]
fn failed_executor_is_replaced_after_backoff_until_the_limit() {
    let mut app = app();
    app.spec.executor.max_failures = 2;
    let mut st = neptune_crds::StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    };
    app.status = Some(st.clone());
    let drv = Some(ready(driver_pod(&app)));
    let failed = exited(executor_pod(&app, 1), 137, 100);
    let obs = observed(
        drv.clone(),
        vec![ready(executor_pod(&app, 0)), failed.clone()],
    );
    // Within the first backoff (10s): wait.
    let (p, _) = step(&app, &obs, 105);
    assert!(deleted(&p).is_empty());
    assert!(p.requeue_after.as_secs() <= 5);
    // After it: delete, count the failure, recreate on a later reconcile.
    let (p, next) = step(&app, &obs, 110);
    assert_eq!(deleted(&p), ["fraud-detection-executor-1"]);
    assert_eq!(p.status.executor_failures, 1);
    assert!(reasons(&p).contains(&"ReplacingExecutor"));
    let (p, _) = step(
        &next,
        &observed(drv.clone(), vec![ready(executor_pod(&app, 0))]),
        111,
    );
    assert_eq!(created(&p), ["fraud-detection-executor-1"]);
    // Second failure waits 20s.
    st.executor_failures = 1;
    app.status = Some(st.clone());
    let (p, _) = step(&app, &obs, 115);
    assert!(deleted(&p).is_empty(), "20s backoff after one failure");
    // At the limit: not replaced, Degraded names the reason.
    st.executor_failures = 2;
    app.status = Some(st);
    let (p, _) = step(&app, &obs, 10_000);
    assert!(deleted(&p).is_empty());
    assert_eq!(cond(&p, ct::DEGRADED), ("True", "ExecutorFailureLimit"));
}

#[test]
fn driver_failure_follows_restart_policy() {
    let mut app = app();
    app.status = Some(neptune_crds::StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    });
    let obs = observed(
        Some(exited(driver_pod(&app), 1, 100)),
        vec![ready(executor_pod(&app, 0))],
    );
    // OnFailure, 3 retries: Restarting, wait 10s, then delete driver and executors.
    let (p, _) = step(&app, &obs, 101);
    assert_eq!(p.status.phase, Some(AppPhase::Restarting));
    assert_eq!(deleted(&p), ["fraud-detection-executor-0"]);
    let (p, next) = step(&app, &obs, 110);
    assert_eq!(deleted(&p)[0], "fraud-detection-driver");
    assert!(reasons(&p).contains(&"RestartingDriver"));
    assert_eq!(p.status.driver_failures, 1);
    let (p, _) = step(&next, &observed(None, vec![]), 112);
    assert_eq!(
        created(&p),
        [
            "fraud-detection-driver",
            "fraud-detection-executor-0",
            "fraud-detection-executor-1"
        ]
    );
    assert_eq!(p.status.attempts, 2);
    // Retries exhausted: Failed.
    app.status.as_mut().unwrap().driver_failures = 3;
    let (p, _) = step(&app, &obs, 1000);
    assert_eq!(p.status.phase, Some(AppPhase::Failed));
    assert!(p.status.completion_time.is_some());
    assert!(p.status.message.as_deref().unwrap().contains("exit code 1"));
    // Never: Failed at once.
    app.spec.restart_policy.type_ = neptune_crds::v1alpha1::RestartType::Never;
    app.status.as_mut().unwrap().attempts = 1;
    let (p, _) = step(&app, &obs, 101);
    assert_eq!(p.status.phase, Some(AppPhase::Failed));
}

#[test]
fn driver_exit_zero_succeeds_unless_restart_always() {
    let mut app = app();
    app.status = Some(neptune_crds::StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    });
    let obs = observed(Some(exited(driver_pod(&app), 0, 100)), vec![]);
    let (p, _) = step(&app, &obs, 101);
    assert_eq!(p.status.phase, Some(AppPhase::Succeeded));
    assert!(reasons(&p).contains(&"Succeeded"));
    app.spec.restart_policy.type_ = neptune_crds::v1alpha1::RestartType::Always;
    let (p, _) = step(&app, &obs, 101);
    assert_eq!(p.status.phase, Some(AppPhase::Restarting));
}

#[test]
fn scale_up_and_down_adds_and_removes_the_highest_indices() {
    let mut app = app();
    app.status = Some(neptune_crds::StreamBatchAppStatus {
        attempts: 1,
        executors: neptune_crds::v1alpha1::ExecutorsStatus {
            desired: 2,
            ready: 2,
            selector: String::new(),
        },
        ..Default::default()
    });
    let drv = Some(ready(driver_pod(&app)));
    let two = vec![ready(executor_pod(&app, 0)), ready(executor_pod(&app, 1))];
    app.spec.executor.replicas = 4;
    let (p, _) = step(&app, &observed(drv.clone(), two.clone()), 10);
    assert_eq!(
        created(&p),
        ["fraud-detection-executor-2", "fraud-detection-executor-3"]
    );
    assert!(reasons(&p).contains(&"ScaledExecutors"));
    assert_eq!(p.status.executors.desired, 4);
    assert!(
        deleted(&p).is_empty(),
        "scaling must not restart the driver"
    );
    app.spec.executor.replicas = 1;
    let (p, _) = step(&app, &observed(drv, two), 10);
    assert_eq!(deleted(&p), ["fraud-detection-executor-1"]);
    assert!(created(&p).is_empty());
}

#[test]
fn suspend_deletes_every_pod_and_resume_brings_them_back() {
    let mut app = app();
    app.status = Some(neptune_crds::StreamBatchAppStatus {
        attempts: 1,
        phase: Some(AppPhase::Running),
        ..Default::default()
    });
    app.spec.suspend = true;
    let obs = observed(
        Some(ready(driver_pod(&app))),
        vec![ready(executor_pod(&app, 0))],
    );
    let (p, suspended) = step(&app, &obs, 10);
    assert_eq!(p.status.phase, Some(AppPhase::Suspended));
    assert_eq!(
        deleted(&p),
        ["fraud-detection-driver", "fraud-detection-executor-0"]
    );
    assert!(reasons(&p).contains(&"Suspended"));
    let mut resumed = suspended.clone();
    resumed.spec.suspend = false;
    let (p, _) = step(&resumed, &observed(None, vec![]), 20);
    assert_eq!(
        created(&p),
        [
            "fraud-detection-driver",
            "fraud-detection-executor-0",
            "fraud-detection-executor-1"
        ]
    );
    assert_eq!(p.status.phase, Some(AppPhase::Pending));
    assert_eq!(p.status.attempts, 2);
    assert_eq!(p.status.driver_failures, 0, "a resume is no failure");
    assert_eq!(
        p.status.last_restart.as_ref().map(|r| r.reason.as_str()),
        Some("Suspended")
    );
    assert!(!reasons(&p).contains(&"DriverPodDeleted"));
}

#[test]
fn pods_stuck_past_the_deadline_surface_in_degraded() {
    let app = app();
    let stuck = waiting(driver_pod(&app), "ImagePullBackOff");
    let (p, _) = step(&app, &observed(Some(stuck.clone()), vec![]), 100);
    assert_eq!(cond(&p, ct::DEGRADED).0, "False", "before the deadline");
    let (p, _) = step(&app, &observed(Some(stuck), vec![]), 301);
    assert_eq!(cond(&p, ct::DEGRADED), ("True", "ImagePullBackOff"));
    assert!(p.events.iter().any(|e| e.reason == "ImagePullBackOff"));
    let (p, _) = step(
        &app,
        &observed(Some(pending(driver_pod(&app))), vec![]),
        301,
    );
    assert_eq!(cond(&p, ct::DEGRADED), ("True", "PendingTooLong"));
}

#[test]
fn finished_app_is_deleted_after_its_ttl() {
    let mut app = common::stored(common::example("wordcount"));
    app.status = Some(neptune_crds::StreamBatchAppStatus {
        attempts: 1,
        phase: Some(AppPhase::Succeeded),
        completion_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(
            100,
        ))),
        ..Default::default()
    });
    let (p, _) = step(
        &app,
        &observed(Some(exited(driver_pod(&app), 0, 100)), vec![]),
        200,
    );
    assert!(!p.actions.contains(&Action::DeleteApp));
    assert!(p.requeue_after.as_secs() <= 200);
    let (p, _) = step(
        &app,
        &observed(Some(exited(driver_pod(&app), 0, 100)), vec![]),
        400,
    );
    assert!(p.actions.contains(&Action::DeleteApp));
}

#[test]
fn driver_spec_change_replaces_the_app_but_executor_change_only_executors() {
    let mut app = app();
    app.status = Some(neptune_crds::StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    });
    let obs = observed(
        Some(ready(driver_pod(&app))),
        vec![ready(executor_pod(&app, 0)), ready(executor_pod(&app, 1))],
    );
    let mut changed = app.clone();
    changed.spec.scheduling.heartbeat_interval_ms = Some(300);
    let (p, _) = step(&changed, &obs, 10);
    assert_eq!(deleted(&p).len(), 3);
    let mut changed = app.clone();
    changed.spec.executor.pod.memory = "2Gi".into();
    let (p, _) = step(&changed, &obs, 10);
    assert_eq!(
        deleted(&p),
        ["fraud-detection-executor-0", "fraud-detection-executor-1"]
    );
}

#[test]
fn stream_p99_from_the_driver_appears_in_status() {
    let mut app = app();
    app.status = Some(neptune_crds::StreamBatchAppStatus {
        attempts: 1,
        ..Default::default()
    });
    let mut obs = observed(Some(ready(driver_pod(&app))), vec![]);
    obs.driver_jobs = Some(vec![
        JobStatus {
            name: "score".into(),
            kind: "stream".into(),
            runs: 10,
            p99_ms: Some(12.34),
            latency_target_ms: Some(250.0),
            // 9,999 of 10,000: shown as 99.9 %, never rounded up to 100 %.
            slo_attainment: Some(0.9999),
            records_per_second: None,
            waiting_runs: Some(0),
        },
        JobStatus {
            name: "alerts".into(),
            kind: "stream".into(),
            runs: 10,
            p99_ms: Some(3.0),
            ..Default::default()
        },
        JobStatus {
            name: "train".into(),
            kind: "batch".into(),
            runs: 1,
            p99_ms: None,
            records_per_second: Some(5.0),
            ..Default::default()
        },
    ]);
    let (p, _) = step(&app, &obs, 10);
    assert_eq!(
        p.status.stream_p99.as_deref(),
        Some("score=12.3ms,alerts=3.0ms")
    );
    assert_eq!(
        p.status.slo.as_deref(),
        Some("score=99.9%"),
        "a job without a target has no SLO entry"
    );
    assert_eq!(p.status.jobs.len(), 3);
}

#[test]
fn unchanged_world_gives_an_identical_status_and_no_events() {
    let app = app();
    let (_, app) = step(&app, &observed(None, vec![]), 0);
    let obs = observed(
        Some(ready(driver_pod(&app))),
        vec![ready(executor_pod(&app, 0)), ready(executor_pod(&app, 1))],
    );
    let (_, app) = step(&app, &obs, 10);
    let (p, _) = step(&app, &obs, 20);
    assert_eq!(Some(&p.status), app.status.as_ref());
    assert!(p.events.is_empty(), "{:?}", p.events);
    assert_eq!(
        p.actions.len(),
        2,
        "only the idempotent Service and NetworkPolicy applies: {:?}",
        p.actions
    );
}

#[test]
fn a_scheduling_edit_is_posted_to_the_running_driver_and_replaces_no_pod() {
    use neptune_crds::StreamBatchApp;
    use neptune_crds::v1alpha1::SchedulingStatus;
    let app = app();
    let (_, app) = step(&app, &observed(None, vec![]), 0);
    let running = |app: &StreamBatchApp| {
        let mut obs = observed(
            Some(ready(driver_pod(app))),
            vec![ready(executor_pod(app, 0)), ready(executor_pod(app, 1))],
        );
        obs.driver_scheduling = Some(SchedulingStatus {
            policy: "neptune".into(),
            placement: "lma".into(),
            max_suspensions: 20, // the example's
            quantum_ms: 1000,
        });
        obs
    };
    let obs = running(&app);
    let (p, app) = step(&app, &obs, 10);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::SetScheduling(_))),
        "the defaults are in force: nothing to post"
    );
    assert_eq!(
        app.status
            .as_ref()
            .unwrap()
            .scheduling
            .as_ref()
            .unwrap()
            .policy,
        "neptune"
    );

    let mut edited = app.clone();
    edited.spec.scheduling.policy = neptune_crds::v1alpha1::Policy::Fifo;
    edited.spec.scheduling.quantum_ms = Some(500);
    // The pods built from the old spec are what the cluster runs.
    let (p, _) = step(&edited, &obs, 20);
    let posted: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SetScheduling(v) => Some(v.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        posted,
        [serde_json::json!({"scheduler.policy": "fifo", "scheduler.quantum_ms": 500})]
    );
    assert!(
        deleted(&p).is_empty() && created(&p).is_empty(),
        "no pod replaced"
    );
    assert!(reasons(&p).contains(&"SchedulingChanged"), "{:?}", p.events);

    // To `static`: not live, the spec hash changes and the app restarts.
    let mut to_static = app.clone();
    to_static.spec.scheduling.policy = neptune_crds::v1alpha1::Policy::Static;
    let (p, _) = step(&to_static, &obs, 30);
    assert_eq!(
        deleted(&p),
        [
            "fraud-detection-driver",
            "fraud-detection-executor-0",
            "fraud-detection-executor-1"
        ],
        "the driver and its executors are replaced"
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::SetScheduling(_)))
    );
}
