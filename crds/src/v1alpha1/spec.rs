//! `StreamBatchApp` spec: what the user asks for (image, app, driver/executor pods, scheduling,
//! per-job overrides, restart policy, suspend, TTL, monitoring).
//!
//! Schema rules here are enforced by the apiserver at apply time; the operator's `validate`
//! checks the same things again (and a few that need arithmetic, like memory sizes) and reports
//! an `InvalidSpec` condition naming the field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, LocalObjectReference, Toleration};
use neptune_config::keys::{
    CORES, EXECUTORS, HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS, JOB_INTERVAL_MS,
    JOB_LATENCY_TARGET_MS, JOB_MAX_IN_FLIGHT, MAX_SUSPENSIONS, QUANTUM_MS, STATIC_STREAM_EXECUTORS,
};
use neptune_config::rules;

use kube::{CustomResource, KubeSchema};
pub use neptune_config::{JobKind, Placement, Policy};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::StreamBatchAppStatus;

/// A unified stream/batch application run by one driver pod and N executor pods.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "neptune.dev",
    version = "v1alpha1",
    kind = "StreamBatchApp",
    plural = "streambatchapps",
    shortname = "sba",
    category = "neptune",
    namespaced,
    doc = "A Neptune stream/batch application: one driver and N executors",
    status = "StreamBatchAppStatus",
    derive = "PartialEq",
    validation = Rule::new("self.metadata.name.size() <= 48").message("metadata.name: must be at most 48 characters so child names and labels stay valid"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".spec.scheduling.policy"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.executors.ready", description = "executors ready"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.executor.replicas", description = "executors desired"),
    printcolumn(name = "Stream-P99", type_ = "string", json_path = ".status.streamP99", description = "stream p99 latency per job, as reported by the driver"),
    printcolumn(name = "SLO", type_ = "string", json_path = ".status.slo", description = "share of micro-batches within the latency target per stream job that has one"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    scale(
        spec_replicas_path = ".spec.executor.replicas",
        status_replicas_path = ".status.executors.ready",
        label_selector_path = ".status.executors.selector"
    )
)]
#[x_kube(validation = Rule::new(rules::STATIC_CEL).message(rules::STATIC_CEL_MESSAGE).field_path(".scheduling.staticStreamExecutors"))]
#[serde(rename_all = "camelCase")]
pub struct StreamBatchAppSpec {
    /// Container image holding the `neptune` binary (or a user binary built on the `neptune` crate).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Image pull policy of every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Secrets used to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Service account the driver and executor pods run as (default: the namespace's `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// Which registered application to run, and its configuration.
    pub app: AppSpec,
    /// The driver pod.
    #[serde(default)]
    pub driver: DriverSpec,
    /// The executor pods.
    #[serde(default)]
    pub executor: ExecutorSpec,
    /// Task scheduling (policy, placement, suspensions, heartbeats).
    #[serde(default)]
    pub scheduling: SchedulingSpec,
    /// Per-job overrides, keyed by job name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub jobs: BTreeMap<String, JobOverride>,
    /// What to do when the driver exits.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// `true` deletes every pod and sets phase `Suspended`; `false` brings them back.
    #[serde(default)]
    pub suspend: bool,
    /// Delete the app this many seconds after it Succeeded or Failed (unset: keep it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Pods Pending (unscheduled, image not pullable, ...) longer than this are reported in the
    /// `Degraded` condition with the reason.
    #[serde(default = "default_pending_deadline")]
    #[schemars(range(min = 10, max = 86400))]
    pub pending_deadline_seconds: i64,
    /// Metrics ports and scrape annotations.
    #[serde(default)]
    pub monitoring: MonitoringSpec,
}

fn default_pending_deadline() -> i64 {
    300
}

/// Kubernetes image pull policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Always pull.
    Always,
    /// Pull when the image is not on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The value Kubernetes expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// The application: a name registered in the binary, extra arguments, configuration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// Registered app name (built-ins: `fraud-detection`, `synthetic`, `wordcount`).
    #[schemars(length(min = 1, max = 63))]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$"))]
    pub name: String,
    /// Path of the binary in the image (default `/usr/local/bin/neptune`); set it when the image
    /// carries your own binary built on the `neptune` crate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub binary: Option<String>,
    /// Extra arguments for the app, passed after `--` on the driver's command line (`App::args`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub args: Vec<String>,
    /// App configuration, passed to the driver as repeated `--set key=value`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    pub config: BTreeMap<String, String>,
}

