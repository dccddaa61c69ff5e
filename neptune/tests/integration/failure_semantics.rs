//! Failure semantics on real processes over real sockets (see docs/security.md, "Failure
//! semantics"): an executor leaves a silent (SIGSTOPped) driver and exits non-zero; an executor
//! the driver dropped for missed heartbeats registers again in the same process; a driver left
//! without executors fails the app; `neptune local` restarts executors that die, within a
//! budget, and its exit code says whether the jobs finished.

use crate::common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `kill -SIG pid`.
fn signal(sig: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -{sig} {pid}: no such process");
}

/// A standalone `neptune driver --insecure` for `executors` executors, its gRPC and HTTP
/// addresses, with `sets`.
fn driver(executors: u32, sets: &[&str]) -> (Child, String, String) {
    driver_reporting(executors, sets, None)
}

/// [`driver`], writing its report to `report`.
fn driver_reporting(
    executors: u32,
    sets: &[&str],
    report: Option<&std::path::Path>,
) -> (Child, String, String) {
    let grpc = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut cmd = neptune();
    cmd.args(["driver", "--app", "synthetic", "--insecure"])
        .args(["--executors", &executors.to_string()])
        .args(["--listen", &grpc, "--http", &http]);
    if let Some(r) = report {
        cmd.arg("--report").arg(r);
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, grpc, http)
}

/// A standalone `neptune executor --insecure` of the driver at `grpc`.
fn executor(grpc: &str, id: &str) -> Child {
    executor_with(grpc, id, &[])
}

/// [`executor`] with more flags.
fn executor_with(grpc: &str, id: &str, flags: &[&str]) -> Child {
    neptune()
        .args(["executor", "--driver", &format!("http://{grpc}")])
        .args(["--id", id, "--cores", "1", "--memory", "256Mi"])
        .args(["--http", "127.0.0.1:0", "--block-listen", "127.0.0.1:0"])
        .arg("--insecure")
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ids of the executors registered with the driver at `http`, per its `/status`.
fn registered(http: &str) -> Option<Vec<String>> {
    Some(
        status(http)?["executors"]
            .as_array()?
            .iter()
            .filter_map(|e| Some(e["id"].as_str()?.to_string()))
            .collect(),
    )
}

fn executors_lost(http: &str) -> Option<u64> {
    status(http)?["totals"]["executors_lost"].as_u64()
}

/// Waits (at most `within`) for `child` to exit and asserts it failed with `needle` in its stderr.
fn exits_non_zero_naming(child: Child, within: Duration, needle: &str) {
    let out = wait_with_timeout(child, within);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a non-zero exit\n{err}");
    assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
}

/// A long batch job that keeps the app busy while the test disturbs it.
const BUSY: [&str; 3] = [
    "batch.records=100000000",
    "batch.cost=1000",
    "stream.tasks=0",
];

#[test]
fn an_executor_leaves_a_silent_driver_and_exits_non_zero_naming_the_timeout() {
    let mut sets = BUSY.to_vec();
    sets.extend([
        "heartbeat.interval_ms=50",
        "heartbeat.driver_timeout_ms=500",
    ]);
    let (d, grpc, http) = driver(1, &sets);
    let d = Reap(Some(d));
    let exec = executor(&grpc, "exec-0");
    wait_for(Duration::from_secs(60), "the executor to register", || {
        registered(&http).filter(|r| r == &["exec-0"])
    });
    // The driver's process stops; its kernel still ACKs, so only the application-level
    // keep-alive can tell.
    signal("STOP", d.id());
    // An executor whose driver is silent exits non-zero.
    exits_non_zero_naming(exec, Duration::from_secs(60), "heartbeat.driver_timeout_ms");
}

#[test]
fn a_dropped_executor_registers_again_in_the_same_process_and_the_result_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, "rejoin");
    // Several seconds of work on an idle machine, well past the disturbance; more only lengthens
    // the suite (each disturbed run is followed by an undisturbed one).
    let workload = [
        "batch.tasks=4",
        "batch.records=400000",
        "batch.cost=500",
        "jobs.batch.runs=6",
        "stream.tasks=0",
    ];
    let http = format!("127.0.0.1:{}", free_port());
    let mut cmd = local_on("synthetic", 2, &report, &workload, &http);
    cmd.args(["--set", "heartbeat.interval_ms=50"])
        .args(["--set", "heartbeat.timeout_ms=500"]);
    let (child, pids) = spawn_with_executor_pids(cmd);
    let child = Reap(Some(child));
    let victim = wait_for(Duration::from_secs(60), "exec-1 registered", || {
        let r = registered(&http)?;
        r.iter().any(|e| e == "exec-1").then_some(())?;
        pids.lock().unwrap().get("exec-1").copied()
    });
    // Silent past the heartbeat timeout: the driver drops it and re-runs its tasks.
    signal("STOP", victim);
    wait_for(Duration::from_secs(60), "the driver to drop exec-1", || {
        executors_lost(&http).filter(|n| *n >= 1)
    });
    signal("CONT", victim);
    wait_for(Duration::from_secs(60), "exec-1 to register again", || {
        registered(&http)?
            .iter()
            .any(|e| e == "exec-1")
            .then_some(())
    });
    assert_eq!(
        pids.lock().unwrap().get("exec-1").copied(),
        Some(victim),
        "exec-1 came back as the same process (registered again), not as a restarted one"
    );
    let out = wait_with_timeout(child.take(), Duration::from_secs(240));
    assert!(out.status.success(), "the run failed after the drop");
    let r = read_report(&report);
    assert_eq!(job(&r, "batch")["runs"], 6);
    batch_result_as_undisturbed(&dir, &r, &workload);
}

