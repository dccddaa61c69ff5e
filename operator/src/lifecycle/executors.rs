//! Executor pods' part of the lifecycle: create the missing indices together with their driver,
//! remove indices above `replicas` and executors of an earlier driver attempt, replace failed
//! pods with exponential backoff up to `executor.maxFailures` (disrupted ones at once, not
//! counted), replace pods whose spec changed, patch label and annotation edits in place.

use std::collections::BTreeSet;
use std::time::Duration;

use neptune_crds::labels as l;
use neptune_crds::v1alpha1::condition_types as ct;

use super::driver::Driver;
use super::failures::record_failure;
use super::{Action, Counted, Ctx, EventKind, Observed, metadata};
use crate::build::{self, Role};
use crate::pods::{PodState, annotation, attempt, backoff_seconds, state, stuck_reason};
use crate::validate::Validated;

/// Deletes every executor pod not already terminating (never counted as failures).
pub(crate) fn delete_all(cx: &mut Ctx<'_>, observed: &Observed, why: &str) {
    let mut n = 0;
    for pod in &observed.executors {
        if pod.metadata.deletion_timestamp.is_some() {
            cx.terminating(pod, "executor");
        } else if let Some(name) = &pod.metadata.name {
            cx.actions.push(Action::delete(name.clone()));
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

/// Reconciles executor pods of driver attempt `current` against `spec.executor.replicas`.
pub(crate) fn reconcile(
    cx: &mut Ctx<'_>,
    observed: &Observed,
    v: &Validated,
    driver: Driver,
    current: i32,
) {
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
            "executors start with the next driver",
        );
        return;
    }
    let template = build::executor_pod(cx.app, v, 0, current);
    let hash = annotation(&template, l::SPEC_HASH).map(str::to_string);
    let mut present = BTreeSet::new();
    let mut ready = 0;
    let mut removed = 0;
    let mut previous_attempt = 0;
    for pod in &observed.executors {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let st = state(pod);
        let index = build::executor_index(pod).filter(|i| (0..replicas).contains(i));
        let Some(index) = index else {
            if st == PodState::Terminating {
                cx.terminating(pod, "executor");
            } else {
                cx.actions.push(Action::delete(name));
                removed += 1;
            }
            continue;
        };
        // Its name is taken until it is gone, whatever its state.
        present.insert(index);
        if st == PodState::Terminating {
            cx.terminating(pod, "executor");
            continue;
        }
        if attempt(pod).unwrap_or(current) != current {
            cx.actions.push(Action::delete(name));
            previous_attempt += 1;
            continue;
        }
        let stale = annotation(pod, l::SPEC_HASH).map(str::to_string) != hash;
        match st {
            PodState::Ready | PodState::NotReady if stale => {
                cx.actions.push(Action::delete(name.clone()));
                cx.event(
                    EventKind::Normal,
                    "SpecChanged",
                    format!("replacing executor pod {name}: its spec changed"),
                );
            }
            PodState::Ready | PodState::NotReady => {
                let desired = build::executor_pod(cx.app, v, index, current);
                if let Some(patch) = metadata::diff(&desired, pod) {
                    cx.event(
                        EventKind::Normal,
                        "UpdatedMetadata",
                        format!(
                            "updated labels/annotations {:?} of executor pod {name}",
                            patch.keys()
                        ),
                    );
                    cx.actions.push(Action::PatchPodMetadata {
                        name: name.clone(),
                        patch,
                    });
                }
                if st == PodState::Ready {
                    ready += 1;
                } else {
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
            }
            PodState::Succeeded { .. } => {
                // Exited 0 while its driver runs (the driver told it to stop): replace it, no
                // failure.
                cx.actions.push(Action::delete(name.clone()));
                cx.event(
                    EventKind::Normal,
                    "ReplacingExecutor",
                    format!("executor pod {name} exited 0 while its driver runs; replacing it"),
                );
            }
            PodState::Failed { finished, failure } => {
                record_failure(cx, pod, Role::Executor, finished, &failure);
                let reason = failure.summary();
                if !failure.counted {
                    cx.actions.push(Action::delete(name.clone()));
                    cx.event(
                        EventKind::Warning,
                        "ReplacingExecutor",
                        format!("executor pod {name} was disrupted ({reason}); replacing it, not counted as a failure"),
                    );
                    continue;
                }
                let failures = cx.status.executor_failures;
                if failures >= spec.max_failures {
                    cx.degraded.push(format!(
                        "ExecutorFailureLimit: executor pod {name} failed: {reason}; {failures} executor failures reached executor.maxFailures, not replacing"
                    ));
                    continue;
                }
                let rp = &cx.app.spec.restart_policy;
                let delay =
                    backoff_seconds(failures, rp.backoff_initial_seconds, rp.backoff_max_seconds);
                let at = finished.unwrap_or(cx.now).as_second() + delay;
                if cx.now.as_second() >= at {
                    cx.actions.push(Action::DeletePod {
                        name: name.clone(),
                        counted: Some(Counted::Executor),
                    });
                    cx.status.executor_failures += 1;
                    cx.event(
                        EventKind::Warning,
                        "ReplacingExecutor",
                        format!(
                            "executor pod {name} failed: {reason}; replacing it (failure {} of at most {})",
                            failures + 1,
                            spec.max_failures
                        ),
                    );
                    cx.requeue_within(Duration::from_secs(2));
                } else {
                    cx.requeue_within(Duration::from_secs((at - cx.now.as_second()) as u64));
                }
            }
            PodState::Terminating => {}
        }
    }
    if previous_attempt > 0 {
        cx.event(
            EventKind::Normal,
            "DeletedExecutors",
            format!(
                "deleted {previous_attempt} executor pods of an earlier driver attempt; attempt {current} gets new ones"
            ),
        );
        cx.requeue_within(Duration::from_secs(2));
    }
    let mut created = 0;
    for index in (0..replicas).filter(|i| !present.contains(i)) {
        cx.actions
            .push(Action::CreatePod(Box::new(build::executor_pod(
                cx.app, v, index, current,
            ))));
        created += 1;
    }
    // A change of `replicas` while the driver runs is a scale; new executors of a new driver
    // are a start.
    let scaled = observed.driver.is_some() && previous_desired != replicas;
    if scaled && (created > 0 || removed > 0) {
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
