//! Test fixtures: app builders, pod builders in given states, and a fixed clock.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use neptune_crds::StreamBatchApp;
use neptune_operator::Settings;
use neptune_operator::lifecycle::{Action, Observed, Plan, plan};
use neptune_operator::validate::validate;

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;

pub fn at(seconds_after_t0: i64) -> Timestamp {
    Timestamp::from_second(T0 + seconds_after_t0).unwrap()
}

/// The documents of an example manifest under `examples/k8s/`.
pub fn example_docs(name: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let path = format!("{}/../examples/k8s/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

/// The `StreamBatchApp` of an example manifest under `examples/k8s/`.
pub fn example(name: &str) -> StreamBatchApp {
    let doc = example_docs(name)
        .into_iter()
        .find(|d| d["kind"] == "StreamBatchApp")
        .unwrap_or_else(|| panic!("examples/k8s/{name}.yaml has no StreamBatchApp"));
    serde_yaml::from_value(doc).unwrap_or_else(|e| panic!("examples/k8s/{name}.yaml: {e}"))
}

/// The fraud-detection example as stored by the apiserver (namespace, uid, generation set).
pub fn app() -> StreamBatchApp {
    stored(example("fraud-detection"))
}

pub fn stored(mut app: StreamBatchApp) -> StreamBatchApp {
    app.metadata.namespace = Some("streaming".into());
    app.metadata.uid = Some("0b5e6a4c-uid".into());
    app.metadata.generation = Some(1);
    app.metadata.resource_version = Some("41".into());
    app
}

/// An app from a YAML spec fragment (indented under `spec:`).
pub fn app_with(spec_yaml: &str) -> StreamBatchApp {
    let text = format!(
        "apiVersion: neptune.dev/v1alpha1\nkind: StreamBatchApp\nmetadata:\n  name: demo\nspec:\n{spec_yaml}"
    );
    stored(serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}")))
}

/// The driver pod of the app's current attempt (1 when it has no status yet).
pub fn driver_pod(app: &StreamBatchApp) -> Pod {
    driver_pod_of(app, attempt_of(app))
}

pub fn driver_pod_of(app: &StreamBatchApp, attempt: i32) -> Pod {
    let v = validate(app).unwrap();
    let mut pod = neptune_operator::build::driver_pod(app, &v, attempt);
    pod.metadata.creation_timestamp = Some(Time(at(0)));
    pod.metadata.uid = Some(format!("uid-driver-{attempt}"));
    pod
}

/// Executor `index` of the app's current attempt.
pub fn executor_pod(app: &StreamBatchApp, index: i32) -> Pod {
    executor_pod_of(app, index, attempt_of(app))
}

pub fn executor_pod_of(app: &StreamBatchApp, index: i32, attempt: i32) -> Pod {
    let v = validate(app).unwrap();
    let mut pod = neptune_operator::build::executor_pod(app, &v, index, attempt);
    pod.metadata.creation_timestamp = Some(Time(at(0)));
    pod.metadata.uid = Some(format!("uid-executor-{index}-{attempt}"));
    pod
}

fn attempt_of(app: &StreamBatchApp) -> i32 {
    app.status.as_ref().map_or(1, |s| s.attempts.max(1))
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

pub fn exited(pod: Pod, code: i32, finished_at: i64) -> Pod {
    let reason = if code == 0 { "Completed" } else { "Error" };
    terminated(pod, code, reason, "", finished_at)
}

/// The main container (named after the pod's role) terminated with `code`, `reason` and
/// termination `message`.
pub fn terminated(mut pod: Pod, code: i32, reason: &str, message: &str, finished_at: i64) -> Pod {
    let main = pod.metadata.labels.as_ref().unwrap()["neptune.dev/role"].clone();
    pod.status = Some(PodStatus {
        phase: Some(if code == 0 { "Succeeded" } else { "Failed" }.into()),
        container_statuses: Some(vec![ContainerStatus {
            name: main,
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    finished_at: Some(Time(at(finished_at))),
                    reason: Some(reason.into()),
                    message: (!message.is_empty()).then(|| message.to_string()),
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

/// Deleted at `at(0)` (its deletion deadline: the request plus the grace period).
pub fn terminating(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(at(0)));
    pod
}

/// Runs the planner and returns the plan plus the app carrying the new status (for chaining).
pub fn step(app: &StreamBatchApp, observed: &Observed, now: i64) -> (Plan, StreamBatchApp) {
    let p = plan(app, observed, at(now), &Settings::default());
    let mut next = app.clone();
    next.status = Some(p.status.clone());
    (p, next)
}

pub fn created(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::CreatePod(pod) => pod.metadata.name.clone(),
            _ => None,
        })
        .collect()
}

pub fn deleted(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::DeletePod { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

pub fn force_deleted(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::ForceDeletePod { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

pub fn reasons(p: &Plan) -> Vec<&str> {
    p.events.iter().map(|e| e.reason.as_str()).collect()
}

pub fn cond<'a>(p: &'a Plan, t: &str) -> (&'a str, &'a str) {
    let c = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t}"));
    (c.status.as_str(), c.reason.as_str())
}

pub fn observed(driver: Option<Pod>, executors: Vec<Pod>) -> Observed {
    Observed {
        driver,
        executors,
        driver_jobs: None,
    }
}
