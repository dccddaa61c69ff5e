//! The app's NetworkPolicy `<app>-neptune`: only the app's own pods reach the cluster ports
//! (driver gRPC 7077, executors' block server 7078); the HTTP ports (`/metrics`, probes,
//! `/status`, token-guarded `/admin/`) admit the peers the operator was configured with
//! (Prometheus, the operator itself), or any source when none is configured.
//!
//! Mutual TLS already refuses strangers on the cluster ports; the policy narrows who can even
//! open a connection (no TLS handshakes to exhaust, no scans). It restricts ingress only: apps
//! read and write their sources and sinks anywhere. Policies add up in Kubernetes, so a
//! namespace's default-deny or other policies keep working beside this one. See
//! docs/security.md, "On Kubernetes".

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use neptune_crds::{StreamBatchApp, labels as l, ports};

use super::{app_labels, owner_reference};

/// Name of the NetworkPolicy of the app called `app_name`.
pub fn network_policy_name(app_name: &str) -> String {
    format!("{app_name}-neptune")
}

/// Selects every pod of `app` (driver and executors): the app label plus the operator's
/// managed-by label, which a pod template cannot override (the operator's labels win).
fn app_pods(app: &StreamBatchApp) -> LabelSelector {
    let labels = app_labels(app);
    LabelSelector {
        match_labels: Some(
            labels
                .into_iter()
                .filter(|(k, _)| k == l::APP || k == l::MANAGED_BY)
                .collect(),
        ),
        match_expressions: None,
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        end_port: None,
    }
}

/// The NetworkPolicy of `app`. `http_from` are the peers admitted to the HTTP ports besides the
/// app's pods; empty admits any source there (the HTTP ports serve only what is harmless to
/// read, and state changes need the app's token).
pub fn network_policy(app: &StreamBatchApp, http_from: &[NetworkPolicyPeer]) -> NetworkPolicy {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let own = NetworkPolicyPeer {
        pod_selector: Some(app_pods(app)),
        ..NetworkPolicyPeer::default()
    };
    let mon = &app.spec.monitoring;
    let mut http_ports = vec![tcp(mon.driver_port)];
    if mon.executor_port != mon.driver_port {
        http_ports.push(tcp(mon.executor_port));
    }
    let cluster = NetworkPolicyIngressRule {
        from: Some(vec![own.clone()]),
        ports: Some(vec![tcp(ports::DRIVER_GRPC), tcp(ports::EXECUTOR_BLOCKS)]),
    };
    let http = NetworkPolicyIngressRule {
        // No `from`: every source (Kubernetes' meaning of an absent list).
        from: (!http_from.is_empty()).then(|| {
            let mut peers = vec![own];
            peers.extend(http_from.iter().cloned());
            peers
        }),
        ports: Some(http_ports),
    };
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(network_policy_name(name)),
            namespace: app.metadata.namespace.clone(),
            labels: Some(app_labels(app)),
            owner_references: Some(vec![owner_reference(app)]),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(app_pods(app)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![cluster, http]),
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> StreamBatchApp {
        serde_yaml::from_str(
            "apiVersion: neptune.dev/v1alpha1\nkind: StreamBatchApp\nmetadata: {name: fd, namespace: ns, uid: u1}\nspec: {image: 'neptune:dev', app: {name: fraud-detection}, monitoring: {driverPort: 9000}}\n",
        )
        .unwrap()
    }

    fn ports_of(r: &NetworkPolicyIngressRule) -> Vec<i32> {
        r.ports
            .iter()
            .flatten()
            .map(|p| match p.port {
                Some(IntOrString::Int(n)) => n,
                ref other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn only_the_apps_pods_reach_the_cluster_ports() {
        let p = network_policy(&app(), &[]);
        assert_eq!(p.metadata.name.as_deref(), Some("fd-neptune"));
        assert_eq!(p.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
        let spec = p.spec.unwrap();
        let selected = spec.pod_selector.unwrap().match_labels.unwrap();
        assert_eq!(selected[l::APP], "fd");
        assert_eq!(selected[l::MANAGED_BY], l::MANAGED_BY_VALUE);
        assert_eq!(spec.policy_types.unwrap(), ["Ingress"]);
        assert!(spec.egress.is_none(), "egress is not restricted");
        let rules = spec.ingress.unwrap();
        assert_eq!(ports_of(&rules[0]), [7077, 7078]);
        let from = rules[0].from.as_ref().unwrap();
        assert_eq!(from.len(), 1);
        assert_eq!(
            from[0].pod_selector.as_ref().unwrap().match_labels.as_ref(),
            Some(&selected)
        );
        assert!(from[0].namespace_selector.is_none(), "same namespace only");
        // HTTP: the configured driver port and the default executor port, from anywhere.
        assert_eq!(ports_of(&rules[1]), [9000, 4041]);
        assert!(rules[1].from.is_none());
    }

    #[test]
    fn configured_http_peers_narrow_the_http_ports() {
        let prometheus: NetworkPolicyPeer = serde_json::from_str(
            r#"{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}"#,
        )
        .unwrap();
        let p = network_policy(&app(), std::slice::from_ref(&prometheus));
        let rules = p.spec.unwrap().ingress.unwrap();
        let from = rules[1].from.as_ref().unwrap();
        assert_eq!(from.len(), 2, "the app's pods and Prometheus");
        assert_eq!(from[1], prometheus);
    }
}
