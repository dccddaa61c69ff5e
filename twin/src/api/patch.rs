//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902, both via `json-patch`) and
//! strategic merge patch.
//!
//! Strategic merge patch is the documented simplification: a merge patch in which lists of
//! objects with a known merge key (`containers` by `name`, `conditions` by `type`, ... or a CRD's
//! `x-kubernetes-list-map-keys`) merge item by item, `$patch: delete` removes an item,
//! `$patch: replace` replaces a list or map, and the ordering/retain directives
//! (`$setElementOrder/...`, `$retainKeys`) are accepted and ignored.

use serde_json::{Map, Value};

use super::error::ApiError;

/// Merge keys of built-in list fields (the `patchMergeKey`s kubectl's `patch` relies on).
pub fn builtin_list_keys(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "containerStatuses"
        | "initContainerStatuses" => &["name"],
        "volumeMounts" => &["mountPath"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "hostAliases" => &["ip"],
        _ => return None,
    })
}

/// Finds the merge keys of a list at a path: from the CRD schema when there is one
/// (`x-kubernetes-list-type: map`), else from the built-in table by field name.
#[derive(Debug, Clone, Copy)]
pub struct ListKeys<'a> {
    schema: Option<&'a Value>,
}

impl<'a> ListKeys<'a> {
    /// Keys from `schema` (a CRD version's `openAPIV3Schema`) or the built-in table.
    pub fn new(schema: Option<&'a Value>) -> Self {
        Self { schema }
    }

    /// Descends into a field.
    pub fn field(self, name: &str) -> Self {
        Self {
            schema: self.schema.and_then(|s| {
                s.get("properties")
                    .and_then(|p| p.get(name))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
            }),
        }
    }

    /// Descends into list items.
    pub fn items(self) -> Self {
        Self {
            schema: self.schema.and_then(|s| s.get("items")),
        }
    }

    /// Merge keys of the list field `name` under this node, if it is a map-list.
    pub fn keys_of(self, name: &str) -> Option<Vec<String>> {
        if self.schema.is_some() {
            let node = self.field(name).schema?;
            if node.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                return node
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    });
            }
            return None;
        }
        builtin_list_keys(name).map(|ks| ks.iter().map(|k| k.to_string()).collect())
    }
}

/// The key tuple of a map-list item (`None` if it lacks a key field).
pub fn item_key(item: &Value, keys: &[String]) -> Option<Vec<Value>> {
    keys.iter().map(|k| item.get(k).cloned()).collect()
}

/// RFC 7386 merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch.
///
/// # Errors
/// `422`-style bad request when an operation does not apply.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &ops).map_err(|e| ApiError::Invalid {
        kind: String::new(),
        name: String::new(),
        causes: vec![super::error::Cause {
            reason: "FieldValueInvalid",
            field: String::new(),
            message: format!("the JSON patch does not apply: {e}"),
        }],
    })
}

/// Strategic merge patch (see the module doc for what is supported).
pub fn strategic(target: &mut Value, patch: &Value, keys: ListKeys<'_>) {
    let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) else {
        *target = strip_directives(patch);
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = p.clone();
        replaced.remove("$patch");
        *target = strip_directives(&Value::Object(replaced));
        return;
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(_) => {
                let child = t.entry(k.clone()).or_insert(Value::Object(Map::new()));
                if !child.is_object() {
                    *child = Value::Object(Map::new());
                }
                strategic(child, v, keys.field(k));
            }
            Value::Array(items) => match keys.keys_of(k) {
                Some(mk) if t.get(k).is_some_and(Value::is_array) => {
                    let list = t.get_mut(k).and_then(Value::as_array_mut).expect("array");
                    merge_list(list, items, &mk, keys.field(k).items());
                }
                _ => {
                    t.insert(k.clone(), strip_directives(v));
                }
            },
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
}

fn merge_list(list: &mut Vec<Value>, patch: &[Value], merge_keys: &[String], keys: ListKeys<'_>) {
    for p in patch {
        let Some(key) = item_key(p, merge_keys) else {
            list.push(strip_directives(p));
            continue;
        };
        let pos = list
            .iter()
            .position(|x| item_key(x, merge_keys).as_ref() == Some(&key));
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut list[i], p, keys),
            (None, false) => list.push(strip_directives(p)),
        }
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name_and_deletes_by_directive() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}});
        strategic(
            &mut pod,
            &json!({"$setElementOrder/containers": [{"name": "a"}], "spec": {"containers": [
                {"name": "a", "image": "x:2"}, {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "z"}]}}),
            ListKeys::new(None),
        );
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "a", "image": "x:2"}, {"name": "c", "image": "z"}])
        );
    }

    #[test]
    fn crd_list_map_keys_come_from_the_schema() {
        let schema = json!({"properties": {"status": {"properties": {"conditions": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object"}}}}}});
        let mut obj = json!({"status": {"conditions": [{"type": "A", "status": "False"}]}});
        strategic(
            &mut obj,
            &json!({"status": {"conditions": [{"type": "B", "status": "True"}]}}),
            ListKeys::new(Some(&schema)),
        );
        assert_eq!(obj["status"]["conditions"].as_array().unwrap().len(), 2);
        let mut m = json!({"a": 1, "b": {"c": 2}});
        merge(&mut m, &json!({"a": null, "b": {"d": 3}}));
        assert_eq!(m, json!({"b": {"c": 2, "d": 3}}));
    }
}
