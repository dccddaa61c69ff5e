//! The `scale` subresource (`autoscaling/v1` Scale), mapped through the resource's
//! `specReplicasPath`, `statusReplicasPath` and `labelSelectorPath` (a CRD's, or `spec.replicas`,
//! `status.replicas` and `spec.selector` for Deployments and ReplicaSets), so
//! `kubectl scale sba/NAME --replicas=N` writes the app's executor count.

use std::sync::Arc;

use serde_json::{Value, json};

use super::error::ApiError;
use super::ops::{self, PatchType, WriteOpts};
use super::resources::{ResourceInfo, ScalePaths};
use super::table::json_path;
use super::{State, patch};

fn paths(info: &ResourceInfo) -> Result<&ScalePaths, ApiError> {
    info.scale
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("{}/scale", info.qualified_resource()), ""))
}

fn selector(info: &ResourceInfo, obj: &Value) -> Option<String> {
    let p = info.scale.as_ref()?;
    match &p.label_selector {
        Some(path) => json_path(obj, path)
            .and_then(Value::as_str)
            .map(String::from),
        None => {
            let labels = obj["spec"]["selector"]["matchLabels"].as_object()?;
            Some(
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }
    }
}

/// The Scale of an object.
///
/// # Errors
/// `404` when the resource has no scale subresource.
pub fn scale_of(info: &ResourceInfo, obj: &Value) -> Result<Value, ApiError> {
    let p = paths(info)?;
    let m = &obj["metadata"];
    let mut status = json!({"replicas": json_path(obj, &p.status_replicas).and_then(Value::as_i64).unwrap_or(0)});
    if let Some(sel) = selector(info, obj) {
        status["selector"] = json!(sel);
    }
    Ok(json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": json_path(obj, &p.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": status,
    }))
}

fn set_path(obj: &mut Value, path: &str, value: Value) {
    let parts: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let mut node = obj;
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = json!({});
        }
        let map = node.as_object_mut().expect("object");
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        node = map.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
}

/// Writes a new Scale: `body` replaces it (`PUT`) or patches it (`patch = Some(type)`).
///
/// # Errors
/// `422` for a negative or missing `spec.replicas`; what admission refuses.
#[allow(clippy::too_many_arguments)]
pub fn write(
    state: &State,
    info: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    body: Value,
    kind: Option<PatchType>,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    let p = paths(info)?.clone();
    let qualified = info.qualified_kind();
    let info2 = info.clone();
    let (obj, _) = ops::modify(state, info, ns, name, "scale", opts, move |obj| {
        let mut scale = scale_of(&info2, obj)?;
        match kind {
            None => scale = body,
            Some(PatchType::Json) => patch::json_patch(&mut scale, &body)?,
            Some(PatchType::Strategic) => {
                patch::strategic(&mut scale, &body, patch::ListKeys::new(None))
            }
            Some(_) => patch::merge(&mut scale, &body),
        }
        if let Some(rv) = scale["metadata"]["resourceVersion"].as_str()
            && Some(rv) != obj["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            )));
        }
        let replicas = scale["spec"]["replicas"]
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "Scale.autoscaling",
                    name,
                    "spec.replicas",
                    format!(
                        "Invalid value: {}: must be greater than or equal to 0",
                        scale["spec"]["replicas"]
                    ),
                )
            })?;
        set_path(obj, &p.spec_replicas, json!(replicas));
        Ok(())
    })?;
    scale_of(info, &obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_paths_map_replicas_and_selector() {
        let info = ResourceInfo {
            scale: Some(ScalePaths {
                spec_replicas: ".spec.executor.replicas".into(),
                status_replicas: ".status.executors.ready".into(),
                label_selector: Some(".status.executors.selector".into()),
            }),
            ..crate::api::resources::Resources::default()
                .lookup("apps", "v1", "deployments")
                .unwrap()
                .as_ref()
                .clone()
        };
        let obj = json!({"metadata": {"name": "a"}, "spec": {"executor": {"replicas": 3}},
            "status": {"executors": {"ready": 2, "selector": "app=a"}}});
        let s = scale_of(&info, &obj).unwrap();
        assert_eq!(
            (
                s["spec"]["replicas"].clone(),
                s["status"]["replicas"].clone()
            ),
            (json!(3), json!(2))
        );
        assert_eq!(s["status"]["selector"], "app=a");
        let mut o = json!({});
        set_path(&mut o, ".spec.executor.replicas", json!(5));
        assert_eq!(o["spec"]["executor"]["replicas"], 5);
    }
}
