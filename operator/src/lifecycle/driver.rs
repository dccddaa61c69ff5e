//! The driver pod's part of the lifecycle: create it (a new attempt), notice it is Ready, replace
//! it when its spec changes or it disappears, and apply the restart policy when it exits.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use neptune_crds::labels as l;
use neptune_crds::v1alpha1::{AppPhase, RestartType, condition_types as ct};

use super::failures::{record_failure, record_restart, restart_recorded};
use super::{Action, Counted, Ctx, EventKind, Observed, metadata};
use crate::build::{self, Role};
use crate::pods::{Failure, PodState, annotation, attempt, backoff_seconds, state, stuck_reason};
use crate::validate::Validated;

/// Where the driver stands after this reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    /// Ready: its servers are up.
    Ready,
    /// Created in this reconcile or not Ready yet: its executors are created and kept.
    Starting,
    /// Absent, being replaced or finished: executors must go.
    Gone,
}

impl Driver {
    pub fn is_ready(self) -> bool {
        self == Self::Ready
    }
}

/// Reconciles the driver pod; returns where it stands and the attempt it belongs to.
pub(crate) fn reconcile(cx: &mut Ctx<'_>, observed: &Observed, v: &Validated) -> (Driver, i32) {
    let running_since = cx.status.running_since.take();
    let Some(pod) = &observed.driver else {
        return (create(cx, v), cx.status.attempts);
    };
    // The pod carries its attempt; a status write lost after it was created is healed here.
    let current = attempt(pod).unwrap_or(cx.status.attempts);
    cx.status.attempts = cx.status.attempts.max(current);
    let desired = build::driver_pod(cx.app, v, current);
    let name = desired.metadata.name.clone().unwrap_or_default();
    cx.status.driver_pod = Some(name.clone());
    let st = state(pod);
    let stale = !matches!(
        st,
        PodState::Terminating | PodState::Succeeded { .. } | PodState::Failed { .. }
    ) && annotation(pod, l::SPEC_HASH) != annotation(&desired, l::SPEC_HASH);
    if stale {
        cx.actions.push(Action::delete(name.clone()));
        let message = format!("the driver's spec changed; replacing pod {name} and its executors");
        record_restart(cx, "SpecChanged", message.clone(), false);
        cx.event(EventKind::Normal, "SpecChanged", message);
        cx.status.phase = Some(AppPhase::Pending);
        cx.status.message = Some("restarting with the new spec".into());
        cx.condition(
            ct::DRIVER_READY,
            false,
            "SpecChanged",
            "the driver pod is being replaced",
        );
        cx.requeue_within(Duration::from_secs(2));
        return (Driver::Gone, current);
    }
    if matches!(st, PodState::Ready | PodState::NotReady)
        && let Some(patch) = metadata::diff(&desired, pod)
    {
        cx.event(
            EventKind::Normal,
            "UpdatedMetadata",
            format!(
                "updated labels/annotations {:?} of driver pod {name}",
                patch.keys()
            ),
        );
        cx.actions.push(Action::PatchPodMetadata {
            name: name.clone(),
            patch,
        });
    }
    let driver = match st {
        PodState::Terminating => {
            cx.condition(
                ct::DRIVER_READY,
                false,
                "Terminating",
                format!("pod {name} is terminating"),
            );
            cx.terminating(pod, "driver");
            Driver::Gone
        }
        PodState::Ready => {
            cx.status.running_since = Some(running_since.unwrap_or(Time(cx.now)));
            cx.status.phase = Some(AppPhase::Running);
            cx.status.message = Some(format!("running (attempt {current})"));
            cx.condition(
                ct::DRIVER_READY,
                true,
                "Ready",
                format!("pod {name} is Ready"),
            );
            Driver::Ready
        }
        PodState::NotReady => {
            cx.status.phase = Some(AppPhase::Pending);
            cx.status.message = Some(format!("waiting for driver pod {name} to be Ready"));
            cx.condition(
                ct::DRIVER_READY,
                false,
                "Starting",
                format!("pod {name} is not Ready yet"),
            );
            if let Some(reason) = stuck_reason(pod, cx.now, cx.app.spec.pending_deadline_seconds) {
                cx.degraded.push(format!(
                    "{reason}: driver pod {name} is not running after {}s",
                    cx.app.spec.pending_deadline_seconds
                ));
            }
            cx.requeue_within(Duration::from_secs(10));
            Driver::Starting
        }
        PodState::Succeeded { finished } => exited(cx, &name, finished, None),
        PodState::Failed { finished, failure } => {
            record_failure(cx, pod, Role::Driver, finished, &failure);
            exited(cx, &name, finished, Some(failure))
        }
    };
    (driver, current)
}

