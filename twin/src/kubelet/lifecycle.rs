//! Container lifecycle inside a pod worker: start (image "pull", configuration, spawn, probes),
//! exit (the terminated state), restart per `restartPolicy` with the kubelet's back-off (the
//! first restart at once, then 10 s doubling to 5 min, reset after 10 min of running), init
//! containers in order before the regular ones, and graceful stops (SIGTERM to the main
//! process, SIGKILL to the session once the grace period is over).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::jiff::Timestamp;
use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::container::{self, PodContext, Refusal, RunPaths};
use super::logs::{self, LogSink};
use super::probes::{self, ProbeEvent, ProbeState, Target};
use super::procs::{self, Exit};
use super::status::{ContainerView, State, Terminated};
use super::worker::Worker;

/// A message to the worker from a container's tasks.
#[derive(Debug)]
pub enum Msg {
    /// Run `run` of container `idx` exited.
    Exited { idx: usize, run: u64, exit: Exit },
    /// A probe result of run `run` of container `idx`.
    Probe {
        idx: usize,
        run: u64,
        ev: ProbeEvent,
    },
}

/// A running container.
#[derive(Debug)]
pub struct Live {
    /// Main pid (= session id).
    pub pid: i32,
    /// When it started.
    pub started_at: Timestamp,
    /// Same, monotonic.
    pub since: Instant,
    /// Probe task.
    pub probes: tokio::task::JoinHandle<()>,
    /// Probe verdicts.
    pub probe: Arc<ProbeState>,
    /// This run's files.
    pub paths: RunPaths,
    /// This run's log file.
    pub log: std::path::PathBuf,
    /// When a graceful stop turns into SIGKILL.
    pub kill_deadline: Option<Instant>,
    /// The exit waiter (done once the process is reaped).
    pub exited: tokio::task::JoinHandle<()>,
}

/// One container's runtime state.
#[derive(Debug)]
pub struct Ctr {
    /// Its spec.
    pub spec: Container,
    /// An init container.
    pub init: bool,
    /// Current state.
    pub state: State,
    /// The previous run's end.
    pub last: Option<Terminated>,
    /// Restarts so far.
    pub restarts: i32,
    /// It ran at least once (the next start is a restart).
    pub has_run: bool,
    /// Run counter (messages from older runs are ignored).
    pub run: u64,
    /// The running process, if any.
    pub live: Option<Live>,
    /// Current crash back-off (`None`: the next restart is immediate).
    pub backoff: Option<Duration>,
    /// Earliest next start attempt.
    pub next_start: Instant,
    /// Image pull back-off.
    pub pull_backoff: Option<Duration>,
    /// Last id handed out (`twin://...`).
    pub container_id: Option<String>,
    /// When the last image pull failed (`ErrImagePull` shows for a moment, then
    /// `ImagePullBackOff` while waiting for the next attempt).
    pub pull_failed_at: Option<Instant>,
}

impl Ctr {
    /// A container that has not started yet.
    pub fn new(spec: Container, init: bool, reason: &str) -> Self {
        Self {
            spec,
            init,
            state: State::Waiting {
                reason: reason.into(),
                message: None,
            },
            last: None,
            restarts: 0,
            has_run: false,
            run: 0,
            live: None,
            backoff: None,
            next_start: Instant::now(),
            pull_backoff: None,
            container_id: None,
            pull_failed_at: None,
        }
    }

    /// Sets a waiting reason (only while not running).
    pub fn wait_reason(&mut self, reason: &str, message: Option<String>) {
        if self.live.is_none() && !matches!(self.state, State::Terminated(_)) {
            self.state = State::Waiting {
                reason: reason.into(),
                message,
            };
        }
    }

    /// Its API view.
    pub fn view(&self) -> ContainerView {
        let (started, ready) = match &self.live {
            Some(l) => (
                l.probe.started.load(Ordering::SeqCst),
                l.probe.ready.load(Ordering::SeqCst) && l.kill_deadline.is_none(),
            ),
            None => (false, false),
        };
        ContainerView {
            name: self.spec.name.clone(),
            image: self.spec.image.clone().unwrap_or_default(),
            state: self.state.clone(),
            last: self.last.clone(),
            restart_count: self.restarts,
            ready: ready && !self.init,
            started,
            container_id: self.container_id.clone(),
        }
    }
}

fn should_restart(policy: &str, init: bool, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        // Init containers run to completion: only a failure repeats them.
        _ if init => code != 0,
        _ => true,
    }
}

