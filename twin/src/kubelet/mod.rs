//! The cluster twin's process kubelet: a kube-rs client of the twin's API that registers one
//! or more nodes and runs the pods bound to them as real processes, each on its own loopback
//! address, in a private mount namespace with its volumes — plus the two controllers a
//! kubelet relies on and the twin has no other place for: a scheduler for pods without
//! `spec.nodeName` and the node lifecycle controller.
//!
//! What it simulates and what it does not is documented in `docs/kubernetes.md` ("The cluster
//! twin"). Module map: [`config`] (nodes, image map, timings), [`ipam`] (pod IPs), [`scheduler`]
//! (node choice), [`node`] (Node objects, heartbeats, unreachable nodes), [`sync`] (the control
//! loops), [`worker`] and [`lifecycle`] (one pod, its containers), [`container`], [`env`],
//! [`fields`], [`volumes`], [`hosts`] (what a container gets), [`init`] (the
//! `neptune-pod-init` runtime step), [`procs`] (processes, memory limits), [`probes`],
//! [`status`] (pod status rules), [`logs`] (where `kubectl logs` reads from).
//!
//! Every process a [`Kubelet`] starts is killed when it is dropped or shut down, also when a
//! test panics (the registry's `Drop`), and by the kernel should the whole test process die
//! (`PR_SET_PDEATHSIG` in the init).

pub mod config;
pub mod container;
pub mod env;
pub mod fields;
pub mod hosts;
pub mod init;
pub mod ipam;
pub mod lifecycle;
pub mod logs;
pub mod node;
pub mod probes;
pub mod procs;
pub mod scheduler;
pub mod shared;
pub mod status;
pub mod sync;
pub mod volumes;
pub mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use nix::sys::signal::Signal;
use thiserror::Error;
use tokio::sync::{Notify, watch};

pub use config::{Image, ImageMap, InCluster, KubeletConfig, NodeConfig, Timings, neptune_images};

use shared::{NodeHandle, Shared};

/// What can go wrong starting or driving a kubelet.
#[derive(Debug, Error)]
pub enum KubeletError {
    /// No loopback subnet or address.
    #[error(transparent)]
    Ipam(#[from] ipam::IpamError),
    /// The state directory.
    #[error("kubelet state directory {path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `neptune-pod-init` is missing.
    #[error("pod init binary {0} not found (cargo build -p neptune-twin --bin neptune-pod-init)")]
    PodInit(PathBuf),
    /// Registering a node failed.
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
    /// No such node.
    #[error("no node {0:?} on this kubelet")]
    NoNode(String),
    /// No running container by that name.
    #[error("no running container {container:?} in pod {namespace}/{pod}")]
    NoContainer {
        namespace: String,
        pod: String,
        container: String,
    },
}

/// A running twin kubelet (its nodes, loops and pods).
#[derive(Debug)]
pub struct Kubelet {
    sh: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Kubelet {
    /// Registers the nodes and starts running their pods.
    ///
    /// # Errors
    /// [`KubeletError`] when the state directory, the init binary, an address or a node
    /// registration is not available.
    pub async fn start(client: Client, cfg: KubeletConfig) -> Result<Self, KubeletError> {
        let root_err = |source| KubeletError::Root {
            path: cfg.root.clone(),
            source,
        };
        std::fs::create_dir_all(cfg.root.join("pods")).map_err(root_err)?;
        std::fs::create_dir_all(&cfg.logs_dir).map_err(root_err)?;
        if !cfg.pod_init.is_file() {
            return Err(KubeletError::PodInit(cfg.pod_init.clone()));
        }
        let mut ipam = ipam::Ipam::lease(&ipam::Ipam::default_lock_dir(), cfg.subnet)?;
        let mut nodes = HashMap::new();
        let node_api: Api<Node> = Api::all(client.clone());
        for n in &cfg.nodes {
            let ip = ipam.allocate()?.to_string();
            node::register(&node_api, n, &ip)
                .await
                .map_err(|source| KubeletError::Register {
                    node: n.name.clone(),
                    source,
                })?;
            let (stopped, _) = watch::channel(false);
            nodes.insert(
                n.name.clone(),
                Arc::new(NodeHandle {
                    cfg: n.clone(),
                    ip,
                    stopped,
                }),
            );
        }
        let wake = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let (pods, t) = reflect::<Pod>(&client, &wake);
        tasks.push(t);
        let (config_maps, t) = reflect::<ConfigMap>(&client, &wake);
        tasks.push(t);
        let (secrets, t) = reflect::<Secret>(&client, &wake);
        tasks.push(t);
        let (services, t) = reflect::<Service>(&client, &wake);
        tasks.push(t);
        let (node_store, t) = reflect::<Node>(&client, &wake);
        tasks.push(t);
        for store in [pods.clone()] {
            let _ = store.wait_until_ready().await;
        }
        let _ = services.wait_until_ready().await;
        let _ = node_store.wait_until_ready().await;
        let _ = config_maps.wait_until_ready().await;
        let _ = secrets.wait_until_ready().await;
        let sh = Arc::new(Shared::new(
            client,
            cfg,
            ipam,
            nodes,
            (pods, config_maps, secrets),
        ));
        tasks.push(tokio::spawn(sync::pod_loop(
            sh.clone(),
            sync::Views {
                services,
                nodes: node_store.clone(),
            },
            wake,
        )));
        for name in sh.nodes.keys() {
            tasks.push(tokio::spawn(sync::heartbeat_loop(sh.clone(), name.clone())));
        }
        tasks.push(tokio::spawn(sync::node_controller(sh.clone(), node_store)));
        tasks.push(tokio::spawn(sync::memory_loop(sh.clone())));
        Ok(Self { sh, tasks })
    }

    /// The loopback /24 this kubelet's addresses come from (`127.0.<subnet>.0`).
    pub fn subnet(&self) -> u8 {
        self.sh
            .ipam
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .subnet()
    }

    /// Names of this kubelet's nodes.
    pub fn node_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sh.nodes.keys().cloned().collect();
        v.sort();
        v
    }

