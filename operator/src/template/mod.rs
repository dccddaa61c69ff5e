//! Pod templates (`spec.driver.podTemplate`, `spec.executor.podTemplate`): a core
//! `PodTemplateSpec` merged under what the operator sets, as spark-operator and
//! flink-kubernetes-operator do.
//!
//! The CRD keeps the template opaque (`x-kubernetes-preserve-unknown-fields`), so this module is
//! its only validation: [`parse`] reads it into `PodTemplateSpec`, reporting wrong types and
//! unknown fields by path (a typo such as `volumeMount` would otherwise vanish silently);
//! [`check`] refuses what would conflict with the operator; [`merge`] builds the pod spec.
//! The rules are in docs/kubernetes.md ("Pod templates").

mod check;
mod merge;

pub use check::check;
pub use merge::{merge, user_metadata};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::validate::FieldError;

/// Parses the template at `field` (e.g. `spec.driver.podTemplate`).
///
/// # Errors
/// Every wrong type (the first one serde meets) and every unknown field, each naming its path.
pub fn parse(value: &Value, field: &str) -> Result<PodTemplateSpec, Vec<FieldError>> {
    if !value.is_object() {
        return Err(vec![FieldError::new(
            field,
            "must be an object (a PodTemplateSpec: metadata and spec)",
        )]);
    }
    let mut normalized = normalize(value.clone(), None);
    // `containers` is required in a Pod but optional in a template (only sidecars, or only
    // volumes and affinity).
    if let Some(spec) = normalized.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("containers")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    let parsed: PodTemplateSpec = serde_path_to_error::deserialize(&normalized).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            field.to_string()
        } else {
            format!("{field}.{path}")
        };
        vec![FieldError::new(&at, e.inner().to_string())]
    })?;
    let round_trip = serde_json::to_value(&parsed).unwrap_or_default();
    let mut errs = Vec::new();
    unknown_fields(&normalized, &round_trip, field, &mut errs);
    if errs.is_empty() {
        Ok(parsed)
    } else {
        Err(errs)
    }
}

/// Writes numbers where Kubernetes takes a quantity as strings (`nvidia.com/gpu: 1`, `sizeLimit:
/// 1024`): the apiserver accepts both, `Quantity` deserializes only the string form.
fn normalize(value: Value, key: Option<&str>) -> Value {
    match value {
        Value::Object(map) => {
            let quantities = matches!(key, Some("limits" | "requests" | "overhead"));
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::Number(n) if quantities || k == "sizeLimit" => {
                                Value::String(n.to_string())
                            }
                            other => normalize(other, Some(&k)),
                        };
                        (k, v)
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|v| normalize(v, key)).collect()),
        other => other,
    }
}

/// Keys of `original` that did not survive parsing (unknown to `PodTemplateSpec`), by path.
fn unknown_fields(original: &Value, parsed: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match (original, parsed) {
        (Value::Object(o), Value::Object(p)) => {
            for (k, v) in o {
                let at = format!("{path}.{k}");
                match p.get(k) {
                    Some(pv) => unknown_fields(v, pv, &at, errs),
                    None if v.is_null() => {}
                    None => errs.push(FieldError::new(&at, "unknown field")),
                }
            }
        }
        (Value::Array(o), Value::Array(p)) => {
            for (i, (ov, pv)) in o.iter().zip(p).enumerate() {
                unknown_fields(ov, pv, &format!("{path}[{i}]"), errs);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_and_unknown_fields_name_their_path() {
        let e = parse(
            &json!({"spec": {"containers": [{"name": "x", "image": 3}]}}),
            "spec.driver.podTemplate",
        )
        .unwrap_err();
        assert_eq!(
            e[0].field,
            "spec.driver.podTemplate.spec.containers[0].image"
        );
        let e = parse(
            &json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "c"}, "hostpath": {}}]}}),
            "spec.executor.podTemplate",
        )
        .unwrap_err();
        assert_eq!(
            e[0].field,
            "spec.executor.podTemplate.spec.volumes[0].hostpath"
        );
        assert!(e[0].message.contains("unknown"), "{}", e[0].message);
        let e = parse(&json!("pod"), "spec.driver.podTemplate").unwrap_err();
        assert_eq!(e[0].field, "spec.driver.podTemplate");
    }

    #[test]
    fn numeric_quantities_are_accepted() {
        let t = parse(
            &json!({"spec": {"containers": [{"name": "executor",
                "resources": {"limits": {"nvidia.com/gpu": 1}}}],
                "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": 1024}}]}}),
            "spec.executor.podTemplate",
        )
        .unwrap();
        let spec = t.spec.unwrap();
        let limits = spec.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref();
        assert_eq!(limits.unwrap()["nvidia.com/gpu"].0, "1");
    }
}
