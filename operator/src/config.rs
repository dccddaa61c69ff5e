//! Operator configuration: command-line flags (each also an environment variable) turned into a
//! validated [`Config`].

use std::net::SocketAddr;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Seconds past `deletionTimestamp` after which a Terminating pod is force-deleted; `None`
    /// never force-deletes.
    pub force_delete_after_seconds: Option<i64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            force_delete_after_seconds: Some(60),
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
            },
        }
    }
}
