//! Bad flags and config values exit non-zero with a message naming the flag or key.

use crate::common;

use common::*;
use std::time::Duration;

fn fails_naming(args: &[&str], needle: &str) {
    let mut cmd = neptune();
    cmd.args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "`neptune {}` should fail",
        args.join(" ")
    );
    assert!(
        err.contains(needle),
        "`neptune {}`: expected `{needle}` in:\n{err}",
        args.join(" ")
    );
}

#[test]
fn bad_flags_and_config_values_are_refused_by_name() {
    let local = ["local", "--app", "synthetic", "--http", "127.0.0.1:0"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        local.iter().copied().chain(extra.iter().copied()).collect()
    };
    fails_naming(&with(&["--policy", "lifo"]), "--policy");
    fails_naming(&with(&["--executors", "0"]), "--executors");
    fails_naming(&with(&["--duration", "forever"]), "--duration");
    fails_naming(&with(&["--memory", "lots"]), "--memory");
    fails_naming(&with(&["--set", "batch.cost=cheap"]), "batch.cost");
    fails_naming(&with(&["--set", "no.such.key=1"]), "no.such.key");
    fails_naming(
        &with(&["--set", "jobs.stream.kind=sometimes"]),
        "jobs.stream.kind",
    );
    fails_naming(
        &with(&["--set", "scheduler.placement=nearest"]),
        "scheduler.placement",
    );
    fails_naming(
        &with(&["--set", "heartbeat.interval_ms=0"]),
        "heartbeat.interval_ms",
    );
    fails_naming(&with(&["--set", "novalue"]), "novalue");
    fails_naming(
        &["local", "--app", "nope", "--http", "127.0.0.1:0"],
        "unknown app `nope`",
    );
    fails_naming(
        &[
            "executor",
            "--driver",
            "not a url",
            "--cores",
            "1",
            "--memory",
            "1Gi",
            "--http",
            "127.0.0.1:0",
            "--block-listen",
            "127.0.0.1:0",
            "--insecure",
        ],
        "--driver",
    );
    fails_naming(
        &[
            "executor",
            "--driver",
            "http://127.0.0.1:1",
            "--cores",
            "1",
            "--memory",
            "1Gi",
            "--http",
            "127.0.0.1:0",
            "--block-listen",
            "127.0.0.1:0",
            "--connect-timeout",
            "1s",
            "--insecure",
        ],
        "cannot reach the driver",
    );
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn without_credentials_driver_and_executor_refuse_to_start_saying_what_to_pass() {
    let exec = |extra: &[&str]| -> Vec<String> {
        [
            "executor",
            "--cores",
            "1",
            "--memory",
            "1Gi",
            "--http",
            "127.0.0.1:0",
            "--block-listen",
            "127.0.0.1:0",
            "--connect-timeout",
            "1s",
        ]
        .iter()
        .chain(extra)
        .map(ToString::to_string)
        .collect()
    };
    fails_naming(
        &strs(&exec(&["--driver", "https://127.0.0.1:1"])),
        "no TLS credentials: pass --tls-dir",
    );
    fails_naming(
        &[
            "driver",
            "--app",
            "synthetic",
            "--listen",
            "0.0.0.0:0",
            "--http",
            "127.0.0.1:0",
        ],
        "0.0.0.0:0 is reachable from other machines",
    );
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    let mut certs = neptune();
    certs.args(["certs", "--out"]).arg(&creds);
    let out = run_with_timeout(certs, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = creds.to_str().unwrap();
    // A plaintext URL with credentials: refused rather than silently unencrypted.
    fails_naming(
        &strs(&exec(&["--driver", "http://127.0.0.1:1", "--tls-dir", c])),
        "use https://",
    );
    // `certs` does not overwrite, and a missing directory names the file it lacks.
    let mut again = neptune();
    again.args(["certs", "--out", c]);
    let out = run_with_timeout(again, Duration::from_secs(60));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let missing = dir.path().join("nowhere");
    fails_naming(
        &strs(&exec(&[
            "--driver",
            "https://127.0.0.1:1",
            "--tls-dir",
            missing.to_str().unwrap(),
        ])),
        "nowhere/tls.key",
    );
}

#[test]
fn apps_lists_the_built_in_apps() {
    let mut cmd = neptune();
    cmd.arg("apps");
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        s.contains("fraud-detection") && s.contains("synthetic"),
        "{s}"
    );
}
