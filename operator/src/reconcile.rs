//! One reconcile: fetch (list the app's pods, read the driver's `/status`) → validate and plan
//! (pure, `crate::lifecycle`) → apply (server-side apply, deletes, metadata patches, the status
//! with a resourceVersion precondition, events). A change the apiserver refuses is reported in
//! the status and as a Warning Event, not only in the operator's log.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use neptune_crds::v1alpha1::{StreamBatchAppStatus, condition_types as ct};
use neptune_crds::{FIELD_MANAGER, StreamBatchApp, labels};

use crate::conditions;
use crate::context::Context;
use crate::error::Error;
use crate::lifecycle::{self, Action, EventKind, Observed};
use crate::{build, pods};

/// Reconciles one app, inside a `reconcile` span (app, namespace, generation; the number of
/// actions and the phase are recorded when known) so every log line of one reconcile can be
/// told apart with `RUST_LOG=neptune_operator=debug`. kube-runtime's own "reconciling object"
/// span only covers creating this future, not running it.
///
/// # Errors
/// The first API call that failed; the controller retries after [`Error::retry_after`].
#[tracing::instrument(
    name = "reconcile",
    skip_all,
    fields(
        app = app.metadata.name.as_deref().unwrap_or_default(),
        ns = app.metadata.namespace.as_deref().unwrap_or_default(),
        generation = app.metadata.generation.unwrap_or_default(),
        actions = tracing::field::Empty,
        phase = tracing::field::Empty,
    )
)]
pub async fn reconcile(
    app: Arc<StreamBatchApp>,
    ctx: Arc<Context>,
) -> Result<ControllerAction, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_inner(&app, &ctx).await;
    ctx.metrics
        .duration
        .with_label_values(&[] as &[&str])
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        ctx.metrics.errors.with_label_values(&[e.category()]).inc();
    }
    result
}

/// What the controller does after a failed reconcile.
pub fn error_policy(
    app: Arc<StreamBatchApp>,
    error: &Error,
    _ctx: Arc<Context>,
) -> ControllerAction {
    tracing::warn!(app = %app.name_any(), category = error.category(), "reconcile failed: {error}");
    ControllerAction::requeue(error.retry_after())
}

