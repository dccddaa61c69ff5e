//! What a pod template may not do: set what the operator owns (the main container's image,
//! command, args, ports, probes, cpu and memory; the pod's restart policy, name and owner), or
//! contradict another field of the spec (a label, env var, node selector or service account
//! with a different value, a volume or mount path the operator uses). Each refusal names the
//! template field.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use neptune_crds::v1alpha1::{PodSpec as SbaPodSpec, StreamBatchAppSpec};

use crate::build::{OPERATOR_ENV, TLS_MOUNT, TLS_VOLUME, TMP_MOUNT, TMP_VOLUME};
use crate::validate::FieldError;

/// Fields of the main container a template may set; the operator sets the rest.
const MAIN_ALLOWED: &[&str] = &[
    "name",
    "env",
    "envFrom",
    "volumeMounts",
    "volumeDevices",
    "resources",
    "securityContext",
    "lifecycle",
];

/// Label prefixes that belong to the operator.
const RESERVED_LABELS: &[&str] = &["neptune.dev/", "app.kubernetes.io/"];

/// Annotations the operator sets when `monitoring.annotatePods` is on.
const SCRAPE_ANNOTATIONS: &[&str] = &[
    "prometheus.io/scrape",
    "prometheus.io/port",
    "prometheus.io/path",
];

/// Checks `template` for the pod whose main container is `main`; `prefix` is the spec field
/// of that pod (`spec.driver`), `pod` its resources and placement.
pub fn check(
    template: &PodTemplateSpec,
    main: &str,
    prefix: &str,
    pod: &SbaPodSpec,
    spec: &StreamBatchAppSpec,
) -> Vec<FieldError> {
    let mut errs = Errs(Vec::new(), format!("{prefix}.podTemplate"));
    if let Some(meta) = &template.metadata {
        let value = serde_json::to_value(meta).unwrap_or_default();
        for key in value.as_object().into_iter().flat_map(|m| m.keys()) {
            if key != "labels" && key != "annotations" {
                errs.push(
                    &format!("metadata.{key}"),
                    "set by the operator; a template's metadata takes labels and annotations only",
                );
            }
        }
        for (k, v) in meta.labels.iter().flatten() {
            let at = format!("metadata.labels[{k}]");
            if RESERVED_LABELS.iter().any(|p| k.starts_with(p)) {
                errs.push(
                    &at,
                    "keys under neptune.dev/ and app.kubernetes.io/ belong to the operator",
                );
            } else if let Some(other) = pod.labels.get(k).filter(|o| *o != v) {
                errs.push(
                    &at,
                    format!("`{v}` conflicts with {prefix}.labels[{k}] = `{other}`"),
                );
            }
        }
        for (k, v) in meta.annotations.iter().flatten() {
            let at = format!("metadata.annotations[{k}]");
            if k.starts_with("neptune.dev/") {
                errs.push(&at, "keys under neptune.dev/ belong to the operator");
            } else if spec.monitoring.annotate_pods && SCRAPE_ANNOTATIONS.contains(&k.as_str()) {
                errs.push(
                    &at,
                    "set by the operator while spec.monitoring.annotatePods is true",
                );
            } else if let Some(other) = pod.annotations.get(k).filter(|o| *o != v) {
                errs.push(
                    &at,
                    format!("`{v}` conflicts with {prefix}.annotations[{k}] = `{other}`"),
                );
            }
        }
    }
    let Some(t) = &template.spec else {
        return errs.0;
    };
    if let Some(p) = &t.restart_policy {
        errs.push(
            "spec.restartPolicy",
            format!("`{p}`: set by the operator (pods never restart in place; spec.restartPolicy decides)"),
        );
    }
    if t.ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(
            "spec.ephemeralContainers",
            "cannot be set when a pod is created",
        );
    }
    for (field, value) in [
        ("spec.serviceAccountName", &t.service_account_name),
        ("spec.serviceAccount", &t.service_account),
    ] {
        if let (Some(v), Some(ours)) = (value, &spec.service_account_name)
            && v != ours
        {
            errs.push(
                field,
                format!("`{v}` conflicts with spec.serviceAccountName = `{ours}`"),
            );
        }
    }
    for (k, v) in t.node_selector.iter().flatten() {
        if let Some(other) = pod.node_selector.get(k).filter(|o| *o != v) {
            errs.push(
                &format!("spec.nodeSelector[{k}]"),
                format!("`{v}` conflicts with {prefix}.nodeSelector[{k}] = `{other}`"),
            );
        }
    }
    let mut volumes = BTreeSet::from([TMP_VOLUME.to_string(), TLS_VOLUME.to_string()]);
    for (i, v) in t.volumes.iter().flatten().enumerate() {
        if !volumes.insert(v.name.clone()) {
            errs.push(
                &format!("spec.volumes[{i}].name"),
                format!(
                    "`{}` is used twice (`{TMP_VOLUME}` and `{TLS_VOLUME}` are the operator's)",
                    v.name
                ),
            );
        }
    }
    let mut names = BTreeSet::from([main.to_string()]);
    for (i, c) in t.init_containers.iter().flatten().enumerate() {
        if !names.insert(c.name.clone()) {
            errs.push(
                &format!("spec.initContainers[{i}].name"),
                format!("`{}` is already a container name", c.name),
            );
        }
    }
    for (i, c) in t.containers.iter().enumerate() {
        if c.name == main {
            check_main(c, i, main, prefix, pod, &mut errs);
        } else if !names.insert(c.name.clone()) {
            errs.push(
                &format!("spec.containers[{i}].name"),
                format!("`{}` is already a container name", c.name),
            );
        }
    }
    errs.0
}

