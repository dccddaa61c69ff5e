//! Reading observed pods: readiness, terminal state and why a pod failed (exit code, reason,
//! termination message, and whether it counts as a failure), deletions that are overdue, and
//! why a pod is stuck.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use neptune_crds::labels as l;

/// Container waiting reasons that will not resolve on their own.
const STUCK_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
];

/// Pod-level reasons of a failed pod that say the node, not the app, ended it.
const DISRUPTION_REASONS: &[&str] = &["NodeLost", "Shutdown", "NodeShutdown", "Terminated"];

/// Why a pod failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Exit code of the main container (or the failed init container), when one ran and ended.
    pub exit_code: Option<i32>,
    /// Kubernetes' reason: `Error`, `OOMKilled`, `Evicted`, a `DisruptionTarget` reason, ...
    pub reason: String,
    /// The container's termination message or the pod's status message (may be empty).
    pub message: String,
    /// Whether it counts against the retry limits: the app's own container failed. A pod the
    /// cluster took away (preemption, eviction through the API, taint manager, node shutdown or
    /// loss, admission rejection) does not count, as with a Job's `podFailurePolicy` ignoring
    /// `DisruptionTarget`.
    pub counted: bool,
}

impl Failure {
    /// One line: `exit code 137 (OOMKilled): <first line of the message>`.
    pub fn summary(&self) -> String {
        let mut s = match self.exit_code {
            Some(code) => format!("exit code {code} ({})", self.reason),
            None => self.reason.clone(),
        };
        if let Some(first) = self.message.lines().map(str::trim).find(|l| !l.is_empty()) {
            s.push_str(": ");
            s.push_str(first);
        }
        s
    }
}

/// Coarse state of a pod as the lifecycle needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Being deleted; wait until it is gone (or force-delete it once overdue).
    Terminating,
    /// The main container exited 0.
    Succeeded { finished: Option<Timestamp> },
    /// The main container exited non-zero, an init container failed, or the pod was evicted or
    /// lost. `finished` is the container's finish time, or the pod's last condition change.
    Failed {
        finished: Option<Timestamp>,
        failure: Failure,
    },
    /// Running and Ready.
    Ready,
    /// Created but not Ready yet (scheduling, pulling, starting).
    NotReady,
}

/// The status of the pod's main container: the one named after its `neptune.dev/role`
/// (`driver` or `executor`), so sidecars from a pod template are never mistaken for it.
pub fn main_container(pod: &Pod) -> Option<&ContainerStatus> {
    let role = pod.metadata.labels.as_ref().and_then(|m| m.get(l::ROLE));
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .find(|c| Some(&c.name) == role)
        .or_else(|| statuses.first())
}

/// Classifies a pod.
///
/// The main container's own termination decides, even while the pod is still `Running`: a
/// regular sidecar keeps the pod running after the driver or executor exited.
pub fn state(pod: &Pod) -> PodState {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodState::Terminating;
    }
    let status = pod.status.as_ref();
    let terminated = main_container(pod)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let finished = terminated
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| t.0)
        .or_else(|| last_transition(pod));
    match (terminated, status.and_then(|s| s.phase.as_deref())) {
        (Some(t), _) if t.exit_code == 0 => PodState::Succeeded { finished },
        (Some(_), _) | (None, Some("Failed")) => PodState::Failed {
            finished,
            failure: failure(pod),
        },
        (None, Some("Succeeded")) => PodState::Succeeded { finished },
        _ if is_ready(pod) => PodState::Ready,
        _ => PodState::NotReady,
    }
}

