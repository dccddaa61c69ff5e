//! What a scenario may do to a cluster, implemented by the twin ([`crate::twin`]) and by kind
//! ([`crate::kind`]). Everything else goes through kubectl and HTTP to pods, so the same
//! scenarios run on both.

use std::future::Future;

use crate::error::E2eError;
use crate::kubectl::Kubectl;

/// A cluster the scenarios run on.
pub trait Cluster: Sync {
    /// `twin` or `kind`.
    fn backend(&self) -> &'static str;

    /// kubectl for this cluster.
    fn kubectl(&self) -> &Kubectl;

    /// The Neptune image apps run (`spec.image`).
    fn image(&self) -> &str;

    /// Installs the operator (and its CRD) and waits until it serves.
    fn install_operator(&self) -> impl Future<Output = Result<(), E2eError>>;

    /// `GET http://<pod IP>:<port><path>` (on kind through the API server's pod proxy).
    fn http_get(
        &self,
        ns: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> impl Future<Output = Result<String, E2eError>>;

    /// Kills a container's processes (SIGKILL), as a crash would.
    fn kill_container(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> impl Future<Output = Result<(), E2eError>>;

    /// Makes `node` unreachable: its processes die and its kubelet goes silent.
    fn lose_node(&self, node: &str) -> impl Future<Output = Result<(), E2eError>>;

    /// `host:port` of the operator's `/metrics` when this process can scrape it (the twin runs
    /// the operator locally); `None` where the operator runs in the cluster.
    fn operator_metrics(&self) -> Option<String> {
        None
    }

    /// Logs of the operator, for diagnostics of a failed scenario.
    fn operator_logs(&self) -> impl Future<Output = String>;
}
