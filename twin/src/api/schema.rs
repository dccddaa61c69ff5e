//! Structural OpenAPI v3 schemas of CRDs, applied on every write as the apiserver does: prune
//! unknown fields (and nulls of non-nullable ones), apply `default`s, check types, `enum`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `pattern`, `required`, `minItems`/`maxItems`,
//! `minProperties`/`maxProperties`, then evaluate the `x-kubernetes-validations` CEL rules
//! (with `oldSelf` on updates) through `kube-cel`.
//!
//! Hand-written rather than a JSON-Schema crate because the apiserver's semantics differ from
//! JSON Schema (`nullable`, `x-kubernetes-int-or-string`, pruning instead of rejection) and its
//! error texts are what users see: causes carry the field path and the apiserver's wording
//! (`Invalid value: 0: spec.executor.cores in body should be greater than or equal to 1`), so
//! `kubectl apply` prints the same lines as against a real cluster.

use serde_json::{Map, Value};

use super::error::Cause;

/// A bounded cache of compiled patterns would save little: CRD writes are rare and patterns few.
fn pattern_matches(pattern: &str, s: &str) -> Result<bool, String> {
    regex::Regex::new(pattern)
        .map(|re| re.is_match(s))
        .map_err(|e| format!("invalid pattern {pattern:?} in the CRD schema: {e}"))
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Removes fields the schema does not know (and nulls of non-nullable fields), returning the
/// dotted paths of unknown fields removed (for `fieldValidation=Strict`).
pub fn prune(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if flag(schema, "x-kubernetes-preserve-unknown-fields") && schema.get("properties").is_none() {
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = flag(schema, "x-kubernetes-embedded-resource") || path.is_empty();
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = join(path, &key);
                let child_schema = props
                    .and_then(|p| p.get(&key))
                    .or(additional.filter(|a| a.is_object()));
                match child_schema {
                    Some(cs) => {
                        if map[&key].is_null() && !flag(cs, "nullable") {
                            map.remove(&key);
                            continue;
                        }
                        if let Some(child) = map.get_mut(&key) {
                            prune(cs, child, &child_path, unknown);
                        }
                    }
                    None if embedded
                        && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") => {}
                    None if preserve || additional == Some(&Value::Bool(true)) => {}
                    None if props.is_some() || additional.is_some() => {
                        map.remove(&key);
                        unknown.push(child_path);
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(is, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Checks `value` against `schema`, pushing one cause per violation.
pub fn validate(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let invalid = |causes: &mut Vec<Cause>, reason: &'static str, message: String| {
        causes.push(Cause {
            reason,
            field: path.to_string(),
            message,
        })
    };
    if value.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            invalid(causes, "FieldValueRequired", "Required value".into());
        }
        return;
    }
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    let ty = schema.get("type").and_then(Value::as_str);
    if int_or_string {
        if !matches!(type_name(value), "integer" | "string") {
            invalid(
                causes,
                "FieldValueInvalid",
                format!(
                    "Invalid value: {}: {path} in body must be of type int-or-string: \"{}\"",
                    show(value),
                    type_name(value)
                ),
            );
            return;
        }
    } else if let Some(ty) = ty {
        let actual = type_name(value);
        let ok = actual == ty || (ty == "number" && actual == "integer");
        if !ok {
            invalid(
                causes,
                "FieldValueInvalid",
                format!(
                    "Invalid value: {}: {path} in body must be of type {ty}: \"{actual}\"",
                    show(value)
                ),
            );
            return;
        }
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array)
        && !choices.contains(value)
    {
        let list: Vec<String> = choices.iter().map(Value::to_string).collect();
        invalid(
            causes,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: {}",
                value,
                list.join(", ")
            ),
        );
    }
    match value {
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(0.0), value, path, causes),
        Value::String(s) => check_string(schema, s, value, path, causes),
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                invalid(
                    causes,
                    "FieldValueTooMany",
                    format!("Too many: {n}: must have at most {max} items"),
                );
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                invalid(
                    causes,
                    "FieldValueInvalid",
                    format!("Invalid value: {n}: {path} in body should have at least {min} items"),
                );
            }
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(is, item, &format!("{path}[{i}]"), causes);
                }
            }
        }
        Value::Object(map) => check_object(schema, map, path, causes),
        _ => {}
    }
}

fn check_number(schema: &Value, x: f64, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
    let excl = |k: &str| flag(schema, k);
    let mut push = |m: String| {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: path.to_string(),
            message: format!("Invalid value: {value}: {path} in body {m}"),
        })
    };
    let fmt = |b: f64| {
        if b.fract() == 0.0 {
            format!("{}", b as i64)
        } else {
            b.to_string()
        }
    };
    if let Some(min) = bound("minimum") {
        if excl("exclusiveMinimum") && x <= min {
            push(format!("should be greater than {}", fmt(min)));
        } else if x < min {
            push(format!("should be greater than or equal to {}", fmt(min)));
        }
    }
    if let Some(max) = bound("maximum") {
        if excl("exclusiveMaximum") && x >= max {
            push(format!("should be less than {}", fmt(max)));
        } else if x > max {
            push(format!("should be less than or equal to {}", fmt(max)));
        }
    }
    if let Some(m) = bound("multipleOf")
        && m > 0.0
        && (x / m).fract() != 0.0
    {
        push(format!("should be a multiple of {}", fmt(m)));
    }
}

