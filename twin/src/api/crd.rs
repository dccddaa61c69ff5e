//! CustomResourceDefinitions: checked on write, then their kinds are served (discovery, REST,
//! schema defaults and validation, printer columns, status and scale subresources) from the
//! moment the CRD is stored, with `Established` and `NamesAccepted` conditions, as a real
//! apiserver does. Deleting a CRD deletes its objects and stops serving the kind.

use serde_json::{Value, json};

use super::error::{ApiError, Cause};
use super::resources::{Column, ResourceInfo, ScalePaths};
use super::{State, meta};
use crate::store::{GroupResource, Write};

fn required(causes: &mut Vec<Cause>, obj: &Value, path: &[&str]) {
    let mut node = obj;
    for p in path {
        node = &node[*p];
    }
    if node.as_str().is_none_or(str::is_empty) {
        causes.push(Cause {
            reason: "FieldValueRequired",
            field: path.join("."),
            message: "Required value".into(),
        });
    }
}

/// Checks a CRD and sets its status (accepted names, conditions, stored versions).
///
/// # Errors
/// `422` naming the missing or inconsistent field.
pub fn admit(info: &ResourceInfo, crd: &mut Value, name: &str) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    for path in [
        &["spec", "group"][..],
        &["spec", "names", "plural"],
        &["spec", "names", "kind"],
        &["spec", "scope"],
    ] {
        required(&mut causes, crd, path);
    }
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    if causes.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "metadata.name".into(),
            message: format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        });
    }
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let storage: Vec<&Value> = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .collect();
    if versions.is_empty() || storage.len() != 1 {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.versions".into(),
            message: "Invalid value: must have exactly one version marked as storage version"
                .into(),
        });
    }
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            kind: info.qualified_kind(),
            name: name.into(),
            causes,
        });
    }
    let mut names = crd["spec"]["names"].clone();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    if names["singular"].as_str().is_none_or(str::is_empty) {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names["listKind"].as_str().is_none_or(str::is_empty) {
        names["listKind"] = json!(format!("{kind}List"));
    }
    let now = meta::now();
    let condition = |type_: &str, reason: &str, message: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    crd["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": [storage[0]["name"].clone()],
    });
    Ok(())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// The resources a CRD serves (one per served version).
pub fn infos(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let storage = GroupResource::new(&group, &plural);
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != json!(false))
        .map(|v| {
            let subs = &v["subresources"];
            let scale = subs
                .get("scale")
                .filter(|s| s.is_object())
                .map(|s| ScalePaths {
                    spec_replicas: s["specReplicasPath"]
                        .as_str()
                        .unwrap_or(".spec.replicas")
                        .into(),
                    status_replicas: s["statusReplicasPath"]
                        .as_str()
                        .unwrap_or(".status.replicas")
                        .into(),
                    label_selector: s["labelSelectorPath"].as_str().map(String::from),
                });
            let columns = v["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| Column {
                    name: c["name"].as_str().unwrap_or_default().into(),
                    type_: c["type"].as_str().unwrap_or("string").into(),
                    description: c["description"].as_str().unwrap_or_default().into(),
                    json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                    priority: c["priority"].as_i64().unwrap_or(0),
                })
                .collect();
            ResourceInfo {
                group: group.clone(),
                version: v["name"].as_str().unwrap_or_default().into(),
                resource: plural.clone(),
                kind: kind.clone(),
                singular: names["singular"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .unwrap_or_else(|| kind.to_lowercase()),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status: subs.get("status").is_some_and(Value::is_object),
                scale,
                log: false,
                columns,
                schema: v["schema"].get("openAPIV3Schema").cloned(),
                storage: storage.clone(),
                custom: true,
            }
        })
        .collect()
}

/// Serves the CRD's kinds (replacing what an earlier version of it served).
pub fn register(state: &State, crd: &Value) {
    let infos = infos(crd);
    if let Some(first) = infos.first() {
        let storage = first.storage.clone();
        state.resources.set_custom(&storage, infos);
    }
}

/// Deletes every object of the CRD's kind and stops serving it.
pub fn unregister(state: &State, crd: &Value) {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let storage = GroupResource::new(group, plural);
    let (objects, _) = state.store.list(&storage, None);
    for obj in objects {
        let ns = meta::meta_str(&obj, "namespace").unwrap_or_default();
        let name = meta::meta_str(&obj, "name").unwrap_or_default();
        let _ = state
            .store
            .write::<()>(&storage, ns, name, |_, _| Ok(Write::Delete));
    }
    state.resources.set_custom(&storage, Vec::new());
}
