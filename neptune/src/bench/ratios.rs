//! The bench's headline ratios, paired per repetition: every policy against `fifo` (how much lower
//! its stream p99 is, what share of fifo's batch throughput it keeps) and against the baselines
//! (its stream p99 over `stream-alone`'s, its batch throughput over `batch-alone`'s).
//!
//! Paired: repetition r ran every configuration once, back to back, so a ratio of two runs of the
//! same repetition cancels slow drift of a shared machine. The headline is the median of the
//! per-repetition ratios with a percentile-bootstrap interval over repetitions
//! ([`super::stats::bootstrap_median_ci`], fixed seed: the same runs give the same output); with
//! fewer than three repetitions the interval is reported as not available.

use super::runner::RunRecord;
use super::stats::{BOOTSTRAP_SEED, CONFIDENCE, MIN_REPS_FOR_INTERVAL, bootstrap_median_ci};
use serde::Serialize;
use std::fmt::Write as _;

/// One paired ratio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratio {
    /// The configuration compared.
    pub config: String,
    /// What: `stream_p99_fifo_over_config`, `batch_config_over_fifo`,
    /// `stream_p99_config_over_stream_alone` or `batch_config_over_batch_alone`.
    pub metric: String,
    /// Repetitions where both runs succeeded and had the figure.
    pub reps: usize,
    /// Median of the per-repetition ratios.
    pub median: f64,
    /// Bootstrap interval of the median (`None` with fewer than three repetitions).
    pub ci_low: Option<f64>,
    /// Upper end.
    pub ci_high: Option<f64>,
    /// The per-repetition ratios, in repetition order.
    pub per_rep: Vec<f64>,
}

type Figure = fn(&RunRecord) -> Option<f64>;

fn p99(r: &RunRecord) -> Option<f64> {
    r.stream_p99_ms.filter(|v| *v > 0.0)
}

fn batch(r: &RunRecord) -> Option<f64> {
    Some(r.batch_records_per_sec).filter(|v| *v > 0.0)
}

/// The four comparisons: (metric, numerator is the config?, baseline, figure).
const COMPARISONS: [(&str, bool, &str, Figure); 4] = [
    ("stream_p99_fifo_over_config", false, "fifo", p99),
    ("batch_config_over_fifo", true, "fifo", batch),
    (
        "stream_p99_config_over_stream_alone",
        true,
        "stream-alone",
        p99,
    ),
    ("batch_config_over_batch_alone", true, "batch-alone", batch),
];

/// Per-repetition `num / den` of `f` over the repetitions where both ran and have the figure.
fn per_rep(runs: &[RunRecord], num: &str, den: &str, f: Figure) -> Vec<f64> {
    let get = |label: &str, rep: u32| {
        runs.iter()
            .find(|r| r.point.is_empty() && r.label == label && r.rep == rep && r.ok())
            .and_then(f)
    };
    let Some(last) = runs.iter().map(|r| r.rep).max() else {
        return Vec::new();
    };
    (0..=last)
        .filter_map(|rep| Some(get(num, rep)? / get(den, rep)?))
        .collect()
}

/// Every paired ratio the policy comparison's runs allow (none for a sweep).
pub fn paired(runs: &[RunRecord]) -> Vec<Ratio> {
    let mut configs: Vec<&str> = Vec::new();
    for r in runs.iter().filter(|r| r.point.is_empty()) {
        if !configs.contains(&r.label.as_str()) && r.label != "fifo" && !r.label.ends_with("alone")
        {
            configs.push(&r.label);
        }
    }
    let mut out = Vec::new();
    for c in configs {
        for (metric, config_on_top, base, f) in COMPARISONS {
            let (num, den) = if config_on_top { (c, base) } else { (base, c) };
            let v = per_rep(runs, num, den, f);
            if v.is_empty() {
                continue;
            }
            let ci = bootstrap_median_ci(&v, BOOTSTRAP_SEED);
            out.push(Ratio {
                config: c.to_string(),
                metric: metric.to_string(),
                reps: v.len(),
                median: super::stats::median(v.clone()),
                ci_low: ci.map(|c| c.0),
                ci_high: ci.map(|c| c.1),
                per_rep: v,
            });
        }
    }
    out
}

