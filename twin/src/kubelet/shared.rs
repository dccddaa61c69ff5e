//! State shared by the kubelet's loops and pod workers: the API client and caches, the address
//! lease, the process registry, node handles, and Events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::watch;

use super::config::{KubeletConfig, NodeConfig};
use super::env::Objects;
use super::ipam::Ipam;
use super::procs::Registry;

/// One node of this kubelet.
#[derive(Debug)]
pub struct NodeHandle {
    /// Its configuration.
    pub cfg: NodeConfig,
    /// Its address (`status.hostIP` of its pods).
    pub ip: String,
    /// Flips to `true` when the node is lost; workers kill their processes and go silent.
    pub stopped: watch::Sender<bool>,
}

impl NodeHandle {
    /// Whether the node was stopped.
    pub fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
    }
}

/// Everything the loops share.
pub struct Shared {
    /// API client.
    pub client: Client,
    /// Configuration.
    pub cfg: KubeletConfig,
    /// Address lease.
    pub ipam: Mutex<Ipam>,
    /// Live container sessions.
    pub registry: Registry,
    /// Nodes by name.
    pub nodes: HashMap<String, Arc<NodeHandle>>,
    /// Caches.
    pub pods: Store<Pod>,
    /// See `pods`.
    pub config_maps: Store<ConfigMap>,
    /// See `pods`.
    pub secrets: Store<Secret>,
    /// Main pid of every running container: (namespace, pod, container) → pid.
    pub pids: Mutex<HashMap<(String, String, String), i32>>,
    /// Event recorders per node (the reporting instance is the node).
    recorders: HashMap<String, Recorder>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("root", &self.cfg.root)
            .field("nodes", &self.nodes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Builds the shared state.
    pub fn new(
        client: Client,
        cfg: KubeletConfig,
        ipam: Ipam,
        nodes: HashMap<String, Arc<NodeHandle>>,
        stores: (Store<Pod>, Store<ConfigMap>, Store<Secret>),
    ) -> Self {
        let recorders = nodes
            .keys()
            .map(|n| {
                let reporter = Reporter {
                    controller: cfg.component.clone(),
                    instance: Some(n.clone()),
                };
                (n.clone(), Recorder::new(client.clone(), reporter))
            })
            .collect();
        Self {
            client,
            cfg,
            ipam: Mutex::new(ipam),
            registry: Registry::default(),
            nodes,
            pods: stores.0,
            config_maps: stores.1,
            secrets: stores.2,
            pids: Mutex::new(HashMap::new()),
            recorders,
        }
    }

    /// `<root>/pods/<uid>`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.root.join("pods").join(uid)
    }

    /// Publishes an Event about `pod` from `node` (in the background: Events are best effort,
    /// as the kubelet's are).
    pub fn event(&self, node: &str, pod: &Pod, warning: bool, reason: &str, note: String) {
        let Some(recorder) = self.recorders.get(node).cloned() else {
            return;
        };
        let reference = pod.object_ref(&());
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::debug!(error = %e, "kubelet event not published");
            }
        });
    }

    /// Records or forgets a container's main pid.
    pub fn set_pid(&self, key: (String, String, String), pid: Option<i32>) {
        let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        match pid {
            Some(p) => {
                pids.insert(key, p);
            }
            None => {
                pids.remove(&key);
            }
        }
    }

    /// The main pid of a running container.
    pub fn pid_of(&self, ns: &str, pod: &str, container: &str) -> Option<i32> {
        self.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ns.to_string(), pod.to_string(), container.to_string()))
            .copied()
    }
}

impl Objects for Shared {
    fn config_map(&self, ns: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.config_maps.get(&ObjectRef::new(name).within(ns))
    }

    fn secret(&self, ns: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets.get(&ObjectRef::new(name).within(ns))
    }
}
