//! Executor pods: `neptune executor --driver URL --cores C --memory BYTES --http $(POD_IP):PORT
//! --id $(NEPTUNE_EXECUTOR_ID) --connect-timeout Ns`, named `<app>-executor-<index>`.
//!
//! Executors are created together with their driver and retry connecting (with back-off) until
//! it listens; `--connect-timeout` is the pending deadline plus a minute, so an executor gives
//! up only once the driver pod is reported stuck. The block server binds the `--http` IP, so
//! the address executors advertise for shuffle fetches is the pod IP.

use k8s_openapi::api::core::v1::Pod;
use neptune_crds::StreamBatchApp;
use neptune_crds::labels as l;
use neptune_crds::ports;

use super::pod::{PodParts, build_pod, downward_env};
use super::{Role, driver_url};
use crate::validate::Validated;

/// Seconds an executor keeps trying to reach its driver beyond `pendingDeadlineSeconds`.
const CONNECT_MARGIN_SECONDS: i64 = 60;

/// Name of executor `index` of the app called `app_name`.
pub fn executor_pod_name(app_name: &str, index: i32) -> String {
    format!("{app_name}-executor-{index}")
}

/// The executor index of a pod (from its label), if it has a valid one.
pub fn executor_index(pod: &Pod) -> Option<i32> {
    pod.metadata
        .labels
        .as_ref()?
        .get(l::EXECUTOR_INDEX)?
        .parse()
        .ok()
}

/// Executor pod number `index` of driver attempt `attempt`.
pub fn executor_pod(app: &StreamBatchApp, v: &Validated, index: i32, attempt: i32) -> Pod {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let spec = &app.spec.executor.pod;
    let http_port = app.spec.monitoring.executor_port;
    let args = vec![
        "executor".into(),
        "--driver".into(),
        driver_url(app),
        "--cores".into(),
        spec.cores.to_string(),
        "--memory".into(),
        v.executor_memory.to_string(),
        "--http".into(),
        format!("$(POD_IP):{http_port}"),
        "--block-listen".into(),
        format!("$(POD_IP):{}", ports::EXECUTOR_BLOCKS),
        "--id".into(),
        "$(NEPTUNE_EXECUTOR_ID)".into(),
        "--connect-timeout".into(),
        format!(
            "{}s",
            app.spec.pending_deadline_seconds + CONNECT_MARGIN_SECONDS
        ),
    ];
    build_pod(
        app,
        spec,
        PodParts {
            name: executor_pod_name(name, index),
            role: Role::Executor,
            hash_args: args.clone(),
            args,
            extra_env: vec![downward_env("NEPTUNE_EXECUTOR_ID", "metadata.name")],
            ports: vec![("http", http_port), ("blocks", ports::EXECUTOR_BLOCKS)],
            http_port,
            memory_limit: v.executor_limit,
            extra_labels: [(l::EXECUTOR_INDEX.to_string(), index.to_string())].into(),
            attempt,
            template: v.executor_template.as_ref(),
        },
    )
}
