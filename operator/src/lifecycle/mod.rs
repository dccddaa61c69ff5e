//! The lifecycle of a `StreamBatchApp` as a pure function: given the app, the pods and Service
//! observed, what the driver reports, and the time, decide the actions, the new status, the
//! events and when to look again. No I/O; `crate::apply` carries the plan out.
//!
//! Rules: executors exist only while a driver pod exists and are created once it is Ready; a
//! failed executor is replaced after an exponential backoff until `executor.maxFailures`; a
//! driver exit follows `restartPolicy`; a spec change that alters a pod's hash replaces that pod
//! (the driver's replaces the whole app); `suspend` deletes every pod; a finished app keeps its
//! driver pod for logs and is deleted `ttlSecondsAfterFinished` later.

mod driver;
mod executors;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use neptune_crds::StreamBatchApp;
use neptune_crds::v1alpha1::{JobStatus, Phase, StreamBatchAppStatus, condition_types as ct};

use crate::build;
use crate::conditions;
use crate::validate::validate;

/// What was observed in the cluster for one app.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The driver pod, if it exists.
    pub driver: Option<Pod>,
    /// Executor pods (any index).
    pub executors: Vec<Pod>,
    /// Jobs as the driver's `/status` reports them (only fetched while it is Ready).
    pub driver_jobs: Option<Vec<JobStatus>>,
}

/// One change to make in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Server-side apply the driver Service.
    ApplyService(Box<Service>),
    /// Create a pod that does not exist yet (server-side apply).
    CreatePod(Box<Pod>),
    /// Delete a pod.
    DeletePod(String),
    /// Delete the app itself (TTL after finishing).
    DeleteApp,
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

    fn finish(mut self, previous: Option<Phase>) -> Plan {
        let phase = self.status.phase;
        if phase != previous
            && let Some(p) = phase
        {
            let message = self.status.message.clone().unwrap_or_default();
            let kind = if matches!(p, Phase::Failed | Phase::Invalid) {
                EventKind::Warning
            } else {
                EventKind::Normal
            };
            self.event(kind, p.as_str(), message);
        }
        if !matches!(phase, Some(Phase::Invalid)) {
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
pub fn plan(app: &StreamBatchApp, observed: &Observed, now: Timestamp) -> Plan {
    let previous = app.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    status.observed_generation = app.metadata.generation;
    status.executors.selector = build::executor_selector(app);
    let mut cx = Ctx {
        app,
        now,
        status,
        actions: Vec::new(),
        events: Vec::new(),
        requeue: Duration::from_secs(300),
        degraded: Vec::new(),
    };
    let sizes = match validate(app) {
        Ok(sizes) => sizes,
        Err(invalid) => {
            // Leave existing pods alone: an edit that breaks the spec should not kill a running app.
            cx.condition(ct::INVALID_SPEC, true, "InvalidSpec", invalid.to_string());
            cx.status.phase = Some(Phase::Invalid);
            cx.status.message = Some(format!("invalid spec: {invalid}"));
            return cx.finish(previous.phase);
        }
    };
    cx.condition(ct::INVALID_SPEC, false, "Valid", "");
    if previous.phase == Some(Phase::Invalid) {
        cx.status.phase = None;
    }

    if let Some(phase) = cx.status.phase.filter(|p| p.is_finished()) {
        finished(&mut cx, observed, phase);
        return cx.finish(previous.phase);
    }
    if app.spec.suspend {
        suspend(&mut cx, observed);
        return cx.finish(previous.phase);
    }
    cx.actions
        .push(Action::ApplyService(Box::new(build::driver_service(app))));
    let driver = driver::reconcile(&mut cx, observed, &sizes);
    if let Some(phase) = cx.status.phase.filter(|p| p.is_finished()) {
        finished(&mut cx, observed, phase);
        return cx.finish(previous.phase);
    }
    executors::reconcile(&mut cx, observed, &sizes, driver);
    if driver.is_ready() {
        report_jobs(&mut cx, observed);
        cx.requeue_within(Duration::from_secs(30));
    }
    cx.finish(previous.phase)
}

/// Succeeded or Failed: no executors, TTL cleanup.
fn finished(cx: &mut Ctx<'_>, observed: &Observed, phase: Phase) {
    executors::delete_all(cx, observed, "the app finished");
    cx.status.executors.desired = 0;
    cx.status.executors.ready = 0;
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
    if let Some(name) = observed
        .driver
        .as_ref()
        .and_then(|p| p.metadata.name.clone())
        && observed
            .driver
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
    {
        cx.actions.push(Action::DeletePod(name));
    }
    executors::delete_all(cx, observed, "the app is suspended");
    cx.status.phase = Some(Phase::Suspended);
    cx.status.message = Some("suspended: spec.suspend is true".into());
    cx.status.executors.desired = 0;
    cx.status.executors.ready = 0;
    cx.status.jobs.clear();
    cx.status.stream_p99 = None;
    cx.condition(ct::DRIVER_READY, false, "Suspended", "spec.suspend is true");
    cx.condition(
        ct::EXECUTORS_READY,
        false,
        "Suspended",
        "spec.suspend is true",
    );
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
}

fn format_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}
