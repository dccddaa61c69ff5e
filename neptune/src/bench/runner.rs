//! Runs one configuration as a real `neptune local` child process (this same binary) with
//! `--report`, and turns its JSON report into a [`RunRecord`]. A run that fails or overruns is
//! recorded with its error rather than aborting the bench.

use super::plan::Variant;
use super::stats::gated;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One run's figures (one row of `runs.csv`; the latency series only goes to JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRecord {
    /// Sweep value label, or `""` for the policy comparison.
    pub point: String,
    /// Variant label.
    pub label: String,
    /// Policy.
    pub policy: String,
    /// Placement as the driver reported it.
    pub placement: String,
    /// Executors.
    pub executors: u32,
    /// Cores per executor.
    pub cores: u32,
    /// Repetition, from 0.
    pub rep: u32,
    /// Seconds the jobs ran.
    pub duration_s: f64,
    /// Committed micro-batches, warm-up included.
    pub stream_runs: u64,
    /// Steady-state micro-batches: what the percentiles below are of.
    pub stream_count: u64,
    /// Warm-up micro-batches (`stats.warmup_ms`, the first second), left out of the percentiles.
    pub stream_warmup_count: u64,
    /// Steady-state stream micro-batch latency p50, ms. Each percentile is empty (`None`) when
    /// the run has too few micro-batches for it to be anything but the maximum
    /// ([`super::stats::min_samples`]: 100 for p99, 1,000 for p99.9).
    pub stream_p50_ms: Option<f64>,
    /// p95, ms.
    pub stream_p95_ms: Option<f64>,
    /// p99, ms.
    pub stream_p99_ms: Option<f64>,
    /// p99.9, ms.
    pub stream_p99_9_ms: Option<f64>,
    /// Steady-state maximum, ms.
    pub stream_max_ms: f64,
    /// Maximum of the warm-up micro-batches, ms.
    pub stream_warmup_max_ms: f64,
    /// Share (0 to 1) of the steady-state micro-batches within the stream job's latency target
    /// (`--slo-target-ms`); empty without a target.
    pub stream_slo_attainment: Option<f64>,
    /// Committed batch runs.
    pub batch_runs: u64,
    /// Steady-state micro-batches with source timestamps (`--source kafka`; 0 otherwise): what
    /// the source → commit percentiles are of.
    pub source_to_commit_count: u64,
    /// Source → commit latency p50, ms: per micro-batch from its oldest record's produce time
    /// to its commit (the report's `source_to_commit_ms.oldest`).
    pub source_to_commit_p50_ms: Option<f64>,
    /// p99, ms.
    pub source_to_commit_p99_ms: Option<f64>,
    /// Maximum, ms.
    pub source_to_commit_max_ms: f64,
    /// p50 of the micro-batches' mean record's produce time → commit, ms.
    pub source_to_commit_mean_p50_ms: Option<f64>,
    /// Records the bench produced into the run's topic (`--source kafka`).
    pub produced: u64,
    /// Seconds its producer ran (a little longer than the run: it starts before the local
    /// cluster and stops after it).
    pub produce_s: f64,
    /// Produce requests that failed (retried in the next round).
    pub produce_errors: u64,
    /// Batch records per second by the executors' counters (the report's
    /// `records_processed_per_sec`: succeeded tasks plus the work of tasks still running or
    /// suspended at the end, killed tasks' work left out).
    pub batch_records_per_sec: f64,
    /// Batch records per second of finished tasks only (the report's `records_per_sec`), kept
    /// to show what counting whole tasks gives.
    pub batch_task_records_per_sec: f64,
    /// Suspensions.
    pub suspensions: u64,
    /// Resumptions.
    pub resumptions: u64,
    /// Preemptive kills.
    pub kills: u64,
    /// Records processed by killed tasks, thrown away.
    pub records_lost: u64,
    /// Executor-measured suspend latency p50, µs.
    pub suspend_p50_us: f64,
    /// p99, µs.
    pub suspend_p99_us: f64,
    /// 1-minute load average when the run started (the machine is shared).
    pub loadavg_start: f64,
    /// Wall time of the child process, s.
    pub wall_s: f64,
    /// Error, if the run failed (its figures are then zero and it is left out of summaries).
    pub error: String,
    /// `[s since start, ms]` per micro-batch (JSON only).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub latency_series: Vec<(f64, f64)>,
    /// The stream job's latency breakdown per hop (JSON only).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub hops: Vec<super::breakdown::HopFigures>,
}

