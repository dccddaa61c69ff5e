//! One reconcile: fetch (list the app's pods, read the driver's `/status`) → validate and plan
//! (pure, `crate::lifecycle`) → apply (server-side apply, deletes, status, events).

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use neptune_crds::v1alpha1::StreamBatchAppStatus;
use neptune_crds::{FIELD_MANAGER, StreamBatchApp, labels};
use serde_json::json;

use crate::context::Context;
use crate::error::Error;
use crate::lifecycle::{self, Action, EventKind, Observed};
use crate::{build, pods};

/// Reconciles one app.
///
/// # Errors
/// The first API call that failed; the controller retries after [`Error::retry_after`].
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
    let plan = lifecycle::plan(app, &observed, (ctx.now)());
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    for action in &plan.actions {
        match action {
            Action::ApplyService(svc) => {
                let svc_name = svc.metadata.name.clone().unwrap_or_default();
                Api::<Service>::namespaced(ctx.client.clone(), &ns)
                    .patch(&svc_name, &apply, &Patch::Apply(svc.as_ref()))
                    .await
                    .map_err(|source| Error::ApplyChild {
                        kind: "Service",
                        name: svc_name,
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
            Action::DeletePod(pod_name) => {
                match pod_api.delete(pod_name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(source) => {
                        return Err(Error::DeletePod {
                            name: pod_name.clone(),
                            source,
                        });
                    }
                }
            }
            Action::DeleteApp => {
                let apps: Api<StreamBatchApp> = Api::namespaced(ctx.client.clone(), &ns);
                match apps.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(Error::DeleteApp(e)),
                }
            }
        }
    }
    if app.status.as_ref() != Some(&plan.status) && !plan.actions.contains(&Action::DeleteApp) {
        patch_status(ctx, &ns, &name, &plan.status).await?;
    }
    let reference = app.object_ref(&());
    for ev in &plan.events {
        let event = Event {
            type_: match ev.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            },
            reason: ev.reason.clone(),
            note: Some(truncate(&ev.note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(app = %name, "cannot publish event {}: {e}", ev.reason);
        }
    }
    Ok(ControllerAction::requeue(plan.requeue_after))
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
        let base = format!(
            "http://{}.{ns}.svc:{}",
            build::driver_service_name(name),
            app.spec.monitoring.driver_port
        );
        observed.driver_jobs = ctx.driver_status.jobs(base).await;
    }
    Ok(observed)
}

async fn patch_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    status: &StreamBatchAppStatus,
) -> Result<(), Error> {
    let apps: Api<StreamBatchApp> = Api::namespaced(ctx.client.clone(), ns);
    let body = json!({
        "apiVersion": "neptune.dev/v1alpha1",
        "kind": "StreamBatchApp",
        "status": status,
    });
    apps.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
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