fn check_string(schema: &Value, s: &str, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let chars = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: path.into(),
            message: format!(
                "Invalid value: {value}: {path} in body should be at least {min} chars long"
            ),
        });
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            field: path.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        });
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        match pattern_matches(p, s) {
            Ok(true) => {}
            Ok(false) => causes.push(Cause {
                reason: "FieldValueInvalid",
                field: path.into(),
                message: format!("Invalid value: {value}: {path} in body should match '{p}'"),
            }),
            Err(e) => causes.push(Cause {
                reason: "FieldValueInvalid",
                field: path.into(),
                message: e,
            }),
        }
    }
}

fn check_object(schema: &Value, map: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    let n = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && n > max
    {
        causes.push(Cause {
            reason: "FieldValueTooMany",
            field: path.into(),
            message: format!("Too many: {n}: must have at most {max} items"),
        });
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && n < min
    {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: path.into(),
            message: format!(
                "Invalid value: {n}: {path} in body should have at least {min} properties"
            ),
        });
    }
    for req in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(req) {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: join(path, req),
                message: "Required value".into(),
            });
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        // The apiserver validates ObjectMeta itself; a CRD schema cannot constrain it further
        // (beyond name rules, checked by CEL rules on `self.metadata.name`).
        if path.is_empty() && matches!(key.as_str(), "metadata" | "apiVersion" | "kind") {
            continue;
        }
        if let Some(cs) = props.and_then(|p| p.get(key)) {
            validate(cs, child, &join(path, key), causes);
        } else if let Some(cs) = additional {
            validate(cs, child, &format!("{path}[{key}]"), causes);
        }
    }
}

/// Applies schema defaults (through `kube-cel`, which implements the apiserver's defaulting).
pub fn default(schema: &Value, value: &Value) -> Value {
    kube_cel::apply_defaults(schema, value)
}

/// Evaluates the CEL rules (`x-kubernetes-validations`) with `old` bound for transition rules.
pub fn cel(schema: &Value, value: &Value, old: Option<&Value>) -> Vec<Cause> {
    let compiled = kube_cel::compile_schema(schema);
    match kube_cel::Validator::new().validate_compiled(&compiled, value, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_iter()
            .map(|e| Cause {
                reason: match e.reason.as_deref() {
                    Some("FieldValueForbidden") => "FieldValueForbidden",
                    Some("FieldValueRequired") => "FieldValueRequired",
                    Some("FieldValueDuplicate") => "FieldValueDuplicate",
                    _ => "FieldValueInvalid",
                },
                field: e.field_path.trim_start_matches('.').to_string(),
                message: format!("Invalid value: \"object\": {}", e.message),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                "n": {"type": "integer", "minimum": 1, "maximum": 3, "default": 2},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1},
                "port": {"x-kubernetes-int-or-string": true},
                "opt": {"type": "string", "nullable": true}
            },
            "x-kubernetes-validations": [{"rule": "self.n != 3 || self.mode == 'b'", "message": "n=3 needs mode b", "fieldPath": ".mode"}]
        }}})
    }

    fn check(v: Value) -> Vec<Cause> {
        let mut v = v;
        let mut unknown = Vec::new();
        prune(&schema(), &mut v, "", &mut unknown);
        let v = default(&schema(), &v);
        let mut causes = Vec::new();
        validate(&schema(), &v, "", &mut causes);
        if causes.is_empty() {
            causes = cel(&schema(), &v, None);
        }
        causes
    }

    #[test]
    fn every_keyword_names_its_field() {
        let fields = |c: Vec<Cause>| c.into_iter().map(|c| c.field).collect::<Vec<_>>();
        assert!(check(json!({"spec": {"name": "ok", "port": "http"}})).is_empty());
        assert_eq!(fields(check(json!({"spec": {}}))), ["spec.name"]);
        assert_eq!(
            fields(check(json!({"spec": {"name": "BAD"}}))),
            ["spec.name"]
        );
        assert_eq!(
            fields(check(json!({"spec": {"name": "abcdef"}}))),
            ["spec.name"]
        );
        assert_eq!(
            fields(check(json!({"spec": {"name": "a", "n": 0}}))),
            ["spec.n"]
        );
        assert_eq!(
            fields(check(json!({"spec": {"name": "a", "n": "x"}}))),
            ["spec.n"]
        );
        assert_eq!(
            fields(check(json!({"spec": {"name": "a", "mode": "c"}}))),
            ["spec.mode"]
        );
        assert_eq!(
            fields(check(
                json!({"spec": {"name": "a", "tags": {"x": "1", "y": "2"}}})
            )),
            ["spec.tags"]
        );
        assert_eq!(
            fields(check(json!({"spec": {"name": "a", "port": true}}))),
            ["spec.port"]
        );
        assert_eq!(
            fields(check(json!({"spec": {"name": "a", "n": 3}}))),
            ["spec.mode"]
        );
        let c = check(json!({"spec": {"name": "a", "n": 0}}));
        assert_eq!(
            c[0].message,
            "Invalid value: 0: spec.n in body should be greater than or equal to 1"
        );
    }

    #[test]
    fn pruning_drops_unknown_fields_and_non_nullable_nulls_then_defaults_apply() {
        let mut v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "m"},
            "spec": {"name": "a", "junk": 1, "n": null, "opt": null}});
        let mut unknown = Vec::new();
        prune(&schema(), &mut v, "", &mut unknown);
        assert_eq!(unknown, ["spec.junk"]);
        let v = default(&schema(), &v);
        assert_eq!(v["spec"], json!({"name": "a", "n": 2, "opt": null}));
        assert_eq!(v["metadata"]["name"], "m");
    }
}
