//! Aggregation and output of bench runs: per-configuration medians over repetitions, the text
//! table, and the raw results as CSV (`runs.csv`, `summary.csv`) and JSON (`results.json`).

use super::runner::RunRecord;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Medians over the successful repetitions of one configuration (at one sweep point).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Summary {
    /// Sweep value label (`""` for the policy comparison).
    pub point: String,
    /// Variant label.
    pub label: String,
    /// Successful repetitions.
    pub reps: usize,
    /// Median of the runs' stream p50, ms.
    pub stream_p50_ms: f64,
    /// Median of the runs' stream p99, ms.
    pub stream_p99_ms: f64,
    /// Median batch records/s.
    pub batch_records_per_sec: f64,
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

/// Median (mean of the middle two for an even count); 0 for none.
///
/// Of a handful of per-repetition figures (one per run, `--reps` of them), not of a latency
/// stream: sorting a few values is exact where a histogram would round them to 3 digits, so
/// this stays hand-written; latency percentiles come from `neptune_driver::stats`.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
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
            Summary {
                reps: ok.len(),
                stream_p50_ms: m(&|r| r.stream_p50_ms),
                stream_p99_ms: m(&|r| r.stream_p99_ms),
                batch_records_per_sec: m(&|r| r.batch_records_per_sec),
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

/// The text table: one line per configuration, then the headline ratios when the runs include
/// them.
pub fn table(sums: &[Summary], point_name: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<16} {:>4} {:>10} {:>10} {:>12} {:>8} {:>6} {:>12} {:>9} {:>9}",
        point_name,
        "config",
        "reps",
        "p50 ms",
        "p99 ms",
        "batch rec/s",
        "susp",
        "kills",
        "rec lost",
        "susp p50us",
        "susp p99us"
    );
    for x in sums {
        let _ = writeln!(
            s,
            "{:<10} {:<16} {:>4} {:>10.1} {:>10.1} {:>12.3e} {:>8.0} {:>6.0} {:>12.3e} {:>9.1} {:>9.1}",
            x.point,
            x.label,
            x.reps,
            x.stream_p50_ms,
            x.stream_p99_ms,
            x.batch_records_per_sec,
            x.suspensions,
            x.kills,
            x.records_lost,
            x.suspend_p50_us,
            x.suspend_p99_us
        );
    }
    s += &ratios(sums);
    s
}

/// Headline ratios of the policy comparison (empty if the needed configurations are missing).
pub fn ratios(sums: &[Summary]) -> String {
    let mut s = String::new();
    let Some(n) = find(sums, "", "neptune-lma") else {
        return s;
    };
    for base in ["fifo", "fair", "kill", "static"] {
        if let Some(b) = find(sums, "", base) {
            let _ = writeln!(
                s,
                "neptune-lma vs {base:<6}: stream p99 {:.1} vs {:.1} ms = {:.1}x lower; batch rec/s {:.1}% of {base}",
                n.stream_p99_ms,
                b.stream_p99_ms,
                b.stream_p99_ms / n.stream_p99_ms.max(1e-9),
                100.0 * n.batch_records_per_sec / b.batch_records_per_sec.max(1e-9)
            );
        }
    }
    if let Some(a) = find(sums, "", "stream-alone") {
        let _ = writeln!(
            s,
            "neptune-lma stream p99 = {:.2}x stream-alone ({:.1} ms)",
            n.stream_p99_ms / a.stream_p99_ms.max(1e-9),
            a.stream_p99_ms
        );
    }
    if let Some(a) = find(sums, "", "batch-alone") {
        let _ = writeln!(
            s,
            "neptune-lma batch rec/s = {:.1}% of batch-alone",
            100.0 * n.batch_records_per_sec / a.batch_records_per_sec.max(1e-9)
        );
    }
    s
}

/// Median over repetitions of the per-repetition ratio `f(a) / f(b)`: the two runs of one
/// repetition ran back to back, so slow drift of a shared machine cancels out of each ratio.
/// `None` if no repetition has both runs.
pub fn paired_ratio(
    runs: &[RunRecord],
    a: &str,
    b: &str,
    f: impl Fn(&RunRecord) -> f64,
) -> Option<f64> {
    let get = |label: &str, rep: u32| {
        runs.iter()
            .find(|r| r.point.is_empty() && r.label == label && r.rep == rep && r.ok())
    };
    let reps = runs.iter().map(|r| r.rep).max()?;
    let ratios: Vec<f64> = (0..=reps)
        .filter_map(|rep| Some(f(get(a, rep)?) / f(get(b, rep)?).max(1e-12)))
        .collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

/// Paired ratios of `neptune-lma` against the baselines, as text.
pub fn paired(runs: &[RunRecord]) -> String {
    let mut s = String::new();
    for base in ["fifo", "fair"] {
        let lat = paired_ratio(runs, base, "neptune-lma", |r| r.stream_p99_ms);
        let thr = paired_ratio(runs, "neptune-lma", base, |r| r.batch_records_per_sec);
        if let (Some(lat), Some(thr)) = (lat, thr) {
            let _ = writeln!(
                s,
                "paired per repetition (median): {base} p99 / neptune-lma p99 = {lat:.1}x; neptune-lma batch rec/s / {base} = {:.1}%",
                100.0 * thr
            );
        }
    }
    s
}

/// Write `runs.csv`, `summary.csv` and `results.json` (with `meta`) into `dir`.
///
/// # Errors
/// When a file cannot be written (naming it).
pub fn write_all(
    dir: &Path,
    runs: &[RunRecord],
    sums: &[Summary],
    meta: serde_json::Value,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let path = dir.join("runs.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| path.display().to_string())?;
    for r in runs {
        // The latency series goes to JSON only: CSV rows are flat.
        let flat = RunRecord {
            latency_series: Vec::new(),
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
    let doc = serde_json::json!({ "meta": meta, "summary": sums, "runs": runs });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(label: &str, rep: u32, p99: f64, rps: f64) -> RunRecord {
        RunRecord {
            label: label.into(),
            rep,
            stream_p99_ms: p99,
            batch_records_per_sec: rps,
            ..RunRecord::default()
        }
    }

    #[test]
    fn medians_ignore_failed_runs_and_ratios_compare_to_fifo() {
        let mut bad = rec("fifo", 2, 1e9, 0.0);
        bad.error = "boom".into();
        let runs = vec![
            rec("neptune-lma", 0, 10.0, 90.0),
            rec("fifo", 0, 100.0, 100.0),
            rec("neptune-lma", 1, 30.0, 94.0),
            rec("fifo", 1, 300.0, 100.0),
            rec("neptune-lma", 2, 20.0, 92.0),
            bad,
        ];
        let s = summarise(&runs);
        let n = find(&s, "", "neptune-lma").unwrap();
        assert_eq!(
            (n.reps, n.stream_p99_ms, n.batch_records_per_sec),
            (3, 20.0, 92.0)
        );
        let f = find(&s, "", "fifo").unwrap();
        assert_eq!((f.reps, f.stream_p99_ms), (2, 200.0));
        let t = table(&s, "");
        assert!(t.contains("10.0x lower"), "{t}");
        assert!(t.contains("92.0% of fifo"), "{t}");
    }
}
