//! Discovery: `/version`, legacy discovery (`/api`, `/api/v1`, `/apis`, `/apis/<group>`,
//! `/apis/<group>/<version>`) and aggregated discovery (`apidiscovery.k8s.io/v2`
//! `APIGroupDiscoveryList`, which kubectl asks for first and which saves it one request per
//! group version). Both are derived from the live resource table, so a CRD shows up as soon as
//! it is stored.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::resources::{ResourceInfo, Resources};

/// The Kubernetes version the twin claims (the API subset it serves follows 1.35).
pub const VERSION: (&str, &str) = ("1", "35");

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": VERSION.0, "minor": VERSION.1,
        "gitVersion": format!("v{}.{}.0-neptune-twin", VERSION.0, VERSION.1),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "none (neptune cluster twin)", "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// Group → versions, in table order (built-ins first; `v1`-style preferred = first listed).
fn groups(resources: &Resources) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in resources.all() {
        let versions = out.entry(r.group.clone()).or_default();
        if !versions.contains(&r.version) {
            versions.push(r.version.clone());
        }
    }
    out
}

/// `/api`.
pub fn core_versions(server: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]})
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`.
pub fn group_list(resources: &Resources) -> Value {
    let groups: Vec<Value> = groups(resources)
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, if served.
pub fn group(resources: &Resources, name: &str) -> Option<Value> {
    let groups = groups(resources);
    let vs = groups.get(name).filter(|_| !name.is_empty())?;
    let mut g = group_json(name, vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

fn of_version(
    resources: &Resources,
    group: &str,
    version: &str,
) -> Vec<std::sync::Arc<ResourceInfo>> {
    resources
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

/// Subresources: (name, kind, group, version, verbs).
fn subresources(
    r: &ResourceInfo,
) -> Vec<(&'static str, String, String, String, Vec<&'static str>)> {
    let mut out = Vec::new();
    if r.status {
        out.push((
            "status",
            r.kind.clone(),
            r.group.clone(),
            r.version.clone(),
            vec!["get", "patch", "update"],
        ));
    }
    if r.scale.is_some() {
        out.push((
            "scale",
            "Scale".into(),
            "autoscaling".into(),
            "v1".into(),
            vec!["get", "patch", "update"],
        ));
    }
    if r.log {
        out.push((
            "log",
            r.kind.clone(),
            r.group.clone(),
            r.version.clone(),
            vec!["get"],
        ));
    }
    if r.group.is_empty() && r.resource == "pods" {
        out.push((
            "binding",
            "Binding".into(),
            String::new(),
            "v1".into(),
            vec!["create"],
        ));
        out.push((
            "eviction",
            "Eviction".into(),
            "policy".into(),
            "v1".into(),
            vec!["create"],
        ));
    }
    out
}

/// `/api/v1`, `/apis/<group>/<version>`, if served.
pub fn resource_list(resources: &Resources, group: &str, version: &str) -> Option<Value> {
    let rs = of_version(resources, group, version);
    if rs.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in &rs {
        list.push(json!({
            "name": r.resource, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": r.verbs(), "shortNames": r.short_names, "categories": r.categories,
        }));
        for (sub, kind, g, v, verbs) in subresources(r) {
            let mut e = json!({"name": format!("{}/{sub}", r.resource), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs});
            if g != r.group || v != r.version {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            list.push(e);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

/// The aggregated form of `/api` (`core = true`) or `/apis`.
pub fn aggregated(resources: &Resources, core: bool) -> Value {
    let items: Vec<Value> = groups(resources)
        .iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| {
                    let rs: Vec<Value> = of_version(resources, g, v)
                        .iter()
                        .map(|r| {
                            let subs: Vec<Value> = subresources(r)
                                .into_iter()
                                .map(|(sub, kind, sg, sv, verbs)| json!({"subresource": sub,
                                    "responseKind": {"group": sg, "version": sv, "kind": kind}, "verbs": verbs}))
                                .collect();
                            json!({
                                "resource": r.resource,
                                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.singular, "verbs": r.verbs(),
                                "shortNames": r.short_names, "categories": r.categories, "subresources": subs,
                            })
                        })
                        .collect();
                    json!({"version": v, "resources": rs, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// The Content-Type of aggregated discovery, when `accept` asks for it.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|a| {
        a.contains("as=APIGroupDiscoveryList")
            && a.contains("g=apidiscovery.k8s.io")
            && a.contains("v=v2")
            && !a.contains("v=v2beta1")
    })
}

/// Response Content-Type of aggregated discovery.
pub const AGGREGATED_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
