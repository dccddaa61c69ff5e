//! The lifecycle of a `StreamBatchApp` as a pure function: given the app, the pods observed,
//! what the driver reports, the time and the operator's settings, decide the actions, the new
//! status, the events and when to look again. No I/O; `crate::reconcile` carries the plan out.
//!
//! Rules:
//! - The driver and its executors start together; executors retry connecting until the driver
//!   listens, and the driver is Ready once its servers are up (not once executors registered),
//!   so nothing waits on anything in a cycle. Every pod is labelled with its driver attempt;
//!   executors of an earlier attempt are replaced.
//! - A failed executor is replaced after an exponential backoff until `executor.maxFailures`;
//!   a driver exit follows `restartPolicy`. Only real failures count (a container that exited
//!   non-zero or was OOM-killed, a failed init container), never a restart the operator caused
//!   (spec change, suspend), a deleted pod or a disruption (preemption, eviction, lost node);
//!   `status.lastRestart` records why the driver was replaced. The counters reset once the
//!   driver has been Ready `restartPolicy.resetAfterSeconds` with no new failure.
//! - A spec change that alters a pod's hash replaces that pod (the driver's replaces the whole
//!   app); label and annotation edits are patched onto running pods.
//! - A pod still Terminating `Settings::force_delete_after_seconds` past its deletion deadline
//!   (its node is lost) is force-deleted so its fixed name is free again.
//! - `suspend` deletes every pod; a finished app keeps its driver pod for logs and is deleted
//!   `ttlSecondsAfterFinished` later.

mod driver;
mod executors;
mod failures;
mod metadata;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use neptune_crds::StreamBatchApp;
use neptune_crds::v1alpha1::{
    AppPhase, JobStatus, SchedulingStatus, StreamBatchAppStatus, condition_types as ct,
};

use crate::build;
use crate::conditions;
use crate::config::Settings;
use crate::validate::validate;

pub use failures::revert_unexecuted;
pub use metadata::MetadataPatch;

/// What was observed in the cluster for one app.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The driver pod, if it exists.
    pub driver: Option<Pod>,
    /// Executor pods (any index).
    pub executors: Vec<Pod>,
    /// Jobs as the driver's `/status` reports them (only fetched while it is Ready).
    pub driver_jobs: Option<Vec<JobStatus>>,
    /// The live scheduling settings the driver reports in force (fetched with the jobs).
    pub driver_scheduling: Option<SchedulingStatus>,
}

/// Which failure counter a deletion carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// `status.driverFailures`.
    Driver,
    /// `status.executorFailures`.
    Executor,
}

/// One change to make in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Server-side apply the driver Service.
    ApplyService(Box<Service>),
    /// Server-side apply the app's NetworkPolicy (when the operator is configured to make one).
    ApplyNetworkPolicy(Box<NetworkPolicy>),
    /// Make fresh credentials (a new CA) and server-side apply them as the app's Secret
    /// `<app>-tls`, before the pods of a new driver attempt that mount it.
    RotateTls,
    /// Create a pod that does not exist yet (server-side apply).
    CreatePod(Box<Pod>),
    /// Delete a pod; `counted` says which failure counter the plan's status raised for it (so a
    /// deletion that did not happen can be taken back out of the status).
    DeletePod {
        /// Pod name.
        name: String,
        /// The failure counter this deletion stands for, if any.
        counted: Option<Counted>,
    },
    /// Delete a pod with grace period 0 (precondition: its uid), as it stayed Terminating past
    /// its deadline.
    ForceDeletePod {
        /// Pod name.
        name: String,
        /// The uid of the pod seen stuck, so a replacement of the same name is never hit.
        uid: Option<String>,
    },
    /// Merge-patch a running pod's labels and annotations (never its spec).
    PatchPodMetadata {
        /// Pod name.
        name: String,
        /// The change.
        patch: MetadataPatch,
    },
    /// Delete the app itself (TTL after finishing).
    DeleteApp,
    /// Post live scheduling changes (a JSON object of settings) to the running driver's
    /// `/admin/scheduling`, with the app's admin token.
    SetScheduling(serde_json::Value),
}