async fn reconcile_inner(app: &StreamBatchApp, ctx: &Context) -> Result<ControllerAction, Error> {
    let ns = app.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let name = app
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingMetadata("name"))?;
    let observed = fetch(app, ctx, &ns, &name).await?;
    let plan = lifecycle::plan(app, &observed, (ctx.now)(), &ctx.settings);
    let span = tracing::Span::current();
    span.record("actions", plan.actions.len());
    if let Some(phase) = plan.status.phase {
        span.record("phase", phase.as_str());
    }
    tracing::debug!(actions = ?plan.actions.iter().map(Action::describe).collect::<Vec<_>>(), "planned");
    let mut done = 0;
    let mut failed = None;
    for action in &plan.actions {
        match execute(ctx, app, &ns, &name, action, &observed).await {
            Ok(()) => done += 1,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if let Some(err) = failed {
        report_failure(app, ctx, &ns, &name, &plan, done, &err).await;
        return Err(err);
    }
    if app.status.as_ref() != Some(&plan.status) && !plan.actions.contains(&Action::DeleteApp) {
        write_status(ctx, app, &ns, &name, plan.status.clone()).await?;
    }
    for ev in &plan.events {
        publish(ctx, app, ev.kind, &ev.reason, &ev.note).await;
    }
    Ok(ControllerAction::requeue(plan.requeue_after))
}

/// Carries out one action.
async fn execute(
    ctx: &Context,
    app: &StreamBatchApp,
    ns: &str,
    app_name: &str,
    action: &Action,
    observed: &Observed,
) -> Result<(), Error> {
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    match action {
        Action::ApplyService(svc) => {
            let svc_name = svc.metadata.name.clone().unwrap_or_default();
            Api::<Service>::namespaced(ctx.client.clone(), ns)
                .patch(&svc_name, &apply, &Patch::Apply(svc.as_ref()))
                .await
                .map_err(|source| Error::ApplyChild {
                    kind: "Service",
                    name: svc_name,
                    source,
                })?;
        }
        Action::ApplyNetworkPolicy(policy) => {
            let name = policy.metadata.name.clone().unwrap_or_default();
            Api::<NetworkPolicy>::namespaced(ctx.client.clone(), ns)
                .patch(&name, &apply, &Patch::Apply(policy.as_ref()))
                .await
                .map_err(|source| Error::ApplyChild {
                    kind: "NetworkPolicy",
                    name,
                    source,
                })?;
        }
        Action::RotateTls => {
            let issued = neptune_net::issue::issue(app_name, &[], neptune_net::issue::DEFAULT_DAYS)
                .map_err(|e| Error::Credentials(e.to_string()))?;
            let secret = build::tls_secret(app, &issued);
            let secret_name = secret.metadata.name.clone().unwrap_or_default();
            Api::<Secret>::namespaced(ctx.client.clone(), ns)
                .patch(&secret_name, &apply, &Patch::Apply(&secret))
                .await
                .map_err(|source| Error::ApplyChild {
                    kind: "Secret",
                    name: secret_name,
                    source,
                })?;
        }
        Action::CreatePod(pod) => {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            pod_api
                .patch(&pod_name, &apply, &Patch::Apply(pod.as_ref()))
                .await
                .map_err(|source| Error::ApplyChild {
                    kind: "Pod",
                    name: pod_name,
                    source,
                })?;
        }
        Action::PatchPodMetadata { name, patch } => {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PatchParams::default()
            };
            match pod_api
                .patch(name, &params, &Patch::Merge(patch.to_json()))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(Error::PatchPod {
                        name: name.clone(),
                        source,
                    });
                }
            }
        }
        Action::DeletePod { name, .. } => {
            delete_pod(&pod_api, name, &DeleteParams::default()).await?;
        }
        Action::ForceDeletePod { name, uid } => {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            delete_pod(&pod_api, name, &params).await?;
        }
        Action::SetScheduling(changes) => {
            let secret_name = build::tls_secret_name(app_name);
            let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
                .get(&secret_name)
                .await
                .map_err(|e| Error::Scheduling(format!("reading Secret {secret_name}: {e}")))?;
            let token = secret
                .data
                .as_ref()
                .and_then(|d| d.get(neptune_net::creds::TOKEN_FILE))
                .and_then(|t| String::from_utf8(t.0.clone()).ok())
                .ok_or_else(|| {
                    Error::Scheduling(format!("Secret {secret_name} has no admin token"))
                })?;
            let base = driver_http_base(app, ns, app_name, observed.driver.as_ref());
            ctx.driver_status
                .set_scheduling(base, token.trim().to_string(), changes.clone())
                .await
                .map_err(Error::Scheduling)?;
        }
        Action::DeleteApp => {
            let apps: Api<StreamBatchApp> = Api::namespaced(ctx.client.clone(), ns);
            match apps.delete(app_name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::DeleteApp(e)),
            }
        }
    }
    Ok(())
}

async fn delete_pod(api: &Api<Pod>, name: &str, params: &DeleteParams) -> Result<(), Error> {
    match api.delete(name, params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::DeletePod {
            name: name.to_string(),
            source,
        }),
    }
}

