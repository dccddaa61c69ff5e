//! Executor pods' part of the lifecycle: create the missing indices once the driver is Ready,
//! remove indices above `replicas`, replace failed pods with exponential backoff up to
//! `executor.maxFailures`, replace pods whose spec changed.

use std::collections::BTreeSet;
use std::time::Duration;

use neptune_crds::labels as l;
use neptune_crds::v1alpha1::condition_types as ct;

use super::driver::Driver;
use super::{Action, Ctx, EventKind, Observed};
use crate::build;
use crate::pods::{PodState, annotation, backoff_seconds, state, stuck_reason};
use crate::validate::Sizes;

/// Deletes every executor pod not already terminating.
pub(crate) fn delete_all(cx: &mut Ctx<'_>, observed: &Observed, why: &str) {
    let mut n = 0;
    for pod in &observed.executors {
        if pod.metadata.deletion_timestamp.is_none()
            && let Some(name) = &pod.metadata.name
        {
            cx.actions.push(Action::DeletePod(name.clone()));
            n += 1;
        }
    }
    if n > 0 {
        cx.event(
            EventKind::Normal,
            "DeletedExecutors",
            format!("deleted {n} executor pods: {why}"),
        );
    }
    cx.status.executors.ready = 0;
}

/// Reconciles executor pods against `spec.executor.replicas`.
pub(crate) fn reconcile(cx: &mut Ctx<'_>, observed: &Observed, sizes: &Sizes, driver: Driver) {
    let spec = &cx.app.spec.executor;
    let replicas = spec.replicas;
    let previous_desired = cx.status.executors.desired;
    cx.status.executors.desired = replicas;
    if driver == Driver::Gone {
        delete_all(cx, observed, "their driver is gone");
        cx.condition(
            ct::EXECUTORS_READY,
            false,
            "WaitingForDriver",
            "executors start once the driver is Ready",
        );
        return;
    }
    let template = build::executor_pod(cx.app, sizes, 0);
    let hash = annotation(&template, l::SPEC_HASH).map(str::to_string);
    let mut present = BTreeSet::new();
    let mut ready = 0;
    let mut removed = 0;
    for pod in &observed.executors {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let st = state(pod);
        let index = build::executor_index(pod).filter(|i| (0..replicas).contains(i));
        let Some(index) = index else {
            if st != PodState::Terminating {
                cx.actions.push(Action::DeletePod(name));
                removed += 1;
            }
            continue;
        };
        present.insert(index);
        let stale = annotation(pod, l::SPEC_HASH).map(str::to_string) != hash;
        match st {
            PodState::Terminating => cx.requeue_within(Duration::from_secs(2)),
            PodState::Ready | PodState::NotReady if stale => {
                cx.actions.push(Action::DeletePod(name.clone()));
                cx.event(
                    EventKind::Normal,
                    "SpecChanged",
                    format!("replacing executor pod {name}: its spec changed"),
                );
            }
            PodState::Ready => ready += 1,
            PodState::NotReady => {
                if let Some(reason) =
                    stuck_reason(pod, cx.now, cx.app.spec.pending_deadline_seconds)
                {
                    cx.degraded.push(format!(
                        "{reason}: executor pod {name} is not running after {}s",
                        cx.app.spec.pending_deadline_seconds
                    ));
                }
                cx.requeue_within(Duration::from_secs(10));
            }
            PodState::Succeeded { finished } | PodState::Failed { finished, .. } => {
                let reason = match &st {
                    PodState::Failed { reason, .. } => reason.clone(),
                    _ => "exited 0".into(),
                };
                let failures = cx.status.executor_failures;
                if failures >= spec.max_failures {
                    cx.degraded.push(format!(
                        "ExecutorFailureLimit: executor pod {name} {reason}; {failures} executor failures reached executor.maxFailures, not replacing"
                    ));
                    continue;
                }
                let rp = &cx.app.spec.restart_policy;
                let delay =
                    backoff_seconds(failures, rp.backoff_initial_seconds, rp.backoff_max_seconds);
                let at = finished.unwrap_or(cx.now).as_second() + delay;
                if cx.now.as_second() >= at {
                    cx.actions.push(Action::DeletePod(name.clone()));
                    cx.status.executor_failures += 1;
                    cx.event(
                        EventKind::Warning,
                        "ReplacingExecutor",
                        format!(
                            "executor pod {name} {reason}; replacing it (failure {} of at most {})",
                            failures + 1,
                            spec.max_failures
                        ),
                    );
                    cx.requeue_within(Duration::from_secs(2));
                } else {
                    cx.requeue_within(Duration::from_secs((at - cx.now.as_second()) as u64));
                }
            }
        }
    }
    let mut created = 0;
    if driver.is_ready() {
        for index in (0..replicas).filter(|i| !present.contains(i)) {
            cx.actions
                .push(Action::CreatePod(Box::new(build::executor_pod(
                    cx.app, sizes, index,
                ))));
            created += 1;
        }
    }
    if previous_desired != replicas && cx.status.attempts > 0 && (created > 0 || removed > 0) {
        cx.event(
            EventKind::Normal,
            "ScaledExecutors",
            format!("executors {previous_desired} -> {replicas}"),
        );
    } else if created > 0 {
        cx.event(
            EventKind::Normal,
            "CreatedExecutors",
            format!("created {created} executor pods"),
        );
    }
    cx.status.executors.ready = ready;
    let all = ready >= replicas;
    cx.condition(
        ct::EXECUTORS_READY,
        all && driver.is_ready(),
        if all { "AllReady" } else { "NotAllReady" },
        format!("{ready}/{replicas} executors ready"),
    );
}
