//! Start-up as on Kubernetes, where the operator starts the driver and its executors together:
//! an executor started before its driver retries until the driver listens, then registers; the
//! driver is ready (`/readyz` 200) as soon as it serves, not once its executors registered
//! (`/status` `ready`, jobs started, is that); each binds the IP it is given (as pods bind
//! their pod IP) and the driver sees the executor at that IP.

use crate::common;

use common::*;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn driver_is_ready_before_its_executors_and_an_early_executor_waits_for_it() {
    let (grpc, http, executor_http) = (free_port(), free_port(), free_port());
    let driver_http = format!("127.0.0.2:{http}");
    let executor_addr = format!("127.0.0.3:{executor_http}");
    // The app's credentials, as the operator's Secret would carry them.
    let creds = tempfile::tempdir().unwrap();
    let tls = creds.path().join("tls");
    let made = neptune()
        .args(["certs", "--app", "synthetic", "--out"])
        .arg(&tls)
        .status()
        .unwrap();
    assert!(made.success());
    // The executor first: nothing listens on the driver's port yet.
    let executor = neptune()
        .args(["executor", "--driver", &format!("https://127.0.0.2:{grpc}")])
        .args(["--cores", "1", "--memory", "256Mi", "--id", "early"])
        .args(["--http", &executor_addr, "--connect-timeout", "300s"])
        .args(["--block-listen", "127.0.0.3:0", "--tls-dir"])
        .arg(&tls)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the executor's HTTP server",
        || (http_get(&executor_addr, "/healthz").ok()?.0 == 200).then_some(()),
    );
    assert_eq!(
        http_get(&executor_addr, "/readyz").unwrap().0,
        503,
        "not registered: there is no driver yet"
    );
    // A driver expecting two executors, with a start timeout that never passes in this test.
    let driver = neptune()
        .args(["driver", "--app", "synthetic", "--executors", "2"])
        .args([
            "--listen",
            &format!("127.0.0.2:{grpc}"),
            "--http",
            &driver_http,
        ])
        .args(["--set", "driver.start_timeout_ms=3600000", "--tls-dir"])
        .arg(&tls)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(60), "the driver's /readyz", || {
        (http_get(&driver_http, "/readyz").ok()?.0 == 200).then_some(())
    });
    let st = wait_for(
        Duration::from_secs(60),
        "the early executor to register",
        || {
            let st = status(&driver_http)?;
            (st["executors"].as_array()?.len() == 1).then_some(st)
        },
    );
    assert_eq!(st["executors"][0]["id"], "early");
    assert_eq!(st["executors"][0]["http"], executor_addr.as_str());
    assert_eq!(st["ready"], false, "jobs wait for the second executor");
    assert_eq!(http_get(&driver_http, "/readyz").unwrap().0, 200);
    wait_for(Duration::from_secs(60), "the executor's /readyz", || {
        (http_get(&executor_addr, "/readyz").ok()?.0 == 200).then_some(())
    });
    terminate(driver);
    let out = wait_with_timeout(executor, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "the executor stops when its driver does:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("driver not reachable yet; retrying with back-off"),
        "the executor says it is waiting:\n{log}"
    );
}
