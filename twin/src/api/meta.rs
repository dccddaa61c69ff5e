//! Object metadata rules shared by every write: uid and creationTimestamp on create, fields
//! that never change afterwards, `metadata.generation` bumped only when the spec (anything
//! outside `metadata` and `status`) changes, and status-subresource separation.

use serde_json::{Map, Value, json};

/// Now, as Kubernetes timestamps are written (`2026-01-02T03:04:05Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Now with microseconds (`MicroTime`, used by events.k8s.io and Leases).
pub fn now_micro() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A random RFC 4122 version-4 uid.
pub fn uid() -> String {
    use rand::Rng;
    let b: [u8; 16] = rand::rng().random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Five random lowercase alphanumerics for `generateName` (the apiserver's alphabet, without
/// vowels and look-alikes).
pub fn name_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `metadata` as a mutable map (created if missing or not an object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("object");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The object's uid.
pub fn uid_of(obj: &Value) -> Option<&str> {
    meta_str(obj, "uid")
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything but `metadata` and `status`: what `generation` counts changes of.
fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Stamps a new object: uid, creationTimestamp, generation 1; drops fields clients may not set.
pub fn prepare_create(obj: &mut Value) {
    let meta = meta_mut(obj);
    meta.insert("uid".into(), json!(uid()));
    meta.insert("creationTimestamp".into(), json!(now()));
    meta.insert("generation".into(), json!(1));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("selfLink");
}

/// Carries the immutable metadata of `old` into `new` and sets `new`'s generation: bumped when
/// the spec part changed, else kept.
pub fn prepare_update(old: &Value, new: &mut Value) {
    let changed = spec_part(old) != spec_part(new);
    let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
    let meta = meta_mut(new);
    for keep in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old["metadata"].get(keep) {
            Some(v) => {
                meta.insert(keep.into(), v.clone());
            }
            None => {
                meta.remove(keep);
            }
        }
    }
    meta.insert(
        "generation".into(),
        json!(if changed { generation + 1 } else { generation }),
    );
}

/// For a resource with a status subresource: a main-resource write keeps the old status; a
/// status write keeps everything else of the old object (metadata included, except the
/// resourceVersion precondition the client sent).
pub fn separate_status(old: &Value, new: &mut Value, status_write: bool) {
    if status_write {
        let status = new.get("status").cloned();
        let rv = new["metadata"].get("resourceVersion").cloned();
        *new = old.clone();
        let map = new.as_object_mut().expect("stored objects are objects");
        match status {
            Some(s) => map.insert("status".into(), s),
            None => map.remove("status"),
        };
        if let Some(rv) = rv {
            meta_mut(new).insert("resourceVersion".into(), rv);
        }
    } else if let Some(map) = new.as_object_mut() {
        match old.get("status") {
            Some(s) => map.insert("status".into(), s.clone()),
            None => map.remove("status"),
        };
    }
}

/// The object without `resourceVersion` and managedFields timestamps: two writes equal under
/// this are a no-op (no new resourceVersion, no watch event), as in the apiserver.
pub fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    let meta = meta_mut(&mut v);
    meta.remove("resourceVersion");
    if let Some(Value::Array(mf)) = meta.get_mut("managedFields") {
        for e in mf {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_counts_spec_changes_only() {
        let mut old = json!({"metadata": {"name": "a"}, "spec": {"x": 1}});
        prepare_create(&mut old);
        let mut same = json!({"metadata": {"name": "a", "labels": {"l": "v"}}, "spec": {"x": 1}, "status": {"p": 1}});
        prepare_update(&old, &mut same);
        assert_eq!(same["metadata"]["generation"], 1);
        assert_eq!(same["metadata"]["uid"], old["metadata"]["uid"]);
        let mut changed = json!({"metadata": {"name": "a"}, "spec": {"x": 2}});
        prepare_update(&old, &mut changed);
        assert_eq!(changed["metadata"]["generation"], 2);
    }

    #[test]
    fn status_writes_touch_only_status_and_main_writes_never_do() {
        let old = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"p": "old"}});
        let mut main = json!({"metadata": {"name": "a"}, "spec": {"x": 2}, "status": {"p": "new"}});
        separate_status(&old, &mut main, false);
        assert_eq!(
            (main["spec"]["x"].clone(), main["status"]["p"].clone()),
            (json!(2), json!("old"))
        );
        let mut status =
            json!({"metadata": {"name": "a"}, "spec": {"x": 3}, "status": {"p": "new"}});
        separate_status(&old, &mut status, true);
        assert_eq!(
            (status["spec"]["x"].clone(), status["status"]["p"].clone()),
            (json!(1), json!("new"))
        );
    }

    #[test]
    fn uids_are_version_4() {
        let u = uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uid());
        assert_eq!(name_suffix().len(), 5);
    }
}
