//! Shared state on a real local cluster: each executor receives (and decodes) every version of
//! the `fraud-detection` model once, however many tasks read it.

use crate::common;

use common::*;
use std::process::Stdio;
use std::time::Duration;

/// Sum of every series of metric `name` in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn each_executor_receives_and_decodes_each_model_version_once_not_per_task() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = local_on(
        "fraud-detection",
        2,
        &report_path(&dir, "fraud"),
        &[
            "history.records=2000",
            "history.partitions=4",
            // Few epochs, so versions stop growing while score tasks keep reading them.
            "jobs.train.runs=5",
            "jobs.score.interval_ms=100",
        ],
        &addr,
    );
    cmd.args(["--duration", "40s"]);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Per executor: (versions stored, duplicate deliveries, decodes, tasks finished).
    let per_executor = wait_for(
        Duration::from_secs(90),
        "every executor to hold several model versions and to have run more tasks than that",
        || {
            let (_, body) = http_get(&addr, "/status").ok()?;
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            let execs = status["executors"].as_array()?;
            if execs.len() != 2 {
                return None;
            }
            let mut seen = Vec::new();
            for e in execs {
                let (_, m) = http_get(e["http"].as_str()?, "/metrics").ok()?;
                let versions = metric(&m, "neptune_executor_broadcast_versions_total");
                let finished = metric(&m, "neptune_executor_tasks_finished_total");
                if versions < 3 || finished < 4 * versions {
                    return None;
                }
                seen.push((
                    versions,
                    metric(&m, "neptune_executor_broadcast_duplicates_total"),
                    metric(&m, "neptune_executor_broadcast_decodes_total"),
                    finished,
                ));
            }
            Some(seen)
        },
    );
    for (versions, duplicates, decodes, finished) in per_executor {
        assert_eq!(
            duplicates, 0,
            "a version was delivered twice to one executor"
        );
        assert!(
            decodes <= versions,
            "{decodes} decodes of {versions} versions read by {finished} tasks: decoded per task"
        );
        assert!(decodes >= 1, "no task read the model");
    }
    let out = wait_with_timeout(child, Duration::from_secs(120));
    assert!(out.status.success());
}
