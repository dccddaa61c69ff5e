//! Tables for node filtering, scoring and the unschedulable message.

use k8s_openapi::api::core::v1::{
    Affinity, Container, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PodSpec, ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::*;

fn node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: [("kubernetes.io/hostname".to_string(), name.to_string())].into(),
        cpu_millis: 4000,
        memory: 8 << 30,
        max_pods: 110,
        ..NodeInfo::default()
    }
}

fn pod(cpu: &str, mem: &str) -> Pod {
    Pod {
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    limits: Some(
                        [
                            ("cpu".to_string(), Quantity(cpu.into())),
                            ("memory".to_string(), Quantity(mem.into())),
                        ]
                        .into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn requests_default_to_limits_and_least_allocated_wins() {
    assert_eq!(requests(&pod("2", "1Gi")), (2000, 1 << 30));
    let mut busy = node("a");
    busy.used_cpu_millis = 3000;
    let nodes = [busy, node("b")];
    assert_eq!(pick(&pod("500m", "1Gi"), &nodes).unwrap(), "b");
    // Equal load: the name breaks the tie, so the choice is deterministic.
    assert_eq!(
        pick(&pod("1", "1Gi"), &[node("y"), node("x")]).unwrap(),
        "x"
    );
}

#[test]
fn unschedulable_pods_get_the_schedulers_message() {
    let mut tainted = node("a");
    tainted.taints.push(Taint {
        key: "node.kubernetes.io/unreachable".into(),
        effect: "NoExecute".into(),
        ..Default::default()
    });
    let nodes = [tainted, node("b")];
    let err = pick(&pod("5", "1Gi"), &nodes).unwrap_err();
    assert_eq!(
        err,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."
    );
    let mut p = pod("1", "1Gi");
    p.spec.as_mut().unwrap().node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
    assert_eq!(
        pick(&p, &[node("b")]).unwrap_err(),
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    );
    assert_eq!(
        pick(&p, &[]).unwrap_err(),
        "0/0 nodes are available: no nodes registered."
    );
}

#[test]
fn tolerations_affinity_and_cordons() {
    let taint = Taint {
        key: "dedicated".into(),
        value: Some("neptune".into()),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    let tol = |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
        key: key.map(String::from),
        operator: Some(op.into()),
        value: value.map(String::from),
        effect: effect.map(String::from),
        toleration_seconds: None,
    };
    assert!(tolerates(
        &tol(Some("dedicated"), "Equal", Some("neptune"), None),
        &taint
    ));
    assert!(!tolerates(
        &tol(Some("dedicated"), "Equal", Some("other"), None),
        &taint
    ));
    assert!(tolerates(
        &tol(Some("dedicated"), "Exists", None, Some("NoSchedule")),
        &taint
    ));
    assert!(!tolerates(
        &tol(Some("dedicated"), "Exists", None, Some("NoExecute")),
        &taint
    ));
    assert!(tolerates(&tol(None, "Exists", None, None), &taint));

    let mut a = node("a");
    a.labels.insert("zone".into(), "z1".into());
    let mut cordoned = node("b");
    cordoned.unschedulable = true;
    let mut p = pod("1", "1Gi");
    p.spec.as_mut().unwrap().affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "zone".into(),
                        operator: "In".into(),
                        values: Some(vec!["z1".into(), "z2".into()]),
                    }]),
                    match_fields: None,
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(pick(&p, &[a.clone(), node("c")]).unwrap(), "a");
    let err = pick(&pod("1", "1Gi"), &[cordoned]).unwrap_err();
    assert!(err.contains("1 node(s) were unschedulable"), "{err}");
    let mut full = node("d");
    full.pods = 110;
    assert!(
        pick(&pod("1", "1Gi"), &[full])
            .unwrap_err()
            .contains("Too many pods")
    );
}
