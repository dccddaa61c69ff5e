//! Executor pods: `neptune executor --driver URL --cores C --memory BYTES --http 0.0.0.0:PORT
//! --id $(NEPTUNE_EXECUTOR_ID)`, named `<app>-executor-<index>`.

use k8s_openapi::api::core::v1::Pod;
use neptune_crds::StreamBatchApp;
use neptune_crds::labels as l;

use super::pod::{PodParts, build_pod, downward_env};
use super::{Role, driver_url};
use crate::validate::Sizes;

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

/// Executor pod number `index`.
pub fn executor_pod(app: &StreamBatchApp, sizes: &Sizes, index: i32) -> Pod {
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
        sizes.executor_memory.to_string(),
        "--http".into(),
        format!("0.0.0.0:{http_port}"),
        "--id".into(),
        "$(NEPTUNE_EXECUTOR_ID)".into(),
    ];
    build_pod(
        app,
        spec,
        PodParts {
            name: executor_pod_name(name, index),
            role: Role::Executor,
            container: "executor",
            args,
            extra_env: vec![downward_env("NEPTUNE_EXECUTOR_ID", "metadata.name")],
            ports: vec![("http", http_port)],
            http_port,
            memory_limit: sizes.executor_limit,
            extra_labels: [(l::EXECUTOR_INDEX.to_string(), index.to_string())].into(),
            unhashed_args: 0,
        },
    )
}