#[test]
fn a_dropped_executor_that_cannot_register_again_exits_non_zero_after_its_attempts() {
    let mut sets = BUSY.to_vec();
    sets.extend([
        "heartbeat.interval_ms=50",
        "heartbeat.timeout_ms=500",
        "executor.rejoin_attempts=2",
    ]);
    let (d, grpc, http) = driver(1, &sets);
    let d = Reap(Some(d));
    let exec = Reap(Some(executor_with(
        &grpc,
        "exec-0",
        &["--connect-timeout", "2s"],
    )));
    wait_for(Duration::from_secs(60), "the executor to register", || {
        registered(&http).filter(|r| r == &["exec-0"])
    });
    // Silent past the heartbeat timeout: the driver drops it and tells it to rejoin.
    signal("STOP", exec.id());
    wait_for(Duration::from_secs(60), "the driver to drop exec-0", || {
        executors_lost(&http).filter(|n| *n >= 1)
    });
    // Then the driver wedges: its kernel still accepts connections, nothing answers.
    signal("STOP", d.id());
    signal("CONT", exec.id());
    exits_non_zero_naming(
        exec.take(),
        Duration::from_secs(60),
        "could not register again within executor.rejoin_attempts = 2",
    );
}

#[test]
fn a_driver_left_without_executors_fails_the_app_naming_the_timeout() {
    let mut sets = BUSY.to_vec();
    sets.push("driver.no_executors_timeout_ms=1000");
    let (d, grpc, http) = driver(1, &sets);
    let exec = Reap(Some(executor(&grpc, "exec-0")));
    wait_for(Duration::from_secs(60), "the executor to register", || {
        registered(&http).filter(|r| r == &["exec-0"])
    });
    sigkill(exec.id());
    // A driver without executors fails.
    exits_non_zero_naming(d, Duration::from_secs(60), "driver.no_executors_timeout_ms");
}

#[test]
fn a_task_failing_its_attempt_limit_fails_the_run_with_the_message_and_exit_code() {
    // A malformed record under the `fail` policy fails its task on every attempt.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(
        input.join("a.jsonl"),
        "{\"text\": \"to be\"}\n{\"text\": oops}\n",
    )
    .unwrap();
    let input = format!("input={}", input.display());
    let report = report_path(&dir, "poison");
    let sets = [
        input.as_str(),
        "input.format=jsonl",
        "input.malformed=fail",
        "scheduler.max_task_failures=2",
    ];
    let out = run_with_timeout(
        local("wordcount", 1, &report, &sets),
        Duration::from_secs(120),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("failed 2 times") && err.contains("a.jsonl:2"),
        "{err}"
    );
}

/// Pids of a `neptune local`'s executors by id (the latest announced) and every stderr line.
#[derive(Default)]
struct Seen {
    pids: std::collections::HashMap<String, u32>,
    lines: Vec<String>,
}

type Shared = std::sync::Arc<std::sync::Mutex<Seen>>;

/// `neptune local` with `sets` (stderr read into a [`Seen`] and echoed), its HTTP address and
/// report path.
fn local_cluster(
    dir: &tempfile::TempDir,
    sets: &[&str],
) -> (Reap, Shared, String, std::path::PathBuf) {
    use std::io::BufRead;
    let report = report_path(dir, "local");
    let http = format!("127.0.0.1:{}", free_port());
    let mut child = local_on("synthetic", 2, &report, sets, &http)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let seen = Shared::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
            let mut s = s.lock().unwrap();
            if let Some(rest) = line.strip_prefix("neptune local: executor ")
                && let Some((id, pid)) = rest.split_once(" pid ")
            {
                s.pids.insert(id.to_string(), pid.trim().parse().unwrap());
            }
            s.lines.push(line);
        }
    });
    (Reap(Some(child)), seen, http, report)
}

/// Waits until `neptune local` announced a pid other than `old` for `id`, and returns it.
fn new_pid(seen: &Shared, id: &str, old: u32) -> u32 {
    wait_for(Duration::from_secs(60), "a restarted executor", || {
        seen.lock()
            .unwrap()
            .pids
            .get(id)
            .copied()
            .filter(|p| *p != old)
    })
}

fn pid_of(seen: &Shared, id: &str) -> Option<u32> {
    seen.lock().unwrap().pids.get(id).copied()
}