fn check_main(
    c: &k8s_openapi::api::core::v1::Container,
    i: usize,
    main: &str,
    prefix: &str,
    pod: &SbaPodSpec,
    errs: &mut Errs,
) {
    let at = |f: &str| format!("spec.containers[{i}].{f}");
    let value = serde_json::to_value(c).unwrap_or_default();
    for key in value.as_object().into_iter().flat_map(|m| m.keys()) {
        if !MAIN_ALLOWED.contains(&key.as_str()) {
            errs.push(
                &at(key),
                format!(
                    "set by the operator on the `{main}` container; a template may add {}",
                    MAIN_ALLOWED[1..].join(", ")
                ),
            );
        }
    }
    let spec_env: BTreeMap<&str, _> = pod.env.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut seen = BTreeSet::new();
    for (j, e) in c.env.iter().flatten().enumerate() {
        let f = at(&format!("env[{j}]"));
        if OPERATOR_ENV.contains(&e.name.as_str()) {
            errs.push(&f, format!("`{}` is set by the operator", e.name));
        } else if spec_env.contains_key(e.name.as_str()) {
            errs.push(&f, format!("`{}` is already set by {prefix}.env", e.name));
        } else if !seen.insert(e.name.as_str()) {
            errs.push(&f, format!("`{}` is set twice", e.name));
        }
    }
    let mut paths = BTreeSet::from([TMP_MOUNT.to_string(), TLS_MOUNT.to_string()]);
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        if !paths.insert(m.mount_path.trim_end_matches('/').to_string()) {
            errs.push(
                &at(&format!("volumeMounts[{j}].mountPath")),
                format!(
                    "`{}` is mounted twice (the operator mounts {TMP_MOUNT} and {TLS_MOUNT})",
                    m.mount_path
                ),
            );
        }
    }
    if let Some(r) = &c.resources {
        for (kind, map) in [("limits", &r.limits), ("requests", &r.requests)] {
            for key in map.iter().flat_map(|m| m.keys()) {
                if key == "cpu" || key == "memory" {
                    let from = if key == "cpu" { "cores" } else { "memory" };
                    errs.push(
                        &at(&format!("resources.{kind}.{key}")),
                        format!("set by the operator from {prefix}.{from}"),
                    );
                }
            }
        }
    }
}

/// Errors under one template field.
struct Errs(Vec<FieldError>, String);

impl Errs {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .push(FieldError::new(&format!("{}.{field}", self.1), message));
    }
}
