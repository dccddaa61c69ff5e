//! Aggregation and output of bench runs: per-configuration medians over repetitions, the text
//! table, and the raw results as CSV (`runs.csv`, `summary.csv`) and JSON (`results.json`).

use super::ratios::Ratio;
use super::runner::RunRecord;
use super::stats::median;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Medians over the successful repetitions of one configuration (at one sweep point).
///
/// A percentile is the median of the runs' values, and empty (`None`, "n/a" in the table) unless
/// every successful run had enough micro-batches for it ([`super::stats::min_samples`]).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Summary {
    /// Sweep value label (`""` for the policy comparison).
    pub point: String,
    /// Variant label.
    pub label: String,
    /// Successful repetitions.
    pub reps: usize,
    /// Median steady-state micro-batches per run (0: no stream job).
    pub stream_count: f64,
    /// Median warm-up micro-batches per run (left out of the percentiles).
    pub stream_warmup_count: f64,
    /// Median of the runs' stream p50, ms.
    pub stream_p50_ms: Option<f64>,
    /// Median of the runs' stream p99, ms.
    pub stream_p99_ms: Option<f64>,
    /// Median of the runs' stream p99.9, ms.
    pub stream_p99_9_ms: Option<f64>,
    /// Median of the runs' steady-state maximum, ms.
    pub stream_max_ms: f64,
    /// Median of the runs' SLO attainment (0 to 1; empty without `--slo-target-ms`).
    #[serde(default)]
    pub stream_slo_attainment: Option<f64>,
    /// Median of the runs' source → commit p50, ms (`--source kafka`).
    #[serde(default)]
    pub source_to_commit_p50_ms: Option<f64>,
    /// Median of the runs' source → commit p99, ms.
    #[serde(default)]
    pub source_to_commit_p99_ms: Option<f64>,
    /// Median of the runs' source → commit maximum, ms.
    #[serde(default)]
    pub source_to_commit_max_ms: f64,
    /// Median of the runs' mean-record source → commit p50, ms.
    #[serde(default)]
    pub source_to_commit_mean_p50_ms: Option<f64>,
    /// Median records produced per second of the producer's life (`--source kafka`).
    #[serde(default)]
    pub produced_per_sec: f64,
    /// Median batch records/s (executors' record counters).
    pub batch_records_per_sec: f64,
    /// Median batch records/s of finished tasks only.
    pub batch_task_records_per_sec: f64,
    /// Median suspensions per run.
    pub suspensions: f64,
    /// Median kills per run.
    pub kills: f64,
    /// Median records lost to kills per run.
    pub records_lost: f64,
    /// Median of the runs' suspend latency p50, µs.
    pub suspend_p50_us: f64,
    /// Median of the runs' suspend latency p99, µs.
    pub suspend_p99_us: f64,
}

/// One summary per (point, label), in first-seen order.
pub fn summarise(runs: &[RunRecord]) -> Vec<Summary> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in runs {
        let k = (r.point.clone(), r.label.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(point, label)| {
            let ok: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.point == point && r.label == label && r.ok())
                .collect();
            let m = |f: &dyn Fn(&RunRecord) -> f64| median(ok.iter().map(|r| f(r)).collect());
            // Only when every run has it: a median over the runs that happened to reach the
            // sample count would be a different statistic.
            let opt = |f: &dyn Fn(&RunRecord) -> Option<f64>| {
                let v: Option<Vec<f64>> = ok.iter().map(|r| f(r)).collect();
                v.filter(|v| !v.is_empty()).map(median)
            };
            Summary {
                reps: ok.len(),
                stream_count: m(&|r| r.stream_count as f64),
                stream_warmup_count: m(&|r| r.stream_warmup_count as f64),
                stream_p50_ms: opt(&|r| r.stream_p50_ms),
                stream_p99_ms: opt(&|r| r.stream_p99_ms),
                stream_p99_9_ms: opt(&|r| r.stream_p99_9_ms),
                stream_max_ms: m(&|r| r.stream_max_ms),
                stream_slo_attainment: opt(&|r| r.stream_slo_attainment),
                source_to_commit_p50_ms: opt(&|r| r.source_to_commit_p50_ms),
                source_to_commit_p99_ms: opt(&|r| r.source_to_commit_p99_ms),
                source_to_commit_max_ms: m(&|r| r.source_to_commit_max_ms),
                source_to_commit_mean_p50_ms: opt(&|r| r.source_to_commit_mean_p50_ms),
                produced_per_sec: m(&|r| {
                    if r.produce_s > 0.0 {
                        r.produced as f64 / r.produce_s
                    } else {
                        0.0
                    }
                }),
                batch_records_per_sec: m(&|r| r.batch_records_per_sec),
                batch_task_records_per_sec: m(&|r| r.batch_task_records_per_sec),
                suspensions: m(&|r| r.suspensions as f64),
                kills: m(&|r| r.kills as f64),
                records_lost: m(&|r| r.records_lost as f64),
                suspend_p50_us: m(&|r| r.suspend_p50_us),
                suspend_p99_us: m(&|r| r.suspend_p99_us),
                point,
                label,
            }
        })
        .collect()
}