/// `12.3x [10.1, 14.0]` (or `%` figures), the interval as `[n/a: 2 reps]` when too few.
fn cell(r: Option<&Ratio>, percent: bool) -> String {
    let Some(r) = r else {
        return "-".into();
    };
    let fmt = |v: f64| {
        if percent {
            format!("{:.1}%", 100.0 * v)
        } else {
            format!("{v:.2}x")
        }
    };
    match (r.ci_low, r.ci_high) {
        (Some(lo), Some(hi)) => format!("{} [{}, {}]", fmt(r.median), fmt(lo), fmt(hi)),
        _ => format!("{} [n/a: {} reps]", fmt(r.median), r.reps),
    }
}

/// The ratios as a text table, one line per configuration (empty if there are none).
pub fn table(ratios: &[Ratio]) -> String {
    let mut s = String::new();
    if ratios.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "\nPaired ratios vs fifo and the baselines: median over repetitions [{:.0}% bootstrap \
         interval; needs {MIN_REPS_FOR_INTERVAL} repetitions]",
        100.0 * CONFIDENCE
    );
    let _ = writeln!(
        s,
        "{:<16} {:>28} {:>28} {:>28} {:>28}",
        "config",
        "fifo p99 / config p99",
        "config batch / fifo",
        "p99 / stream-alone",
        "batch / batch-alone"
    );
    let mut configs: Vec<&str> = Vec::new();
    for r in ratios {
        if !configs.contains(&r.config.as_str()) {
            configs.push(&r.config);
        }
    }
    for c in configs {
        let get = |m: &str| ratios.iter().find(|r| r.config == c && r.metric == m);
        let _ = writeln!(
            s,
            "{:<16} {:>28} {:>28} {:>28} {:>28}",
            c,
            cell(get(COMPARISONS[0].0), false),
            cell(get(COMPARISONS[1].0), true),
            cell(get(COMPARISONS[2].0), false),
            cell(get(COMPARISONS[3].0), true),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(label: &str, rep: u32, p99: Option<f64>, rps: f64) -> RunRecord {
        RunRecord {
            label: label.into(),
            rep,
            stream_p99_ms: p99,
            batch_records_per_sec: rps,
            ..RunRecord::default()
        }
    }

    #[test]
    fn ratios_are_paired_per_repetition_with_an_interval_from_three() {
        let mut runs = Vec::new();
        for (rep, (n, f)) in [(10.0, 100.0), (30.0, 600.0), (20.0, 300.0)]
            .into_iter()
            .enumerate()
        {
            runs.push(rec("neptune-lma", rep as u32, Some(n), 90.0 + rep as f64));
            runs.push(rec("fifo", rep as u32, Some(f), 100.0));
        }
        let r = paired(&runs);
        let lat = r
            .iter()
            .find(|r| r.metric == "stream_p99_fifo_over_config")
            .unwrap();
        // Per repetition 10, 20, 15: the median is 15, not 300 / 20 of the medians.
        assert_eq!(lat.per_rep, vec![10.0, 20.0, 15.0]);
        assert_eq!(lat.median, 15.0);
        assert_eq!((lat.ci_low, lat.ci_high), (Some(10.0), Some(20.0)));
        let thr = r
            .iter()
            .find(|r| r.metric == "batch_config_over_fifo")
            .unwrap();
        assert_eq!(thr.median, 0.91);
        let t = table(&r);
        assert!(t.contains("vs fifo"), "{t}");
        assert!(t.contains("15.00x [10.00x, 20.00x]"), "{t}");
        assert!(t.contains("91.0% [90.0%, 92.0%]"), "{t}");
    }

    #[test]
    fn too_few_repetitions_give_no_interval_and_missing_figures_drop_a_repetition() {
        let mut failed = rec("fifo", 2, Some(50.0), 100.0);
        failed.error = "boom".into();
        let runs = vec![
            rec("fair", 0, Some(10.0), 95.0),
            rec("fifo", 0, Some(100.0), 100.0),
            rec("fair", 1, None, 95.0),
            rec("fifo", 1, Some(100.0), 100.0),
            rec("fair", 2, Some(10.0), 95.0),
            failed,
        ];
        let r = paired(&runs);
        let lat = r
            .iter()
            .find(|r| r.metric == "stream_p99_fifo_over_config")
            .unwrap();
        assert_eq!(lat.reps, 1, "rep 1 has no p99, rep 2's fifo failed");
        assert_eq!((lat.ci_low, lat.ci_high), (None, None));
        let thr = r
            .iter()
            .find(|r| r.metric == "batch_config_over_fifo")
            .unwrap();
        assert_eq!(thr.reps, 2);
        assert!(table(&r).contains("[n/a: 1 reps]"), "{}", table(&r));
        assert!(
            r.iter().all(|x| !x.metric.contains("alone")),
            "no baseline runs, no baseline ratios"
        );
    }
}
