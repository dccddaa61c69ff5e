//! Nodes: registration and heartbeats (the kubelet's part), and the node lifecycle
//! controller's part for nodes that stop posting status.
//!
//! A node registers its Node object (labels, taints, capacity = allocatable, addresses,
//! `nodeInfo`) and posts a `Ready` heartbeat every `node_status_interval`. When a node is
//! stopped (the node-loss simulation) its heartbeats stop; once the last one is older than
//! `node_monitor_grace` the controller sets every condition to `Unknown`
//! (`NodeStatusUnknown`, "Kubelet stopped posting node status."), taints the node
//! `node.kubernetes.io/unreachable` (`NoSchedule` and `NoExecute`), marks its pods not Ready,
//! and after `pod_eviction_timeout` deletes them with their grace period (taint-based
//! eviction). Nobody confirms those deletions, so the pods stay Terminating until someone
//! force-deletes them — exactly what happens on a real cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::config::NodeConfig;

/// Taint key the node controller puts on unreachable nodes.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The Node object a twin node registers.
pub fn node_object(cfg: &NodeConfig, ip: &str) -> Node {
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", cfg.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", std::env::consts::ARCH),
        ("node.kubernetes.io/instance-type", "twin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(cfg.labels.clone());
    let mut node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": cfg.name, "labels": labels},
        "spec": {"taints": if cfg.taints.is_empty() { serde_json::Value::Null } else { json!(cfg.taints) }},
    }))
    .unwrap_or_default();
    node.status = serde_json::from_value(status_json(cfg, ip, Timestamp::now())).ok();
    node
}

/// The node's status with a fresh heartbeat.
pub fn status_json(cfg: &NodeConfig, ip: &str, now: Timestamp) -> serde_json::Value {
    let t = now.to_string();
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    let resources = json!({
        "cpu": format!("{}m", cfg.cpu_millis),
        "memory": format!("{}Ki", cfg.memory_bytes / 1024),
        "pods": cfg.max_pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": ip},
            {"type": "Hostname", "address": cfg.name},
        ],
        "nodeInfo": {
            "machineID": format!("twin-{}", cfg.name),
            "systemUUID": format!("twin-{}", cfg.name),
            "bootID": format!("twin-{}", cfg.name),
            "kernelVersion": kernel_version(),
            "osImage": "Neptune cluster twin",
            "containerRuntimeVersion": "twin://0.1.0",
            "kubeletVersion": "v1.35.0-twin",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH,
        },
    })
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Registers (or re-registers) the node.
///
/// # Errors
/// API errors other than "already exists".
pub async fn register(api: &Api<Node>, cfg: &NodeConfig, ip: &str) -> Result<(), kube::Error> {
    let node = node_object(cfg, ip);
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": node.metadata.labels},
                               "spec": {"taints": node.spec.and_then(|s| s.taints), "unschedulable": null}});
            api.patch(&cfg.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Err(e) => return Err(e),
    }
    heartbeat(api, cfg, ip).await
}

/// Posts a fresh status (the heartbeat).
///
/// # Errors
/// API errors.
pub async fn heartbeat(api: &Api<Node>, cfg: &NodeConfig, ip: &str) -> Result<(), kube::Error> {
    let patch = json!({"status": status_json(cfg, ip, Timestamp::now())});
    api.patch_status(&cfg.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The last heartbeat of a node's Ready condition and whether it is already `Unknown`.
pub fn readiness(node: &Node) -> (Option<Timestamp>, Option<String>) {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    (
        ready
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0),
        ready.map(|c| c.status.clone()),
    )
}

/// Marks a silent node unreachable: conditions `Unknown`, the unreachable taints.
///
/// # Errors
/// API errors.
pub async fn mark_unreachable(api: &Api<Node>, node: &Node) -> Result<(), kube::Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let conditions: Vec<serde_json::Value> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            json!({"type": c.type_, "status": "Unknown", "reason": "NodeStatusUnknown",
                   "message": "Kubelet stopped posting node status.",
                   "lastHeartbeatTime": c.last_heartbeat_time, "lastTransitionTime": now})
        })
        .collect();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"conditions": conditions}})),
    )
    .await?;
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    for effect in ["NoSchedule", "NoExecute"] {
        if !taints
            .iter()
            .any(|t| t.key == UNREACHABLE && t.effect == effect)
        {
            taints.push(Taint {
                key: UNREACHABLE.into(),
                effect: effect.into(),
                time_added: (effect == "NoExecute").then(|| now.clone()),
                value: None,
            });
        }
    }
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"taints": taints}})),
    )
    .await?;
    Ok(())
}

/// Sets a pod's `Ready` and `ContainersReady` conditions False (its node is unreachable).
///
/// # Errors
/// API errors.
pub async fn mark_pod_not_ready(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let mut conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for c in &mut conditions {
        if (c.type_ == "Ready" || c.type_ == "ContainersReady") && c.status != "False" {
            c.status = "False".into();
            c.reason = Some("NodeNotReady".into());
            c.message = None;
            c.last_transition_time = Some(now.clone());
            changed = true;
        }
    }
    if changed {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": conditions}})),
        )
        .await?;
    }
    Ok(())
}

/// Evicts a pod from an unreachable node: a delete with its own grace period.
///
/// # Errors
/// API errors other than "not found".
pub async fn evict(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_node_is_ready_with_its_capacity_and_labels() {
        let mut cfg = NodeConfig::new("n0");
        cfg.labels.insert("zone".into(), "a".into());
        let node = node_object(&cfg, "127.0.3.1");
        let labels = node.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "n0");
        assert_eq!(labels["zone"], "a");
        let status = node.status.as_ref().unwrap();
        assert_eq!(status.allocatable.as_ref().unwrap()["cpu"].0, "16000m");
        assert_eq!(status.allocatable.as_ref().unwrap()["pods"].0, "110");
        assert_eq!(status.addresses.as_ref().unwrap()[0].address, "127.0.3.1");
        let (beat, ready) = readiness(&node);
        assert!(beat.is_some());
        assert_eq!(ready.as_deref(), Some("True"));
    }
}