impl Action {
    /// A short description for logs: the kind of change and the object it touches.
    pub fn describe(&self) -> String {
        let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.name.clone().unwrap_or_default()
        };
        match self {
            Self::ApplyService(s) => format!("apply Service {}", name(&s.metadata)),
            Self::ApplyNetworkPolicy(p) => format!("apply NetworkPolicy {}", name(&p.metadata)),
            Self::RotateTls => "rotate credentials".into(),
            Self::CreatePod(p) => format!("create pod {}", name(&p.metadata)),
            Self::DeletePod { name, .. } => format!("delete pod {name}"),
            Self::ForceDeletePod { name, .. } => format!("force-delete pod {name}"),
            Self::PatchPodMetadata { name, .. } => format!("patch pod {name} metadata"),
            Self::DeleteApp => "delete the app".into(),
            Self::SetScheduling(v) => format!("set scheduling {v}"),
        }
    }

    /// A deletion that counts no failure.
    pub fn delete(name: impl Into<String>) -> Self {
        Self::DeletePod {
            name: name.into(),
            counted: None,
        }
    }
}

/// Severity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Normal transition.
    Normal,
    /// Needs attention.
    Warning,
}

/// A Kubernetes Event to publish about the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// Severity.
    pub kind: EventKind,
    /// PascalCase reason.
    pub reason: String,
    /// Human-readable note.
    pub note: String,
}

/// The outcome of one reconcile decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Changes, in order.
    pub actions: Vec<Action>,
    /// The status to write.
    pub status: StreamBatchAppStatus,
    /// Events to publish.
    pub events: Vec<EventSpec>,
    /// When to reconcile again even if nothing changes.
    pub requeue_after: Duration,
}

/// Working state while planning.
pub(crate) struct Ctx<'a> {
    pub app: &'a StreamBatchApp,
    pub now: Timestamp,
    pub settings: &'a Settings,
    pub status: StreamBatchAppStatus,
    pub actions: Vec<Action>,
    pub events: Vec<EventSpec>,
    pub requeue: Duration,
    pub degraded: Vec<String>,
}

impl Ctx<'_> {
    pub fn event(&mut self, kind: EventKind, reason: &str, note: impl Into<String>) {
        self.events.push(EventSpec {
            kind,
            reason: reason.to_string(),
            note: note.into(),
        });
    }

    pub fn requeue_within(&mut self, d: Duration) {
        self.requeue = self.requeue.min(d.max(Duration::from_secs(1)));
    }

    pub fn condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) {
        let generation = self.app.metadata.generation;
        conditions::set(
            &mut self.status.conditions,
            type_,
            status,
            reason,
            message,
            generation,
            self.now,
        );
    }

    /// A pod being deleted: force-deletes it once overdue (its node is most likely lost and
    /// its fixed name blocks the replacement), else looks again when it will be.
    pub fn terminating(&mut self, pod: &Pod, what: &str) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(after) = self.settings.force_delete_after_seconds else {
            self.requeue_within(Duration::from_secs(10));
            return;
        };
        match crate::pods::deletion_overdue_in(pod, self.now, after) {
            Some(left) if left < 0 => {
                self.actions.push(Action::ForceDeletePod {
                    name: name.clone(),
                    uid: pod.metadata.uid.clone(),
                });
                let message = format!(
                    "{what} pod {name} has been terminating {}s past its grace period on node {}; \
                     force-deleting it (its node is most likely lost)",
                    after - left,
                    crate::pods::node_name(pod)
                );
                self.degraded.push(format!("ForceDeleted: {message}"));
                self.event(EventKind::Warning, "ForceDeleted", message);
                self.requeue_within(Duration::from_secs(2));
            }
            Some(left) => self.requeue_within(Duration::from_secs(left.clamp(2, 30) as u64)),
            None => self.requeue_within(Duration::from_secs(2)),
        }
    }

    fn finish(mut self, previous: &StreamBatchAppStatus) -> Plan {
        let phase = self.status.phase;
        if phase != previous.phase
            && let Some(p) = phase
            && p != AppPhase::Invalid
        {
            let message = self.status.message.clone().unwrap_or_default();
            let kind = if p == AppPhase::Failed {
                EventKind::Warning
            } else {
                EventKind::Normal
            };
            self.event(kind, p.as_str(), message);
        }
        if !matches!(phase, Some(AppPhase::Invalid)) {
            let was = conditions::is_true(&self.status.conditions, ct::DEGRADED);
            if self.degraded.is_empty() {
                self.condition(ct::DEGRADED, false, "AsExpected", "");
            } else {
                let message = self.degraded.join("; ");
                let reason = degraded_reason(&message);
                self.condition(ct::DEGRADED, true, &reason, message.clone());
                if !was {
                    self.event(EventKind::Warning, &reason, message);
                }
            }
        }
        Plan {
            actions: self.actions,
            status: self.status,
            events: self.events,
            requeue_after: self.requeue,
        }
    }
}