    /// Node loss: the node's processes are killed at once and its kubelet stops writing
    /// (heartbeats, pod status, deletion confirmations). The node controller marks it
    /// unreachable after `node_monitor_grace`.
    ///
    /// # Errors
    /// [`KubeletError::NoNode`].
    pub fn stop_node(&self, name: &str) -> Result<(), KubeletError> {
        let n = self
            .sh
            .nodes
            .get(name)
            .ok_or_else(|| KubeletError::NoNode(name.into()))?;
        n.stopped.send_replace(true);
        Ok(())
    }

    /// The main pid of a running container.
    pub fn container_pid(&self, namespace: &str, pod: &str, container: &str) -> Option<i32> {
        self.sh.pid_of(namespace, pod, container)
    }

    /// Kills a container's processes with `signal` (a crash, from the kubelet's point of view).
    ///
    /// # Errors
    /// [`KubeletError::NoContainer`] when it is not running.
    pub fn kill_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        signal: Signal,
    ) -> Result<i32, KubeletError> {
        let pid = self.running(namespace, pod, container)?;
        procs::kill_session(pid, signal);
        Ok(pid)
    }

    /// Forces an OOM kill of a container (reported `OOMKilled`, exit 137), the test hook for
    /// memory-limit scenarios that should not need gigabytes.
    ///
    /// # Errors
    /// [`KubeletError::NoContainer`] when it is not running.
    pub fn oom_kill(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<(), KubeletError> {
        let pid = self.running(namespace, pod, container)?;
        self.sh.registry.force_oom(pid);
        Ok(())
    }

    fn running(&self, namespace: &str, pod: &str, container: &str) -> Result<i32, KubeletError> {
        self.sh
            .pid_of(namespace, pod, container)
            .ok_or_else(|| KubeletError::NoContainer {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
            })
    }

    /// Number of container sessions still alive.
    pub fn live_containers(&self) -> usize {
        self.sh.registry.len()
    }

    /// Stops every loop and kills every container (nothing is written to the API).
    pub async fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        for n in self.sh.nodes.values() {
            n.stopped.send_replace(true);
        }
        self.sh.registry.kill_all();
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A reflector-backed cache of `K` across all namespaces; every change wakes the pod loop.
fn reflect<K>(
    client: &Client,
    wake: &Arc<Notify>,
) -> (reflector::Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    let wake = wake.clone();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::warn!(error = %e, kind = %K::kind(&()), "kubelet watch error");
            }
            wake.notify_one();
        }
    });
    (reader, task)
}