#[test]
fn neptune_local_restarts_a_killed_executor_and_the_result_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    // Several seconds of work on an idle machine, well past the disturbance; more only lengthens
    // the suite (each disturbed run is followed by an undisturbed one).
    let workload = [
        "batch.tasks=4",
        "batch.records=400000",
        "batch.cost=500",
        "jobs.batch.runs=6",
        "stream.tasks=0",
    ];
    let (child, seen, http, report) = local_cluster(&dir, &workload);
    let victim = wait_for(Duration::from_secs(60), "exec-1 registered", || {
        registered(&http)?
            .iter()
            .any(|e| e == "exec-1")
            .then_some(())?;
        pid_of(&seen, "exec-1")
    });
    sigkill(victim);
    let restarted = new_pid(&seen, "exec-1", victim);
    // The new process registers: the driver counts the loss and has two executors again.
    wait_for(
        Duration::from_secs(60),
        "exec-1 back after its restart",
        || {
            let lost = executors_lost(&http)?;
            let r = registered(&http)?;
            (lost >= 1 && r.len() == 2 && r.iter().any(|e| e == "exec-1")).then_some(())
        },
    );
    let out = wait_with_timeout(child.take(), Duration::from_secs(240));
    assert!(out.status.success(), "the run failed after a restart");
    assert_eq!(pid_of(&seen, "exec-1"), Some(restarted), "one restart");
    let lines = seen.lock().unwrap().lines.join("\n");
    assert!(
        lines.contains("executor exec-1 exited") && lines.contains("restart 1 of 3"),
        "{lines}"
    );
    let r = read_report(&report);
    assert_eq!(job(&r, "batch")["runs"], 6);
    batch_result_as_undisturbed(&dir, &r, &workload);
}

#[test]
fn neptune_local_gives_up_on_an_executor_that_keeps_dying_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut sets = BUSY.to_vec();
    sets.push("local.max_executor_restarts=1");
    let (child, seen, http, _) = local_cluster(&dir, &sets);
    let first = wait_for(Duration::from_secs(60), "exec-1 registered", || {
        registered(&http)?
            .iter()
            .any(|e| e == "exec-1")
            .then_some(())?;
        pid_of(&seen, "exec-1")
    });
    sigkill(first);
    let second = new_pid(&seen, "exec-1", first);
    sigkill(second);
    let out = wait_with_timeout(child.take(), Duration::from_secs(120));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a run whose executor used up its restarts must fail"
    );
    let lines = seen.lock().unwrap().lines.join("\n");
    assert!(
        lines.contains("giving up") && lines.contains("local.max_executor_restarts = 1"),
        "{lines}"
    );
}

#[test]
fn neptune_local_stopped_before_a_batch_job_finished_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, "stopped");
    let mut sets = BUSY.to_vec();
    sets.push("jobs.batch.runs=1000");
    let mut cmd = local("synthetic", 1, &report, &sets);
    cmd.args(["--duration", "1s"]);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("batch (0/1000 runs)"), "{err}");
}

/// The `/status` entry of executor `id`.
fn executor_status(http: &str, id: &str) -> Option<serde_json::Value> {
    status(http)?["executors"]
        .as_array()?
        .iter()
        .find(|e| e["id"] == id)
        .cloned()
}

#[test]
fn an_unacknowledged_launch_is_relaunched_elsewhere_and_the_silent_executor_is_suspect() {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, "acks");
    let workload = [
        "batch.tasks=4",
        "batch.records=200000",
        "batch.cost=1000",
        "jobs.batch.runs=1",
        "stream.tasks=0",
    ];
    let mut sets = workload.to_vec();
    // The stopped executor also stops heartbeating: the acknowledgement timeout must fire long
    // before the heartbeat timeout would drop it.
    sets.extend([
        "heartbeat.interval_ms=50",
        "heartbeat.timeout_ms=120000",
        "driver.launch_ack_timeout_ms=1000",
    ]);
    let (d, grpc, http) = driver_reporting(2, &sets, Some(&report));
    let d = Reap(Some(d));
    // exec-1 registers first and is stopped before the jobs start (they wait for two
    // executors), so it never acknowledges its launches.
    let slow = Reap(Some(executor(&grpc, "exec-1")));
    wait_for(Duration::from_secs(60), "exec-1 to register", || {
        registered(&http).filter(|r| r == &["exec-1"])
    });
    signal("STOP", slow.id());
    let _fast = Reap(Some(executor(&grpc, "exec-0")));
    let st = wait_for(Duration::from_secs(60), "exec-1 to become suspect", || {
        let e = executor_status(&http, "exec-1")?;
        (e["suspect"] == true).then_some(())?;
        status(&http)
    });
    assert!(
        st["totals"]["launch_ack_timeouts"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert_eq!(
        executor_status(&http, "exec-0").unwrap()["suspect"],
        false,
        "{st}"
    );
    // Awake again, it acknowledges late and is trusted again.
    signal("CONT", slow.id());
    wait_for(Duration::from_secs(60), "exec-1 trusted again", || {
        (executor_status(&http, "exec-1")?["suspect"] == false).then_some(())
    });
    let out = wait_with_timeout(d.take(), Duration::from_secs(240));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = read_report(&report);
    assert_eq!(job(&r, "batch")["runs"], 1);
    batch_result_as_undisturbed(&dir, &r, &workload);
}
