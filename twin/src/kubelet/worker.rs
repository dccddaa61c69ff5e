//! One pod on one node, from acceptance to the confirmed deletion: the pod's "sandbox" (its
//! loopback IP, directory and hosts file), its volumes, its init and regular containers
//! (started, probed, restarted per `restartPolicy` with back-off), its status, and its
//! graceful termination. Container starts and exits are in [`super::lifecycle`].
//!
//! The worker is a loop over one `select!`: a new version of the pod object, new hosts-file
//! contents, a container exit or probe result, a node stop, or the next deadline (a back-off,
//! a grace period). Each turn runs [`Worker::step`], which only looks at the current state
//! (level-triggered, like the kubelet's `syncPod`), then writes the status if it changed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::lifecycle::{Ctr, Msg};
use super::procs;
use super::shared::{NodeHandle, Shared};
use super::status::{self, ContainerView, PodView, State};
use super::volumes::{self, VolumeInputs};

/// The kubelet's side of a worker.
#[derive(Debug)]
pub struct WorkerHandle {
    /// Latest pod object; `None` once it is gone from the API.
    pub pod: watch::Sender<Option<Arc<Pod>>>,
    /// Latest hosts-file contents.
    pub hosts: watch::Sender<String>,
    /// The worker task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a worker for `pod` on `node`.
pub fn spawn(sh: Arc<Shared>, node: Arc<NodeHandle>, pod: Arc<Pod>, hosts: String) -> WorkerHandle {
    let (pod_tx, pod_rx) = watch::channel(Some(pod.clone()));
    let (hosts_tx, hosts_rx) = watch::channel(hosts);
    let (tx, rx) = mpsc::unbounded_channel();
    let spec = pod.spec.clone().unwrap_or_default();
    let has_init = spec.init_containers.as_ref().is_some_and(|v| !v.is_empty());
    let first = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let ctrs = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| Ctr::new(c.clone(), true, "PodInitializing"))
        .chain(
            spec.containers
                .iter()
                .map(|c| Ctr::new(c.clone(), false, first)),
        )
        .collect();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let w = Worker {
        dir: sh.pod_dir(&uid),
        ns: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid,
        restart_policy: spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into()),
        sh,
        node,
        pod,
        pod_rx,
        hosts_rx,
        tx,
        rx,
        ip: None,
        volumes: None,
        volume_error: None,
        volumes_checked: None,
        ctrs,
        start_time: Timestamp::now(),
        last_status: None,
        delete_deadline: None,
    };
    let task = tokio::spawn(w.run());
    WorkerHandle {
        pod: pod_tx,
        hosts: hosts_tx,
        task,
    }
}

/// A pod's worker state.
pub(super) struct Worker {
    pub(super) sh: Arc<Shared>,
    pub(super) node: Arc<NodeHandle>,
    pub(super) pod: Arc<Pod>,
    pub(super) uid: String,
    pub(super) ns: String,
    pub(super) name: String,
    pod_rx: watch::Receiver<Option<Arc<Pod>>>,
    hosts_rx: watch::Receiver<String>,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    pub(super) dir: PathBuf,
    pub(super) ip: Option<Ipv4Addr>,
    pub(super) volumes: Option<BTreeMap<String, PathBuf>>,
    volume_error: Option<String>,
    volumes_checked: Option<Instant>,
    pub(super) ctrs: Vec<Ctr>,
    start_time: Timestamp,
    last_status: Option<PodStatus>,
    delete_deadline: Option<Instant>,
    pub(super) restart_policy: String,
}

/// How often volumes (ConfigMap/Secret/downward contents) are re-synced.
const VOLUME_RESYNC: Duration = Duration::from_secs(5);

enum Wake {
    Pod,
    Hosts,
    Msg(Msg),
    Tick,
    Gone,
}

