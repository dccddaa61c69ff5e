//! Failure tests on a real local cluster: SIGKILL of an executor process mid-job still gives the
//! right result; an executor whose driver disappears exits non-zero with a clear message.

use crate::common;

use common::*;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn sigkill_of_an_executor_mid_job_still_gives_the_right_result() {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, "recovery");
    // Several seconds of work on an idle machine, well past the kill at 1.5 s; more only
    // lengthens the suite (the undisturbed reference runs it all again).
    let workload = [
        "batch.tasks=4",
        "batch.records=1000000",
        "batch.cost=500",
        "jobs.batch.runs=2",
        "stream.tasks=0",
    ];
    let mut cmd = local("synthetic", 2, &report, &workload);
    cmd.args(["--set", "heartbeat.interval_ms=100"]);
    let (child, victim) = spawn_with_executor_pid(cmd);
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
    batch_result_as_undisturbed(&dir, &r, &workload);
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
            "--insecure",
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
        .args(["--block-listen", "127.0.0.1:0", "--insecure"])
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
