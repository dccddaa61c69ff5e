//! Shared set-up of the kubelet tests: a twin API server, a kubelet with two nodes and a
//! `shell:*` image (the host's own files: `/bin/sh`, `python3`), and polling helpers.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use neptune_twin::kubelet::{Image, ImageMap, Kubelet, KubeletConfig, Timings};
use neptune_twin::{Twin, TwinConfig};

/// A twin with a kubelet; dropping it kills every pod process.
pub struct Env {
    pub twin: Twin,
    pub kubelet: Kubelet,
    pub client: kube::Client,
    _state: tempfile::TempDir,
}

/// Generous deadline for polls (a loaded CI machine is slow; nothing asserts durations).
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Starts a twin and a kubelet with fast timings (short back-off, node grace and eviction).
pub async fn start() -> Env {
    start_with(|_| {}).await
}

/// Like [`start`], with the kubelet configuration adjusted by `f`.
pub async fn start_with(f: impl FnOnce(&mut KubeletConfig)) -> Env {
    let twin = Twin::start(TwinConfig::default())
        .await
        .expect("twin starts");
    let client = twin.client().await.expect("client");
    let state = tempfile::tempdir().expect("state dir");
    let images = ImageMap::new().with(Image::new("shell:*").expect("pattern"));
    let mut cfg = KubeletConfig::new(
        state.path(),
        twin.state().log_dir.clone(),
        env!("CARGO_BIN_EXE_neptune-pod-init"),
        images,
    );
    cfg.timings = Timings {
        node_status_interval: Duration::from_millis(500),
        node_monitor_grace: Duration::from_secs(3),
        pod_eviction_timeout: Some(Duration::from_secs(2)),
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(4),
        ..Timings::default()
    };
    f(&mut cfg);
    let kubelet = Kubelet::start(client.clone(), cfg)
        .await
        .expect("kubelet starts");
    Env {
        twin,
        kubelet,
        client,
        _state: state,
    }
}

impl Env {
    /// The pods API of `ns` (the namespace is created if missing).
    pub async fn pods(&self, ns: &str) -> Api<Pod> {
        let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let mut n = k8s_openapi::api::core::v1::Namespace::default();
        n.metadata.name = Some(ns.into());
        let _ = nss.create(&PostParams::default(), &n).await;
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates a pod from JSON.
    pub async fn create(&self, ns: &str, pod: serde_json::Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).expect("pod json");
        self.pods(ns)
            .await
            .create(&PostParams::default(), &pod)
            .await
            .expect("pod created")
    }

    /// Polls pod `name` until `f` holds; panics with the last state after [`DEADLINE`].
    pub async fn wait_pod(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        f: impl Fn(&Pod) -> bool,
    ) -> Pod {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let start = tokio::time::Instant::now();
        let mut last = None;
        while start.elapsed() < DEADLINE {
            if let Ok(p) = api.get(name).await {
                if f(&p) {
                    return p;
                }
                last = Some(p);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "pod {ns}/{name}: {what} not reached; last: {}",
            serde_json::to_string_pretty(&last.map(|p| p.status)).unwrap_or_default()
        );
    }

    /// Polls until the pod is gone.
    pub async fn wait_gone(&self, ns: &str, name: &str) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let start = tokio::time::Instant::now();
        while start.elapsed() < DEADLINE {
            if matches!(api.get(name).await, Err(kube::Error::Api(e)) if e.code == 404) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pod {ns}/{name} still exists");
    }

    /// The container's log as `kubectl logs` gets it (the API's `pods/log`).
    pub async fn logs(&self, ns: &str, name: &str) -> String {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        api.logs(name, &Default::default())
            .await
            .unwrap_or_default()
    }

    /// Polls the log until it contains `needle`.
    pub async fn wait_log(&self, ns: &str, name: &str, needle: &str) -> String {
        let start = tokio::time::Instant::now();
        let mut last = String::new();
        while start.elapsed() < DEADLINE {
            last = self.logs(ns, name).await;
            if last.contains(needle) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("log of {ns}/{name} never contained {needle:?}; last:\n{last}");
    }
}

/// A pod running `script` with `/bin/sh -c` on the `shell` image.
pub fn sh_pod(name: &str, script: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "main", "image": "shell:1", "command": ["/bin/sh", "-c", script]}],
        }
    })
}

/// The phase of a pod.
pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The first container's status.
pub fn container(p: &Pod) -> k8s_openapi::api::core::v1::ContainerStatus {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first().cloned())
        .unwrap_or_default()
}

/// The first container's waiting reason.
pub fn waiting_reason(p: &Pod) -> String {
    container(p)
        .state
        .and_then(|s| s.waiting)
        .and_then(|w| w.reason)
        .unwrap_or_default()
}

/// Condition `type_`'s status.
pub fn condition(p: &Pod, type_: &str) -> Option<k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_).cloned())
}
