//! Helpers for the multi-process tests: run the real `neptune` binary, read its report, fetch HTTP.

#![allow(dead_code, reason = "each test binary uses a subset")]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn neptune() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_neptune"));
    c.env_remove("RUST_LOG");
    c
}

/// Run `cmd` to completion, failing the test (after killing it) if it takes longer than `limit`.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn neptune");
    wait_with_timeout(child, limit)
}

/// Wait for `child`, killing it and failing the test past `limit`.
pub fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "neptune did not finish within {limit:?}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills (and reaps) a child when the test ends, however it ends; resumes it first in case it
/// is stopped.
pub struct Reap(pub Option<Child>);

impl Reap {
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("child").id()
    }

    /// The child, no longer reaped by the guard.
    pub fn take(mut self) -> Child {
        self.0.take().expect("child")
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Stop a running `neptune local` with SIGTERM and assert it exits cleanly within a minute.
pub fn terminate(child: Child) -> Output {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success(), "kill -TERM: the process had already exited");
    let out = wait_with_timeout(child, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "neptune local did not stop cleanly:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The driver's `/status` document at `addr`, if it answers.
pub fn status(addr: &str) -> Option<serde_json::Value> {
    let (_, body) = http_get(addr, "/status").ok()?;
    serde_json::from_str(&body).ok()
}

/// Runs committed so far by job `name`, per the driver's `/status` at `addr`.
pub fn job_runs(addr: &str, name: &str) -> Option<u64> {
    status(addr)?["jobs"]
        .as_array()?
        .iter()
        .find(|j| j["name"] == name)?["runs"]
        .as_u64()
}

/// Word totals over every run's `word<TAB>count` files under `out` (`run-*/part-*`, skipping
/// parts still being written), and how many runs counted any word.
pub fn word_totals(out: &Path) -> (std::collections::BTreeMap<String, u64>, usize) {
    let mut sum = std::collections::BTreeMap::new();
    let mut runs_with_words = 0;
    for run in std::fs::read_dir(out).into_iter().flatten().flatten() {
        let mut any = false;
        for part in std::fs::read_dir(run.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if part.file_name().to_string_lossy().starts_with('.') {
                continue; // a part still being written
            }
            for l in std::fs::read_to_string(part.path()).unwrap().lines() {
                let (w, n) = l.split_once('\t').expect("word<TAB>count");
                *sum.entry(w.to_string()).or_default() += n.parse::<u64>().unwrap();
                any = true;
            }
        }
        runs_with_words += usize::from(any);
    }
    (sum, runs_with_words)
}

/// A temp file path for a report.
pub fn report_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(format!("{name}.json"))
}

/// Parse a report file.
pub fn read_report(path: &PathBuf) -> serde_json::Value {
    let s =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("report {}: {e}", path.display()));
    serde_json::from_str(&s).expect("report is JSON")
}

/// The job named `name` in a report.
pub fn job<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("job {name} in {report}"))
}

/// `GET path` on `addr` with a plain HTTP/1.0 request; returns (status code, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

/// A free loopback port (bind to 0, read, close).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `f` until it returns `Some`, failing after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `neptune local --app APP --executors N --cores 2 --quiet --http 127.0.0.1:0 --report FILE
/// --set S...`; add flags (e.g. `--policy`) to the returned command.
pub fn local(app: &str, executors: u32, report: &Path, sets: &[&str]) -> Command {
    local_on(app, executors, report, sets, "127.0.0.1:0")
}

/// [`local`] with the driver's HTTP address chosen.
pub fn local_on(app: &str, executors: u32, report: &Path, sets: &[&str], http: &str) -> Command {
    let mut cmd = neptune();
    cmd.args(["local", "--app", app, "--cores", "2", "--quiet"])
        .args(["--executors", &executors.to_string()])
        .args(["--http", http])
        .arg("--report")
        .arg(report);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd
}

/// Run `cmd` (a `neptune local`) to success within 240 s, showing its stderr if it fails.
pub fn run_ok(cmd: Command) {
    let out = run_with_timeout(cmd, Duration::from_secs(240));
    assert!(
        out.status.success(),
        "neptune local failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Spawn a `neptune local` with stderr echoed to the test's stderr, and return it with the pids
/// of its executors by id, filled in as `neptune local` announces them.
pub fn spawn_with_executor_pids(mut cmd: Command) -> (Child, Arc<Mutex<HashMap<String, u32>>>) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("piped stderr");
    let pids = Arc::new(Mutex::new(HashMap::new()));
    let p = pids.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.strip_prefix("neptune local: executor ")
                && let Some((id, pid)) = rest.split_once(" pid ")
            {
                let pid = pid.trim().parse::<u32>().expect("pid");
                p.lock().unwrap().insert(id.to_string(), pid);
            }
            eprintln!("{line}");
        }
    });
    (child, pids)
}

/// Spawn a `neptune local` with stderr echoed to the test's stderr, and return it with the pid of
/// executor `exec-1` once announced.
pub fn spawn_with_executor_pid(cmd: Command) -> (Child, u32) {
    let (child, pids) = spawn_with_executor_pids(cmd);
    let pid = wait_for(Duration::from_secs(60), "executor exec-1's pid", || {
        pids.lock().unwrap().get("exec-1").copied()
    });
    (child, pid)
}

/// `kill -9 pid`, failing the test if the process is already gone.
pub fn sigkill(pid: u32) {
    let ok = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(
        ok.success(),
        "kill -9 {pid}: the process had already exited"
    );
}

/// Asserts the disturbed run's `batch` result equals that of `workload` (a `synthetic` app) on
/// an undisturbed single-executor cluster. The whole workload runs again: each run of the batch
/// job draws other records (the run is part of the seed), and the report holds the last run's.
pub fn batch_result_as_undisturbed(
    dir: &tempfile::TempDir,
    disturbed: &serde_json::Value,
    workload: &[&str],
) {
    let undisturbed = report_path(dir, "undisturbed");
    run_ok(local("synthetic", 1, &undisturbed, workload));
    let u = read_report(&undisturbed);
    assert_eq!(
        job(disturbed, "batch")["result"],
        job(&u, "batch")["result"]
    );
}