impl RunRecord {
    /// Whether the run produced figures.
    pub fn ok(&self) -> bool {
        self.error.is_empty()
    }
}

/// 1-minute load average, or 0 where unavailable.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A run of `v` that could not start: its record carries `error` only.
pub fn failed(v: &Variant, point: &str, rep: u32, error: String) -> RunRecord {
    RunRecord {
        point: point.to_string(),
        label: v.label.clone(),
        policy: v.policy.as_str().to_string(),
        executors: v.executors,
        cores: v.cores,
        rep,
        error,
        ..RunRecord::default()
    }
}

/// One run of the schedule: its sweep point, repetition and length, and where its report and log
/// go (`dir/<stem>.json|.log`).
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    /// Sweep value label, or `""`.
    pub point: &'a str,
    /// Repetition, from 0.
    pub rep: u32,
    /// How long the jobs run.
    pub duration: Duration,
    /// Directory of the run's files.
    pub dir: &'a Path,
    /// Their name without extension.
    pub stem: &'a str,
}

/// Run `v` in `slot`.
pub fn run_one(v: &Variant, slot: &Slot) -> RunRecord {
    let mut rec = RunRecord {
        loadavg_start: loadavg(),
        ..failed(v, slot.point, slot.rep, String::new())
    };
    let start = Instant::now();
    if let Err(e) = spawn_and_read(v, slot.duration, slot.dir, slot.stem, &mut rec) {
        rec.error = e;
    }
    rec.wall_s = start.elapsed().as_secs_f64();
    rec
}