impl Worker {
    async fn run(mut self) {
        let mut stopped = self.node.stopped.subscribe();
        loop {
            if *stopped.borrow() {
                // Node lost: processes die with it, nothing more is written.
                self.kill_all(Signal::SIGKILL);
                return;
            }
            let latest = self.pod_rx.borrow_and_update().clone();
            match latest {
                None => {
                    // Force-deleted: nothing to confirm, only to clean up.
                    self.kill_all(Signal::SIGKILL);
                    self.cleanup().await;
                    return;
                }
                Some(p) => self.pod = p,
            }
            if self.step().await {
                return;
            }
            // While the pod is being deleted only the final status is written (in `terminate`,
            // once every container stopped), so the object never reports a state the processes
            // have not reached yet.
            if self.pod.metadata.deletion_timestamp.is_none() {
                self.write_status(None).await;
            }
            let wake = self.next_wake();
            let event = tokio::select! {
                r = self.pod_rx.changed() => if r.is_ok() { Wake::Pod } else { Wake::Gone },
                r = self.hosts_rx.changed() => if r.is_ok() { Wake::Hosts } else { Wake::Gone },
                Some(m) = self.rx.recv() => Wake::Msg(m),
                _ = stopped.changed() => Wake::Tick,
                _ = tokio::time::sleep_until(wake) => Wake::Tick,
            };
            match event {
                Wake::Gone => {
                    // The kubelet is shutting down.
                    self.kill_all(Signal::SIGKILL);
                    return;
                }
                Wake::Hosts => self.write_hosts(),
                Wake::Msg(m) => self.handle(m),
                Wake::Pod | Wake::Tick => {}
            }
            while let Ok(m) = self.rx.try_recv() {
                self.handle(m);
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(1);
        for c in &self.ctrs {
            if matches!(c.state, State::Waiting { .. }) {
                wake = wake.min(c.next_start);
            }
            if let Some(d) = c.live.as_ref().and_then(|l| l.kill_deadline) {
                wake = wake.min(d);
            }
        }
        if let Some(d) = self.delete_deadline {
            wake = wake.min(d);
        }
        wake.max(Instant::now() + Duration::from_millis(20))
    }

    /// One level-triggered pass; `true` when the worker is done.
    async fn step(&mut self) -> bool {
        if self.pod.metadata.deletion_timestamp.is_some() {
            return self.terminate().await;
        }
        if self.ip.is_none() {
            if let Err(e) = self.sandbox() {
                for c in &mut self.ctrs {
                    c.wait_reason("ContainerCreating", Some(e.clone()));
                }
                return false;
            }
            // The IP is published before any container starts, so `status.podIP` from the
            // downward API is never empty.
            self.write_status(None).await;
        }
        if self.finished() {
            return false;
        }
        self.sync_volumes();
        if let Some(e) = self.volume_error.clone() {
            for c in self.ctrs.iter_mut().filter(|c| c.live.is_none()) {
                c.wait_reason("ContainerCreating", Some(e.clone()));
            }
            return false;
        }
        self.drive_containers();
        false
    }

    /// Whether every container is done for good (a terminal phase).
    fn finished(&self) -> bool {
        let (init, main) = self.views();
        matches!(
            status::phase(&self.view(&init, &main, None)),
            "Succeeded" | "Failed"
        )
    }

    fn sandbox(&mut self) -> Result<(), String> {
        let ip = self
            .sh
            .ipam
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allocate()
            .map_err(|e| format!("failed to set up the pod sandbox: {e}"))?;
        self.ip = Some(ip);
        let io = |e: std::io::Error| format!("failed to set up the pod sandbox: {e}");
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        self.write_hosts();
        if let Some(ic) = &self.sh.cfg.in_cluster
            && self.automount()
        {
            let sa = self.dir.join("serviceaccount");
            std::fs::create_dir_all(&sa).map_err(io)?;
            std::fs::write(sa.join("token"), &ic.token).map_err(io)?;
            std::fs::write(sa.join("ca.crt"), &ic.ca_pem).map_err(io)?;
            std::fs::write(sa.join("namespace"), &self.ns).map_err(io)?;
        }
        Ok(())
    }

    pub(super) fn automount(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.automount_service_account_token)
            != Some(false)
    }

    fn write_hosts(&self) {
        if self.ip.is_none() {
            return;
        }
        let mut text = self.hosts_rx.borrow().clone();
        // The pod's own line, before the cluster's view of the pod has its IP.
        if let Some(ip) = self.ip {
            let own = format!("{ip}\t{}\n", super::env::hostname(&self.pod, &self.name));
            if !text.contains(&own) {
                text.push_str(&own);
            }
        }
        // Rewritten in place (same inode), so the bind mounts in running containers see it.
        let path = self.dir.join("hosts");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            f.write_all(text.as_bytes())?;
            f.set_len(text.len() as u64)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(pod = %self.name, error = %e, "hosts file not written");
        }
    }

