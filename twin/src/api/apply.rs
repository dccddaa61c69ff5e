//! Server-side apply and field ownership (`metadata.managedFields`, `FieldsV1`).
//!
//! The documented simplification of the apiserver's structured-merge-diff:
//! - ownership is tracked per leaf field (a scalar, an atomic list, an empty map, or a map-list
//!   item by its key), per manager, operation (`Apply`/`Update`) and subresource;
//! - an apply merges the applied configuration over the live object (maps recursively, map-lists
//!   item by item by their keys, every other list replaced whole), removes the fields this
//!   manager applied last time but not now (unless another manager owns them too), and takes
//!   ownership of what it applied;
//! - a field another manager owns with a different value is a conflict (`409`, naming the
//!   manager and field) unless `force=true`, which moves ownership to the applier;
//! - other writes (`PUT`, merge and strategic patches) make their manager own the fields they
//!   changed, so a later apply by someone else conflicts with them, as on a real cluster.
//!
//! Not modelled: sets (`x-kubernetes-list-type: set` lists are atomic here), version
//! conversion of field sets, and shared ownership of equal values beyond "both own it".

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::meta;
use super::patch::{ListKeys, item_key};

/// A field path in FieldsV1 segments: `f:spec`, `k:{"name":"a"}`.
type Path = Vec<String>;

/// Metadata fields nobody owns.
const UNOWNED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "generateName",
    "selfLink",
];

fn leaves(v: &Value, keys: ListKeys<'_>, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                if prefix.is_empty() && matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                if prefix.len() == 1
                    && prefix[0] == "f:metadata"
                    && UNOWNED_META.contains(&k.as_str())
                {
                    continue;
                }
                prefix.push(format!("f:{k}"));
                match (child, keys.keys_of(k)) {
                    (Value::Array(items), Some(mk)) => {
                        let item_keys = keys.field(k).items();
                        for item in items {
                            let Some(key) = item_key(item, &mk) else {
                                continue;
                            };
                            let obj: Map<String, Value> = mk.iter().cloned().zip(key).collect();
                            prefix.push(format!("k:{}", Value::Object(obj)));
                            out.insert(prefix.clone());
                            leaves(item, item_keys, prefix, out);
                            prefix.pop();
                        }
                    }
                    _ => leaves(child, keys.field(k), prefix, out),
                }
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Leaf fields of an object.
fn field_set(v: &Value, keys: ListKeys<'_>) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    leaves(v, keys, &mut Vec::new(), &mut out);
    out
}

fn get_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = v;
    for seg in path {
        node = if let Some(f) = seg.strip_prefix("f:") {
            node.get(f)?
        } else {
            let key: Map<String, Value> = serde_json::from_str(seg.strip_prefix("k:")?).ok()?;
            node.as_array()?
                .iter()
                .find(|item| key.iter().all(|(k, want)| item.get(k) == Some(want)))?
        };
    }
    Some(node)
}

fn remove_at(v: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut node = v;
    for seg in parent_path {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            node.get_mut(f)
        } else {
            let Some(Ok(key)) = seg
                .strip_prefix("k:")
                .map(serde_json::from_str::<Map<String, Value>>)
            else {
                return;
            };
            node.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| key.iter().all(|(k, want)| item.get(k) == Some(want)))
            })
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = node.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(Ok(key)) = last
        .strip_prefix("k:")
        .map(serde_json::from_str::<Map<String, Value>>)
        && let Some(a) = node.as_array_mut()
    {
        a.retain(|item| !key.iter().all(|(k, want)| item.get(k) == Some(want)));
    }
}

