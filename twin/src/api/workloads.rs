//! A minimal Deployment → ReplicaSet → Pod controller, enough for the operator's Deployment from
//! the Helm chart: each Deployment owns one ReplicaSet per pod-template hash (older ones are
//! scaled to zero and removed once empty, i.e. a Recreate-style rollout), each ReplicaSet keeps
//! `spec.replicas` pods from its template, and both report replicas/ready/available counts.
//!
//! Not modelled: rolling-update surge/unavailability budgets, revision history, pausing,
//! progress deadlines, min-ready seconds. Runs after every store change, with the collector.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Value, json};

use super::ops::{self, DeleteOpts, WriteOpts};
use super::{State, meta};

const MANAGER: &str = "deployment-controller";

fn opts() -> WriteOpts {
    WriteOpts {
        manager: MANAGER.into(),
        ..Default::default()
    }
}

fn owned(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["uid"] == uid && r["controller"] == true)
}

fn owner_ref(owner: &Value, kind: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true})
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn live(o: &Value) -> bool {
    meta::meta_str(o, "deletionTimestamp").is_none()
}

/// One pass over Deployments and ReplicaSets.
pub fn reconcile(state: &State) {
    let Some(deploys) = state.resources.lookup("apps", "v1", "deployments") else {
        return;
    };
    let Some(sets) = state.resources.lookup("apps", "v1", "replicasets") else {
        return;
    };
    let Some(pods) = state.resources.lookup("", "v1", "pods") else {
        return;
    };
    let all_rs = ops::list(state, &sets, None, &Default::default());
    let all_rs: Vec<Value> = all_rs["items"].as_array().cloned().unwrap_or_default();
    for d in ops::list(state, &deploys, None, &Default::default())["items"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if live(d) {
            deployment(state, &sets, &deploys, d, &all_rs);
        }
    }
    let all_pods = ops::list(state, &pods, None, &Default::default());
    let all_pods: Vec<Value> = all_pods["items"].as_array().cloned().unwrap_or_default();
    for rs in &all_rs {
        if live(rs) {
            replica_set(state, &sets, &pods, rs, &all_pods);
        }
    }
}

fn template_hash(template: &Value) -> String {
    let mut h = DefaultHasher::new();
    template.to_string().hash(&mut h);
    format!("{:010x}", h.finish() & 0xff_ffff_ffff)
}

fn deployment(
    state: &State,
    sets: &Arc<super::resources::ResourceInfo>,
    deploys: &Arc<super::resources::ResourceInfo>,
    d: &Value,
    all_rs: &[Value],
) {
    let ns = meta::meta_str(d, "namespace").unwrap_or_default();
    let name = meta::meta_str(d, "name").unwrap_or_default();
    let uid = meta::uid_of(d).unwrap_or_default();
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let hash = template_hash(&d["spec"]["template"]);
    let rs_name = format!("{name}-{hash}");
    let mine: Vec<&Value> = all_rs
        .iter()
        .filter(|rs| owned(rs, uid) && meta::meta_str(rs, "namespace") == Some(ns))
        .collect();
    let current = mine
        .iter()
        .find(|rs| meta::meta_str(rs, "name") == Some(rs_name.as_str()));
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    match current {
        None => {
            let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": template["metadata"]["labels"],
                             "ownerReferences": [owner_ref(d, "Deployment")]},
                "spec": {"replicas": replicas, "selector": selector, "template": template}});
            if let Err(e) = ops::create(state, sets, ns, rs, &opts()) {
                tracing::debug!("deployment {ns}/{name}: creating its ReplicaSet: {e}");
            }
        }
        Some(rs) if rs["spec"]["replicas"].as_i64() != Some(replicas) => {
            let _ = ops::modify(state, sets, ns, &rs_name, "", &opts(), |o| {
                o["spec"]["replicas"] = json!(replicas);
                Ok(())
            });
        }
        Some(_) => {}
    }
    // Older templates: scale to zero, remove once their pods are gone.
    for old in mine
        .iter()
        .filter(|rs| meta::meta_str(rs, "name") != Some(rs_name.as_str()))
    {
        let old_name = meta::meta_str(old, "name").unwrap_or_default();
        if old["spec"]["replicas"].as_i64() != Some(0) {
            let _ = ops::modify(state, sets, ns, old_name, "", &opts(), |o| {
                o["spec"]["replicas"] = json!(0);
                Ok(())
            });
        } else if old["status"]["replicas"].as_i64().unwrap_or(0) == 0 {
            let _ = ops::delete(state, sets, ns, old_name, &DeleteOpts::default());
        }
    }
    let count = |field: &str| {
        mine.iter()
            .map(|rs| rs["status"][field].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    let updated = current.map_or(0, |rs| rs["status"]["replicas"].as_i64().unwrap_or(0));
    let available = count("availableReplicas");
    let status = json!({
        "observedGeneration": d["metadata"]["generation"], "replicas": count("replicas"),
        "updatedReplicas": updated, "readyReplicas": count("readyReplicas"), "availableReplicas": available,
        "unavailableReplicas": (replicas - available).max(0),
        "conditions": [{"type": "Available", "status": if available >= replicas { "True" } else { "False" },
                        "reason": if available >= replicas { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                        "message": format!("{available} of {replicas} replicas available")}],
    });
    if d["status"] != status {
        let _ = ops::modify(state, deploys, ns, name, "status", &opts(), |o| {
            o["status"] = status;
            Ok(())
        });
    }
}

fn replica_set(
    state: &State,
    sets: &Arc<super::resources::ResourceInfo>,
    pods: &Arc<super::resources::ResourceInfo>,
    rs: &Value,
    all_pods: &[Value],
) {
    let ns = meta::meta_str(rs, "namespace").unwrap_or_default();
    let name = meta::meta_str(rs, "name").unwrap_or_default();
    let uid = meta::uid_of(rs).unwrap_or_default();
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let mine: Vec<&Value> = all_pods
        .iter()
        .filter(|p| owned(p, uid) && live(p))
        .collect();
    for _ in mine.len()..want {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": rs["spec"]["template"]["metadata"].clone(), "spec": rs["spec"]["template"]["spec"].clone()});
        let m = meta::meta_mut(&mut pod);
        m.insert("generateName".into(), json!(format!("{name}-")));
        m.insert("namespace".into(), json!(ns));
        m.insert(
            "ownerReferences".into(),
            json!([owner_ref(rs, "ReplicaSet")]),
        );
        if let Err(e) = ops::create(state, pods, ns, pod, &opts()) {
            tracing::debug!("replicaset {ns}/{name}: creating a pod: {e}");
            break;
        }
    }
    // Surplus: not-ready pods first, then the newest.
    let mut surplus: Vec<&&Value> = mine.iter().collect();
    surplus.sort_by_key(|p| {
        (
            ready(p),
            std::cmp::Reverse(
                p["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
        )
    });
    for p in surplus.into_iter().take(mine.len().saturating_sub(want)) {
        let _ = ops::delete(
            state,
            pods,
            ns,
            meta::meta_str(p, "name").unwrap_or_default(),
            &DeleteOpts::default(),
        );
    }
    let ready_n = mine.iter().filter(|p| ready(p)).count();
    let status = json!({"replicas": mine.len().min(want.max(mine.len())), "fullyLabeledReplicas": mine.len(),
        "readyReplicas": ready_n, "availableReplicas": ready_n, "observedGeneration": rs["metadata"]["generation"]});
    if rs["status"] != status {
        let _ = ops::modify(state, sets, ns, name, "status", &opts(), |o| {
            o["status"] = status;
            Ok(())
        });
    }
}
