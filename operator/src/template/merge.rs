//! Merging a (checked) pod template under the operator's pod spec.
//!
//! - The main container (named `driver` / `executor`) is the operator's; from the template's
//!   container of that name it gains env (after the operator's and the spec's, so `$(POD_IP)`
//!   references resolve), envFrom, volumeMounts (after `/tmp`), volumeDevices, resources other
//!   than cpu and memory (GPUs, ephemeral-storage, hugepages), claims and lifecycle; its
//!   securityContext fields override the operator's hardened defaults one by one.
//! - Other containers are sidecars, appended after the main container; initContainers,
//!   volumes, tolerations and imagePullSecrets are appended after the operator's / spec's.
//! - nodeSelector is the union with the spec's; the pod securityContext, like the container's,
//!   overrides field by field; automountServiceAccountToken, enableServiceLinks and
//!   terminationGracePeriodSeconds override the operator's defaults.
//! - Every other pod field (affinity, priorityClassName, topologySpreadConstraints,
//!   schedulerName, runtimeClassName, dnsConfig, hostAliases, ...) comes from the template; the
//!   operator sets none of them, and whatever it does set wins ([`check`](super::check) has
//!   already refused a template contradicting it).

use std::collections::BTreeMap;

use k8s_openapi::DeepMerge;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

/// The operator's `op` pod spec with `template` merged under it; `op.containers[0]` is the
/// main container, named `main`.
pub fn merge(mut op: PodSpec, template: Option<&PodTemplateSpec>, main: &str) -> PodSpec {
    let Some(mut t) = template.and_then(|t| t.spec.clone()) else {
        return op;
    };
    if let Some(i) = t.containers.iter().position(|c| c.name == main) {
        let user = t.containers.remove(i);
        merge_main(&mut op.containers[0], user);
    }
    op.containers.append(&mut t.containers);
    append(&mut op.volumes, t.volumes.take());
    append(&mut op.tolerations, t.tolerations.take());
    append(&mut op.image_pull_secrets, t.image_pull_secrets.take());
    if let Some(mut selector) = t.node_selector.take() {
        selector.extend(op.node_selector.take().unwrap_or_default());
        op.node_selector = Some(selector);
    }
    if let Some(sc) = t.security_context.take() {
        op.security_context.merge_from(Some(sc));
    }
    for (ours, theirs) in [
        (
            &mut op.automount_service_account_token,
            t.automount_service_account_token.take(),
        ),
        (&mut op.enable_service_links, t.enable_service_links.take()),
    ] {
        if theirs.is_some() {
            *ours = theirs;
        }
    }
    if t.termination_grace_period_seconds.is_some() {
        op.termination_grace_period_seconds = t.termination_grace_period_seconds.take();
    }
    // What is left of the template is what the operator does not set; `merge_from` keeps it
    // and lays every field the operator set on top.
    t.merge_from(op);
    t
}

fn merge_main(m: &mut Container, user: Container) {
    append(&mut m.env, user.env);
    append(&mut m.env_from, user.env_from);
    append(&mut m.volume_mounts, user.volume_mounts);
    append(&mut m.volume_devices, user.volume_devices);
    if let Some(r) = user.resources {
        let ours = m.resources.get_or_insert_with(Default::default);
        for (mine, theirs) in [
            (&mut ours.limits, r.limits),
            (&mut ours.requests, r.requests),
        ] {
            let extra: BTreeMap<_, _> = theirs
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k != "cpu" && k != "memory")
                .collect();
            if !extra.is_empty() {
                mine.get_or_insert_with(Default::default).extend(extra);
            }
        }
        append(&mut ours.claims, r.claims);
    }
    if let Some(sc) = user.security_context {
        m.security_context.merge_from(Some(sc));
    }
    if user.lifecycle.is_some() {
        m.lifecycle = user.lifecycle;
    }
}

fn append<T>(ours: &mut Option<Vec<T>>, theirs: Option<Vec<T>>) {
    let theirs = theirs.unwrap_or_default();
    if !theirs.is_empty() {
        ours.get_or_insert_with(Vec::new).extend(theirs);
    }
}

/// The template's pod labels and annotations (the operator adds its own on top).
pub fn user_metadata(
    template: Option<&PodTemplateSpec>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let meta = template.and_then(|t| t.metadata.as_ref());
    (
        meta.and_then(|m| m.labels.clone()).unwrap_or_default(),
        meta.and_then(|m| m.annotations.clone()).unwrap_or_default(),
    )
}
