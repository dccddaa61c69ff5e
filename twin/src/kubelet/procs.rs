//! Container processes: spawning through `neptune-pod-init`, exit statuses, signals to a
//! container's whole session, memory limits read from /proc, and the registry that kills
//! everything still running when the kubelet goes away (also on a test's panic).
//!
//! Each container run is its own session and process group (`setsid` in the init), so what
//! it forks stays findable: a graceful stop sends SIGTERM to the main process, as a runtime
//! does, and SIGKILL goes to every process of the session. Memory is the sum of the
//! session's resident set sizes (RSS from `/proc/<pid>/stat`; a cgroup would also count page
//! cache, the twin does not); over `limits.memory` the session is SIGKILLed and the run
//! reported `OOMKilled` with exit code 137.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::logs::LogSink;

/// A running container process.
#[derive(Debug)]
pub struct Proc {
    /// Its pid (also its session and process group id).
    pub pid: i32,
    /// Set when the kubelet killed it for exceeding its memory limit (or a test forced it).
    pub oom: Arc<AtomicBool>,
    child: Child,
    logs: Vec<tokio::task::JoinHandle<()>>,
}

/// How a container process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Killed by the memory monitor.
    pub oom: bool,
}

/// Starts `neptune-pod-init SPEC` with stdout/stderr into `log`.
///
/// # Errors
/// When the init binary cannot be spawned.
pub fn spawn(
    pod_init: &Path,
    spec: &Path,
    log: &LogSink,
    registry: &Registry,
) -> std::io::Result<Proc> {
    let mut child = Command::new(pod_init)
        .arg(spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .spawn()?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| std::io::Error::other("spawned process has no pid"))?;
    let mut logs = Vec::new();
    if let Some(out) = child.stdout.take() {
        logs.push(tokio::spawn(log.clone().copy(out)));
    }
    if let Some(err) = child.stderr.take() {
        logs.push(tokio::spawn(log.clone().copy(err)));
    }
    let oom = Arc::new(AtomicBool::new(false));
    registry.add(pid, None, oom.clone());
    Ok(Proc {
        pid,
        oom,
        child,
        logs,
    })
}

impl Proc {
    /// Waits for the main process to exit, kills what is left of its session (a container
    /// ends with its main process), and lets the log copiers drain.
    pub async fn wait(mut self, registry: &Registry) -> Exit {
        let status = self.child.wait().await;
        kill_session(self.pid, Signal::SIGKILL);
        registry.remove(self.pid);
        for task in self.logs.drain(..) {
            // Output still buffered in the pipes is copied; a writer that kept a pipe open
            // was just killed, so this ends promptly.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
        let oom = self.oom.load(Ordering::SeqCst);
        use std::os::unix::process::ExitStatusExt;
        match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => Exit {
                    code,
                    signal: None,
                    oom,
                },
                (None, Some(sig)) => Exit {
                    code: 128 + sig,
                    signal: Some(sig),
                    oom,
                },
                (None, None) => Exit {
                    code: 255,
                    signal: None,
                    oom,
                },
            },
            Err(_) => Exit {
                code: 255,
                signal: None,
                oom,
            },
        }
    }
}

/// Sends `sig` to one process (the container's main process for a graceful stop).
pub fn signal(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid), sig);
}

/// Sends `sig` to every process whose session is `sid`.
pub fn kill_session(sid: i32, sig: Signal) {
    for (pid, session, _) in scan() {
        if session == sid {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}

/// `(pid, session, rss bytes)` of every process readable in /proc.
fn scan() -> Vec<(i32, i32, u64)> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let page = procfs::page_size();
    all.filter_map(Result::ok)
        .filter_map(|p| p.stat().ok())
        .map(|s| (s.pid, s.session, s.rss.saturating_mul(page)))
        .collect()
}

/// Live container sessions: memory limits, OOM flags, and the kill-all on drop.
#[derive(Debug, Default)]
pub struct Registry {
    sessions: Mutex<HashMap<i32, Entry>>,
}

#[derive(Debug)]
struct Entry {
    limit: Option<u64>,
    oom: Arc<AtomicBool>,
}

impl Registry {
    fn add(&self, sid: i32, limit: Option<u64>, oom: Arc<AtomicBool>) {
        self.lock().insert(sid, Entry { limit, oom });
    }

    /// Sets the memory limit of session `sid`.
    pub fn set_limit(&self, sid: i32, limit: Option<u64>) {
        if let Some(e) = self.lock().get_mut(&sid) {
            e.limit = limit;
        }
    }

    fn remove(&self, sid: i32) {
        self.lock().remove(&sid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Entry>> {
        // A panic while holding the lock leaves a consistent map (plain inserts/removes).
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One memory check: sessions over their limit are SIGKILLed and flagged OOM. Returns the
    /// sessions killed.
    pub fn enforce_limits(&self) -> Vec<i32> {
        let limits: HashMap<i32, (u64, Arc<AtomicBool>)> = self
            .lock()
            .iter()
            .filter_map(|(sid, e)| e.limit.map(|l| (*sid, (l, e.oom.clone()))))
            .collect();
        if limits.is_empty() {
            return Vec::new();
        }
        let procs = scan();
        let mut used: HashMap<i32, u64> = HashMap::new();
        for (_, sid, rss) in &procs {
            if limits.contains_key(sid) {
                *used.entry(*sid).or_default() += rss;
            }
        }
        let mut killed = Vec::new();
        for (sid, (limit, oom)) in limits {
            if used.get(&sid).copied().unwrap_or(0) > limit {
                oom.store(true, Ordering::SeqCst);
                for (pid, s, _) in &procs {
                    if *s == sid {
                        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                    }
                }
                killed.push(sid);
            }
        }
        killed
    }

    /// Kills session `sid` as an OOM kill would (the test hook for OOM scenarios).
    pub fn force_oom(&self, sid: i32) -> bool {
        let Some(oom) = self.lock().get(&sid).map(|e| e.oom.clone()) else {
            return false;
        };
        oom.store(true, Ordering::SeqCst);
        kill_session(sid, Signal::SIGKILL);
        true
    }

    /// SIGKILLs every live session (the kubelet stops).
    pub fn kill_all(&self) {
        let sids: Vec<i32> = self.lock().keys().copied().collect();
        if sids.is_empty() {
            return;
        }
        for (pid, sid, _) in scan() {
            if sids.contains(&sid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill_all();
    }
}