/// Creates the driver pod of a new attempt; returns [`Driver::Starting`].
fn create(cx: &mut Ctx<'_>, v: &Validated) -> Driver {
    let ended = cx.status.attempts;
    let name = build::driver_pod_name(cx.app.metadata.name.as_deref().unwrap_or_default());
    if ended > 0 && !restart_recorded(&cx.status) {
        // The operator did not delete it: a user did, or its node was lost and the pod
        // garbage-collected. Not the app's failure.
        let message = format!(
            "driver pod {name} of attempt {ended} disappeared (deleted by a user, or its node was lost); starting a new one"
        );
        record_restart(cx, "DriverPodDeleted", message.clone(), false);
        cx.event(EventKind::Warning, "DriverPodDeleted", message);
    }
    cx.status.attempts = ended + 1;
    let attempt = cx.status.attempts;
    // Every attempt gets new credentials: the old executors go with the old driver, and a
    // restart is how credentials rotate.
    cx.actions.push(Action::RotateTls);
    cx.actions
        .push(Action::CreatePod(Box::new(build::driver_pod(
            cx.app, v, attempt,
        ))));
    cx.status.driver_pod = Some(name.clone());
    if cx.status.start_time.is_none() {
        cx.status.start_time = Some(Time(cx.now));
    }
    cx.status.phase = Some(AppPhase::Pending);
    cx.status.message = Some(format!("starting driver pod {name} (attempt {attempt})"));
    cx.condition(
        ct::DRIVER_READY,
        false,
        "Starting",
        format!("pod {name} was created"),
    );
    cx.event(
        EventKind::Normal,
        "CreatedDriver",
        format!("created driver pod {name} (attempt {attempt})"),
    );
    cx.requeue_within(Duration::from_secs(10));
    Driver::Starting
}

/// The driver exited (`failure` is `None` for exit 0): restart it if the policy and the retries
/// left allow, after a backoff for a failure, at once for a disruption; else finish.
fn exited(
    cx: &mut Ctx<'_>,
    name: &str,
    finished: Option<Timestamp>,
    failure: Option<Failure>,
) -> Driver {
    let rp = cx.app.spec.restart_policy.clone();
    let attempt = cx.status.attempts;
    let why = failure.as_ref().map_or_else(
        || "exited 0".to_string(),
        |f| format!("failed: {}", f.summary()),
    );
    let counted = failure.as_ref().is_some_and(|f| f.counted);
    let allowed = match &failure {
        None => rp.type_ == RestartType::Always,
        Some(_) => rp.type_ != RestartType::Never,
    };
    cx.condition(
        ct::DRIVER_READY,
        false,
        if failure.is_none() {
            "Completed"
        } else {
            "Failed"
        },
        format!("driver pod {name} {why}"),
    );
    let failures = cx.status.driver_failures;
    if allowed && (!counted || failures < rp.max_retries) {
        // A disruption (preemption, lost node) restarts at once: nothing of the app failed.
        let delay = match &failure {
            Some(f) if !f.counted => 0,
            _ => backoff_seconds(failures, rp.backoff_initial_seconds, rp.backoff_max_seconds),
        };
        let at = finished.unwrap_or(cx.now).as_second() + delay;
        let (reason, retry) = match &failure {
            None => ("DriverExited", "restartPolicy is Always".to_string()),
            Some(f) if !f.counted => ("DriverDisrupted", "not counted as a failure".to_string()),
            Some(_) => (
                "DriverFailed",
                format!("retry {} of {}", failures + 1, rp.max_retries),
            ),
        };
        let message = format!("driver attempt {attempt} {why}; {retry}, after {delay}s");
        cx.status.phase = Some(AppPhase::Restarting);
        cx.status.message = Some(message.clone());
        if cx.now.as_second() >= at {
            cx.actions.push(Action::DeletePod {
                name: name.to_string(),
                counted: counted.then_some(Counted::Driver),
            });
            if counted {
                cx.status.driver_failures += 1;
            }
            record_restart(cx, reason, message.clone(), counted);
            let kind = if failure.is_some() {
                EventKind::Warning
            } else {
                EventKind::Normal
            };
            cx.event(kind, "RestartingDriver", message);
            cx.requeue_within(Duration::from_secs(2));
        } else {
            cx.requeue_within(Duration::from_secs((at - cx.now.as_second()) as u64));
        }
        return Driver::Gone;
    }
    if counted {
        cx.status.driver_failures += 1;
    }
    let success = failure.is_none();
    cx.status.phase = Some(if success {
        AppPhase::Succeeded
    } else {
        AppPhase::Failed
    });
    cx.status.completion_time = Some(Time(cx.now));
    cx.status.message = Some(if success {
        "the driver finished successfully".to_string()
    } else if allowed {
        format!(
            "driver attempt {attempt} {why}; no retries left after {} failures (restartPolicy.maxRetries {})",
            cx.status.driver_failures, rp.max_retries
        )
    } else {
        format!("driver attempt {attempt} {why}; restartPolicy is Never")
    });
    Driver::Gone
}
