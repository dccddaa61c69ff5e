//! Node choice for pods without `spec.nodeName`: the default scheduler's filters that matter to
//! a twin (node `unschedulable`, `nodeSelector`, required node affinity, taints and
//! tolerations, CPU/memory requests against allocatable, the pod count) and a
//! least-allocated score. Pure, so it is tested as a table; the kubelet binds the result.
//!
//! A pod no node fits gets the scheduler's message, e.g. `0/2 nodes are available: 1
//! Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector.` Not modelled:
//! preferred affinity, pod (anti-)affinity, topology spread, priorities and preemption, host
//! ports, volume topology.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, Pod, ResourceRequirements, Taint, Toleration,
};

use super::fields::{cpu_millis, memory_bytes};

/// A node as the scheduler sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Taints (including the node controller's `not-ready`/`unreachable`).
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Allocatable CPU (millicores), memory (bytes), pods.
    pub cpu_millis: u64,
    /// See `cpu_millis`.
    pub memory: u64,
    /// See `cpu_millis`.
    pub max_pods: u32,
    /// Requests of the pods already on the node.
    pub used_cpu_millis: u64,
    /// See `used_cpu_millis`.
    pub used_memory: u64,
    /// Pods already on the node.
    pub pods: u32,
}

/// A pod's effective requests: the larger of its containers' sum and its largest init
/// container; a container with limits but no requests requests its limits (API defaulting).
pub fn requests(pod: &Pod) -> (u64, u64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let one = |r: Option<&ResourceRequirements>| {
        let get = |name: &str| {
            r.and_then(|r| {
                r.requests
                    .as_ref()
                    .and_then(|m| m.get(name))
                    .or_else(|| r.limits.as_ref().and_then(|m| m.get(name)))
            })
            .map(|q| q.0.clone())
        };
        (
            get("cpu").and_then(|q| cpu_millis(&q).ok()).unwrap_or(0),
            get("memory")
                .and_then(|q| memory_bytes(&q).ok())
                .unwrap_or(0),
        )
    };
    let (mut cpu, mut mem) = (0u64, 0u64);
    for c in &spec.containers {
        let (c_cpu, c_mem) = one(c.resources.as_ref());
        cpu = cpu.saturating_add(c_cpu);
        mem = mem.saturating_add(c_mem);
    }
    for c in spec.init_containers.iter().flatten() {
        let (c_cpu, c_mem) = one(c.resources.as_ref());
        cpu = cpu.max(c_cpu);
        mem = mem.max(c_mem);
    }
    (cpu, mem)
}

/// The node for `pod`, or the scheduler's "0/N nodes are available" message.
///
/// # Errors
/// The message when no node fits.
pub fn pick(pod: &Pod, nodes: &[NodeInfo]) -> Result<String, String> {
    let (cpu, mem) = requests(pod);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(f64, u32, &str)> = None;
    for node in nodes {
        match filter(pod, node, cpu, mem) {
            Err(reason) => *reasons.entry(reason).or_default() += 1,
            Ok(()) => {
                let frac = |used: u64, req: u64, cap: u64| {
                    (used.saturating_add(req)) as f64 / cap.max(1) as f64
                };
                let score = frac(node.used_cpu_millis, cpu, node.cpu_millis)
                    + frac(node.used_memory, mem, node.memory);
                let key = (score, node.pods, node.name.as_str());
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
    }
    match best {
        Some((_, _, name)) => Ok(name.to_string()),
        None => {
            let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            Err(format!(
                "0/{} nodes are available: {}.",
                nodes.len(),
                if parts.is_empty() {
                    "no nodes registered".to_string()
                } else {
                    parts.join(", ")
                }
            ))
        }
    }
}

/// The first reason `node` cannot take `pod`.
fn filter(pod: &Pod, node: &NodeInfo, cpu: u64, mem: u64) -> Result<(), String> {
    let spec = pod.spec.as_ref();
    let tolerations: &[Toleration] = spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
    if node.unschedulable
        && !tolerations.iter().any(|t| {
            tolerates(
                t,
                &Taint {
                    key: "node.kubernetes.io/unschedulable".into(),
                    effect: "NoSchedule".into(),
                    ..Taint::default()
                },
            )
        })
    {
        return Err("node(s) were unschedulable".into());
    }
    let selector_ok = spec
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|sel| sel.iter().all(|(k, v)| node.labels.get(k) == Some(v)));
    let terms = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice());
    let affinity_ok = terms.is_none_or(|terms| terms.iter().any(|t| term_matches(t, node)));
    if !(selector_ok && affinity_ok) {
        return Err("node(s) didn't match Pod's node affinity/selector".into());
    }
    if let Some(taint) = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
    {
        return Err(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        ));
    }
    if node.pods >= node.max_pods {
        return Err("Too many pods".into());
    }
    if node.used_cpu_millis.saturating_add(cpu) > node.cpu_millis {
        return Err("Insufficient cpu".into());
    }
    if node.used_memory.saturating_add(mem) > node.memory {
        return Err("Insufficient memory".into());
    }
    Ok(())
}

/// Whether toleration `t` tolerates `taint` (the apiserver's `ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    let exists = t.operator.as_deref() == Some("Exists");
    if key.is_empty() {
        return exists;
    }
    if key != taint.key {
        return false;
    }
    exists || t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
}

fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement(r, node.labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement(r, Some(node.name.as_str())))
}

fn requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let num = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(num), values.first().and_then(|x| num(x))), (Some(v), Some(x)) if v > x)
        }
        "Lt" => {
            matches!((value.and_then(num), values.first().and_then(|x| num(x))), (Some(v), Some(x)) if v < x)
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
