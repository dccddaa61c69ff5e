//! `neptune bench`: the `--quick` policy comparison and a small `--simulate` write every
//! output (table, CSV, JSON, SVG) and the outputs parse. Behavioural only: no timing asserts.

use crate::common;

use common::{neptune, run_with_timeout};
use neptune::bench::plots::check::{Expect, check};
use std::path::Path;
use std::time::Duration;

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<_> = r.records().map(|x| x.expect("CSV row parses")).collect();
    assert!(!rows.is_empty(), "{} has no rows", path.display());
    rows
}

fn json(path: &Path) -> serde_json::Value {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&s).expect("JSON parses")
}

/// The plot at `path` shows what `e` names (its series, bars, axis texts).
fn plot(path: &Path, e: &Expect<'_>) {
    check(path, e).unwrap_or_else(|err| panic!("{err:#}"));
}

#[test]
fn quick_bench_writes_table_csv_json_and_plots_for_every_policy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench-out");
    let mut cmd = neptune();
    // `--quick` runs each configuration for 8 s; 4 s checks the same outputs at half the CPU
    // (the nine configurations keep both cores busy: this is the suite's costliest test). At
    // 4 s a run has ~75 steady-state micro-batches, under the 100 a p99 needs, so this mostly
    // checks the "p99 n/a" path; `stats`' and `results`' unit tests check the p99 itself.
    cmd.args(["bench", "--quick", "--duration", "4s", "--out"])
        .arg(&out);
    // The limit only stops a hung run, which takes about 40 s.
    let o = run_with_timeout(cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "bench failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for label in [
        "neptune-lma",
        "neptune-lb",
        "neptune-random",
        "fifo",
        "fair",
        "kill",
    ] {
        assert!(stdout.contains(label), "table lacks {label}:\n{stdout}");
    }
    assert!(stdout.contains("vs fifo"), "{stdout}");

    let runs = csv_rows(&out.join("runs.csv"));
    assert_eq!(runs.len(), 9, "one run per configuration");
    let sums = csv_rows(&out.join("summary.csv"));
    assert_eq!(sums.len(), 9);
    let doc = json(&out.join("results.json"));
    assert_eq!(doc["runs"].as_array().unwrap().len(), 9);
    let lma = doc["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == "neptune-lma")
        .expect("neptune-lma summarised");
    assert_eq!(lma["reps"], 1);
    assert!(lma["stream_count"].as_f64().unwrap() > 0.0, "{lma}");
    // A p99 when the run had the micro-batches for one (a loaded machine may start it late),
    // else none at all: never the maximum under p99's name.
    match lma["stream_p99_ms"].as_f64() {
        Some(p99) => assert!(p99 > 0.0 && lma["stream_count"].as_f64().unwrap() >= 100.0),
        None => assert!(stdout.contains("p99 n/a for"), "{stdout}"),
    }
    assert!(
        lma["stream_p99_9_ms"].is_null(),
        "no p99.9 from a short run: {lma}"
    );
    let ratios = doc["ratios"].as_array().expect("ratios in results.json");
    assert!(
        ratios
            .iter()
            .all(|r| r["reps"] == 1 && r["ci_low"].is_null()),
        "one repetition: ratios without intervals: {ratios:?}"
    );
    // (`kill` may legitimately have no batch work left standing: its tasks die every 40 ms.)
    for r in doc["runs"].as_array().unwrap() {
        if r["label"] != "stream-alone" && r["label"] != "kill" {
            assert!(
                r["batch_records_per_sec"].as_f64().unwrap() > 0.0,
                "batch rec/s from the executors' counters: {r}"
            );
        }
    }
    assert!(doc["meta"]["machine"]["logical_cpus"].as_u64().unwrap() >= 1);
    // The per-hop latency breakdown: a table, a CSV row per configuration and hop, a plot.
    assert!(stdout.contains("Stream latency breakdown"), "{stdout}");
    let hops = csv_rows(&out.join("breakdown.csv"));
    let mean_col = csv::Reader::from_path(out.join("breakdown.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "mean_ms")
        .expect("breakdown.csv has mean_ms");
    for label in ["neptune-lma", "stream-alone"] {
        for hop in ["trigger", "core_wait", "process", "commit"] {
            assert!(
                hops.iter().any(|r| &r[1] == label && &r[2] == hop),
                "breakdown.csv lacks {label}/{hop}"
            );
        }
    }
    assert!(
        !hops.iter().any(|r| &r[1] == "batch-alone"),
        "no stream job, no breakdown"
    );
    // The plots show a series per configuration that had one to show. A line needs two
    // points (micro-batches); a bar must be tall enough to be a pixel (1 % of the tallest).
    let runs = doc["runs"].as_array().unwrap();
    let streams: Vec<&str> = runs
        .iter()
        .filter(|r| r["stream_runs"].as_u64().unwrap() >= 2)
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert!(streams.contains(&"neptune-lma"), "{runs:?}");
    let axis = "stream micro-batch latency (ms, log scale)";
    let lines = Expect {
        texts: &[axis],
        lines: &streams,
        ..Expect::default()
    };
    plot(&out.join("latency-cdf.svg"), &lines);
    let lines = Expect {
        texts: &["time since start (s)", "latency (ms, log scale)"],
        ..lines
    };
    plot(&out.join("latency-over-time.svg"), &lines);
    let sums = doc["summary"].as_array().unwrap();
    let rate = |s: &serde_json::Value| s["batch_records_per_sec"].as_f64().unwrap();
    let top = sums.iter().map(rate).fold(0.0, f64::max);
    let batch: Vec<&str> = sums
        .iter()
        .filter(|s| s["label"] != "stream-alone" && rate(s) >= top / 100.0)
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert!(batch.contains(&"batch-alone"), "{sums:?}");
    let bars = Expect {
        texts: &["batch records/s"],
        bars: &batch,
        ..Expect::default()
    };
    plot(&out.join("batch-throughput.svg"), &bars);
    // The breakdown: a legend entry per hop, a segment per hop that is tall enough to see, a
    // stack per stream configuration.
    let mean = |r: &csv::StringRecord| r[mean_col].parse::<f64>().unwrap();
    let total = |label: &str| -> f64 { hops.iter().filter(|r| &r[1] == label).map(mean).sum() };
    let configs: Vec<&str> = hops.iter().map(|r| &r[1]).collect();
    let tallest = configs.iter().map(|l| total(l)).fold(0.0, f64::max);
    let stacks: Vec<&str> = hops
        .iter()
        .filter(|r| mean(r) >= tallest / 100.0)
        .map(|r| &r[2])
        .collect();
    let stacked: Vec<&str> = configs
        .iter()
        .copied()
        .filter(|l| total(l) >= tallest / 100.0)
        .collect();
    assert!(!stacks.is_empty(), "{hops:?}");
    let mut every_hop: Vec<&str> = hops.iter().map(|r| &r[2]).collect();
    every_hop.sort_unstable();
    every_hop.dedup();
    let breakdown = Expect {
        texts: &["mean latency (ms)"],
        legend: &every_hop,
        stacks: &stacks,
        bars: &stacked,
        ..Expect::default()
    };
    plot(&out.join("latency-breakdown.svg"), &breakdown);
    assert!(out.join("table.txt").exists());
}

#[test]
fn simulation_reports_placements_at_each_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = neptune();
    cmd.args([
        "bench",
        "--simulate",
        "--quick",
        "--sim-executors",
        "10,50",
        "--duration",
        "1s",
        "--out",
    ])
    .arg(dir.path());
    let o = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = csv_rows(&dir.path().join("simulation.csv"));
    assert_eq!(rows.len(), 6, "3 placements x 2 sizes");
    let doc = json(&dir.path().join("simulation.json"));
    for r in doc["results"].as_array().unwrap() {
        assert!(r["placements"].as_u64().unwrap() > 0, "{r}");
        assert!(r["micro_batches"].as_u64().unwrap() > 0, "{r}");
    }
    let placements = Expect {
        texts: &["log10(simulated executors)", "placements/s"],
        lines: &["neptune-lma", "neptune-lb", "neptune-random"],
        ..Expect::default()
    };
    plot(&dir.path().join("simulation.svg"), &placements);
}
