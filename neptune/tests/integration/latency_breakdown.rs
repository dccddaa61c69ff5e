//! `neptune local --report` of the synthetic app (a stream job beside a batch job, real
//! processes) carries the stream job's per-hop latency breakdown: every hop, in path order,
//! recorded for every steady-state micro-batch, with the hops' means adding up to the
//! end-to-end mean (hops are consecutive; means add up, medians need not). Structure and
//! ordering only: no figure is compared with a time budget.

use crate::common;

use common::*;

const HOPS: [&str; 9] = [
    "trigger",
    "upstream",
    "schedule",
    "network",
    "core_wait",
    "core_start",
    "first_record",
    "process",
    "commit",
];

#[test]
fn the_report_breaks_stream_latency_down_by_hop() {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, "breakdown");
    run_ok(local(
        "synthetic",
        1,
        &report,
        &[
            "batch.tasks=2",
            "batch.records=200000",
            "jobs.batch.runs=2",
            "stream.tasks=2",
            "jobs.stream.interval_ms=20",
            "jobs.stream.runs=80",
            "stats.warmup_ms=0",
            "stats.warmup_runs=5",
        ],
    ));
    let r = read_report(&report);
    assert!(
        job(&r, "batch").get("latency_breakdown_ms").is_none(),
        "batch jobs have no breakdown"
    );
    let s = job(&r, "stream");
    let e2e = &s["latency_ms"];
    let n = e2e["count"].as_u64().unwrap();
    assert_eq!(n, 75, "80 micro-batches, the first 5 warm-up");
    let hops = s["latency_breakdown_ms"].as_array().expect("a breakdown");
    let names: Vec<&str> = hops.iter().map(|h| h["hop"].as_str().unwrap()).collect();
    assert_eq!(names, HOPS, "every hop, in path order");
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
    let e2e_max = f(e2e, "max");
    let mut mean_sum = 0.0;
    for h in hops {
        let name = h["hop"].as_str().unwrap();
        assert_eq!(h["count"].as_u64(), Some(n), "{name}: every micro-batch");
        let (p50, p99, max) = (f(h, "p50"), f(h, "p99"), f(h, "max"));
        assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{name}: {h}");
        // A hop is part of its micro-batch: never longer than the slowest one (0.1 % buckets).
        assert!(max <= e2e_max * 1.001 + 0.001, "{name}: {max} > {e2e_max}");
        mean_sum += f(h, "mean");
    }
    let e2e_mean = f(e2e, "mean");
    // Hops are recorded in whole microseconds, nine per micro-batch.
    assert!(
        (mean_sum - e2e_mean).abs() <= 0.01 + e2e_mean * 0.001,
        "hop means sum to {mean_sum} ms, end-to-end mean {e2e_mean} ms"
    );
    assert!(
        f(&hops[7], "mean") > 0.0,
        "processing records takes time: {}",
        hops[7]
    );
}
