//! Failure tests on a real local cluster: SIGKILL of an executor process mid-job still gives the
//! right result; an executor whose driver disappears exits non-zero with a clear message.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

fn sigkill(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -9 {pid}");
}

#[test]
fn sigkill_of_an_executor_mid_job_still_gives_the_right_result() {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, "recovery");
    let workload = [
        "batch.tasks=4",
        "batch.records=1000000",
        "batch.cost=1000",
        "jobs.batch.runs=2",
        "stream.tasks=0",
    ];
    let mut cmd = neptune();
    cmd.args([
        "local",
        "--app",
        "synthetic",
        "--executors",
        "2",
        "--cores",
        "2",
        "--quiet",
    ])
    .args([
        "--http",
        "127.0.0.1:0",
        "--set",
        "heartbeat.interval_ms=100",
    ])
    .arg("--report")
    .arg(&report);
    for s in workload {
        cmd.args(["--set", s]);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr until both executors are announced; keep draining it in the background.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(pid) = line.strip_prefix("neptune local: executor exec-1 pid ") {
                let _ = tx.send(pid.trim().parse::<u32>().unwrap());
            }
            eprintln!("{line}");
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let victim = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("executor pid announced");
    // Let the batch tasks get going, then kill one executor outright.
    std::thread::sleep(Duration::from_millis(1500));
    sigkill(victim);
    let out = wait_with_timeout(child, Duration::from_secs(240));
    assert!(
        out.status.success(),
        "local run failed after SIGKILL of an executor"
    );
    let r = read_report(&report);
    assert!(r["totals"]["executors_lost"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(job(&r, "batch")["runs"], 2);

    // Same workload, undisturbed, for the expected result.
    let report2 = report_path(&dir, "undisturbed");
    let mut cmd = neptune();
    cmd.args([
        "local",
        "--app",
        "synthetic",
        "--executors",
        "1",
        "--cores",
        "2",
        "--quiet",
    ])
    .args(["--http", "127.0.0.1:0"])
    .arg("--report")
    .arg(&report2);
    for s in workload {
        cmd.args(["--set", s]);
    }
    let out = run_with_timeout(cmd, Duration::from_secs(240));
    assert!(out.status.success());
    let r2 = read_report(&report2);
    assert_eq!(job(&r, "batch")["result"], job(&r2, "batch")["result"]);
}

#[test]
fn an_executor_whose_driver_disappears_exits_non_zero_with_a_clear_message() {
    let port = free_port();
    let mut driver = neptune()
        .args(["driver", "--app", "synthetic", "--executors", "1"])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--http",
            "127.0.0.1:0",
        ])
        .args([
            "--set",
            "batch.records=100000000",
            "--set",
            "stream.tasks=0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exec = neptune()
        .args(["executor", "--driver", &format!("http://127.0.0.1:{port}")])
        .args(["--cores", "1", "--memory", "256Mi", "--http", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    sigkill(driver.id());
    let _ = driver.wait();
    let out = wait_with_timeout(exec, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "executor should fail when its driver is gone"
    );
    assert!(err.contains("lost the driver"), "{err}");
}
