//! The JSON report `neptune local --report FILE` writes, built from the driver's final status.

use neptune_driver::Status;
use neptune_driver::status::JobProgress;
use serde::Serialize;

/// One job in the report: what `/status` shows of it, and its recent latencies.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// What the job has done.
    #[serde(flatten)]
    pub progress: JobProgress,
    /// `[seconds since start, latency ms]` of the last committed micro-batches (stream jobs), at
    /// most `neptune_driver::stats::RECENT_POINTS` (10,000); the percentiles cover all of them.
    pub latency_series: Vec<(f64, f64)>,
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
                    progress: j.progress.clone(),
                    latency_series: j.latency_series.clone(),
                })
                .collect(),
            totals: st.totals.clone(),
        }
    }
}
