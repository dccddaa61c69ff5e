//! The stream latency breakdown per configuration: where micro-batches' time went, hop by hop
//! (the report's `latency_breakdown_ms`, see `neptune_driver::stats::hops`), as medians over
//! repetitions — a table, `breakdown.csv`, and a stacked bar per configuration.
//!
//! The stacked bar stacks each hop's *mean*: means of consecutive hops add up to the mean
//! end-to-end latency, percentiles do not (the p99 micro-batch of one hop is rarely the p99
//! micro-batch of another). The table gives p50, p99 and max per hop for the tail.

use super::runner::RunRecord;
use super::stats::median;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// One hop's figures in one run (steady state), ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HopFigures {
    /// Hop name.
    pub hop: String,
    /// Micro-batches with this hop known.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// The breakdown of a `neptune local --report` stream job (`[]` when it has none).
pub fn from_report(job: &serde_json::Value) -> Vec<HopFigures> {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    job["latency_breakdown_ms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            Some(HopFigures {
                hop: h["hop"].as_str()?.to_string(),
                count: h["count"].as_u64().unwrap_or(0),
                p50_ms: f(&h["p50"]),
                p99_ms: f(&h["p99"]),
                max_ms: f(&h["max"]),
                mean_ms: f(&h["mean"]),
            })
        })
        .collect()
}

/// One hop of one configuration: medians over its successful repetitions that recorded it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HopRow {
    /// Sweep value label (`""` for the policy comparison).
    pub point: String,
    /// Variant label.
    pub label: String,
    /// Hop name.
    pub hop: String,
    /// Median of the runs' p50, ms.
    pub p50_ms: f64,
    /// Median of the runs' p99, ms.
    pub p99_ms: f64,
    /// Median of the runs' max, ms.
    pub max_ms: f64,
    /// Median of the runs' mean, ms.
    pub mean_ms: f64,
}

/// Rows per (point, label, hop), configurations in first-seen order, hops in path order.
pub fn summarise(runs: &[RunRecord]) -> Vec<HopRow> {
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for r in runs.iter().filter(|r| r.ok()) {
        for h in r.hops.iter().filter(|h| h.count > 0) {
            let k = (r.point.clone(), r.label.clone(), h.hop.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys.into_iter()
        .map(|(point, label, hop)| {
            let figs: Vec<&HopFigures> = runs
                .iter()
                .filter(|r| r.ok() && r.point == point && r.label == label)
                .flat_map(|r| r.hops.iter().filter(|h| h.hop == hop && h.count > 0))
                .collect();
            let m = |f: fn(&HopFigures) -> f64| median(figs.iter().map(|h| f(h)).collect());
            HopRow {
                p50_ms: m(|h| h.p50_ms),
                p99_ms: m(|h| h.p99_ms),
                max_ms: m(|h| h.max_ms),
                mean_ms: m(|h| h.mean_ms),
                point,
                label,
                hop,
            }
        })
        .collect()
}

/// Hop names in the order rows first name them (path order).
fn hops(rows: &[HopRow]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in rows {
        if !out.contains(&r.hop.as_str()) {
            out.push(&r.hop);
        }
    }
    out
}

/// Configurations `(point, label)` in first-seen order.
fn configs(rows: &[HopRow]) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        let k = (r.point.as_str(), r.label.as_str());
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// The text table: per configuration, a p50, a p99 and a max line, one column per hop; and
/// which hop has the largest p99 (the tail's share).
pub fn table(rows: &[HopRow]) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        return s;
    }
    let names = hops(rows);
    let _ = writeln!(
        s,
        "\nStream latency breakdown, ms (each micro-batch's critical task; medians over \
         repetitions; mean stacks to the end-to-end mean)"
    );
    let _ = write!(s, "{:<10} {:<16} {:<5}", "point", "config", "stat");
    for n in &names {
        let _ = write!(s, " {:>12}", n);
    }
    let _ = writeln!(s, " {:>12}", "largest p99");
    for (point, label) in configs(rows) {
        let of = |hop: &str| {
            rows.iter()
                .find(|r| r.point == point && r.label == label && r.hop == hop)
        };
        let tail = rows
            .iter()
            .filter(|r| r.point == point && r.label == label)
            .max_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms))
            .map_or("", |r| r.hop.as_str());
        type Get = fn(&HopRow) -> f64;
        let stats: [(&str, Get); 4] = [
            ("mean", |r| r.mean_ms),
            ("p50", |r| r.p50_ms),
            ("p99", |r| r.p99_ms),
            ("max", |r| r.max_ms),
        ];
        for (stat, get) in stats {
            let _ = write!(s, "{point:<10} {label:<16} {stat:<5}");
            for n in &names {
                match of(n) {
                    Some(r) => {
                        let _ = write!(s, " {:>12.3}", get(r));
                    }
                    None => {
                        let _ = write!(s, " {:>12}", "-");
                    }
                }
            }
            let _ = writeln!(s, " {:>12}", if stat == "p99" { tail } else { "" });
        }
    }
    s
}

