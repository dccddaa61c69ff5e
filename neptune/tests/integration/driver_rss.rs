//! The driver's memory stays flat over a long stream run: a real `neptune local` (driver
//! in-process, one executor process) runs a 1 ms micro-batch stream job for tens of thousands of
//! micro-batches; the driver process's RSS (`/proc/<pid>/status` VmRSS) after warm-up and at the
//! end differ by less than a generous bound, the driver's own account of its statistics memory
//! (`totals.stats_bytes`) does not move, every micro-batch is counted in the percentiles, and
//! the report's raw series is capped at the recent window, and a driver that falls behind (a
//! loaded machine does not keep up with 1,000 micro-batches a second) holds at most
//! `jobs.<job>.max_in_flight` of them.
//!
//! The driver once kept every latency in two vectors and copied and sorted them at every status
//! tick: measured, its RSS grew ≈ 30 B a micro-batch (≈ 1 MiB over 30,000, 2.9 MiB over
//! 100,000), this code's ≈ 0.2 MiB once (the recent window's pages) then nothing. The default
//! 30,000 micro-batches (≈ 30 s) are too few for old-style growth to pass a noise-proof RSS
//! bound, so the assertions on the retained series, the sample counts and `stats_bytes` are what
//! fail on such code; the RSS bound (4 MiB) catches growth of ≥ 140 B a micro-batch at the
//! default length and old-style growth from ≈ 150,000 micro-batches: set
//! `NEPTUNE_RSS_MICRO_BATCHES=200000` (≈ 3.5 minutes) for that long version.

use crate::common;

use common::*;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Points the report's `latency_series` keeps (`neptune_driver::stats::RECENT_POINTS`).
const RECENT_POINTS: u64 = 10_000;
/// Micro-batches after which the baseline is taken: past the warm-up (the first second, ~1,000
/// micro-batches at 1 ms) and past start-up allocations.
const BASELINE_AT: u64 = 3_000;
/// `jobs.<job>.max_in_flight`'s default: runs in flight at most, however far behind.
const MAX_IN_FLIGHT: u64 = neptune_core::config::keys::DEFAULT_MAX_IN_FLIGHT;
/// Largest RSS growth allowed between the baseline and the end, KiB. Generous: this code grows
/// ≈ 0.2 MiB (the recent window filling), allocator noise is well under a MiB.
const RSS_GROWTH_BOUND_KIB: u64 = 4 * 1024;

fn vm_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the driver runs");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// The driver's `/status` once the stream job has committed at least `runs` micro-batches
/// (failing at once if `neptune local` exited).
fn status_after(child: &mut Child, addr: &str, runs: u64, limit: Duration) -> serde_json::Value {
    wait_for(limit, &format!("{runs} micro-batches"), || {
        if let Some(exit) = child.try_wait().unwrap() {
            panic!("neptune local exited early: {exit}");
        }
        let st = status(addr)?;
        let done = st["jobs"]
            .as_array()?
            .iter()
            .find(|j| j["name"] == "stream")?["runs"]
            .as_u64()?;
        (done >= runs).then_some(st)
    })
}

fn stream_job(st: &serde_json::Value) -> &serde_json::Value {
    st["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "stream")
        .unwrap()
}

#[test]
fn driver_memory_is_flat_over_tens_of_thousands_of_micro_batches() {
    let target: u64 = std::env::var("NEPTUNE_RSS_MICRO_BATCHES")
        .ok()
        .map(|v| v.parse().expect("NEPTUNE_RSS_MICRO_BATCHES is a number"))
        .unwrap_or(30_000)
        .max(BASELINE_AT + RECENT_POINTS);
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, "rss");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = neptune();
    cmd.args([
        "local",
        "--app",
        "synthetic",
        "--executors",
        "1",
        "--cores",
        "1",
        "--quiet",
    ])
    .args(["--http", &addr, "--report"])
    .arg(&report);
    for s in [
        "batch.tasks=0",
        "stream.tasks=1",
        "stream.rate=1000",
        "stream.cost=1",
        "jobs.stream.interval_ms=1",
        "stats.warmup_ms=1000",
    ] {
        cmd.args(["--set", s]);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Generous: a loaded machine manages a few hundred micro-batches a second at worst.
    let limit = Duration::from_secs(120 + target / 100);

    let base = status_after(&mut child, &addr, BASELINE_AT, limit);
    let rss_base = vm_rss_kib(pid);
    let stats_base = base["totals"]["stats_bytes"].as_u64().expect("stats_bytes");
    let end = status_after(&mut child, &addr, target, limit);
    let rss_end = vm_rss_kib(pid);
    let stats_end = end["totals"]["stats_bytes"].as_u64().unwrap();
    let out = terminate(child);
    drop(out);

    let live = stream_job(&end);
    let runs = live["runs"].as_u64().unwrap();
    let steady = live["latency_ms"]["count"].as_u64().unwrap();
    let warm = live["warmup_latency_ms"]["count"].as_u64().unwrap();
    let in_flight = live["active_runs"].as_u64().unwrap();
    let waiting = live["waiting_runs"].as_u64().unwrap();
    let growth = rss_end.saturating_sub(rss_base);
    eprintln!(
        "driver RSS {rss_base} KiB at {} micro-batches, {rss_end} KiB at {runs} (+{growth} KiB); \
         stats_bytes {stats_base} → {stats_end}; warm-up {warm}, steady {steady}; \
         steady p50 {} p99 {} p99.9 {} max {} ms; {in_flight} in flight, {waiting} waiting",
        stream_job(&base)["runs"],
        live["latency_ms"]["p50"],
        live["latency_ms"]["p99"],
        live["latency_ms"]["p99_9"],
        live["latency_ms"]["max"],
    );
    assert_eq!(warm + steady, runs, "every micro-batch is counted once");
    assert!(warm > 0 && steady > 0, "warm-up {warm}, steady {steady}");
    assert!(stats_base > 0);
    assert!(
        in_flight <= MAX_IN_FLIGHT,
        "{in_flight} micro-batches in flight, more than jobs.stream.max_in_flight"
    );
    assert_eq!(
        stats_base, stats_end,
        "the statistics' memory does not grow with micro-batches"
    );
    assert!(
        growth < RSS_GROWTH_BOUND_KIB,
        "driver RSS grew {growth} KiB over {} micro-batches",
        runs - BASELINE_AT
    );

    let report = read_report(&report);
    let done = job(&report, "stream");
    let total = done["runs"].as_u64().unwrap();
    assert!(total >= target);
    let series = done["latency_series"].as_array().unwrap().len() as u64;
    assert_eq!(
        series, RECENT_POINTS,
        "the report keeps the last {RECENT_POINTS} of {total} micro-batches"
    );
    let counted = done["latency_ms"]["count"].as_u64().unwrap()
        + done["warmup_latency_ms"]["count"].as_u64().unwrap();
    assert_eq!(counted, total, "the percentiles cover every micro-batch");
}