/// A change to a child failed: users see it in the status (the `Degraded` condition and the
/// message, with the apiserver's words, e.g. which pod field a 422 refused) and as a Warning
/// Event. The status keeps only the effects of the actions carried out before the failure.
async fn report_failure(
    app: &StreamBatchApp,
    ctx: &Context,
    ns: &str,
    name: &str,
    plan: &lifecycle::Plan,
    done: usize,
    err: &Error,
) {
    let Some(reason) = err.event_reason() else {
        return;
    };
    let previous = app.status.clone().unwrap_or_default();
    let mut status = plan.status.clone();
    lifecycle::revert_unexecuted(&mut status, &previous, &plan.actions[done..]);
    let message = err.to_string();
    conditions::set(
        &mut status.conditions,
        ct::DEGRADED,
        true,
        reason,
        message.clone(),
        app.metadata.generation,
        (ctx.now)(),
    );
    status.message = Some(message.clone());
    if Some(&status) != app.status.as_ref()
        && let Err(e) = write_status(ctx, app, ns, name, status).await
    {
        tracing::warn!(app = %name, "cannot record the failure in the status: {e}");
    }
    publish(ctx, app, EventKind::Warning, reason, &message).await;
}

async fn publish(ctx: &Context, app: &StreamBatchApp, kind: EventKind, reason: &str, note: &str) {
    let event = Event {
        type_: match kind {
            EventKind::Normal => EventType::Normal,
            EventKind::Warning => EventType::Warning,
        },
        reason: reason.to_string(),
        note: Some(truncate(note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &app.object_ref(&())).await {
        tracing::warn!(app = %app.name_any(), "cannot publish event {reason}: {e}");
    }
}

/// Lists the app's pods (only those it owns) and, while the driver is Ready, reads `/status`.
async fn fetch(
    app: &StreamBatchApp,
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Observed, Error> {
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!("{}={name}", labels::APP);
    let list = pod_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::ListPods)?;
    let uid = app.metadata.uid.clone();
    let mut observed = Observed::default();
    for pod in list.items {
        let owned = pod
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref());
        if !owned {
            continue;
        }
        match pod.labels().get(labels::ROLE).map(String::as_str) {
            Some("driver") => observed.driver = Some(pod),
            Some("executor") => observed.executors.push(pod),
            _ => {}
        }
    }
    if observed.driver.as_ref().is_some_and(pods::is_ready) {
        let base = driver_http_base(app, ns, name, observed.driver.as_ref());
        if let Some(report) = ctx.driver_status.report(base).await {
            observed.driver_jobs = Some(report.jobs);
            observed.driver_scheduling = report.scheduling;
        }
    }
    Ok(observed)
}

/// Replaces the status with a resourceVersion precondition: the status was computed from the
/// app as the cache holds it, so if the object changed since (the previous status write not yet
/// in the cache, a spec edit), the write fails with 409 Conflict and the controller retries with
/// the current object instead of writing counters computed from an old one.
async fn write_status(
    ctx: &Context,
    app: &StreamBatchApp,
    ns: &str,
    name: &str,
    status: StreamBatchAppStatus,
) -> Result<(), Error> {
    if app.metadata.resource_version.is_none() {
        return Err(Error::MissingMetadata("resourceVersion"));
    }
    let apps: Api<StreamBatchApp> = Api::namespaced(ctx.client.clone(), ns);
    let mut body = app.clone();
    body.metadata.managed_fields = None;
    body.status = Some(status);
    let params = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_string()),
    };
    apps.replace_status(name, &params, &body)
        .await
        .map_err(Error::PatchStatus)?;
    Ok(())
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

/// The driver's HTTP base URL: its pod IP (what its server binds; no DNS needed, and the
/// operator need not run inside the cluster network's DNS), else the driver Service's name.
fn driver_http_base(app: &StreamBatchApp, ns: &str, name: &str, driver: Option<&Pod>) -> String {
    let port = app.spec.monitoring.driver_port;
    let ip = driver
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
    match (ip, u16::try_from(port)) {
        (Some(ip), Ok(p)) => format!("http://{}", std::net::SocketAddr::new(ip, p)),
        _ => format!(
            "http://{}.{ns}.svc:{port}",
            build::driver_service_name(name)
        ),
    }
}
