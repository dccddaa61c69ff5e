//! Operator configuration: command-line flags (each also an environment variable) turned into a
//! validated [`Config`].

use std::net::SocketAddr;

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;

/// Command-line flags of `neptune-operator`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "neptune-operator",
    version,
    about = "Reconciles StreamBatchApps into driver and executor pods"
)]
pub struct Args {
    /// Namespaces to watch (comma-separated); empty watches every namespace.
    #[arg(
        long,
        env = "NEPTUNE_WATCH_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub watch_namespaces: Vec<String>,
    /// Address of the HTTP server for `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "NEPTUNE_OPERATOR_HTTP", default_value = "0.0.0.0:8080")]
    pub http: SocketAddr,
    /// Elect a leader through a Lease so only one replica reconciles.
    #[arg(long, env = "NEPTUNE_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, env = "NEPTUNE_LEASE_NAME", default_value = "neptune-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Identity in the Lease and in Events (default: the pod name).
    #[arg(long, env = "POD_NAME", default_value = "neptune-operator")]
    pub identity: String,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "NEPTUNE_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Log as JSON lines.
    #[arg(long, env = "NEPTUNE_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
    /// Seconds past a pod's `deletionTimestamp` (the delete request plus its grace period)
    /// after which a pod still Terminating is force-deleted (grace 0): its node is most likely
    /// lost, and its fixed name blocks the replacement.
    #[arg(
        long,
        env = "NEPTUNE_FORCE_DELETE_AFTER_SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(0..=86_400)
    )]
    pub force_delete_after_seconds: u64,
    /// Never force-delete pods stuck Terminating (wait for the kubelet or an administrator).
    #[arg(long, env = "NEPTUNE_NO_FORCE_DELETE", default_value_t = false)]
    pub no_force_delete: bool,
    /// Make no NetworkPolicy per app (by default each app gets `<app>-neptune`, which admits
    /// only the app's own pods to the driver's gRPC port and the executors' block port).
    #[arg(long, env = "NEPTUNE_NO_NETWORK_POLICY", default_value_t = false)]
    pub no_network_policy: bool,
    /// Peers admitted to the apps' HTTP ports (metrics, probes, `/status`) besides the app's
    /// own pods: a JSON array of Kubernetes `NetworkPolicyPeer` objects, e.g.
    /// `[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`.
    /// Empty (`[]`) admits any source to the HTTP ports. Include the operator's own pods: it
    /// reads each driver's `/status`.
    #[arg(
        long,
        env = "NEPTUNE_NETWORK_POLICY_HTTP_FROM",
        default_value = "[]",
        value_parser = parse_peers
    )]
    pub network_policy_http_from: Peers,
}

/// `NetworkPolicyPeer`s given as JSON (see [`Args::network_policy_http_from`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Peers(pub Vec<NetworkPolicyPeer>);

fn parse_peers(s: &str) -> Result<Peers, String> {
    let peers: Vec<NetworkPolicyPeer> = serde_json::from_str(s).map_err(|e| {
        format!("not a JSON array of NetworkPolicyPeer objects ({e}); e.g. [{{\"podSelector\":{{\"matchLabels\":{{\"app\":\"prometheus\"}}}}}}]")
    })?;
    for (i, p) in peers.iter().enumerate() {
        if p.pod_selector.is_none() && p.namespace_selector.is_none() && p.ip_block.is_none() {
            return Err(format!(
                "peer {i} sets none of podSelector, namespaceSelector, ipBlock (Kubernetes rejects it)"
            ));
        }
    }
    Ok(Peers(peers))
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// HTTP address for metrics and probes.
    pub http: SocketAddr,
    /// Leader election, if enabled.
    pub leader: Option<LeaderConfig>,
    /// Identity of this replica.
    pub identity: String,
    /// What the lifecycle planner needs from the operator's configuration.
    pub settings: Settings,
}

/// Operator-wide settings the (pure) lifecycle planner uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Seconds past `deletionTimestamp` after which a Terminating pod is force-deleted; `None`
    /// never force-deletes.
    pub force_delete_after_seconds: Option<i64>,
    /// The peers admitted to the apps' HTTP ports besides their own pods (empty: any source),
    /// or `None` to make no NetworkPolicy.
    pub network_policy: Option<Vec<NetworkPolicyPeer>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            force_delete_after_seconds: Some(60),
            network_policy: Some(Vec::new()),
        }
    }
}

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace.
    pub namespace: String,
    /// Lease validity in seconds.
    pub duration_seconds: u64,
}

impl From<Args> for Config {
    fn from(a: Args) -> Self {
        let namespaces = a
            .watch_namespaces
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        Self {
            namespaces,
            http: a.http,
            leader: a.leader_election.then(|| LeaderConfig {
                lease_name: a.lease_name,
                namespace: a.lease_namespace,
                duration_seconds: a.lease_duration_seconds.max(5),
            }),
            identity: a.identity,
            settings: Settings {
                force_delete_after_seconds: (!a.no_force_delete)
                    .then_some(a.force_delete_after_seconds as i64),
                network_policy: (!a.no_network_policy).then_some(a.network_policy_http_from.0),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let mut all = vec!["neptune-operator"];
        all.extend(args);
        Args::try_parse_from(all).map(Config::from)
    }

    #[test]
    fn network_policy_flags() {
        assert_eq!(parse(&[]).unwrap().settings.network_policy, Some(vec![]));
        assert_eq!(
            parse(&["--no-network-policy"])
                .unwrap()
                .settings
                .network_policy,
            None
        );
        let c = parse(&[
            "--network-policy-http-from",
            r#"[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]"#,
        ])
        .unwrap();
        assert_eq!(c.settings.network_policy.unwrap().len(), 1);
        for (bad, says) in [
            ("{}", "JSON array of NetworkPolicyPeer"),
            ("[{}]", "peer 0 sets none of"),
            (r#"[{"podSelector": 3}]"#, "JSON array of NetworkPolicyPeer"),
        ] {
            let e = parse(&["--network-policy-http-from", bad])
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
