//! The driver pod's part of the lifecycle: create it, notice it is Ready, and apply the restart
//! policy when it exits.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use neptune_crds::labels as l;
use neptune_crds::v1alpha1::{Phase, RestartType, condition_types as ct};

use super::{Action, Ctx, EventKind, Observed};
use crate::build;
use crate::pods::{PodState, annotation, backoff_seconds, state, stuck_reason};
use crate::validate::Sizes;

/// Where the driver stands after this reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    /// Ready: executors may be created.
    Ready,
    /// Starting or briefly unready: keep executors, create none.
    NotReady,
    /// Absent, being replaced or finished: executors must go.
    Gone,
}

impl Driver {
    pub fn is_ready(self) -> bool {
        self == Self::Ready
    }
}

/// Reconciles the driver pod.
pub(crate) fn reconcile(cx: &mut Ctx<'_>, observed: &Observed, sizes: &Sizes) -> Driver {
    let desired = build::driver_pod(cx.app, sizes);
    let name = desired.metadata.name.clone().unwrap_or_default();
    cx.status.driver_pod = Some(name.clone());
    let Some(pod) = &observed.driver else {
        create(cx, desired, &name);
        return Driver::Gone;
    };
    let st = state(pod);
    let stale = !matches!(
        st,
        PodState::Terminating | PodState::Succeeded { .. } | PodState::Failed { .. }
    ) && annotation(pod, l::SPEC_HASH) != annotation(&desired, l::SPEC_HASH);
    if stale {
        cx.actions.push(Action::DeletePod(name.clone()));
        cx.event(
            EventKind::Normal,
            "SpecChanged",
            format!("the driver's spec changed; replacing pod {name} and its executors"),
        );
        cx.status.phase = Some(Phase::Pending);
        cx.status.message = Some("restarting with the new spec".into());
        cx.condition(
            ct::DRIVER_READY,
            false,
            "SpecChanged",
            "the driver pod is being replaced",
        );
        cx.requeue_within(Duration::from_secs(2));
        return Driver::Gone;
    }
    match st {
        PodState::Terminating => {
            cx.condition(
                ct::DRIVER_READY,
                false,
                "Terminating",
                format!("pod {name} is terminating"),
            );
            cx.requeue_within(Duration::from_secs(2));
            Driver::Gone
        }
        PodState::Ready => {
            cx.status.phase = Some(Phase::Running);
            cx.status.message = Some(format!("running (attempt {})", cx.status.attempts));
            cx.condition(
                ct::DRIVER_READY,
                true,
                "Ready",
                format!("pod {name} is Ready"),
            );
            Driver::Ready
        }
        PodState::NotReady => {
            cx.status.phase = Some(Phase::Pending);
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
            Driver::NotReady
        }
        PodState::Succeeded { finished } => exited(
            cx,
            &name,
            finished,
            "exited 0",
            cx.app.spec.restart_policy.type_ == RestartType::Always,
        ),
        PodState::Failed { finished, reason } => exited(
            cx,
            &name,
            finished,
            &reason,
            cx.app.spec.restart_policy.type_ != RestartType::Never,
        ),
    }
}

fn create(cx: &mut Ctx<'_>, desired: Pod, name: &str) {
    cx.actions.push(Action::CreatePod(Box::new(desired)));
    cx.status.attempts += 1;
    if cx.status.start_time.is_none() {
        cx.status.start_time = Some(Time(cx.now));
    }
    cx.status.phase = Some(Phase::Pending);
    cx.status.message = Some(format!(
        "starting driver pod {name} (attempt {})",
        cx.status.attempts
    ));
    cx.condition(
        ct::DRIVER_READY,
        false,
        "Starting",
        format!("pod {name} was created"),
    );
    cx.event(
        EventKind::Normal,
        "CreatedDriver",
        format!("created driver pod {name} (attempt {})", cx.status.attempts),
    );
    cx.requeue_within(Duration::from_secs(10));
}

/// The driver exited: restart it after a backoff if the policy and retries allow, else finish.
fn exited(
    cx: &mut Ctx<'_>,
    name: &str,
    finished: Option<Timestamp>,
    why: &str,
    restart: bool,
) -> Driver {
    let rp = &cx.app.spec.restart_policy;
    let retries_used = (cx.status.attempts - 1).max(0);
    let success = why == "exited 0";
    cx.condition(
        ct::DRIVER_READY,
        false,
        if success { "Completed" } else { "Failed" },
        format!("driver pod {name} {why}"),
    );
    if restart && retries_used < rp.max_retries {
        let delay = backoff_seconds(
            retries_used,
            rp.backoff_initial_seconds,
            rp.backoff_max_seconds,
        );
        let at = finished.unwrap_or(cx.now).as_second() + delay;
        cx.status.phase = Some(Phase::Restarting);
        cx.status.message = Some(format!(
            "driver attempt {} {why}; retry {} of {} after {delay}s backoff",
            cx.status.attempts,
            retries_used + 1,
            rp.max_retries
        ));
        if cx.now.as_second() >= at {
            cx.actions.push(Action::DeletePod(name.to_string()));
            cx.event(
                EventKind::Warning,
                "RestartingDriver",
                cx.status.message.clone().unwrap_or_default(),
            );
            cx.requeue_within(Duration::from_secs(2));
        } else {
            cx.requeue_within(Duration::from_secs((at - cx.now.as_second()) as u64));
        }
        return Driver::Gone;
    }
    cx.status.phase = Some(if success {
        Phase::Succeeded
    } else {
        Phase::Failed
    });
    cx.status.completion_time = Some(Time(cx.now));
    cx.status.message = Some(if success {
        "the driver finished successfully".to_string()
    } else if restart {
        format!(
            "driver {why}; no retries left after {} attempts",
            cx.status.attempts
        )
    } else {
        format!("driver {why}; restartPolicy is Never")
    });
    Driver::Gone
}