impl Worker {
    /// Starts, restarts or finishes containers as their states require.
    pub(super) fn drive_containers(&mut self) {
        let now = Instant::now();
        let n = self.ctrs.len();
        for i in 0..n {
            if let Some(l) = self.ctrs[i].live.as_ref()
                && l.kill_deadline.is_some_and(|d| d <= now)
            {
                procs::kill_session(l.pid, Signal::SIGKILL);
            }
        }
        // Init containers in order; the regular ones only once all succeeded.
        for i in 0..n {
            if !self.ctrs[i].init {
                continue;
            }
            match &self.ctrs[i].state {
                State::Terminated(t) if t.exit_code == 0 => continue,
                State::Running { .. } => return,
                State::Terminated(t) => {
                    if should_restart(&self.restart_policy, true, t.exit_code) {
                        self.schedule_restart(i);
                    }
                    return;
                }
                State::Waiting { .. } => {
                    self.maybe_start(i);
                    return;
                }
            }
        }
        for i in 0..n {
            if self.ctrs[i].init {
                continue;
            }
            match &self.ctrs[i].state {
                State::Running { .. } => {}
                State::Terminated(t) => {
                    if should_restart(&self.restart_policy, false, t.exit_code) {
                        self.schedule_restart(i);
                    }
                }
                State::Waiting { .. } => self.maybe_start(i),
            }
        }
    }

