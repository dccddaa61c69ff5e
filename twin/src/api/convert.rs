//! Version conversion between what a client reads/writes and what is stored. Objects are stored
//! in one form per resource; `events.k8s.io/v1` Events are stored as core `v1` Events (as the
//! apiserver does) so `kubectl describe` (which lists core events) shows what controllers
//! recorded through the events.k8s.io API. Other resources differ only in `apiVersion`.

use serde_json::{Map, Value, json};

use super::resources::ResourceInfo;

/// Field renames between events.k8s.io/v1 (left) and core v1 (right).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Fields with the same name in both.
const EVENT_SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "reportingInstance",
    "action",
    "reason",
    "related",
    "type",
];

fn is_events_v1(info: &ResourceInfo) -> bool {
    info.group == "events.k8s.io"
}

fn rename(obj: &Value, pairs: &[(&str, &str)], forward: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for &(a, b) in pairs {
        let (from, to) = if forward { (a, b) } else { (b, a) };
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            out.insert(to.to_string(), v.clone());
        }
    }
    for k in EVENT_SHARED {
        if let Some(v) = obj.get(*k).filter(|v| !v.is_null()) {
            out.insert((*k).to_string(), v.clone());
        }
    }
    out
}

/// The stored object as the resource `info` serves it.
pub fn from_storage(info: &ResourceInfo, stored: &Value) -> Value {
    let mut out = if is_events_v1(info) {
        Value::Object(rename(stored, EVENT_FIELDS, false))
    } else {
        stored.clone()
    };
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), json!(info.api_version()));
        m.insert("kind".into(), json!(info.kind));
    }
    out
}

/// A client's object in the stored form.
pub fn to_storage(info: &ResourceInfo, obj: &Value) -> Value {
    if !is_events_v1(info) {
        return obj.clone();
    }
    let mut core = rename(obj, EVENT_FIELDS, true);
    // Core readers (kubectl describe, get events) show count and lastTimestamp; derive them
    // from the series when the recorder only filled the new fields.
    let series = obj.get("series");
    if !core.contains_key("count") {
        let count = series
            .and_then(|s| s.get("count"))
            .cloned()
            .unwrap_or(json!(1));
        core.insert("count".into(), count);
    }
    let last = series
        .and_then(|s| s.get("lastObservedTime"))
        .or_else(|| obj.get("eventTime"))
        .and_then(Value::as_str)
        .map(|t| json!(trim_micro(t)));
    if let Some(last) = last {
        core.entry("lastTimestamp").or_insert(last.clone());
        core.entry("firstTimestamp").or_insert(last);
    }
    if !core.contains_key("source")
        && let Some(c) = obj.get("reportingController")
    {
        core.insert("source".into(), json!({"component": c}));
    }
    core.insert("apiVersion".into(), json!("v1"));
    core.insert("kind".into(), json!("Event"));
    Value::Object(core)
}

/// `2026-01-02T03:04:05.123456Z` → `2026-01-02T03:04:05Z` (core timestamps have seconds).
fn trim_micro(t: &str) -> String {
    match t.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::Resources;

    #[test]
    fn events_round_trip_between_groups_and_core_readers_see_count_and_source() {
        let r = Resources::default();
        let v1 = r.lookup("events.k8s.io", "v1", "events").unwrap();
        let core = r.lookup("", "v1", "events").unwrap();
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "StreamBatchApp", "name": "app"}, "note": "started", "reason": "Created",
            "type": "Normal", "reportingController": "neptune-operator", "eventTime": "2026-01-02T03:04:05.000001Z",
            "action": "Reconcile"});
        let stored = to_storage(&v1, &ev);
        let seen = from_storage(&core, &stored);
        assert_eq!(seen["involvedObject"]["name"], "app");
        assert_eq!(seen["message"], "started");
        assert_eq!(seen["count"], 1);
        assert_eq!(seen["source"]["component"], "neptune-operator");
        assert_eq!(seen["lastTimestamp"], "2026-01-02T03:04:05Z");
        let back = from_storage(&v1, &stored);
        assert_eq!(back["regarding"], ev["regarding"]);
        assert_eq!(back["note"], "started");
    }
}
