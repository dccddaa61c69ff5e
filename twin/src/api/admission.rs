//! Admission on every write, per kind: CRD-defined objects are pruned, defaulted and validated
//! against their schema and CEL rules; pods, namespaces and services get the apiserver's
//! defaults and status on create; a pod's spec is immutable but for the fields the apiserver
//! lets change; CustomResourceDefinitions are checked and (after the write) served.

use serde_json::{Value, json};

use super::error::{ApiError, Cause};
use super::ops::{FieldValidation, WriteOpts};
use super::resources::ResourceInfo;
use super::{State, crd, meta, schema};
use crate::store::GroupResource;

/// `404` unless the namespace exists; `403` while it is being deleted.
///
/// # Errors
/// As above.
pub fn require_namespace(state: &State, ns: &str) -> Result<(), ApiError> {
    match state
        .store
        .get(&GroupResource::new("", "namespaces"), "", ns)
    {
        None => Err(ApiError::not_found("namespaces", ns)),
        Some(n) if meta::meta_str(&n, "deletionTimestamp").is_some() => {
            Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Seconds a deletion waits: pods bound to a node get their grace period (the kubelet then
/// confirms with grace 0); everything else, and unscheduled or finished pods, go at once.
pub fn grace_period(info: &ResourceInfo, obj: &Value, requested: Option<i64>) -> i64 {
    if !(info.group.is_empty() && info.resource == "pods") {
        return 0;
    }
    let scheduled = obj["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !scheduled || finished {
        return 0;
    }
    requested
        .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
        .max(0)
}

/// Validates and defaults `new` (the object about to be stored).
///
/// # Errors
/// `422 Invalid` with a cause per bad field; `400` for unknown fields under
/// `fieldValidation=Strict`.
pub fn admit(
    state: &State,
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    opts: &WriteOpts,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    let _ = state;
    let name = meta::meta_str(new, "name").unwrap_or_default().to_string();
    if old.is_none() && info.status && info.resource != "nodes" {
        // Clients do not write status on create (the apiserver's PrepareForCreate).
        if let Some(m) = new.as_object_mut() {
            m.remove("status");
        }
    }
    if let Some(schema) = &info.schema {
        let mut unknown = Vec::new();
        schema::prune(schema, new, "", &mut unknown);
        match opts.field_validation {
            FieldValidation::Strict if !unknown.is_empty() => {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|u| format!("unknown field \"{u}\""))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "{} in body: strict decoding error: {}",
                    info.kind,
                    list.join(", ")
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")))
            }
            _ => {}
        }
        *new = schema::default(schema, new);
        let mut causes = Vec::new();
        schema::validate(schema, new, "", &mut causes);
        if causes.is_empty() {
            causes = schema::cel(schema, new, old);
        }
        if !causes.is_empty() {
            return Err(ApiError::Invalid {
                kind: info.qualified_kind(),
                name,
                causes,
            });
        }
        return Ok(());
    }
    match (info.group.as_str(), info.resource.as_str()) {
        ("", "pods") => admit_pod(info, old, new, &name),
        ("", "namespaces") if old.is_none() => {
            new["status"] = json!({"phase": "Active"});
            Ok(())
        }
        ("", "services") => {
            admit_service(old, new);
            Ok(())
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => crd::admit(info, new, &name),
        _ => Ok(()),
    }
}

fn admit_pod(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    name: &str,
) -> Result<(), ApiError> {
    let invalid = |field: &str, message: String| ApiError::Invalid {
        kind: info.qualified_kind(),
        name: name.to_string(),
        causes: vec![Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message,
        }],
    };
    let containers = new["spec"]["containers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    if containers == 0 {
        return Err(ApiError::Invalid {
            kind: info.qualified_kind(),
            name: name.into(),
            causes: vec![Cause {
                reason: "FieldValueRequired",
                field: "spec.containers".into(),
                message: "Required value".into(),
            }],
        });
    }
    let spec = &mut new["spec"];
    for (field, default) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("serviceAccountName", json!("default")),
    ] {
        if spec.get(field).is_none_or(Value::is_null) {
            spec[field] = default;
        }
    }
    if let Some(cs) = spec["containers"].as_array_mut() {
        for c in cs {
            if c.get("imagePullPolicy").is_none_or(Value::is_null) {
                let image = c["image"].as_str().unwrap_or_default();
                let latest = !image.rsplit('/').next().unwrap_or(image).contains(':')
                    || image.ends_with(":latest");
                c["imagePullPolicy"] = json!(if latest { "Always" } else { "IfNotPresent" });
            }
        }
    }
    match old {
        None => {
            new["status"] = json!({"phase": "Pending", "qosClass": qos_class(&new["spec"])});
            Ok(())
        }
        Some(old) => {
            // The apiserver allows changing only images, activeDeadlineSeconds, tolerations
            // (additions) and terminationGracePeriodSeconds of a live pod; binding sets nodeName.
            let frozen = |spec: &Value| {
                let mut s = spec.clone();
                if let Some(m) = s.as_object_mut() {
                    for k in [
                        "activeDeadlineSeconds",
                        "tolerations",
                        "terminationGracePeriodSeconds",
                        "nodeName",
                    ] {
                        m.remove(k);
                    }
                }
                for list in ["containers", "initContainers"] {
                    if let Some(cs) = s[list].as_array_mut() {
                        for c in cs {
                            if let Some(m) = c.as_object_mut() {
                                m.remove("image");
                            }
                        }
                    }
                }
                s
            };
            if frozen(&old["spec"]) != frozen(&new["spec"]) {
                return Err(invalid(
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds`".into(),
                ));
            }
            let was = old["spec"]["nodeName"].as_str().unwrap_or_default();
            let now = new["spec"]["nodeName"].as_str().unwrap_or_default();
            if !was.is_empty() && was != now {
                return Err(invalid(
                    "spec.nodeName",
                    format!(
                        "Invalid value: {now:?}: field is immutable once the pod is bound to {was}"
                    ),
                ));
            }
            Ok(())
        }
    }
}

/// `Guaranteed` when every container's requests equal its limits for cpu and memory,
/// `BestEffort` without any, else `Burstable`.
fn qos_class(spec: &Value) -> &'static str {
    let cs: Vec<&Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let any = cs.iter().any(|c| {
        c["resources"]["requests"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
            || c["resources"]["limits"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = cs.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][r];
            !limit.is_null()
                && (c["resources"]["requests"][r].is_null()
                    || &c["resources"]["requests"][r] == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn admit_service(old: Option<&Value>, new: &mut Value) {
    let spec = &mut new["spec"];
    if spec.get("type").is_none_or(Value::is_null) {
        spec["type"] = json!("ClusterIP");
    }
    if spec.get("sessionAffinity").is_none_or(Value::is_null) {
        spec["sessionAffinity"] = json!("None");
    }
    let kept = old
        .and_then(|o| o["spec"]["clusterIP"].as_str())
        .map(String::from);
    if spec["clusterIP"].as_str().is_none_or(str::is_empty) {
        // A virtual address for display only: the twin routes nothing (see docs/kubernetes.md).
        let ip = kept.unwrap_or_else(|| {
            use rand::Rng;
            let mut r = rand::rng();
            format!(
                "10.96.{}.{}",
                r.random_range(0..=255u8),
                r.random_range(1..=254u8)
            )
        });
        spec["clusterIP"] = json!(ip);
    }
    let ip = spec["clusterIP"].clone();
    spec["clusterIPs"] = json!([ip]);
}

/// Side effects of a stored write: a CustomResourceDefinition starts (or changes) serving.
pub fn after_write(state: &State, info: &ResourceInfo, obj: &Value, _created: bool) {
    if info.group == "apiextensions.k8s.io" && info.resource == "customresourcedefinitions" {
        crd::register(state, obj);
    }
}

/// Side effects of a delete: a deleted CustomResourceDefinition takes its objects with it.
pub fn after_delete(state: &State, info: &ResourceInfo, obj: &Value) {
    if info.group == "apiextensions.k8s.io" && info.resource == "customresourcedefinitions" {
        let name = meta::meta_str(obj, "name").unwrap_or_default();
        if state.store.get(&info.storage, "", name).is_none() {
            crd::unregister(state, obj);
        }
    }
}