/// Reason of the Degraded condition: the first problem's leading word (e.g. `ImagePullBackOff`).
fn degraded_reason(message: &str) -> String {
    message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .unwrap_or("Degraded")
        .to_string()
}

/// Decides what to do for `app` given what was observed at `now`.
pub fn plan(
    app: &StreamBatchApp,
    observed: &Observed,
    now: Timestamp,
    settings: &Settings,
) -> Plan {
    let previous = app.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    status.observed_generation = app.metadata.generation;
    status.executors.selector = build::executor_selector(app);
    let mut cx = Ctx {
        app,
        now,
        settings,
        status,
        actions: Vec::new(),
        events: Vec::new(),
        requeue: Duration::from_secs(300),
        degraded: Vec::new(),
    };
    let validated = match validate(app) {
        Ok(v) => v,
        Err(invalid) => {
            // Leave existing pods alone: an edit that breaks the spec should not kill a running app.
            let message = invalid.to_string();
            let known = previous
                .conditions
                .iter()
                .any(|c| c.type_ == ct::INVALID_SPEC && c.status == "True" && c.message == message);
            if !known {
                cx.event(EventKind::Warning, "InvalidSpec", message.clone());
            }
            cx.condition(ct::INVALID_SPEC, true, "InvalidSpec", message.clone());
            cx.status.phase = Some(AppPhase::Invalid);
            cx.status.message = Some(format!("invalid spec: {message}"));
            return cx.finish(&previous);
        }
    };
    cx.condition(ct::INVALID_SPEC, false, "Valid", "");
    if previous.phase == Some(AppPhase::Invalid) {
        cx.status.phase = None;
    }

    if let Some(phase) = cx.status.phase.filter(|p| p.is_finished()) {
        finished(&mut cx, observed, phase);
        return cx.finish(&previous);
    }
    if app.spec.suspend {
        suspend(&mut cx, observed);
        return cx.finish(&previous);
    }
    cx.actions
        .push(Action::ApplyService(Box::new(build::driver_service(app))));
    if let Some(http_from) = &settings.network_policy {
        cx.actions
            .push(Action::ApplyNetworkPolicy(Box::new(build::network_policy(
                app, http_from,
            ))));
    }
    let (driver, attempt) = driver::reconcile(&mut cx, observed, &validated);
    if let Some(phase) = cx.status.phase.filter(|p| p.is_finished()) {
        finished(&mut cx, observed, phase);
        return cx.finish(&previous);
    }
    executors::reconcile(&mut cx, observed, &validated, driver, attempt);
    failures::maybe_reset(&mut cx, driver);
    if driver.is_ready() {
        report_jobs(&mut cx, observed);
        live_scheduling(&mut cx, observed);
        cx.requeue_within(Duration::from_secs(30));
    }
    cx.finish(&previous)
}

/// Succeeded or Failed: no executors, TTL cleanup.
fn finished(cx: &mut Ctx<'_>, observed: &Observed, phase: AppPhase) {
    executors::delete_all(cx, observed, "the app finished");
    cx.status.executors.desired = 0;
    cx.status.executors.ready = 0;
    cx.status.running_since = None;
    cx.condition(ct::DRIVER_READY, false, phase.as_str(), "the driver exited");
    cx.condition(
        ct::EXECUTORS_READY,
        false,
        phase.as_str(),
        "the app finished",
    );
    let (Some(ttl), Some(done)) = (
        cx.app.spec.ttl_seconds_after_finished,
        &cx.status.completion_time,
    ) else {
        return;
    };
    let left = done.0.as_second() + ttl - cx.now.as_second();
    if left <= 0 {
        cx.actions.push(Action::DeleteApp);
        cx.event(
            EventKind::Normal,
            "Expired",
            format!("deleting the app {ttl}s after it finished"),
        );
    } else {
        cx.requeue_within(Duration::from_secs(left as u64));
    }
}