fn merge_applied(live: &mut Value, applied: &Value, keys: ListKeys<'_>) {
    let (Some(l), Some(a)) = (live.as_object_mut(), applied.as_object()) else {
        *live = applied.clone();
        return;
    };
    for (k, av) in a {
        match (l.get_mut(k), av, keys.keys_of(k)) {
            (Some(lv @ Value::Object(_)), Value::Object(_), _) => {
                merge_applied(lv, av, keys.field(k))
            }
            (Some(Value::Array(litems)), Value::Array(aitems), Some(mk)) => {
                let item_keys = keys.field(k).items();
                for ai in aitems {
                    let key = item_key(ai, &mk);
                    match litems
                        .iter_mut()
                        .find(|li| key.is_some() && item_key(li, &mk) == key)
                    {
                        Some(li) => merge_applied(li, ai, item_keys),
                        None => litems.push(ai.clone()),
                    }
                }
            }
            _ => {
                l.insert(k.clone(), av.clone());
            }
        }
    }
}

/// One `managedFields` entry, decoded.
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: BTreeSet<Path>,
}

fn decode_fields(node: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(m) = node.as_object() else { return };
    if m.is_empty() || m.contains_key(".") {
        out.insert(prefix.clone());
    }
    for (k, child) in m {
        if k == "." {
            continue;
        }
        prefix.push(k.clone());
        decode_fields(child, prefix, out);
        prefix.pop();
    }
}

fn encode_fields(fields: &BTreeSet<Path>) -> Value {
    let mut root = json!({});
    for path in fields {
        let mut node = &mut root;
        for seg in path {
            node = node
                .as_object_mut()
                .expect("trie nodes are objects")
                .entry(seg.clone())
                .or_insert_with(|| json!({}));
        }
        if let Some(m) = node.as_object_mut() {
            m.insert(".".into(), json!({}));
        }
    }
    // A leaf is `{}`; `.` marks a node owned itself and having children.
    fn tidy(v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            if m.len() == 1 && m.contains_key(".") {
                m.clear();
                return;
            }
            for (k, c) in m.iter_mut() {
                if k != "." {
                    tidy(c);
                }
            }
        }
    }
    tidy(&mut root);
    root
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    for e in obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let s = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut fields = BTreeSet::new();
        if let Some(f) = e.get("fieldsV1") {
            decode_fields(f, &mut Vec::new(), &mut fields);
            fields.remove(&Vec::new());
        }
        out.push(Entry {
            manager: s("manager"),
            operation: s("operation"),
            subresource: s("subresource"),
            api_version: s("apiVersion"),
            time: s("time"),
            fields,
        });
    }
    out
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": encode_fields(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let meta = meta::meta_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Who writes, and how.
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    /// `fieldManager` (or the user agent's program name).
    pub name: &'a str,
    /// `""` or `status`/`scale`.
    pub subresource: &'a str,
}