fn spawn_and_read(
    v: &Variant,
    duration: Duration,
    dir: &Path,
    stem: &str,
    rec: &mut RunRecord,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let report = dir.join(format!("{stem}.json"));
    let log_path = dir.join(format!("{stem}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("local")
        .args(["--app", "synthetic"])
        .args(["--executors", &v.executors.to_string()])
        .args(["--cores", &v.cores.to_string()])
        .args(["--policy", v.policy.as_str()])
        .args(["--duration", &format!("{}ms", duration.as_millis())])
        .args(["--http", "127.0.0.1:0", "--quiet"])
        .arg("--report")
        .arg(&report)
        .env_remove("NEPTUNE_SET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for kv in &v.set {
        cmd.args(["--set", kv]);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    // Startup (executors registering) plus shutdown take a few seconds at most.
    let limit = duration + Duration::from_secs(60);
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("overran {limit:?}; log {}", log_path.display()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    };
    if !status.success() {
        return Err(format!("exited with {status}; log {}", log_path.display()));
    }
    let text = std::fs::read_to_string(&report)
        .map_err(|e| format!("no report {}: {e}", report.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("bad report: {e}"))?;
    fill(rec, &json);
    Ok(())
}

/// Copy the figures of a `neptune local --report` JSON into `rec`.
pub fn fill(rec: &mut RunRecord, r: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let u = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    rec.placement = r["placement"].as_str().unwrap_or("").to_string();
    rec.duration_s = f(&r["duration_s"]);
    for j in r["jobs"].as_array().into_iter().flatten() {
        if j["kind"] == "stream" {
            rec.stream_runs = u(&j["runs"]);
            let l = &j["latency_ms"];
            let n = u(&l["count"]);
            rec.stream_count = n;
            rec.stream_warmup_count = u(&j["warmup_latency_ms"]["count"]);
            rec.stream_p50_ms = gated(f(&l["p50"]), n, 0.50);
            rec.stream_p95_ms = gated(f(&l["p95"]), n, 0.95);
            rec.stream_p99_ms = gated(f(&l["p99"]), n, 0.99);
            rec.stream_p99_9_ms = gated(f(&l["p99_9"]), n, 0.999);
            rec.stream_max_ms = f(&l["max"]);
            rec.stream_warmup_max_ms = f(&j["warmup_latency_ms"]["max"]);
            rec.stream_slo_attainment = j["slo_attainment"].as_f64();
            let s = &j["source_to_commit_ms"];
            let n = u(&s["oldest"]["count"]);
            rec.source_to_commit_count = n;
            rec.source_to_commit_p50_ms = gated(f(&s["oldest"]["p50"]), n, 0.50);
            rec.source_to_commit_p99_ms = gated(f(&s["oldest"]["p99"]), n, 0.99);
            rec.source_to_commit_max_ms = f(&s["oldest"]["max"]);
            rec.source_to_commit_mean_p50_ms = gated(f(&s["mean"]["p50"]), n, 0.50);
            rec.hops = super::breakdown::from_report(j);
            rec.latency_series = j["latency_series"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect();
        } else {
            rec.batch_runs = u(&j["runs"]);
            rec.batch_records_per_sec = f(&j["records_processed_per_sec"]);
            rec.batch_task_records_per_sec = f(&j["records_per_sec"]);
        }
    }
    let t = &r["totals"];
    rec.suspensions = u(&t["suspensions"]);
    rec.resumptions = u(&t["resumptions"]);
    rec.kills = u(&t["kills"]);
    rec.records_lost = u(&t["records_lost"]);
    rec.suspend_p50_us = f(&t["suspend_latency_us"]["p50"]);
    rec.suspend_p99_us = f(&t["suspend_latency_us"]["p99"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_run_fills_its_source_to_commit_figures() {
        let r = serde_json::json!({
            "jobs": [{"kind": "stream", "runs": 120,
                      "latency_ms": {"count": 110, "p50": 2.0, "p99": 9.0, "max": 12.0},
                      "source_to_commit_ms": {
                          "oldest": {"count": 110, "p50": 41.0, "p99": 60.0, "max": 75.0},
                          "mean": {"count": 110, "p50": 22.0},
                          "warmup_oldest": {"count": 10, "max": 900.0}}}]
        });
        let mut rec = RunRecord::default();
        fill(&mut rec, &r);
        assert_eq!(rec.source_to_commit_count, 110);
        assert_eq!(rec.source_to_commit_p50_ms, Some(41.0));
        assert_eq!(rec.source_to_commit_p99_ms, Some(60.0));
        assert_eq!(rec.source_to_commit_max_ms, 75.0);
        assert_eq!(rec.source_to_commit_mean_p50_ms, Some(22.0));
        let mut plain = RunRecord::default();
        fill(
            &mut plain,
            &serde_json::json!({"jobs": [{"kind": "stream"}]}),
        );
        assert_eq!(
            plain.source_to_commit_p50_ms, None,
            "no figures without timestamps"
        );
    }

    #[test]
    fn a_report_fills_the_record() {
        let r = serde_json::json!({
            "placement": "lma", "duration_s": 10.0,
            "jobs": [
                {"kind": "batch", "runs": 3, "records_per_sec": 1.4e7,
                 "records_processed_per_sec": 1.5e7},
                {"kind": "stream", "runs": 350,
                 "latency_ms": {"count": 340, "p50": 2.0, "p95": 5.0, "p99": 9.0,
                                "p99_9": 11.0, "max": 12.0},
                 "warmup_latency_ms": {"count": 10, "max": 30.0},
                 "latency_target_ms": 10.0, "slo_attainment": 0.995,
                 "latency_series": [[0.2, 2.0], [0.4, 9.0]]}
            ],
            "totals": {"suspensions": 7, "resumptions": 7, "kills": 0, "records_lost": 0,
                       "suspend_latency_us": {"p50": 30.0, "p99": 90.0}}
        });
        let mut rec = RunRecord::default();
        fill(&mut rec, &r);
        assert_eq!((rec.stream_runs, rec.stream_count), (350, 340));
        assert_eq!(rec.stream_warmup_count, 10);
        assert_eq!(rec.stream_p99_ms, Some(9.0));
        assert_eq!(rec.stream_p99_9_ms, None, "340 samples have no p99.9");
        assert_eq!((rec.stream_max_ms, rec.stream_warmup_max_ms), (12.0, 30.0));
        assert_eq!(rec.stream_slo_attainment, Some(0.995));
        assert_eq!(
            rec.batch_records_per_sec, 1.5e7,
            "batch throughput is the executors' record counters, not finished tasks"
        );
        assert_eq!(rec.batch_task_records_per_sec, 1.4e7);
        assert_eq!(rec.suspensions, 7);
        assert_eq!(rec.suspend_p99_us, 90.0);
        assert_eq!(rec.latency_series, vec![(0.2, 2.0), (0.4, 9.0)]);
        assert!(rec.ok());
    }
}