/// Resources and placement shared by the driver and executor pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.labels) || !self.labels.exists(k, k.startsWith('neptune.dev/') || k.startsWith('app.kubernetes.io/'))").message("labels: keys under neptune.dev/ and app.kubernetes.io/ belong to the operator").field_path(".labels"))]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// CPU cores; for executors also the number of task slots (`--cores`).
    #[serde(default = "default_cores")]
    #[schemars(range(min = CORES.min, max = CORES.max))]
    pub cores: i32,
    /// Memory for the process, e.g. `2Gi`; executors get it as `--memory` in bytes.
    #[serde(default = "default_memory")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub memory: String,
    /// Extra memory on top of `memory` for the container limit (default: 10%, at least 64Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub memory_overhead: Option<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Extra pod labels (cannot override the operator's own labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub annotations: BTreeMap<String, String>,
    /// Node selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// A core `PodTemplateSpec` (`metadata` with `labels`/`annotations`, and `spec`) merged under
    /// what the operator sets: volumes, init containers, sidecars, affinity, priorityClassName,
    /// extra resources (GPUs), mounts and env of the main container (named `driver` or
    /// `executor`). The operator keeps the main container's image, command, args, ports, probes,
    /// cpu and memory, and refuses a template that sets them (phase `Invalid`, naming the field).
    /// Checked by the operator, not by this schema; see docs/kubernetes.md for the merge rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_template_schema")]
    pub pod_template: Option<serde_json::Value>,
}

/// `podTemplate` is kept opaque in the CRD (`x-kubernetes-preserve-unknown-fields`), as
/// flink-kubernetes-operator does: the full Pod schema would add thousands of lines to the CRD
/// (spark-operator's grew past the annotation size limit of client-side apply). The operator
/// parses it into `PodTemplateSpec` and reports unknown fields and wrong types by path.
fn pod_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A core PodTemplateSpec merged under what the operator sets (see docs/kubernetes.md).",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

fn default_cores() -> i32 {
    1
}

fn default_memory() -> String {
    "1Gi".to_string()
}

impl Default for PodSpec {
    fn default() -> Self {
        Self {
            cores: default_cores(),
            memory: default_memory(),
            memory_overhead: None,
            env: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            pod_template: None,
        }
    }
}

/// The driver pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DriverSpec {
    /// Resources and placement.
    #[serde(flatten)]
    pub pod: PodSpec,
}

/// The executor pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorSpec {
    /// Number of executor pods (also the scale subresource). At least 1: to stop an app's pods,
    /// set `suspend`.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = EXECUTORS.min, max = EXECUTORS.max))]
    pub replicas: i32,
    /// Failed executor pods replaced (with exponential backoff) before the app is `Degraded`.
    #[serde(default = "default_max_executor_failures")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_failures: i32,
    /// Resources and placement.
    #[serde(flatten)]
    pub pod: PodSpec,
}

fn default_replicas() -> i32 {
    EXECUTORS.default.map_or(1, |d| d as i32)
}

fn default_static_stream_executors() -> i32 {
    STATIC_STREAM_EXECUTORS.default.map_or(1, |d| d as i32)
}

fn default_max_executor_failures() -> i32 {
    10
}

impl Default for ExecutorSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            max_failures: default_max_executor_failures(),
            pod: PodSpec::default(),
        }
    }
}

/// Task scheduling settings, passed to the driver as `--policy` and `--set scheduler.*`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new(rules::heartbeat_cel()).message(rules::HEARTBEAT_CEL_MESSAGE).field_path(".heartbeatTimeoutMs"))]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSpec {
    /// Scheduling policy.
    #[serde(default)]
    pub policy: Policy,
    /// Stream task placement (driver default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// How many times one batch task may be suspended before it is protected (anti-starvation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MAX_SUSPENSIONS.min, max = MAX_SUSPENSIONS.max))]
    pub max_suspensions: Option<i64>,
    /// Anti-starvation quantum in milliseconds: how long a task suspended more than
    /// `maxSuspensions` times runs unpreemptible after each resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = QUANTUM_MS.min, max = QUANTUM_MS.max))]
    pub quantum_ms: Option<i64>,
    /// Executors reserved for stream jobs under the `static` policy.
    #[serde(default = "default_static_stream_executors")]
    #[schemars(range(min = STATIC_STREAM_EXECUTORS.min, max = STATIC_STREAM_EXECUTORS.max))]
    pub static_stream_executors: i32,
    /// Executor heartbeat interval in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = HEARTBEAT_INTERVAL_MS.min, max = HEARTBEAT_INTERVAL_MS.max))]
    pub heartbeat_interval_ms: Option<i64>,
    /// An executor missing heartbeats this long is lost (at least twice the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = HEARTBEAT_TIMEOUT_MS.min, max = HEARTBEAT_TIMEOUT_MS.max))]
    pub heartbeat_timeout_ms: Option<i64>,
}