/// The summary of `label` at `point`, if any.
pub fn find<'a>(sums: &'a [Summary], point: &str, label: &str) -> Option<&'a Summary> {
    sums.iter().find(|s| s.point == point && s.label == label)
}

/// `v` with one decimal, `n/a` when absent, `-` for a configuration without a stream job.
fn ms(v: Option<f64>, has_stream: bool) -> String {
    match (has_stream, v) {
        (false, _) => "-".into(),
        (true, Some(v)) => format!("{v:.1}"),
        (true, None) => "n/a".into(),
    }
}

/// The text table: one line per configuration (medians over repetitions), then a note for every
/// percentile left out for too few micro-batches.
pub fn table(sums: &[Summary], point_name: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<16} {:>4} {:>6} {:>8} {:>8} {:>8} {:>8} {:>12} {:>8} {:>6} {:>10} {:>9} {:>9} {:>7}",
        point_name,
        "config",
        "reps",
        "n",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "batch rec/s",
        "susp",
        "kills",
        "rec lost",
        "susp p50us",
        "susp p99us",
        "slo %"
    );
    for x in sums {
        let stream = x.stream_count > 0.0;
        let n = if stream {
            format!("{:.0}", x.stream_count)
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "{:<10} {:<16} {:>4} {:>6} {:>8} {:>8} {:>8} {:>8} {:>12.3e} {:>8.0} {:>6.0} {:>10.3e} {:>9.1} {:>9.1} {:>7}",
            x.point,
            x.label,
            x.reps,
            n,
            ms(x.stream_p50_ms, stream),
            ms(x.stream_p99_ms, stream),
            ms(x.stream_p99_9_ms, stream),
            ms(Some(x.stream_max_ms), stream),
            x.batch_records_per_sec,
            x.suspensions,
            x.kills,
            x.records_lost,
            x.suspend_p50_us,
            x.suspend_p99_us,
            x.stream_slo_attainment
                .map_or_else(|| "-".to_string(), |a| format!("{:.2}", a * 100.0))
        );
    }
    let _ = writeln!(
        s,
        "n: steady-state micro-batches per run (warm-up, the first second, left out of the \
         percentiles and reported apart in results.json); batch rec/s: the executors' record \
         counters, work of unfinished tasks included; slo %: steady-state micro-batches within \
         --slo-target-ms. Medians over repetitions."
    );
    type Get = fn(&Summary) -> Option<f64>;
    let gates: [(&str, f64, Get); 2] = [
        ("p99", 0.99, |x| x.stream_p99_ms),
        ("p99.9", 0.999, |x| x.stream_p99_9_ms),
    ];
    for (name, q, get) in gates {
        let short: Vec<&str> = sums
            .iter()
            .filter(|x| x.stream_count > 0.0 && get(x).is_none())
            .map(|x| x.label.as_str())
            .collect();
        if !short.is_empty() {
            let _ = writeln!(
                s,
                "{name} n/a for {}: a run had fewer than {} steady-state micro-batches, where \
                 {name} would only be the maximum",
                short.join(", "),
                super::stats::min_samples(q)
            );
        }
    }
    s
}

/// The source → commit table of a `--source kafka` bench (empty when no run read Kafka): per
/// configuration with a stream job, the produce → commit latency of each micro-batch's oldest
/// record (p50, p99, max) and of its mean record (p50), beside the micro-batch latency p99.
pub fn source_table(sums: &[Summary], point_name: &str) -> String {
    let rows: Vec<&Summary> = sums
        .iter()
        .filter(|x| x.stream_count > 0.0 && x.produced_per_sec > 0.0)
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nKafka input: produce -> commit latency (ms; medians over repetitions)\n\
         {:<10} {:<16} {:>10} {:>9} {:>9} {:>9} {:>9} {:>12}",
        point_name, "config", "produced/s", "p50", "p99", "max", "mean p50", "batch p99"
    );
    for x in rows {
        let _ = writeln!(
            s,
            "{:<10} {:<16} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>12}",
            x.point,
            x.label,
            x.produced_per_sec,
            ms(x.source_to_commit_p50_ms, true),
            ms(x.source_to_commit_p99_ms, true),
            ms(Some(x.source_to_commit_max_ms), true),
            ms(x.source_to_commit_mean_p50_ms, true),
            ms(x.stream_p99_ms, true),
        );
    }
    let _ = writeln!(
        s,
        "p50/p99/max: per steady-state micro-batch, its oldest record's produce time to the \
         commit (the longest any of its records waited); mean p50: from its mean record's \
         produce time; batch p99: the micro-batch latency (due -> committed) of the same runs."
    );
    s
}

