//! Multi-process tests of the scheduling policies on a real local cluster (driver + executor
//! processes, gRPC, `may` coroutines): preemption by suspension keeps batch results exact, `kill`
//! reruns killed tasks, `fifo` never preempts.

use crate::common;

use common::*;
use neptune_core::app::build_app;
use neptune_core::config::Config;
use neptune_core::{JobKind, TaskContext, TaskId};
use std::sync::Arc;

/// Every slot (2 executors x 2 cores) holds a batch task of about a second; stream micro-batches arrive
/// every 100 ms. The app ends when the single batch run and 10 micro-batches committed.
const WORKLOAD: &[&str] = &[
    "batch.tasks=4",
    "batch.records=1000000",
    "batch.cost=500",
    "jobs.batch.runs=1",
    "stream.tasks=1",
    "stream.rate=2000",
    "jobs.stream.interval_ms=100",
    "jobs.stream.runs=10",
];

fn run_policy(policy: &str, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, policy);
    let sets: Vec<&str> = WORKLOAD.iter().chain(extra).copied().collect();
    let mut cmd = local("synthetic", 2, &report, &sets);
    cmd.args(["--policy", policy]);
    run_ok(cmd);
    read_report(&report)
}

/// The batch job's result computed in this process, undisturbed (no executor, no suspension).
fn undisturbed_batch_result() -> serde_json::Value {
    let cfg = Config::from_args(WORKLOAD).unwrap();
    let app = build_app(neptune::apps::BUILTIN, "synthetic", Arc::new(cfg)).unwrap();
    let j = app.job_index("batch").unwrap();
    let job = &app.jobs()[j];
    let parts = (0..job.stages[0].partitions)
        .map(|p| {
            let id = TaskId {
                job: j as u32,
                run: 0,
                stage: 0,
                partition: p,
            };
            (job.stages[0].run_task)(&TaskContext::detached(id, JobKind::Batch)).unwrap()
        })
        .collect();
    let b = neptune_core::state::Broadcasts::default();
    let mut ctx = neptune_core::app::CommitCtx::new(0, 0, &b);
    (job.commit)(&mut ctx, parts).unwrap()
}

#[test]
fn neptune_suspends_batch_tasks_for_stream_tasks_and_keeps_batch_results_exact() {
    // With the executors' task-life tracing on: every step of a task shows in its span.
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, "neptune");
    let mut cmd = local("synthetic", 2, &report, WORKLOAD);
    cmd.args(["--policy", "neptune"])
        .env("RUST_LOG", "warn,neptune_executor::lifecycle=debug");
    let out = run_with_timeout(cmd, std::time::Duration::from_secs(240));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "neptune local failed:\n{log}");
    let r = read_report(&report);
    for step in [
        "launch received; preempting",
        "suspended",
        "resumed",
        "finished",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("task{task=") && l.contains(step)),
            "no task-life line `{step}` in the executors' log:\n{log}"
        );
    }
    let t = &r["totals"];
    assert!(
        t["suspensions"].as_u64().unwrap() >= 1,
        "no suspension happened: {r}"
    );
    assert_eq!(
        t["resumptions"], t["suspensions"],
        "every suspended task resumed: {r}"
    );
    assert_eq!(t["kills"], 0);
    assert_eq!(job(&r, "stream")["runs"], 10);
    assert_eq!(job(&r, "batch")["runs"], 1);
    assert_eq!(job(&r, "batch")["result"], undisturbed_batch_result());
    assert!(t["suspend_latency_us"]["p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn kill_policy_reruns_killed_tasks_and_the_result_is_still_right() {
    let r = run_policy("kill", &[]);
    let t = &r["totals"];
    assert!(t["kills"].as_u64().unwrap() >= 1, "nothing was killed: {r}");
    assert_eq!(t["suspensions"], 0);
    assert!(
        t["records_lost"].as_u64().unwrap() > 0,
        "killed work is counted: {r}"
    );
    assert_eq!(job(&r, "batch")["result"], undisturbed_batch_result());
}

#[test]
fn fifo_never_preempts() {
    let r = run_policy("fifo", &[]);
    let t = &r["totals"];
    assert_eq!(t["suspensions"], 0);
    assert_eq!(t["kills"], 0);
    assert_eq!(job(&r, "batch")["result"], undisturbed_batch_result());
    assert_eq!(job(&r, "stream")["runs"], 10);
}
