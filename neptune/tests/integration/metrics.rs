//! The scraped `/metrics` of a running local cluster (driver and every executor) passes
//! `promtool check metrics`, labels jobs `neptune_job`, exports the stream job's latency target,
//! its SLO attainment (also on `/status`) and the transport's metrics (TLS on, open descriptors); `/healthz`, `/readyz` and `/status`
//! answer.

use crate::common;

use common::*;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn promtool_check(name: &str, text: &str) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/install-test-tools.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed for {name}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_of_a_running_local_cluster_pass_promtool() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = neptune()
        .args([
            "local",
            "--app",
            "fraud-detection",
            "--executors",
            "2",
            "--cores",
            "1",
            "--quiet",
        ])
        .args(["--http", &addr, "--duration", "25s"])
        .args([
            "--set",
            "history.records=20000",
            "--set",
            "jobs.score.interval_ms=100",
            "--set",
            "jobs.score.latency_target_ms=250",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status: serde_json::Value =
        wait_for(Duration::from_secs(60), "a committed micro-batch", || {
            let (code, body) = http_get(&addr, "/status").ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let runs = v["jobs"]
                .as_array()?
                .iter()
                .find(|j| j["name"] == "score")?["runs"]
                .as_u64()?;
            (code == 200 && runs >= 2 && v["executors"].as_array()?.len() == 2).then_some(v)
        });
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(&addr, "/readyz").unwrap().0, 200);

    // SLO attainment, once the stream job is past its warm-up: the target, the share within it
    // and the count, for the job with a target only.
    let jobs: Vec<serde_json::Value> = wait_for(
        Duration::from_secs(60),
        "steady-state micro-batches",
        || {
            let v: serde_json::Value =
                serde_json::from_str(&http_get(&addr, "/status").ok()?.1).ok()?;
            let jobs = v["jobs"].as_array()?.clone();
            let score = jobs.iter().find(|j| j["name"] == "score")?;
            (score["latency_ms"]["count"].as_u64()? >= 3).then_some(jobs)
        },
    );
    let job = |name: &str| jobs.iter().find(|j| j["name"] == name).unwrap().clone();
    let score = job("score");
    assert_eq!(score["latency_target_ms"], 250.0, "{score}");
    let attainment = score["slo_attainment"].as_f64().expect("an attainment");
    assert!((0.0..=1.0).contains(&attainment), "{score}");
    let (within, steady) = (
        score["slo_within"].as_u64().unwrap(),
        score["latency_ms"]["count"].as_u64().unwrap(),
    );
    assert!(within <= steady, "{score}");
    assert_eq!(attainment, within as f64 / steady as f64, "{score}");
    let train = job("train");
    for absent in [
        "latency_target_ms",
        "slo_attainment",
        "slo_within",
        "slo_guard",
    ] {
        assert!(train.get(absent).is_none(), "{absent} in {train}");
    }
    assert!(
        score.get("slo_guard").is_none(),
        "no guard outside the SLO-aware mode"
    );

    let (code, driver_metrics) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        driver_metrics.contains("neptune_driver_stream_latency_seconds_bucket"),
        "{driver_metrics}"
    );
    // Per-job series carry `neptune_job` (Prometheus owns `job`); the stream job's latency
    // target is exported, the batch job (no target) has none.
    assert!(
        driver_metrics
            .contains("neptune_driver_stream_latency_target_seconds{neptune_job=\"score\"} 0.25"),
        "{driver_metrics}"
    );
    assert!(
        !driver_metrics.contains("latency_target_seconds{neptune_job=\"train\"}"),
        "{driver_metrics}"
    );
    // The SLO counters, for the job with a target only; never fewer within than in all.
    let counter = |name: &str, job: &str| {
        let prefix = format!("{name}{{neptune_job=\"{job}\"}} ");
        driver_metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.parse::<f64>().unwrap())
    };
    let all = counter("neptune_driver_stream_slo_microbatches_total", "score")
        .unwrap_or_else(|| panic!("no SLO counter:\n{driver_metrics}"));
    let within = counter("neptune_driver_stream_slo_within_total", "score").unwrap();
    assert!(all >= 3.0 && within <= all, "{all} {within}");
    assert_eq!(
        counter("neptune_driver_stream_slo_microbatches_total", "train"),
        None
    );
    assert!(
        driver_metrics
            .contains("neptune_driver_job_runs_total{kind=\"stream\",neptune_job=\"score\"}"),
        "{driver_metrics}"
    );
    // The per-hop latency attribution: one histogram per hop, labelled `neptune_job` and `hop`.
    assert!(
        driver_metrics.contains(
            "neptune_driver_microbatch_hop_seconds_count{hop=\"process\",neptune_job=\"score\"}"
        ),
        "{driver_metrics}"
    );
    assert!(!driver_metrics.contains(",job=") && !driver_metrics.contains("{job="));
    for m in ["neptune_transport_tls_enabled 1", "process_open_fds "] {
        assert!(
            driver_metrics.contains(m),
            "driver lacks {m}:\n{driver_metrics}"
        );
    }
    promtool_check("driver", &driver_metrics);
    for e in status["executors"].as_array().unwrap() {
        let http = e["http"].as_str().unwrap();
        assert_eq!(http_get(http, "/readyz").unwrap().0, 200);
        let (code, m) = http_get(http, "/metrics").unwrap();
        assert_eq!(code, 200);
        assert!(m.contains("neptune_executor_tasks_running"), "{m}");
        assert!(m.contains("process_open_fds{"), "{m}");
        assert!(m.contains("neptune_transport_tls_enabled{"), "{m}");
        promtool_check(e["id"].as_str().unwrap(), &m);
    }
    let out = wait_with_timeout(child, Duration::from_secs(90));
    assert!(out.status.success());
}