/// Write `runs.csv`, `summary.csv` and `results.json` (with the paired `ratios` and `meta`) into
/// `dir`.
///
/// # Errors
/// When a file cannot be written (naming it).
pub fn write_all(
    dir: &Path,
    runs: &[RunRecord],
    sums: &[Summary],
    ratios: &[Ratio],
    meta: serde_json::Value,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let path = dir.join("runs.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| path.display().to_string())?;
    for r in runs {
        // The latency series and breakdown go to JSON only: CSV rows are flat.
        let flat = RunRecord {
            latency_series: Vec::new(),
            hops: Vec::new(),
            ..r.clone()
        };
        w.serialize(flat)?;
    }
    w.flush()?;
    let path = dir.join("summary.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| path.display().to_string())?;
    for x in sums {
        w.serialize(x)?;
    }
    w.flush()?;
    let path = dir.join("results.json");
    let doc = serde_json::json!({ "meta": meta, "summary": sums, "ratios": ratios, "runs": runs });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(label: &str, rep: u32, p99: Option<f64>, rps: f64) -> RunRecord {
        RunRecord {
            label: label.into(),
            rep,
            stream_count: 350,
            stream_p99_ms: p99,
            batch_records_per_sec: rps,
            ..RunRecord::default()
        }
    }

    #[test]
    fn medians_ignore_failed_runs() {
        let mut bad = rec("fifo", 2, Some(1e9), 0.0);
        bad.error = "boom".into();
        let runs = vec![
            rec("neptune-lma", 0, Some(10.0), 90.0),
            rec("fifo", 0, Some(100.0), 100.0),
            rec("neptune-lma", 1, Some(30.0), 94.0),
            rec("fifo", 1, Some(300.0), 100.0),
            rec("neptune-lma", 2, Some(20.0), 92.0),
            bad,
        ];
        let s = summarise(&runs);
        let n = find(&s, "", "neptune-lma").unwrap();
        assert_eq!(
            (n.reps, n.stream_p99_ms, n.batch_records_per_sec),
            (3, Some(20.0), 92.0)
        );
        let f = find(&s, "", "fifo").unwrap();
        assert_eq!((f.reps, f.stream_p99_ms), (2, Some(200.0)));
    }

    #[test]
    fn kafka_runs_get_a_source_to_commit_table() {
        let mut k = rec("fifo", 0, Some(30.0), 1.0);
        k.produce_s = 10.0;
        k.produced = 200_000;
        k.source_to_commit_p50_ms = Some(41.5);
        k.source_to_commit_p99_ms = Some(70.25);
        k.source_to_commit_max_ms = 80.0;
        let s = summarise(&[k]);
        assert_eq!(s[0].produced_per_sec, 20_000.0);
        let t = source_table(&s, "");
        assert!(t.contains("produce -> commit"), "{t}");
        let row = t
            .lines()
            .find(|l| l.starts_with("           fifo"))
            .unwrap();
        assert!(
            row.contains("20000") && row.contains("41.5") && row.contains("70.2"),
            "{t}"
        );
        assert_eq!(
            source_table(&summarise(&[rec("fifo", 0, Some(3.0), 1.0)]), ""),
            "",
            "no table without Kafka input"
        );
    }

    #[test]
    fn a_percentile_some_run_lacks_is_reported_as_not_available() {
        let mut short = rec("fair", 1, None, 1.0);
        short.stream_count = 80;
        let runs = vec![rec("fair", 0, Some(12.0), 1.0), short];
        let s = summarise(&runs);
        let fair = find(&s, "", "fair").unwrap();
        assert_eq!(
            fair.stream_p99_ms, None,
            "not a median of the runs that had it"
        );
        assert_eq!(fair.stream_p99_9_ms, None);
        let t = table(&s, "");
        assert!(t.contains("n/a"), "{t}");
        assert!(
            t.contains("p99 n/a for fair: a run had fewer than 100"),
            "{t}"
        );
        assert!(t.contains("p99.9 n/a for fair"), "{t}");
    }
}