/// `spec.suspend: true`: delete every pod, keep counters.
fn suspend(cx: &mut Ctx<'_>, observed: &Observed) {
    if let Some(pod) = observed
        .driver
        .as_ref()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        cx.actions.push(Action::delete(name.clone()));
        failures::record_restart(
            cx,
            "Suspended",
            format!("spec.suspend is true; deleted driver pod {name}"),
            false,
        );
    } else if let Some(pod) = &observed.driver {
        cx.terminating(pod, "driver");
    }
    executors::delete_all(cx, observed, "the app is suspended");
    cx.status.phase = Some(AppPhase::Suspended);
    cx.status.message = Some("suspended: spec.suspend is true".into());
    cx.status.executors.desired = 0;
    cx.status.executors.ready = 0;
    cx.status.running_since = None;
    cx.status.jobs.clear();
    cx.status.stream_p99 = None;
    cx.status.slo = None;
    cx.condition(ct::DRIVER_READY, false, "Suspended", "spec.suspend is true");
    cx.condition(
        ct::EXECUTORS_READY,
        false,
        "Suspended",
        "spec.suspend is true",
    );
}

/// Records the scheduling the driver reports and, when `spec.scheduling` asks for other live
/// settings, tells the driver (no pod is replaced: the spec hash leaves them out).
fn live_scheduling(cx: &mut Ctx<'_>, observed: &Observed) {
    let Some(now) = &observed.driver_scheduling else {
        return;
    };
    cx.status.scheduling = Some(now.clone());
    let want = build::desired_scheduling(&cx.app.spec);
    let mut changes = serde_json::Map::new();
    // A switch to or from `static` restarts the driver instead (it is in the spec hash).
    if want.policy != now.policy && want.policy != "static" && now.policy != "static" {
        changes.insert("scheduler.policy".into(), want.policy.clone().into());
    }
    if want.placement != now.placement {
        changes.insert("scheduler.placement".into(), want.placement.clone().into());
    }
    if want.max_suspensions != now.max_suspensions {
        changes.insert(
            "scheduler.max_suspensions".into(),
            want.max_suspensions.into(),
        );
    }
    if want.quantum_ms != now.quantum_ms {
        changes.insert("scheduler.quantum_ms".into(), want.quantum_ms.into());
    }
    if changes.is_empty() {
        return;
    }
    let what: Vec<String> = changes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    cx.event(
        EventKind::Normal,
        "SchedulingChanged",
        format!("applying {} to the running driver", what.join(", ")),
    );
    cx.actions
        .push(Action::SetScheduling(serde_json::Value::Object(changes)));
    // Read back soon: the status then shows the new settings in force.
    cx.requeue_within(Duration::from_secs(2));
}

/// Copies the driver's per-job figures into the status, with a `kubectl get` summary.
fn report_jobs(cx: &mut Ctx<'_>, observed: &Observed) {
    let Some(jobs) = &observed.driver_jobs else {
        return;
    };
    cx.status.jobs = jobs.clone();
    let summary: Vec<String> = jobs
        .iter()
        .filter(|j| j.kind == "stream")
        .filter_map(|j| j.p99_ms.map(|p| format!("{}={}ms", j.name, format_ms(p))))
        .collect();
    cx.status.stream_p99 = (!summary.is_empty()).then(|| summary.join(","));
    let slo: Vec<String> = jobs
        .iter()
        .filter(|j| j.kind == "stream")
        .filter_map(|j| {
            j.slo_attainment
                .map(|a| format!("{}={}%", j.name, format_percent(a)))
        })
        .collect();
    cx.status.slo = (!slo.is_empty()).then(|| slo.join(","));
}

/// A fraction as a percentage for `kubectl get`: one decimal, never rounded up to 100 % (a job
/// that missed its target once in 10,000 micro-batches shows `99.9%`, not `100.0%`).
fn format_percent(fraction: f64) -> String {
    let tenths = (fraction * 1000.0).floor() / 10.0;
    format!("{tenths:.1}")
}

fn format_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}
