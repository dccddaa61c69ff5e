//! The driver pod: `neptune driver --app NAME --listen $(POD_IP):7077 --http $(POD_IP):PORT
//! [--policy P] [--set k=v]... --executors N [-- app args]`.

use k8s_openapi::api::core::v1::Pod;
use neptune_config::keys;
use neptune_crds::v1alpha1::{Policy, SchedulingStatus, StreamBatchAppSpec};
use neptune_crds::{StreamBatchApp, ports};

use super::Role;
use super::pod::{PodParts, build_pod};
use crate::validate::Validated;

/// Stands for the executor count in the args the driver's spec hash covers.
const ANY_COUNT: &str = "<replicas>";

/// Name of the driver pod of the app called `app_name`.
pub fn driver_pod_name(app_name: &str) -> String {
    format!("{app_name}-driver")
}

/// The driver's command-line arguments (after the binary).
///
/// Both servers bind the pod's IP (`$(POD_IP)`, from the downward API), as Spark's driver binds
/// `SPARK_DRIVER_BIND_ADDRESS`: nothing listens on `0.0.0.0`, and pods that share a network
/// namespace (the cluster twin) do not collide.
pub fn driver_args(spec: &StreamBatchAppSpec) -> Vec<String> {
    // The CLI takes at least one executor; with `replicas: 0` (scaled to zero) the driver waits
    // its start timeout and runs with none, which is what zero executors can do anyway.
    driver_args_with(spec, &spec.executor.replicas.max(1).to_string())
}

/// The args with `executors` as the `--executors` value. The spec hash covers them with a
/// placeholder there: scaling executors must not restart the driver (it only uses the count to
/// wait for executors at start-up), while every other argument, including `app.args`, must.
fn driver_args_with(spec: &StreamBatchAppSpec, executors: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "driver".into(),
        "--app".into(),
        spec.app.name.clone(),
        "--listen".into(),
        format!("$(POD_IP):{}", ports::DRIVER_GRPC),
        "--http".into(),
        format!("$(POD_IP):{}", spec.monitoring.driver_port),
        "--policy".into(),
        policy_name(spec),
    ];
    let mut set = |k: String, v: String| {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    };
    let s = &spec.scheduling;
    if let Some(p) = s.placement {
        set("scheduler.placement".into(), serde_plain(&p));
    }
    if let Some(v) = s.max_suspensions {
        set("scheduler.max_suspensions".into(), v.to_string());
    }
    if let Some(v) = s.quantum_ms {
        set("scheduler.quantum_ms".into(), v.to_string());
    }
    if s.policy == neptune_crds::v1alpha1::Policy::Static {
        set(
            "scheduler.static_stream_executors".into(),
            s.static_stream_executors.to_string(),
        );
    }
    if let Some(v) = s.heartbeat_interval_ms {
        set("heartbeat.interval_ms".into(), v.to_string());
    }
    if let Some(v) = s.heartbeat_timeout_ms {
        set("heartbeat.timeout_ms".into(), v.to_string());
    }
    for (job, o) in &spec.jobs {
        if let Some(k) = o.kind {
            set(format!("jobs.{job}.kind"), k.as_str().into());
        }
        if let Some(v) = o.interval_ms {
            set(format!("jobs.{job}.interval_ms"), v.to_string());
        }
        if let Some(v) = o.latency_target_ms {
            set(format!("jobs.{job}.latency_target_ms"), v.to_string());
        }
        if let Some(v) = o.max_in_flight {
            set(format!("jobs.{job}.max_in_flight"), v.to_string());
        }
    }
    for (k, v) in &spec.app.config {
        set(k.clone(), v.clone());
    }
    args.push("--executors".into());
    args.push(executors.to_string());
    if !spec.app.args.is_empty() {
        // After `--`, the CLI hands them to the app (`App::args`) instead of parsing them.
        args.push("--".into());
        args.extend(spec.app.args.iter().cloned());
    }
    args
}

fn policy_name(spec: &StreamBatchAppSpec) -> String {
    serde_plain(&spec.scheduling.policy)
}

/// A unit enum's serde name (`lma`, `neptune`, ...).
fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The driver pod of driver attempt `attempt`.
pub fn driver_pod(app: &StreamBatchApp, v: &Validated, attempt: i32) -> Pod {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let http_port = app.spec.monitoring.driver_port;
    build_pod(
        app,
        &app.spec.driver.pod,
        PodParts {
            name: driver_pod_name(name),
            role: Role::Driver,
            args: driver_args(&app.spec),
            hash_args: hashed_args(driver_args_with(&app.spec, ANY_COUNT)),
            extra_env: Vec::new(),
            ports: vec![("grpc", ports::DRIVER_GRPC), ("http", http_port)],
            http_port,
            memory_limit: v.driver_limit,
            extra_labels: Default::default(),
            attempt,
            template: v.driver_template.as_ref(),
        },
    )
}

/// Stands for a live setting's value in the hashed args.
const LIVE: &str = "<live>";

/// The args as the spec hash covers them: live scheduling settings are applied to the running
/// driver (see [`desired_scheduling`]), so their values must not replace the pod. `static` stays
/// in the hash: switching to or from it needs a restart (its executor pools are fixed).
fn hashed_args(mut args: Vec<String>) -> Vec<String> {
    let live_key = |a: &str| {
        a.split_once('=').is_some_and(|(k, _)| {
            keys::engine_setting(k).is_some_and(|s| s.meta().live && k != keys::POLICY.meta.key)
        })
    };
    let mut i = 0;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--policy" if args[i + 1] != Policy::Static.to_string() => {
                args[i + 1] = LIVE.into();
            }
            "--set" if live_key(&args[i + 1]) => {
                args.drain(i..i + 2);
                continue;
            }
            "--" => break,
            _ => {}
        }
        i += 1;
    }
    args
}

/// The live scheduling settings the spec asks for: each `spec.scheduling` field if set, else the
/// same key in `spec.app.config`, else the setting's default — what a driver started from this
/// spec would run with.
pub fn desired_scheduling(spec: &StreamBatchAppSpec) -> SchedulingStatus {
    let s = &spec.scheduling;
    let from_config = |key: &str| spec.app.config.get(key).map(|v| v.trim().to_string());
    let int = |field: Option<i64>, setting: &neptune_config::UInt| {
        field
            .or_else(|| from_config(setting.meta.key).and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| {
                i64::try_from(setting.default.unwrap_or(setting.min)).unwrap_or(i64::MAX)
            })
    };
    SchedulingStatus {
        policy: policy_name(spec),
        placement: s
            .placement
            .map(|p| serde_plain(&p))
            .or_else(|| from_config(keys::PLACEMENT.meta.key))
            .unwrap_or_else(|| keys::PLACEMENT.default.to_string()),
        max_suspensions: int(s.max_suspensions, &keys::MAX_SUSPENSIONS),
        quantum_ms: int(s.quantum_ms, &keys::QUANTUM_MS),
    }
}
