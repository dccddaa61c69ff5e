//! The twin's API server: HTTPS with its own CA and a bearer token, the Kubernetes REST
//! conventions over the [`crate::store`], and the [`Twin`] handle tests start and stop.
//!
//! Modules: [`router`] (HTTP, auth, dispatch) → [`ops`] (the verbs) → [`admission`] (per-kind
//! rules, [`schema`] and CEL for CRDs, [`crd`] registration) with [`meta`], [`apply`] and
//! [`patch`] for the write path; [`watch`], [`table`], [`scale`], [`logs`], [`discovery`] and
//! [`openapi`] for the read side; [`gc`] for owner-reference and namespace cascades and
//! [`workloads`] for Deployments and ReplicaSets; [`protobuf`] decodes the protobuf bodies kubectl's typed commands and Helm send; [`tls`] for
//! credentials and kubeconfigs; [`resources`] is the resource table, [`convert`] the
//! events.k8s.io ↔ core conversion.

pub mod admission;
pub mod apply;
pub mod body;
pub mod convert;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod gc;
pub mod logs;
pub mod meta;
pub mod openapi;
pub mod ops;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod router;
pub mod scale;
pub mod schema;
pub mod table;
pub mod tls;
pub mod watch;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::task::{JoinHandle, JoinSet};

pub use error::ApiError;
use ops::WriteOpts;
use resources::Resources;
use tls::{Credentials, TlsError};

use crate::store::{DEFAULT_HISTORY, Store};

/// Everything a request handler reaches.
#[derive(Debug)]
pub struct State {
    /// Objects.
    pub store: Store,
    /// Served resources.
    pub resources: Resources,
    /// CA, certificate, token.
    pub creds: Credentials,
    /// Root of the kubelet's captured container logs (see [`logs::log_path`]).
    pub log_dir: PathBuf,
    /// `host:port` clients reach the server at.
    pub server: String,
}

/// How to start a twin.
#[derive(Debug, Clone)]
pub struct TwinConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    /// Directory for the kubeconfig, service-account files and logs (default: a fresh
    /// temporary directory removed when the twin is dropped).
    pub dir: Option<PathBuf>,
    /// Changes kept for watches to resume from.
    pub history: usize,
}

impl Default for TwinConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: None,
            history: DEFAULT_HISTORY,
        }
    }
}

/// Why a twin could not start.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    /// Credentials.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Binding, creating the directory or writing the kubeconfig.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Building a kube client from the kubeconfig.
    #[error("kube client: {0}")]
    Client(String),
    /// Seeding the store.
    #[error("seeding the store: {0}")]
    Seed(#[from] ApiError),
}