/// Write `breakdown.csv` into `dir`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_csv(dir: &Path, rows: &[HopRow]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let path = dir.join("breakdown.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| path.display().to_string())?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// The stacked-bar data: configuration labels (of `point`) and, per hop, its mean per label.
pub fn stacks(rows: &[HopRow], point: &str) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let labels: Vec<String> = configs(rows)
        .into_iter()
        .filter(|(p, _)| *p == point)
        .map(|(_, l)| l.to_string())
        .collect();
    let segments = hops(rows)
        .into_iter()
        .map(|hop| {
            let v = labels
                .iter()
                .map(|l| {
                    rows.iter()
                        .find(|r| r.point == point && &r.label == l && r.hop == hop)
                        .map_or(0.0, |r| r.mean_ms)
                })
                .collect();
            (hop.to_string(), v)
        })
        .collect();
    (labels, segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, rep: u32, process_p99: f64) -> RunRecord {
        let job = serde_json::json!({"latency_breakdown_ms": [
            {"hop": "trigger", "count": 300, "p50": 0.1, "p99": 0.5, "max": 2.0, "mean": 0.2},
            {"hop": "network", "count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0},
            {"hop": "process", "count": 300, "p50": 1.0, "p99": process_p99, "max": 40.0,
             "mean": 1.5},
        ]});
        RunRecord {
            label: label.into(),
            rep,
            hops: from_report(&job),
            ..RunRecord::default()
        }
    }

    #[test]
    fn medians_per_hop_and_the_tail_hop_is_named() {
        let runs = vec![
            run("neptune", 0, 9.0),
            run("neptune", 1, 11.0),
            run("fifo", 0, 0.1),
        ];
        let rows = summarise(&runs);
        assert_eq!(rows.len(), 4, "a hop no run recorded is left out: {rows:?}");
        let p = rows
            .iter()
            .find(|r| r.label == "neptune" && r.hop == "process")
            .unwrap();
        assert_eq!(p.p99_ms, 10.0);
        let t = table(&rows);
        assert!(t.contains("largest p99"), "{t}");
        let neptune_p99 = t
            .lines()
            .find(|l| l.contains("neptune") && l.contains(" p99 "))
            .unwrap();
        assert!(neptune_p99.trim_end().ends_with("process"), "{neptune_p99}");
        let fifo_p99 = t
            .lines()
            .find(|l| l.contains("fifo") && l.contains(" p99 "))
            .unwrap();
        assert!(fifo_p99.trim_end().ends_with("trigger"), "{fifo_p99}");
        let (labels, segs) = stacks(&rows, "");
        assert_eq!(labels, vec!["neptune", "fifo"]);
        assert_eq!(segs[0], ("trigger".to_string(), vec![0.2, 0.2]));
        assert_eq!(segs[1], ("process".to_string(), vec![1.5, 1.5]));
        assert!(table(&[]).is_empty());
    }
}
