//! The kubelet's control loops: the pod loop (schedule unbound pods, start a worker for each
//! pod bound to one of our running nodes, hand workers their pod's latest version and hosts
//! file, notice pods that vanished), node heartbeats, the node lifecycle controller, and the
//! memory monitor.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::Notify;

use super::hosts;
use super::node;
use super::scheduler::{self, NodeInfo};
use super::shared::Shared;
use super::worker::{self, WorkerHandle};

/// Caches the pod loop reads besides `Shared`'s.
pub struct Views {
    /// Services (hosts files).
    pub services: Store<Service>,
    /// Nodes (scheduling, the lifecycle controller).
    pub nodes: Store<Node>,
}

/// The pod loop: runs until the task is aborted.
pub async fn pod_loop(sh: Arc<Shared>, views: Views, wake: Arc<Notify>) {
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    // Pods bound by us whose binding the cache has not shown yet (the scheduler's "assumed"
    // pods), so one pass does not overcommit a node.
    let mut assumed: HashMap<String, (String, Pod)> = HashMap::new();
    // Last unschedulable message per pod uid, to write the condition and Event once.
    let mut unschedulable: HashMap<String, String> = HashMap::new();
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sh.cfg.timings.retry.min(Duration::from_secs(1))) => {}
        }
        let pods = sh.pods.state();
        let services = views.services.state();
        let nodes = views.nodes.state();
        schedule(&sh, &pods, &nodes, &mut assumed, &mut unschedulable).await;

        let mut seen = HashSet::new();
        for pod in &pods {
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            let Some(node) = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .and_then(|n| sh.nodes.get(n))
            else {
                continue;
            };
            if node.is_stopped() {
                continue;
            }
            seen.insert(uid.clone());
            let hosts = hosts::hosts_file(pod, &services, &pods);
            match workers.get(&uid) {
                Some(w) => {
                    w.pod.send_if_modified(|cur| {
                        let newer = cur.as_ref().map(|c| c.metadata.resource_version.clone())
                            != Some(pod.metadata.resource_version.clone());
                        if newer {
                            *cur = Some(pod.clone());
                        }
                        newer
                    });
                    w.hosts.send_if_modified(|cur| {
                        let changed = *cur != hosts;
                        if changed {
                            cur.clone_from(&hosts);
                        }
                        changed
                    });
                }
                None => {
                    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                    if matches!(phase, Some("Succeeded" | "Failed")) {
                        // Finished before this kubelet knew it (a restarted kubelet): nothing
                        // runs again; a deletion is confirmed straight away.
                        if pod.metadata.deletion_timestamp.is_some() {
                            confirm_deleted(&sh, pod).await;
                        }
                        continue;
                    }
                    workers.insert(
                        uid,
                        worker::spawn(sh.clone(), node.clone(), pod.clone(), hosts),
                    );
                }
            }
        }
        workers.retain(|uid, w| {
            if w.task.is_finished() {
                return false;
            }
            if !seen.contains(uid) {
                // Gone from the API (or its node stopped): the worker sees `None` and ends.
                let _ = w.pod.send(None);
            }
            true
        });
        assumed.retain(|uid, _| {
            pods.iter().any(|p| {
                p.metadata.uid.as_deref() == Some(uid.as_str())
                    && p.spec.as_ref().is_some_and(|s| s.node_name.is_none())
            })
        });
    }
}

async fn confirm_deleted(sh: &Shared, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(
        sh.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let dp = kube::api::DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let _ = api
        .delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp)
        .await;
}

/// Node views for the scheduler: every Node in the API, with what is bound to it.
fn node_infos(
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    assumed: &HashMap<String, (String, Pod)>,
) -> Vec<NodeInfo> {
    let mut infos: Vec<NodeInfo> = nodes
        .iter()
        .map(|n| {
            let alloc = n
                .status
                .as_ref()
                .and_then(|s| s.allocatable.clone())
                .unwrap_or_default();
            let q = |k: &str| alloc.get(k).map(|q| q.0.clone()).unwrap_or_default();
            NodeInfo {
                name: n.metadata.name.clone().unwrap_or_default(),
                labels: n.metadata.labels.clone().unwrap_or_default(),
                taints: n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default(),
                unschedulable: n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true),
                cpu_millis: super::fields::cpu_millis(&q("cpu")).unwrap_or(0),
                memory: super::fields::memory_bytes(&q("memory")).unwrap_or(0),
                max_pods: q("pods").parse().unwrap_or(110),
                ..NodeInfo::default()
            }
        })
        .collect();
    let bound = pods.iter().filter_map(|p| {
        let node = p.spec.as_ref()?.node_name.clone()?;
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        (!matches!(phase, Some("Succeeded" | "Failed"))).then_some((node, p.as_ref()))
    });
    for (node, p) in bound.chain(assumed.values().map(|(n, p)| (n.clone(), p))) {
        if let Some(info) = infos.iter_mut().find(|i| i.name == node) {
            let (cpu, mem) = scheduler::requests(p);
            info.used_cpu_millis = info.used_cpu_millis.saturating_add(cpu);
            info.used_memory = info.used_memory.saturating_add(mem);
            info.pods += 1;
        }
    }
    infos
}