/// A running twin; dropping it (or [`Twin::stop`]) stops the server.
#[derive(Debug)]
pub struct Twin {
    state: Arc<State>,
    addr: SocketAddr,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    kubeconfig: PathBuf,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Twin {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TwinError {
    let what = what.into();
    move |source| TwinError::Io { what, source }
}

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Twin {
    /// Starts a twin: credentials, listener, kubeconfig, the built-in namespaces
    /// (`default`, `kube-system`, `kube-public`, `kube-node-lease`) and the garbage collector.
    ///
    /// # Errors
    /// [`TwinError`] when the port, directory or credentials cannot be had.
    pub async fn start(config: TwinConfig) -> Result<Self, TwinError> {
        let (dir, temp) = match config.dir {
            Some(d) => {
                std::fs::create_dir_all(&d).map_err(io(format!("creating {}", d.display())))?;
                (d, None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("neptune-twin-")
                    .tempdir()
                    .map_err(io("creating a temporary directory"))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let creds = Credentials::generate()?;
        let tls = creds.server_config()?;
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(io(format!("binding {}", config.addr)))?;
        let addr = listener
            .local_addr()
            .map_err(io("reading the bound address"))?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, creds.kubeconfig(&format!("https://{addr}")))
            .map_err(io(format!("writing {}", kubeconfig.display())))?;
        let state = Arc::new(State {
            store: Store::new(config.history),
            resources: Resources::default(),
            creds,
            log_dir: dir.join("logs"),
            server: addr.to_string(),
        });
        let ns_info = state
            .resources
            .lookup("", "v1", "namespaces")
            .expect("built-in");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            ops::create(
                &state,
                &ns_info,
                "",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                &WriteOpts {
                    manager: "neptune-twin".into(),
                    ..Default::default()
                },
            )?;
        }
        let server = tokio::spawn(serve(
            listener,
            tokio_rustls::TlsAcceptor::from(tls),
            state.clone(),
        ));
        let gc = gc::spawn(state.clone());
        Ok(Self {
            state,
            addr,
            dir,
            _temp: temp,
            kubeconfig,
            tasks: vec![server, gc],
        })
    }

    /// The kubeconfig (`kubectl --kubeconfig`, `KUBECONFIG`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The twin's working directory (kubeconfig, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.state.creds.token
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.state.creds.ca_pem
    }

    /// Shared state (store, resource table) for in-process controllers and assertions.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Where the kubelet writes a container's log so `kubectl logs` reads it.
    pub fn log_path(&self, ns: &str, pod: &str, container: &str, previous: bool) -> PathBuf {
        logs::log_path(&self.state.log_dir, ns, pod, container, previous)
    }

    /// Writes `token`, `ca.crt` and `namespace` into `dir`, to be mounted at
    /// `/var/run/secrets/kubernetes.io/serviceaccount` (in-cluster config).
    ///
    /// # Errors
    /// [`TlsError::Write`].
    pub fn write_service_account(&self, dir: &Path, namespace: &str) -> Result<(), TlsError> {
        self.state.creds.write_service_account(dir, namespace)
    }

    /// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` for a pod's environment.
    pub fn in_cluster_env(&self) -> Vec<(String, String)> {
        vec![
            ("KUBERNETES_SERVICE_HOST".into(), self.addr.ip().to_string()),
            (
                "KUBERNETES_SERVICE_PORT".into(),
                self.addr.port().to_string(),
            ),
            (
                "KUBERNETES_SERVICE_PORT_HTTPS".into(),
                self.addr.port().to_string(),
            ),
        ]
    }

    /// A kube-rs client over HTTPS with the twin's kubeconfig.
    ///
    /// # Errors
    /// [`TwinError::Client`] if the kubeconfig does not load.
    pub async fn client(&self) -> Result<kube::Client, TwinError> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| TwinError::Client(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| TwinError::Client(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| TwinError::Client(e.to_string()))
    }

    /// One object, read in-process (`apiVersion` like `v1` or `neptune.dev/v1alpha1`).
    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let info = self.state.resources.by_kind(api_version, kind)?;
        ops::get(&self.state, &info, ns, name).ok()
    }

    /// Every object of a kind (in a namespace, or all), read in-process.
    pub fn list(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Vec<Value> {
        let Some(info) = self.state.resources.by_kind(api_version, kind) else {
            return Vec::new();
        };
        let list = ops::list(&self.state, &info, ns, &Default::default());
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Server-side applies `obj` in-process as `manager` (force), e.g. to seed objects.
    ///
    /// # Errors
    /// What the API would answer.
    pub fn apply(&self, obj: Value, manager: &str) -> Result<Value, ApiError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let info = self
            .state
            .resources
            .by_kind(api_version, kind)
            .ok_or_else(|| ApiError::not_found(format!("{kind} in {api_version}"), ""))?;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let ns = if info.namespaced { ns } else { String::new() };
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let opts = WriteOpts {
            manager: manager.into(),
            force: true,
            ..Default::default()
        };
        ops::patch(
            &self.state,
            &info,
            &ns,
            &name,
            "",
            ops::PatchType::Apply,
            obj,
            &opts,
        )
        .map(|(v, _)| v)
    }

    /// Stops serving (connections are closed; the directory goes with the handle).
    pub fn stop(self) {
        drop(self);
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (acceptor, state) = (acceptor.clone(), state.clone());
                conns.spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| router::handle(state.clone(), req));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}