/// The latest condition transition of a pod: when a pod that failed without a container
/// exit (evicted, lost, rejected) failed, stable from one reconcile to the next.
fn last_transition(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .max()
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The driver attempt a pod belongs to (its `neptune.dev/attempt` label).
pub fn attempt(pod: &Pod) -> Option<i32> {
    pod.metadata.labels.as_ref()?.get(l::ATTEMPT)?.parse().ok()
}

/// Why a failed pod failed, and whether that counts.
fn failure(pod: &Pod) -> Failure {
    let status = pod.status.as_ref();
    let disruption = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
    let main = main_container(pod)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .filter(|t| t.exit_code != 0);
    let init = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then_some((c.name.as_str(), t))
        });
    let pod_reason = status.and_then(|s| s.reason.clone());
    let pod_message = status.and_then(|s| s.message.clone()).unwrap_or_default();
    if let Some(c) = disruption {
        return Failure {
            exit_code: main.map(|t| t.exit_code),
            reason: c
                .reason
                .clone()
                .unwrap_or_else(|| "DisruptionTarget".into()),
            message: c.message.clone().unwrap_or(pod_message),
            counted: false,
        };
    }
    if let Some(t) = main {
        return Failure {
            exit_code: Some(t.exit_code),
            reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
            message: t.message.clone().unwrap_or_default(),
            counted: !pod_reason
                .as_deref()
                .is_some_and(|r| DISRUPTION_REASONS.contains(&r)),
        };
    }
    if let Some((name, t)) = init {
        return Failure {
            exit_code: Some(t.exit_code),
            reason: format!(
                "Init:{}",
                t.reason.clone().unwrap_or_else(|| "Error".into())
            ),
            message: format!(
                "init container {name} failed{}",
                t.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            counted: true,
        };
    }
    // Failed before the app ran: rejected at admission on the node (OutOfcpu, NodeAffinity),
    // or the node was lost. Nothing of the app failed.
    Failure {
        exit_code: None,
        reason: pod_reason.unwrap_or_else(|| "PodFailed".into()),
        message: pod_message,
        counted: false,
    }
}

/// Whether the pod's `Ready` condition is true.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Seconds until a Terminating pod is overdue for force deletion (`<= 0`: overdue now), or
/// `None` when it is not being deleted.
///
/// `deletionTimestamp` is already the delete request's time plus the grace period (the API
/// sets it so, and shortens it when a shorter grace is requested), so overdue means
/// `now > deletionTimestamp + after`: the kubelet had the whole grace period and `after`
/// more seconds to report the containers stopped, which it does within seconds when its node
/// is alive.
pub fn deletion_overdue_in(pod: &Pod, now: Timestamp, after: i64) -> Option<i64> {
    let deadline = pod.metadata.deletion_timestamp.as_ref()?.0.as_second();
    Some(deadline.saturating_add(after) - now.as_second())
}

/// The node a pod was scheduled to, for messages.
pub fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("(unscheduled)")
}

/// Why a not-Ready pod is stuck, once it has been waiting longer than `deadline_seconds`.
///
/// Returns the most specific reason known: a container (or init container) waiting reason such
/// as `ImagePullBackOff`, the scheduler's `Unschedulable`, or `PendingTooLong`.
pub fn stuck_reason(pod: &Pod, now: Timestamp, deadline_seconds: i64) -> Option<String> {
    if state(pod) != PodState::NotReady {
        return None;
    }
    let created = pod.metadata.creation_timestamp.as_ref()?.0;
    if now.as_second() - created.as_second() < deadline_seconds {
        return None;
    }
    let status = pod.status.as_ref();
    let waiting = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .find(|r| STUCK_WAITING.contains(&r.as_str()));
    if waiting.is_some() {
        return waiting;
    }
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| c.reason.clone().unwrap_or_else(|| "Unschedulable".into()));
    Some(unschedulable.unwrap_or_else(|| "PendingTooLong".into()))
}

/// Annotation value on a pod.
pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Exponential backoff: `initial * 2^failures`, capped at `max` (seconds).
pub fn backoff_seconds(failures: i32, initial: i64, max: i64) -> i64 {
    let shift = failures.clamp(0, 30) as u32;
    initial.saturating_mul(1i64 << shift).min(max).max(0)
}
