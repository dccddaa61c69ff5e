//! Reading observed pods: readiness, terminal state and when it ended, and why a pod is stuck.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// Container waiting reasons that will not resolve on their own.
const STUCK_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
];

/// Coarse state of a pod as the lifecycle needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Being deleted; wait until it is gone.
    Terminating,
    /// Exited 0.
    Succeeded { finished: Option<Timestamp> },
    /// Exited non-zero, was evicted or lost.
    Failed {
        finished: Option<Timestamp>,
        reason: String,
    },
    /// Running and Ready.
    Ready,
    /// Created but not Ready yet (scheduling, pulling, starting).
    NotReady,
}

/// Classifies a pod.
pub fn state(pod: &Pod) -> PodState {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodState::Terminating;
    }
    let status = pod.status.as_ref();
    let terminated = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let finished = terminated.and_then(|t| t.finished_at.as_ref()).map(|t| t.0);
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => PodState::Succeeded { finished },
        Some("Failed") => {
            let reason = match terminated {
                Some(t) => format!(
                    "exit code {}{}",
                    t.exit_code,
                    t.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
                None => status
                    .and_then(|s| s.reason.clone())
                    .unwrap_or_else(|| "pod failed".into()),
            };
            PodState::Failed { finished, reason }
        }
        _ if is_ready(pod) => PodState::Ready,
        _ => PodState::NotReady,
    }
}

/// Whether the pod's `Ready` condition is true.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a not-Ready pod is stuck, once it has been waiting longer than `deadline_seconds`.
///
/// Returns the most specific reason known: a container waiting reason such as
/// `ImagePullBackOff`, the scheduler's `Unschedulable`, or `PendingTooLong`.
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
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
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
