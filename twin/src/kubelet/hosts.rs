//! The pod's `/etc/hosts`: the twin's stand-in for cluster DNS.
//!
//! There is no DNS server and no kube-proxy: every Service name resolves straight to the pod
//! IPs of its endpoints (what a headless Service gives on a real cluster; for a ClusterIP
//! Service clients therefore connect to `targetPort` = `port`, which holds for every Service
//! Neptune creates). Names follow cluster DNS: `svc` (same namespace only, the search path),
//! `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`; pods with `hostname` + `subdomain` of a
//! headless Service get `host.sub.ns.svc.cluster.local`. Endpoints are the selected pods that
//! have an IP, are not terminating and not finished, and are Ready — or any of them when the
//! Service sets `publishNotReadyAddresses`. The file is rewritten in place while the pod runs.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};

/// The cluster domain (`cluster.local`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// `/etc/hosts` for `pod` given every Service and Pod of the cluster.
pub fn hosts_file(pod: &Pod, services: &[Arc<Service>], pods: &[Arc<Pod>]) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = String::from(
        "# Kubernetes-managed hosts file (cluster twin: Service names resolve to pod IPs).\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    if let (Some(ip), Some(name)) = (pod_ip(pod), pod.metadata.name.as_deref()) {
        let host = super::env::hostname(pod, name);
        match pod.spec.as_ref().and_then(|s| s.subdomain.as_deref()) {
            Some(sub) => {
                let _ = writeln!(out, "{ip}\t{host}.{sub}.{ns}.svc.{CLUSTER_DOMAIN}\t{host}");
            }
            None => {
                let _ = writeln!(out, "{ip}\t{host}");
            }
        }
    }
    let mut sorted: Vec<&Arc<Service>> = services.iter().collect();
    sorted.sort_by_key(|s| (s.metadata.namespace.clone(), s.metadata.name.clone()));
    for svc in sorted {
        let (Some(name), Some(sns)) = (
            svc.metadata.name.as_deref(),
            svc.metadata.namespace.as_deref(),
        ) else {
            continue;
        };
        let mut names = Vec::with_capacity(4);
        if sns == ns {
            names.push(name.to_string());
        }
        names.push(format!("{name}.{sns}"));
        names.push(format!("{name}.{sns}.svc"));
        names.push(format!("{name}.{sns}.svc.{CLUSTER_DOMAIN}"));
        let names = names.join(" ");
        let endpoints = endpoints(svc, pods);
        for p in &endpoints {
            if let Some(ip) = pod_ip(p) {
                let _ = writeln!(out, "{ip}\t{names}");
            }
        }
        if is_headless(svc) {
            for p in &endpoints {
                let spec = p.spec.as_ref();
                if let (Some(ip), Some(host), Some(sub)) = (
                    pod_ip(p),
                    spec.and_then(|s| s.hostname.as_deref()),
                    spec.and_then(|s| s.subdomain.as_deref()),
                ) && sub == name
                {
                    let _ = writeln!(out, "{ip}\t{host}.{name}.{sns}.svc.{CLUSTER_DOMAIN}");
                }
            }
        }
    }
    out
}

/// The pods a Service routes to, sorted by IP (deterministic file contents).
pub fn endpoints(svc: &Service, pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let not_ready_ok = spec.publish_not_ready_addresses == Some(true);
    let ns = svc.metadata.namespace.as_deref();
    let mut out: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .filter(|p| selects(selector, p.metadata.labels.as_ref()))
        .filter(|p| pod_ip(p).is_some() && p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter(|p| not_ready_ok || is_ready(p))
        .cloned()
        .collect();
    out.sort_by_key(|p| pod_ip(p).map(str::to_string));
    out
}

fn selects(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(labels) = labels else {
        return false;
    };
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ip(p: &Pod) -> Option<&str> {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(ns: &str, name: &str, ip: &str, role: &str, ready: bool) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some(ns.into());
        p.metadata.labels = Some([("role".to_string(), role.to_string())].into());
        p.spec = Some(PodSpec::default());
        p.status = Some(PodStatus {
            pod_ip: Some(ip.into()),
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        Arc::new(p)
    }

    fn svc(ns: &str, name: &str, role: &str, headless: bool, not_ready: bool) -> Arc<Service> {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some(ns.into());
        s.spec = Some(ServiceSpec {
            selector: Some([("role".to_string(), role.to_string())].into()),
            cluster_ip: headless.then(|| "None".to_string()),
            publish_not_ready_addresses: Some(not_ready),
            ..Default::default()
        });
        Arc::new(s)
    }

    #[test]
    fn services_resolve_to_their_endpoints_under_every_cluster_dns_name() {
        let me = pod("a", "exec-0", "127.0.5.3", "executor", true);
        let driver = pod("a", "drv", "127.0.5.2", "driver", false);
        let other_ns = pod("b", "web", "127.0.5.9", "web", true);
        let mut gone = (*pod("b", "old", "127.0.5.8", "web", true)).clone();
        gone.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let pods = vec![me.clone(), driver, other_ns, Arc::new(gone)];
        let services = vec![
            svc("a", "drv", "driver", true, true),
            svc("a", "drv-ready", "driver", false, false),
            svc("b", "web", "web", false, false),
        ];
        let hosts = hosts_file(&me, &services, &pods);
        assert!(hosts.contains("127.0.5.3\texec-0\n"), "{hosts}");
        assert!(
            hosts.contains("127.0.5.2\tdrv drv.a drv.a.svc drv.a.svc.cluster.local\n"),
            "publishNotReadyAddresses keeps the not-ready driver: {hosts}"
        );
        assert!(
            !hosts.contains("drv-ready"),
            "no ready endpoint, no name: {hosts}"
        );
        assert!(
            hosts.contains("127.0.5.9\tweb.b web.b.svc web.b.svc.cluster.local\n"),
            "other namespaces only under qualified names: {hosts}"
        );
        assert!(
            !hosts.contains("127.0.5.8"),
            "terminating pods are no endpoints"
        );
    }

    #[test]
    fn subdomain_pods_get_their_own_name_under_a_headless_service() {
        let mut p = (*pod("a", "w-0", "127.0.5.4", "w", true)).clone();
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("w-0".into());
        spec.subdomain = Some("w".into());
        let p = Arc::new(p);
        let hosts = hosts_file(
            &p,
            &[svc("a", "w", "w", true, false)],
            std::slice::from_ref(&p),
        );
        assert!(
            hosts.contains("127.0.5.4\tw-0.w.a.svc.cluster.local\tw-0\n"),
            "{hosts}"
        );
        assert!(
            hosts.contains("127.0.5.4\tw-0.w.a.svc.cluster.local\n"),
            "{hosts}"
        );
    }
}
