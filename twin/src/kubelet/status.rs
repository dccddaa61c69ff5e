//! A pod's status from its containers' states: phase, conditions and container statuses,
//! computed the way the kubelet's `generateAPIPodStatus`/`getPhase` do.
//!
//! Pure (no I/O), so the rules are tested as tables: a container that is waiting without
//! ever having run keeps the pod Pending; all containers stopped means Succeeded/Failed per
//! `restartPolicy` (Always never finishes); Ready = every container ready and every readiness
//! gate True; terminal pods are not Ready (`PodCompleted`). Transition times are kept from the
//! previous status while a condition's value does not change.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// One container as the runtime sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerView {
    /// Container name.
    pub name: String,
    /// Image reference from the spec.
    pub image: String,
    /// Current state.
    pub state: State,
    /// The previous run's termination, if it ran before.
    pub last: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Readiness (probe passed or no readiness probe, and running).
    pub ready: bool,
    /// Startup probe passed (or none) and running.
    pub started: bool,
    /// Runtime id of the current/last run (`twin://...`).
    pub container_id: Option<String>,
}

/// A container's state.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Not running: `reason` such as `ContainerCreating`, `ImagePullBackOff`, `CrashLoopBackOff`.
    Waiting {
        reason: String,
        message: Option<String>,
    },
    /// Running since.
    Running { started_at: Timestamp },
    /// Exited.
    Terminated(Terminated),
}

/// How a container run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    /// Exit code (128 + signal when killed by one).
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`.
    pub reason: String,
    /// Termination message.
    pub message: Option<String>,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Timestamp,
}

/// Everything the status is computed from.
#[derive(Clone, Debug)]
pub struct PodView<'a> {
    /// Init containers in order.
    pub init: &'a [ContainerView],
    /// Regular containers.
    pub containers: &'a [ContainerView],
    /// `spec.restartPolicy` (default `Always`).
    pub restart_policy: &'a str,
    /// The pod IP once the "sandbox" exists.
    pub pod_ip: Option<String>,
    /// The node's IP.
    pub host_ip: Option<String>,
    /// When the kubelet accepted the pod.
    pub start_time: Option<Timestamp>,
    /// `spec.readinessGates` condition types.
    pub readiness_gates: Vec<String>,
    /// A phase decided elsewhere: a deleted pod whose containers were stopped ends `Failed`
    /// (or `Succeeded` when all exited 0) even under `restartPolicy: Always`.
    pub phase_override: Option<&'static str>,
}

/// Phase, per the kubelet's `getPhase`.
pub fn phase(v: &PodView<'_>) -> &'static str {
    let never = v.restart_policy == "Never";
    for c in v.init {
        match &c.state {
            State::Terminated(t) if t.exit_code == 0 => {}
            State::Terminated(_) if never => return "Failed",
            _ => return "Pending",
        }
    }
    let n = v.containers.len();
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in v.containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if c.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped == n && n > 0 {
        match v.restart_policy {
            "Never" if succeeded == n => "Succeeded",
            "Never" => "Failed",
            "OnFailure" if succeeded == n => "Succeeded",
            _ => "Running",
        }
    } else {
        "Pending"
    }
}

/// The full status, keeping transition times from `previous` where values did not change.
pub fn pod_status(v: &PodView<'_>, previous: Option<&PodStatus>, now: Timestamp) -> PodStatus {
    let phase = v.phase_override.unwrap_or_else(|| phase(v));
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let prev_conditions = previous
        .and_then(|p| p.conditions.clone())
        .unwrap_or_default();
    let cond = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let since = prev_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        PodCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.map(str::to_string),
            message,
            last_transition_time: Some(since),
            last_probe_time: None,
            observed_generation: None,
        }
    };
    let incomplete: Vec<&str> = v
        .init
        .iter()
        .filter(|c| !matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = v
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let gates_missing: Vec<&str> = v
        .readiness_gates
        .iter()
        .filter(|g| {
            !prev_conditions
                .iter()
                .any(|c| &c.type_ == *g && c.status == "True")
        })
        .map(String::as_str)
        .collect();
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let initialized = incomplete.is_empty();
    let containers_ready = unready.is_empty() && !terminal;
    let ready = containers_ready && gates_missing.is_empty();
    let (cr_reason, cr_message) = if terminal {
        (Some("PodCompleted"), None)
    } else if !containers_ready {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                list(&unready)
            )),
        )
    } else {
        (None, None)
    };
    let (ready_reason, ready_message) = if containers_ready && !gates_missing.is_empty() {
        (
            Some("ReadinessGatesNotReady"),
            Some(format!(
                "corresponding condition of pod readiness gate \"{}\" does not exist.",
                gates_missing[0]
            )),
        )
    } else {
        (cr_reason, cr_message.clone())
    };
    let mut conditions = vec![
        cond("PodReadyToStartContainers", v.pod_ip.is_some(), None, None),
        cond(
            "Initialized",
            initialized,
            (!initialized).then_some("ContainersNotInitialized"),
            (!initialized)
                .then(|| format!("containers with incomplete status: {}", list(&incomplete))),
        ),
        cond("Ready", ready, ready_reason, ready_message),
        cond("ContainersReady", containers_ready, cr_reason, cr_message),
        cond("PodScheduled", true, None, None),
    ];
    // Conditions other writers own (readiness gates, DisruptionTarget) are kept.
    let ours = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    conditions.extend(
        prev_conditions
            .iter()
            .filter(|c| !ours.contains(&c.type_.as_str()))
            .cloned(),
    );
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: v.host_ip.clone(),
        host_ips: v.host_ip.clone().map(|ip| vec![HostIP { ip }]),
        pod_ip: v.pod_ip.clone(),
        pod_ips: v.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: v.start_time.map(Time),
        init_container_statuses: (!v.init.is_empty())
            .then(|| v.init.iter().map(container_status).collect()),
        container_statuses: Some(v.containers.iter().map(container_status).collect()),
        qos_class: previous.and_then(|p| p.qos_class.clone()),
        ..PodStatus::default()
    }
}

/// One container's API status.
pub fn container_status(c: &ContainerView) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: format!("twin://{}", c.image),
        container_id: c.container_id.clone(),
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count,
        state: Some(api_state(&c.state)),
        last_state: Some(
            c.last
                .as_ref()
                .map(|t| api_state(&State::Terminated(t.clone())))
                .unwrap_or_default(),
        ),
        ..ContainerStatus::default()
    }
}

fn api_state(s: &State) -> ContainerState {
    match s {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..ContainerState::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                signal: t.signal,
                reason: Some(t.reason.clone()),
                message: t.message.clone().filter(|m| !m.is_empty()),
                started_at: t.started_at.map(Time),
                finished_at: Some(Time(t.finished_at)),
                container_id: None,
            }),
            ..ContainerState::default()
        },
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