    fn sync_volumes(&mut self) {
        if self.volumes.is_some()
            && self
                .volumes_checked
                .is_some_and(|t| t.elapsed() < VOLUME_RESYNC)
        {
            return;
        }
        self.volumes_checked = Some(Instant::now());
        let token = self.sh.cfg.in_cluster.as_ref().map(|i| i.token.as_str());
        let result = volumes::set_up(&VolumeInputs {
            pod: &self.pod,
            objects: self.sh.as_ref(),
            pod_volumes: &self.dir.join("volumes"),
            shared_volumes: &self.sh.cfg.root.join("volumes"),
            token,
            node_cpu_millis: self.node.cfg.cpu_millis,
            node_memory: self.node.cfg.memory_bytes,
        });
        match result {
            Ok(v) => {
                self.volumes = Some(v);
                self.volume_error = None;
            }
            Err(e) => {
                let msg = e.to_string();
                if self.volume_error.as_deref() != Some(msg.as_str()) {
                    self.sh.event(
                        &self.node.cfg.name,
                        &self.pod,
                        true,
                        "FailedMount",
                        msg.clone(),
                    );
                }
                // A running pod keeps its last good volumes; a new one waits.
                if self.volumes.is_none() {
                    self.volume_error = Some(msg);
                }
            }
        }
    }

