//! The cluster twin as a scenario back end: the twin's API server and kubelet in this process,
//! the real `neptune-operator` binary as a process with the twin's kubeconfig, the real kubectl,
//! pods running the real `neptune` binary on their own loopback IPs.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use neptune_twin::kubelet::{
    InCluster, Kubelet, KubeletConfig, NodeConfig, Timings, neptune_images,
};
use neptune_twin::{Twin, TwinConfig};

use crate::cluster::Cluster;
use crate::error::E2eError;
use crate::http;
use crate::kubectl::Kubectl;

/// Where the twin finds what it runs.
#[derive(Clone, Debug)]
pub struct TwinOptions {
    /// Directory with `neptune`, `neptune-operator` and `neptune-pod-init` (e.g. `target/ci`).
    pub bin_dir: PathBuf,
    /// kubectl.
    pub kubectl: PathBuf,
    /// The CRD (`crds/streambatchapp.yaml`).
    pub crd: PathBuf,
    /// Number of nodes.
    pub nodes: usize,
    /// State, logs and kubeconfig go under here (one subdirectory per twin).
    pub work_dir: PathBuf,
    /// Image reference apps use (any `neptune:*` maps to the built binaries).
    pub image: String,
}

/// A running twin with the operator.
pub struct TwinCluster {
    twin: Twin,
    kubelet: Kubelet,
    kubectl: Kubectl,
    opts: TwinOptions,
    dir: PathBuf,
    operator: Mutex<Option<tokio::process::Child>>,
    /// `127.0.0.1:<port>` of the operator's `/metrics`, once it runs.
    operator_metrics: Mutex<Option<String>>,
}

impl std::fmt::Debug for TwinCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwinCluster")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn err(what: &str) -> impl Fn(String) -> E2eError + '_ {
    move |e| E2eError::Cluster(format!("{what}: {e}"))
}

impl TwinCluster {
    /// Starts the API server and the kubelet in `opts.work_dir/<name>`.
    ///
    /// # Errors
    /// [`E2eError::Cluster`] when a piece does not start.
    pub async fn start(name: &str, opts: TwinOptions) -> Result<Self, E2eError> {
        let dir = opts.work_dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| err("work dir")(e.to_string()))?;
        let twin = Twin::start(TwinConfig {
            dir: Some(dir.join("api")),
            ..TwinConfig::default()
        })
        .await
        .map_err(|e| err("twin API server")(e.to_string()))?;
        let client = twin
            .client()
            .await
            .map_err(|e| err("client")(e.to_string()))?;
        let images = neptune_images(&opts.bin_dir).map_err(|e| err("image map")(e.to_string()))?;
        let mut cfg = KubeletConfig::new(
            dir.join("kubelet"),
            twin.state().log_dir.clone(),
            opts.bin_dir.join("neptune-pod-init"),
            images,
        );
        cfg.nodes = (0..opts.nodes)
            .map(|i| NodeConfig::new(format!("twin-node-{i}")))
            .collect();
        cfg.in_cluster = Some(InCluster {
            host: twin.addr().ip().to_string(),
            port: twin.addr().port(),
            ca_pem: twin.ca_pem().to_string(),
            token: twin.token().to_string(),
        });
        // Faster than a real cluster where only waiting is at stake: heartbeats every 2 s, a
        // node Unknown after 8 s of silence. Pods of a lost node are not evicted by the twin:
        // scenarios delete them as the eviction would, the same way on kind (where eviction
        // takes 5 minutes).
        cfg.timings = Timings {
            node_status_interval: Duration::from_secs(2),
            node_monitor_grace: Duration::from_secs(8),
            pod_eviction_timeout: None,
            ..Timings::default()
        };
        let kubelet = Kubelet::start(client, cfg)
            .await
            .map_err(|e| err("twin kubelet")(e.to_string()))?;
        let kubectl = Kubectl {
            bin: opts.kubectl.clone(),
            kubeconfig: Some(twin.kubeconfig().to_path_buf()),
            context: None,
        };
        Ok(Self {
            twin,
            kubelet,
            kubectl,
            opts,
            dir,
            operator: Mutex::new(None),
            operator_metrics: Mutex::new(None),
        })
    }

    /// The twin's directory (kubeconfig, logs).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The API server handle.
    pub fn twin(&self) -> &Twin {
        &self.twin
    }

    /// Removes the twin's files (after a successful run; a failed one keeps them to look at).
    pub fn remove_files(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    async fn pod_ip(&self, ns: &str, pod: &str) -> Result<String, E2eError> {
        let p = self
            .kubectl
            .get(ns, "pod", pod)
            .await?
            .ok_or_else(|| E2eError::Failed(format!("pod {ns}/{pod} not found")))?;
        p["status"]["podIP"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| E2eError::Failed(format!("pod {ns}/{pod} has no IP yet")))
    }
}

impl Cluster for TwinCluster {
    fn backend(&self) -> &'static str {
        "twin"
    }

    fn kubectl(&self) -> &Kubectl {
        &self.kubectl
    }

    fn image(&self) -> &str {
        &self.opts.image
    }

    async fn install_operator(&self) -> Result<(), E2eError> {
        let crd = std::fs::read_to_string(&self.opts.crd)
            .map_err(|e| err("reading the CRD")(e.to_string()))?;
        self.kubectl.apply("default", &crd).await?;
        self.kubectl
            .run(&[
                "wait",
                "--for=condition=Established",
                "crd/streambatchapps.neptune.dev",
                "--timeout=60s",
            ])
            .await?;
        // A free port for the operator's /metrics and /readyz.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| err("free port")(e.to_string()))?;
        let log = std::fs::File::create(self.dir.join("operator.log"))
            .map_err(|e| err("operator log")(e.to_string()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| err("operator log")(e.to_string()))?;
        let child = tokio::process::Command::new(self.opts.bin_dir.join("neptune-operator"))
            .args(["--http", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", self.twin.kubeconfig())
            .env("RUST_LOG", "info,kube=warn")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| err("starting neptune-operator")(e.to_string()))?;
        *self.operator.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        *self
            .operator_metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(format!("127.0.0.1:{port}"));
        let url = format!("http://127.0.0.1:{port}/readyz");
        crate::wait::until(
            &format!("operator ready ({url})"),
            Duration::from_secs(120),
            || async { http::get(&url).await.map(|_| ()).map_err(|e| e.to_string()) },
        )
        .await
    }

    async fn http_get(
        &self,
        ns: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> Result<String, E2eError> {
        let ip = self.pod_ip(ns, pod).await?;
        http::get(&format!("http://{ip}:{port}{path}")).await
    }

    async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> Result<(), E2eError> {
        self.kubelet
            .kill_container(ns, pod, container, nix::sys::signal::Signal::SIGKILL)
            .map(|_| ())
            .map_err(|e| E2eError::Failed(e.to_string()))
    }

    async fn lose_node(&self, node: &str) -> Result<(), E2eError> {
        self.kubelet
            .stop_node(node)
            .map_err(|e| E2eError::Failed(e.to_string()))
    }

    fn operator_metrics(&self) -> Option<String> {
        self.operator_metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn operator_logs(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("operator.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(200)..].join("\n")
    }
}
