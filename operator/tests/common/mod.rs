//! Test fixtures: app builders, pod builders in given states, and a fixed clock.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use neptune_crds::StreamBatchApp;
use neptune_operator::lifecycle::{Observed, Plan, plan};
use neptune_operator::validate::validate;

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;

pub fn at(seconds_after_t0: i64) -> Timestamp {
    Timestamp::from_second(T0 + seconds_after_t0).unwrap()
}

/// Parses an example manifest under `examples/k8s/`.
pub fn example(name: &str) -> StreamBatchApp {
    let path = format!("{}/../examples/k8s/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fraud-detection example as stored by the apiserver (namespace, uid, generation set).
pub fn app() -> StreamBatchApp {
    stored(example("fraud-detection"))
}

pub fn stored(mut app: StreamBatchApp) -> StreamBatchApp {
    app.metadata.namespace = Some("streaming".into());
    app.metadata.uid = Some("0b5e6a4c-uid".into());
    app.metadata.generation = Some(1);
    app
}

/// An app from a YAML spec fragment (indented under `spec:`).
pub fn app_with(spec_yaml: &str) -> StreamBatchApp {
    let text = format!(
        "apiVersion: neptune.dev/v1alpha1\nkind: StreamBatchApp\nmetadata:\n  name: demo\nspec:\n{spec_yaml}"
    );
    stored(serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}")))
}

pub fn driver_pod(app: &StreamBatchApp) -> Pod {
    let sizes = validate(app).unwrap();
    let mut pod = neptune_operator::build::driver_pod(app, &sizes);
    pod.metadata.creation_timestamp = Some(Time(at(0)));
    pod
}

pub fn executor_pod(app: &StreamBatchApp, index: i32) -> Pod {
    let sizes = validate(app).unwrap();
    let mut pod = neptune_operator::build::executor_pod(app, &sizes, index);
    pod.metadata.creation_timestamp = Some(Time(at(0)));
    pod
}

pub fn ready(mut pod: Pod) -> Pod {
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    pod
}

pub fn pending(mut pod: Pod) -> Pod {
    pod.status = Some(PodStatus {
        phase: Some("Pending".into()),
        ..PodStatus::default()
    });
    pod
}

pub fn waiting(mut pod: Pod, reason: &str) -> Pod {
    pod.status = Some(PodStatus {
        phase: Some("Pending".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "c".into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: None,
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
    pod
}

pub fn exited(mut pod: Pod, code: i32, finished_at: i64) -> Pod {
    pod.status = Some(PodStatus {
        phase: Some(if code == 0 { "Succeeded" } else { "Failed" }.into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "c".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    finished_at: Some(Time(at(finished_at))),
                    reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
    pod
}

pub fn terminating(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(at(0)));
    pod
}

/// Runs the planner and returns the plan plus the app carrying the new status (for chaining).
pub fn step(app: &StreamBatchApp, observed: &Observed, now: i64) -> (Plan, StreamBatchApp) {
    let p = plan(app, observed, at(now));
    let mut next = app.clone();
    next.status = Some(p.status.clone());
    (p, next)
}

pub fn observed(driver: Option<Pod>, executors: Vec<Pod>) -> Observed {
    Observed {
        driver,
        executors,
        driver_jobs: None,
    }
}