/// Server-side apply of `applied` onto `live` (absent: the object is created).
///
/// # Errors
/// `409 Conflict` listing fields other managers own with other values, unless `force`.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    who: Manager<'_>,
    force: bool,
    keys: ListKeys<'_>,
) -> Result<Value, ApiError> {
    let now_fields = field_set(applied, keys);
    let api_version = applied["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut result = live.cloned().unwrap_or_else(|| json!({}));
    let mut entries = live.map(read_entries).unwrap_or_default();
    let mine = |e: &Entry| {
        e.manager == who.name && e.operation == "Apply" && e.subresource == who.subresource
    };
    let mut conflicts = Vec::new();
    let mut contested = BTreeSet::new();
    if let Some(live) = live {
        for e in entries.iter().filter(|e| !mine(e)) {
            for p in e.fields.intersection(&now_fields) {
                if get_at(live, p) != get_at(applied, p) {
                    contested.insert(p.clone());
                    conflicts.push(format!(
                        "conflict with \"{}\"{}: .{}",
                        e.manager,
                        if e.operation == "Update" {
                            format!(" using {}", e.api_version)
                        } else {
                            String::new()
                        },
                        p.iter()
                            .map(|s| s.trim_start_matches("f:"))
                            .collect::<Vec<_>>()
                            .join(".")
                    ));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApiError::Conflict(format!(
            "Apply failed with {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            conflicts.join("\n")
        )));
    }
    let previous: BTreeSet<Path> = entries
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.fields.clone())
        .collect();
    let others: BTreeSet<Path> = entries
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .filter(|p| !now_fields.contains(p))
        .collect();
    let dropped: Vec<&Path> = previous.difference(&now_fields).collect();
    // Deepest first, so removing a map-list item never shifts a path still to be removed.
    for gone in dropped.into_iter().rev() {
        if !others.contains(gone) {
            remove_at(&mut result, gone);
        }
    }
    merge_applied(&mut result, applied, keys);
    // Forced: the applier takes the contested fields; equal values stay shared.
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        e.fields.retain(|p| !contested.contains(p));
    }
    entries.retain(|e| !mine(e));
    entries.push(Entry {
        manager: who.name.into(),
        operation: "Apply".into(),
        subresource: who.subresource.into(),
        api_version,
        time: meta::now(),
        fields: now_fields,
    });
    write_entries(&mut result, entries);
    Ok(result)
}

/// Records a non-apply write: `who` now owns every field that differs between `old` and `new`.
pub fn record_update(old: Option<&Value>, new: &mut Value, who: Manager<'_>, keys: ListKeys<'_>) {
    let before = old.map(|o| field_set(o, keys)).unwrap_or_default();
    let after = field_set(new, keys);
    let old_v = old.cloned().unwrap_or(Value::Null);
    let changed: BTreeSet<Path> = after
        .iter()
        .filter(|p| get_at(&old_v, p) != get_at(new, p))
        .cloned()
        .collect();
    let removed: BTreeSet<Path> = before.difference(&after).cloned().collect();
    let mut entries = old.map(read_entries).unwrap_or_default();
    if changed.is_empty() && removed.is_empty() && !entries.is_empty() {
        write_entries(new, entries);
        return;
    }
    for e in &mut entries {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let api_version = new["apiVersion"].as_str().unwrap_or_default().to_string();
    match entries.iter_mut().find(|e| {
        e.manager == who.name && e.operation == "Update" && e.subresource == who.subresource
    }) {
        Some(e) => {
            e.fields.extend(changed);
            e.time = meta::now();
        }
        None => entries.push(Entry {
            manager: who.name.into(),
            operation: "Update".into(),
            subresource: who.subresource.into(),
            api_version,
            time: meta::now(),
            fields: changed,
        }),
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str) -> Manager<'_> {
        Manager {
            name,
            subresource: "",
        }
    }

    #[test]
    fn apply_merges_removes_dropped_fields_and_detects_conflicts() {
        let keys = ListKeys::new(None);
        let first = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "c", "image": "x:1"}]}});
        let live = apply(None, &first, who("op"), false, keys).unwrap();
        assert_eq!(live["metadata"]["managedFields"][0]["manager"], "op");
        // Another manager changes a field the operator owns: conflict, unless forced.
        let other = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x:2"}]}});
        let err = apply(Some(&live), &other, who("kubectl"), false, keys).unwrap_err();
        assert!(err.to_string().contains("conflict with \"op\""), "{err}");
        let forced = apply(Some(&live), &other, who("kubectl"), true, keys).unwrap();
        assert_eq!(forced["spec"]["containers"][0]["image"], "x:2");
        // The operator drops label b: it goes; label a stays.
        let second = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}}});
        let after = apply(Some(&forced), &second, who("op"), false, keys).unwrap();
        assert_eq!(after["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(
            after["spec"]["containers"][0]["image"], "x:2",
            "kubectl owns it now"
        );
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let keys = ListKeys::new(None);
        let live = apply(
            None,
            &json!({"apiVersion": "v1", "kind": "X", "spec": {"replicas": 2}}),
            who("op"),
            false,
            keys,
        )
        .unwrap();
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(4);
        record_update(Some(&live), &mut scaled, who("kubectl"), keys);
        let err = apply(
            Some(&scaled),
            &json!({"apiVersion": "v1", "kind": "X", "spec": {"replicas": 2}}),
            who("op"),
            false,
            keys,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("conflict with \"kubectl\" using v1: .spec.replicas"),
            "{err}"
        );
        let fields = encode_fields(&field_set(&json!({"spec": {"a": 1, "b": {"c": 2}}}), keys));
        assert_eq!(fields, json!({"f:spec": {"f:a": {}, "f:b": {"f:c": {}}}}));
    }
}
