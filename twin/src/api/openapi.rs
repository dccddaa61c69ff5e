//! OpenAPI v3 (`/openapi/v3` and one document per group version), enough for kubectl:
//! - every resource's PATCH operation carries `x-kubernetes-group-version-kind` and the
//!   `fieldValidation` query parameter, so kubectl sees the server validates fields and sends
//!   `fieldValidation=Strict` instead of validating client-side (no `--validate=false` needed);
//! - CRD kinds carry their full schema (`kubectl explain sba.spec` works); built-in kinds are
//!   open objects (the twin does not ship the Kubernetes type schemas).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde_json::{Value, json};

use super::discovery::VERSION;
use super::resources::{ResourceInfo, Resources};

/// The group-version path key (`api/v1`, `apis/neptune.dev/v1alpha1`).
fn gv_key(r: &ResourceInfo) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

/// The schema name, reverse-DNS like the apiserver's (`dev.neptune.v1alpha1.StreamBatchApp`).
fn schema_name(r: &ResourceInfo) -> String {
    let group = if r.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else {
        r.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{}", r.version, r.kind)
}

fn document(rs: &[&ResourceInfo]) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for r in rs {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let name = schema_name(r);
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let mut schema = r.schema.clone().unwrap_or_else(|| {
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                   "description": format!("{} (schema not modelled by the cluster twin)", r.kind)})
        });
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(name, schema);
        let query = |n: &str| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
        let op = |action: &str, params: Vec<Value>| {
            json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                   "parameters": params, "responses": ok})
        };
        let base = format!("/{}", gv_key(r));
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.resource)
        } else {
            format!("{base}/{}", r.resource)
        };
        let write_params = || {
            vec![
                query("dryRun"),
                query("fieldManager"),
                query("fieldValidation"),
            ]
        };
        let mut patch_params = write_params();
        patch_params.push(query("force"));
        paths.insert(
            collection.clone(),
            json!({"get": op("list", vec![query("labelSelector"), query("fieldSelector")]),
                   "post": op("post", write_params())}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"get": op("get", vec![]), "put": op("put", write_params()),
                   "patch": op("patch", patch_params), "delete": op("delete", vec![query("gracePeriodSeconds"), query("propagationPolicy")])}),
        );
    }
    json!({"openapi": "3.0.0",
        "info": {"title": "Kubernetes (neptune cluster twin)", "version": format!("v{}.{}.0", VERSION.0, VERSION.1)},
        "paths": paths, "components": {"schemas": schemas}})
}

/// Every group version's document, by path key.
fn documents(resources: &Resources) -> BTreeMap<String, Value> {
    let all = resources.all();
    let mut by_gv: BTreeMap<String, Vec<&ResourceInfo>> = BTreeMap::new();
    for r in &all {
        by_gv.entry(gv_key(r)).or_default().push(r);
    }
    by_gv
        .into_iter()
        .map(|(k, rs)| (k, document(&rs)))
        .collect()
}

fn hash(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: the index of group-version documents (hashes change when a CRD does).
pub fn index(resources: &Resources) -> Value {
    let paths: serde_json::Map<String, Value> = documents(resources)
        .into_iter()
        .map(|(k, doc)| {
            let url = format!("/openapi/v3/{k}?hash={}", hash(&doc));
            (k, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// `/openapi/v3/<gv key>`.
pub fn group_version(resources: &Resources, key: &str) -> Option<Value> {
    documents(resources).remove(key)
}
