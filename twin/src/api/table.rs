//! Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): the columns
//! `kubectl get` shows. CRD kinds print their `additionalPrinterColumns` (simple JSONPaths; `date`
//! columns as ages, like the apiserver); pods print NAME READY STATUS RESTARTS AGE (+ IP, NODE
//! wide); a few other built-ins have their usual columns; everything else NAME AGE.

use serde_json::{Value, json};

use super::resources::ResourceInfo;

/// A column: name, type, format, description, priority.
type ColumnDef = (&'static str, &'static str, &'static str, &'static str, i64);

/// `kubectl`'s human durations (`45s`, `3m12s`, `25m`, `5h3m`, `2d4h`, `40d`, `3y20d`).
pub fn age(timestamp: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(timestamp) else {
        return "<invalid>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        format!("{m}m{}s", secs % 60)
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        format!("{h}h{}m", m % 60)
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        format!("{d}d{}h", h % 24)
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

/// A simple JSONPath (`.status.phase`, `.spec.containers[0].image`).
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = obj;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        let (field, index) = match part.split_once('[') {
            Some((f, rest)) => (f, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !field.is_empty() {
            node = node.get(field)?;
        }
        if let Some(i) = index {
            node = node.get(i)?;
        }
    }
    (!node.is_null()).then_some(node)
}

fn created(obj: &Value) -> Value {
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .map(|t| json!(age(t)))
        .unwrap_or(Value::Null)
}

fn pod_status(pod: &Value) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    let mut reason = pod["status"]["reason"]
        .as_str()
        .or(pod["status"]["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    for c in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let state = &c["state"];
        if let Some(r) = state["waiting"]["reason"].as_str() {
            reason = r.into();
        } else if let Some(r) = state["terminated"]["reason"].as_str() {
            reason = r.into();
        } else if state["terminated"].is_object() {
            reason = format!("ExitCode:{}", state["terminated"]["exitCode"]);
        }
    }
    reason
}

fn builtin(info: &ResourceInfo, obj: &Value) -> (Vec<ColumnDef>, Vec<Value>) {
    let name = json!(obj["metadata"]["name"]);
    match (info.group.as_str(), info.resource.as_str()) {
        ("", "pods") => {
            let statuses = obj["status"]["containerStatuses"].as_array();
            let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.map_or(0, |s| {
                s.iter().filter(|c| c["ready"] == json!(true)).count()
            });
            let restarts: i64 = statuses.map_or(0, |s| {
                s.iter().filter_map(|c| c["restartCount"].as_i64()).sum()
            });
            (
                vec![
                    ("Name", "string", "name", "Name of the pod", 0),
                    (
                        "Ready",
                        "string",
                        "",
                        "Ready containers of all containers",
                        0,
                    ),
                    (
                        "Status",
                        "string",
                        "",
                        "The aggregate status of the containers",
                        0,
                    ),
                    ("Restarts", "string", "", "Restarts of the containers", 0),
                    ("Age", "string", "", "Time since creation", 0),
                    ("IP", "string", "", "The pod's IP", 1),
                    ("Node", "string", "", "The node the pod runs on", 1),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(pod_status(obj)),
                    json!(restarts.to_string()),
                    created(obj),
                    json!(obj["status"]["podIP"].as_str().unwrap_or("<none>")),
                    json!(obj["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                ],
            )
        }
        ("", "namespaces") => (
            vec![
                ("Name", "string", "name", "", 0),
                ("Status", "string", "", "", 0),
                ("Age", "string", "", "", 0),
            ],
            vec![name, obj["status"]["phase"].clone(), created(obj)],
        ),
        ("", "nodes") => {
            let ready = obj["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .map_or("Unknown", |c| {
                    if c["status"] == "True" {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                });
            (
                vec![
                    ("Name", "string", "name", "", 0),
                    ("Status", "string", "", "", 0),
                    ("Age", "string", "", "", 0),
                    ("Version", "string", "", "", 0),
                ],
                vec![
                    name,
                    json!(ready),
                    created(obj),
                    obj["status"]["nodeInfo"]["kubeletVersion"].clone(),
                ],
            )
        }
        ("", "services") => (
            vec![
                ("Name", "string", "name", "", 0),
                ("Type", "string", "", "", 0),
                ("Cluster-IP", "string", "", "", 0),
                ("Age", "string", "", "", 0),
            ],
            vec![
                name,
                obj["spec"]["type"].clone(),
                obj["spec"]["clusterIP"].clone(),
                created(obj),
            ],
        ),
        ("", "events") => (
            vec![
                ("Last Seen", "string", "", "", 0),
                ("Type", "string", "", "", 0),
                ("Reason", "string", "", "", 0),
                ("Object", "string", "", "", 0),
                ("Message", "string", "", "", 0),
            ],
            vec![
                obj["lastTimestamp"]
                    .as_str()
                    .or(obj["eventTime"].as_str())
                    .map_or(Value::Null, |t| json!(age(t))),
                obj["type"].clone(),
                obj["reason"].clone(),
                json!(format!(
                    "{}/{}",
                    obj["involvedObject"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase(),
                    obj["involvedObject"]["name"].as_str().unwrap_or_default()
                )),
                obj["message"].clone(),
            ],
        ),
        ("apps", "deployments") | ("apps", "replicasets") => {
            let s = &obj["status"];
            (
                vec![
                    ("Name", "string", "name", "", 0),
                    ("Desired", "integer", "", "", 0),
                    ("Ready", "integer", "", "", 0),
                    ("Available", "integer", "", "", 0),
                    ("Age", "string", "", "", 0),
                ],
                vec![
                    name,
                    obj["spec"]["replicas"].clone(),
                    json!(s["readyReplicas"].as_i64().unwrap_or(0)),
                    json!(s["availableReplicas"].as_i64().unwrap_or(0)),
                    created(obj),
                ],
            )
        }
        _ => (
            vec![
                ("Name", "string", "name", "Name of the object", 0),
                ("Age", "string", "", "Time since creation", 0),
            ],
            vec![name, created(obj)],
        ),
    }
}

fn custom(info: &ResourceInfo, obj: &Value) -> (Vec<Value>, Vec<Value>) {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
    ];
    let mut cells = vec![obj["metadata"]["name"].clone()];
    let columns = if info.columns.is_empty() {
        vec![super::resources::Column {
            name: "Age".into(),
            type_: "date".into(),
            description: String::new(),
            json_path: ".metadata.creationTimestamp".into(),
            priority: 0,
        }]
    } else {
        info.columns.clone()
    };
    for c in &columns {
        defs.push(json!({"name": c.name, "type": c.type_, "format": "", "description": c.description, "priority": c.priority}));
        let v = json_path(obj, &c.json_path);
        cells.push(match (c.type_.as_str(), v) {
            (_, None) => Value::Null,
            ("date", Some(Value::String(t))) => json!(age(t)),
            ("string", Some(Value::String(s))) => json!(s),
            ("string", Some(other)) => json!(other.to_string()),
            (_, Some(v)) => v.clone(),
        });
    }
    (defs, cells)
}

/// Column definitions and cells of one object.
fn row(info: &ResourceInfo, obj: &Value) -> (Vec<Value>, Vec<Value>) {
    if info.custom {
        return custom(info, obj);
    }
    let (defs, cells) = builtin(info, obj);
    let defs = defs
        .into_iter()
        .map(|(n, t, f, d, p)| json!({"name": n, "type": t, "format": f, "description": d, "priority": p}))
        .collect();
    (defs, cells)
}

/// The metadata-only form of an object (`PartialObjectMetadata`).
pub fn partial(obj: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
}

/// A `meta.k8s.io/v1` Table of `objs`; `include_object` is `None`, `Metadata` (default) or
/// `Object`.
pub fn table(info: &ResourceInfo, objs: &[Value], rv: Option<&str>, include_object: &str) -> Value {
    let probe = json!({"metadata": {}});
    let columns = row(info, objs.first().unwrap_or(&probe)).0;
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut r = json!({"cells": row(info, o).1});
            match include_object {
                "None" => {}
                "Object" => r["object"] = o.clone(),
                _ => r["object"] = partial(o),
            }
            r
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::Resources;

    #[test]
    fn pods_print_ready_status_restarts() {
        let pods = Resources::default().lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 2, "state": {"running": {}}},
                {"ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let t = table(&pods, &[pod], Some("7"), "Metadata");
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "3");
        assert!(
            cells[4].as_str().unwrap().ends_with('d') || cells[4].as_str().unwrap().contains('y')
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn json_paths_and_ages() {
        let v = json!({"spec": {"cs": [{"image": "x"}]}, "status": {"phase": "Running"}});
        assert_eq!(json_path(&v, ".spec.cs[0].image"), Some(&json!("x")));
        assert_eq!(json_path(&v, ".status.missing"), None);
        let t = (chrono::Utc::now() - chrono::Duration::seconds(200)).to_rfc3339();
        assert_eq!(age(&t), "3m20s");
    }
}
