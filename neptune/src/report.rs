//! The JSON report `neptune local --report FILE` writes, built from the driver's final status.

use neptune_driver::Status;
use neptune_driver::stats::{HopSummary, Percentiles};
use serde::Serialize;

/// One job in the report.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// Job name.
    pub name: String,
    /// `stream` or `batch`.
    pub kind: String,
    /// Runs committed.
    pub runs: u64,
    /// Records read by successful tasks.
    pub records: u64,
    /// Records per second over the run (`records`: finished tasks only).
    pub records_per_sec: f64,
    /// Records processed by the executors' own counters: succeeded tasks plus the work of tasks
    /// still running or suspended (killed and failed tasks' work left out), as of each
    /// executor's last heartbeat.
    pub records_processed: u64,
    /// `records_processed` per second (each executor timed by its last heartbeat): the batch
    /// throughput `neptune bench` reports.
    pub records_processed_per_sec: f64,
    /// Micro-batch latency (due time → committed), ms, steady state (warm-up left out); zeros
    /// for batch jobs.
    pub latency_ms: Percentiles,
    /// Latency of the warm-up micro-batches (`stats.warmup_ms`, `stats.warmup_runs`), ms.
    pub warmup_latency_ms: Percentiles,
    /// The stream job's latency target (`jobs.<job>.latency_target_ms`), ms; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_target_ms: Option<f64>,
    /// Fraction (0 to 1) of the steady-state micro-batches (warm-up left out) within the
    /// target; absent without a target or before the first steady-state micro-batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<f64>,
    /// Steady-state micro-batches within the target (of `latency_ms.count`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_within: Option<u64>,
    /// Where the steady-state micro-batches' time went (stream jobs): per hop of the path, in
    /// path order, `{hop, count, p50, p95, p99, p99_9, max, mean}` in ms. Absent for batch jobs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latency_breakdown_ms: Vec<HopSummary>,
    /// Result of the last committed run.
    pub result: serde_json::Value,
    /// `[seconds since start, latency ms]` of the last committed micro-batches (stream jobs), at
    /// most `neptune_driver::stats::RECENT_POINTS` (10,000); the percentiles cover all of them.
    pub latency_series: Vec<(f64, f64)>,
    /// Malformed input records skipped (policy `skip`).
    pub malformed_skipped: u64,
    /// Shuffle bytes written by the job's map tasks.
    pub shuffle_write_bytes: u64,
    /// Files and bytes the last committed run read (jobs reading file sources): its input
    /// snapshot, listed when the run began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<neptune_driver::status::InputSnapshot>,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// App.
    pub app: String,
    /// Policy.
    pub policy: String,
    /// Placement.
    pub placement: String,
    /// Executors.
    pub executors: usize,
    /// Cores per executor.
    pub cores: u32,
    /// Seconds the jobs ran.
    pub duration_s: f64,
    /// Whether every job finished its runs.
    pub finished: bool,
    /// Jobs.
    pub jobs: Vec<JobReport>,
    /// Totals.
    pub totals: neptune_driver::status::Totals,
}

impl Report {
    /// Build from the driver's final status.
    pub fn from_status(st: &Status, executors: usize, cores: u32) -> Self {
        Self {
            app: st.app.clone(),
            policy: st.policy.clone(),
            placement: st.placement.clone(),
            executors,
            cores,
            duration_s: st.elapsed_s,
            finished: st.finished,
            jobs: st
                .jobs
                .iter()
                .map(|j| JobReport {
                    name: j.name.clone(),
                    kind: j.kind.clone(),
                    runs: j.runs,
                    records: j.records,
                    records_per_sec: j.records_per_sec,
                    records_processed: j.records_processed,
                    records_processed_per_sec: j.records_processed_per_sec,
                    latency_ms: j.latency_ms,
                    warmup_latency_ms: j.warmup_latency_ms,
                    latency_target_ms: j.latency_target_ms,
                    slo_attainment: j.slo_attainment,
                    slo_within: j.slo_within,
                    latency_breakdown_ms: j.latency_breakdown_ms.clone(),
                    result: j.result.clone(),
                    latency_series: j.latency_series.clone(),
                    malformed_skipped: j.malformed_skipped,
                    shuffle_write_bytes: j.shuffle_write_bytes,
                    input: j.input,
                })
                .collect(),
            totals: st.totals.clone(),
        }
    }
}