    /// Deleting: stop every container within the grace period, write the final status,
    /// confirm the deletion with a grace-0 delete (uid precondition), clean up.
    async fn terminate(&mut self) -> bool {
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0);
        let deadline = Instant::now() + Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        // A later delete may shorten the grace (e.g. a force delete of a graceful one).
        if self.delete_deadline.is_none_or(|d| deadline < d) {
            self.delete_deadline = Some(deadline);
            for i in 0..self.ctrs.len() {
                if self.ctrs[i].live.is_some() {
                    self.stop_container(i, deadline, None);
                }
            }
        }
        let now = Instant::now();
        for c in &mut self.ctrs {
            if let Some(l) = c.live.as_mut()
                && l.kill_deadline.is_some_and(|d| d <= now)
            {
                procs::kill_session(l.pid, Signal::SIGKILL);
            }
        }
        if self.ctrs.iter().any(|c| c.live.is_some()) {
            return false;
        }
        let all_ok = self
            .ctrs
            .iter()
            .filter(|c| !c.init)
            .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
        self.write_status(Some(if all_ok { "Succeeded" } else { "Failed" }))
            .await;
        let api: Api<Pod> = Api::namespaced(self.sh.client.clone(), &self.ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&self.name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %self.name, error = %e, "deletion not confirmed; retrying");
                return false;
            }
        }
        self.cleanup().await;
        true
    }

    /// SIGKILLs (or signals) every running container of the pod.
    fn kill_all(&mut self, sig: Signal) {
        for c in &mut self.ctrs {
            if let Some(l) = c.live.as_ref() {
                procs::kill_session(l.pid, sig);
                self.sh.set_pid(
                    (self.ns.clone(), self.name.clone(), c.spec.name.clone()),
                    None,
                );
            }
        }
    }

    /// Frees the IP and the pod's directory once its processes are gone.
    async fn cleanup(&mut self) {
        for c in &mut self.ctrs {
            if let Some(l) = c.live.take() {
                l.probes.abort();
                let _ = tokio::time::timeout(Duration::from_secs(5), l.exited).await;
                self.sh.set_pid(
                    (self.ns.clone(), self.name.clone(), c.spec.name.clone()),
                    None,
                );
            }
        }
        if let Some(ip) = self.ip.take() {
            self.sh
                .ipam
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .release(ip);
        }
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
    }

    pub(super) fn views(&self) -> (Vec<ContainerView>, Vec<ContainerView>) {
        let (init, main): (Vec<&Ctr>, Vec<&Ctr>) = self.ctrs.iter().partition(|c| c.init);
        (
            init.into_iter().map(Ctr::view).collect(),
            main.into_iter().map(Ctr::view).collect(),
        )
    }

    fn view<'a>(
        &'a self,
        init: &'a [ContainerView],
        main: &'a [ContainerView],
        phase: Option<&'static str>,
    ) -> PodView<'a> {
        PodView {
            init,
            containers: main,
            restart_policy: &self.restart_policy,
            pod_ip: self.ip.map(|ip| ip.to_string()),
            host_ip: Some(self.node.ip.clone()),
            start_time: Some(self.start_time),
            readiness_gates: self
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.readiness_gates.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|g| g.condition_type)
                .collect(),
            phase_override: phase,
        }
    }

    /// Writes the status when it differs from the last one written.
    async fn write_status(&mut self, phase: Option<&'static str>) {
        let (init, main) = self.views();
        let api_status = self.pod.status.clone().unwrap_or_default();
        // Our conditions (and their transition times) from our last write, everyone else's
        // from the API's latest view.
        let mut prev = self
            .last_status
            .clone()
            .unwrap_or_else(|| api_status.clone());
        let ours = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ];
        let mut conditions: Vec<_> = prev
            .conditions
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| ours.contains(&c.type_.as_str()))
            .collect();
        conditions.extend(
            api_status
                .conditions
                .iter()
                .flatten()
                .filter(|c| !ours.contains(&c.type_.as_str()))
                .cloned(),
        );
        prev.conditions = Some(conditions);
        let mut st = status::pod_status(
            &self.view(&init, &main, phase),
            Some(&prev),
            Timestamp::now(),
        );
        st.qos_class = Some(
            qos_class(
                self.pod
                    .spec
                    .as_ref()
                    .map(|s| s.containers.as_slice())
                    .unwrap_or(&[]),
            )
            .into(),
        );
        if self.last_status.as_ref() == Some(&st) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.sh.client.clone(), &self.ns);
        let patch = serde_json::json!({ "status": st });
        match api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(p) => {
                self.last_status = Some(st);
                self.pod = Arc::new(p);
            }
            Err(e) => tracing::debug!(pod = %self.name, error = %e, "pod status not written"),
        }
    }
}

/// `Guaranteed` (every container's cpu and memory limits equal its requests), `BestEffort`
/// (no requests or limits at all) or `Burstable`.
pub fn qos_class(containers: &[Container]) -> &'static str {
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let r = c.resources.as_ref();
        let limits = r.and_then(|r| r.limits.clone()).unwrap_or_default();
        let requests = r.and_then(|r| r.requests.clone()).unwrap_or_default();
        any |= !limits.is_empty() || !requests.is_empty();
        for res in ["cpu", "memory"] {
            let l = limits.get(res);
            // A request defaults to the limit.
            let q = requests.get(res).or(l);
            if l.is_none() || l != q {
                guaranteed = false;
            }
        }
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}