    fn schedule_restart(&mut self, i: usize) {
        let timings = self.sh.cfg.timings.clone();
        let c = &mut self.ctrs[i];
        let State::Terminated(t) = c.state.clone() else {
            return;
        };
        let ran = t
            .started_at
            .map(|s| t.finished_at.duration_since(s).as_secs_f64())
            .unwrap_or(0.0);
        if ran > timings.backoff_reset.as_secs_f64() {
            c.backoff = None;
        }
        let delay = c.backoff.unwrap_or(Duration::ZERO);
        c.backoff = Some(match c.backoff {
            None => timings.backoff_initial,
            Some(d) => (d * 2).min(timings.backoff_max),
        });
        c.last = Some(t);
        c.next_start = Instant::now() + delay;
        let name = c.spec.name.clone();
        if delay.is_zero() {
            c.state = State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            };
            self.maybe_start(i);
        } else {
            c.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={name} pod={}_{}({})",
                    delay.as_secs(),
                    self.name,
                    self.ns,
                    self.uid
                )),
            };
            self.sh.event(
                &self.node.cfg.name,
                &self.pod,
                true,
                "BackOff",
                format!(
                    "Back-off restarting failed container {name} in pod {}_{}({})",
                    self.name, self.ns, self.uid
                ),
            );
        }
    }

    fn maybe_start(&mut self, i: usize) {
        let c = &mut self.ctrs[i];
        if Instant::now() < c.next_start {
            // ErrImagePull turns into ImagePullBackOff while waiting for the next pull.
            if let State::Waiting { reason, .. } = &c.state
                && reason == "ErrImagePull"
                && c.pull_failed_at
                    .is_some_and(|t| t.elapsed() >= Duration::from_secs(1))
            {
                let image = c.spec.image.clone().unwrap_or_default();
                c.state = State::Waiting {
                    reason: "ImagePullBackOff".into(),
                    message: Some(format!("Back-off pulling image {image:?}")),
                };
            }
            return;
        }
        if let Err(r) = self.start(i) {
            self.refused(i, r);
        }
    }

    fn refused(&mut self, i: usize, r: Refusal) {
        let timings = self.sh.cfg.timings.clone();
        let node = self.node.cfg.name.clone();
        let c = &mut self.ctrs[i];
        match r {
            Refusal::Image(message) => {
                let image = c.spec.image.clone().unwrap_or_default();
                let delay = c.pull_backoff.unwrap_or(timings.backoff_initial);
                c.pull_backoff = Some((delay * 2).min(timings.backoff_max));
                c.next_start = Instant::now() + delay;
                c.pull_failed_at = Some(Instant::now());
                c.state = State::Waiting {
                    reason: "ErrImagePull".into(),
                    message: Some(message.clone()),
                };
                let note = format!("Failed to pull image {image:?}: {message}");
                self.sh.event(&node, &self.pod, true, "Failed", note);
            }
            Refusal::Config(message) => {
                c.next_start = Instant::now() + timings.retry;
                let changed =
                    !matches!(&c.state, State::Waiting { message: Some(m), .. } if *m == message);
                c.state = State::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(message.clone()),
                };
                if changed {
                    self.sh.event(
                        &node,
                        &self.pod,
                        true,
                        "Failed",
                        format!("Error: {message}"),
                    );
                }
            }
        }
    }

    /// Spawns container `i` through `neptune-pod-init`.
    fn start(&mut self, i: usize) -> Result<(), Refusal> {
        let (Some(ip), Some(volumes)) = (self.ip, self.volumes.clone()) else {
            return Ok(());
        };
        let sh = self.sh.clone();
        let spec = self.ctrs[i].spec.clone();
        let run = self.ctrs[i].run + 1;
        let ctr_dir = self.dir.join("containers").join(&spec.name);
        // Each run gets a fresh writable layer; older ones go (their processes are gone).
        let _ = std::fs::remove_dir_all(&ctr_dir);
        let paths = RunPaths {
            dir: ctr_dir.join(run.to_string()),
            termination_log: ctr_dir.join(run.to_string()).join("termination-log"),
            hosts: self.dir.join("hosts"),
            service_account: (sh.cfg.in_cluster.is_some() && self.automount())
                .then(|| self.dir.join("serviceaccount")),
        };
        let io = |e: std::io::Error| Refusal::Config(format!("preparing the container: {e}"));
        std::fs::create_dir_all(&paths.dir).map_err(io)?;
        std::fs::write(&paths.termination_log, b"").map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                &paths.termination_log,
                std::fs::Permissions::from_mode(0o666),
            )
            .map_err(io)?;
        }
        let image = sh
            .cfg
            .images
            .resolve(spec.image.as_deref().unwrap_or_default());
        let cluster_env = sh
            .cfg
            .in_cluster
            .as_ref()
            .map(|ic| {
                vec![
                    ("KUBERNETES_SERVICE_HOST".to_string(), ic.host.clone()),
                    ("KUBERNETES_SERVICE_PORT".to_string(), ic.port.to_string()),
                    (
                        "KUBERNETES_PORT".to_string(),
                        format!("tcp://{}:{}", ic.host, ic.port),
                    ),
                ]
            })
            .unwrap_or_default();
        let prepared = container::prepare(
            &PodContext {
                pod: &self.pod_with_ip(ip),
                objects: sh.as_ref(),
                image,
                volumes: &volumes,
                cluster_env,
                node_cpu_millis: self.node.cfg.cpu_millis,
                node_memory: self.node.cfg.memory_bytes,
            },
            &spec,
            &paths,
        )?;
        let spec_path = paths.dir.join("init.json");
        let json =
            serde_json::to_vec(&prepared.spec).map_err(|e| Refusal::Config(e.to_string()))?;
        std::fs::write(&spec_path, json).map_err(io)?;
        let c = &mut self.ctrs[i];
        if c.has_run {
            c.restarts += 1;
        }
        let log_path = logs::log_path(&sh.cfg.logs_dir, &self.ns, &self.name, &spec.name, false);
        let previous = logs::log_path(&sh.cfg.logs_dir, &self.ns, &self.name, &spec.name, true);
        let sink = LogSink::create(log_path.clone(), &previous).map_err(io)?;
        let proc = procs::spawn(&sh.cfg.pod_init, &spec_path, &sink, &sh.registry)
            .map_err(|e| Refusal::Config(format!("starting {}: {e}", sh.cfg.pod_init.display())))?;
        let pid = proc.pid;
        sh.registry.set_limit(pid, prepared.memory_limit);
        let tx = self.tx.clone();
        let sh2 = sh.clone();
        let exited = tokio::spawn(async move {
            let exit = proc.wait(&sh2.registry).await;
            let _ = tx.send(Msg::Exited { idx: i, run, exit });
        });
        let probe = Arc::new(ProbeState::default());
        let (ptx, mut prx) = mpsc::unbounded_channel();
        let probes = tokio::spawn(probes::run(
            spec.clone(),
            Target {
                ip: ip.to_string(),
                pid,
                uid: prepared.spec.uid,
                gid: prepared.spec.gid,
            },
            probe.clone(),
            ptx,
        ));
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = prx.recv().await {
                let _ = tx.send(Msg::Probe { idx: i, run, ev });
            }
        });
        let now = Timestamp::now();
        c.run = run;
        c.has_run = true;
        c.container_id = Some(format!("twin://{}-{}-{run}", self.uid, spec.name));
        c.state = State::Running { started_at: now };
        c.live = Some(Live {
            pid,
            started_at: now,
            since: Instant::now(),
            probes,
            probe,
            paths,
            log: log_path,
            kill_deadline: None,
            exited,
        });
        sh.set_pid(
            (self.ns.clone(), self.name.clone(), spec.name.clone()),
            Some(pid),
        );
        let node = &self.node.cfg.name;
        let image = spec.image.clone().unwrap_or_default();
        sh.event(
            node,
            &self.pod,
            false,
            "Pulled",
            format!("Container image {image:?} already present on machine"),
        );
        sh.event(
            node,
            &self.pod,
            false,
            "Created",
            format!("Created container: {}", spec.name),
        );
        sh.event(
            node,
            &self.pod,
            false,
            "Started",
            format!("Started container {}", spec.name),
        );
        Ok(())
    }

    /// The pod as the container sees it (its IP filled in even before the API echoes it).
    fn pod_with_ip(&self, ip: std::net::Ipv4Addr) -> k8s_openapi::api::core::v1::Pod {
        let mut p = (*self.pod).clone();
        let st = p.status.get_or_insert_with(Default::default);
        st.pod_ip = Some(ip.to_string());
        st.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP {
            ip: ip.to_string(),
        }]);
        st.host_ip = Some(self.node.ip.clone());
        st.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: self.node.ip.clone(),
        }]);
        p
    }

    /// Graceful stop of container `i`: SIGTERM now, SIGKILL at `deadline`.
    pub(super) fn stop_container(&mut self, i: usize, deadline: Instant, why: Option<String>) {
        let node = self.node.cfg.name.clone();
        let c = &mut self.ctrs[i];
        let Some(l) = c.live.as_mut() else {
            return;
        };
        if l.kill_deadline.is_some_and(|d| d <= deadline) {
            return;
        }
        l.kill_deadline = Some(deadline);
        procs::signal(l.pid, Signal::SIGTERM);
        let note = why.unwrap_or_else(|| format!("Stopping container {}", c.spec.name));
        self.sh.event(&node, &self.pod, false, "Killing", note);
    }

    /// A message from a container's tasks.
    pub(super) fn handle(&mut self, m: Msg) {
        let node = self.node.cfg.name.clone();
        match m {
            Msg::Exited { idx, run, exit } => {
                let Some(c) = self.ctrs.get_mut(idx).filter(|c| c.run == run) else {
                    return;
                };
                let Some(l) = c.live.take() else {
                    return;
                };
                l.probes.abort();
                self.sh.set_pid(
                    (self.ns.clone(), self.name.clone(), c.spec.name.clone()),
                    None,
                );
                let t = container::terminated(exit, l.started_at, &c.spec, &l.paths, &l.log);
                match t.reason.as_str() {
                    "OOMKilled" => self.sh.event(
                        &node,
                        &self.pod,
                        true,
                        "OOMKilled",
                        format!(
                            "Container {} exceeded its memory limit and was killed",
                            c.spec.name
                        ),
                    ),
                    "StartError" => self.sh.event(
                        &node,
                        &self.pod,
                        true,
                        "Failed",
                        format!("Error: {}", t.message.clone().unwrap_or_default()),
                    ),
                    _ => {}
                }
                c.state = State::Terminated(t);
            }
            Msg::Probe { idx, run, ev } => {
                let Some(c) = self
                    .ctrs
                    .get(idx)
                    .filter(|c| c.run == run && c.live.is_some())
                else {
                    return;
                };
                let name = c.spec.name.clone();
                match ev {
                    ProbeEvent::Changed => {}
                    ProbeEvent::Failed { kind, message } => {
                        self.sh.event(
                            &node,
                            &self.pod,
                            true,
                            "Unhealthy",
                            format!("{kind} probe failed: {message}"),
                        );
                    }
                    ProbeEvent::Kill { kind, message } => {
                        self.sh.event(
                            &node,
                            &self.pod,
                            true,
                            "Unhealthy",
                            format!("{kind} probe failed: {message}"),
                        );
                        let probe = if kind == "Liveness" {
                            c.spec.liveness_probe.as_ref()
                        } else {
                            c.spec.startup_probe.as_ref()
                        };
                        let grace = probe
                            .and_then(|p| p.termination_grace_period_seconds)
                            .or(self
                                .pod
                                .spec
                                .as_ref()
                                .and_then(|s| s.termination_grace_period_seconds))
                            .unwrap_or(30)
                            .max(0);
                        let deadline =
                            Instant::now() + Duration::from_secs(u64::try_from(grace).unwrap_or(0));
                        let why = format!(
                            "Container {name} failed {} probe, will be restarted",
                            kind.to_lowercase()
                        );
                        self.stop_container(idx, deadline, Some(why));
                    }
                }
            }
        }
    }
}