impl Default for SchedulingSpec {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            placement: None,
            max_suspensions: None,
            quantum_ms: None,
            static_stream_executors: default_static_stream_executors(),
            heartbeat_interval_ms: None,
            heartbeat_timeout_ms: None,
        }
    }
}

/// Overrides for one job, passed as `--set jobs.<job>.*`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("!has(self.latencyTargetMs) || !has(self.kind) || self.kind == 'stream'").message("jobs.*.latencyTargetMs: only stream jobs have a latency target").field_path(".latencyTargetMs"))]
#[serde(rename_all = "camelCase")]
pub struct JobOverride {
    /// Job kind (overrides the app's code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    /// Micro-batch interval in milliseconds (stream jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = JOB_INTERVAL_MS.min, max = JOB_INTERVAL_MS.max))]
    pub interval_ms: Option<i64>,
    /// Stream latency target in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = JOB_LATENCY_TARGET_MS.min, max = JOB_LATENCY_TARGET_MS.max))]
    pub latency_target_ms: Option<i64>,
    /// Micro-batches of a stream job in flight at once; due ones beyond wait (the job falls
    /// behind, `status.jobs[].waitingRuns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = JOB_MAX_IN_FLIGHT.min, max = JOB_MAX_IN_FLIGHT.max))]
    pub max_in_flight: Option<i64>,
}

/// When the driver exits: `Never` restart, restart `OnFailure`, or `Always`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RestartType {
    /// The app ends with the driver.
    Never,
    /// Restart after a non-zero exit (the default).
    #[default]
    OnFailure,
    /// Restart after any exit.
    Always,
}

/// Driver restart policy, with exponential backoff between attempts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.backoffMaxSeconds >= self.backoffInitialSeconds").message("restartPolicy.backoffMaxSeconds: must be at least backoffInitialSeconds").field_path(".backoffMaxSeconds"))]
#[serde(rename_all = "camelCase")]
pub struct RestartPolicy {
    /// `Never`, `OnFailure` or `Always`.
    #[serde(rename = "type", default)]
    pub type_: RestartType,
    /// Driver failures (non-zero exit, OOM kill) restarted before the app is `Failed`. Restarts
    /// the operator causes (spec change, resume) or a deleted or disrupted pod do not count.
    #[serde(default = "default_max_retries")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_retries: i32,
    /// First backoff delay; doubles on every retry.
    #[serde(default = "default_backoff_initial")]
    #[schemars(range(min = 1, max = 3600))]
    pub backoff_initial_seconds: i64,
    /// Upper bound of the backoff delay.
    #[serde(default = "default_backoff_max")]
    #[schemars(range(min = 1, max = 86400))]
    pub backoff_max_seconds: i64,
    /// Failure counters (`status.driverFailures`, `status.executorFailures`) go back to 0 once
    /// the driver has been Ready this long with no new failure, so old crashes do not add up.
    #[serde(default = "default_reset_after")]
    #[schemars(range(min = 10, max = 604800))]
    pub reset_after_seconds: i64,
}

fn default_reset_after() -> i64 {
    600
}

fn default_max_retries() -> i32 {
    3
}

fn default_backoff_initial() -> i64 {
    10
}

fn default_backoff_max() -> i64 {
    300
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            type_: RestartType::default(),
            max_retries: default_max_retries(),
            backoff_initial_seconds: default_backoff_initial(),
            backoff_max_seconds: default_backoff_max(),
            reset_after_seconds: default_reset_after(),
        }
    }
}

/// Metrics ports and Prometheus scrape annotations.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.driverPort != 7077").message("monitoring.driverPort: 7077 is the driver's gRPC port").field_path(".driverPort"))]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Driver HTTP port (`/metrics`, `/healthz`, `/readyz`, `/status`).
    #[serde(default = "default_driver_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub driver_port: i32,
    /// Executor HTTP port (`/metrics`, `/healthz`, `/readyz`).
    #[serde(default = "default_executor_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub executor_port: i32,
    /// Add `prometheus.io/scrape`, `/port`, `/path` annotations to every pod.
    #[serde(default = "default_true")]
    pub annotate_pods: bool,
}

fn default_driver_port() -> i32 {
    crate::ports::DRIVER_HTTP
}

fn default_executor_port() -> i32 {
    crate::ports::EXECUTOR_HTTP
}

fn default_true() -> bool {
    true
}

impl Default for MonitoringSpec {
    fn default() -> Self {
        Self {
            driver_port: default_driver_port(),
            executor_port: default_executor_port(),
            annotate_pods: true,
        }
    }
}