async fn schedule(
    sh: &Shared,
    pods: &[Arc<Pod>],
    nodes: &[Arc<Node>],
    assumed: &mut HashMap<String, (String, Pod)>,
    unschedulable: &mut HashMap<String, String>,
) {
    for pod in pods {
        let spec = pod.spec.as_ref();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ours = spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n == "default-scheduler");
        let gated = spec
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| !g.is_empty());
        if !ours
            || gated
            || spec.is_none_or(|s| s.node_name.is_some())
            || pod.metadata.deletion_timestamp.is_some()
            || assumed.contains_key(&uid)
        {
            continue;
        }
        let infos = node_infos(nodes, pods, assumed);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Pod> = Api::namespaced(sh.client.clone(), &ns);
        match scheduler::pick(pod, &infos) {
            Ok(node) => match bind(&api, &name, &uid, &node).await {
                Ok(()) => {
                    assumed.insert(uid.clone(), (node.clone(), (**pod).clone()));
                    unschedulable.remove(&uid);
                    if let Some(n) = sh.nodes.keys().next() {
                        sh.event(
                            n,
                            pod,
                            false,
                            "Scheduled",
                            format!("Successfully assigned {ns}/{name} to {node}"),
                        );
                    }
                }
                Err(e) => tracing::warn!(pod = %name, error = %e, "binding failed"),
            },
            Err(message) => {
                if unschedulable.get(&uid) == Some(&message) {
                    continue;
                }
                let now = Timestamp::now().to_string();
                let cond = json!({"status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastTransitionTime": now, "lastProbeTime": null}],
                    "phase": "Pending"}});
                if api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&cond))
                    .await
                    .is_ok()
                {
                    if let Some(n) = sh.nodes.keys().next() {
                        sh.event(n, pod, true, "FailedScheduling", message.clone());
                    }
                    unschedulable.insert(uid, message);
                }
            }
        }
    }
}

/// Binds through the `binding` subresource (what the scheduler does); an API without it gets
/// `spec.nodeName` patched instead.
async fn bind(api: &Api<Pod>, name: &str, uid: &str, node: &str) -> Result<(), kube::Error> {
    let binding = Binding {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            uid: Some(uid.to_string()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    match api
        .create_subresource::<Binding, serde_json::Value>(
            "binding",
            name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if matches!(e.code, 404 | 405) && e.reason != "NotFound" => api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"nodeName": node}})),
            )
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Heartbeats of one node until it is stopped.
pub async fn heartbeat_loop(sh: Arc<Shared>, name: String) {
    let Some(handle) = sh.nodes.get(&name).cloned() else {
        return;
    };
    let api: Api<Node> = Api::all(sh.client.clone());
    let mut stopped = handle.stopped.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(sh.cfg.timings.node_status_interval) => {}
            _ = stopped.changed() => {}
        }
        if handle.is_stopped() {
            return;
        }
        if let Err(e) = node::heartbeat(&api, &handle.cfg, &handle.ip).await {
            tracing::warn!(node = %name, error = %e, "node heartbeat failed");
        }
    }
}

/// The node lifecycle controller: silent nodes become Unknown and tainted, their pods not
/// Ready, then evicted.
pub async fn node_controller(sh: Arc<Shared>, nodes: Store<Node>) {
    let api: Api<Node> = Api::all(sh.client.clone());
    let mut silent_since: HashMap<String, tokio::time::Instant> = HashMap::new();
    let mut evicted: HashSet<String> = HashSet::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let grace = sh.cfg.timings.node_monitor_grace;
        let now = Timestamp::now();
        for n in nodes.state() {
            let name = n.metadata.name.clone().unwrap_or_default();
            let (beat, ready) = node::readiness(&n);
            let stale =
                beat.is_none_or(|b| now.duration_since(b).as_secs_f64() > grace.as_secs_f64());
            if !stale {
                silent_since.remove(&name);
                evicted.remove(&name);
                continue;
            }
            if ready.as_deref() != Some("Unknown")
                && let Err(e) = node::mark_unreachable(&api, &n).await
            {
                tracing::warn!(node = %name, error = %e, "marking node unreachable failed");
                continue;
            }
            let since = *silent_since
                .entry(name.clone())
                .or_insert_with(tokio::time::Instant::now);
            let on_node: Vec<Arc<Pod>> = sh
                .pods
                .state()
                .into_iter()
                .filter(|p| {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                })
                .collect();
            for p in &on_node {
                let pods: Api<Pod> = Api::namespaced(
                    sh.client.clone(),
                    p.metadata.namespace.as_deref().unwrap_or("default"),
                );
                let _ = node::mark_pod_not_ready(&pods, p).await;
            }
            if let Some(timeout) = sh.cfg.timings.pod_eviction_timeout
                && since.elapsed() >= timeout
                && evicted.insert(name.clone())
            {
                for p in on_node
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                {
                    let pods: Api<Pod> = Api::namespaced(
                        sh.client.clone(),
                        p.metadata.namespace.as_deref().unwrap_or("default"),
                    );
                    if node::evict(&pods, p).await.is_ok()
                        && let Some(reporter) = sh.nodes.keys().next()
                    {
                        let note = format!(
                            "Marking for deletion Pod {}/{}",
                            p.metadata.namespace.as_deref().unwrap_or_default(),
                            p.metadata.name.as_deref().unwrap_or_default()
                        );
                        sh.event(reporter, p, false, "TaintManagerEviction", note);
                    }
                }
            }
        }
    }
}

/// Compares container memory with limits every `memory_poll`.
pub async fn memory_loop(sh: Arc<Shared>) {
    loop {
        tokio::time::sleep(sh.cfg.timings.memory_poll).await;
        let s = sh.clone();
        let killed = tokio::task::spawn_blocking(move || s.registry.enforce_limits())
            .await
            .unwrap_or_default();
        for sid in killed {
            tracing::info!(pid = sid, "container killed: memory limit exceeded");
        }
    }
}
