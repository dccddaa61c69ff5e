//! `neptune local --report` carries each stream job's latency target and SLO attainment (the
//! share of its steady-state micro-batches within the target), and none for jobs without a
//! target; under the SLO-aware mode with a target no micro-batch can meet (so the guard holds
//! a core for the whole run), batch work still runs to completion on the cores left.
//! Acting ahead of each micro-batch (`scheduler.slo_lead_us`) suspends batch tasks on a real
//! cluster and leaves every result exact. Structure and exact counts only: no latency is
//! compared with a time budget.

use crate::common;

use common::*;

const WORKLOAD: [&str; 8] = [
    "batch.tasks=2",
    "batch.records=200000",
    "jobs.batch.runs=2",
    "stream.tasks=2",
    "jobs.stream.interval_ms=20",
    "jobs.stream.runs=60",
    "stats.warmup_ms=0",
    "stats.warmup_runs=5",
];

fn run(name: &str, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, name);
    let sets: Vec<&str> = WORKLOAD.iter().chain(extra).copied().collect();
    run_ok(local("synthetic", 1, &report, &sets));
    read_report(&report)
}

#[test]
fn the_report_carries_slo_attainment_for_stream_jobs_with_a_target() {
    // A target of a minute: every steady-state micro-batch is within it.
    let r = run("slo", &["jobs.stream.latency_target_ms=60000"]);
    let s = job(&r, "stream");
    assert_eq!(s["latency_ms"]["count"], 55, "60 micro-batches, 5 warm-up");
    assert_eq!(s["latency_target_ms"], 60000.0, "{s}");
    assert_eq!(s["slo_within"], 55, "{s}");
    assert_eq!(s["slo_attainment"], 1.0, "{s}");
    let b = job(&r, "batch");
    for absent in ["latency_target_ms", "slo_attainment", "slo_within"] {
        assert!(b.get(absent).is_none(), "batch job has {absent}: {b}");
    }
    assert_eq!(b["runs"], 2);

    // No target: no attainment at all (neither 0 nor 100 %).
    let r = run("no-target", &[]);
    let s = job(&r, "stream");
    for absent in ["latency_target_ms", "slo_attainment", "slo_within"] {
        assert!(
            s.get(absent).is_none(),
            "stream job without a target has {absent}: {s}"
        );
    }
}

#[test]
fn under_a_guard_held_all_run_batch_work_still_completes() {
    // 1 ms, holding only (no acting ahead): the recent p99 is always past 0.8 x target, so
    // the guard holds one of the two cores from the first micro-batch on; the batch job's two
    // runs finish on the other.
    let r = run(
        "slo-aware",
        &[
            "jobs.stream.latency_target_ms=1",
            "scheduler.slo_aware=true",
            "scheduler.slo_lead_us=0",
            "scheduler.slo_window_ms=1000",
        ],
    );
    assert_eq!(r["finished"], true, "{r}");
    let s = job(&r, "stream");
    assert_eq!(s["runs"], 60);
    let (within, steady) = (
        s["slo_within"].as_u64().unwrap(),
        s["latency_ms"]["count"].as_u64().unwrap(),
    );
    assert_eq!(steady, 55);
    // Within an ulp or two, not equal: serde_json parses floats fast rather than exactly (no
    // `float_roundtrip`), so 10/55 written as 0.18181818181818182 reads back as ...85.
    let attainment = s["slo_attainment"].as_f64().expect("an attainment");
    assert!(
        (attainment - within as f64 / 55.0).abs() < 1e-12,
        "attainment {attainment} for {within} of 55 within"
    );
    assert_eq!(job(&r, "batch")["runs"], 2);
}

/// Batch work that outlasts the stream job's 60 micro-batches on 1 x 2: every micro-batch
/// finds both cores taken by batch tasks.
const BUSY_BATCH: [&str; 4] = [
    "batch.tasks=8",
    "batch.records=1600000",
    "batch.cost=20",
    "jobs.batch.runs=10",
];

#[test]
fn acting_ahead_suspends_batch_tasks_before_each_micro_batch_and_results_stay_exact() {
    // A target every micro-batch meets: the hold guard never engages, so whatever the mode
    // does here is acting ahead (announcements a lead before each micro-batch).
    let mut ahead: Vec<&str> = BUSY_BATCH.to_vec();
    ahead.extend([
        "jobs.stream.latency_target_ms=60000",
        "scheduler.slo_aware=true",
        "scheduler.slo_lead_us=500",
    ]);
    let r = run("slo-ahead", &ahead);
    assert_eq!(r["finished"], true, "{r}");
    let t = &r["totals"];
    let reservations = t["slo_reservations"].as_u64().unwrap();
    let ahead_suspensions = t["slo_ahead_suspensions"].as_u64().unwrap();
    assert!(reservations >= 1, "no reservation made: {t}");
    assert!(ahead_suspensions >= 1, "no batch task suspended ahead: {t}");
    assert!(t["suspensions"].as_u64().unwrap() >= 1, "{t}");
    // Every suspended task came back: suspensions and resumptions pair up.
    assert_eq!(t["resumptions"], t["suspensions"], "{t}");
    let s = job(&r, "stream");
    assert_eq!(s["runs"], 60);
    assert_eq!(s["slo_attainment"], 1.0, "{s}");
    assert_eq!(job(&r, "batch")["runs"], 10);

    // The same workload under plain neptune computes the same results.
    let plain = run("slo-plain", &BUSY_BATCH);
    for name in ["stream", "batch"] {
        let (a, p) = (&job(&r, name)["result"], &job(&plain, name)["result"]);
        assert!(!p.is_null(), "{name} has a result");
        assert_eq!(a, p, "{name}'s result under the mode acting ahead");
    }
}
