//! Failure accounting: the last failure and restart in the status, the counters' reset after a
//! stable period, and taking back the counts of deletions that did not happen.
//!
//! The counters move only with the action that carries a failure out (the deletion of the
//! failed pod, or the app ending `Failed`), so a failed pod is counted once however often it is
//! seen; the status write that follows has a resourceVersion precondition, so a reconcile
//! working from a stale cache cannot write an older count back.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use neptune_crds::labels as l;
use neptune_crds::v1alpha1::{FailureStatus, RestartStatus, StreamBatchAppStatus};

use super::driver::Driver;
use super::{Action, Counted, Ctx, EventKind};
use crate::build::Role;
use crate::pods::Failure;

/// Longest termination message kept in the status (the kubelet caps it at 4 KiB).
const MAX_MESSAGE: usize = 1024;

/// Records `failure` of `pod` as the last failure if it is newer than the one recorded.
pub(crate) fn record_failure(
    cx: &mut Ctx<'_>,
    pod: &Pod,
    role: Role,
    finished: Option<Timestamp>,
    failure: &Failure,
) {
    let time = finished.unwrap_or(cx.now);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    if let Some(last) = &cx.status.last_failure
        && (last.time.0 >= time || (last.pod == name && last.pod_uid == uid))
    {
        return;
    }
    cx.status.last_failure = Some(FailureStatus {
        time: Time(time),
        pod: name,
        pod_uid: uid,
        role: role.as_str().to_string(),
        exit_code: failure.exit_code,
        reason: failure.reason.clone(),
        message: truncate(&failure.message, MAX_MESSAGE),
        counted: failure.counted,
    });
}

/// Records why the current driver attempt ends.
pub(crate) fn record_restart(cx: &mut Ctx<'_>, reason: &str, message: String, counted: bool) {
    cx.status.last_restart = Some(RestartStatus {
        attempt: cx.status.attempts,
        reason: reason.to_string(),
        message,
        time: Time(cx.now),
        counted,
    });
}

/// Whether the end of the current attempt was already explained by the operator.
pub(crate) fn restart_recorded(status: &StreamBatchAppStatus) -> bool {
    status
        .last_restart
        .as_ref()
        .is_some_and(|r| r.attempt == status.attempts)
}

/// Resets both failure counters once the driver has been Ready `resetAfterSeconds` since it
/// became Ready or since the last failure, whichever is later.
pub(crate) fn maybe_reset(cx: &mut Ctx<'_>, driver: Driver) {
    let (d, e) = (cx.status.driver_failures, cx.status.executor_failures);
    if !driver.is_ready() || (d == 0 && e == 0) {
        return;
    }
    let Some(since) = cx.status.running_since.as_ref().map(|t| t.0.as_second()) else {
        return;
    };
    let last = cx
        .status
        .last_failure
        .as_ref()
        .map_or(since, |f| f.time.0.as_second());
    let period = cx.app.spec.restart_policy.reset_after_seconds;
    let left = since.max(last) + period - cx.now.as_second();
    if left > 0 {
        cx.requeue_within(std::time::Duration::from_secs(left as u64));
        return;
    }
    cx.status.driver_failures = 0;
    cx.status.executor_failures = 0;
    cx.event(
        EventKind::Normal,
        "FailuresReset",
        format!(
            "the driver has been Ready for {period}s with no new failure; failure counters reset \
             (driver {d} -> 0, executor {e} -> 0)"
        ),
    );
}

/// Takes the effects of `pending` (actions of the plan that were not carried out) back out of
/// `status`: a driver not created is no new attempt, a failed pod not deleted is not counted
/// (it will be next time).
pub fn revert_unexecuted(
    status: &mut StreamBatchAppStatus,
    previous: &StreamBatchAppStatus,
    pending: &[Action],
) {
    for action in pending {
        match action {
            Action::CreatePod(pod)
                if pod.metadata.labels.as_ref().and_then(|m| m.get(l::ROLE))
                    == Some(&Role::Driver.as_str().to_string()) =>
            {
                status.attempts = previous.attempts;
                status.start_time = previous.start_time.clone();
            }
            Action::DeletePod {
                counted: Some(c), ..
            } => {
                let counter = match c {
                    Counted::Driver => &mut status.driver_failures,
                    Counted::Executor => &mut status.executor_failures,
                };
                *counter = (*counter - 1).max(0);
            }
            _ => {}
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
