//! `StreamBatchApp` status: phase, standard conditions, executor counts, attempts and failure
//! counters, the last failure and restart, timing and the stream latency the driver reports.
//! Written only by the operator (status subresource, with a resourceVersion precondition).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a `StreamBatchApp`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamBatchAppStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AppPhase>,
    /// Standard conditions: `DriverReady`, `ExecutorsReady`, `InvalidSpec`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Name of the current driver pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_pod: Option<String>,
    /// Executor pods desired and ready.
    #[serde(default)]
    pub executors: ExecutorsStatus,
    /// Driver pods started (1 for the first run), whatever the reason of each restart.
    #[serde(default)]
    pub attempts: i32,
    /// Driver failures (non-zero exit, OOM kill) since the last reset, counted against
    /// `restartPolicy.maxRetries`.
    #[serde(default)]
    pub driver_failures: i32,
    /// Executor failures since the last reset, counted against `executor.maxFailures`.
    #[serde(default)]
    pub executor_failures: i32,
    /// Since when the current driver has been Ready (unset while it is not); the failure
    /// counters reset `restartPolicy.resetAfterSeconds` after this or the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<Time>,
    /// The most recent pod failure: which pod, exit code, reason (e.g. `OOMKilled`) and the
    /// container's termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<FailureStatus>,
    /// Why the driver was last replaced, and whether that counted as a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<RestartStatus>,
    /// When the first driver attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the app Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Human-readable summary of the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Per-job figures the driver reports on `/status` (stream jobs carry p99 latency).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobStatus>,
    /// Stream p99 latency per job, for `kubectl get` (e.g. `score=12ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_p99: Option<String>,
    /// SLO attainment per stream job with a latency target, for `kubectl get` (e.g.
    /// `score=99.7%`): the share of its steady-state micro-batches within the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// The scheduling the running driver reports in force (`spec.scheduling` edits are applied
    /// to it live; see docs/kubernetes.md, "Live scheduling changes").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<SchedulingStatus>,
}

/// Live scheduling settings as the driver reports them.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingStatus {
    /// `scheduler.policy` in force.
    pub policy: String,
    /// `scheduler.placement` in force.
    pub placement: String,
    /// `scheduler.max_suspensions` in force.
    pub max_suspensions: i64,
    /// `scheduler.quantum_ms` in force.
    pub quantum_ms: i64,
}

/// Executor counts (the scale subresource reads `ready` and `selector`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorsStatus {
    /// `spec.executor.replicas` (0 while suspended or finished).
    #[serde(default)]
    pub desired: i32,
    /// Executor pods Ready.
    #[serde(default)]
    pub ready: i32,
    /// Label selector of the executor pods (for `kubectl scale` and HPAs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
}

/// A pod that failed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailureStatus {
    /// When the failure was seen (the container's finish time when known).
    pub time: Time,
    /// Pod name.
    pub pod: String,
    /// Pod UID (names repeat across attempts; this tells failures apart).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
    /// `driver` or `executor`.
    pub role: String,
    /// Exit code of the failed container, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Kubernetes' reason (`Error`, `OOMKilled`, `Evicted`, `DeletionByTaintManager`, ...).
    pub reason: String,
    /// The container's termination message (its last log lines when it wrote none), or the
    /// pod's status message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Whether it counted against `restartPolicy.maxRetries` / `executor.maxFailures` (a
    /// disruption such as a preemption or a lost node does not).
    pub counted: bool,
}

/// Why the driver was replaced.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestartStatus {
    /// The attempt that ended.
    pub attempt: i32,
    /// `DriverFailed`, `DriverDisrupted`, `DriverExited` (restartPolicy `Always`),
    /// `SpecChanged`, `Suspended`, `DriverPodDeleted`.
    pub reason: String,
    /// Details.
    pub message: String,
    /// When the operator decided it.
    pub time: Time,
    /// Whether it counted as a driver failure.
    pub counted: bool,
}

/// What the driver reports about one job.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Job name.
    pub name: String,
    /// `stream` or `batch`.
    pub kind: String,
    /// Micro-batches or epochs completed.
    #[serde(default)]
    pub runs: i64,
    /// Stream p99 end-to-end latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// The stream job's latency target in milliseconds (`spec.jobs.<job>.latencyTargetMs`),
    /// as the driver applies it; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_target_ms: Option<f64>,
    /// Fraction (0 to 1) of the stream job's steady-state micro-batches committed within its
    /// latency target; absent without a target or before the first steady-state micro-batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<f64>,
    /// Records processed per second since the job started (the executors' record counters:
    /// work of running and suspended tasks included, not only finished tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_second: Option<f64>,
    /// Stream micro-batches due and not begun because `jobs.<job>.max_in_flight` are in flight:
    /// above 0, the job is falling behind its interval. Stream jobs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_runs: Option<i64>,
}

// Named `AppPhase`, not `Phase`: the engine's tasks have phases of their own (`TaskPhase`).
/// Lifecycle phase of a `StreamBatchApp`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppPhase {
    /// Pods are being created or scheduled; the driver is not Ready yet.
    Pending,
    /// The driver is Ready.
    Running,
    /// The driver failed (or exited under `Always`) and a restart waits for its backoff.
    Restarting,
    /// The driver exited 0 (batch-only app finished).
    Succeeded,
    /// The driver failed and no retries are left.
    Failed,
    /// `spec.suspend` is true; no pods exist.
    Suspended,
    /// The spec is invalid (see the `InvalidSpec` condition); nothing is created.
    Invalid,
}

impl AppPhase {
    /// Every phase, for metrics that report zero too.
    pub const ALL: [AppPhase; 7] = [
        AppPhase::Pending,
        AppPhase::Running,
        AppPhase::Restarting,
        AppPhase::Succeeded,
        AppPhase::Failed,
        AppPhase::Suspended,
        AppPhase::Invalid,
    ];

    /// The phase as written in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Restarting => "Restarting",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Suspended => "Suspended",
            Self::Invalid => "Invalid",
        }
    }

    /// Succeeded or Failed: no pods will be created again.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Condition types the operator sets.
pub mod condition_types {
    /// The driver pod is Ready.
    pub const DRIVER_READY: &str = "DriverReady";
    /// All desired executor pods are Ready.
    pub const EXECUTORS_READY: &str = "ExecutorsReady";
    /// The spec failed validation (the message names the field).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Something needs attention: pods stuck Pending, executor failure limit reached, the
    /// apiserver refusing a child (`FailedCreate`), a pod force-deleted after its node was lost.
    pub const DEGRADED: &str = "Degraded";
}
