//! `neptune bench`: the evaluation harness.
//!
//! Runs the `synthetic` workload under every policy (or one sweep) as real `neptune local`
//! child processes, interleaved — repetition r runs every configuration once, in an order
//! rotated by r, so machine drift (this machine is shared) hits every configuration alike — then
//! prints a table of medians over repetitions (and the stream latency breakdown per hop,
//! [`breakdown`]) and writes `runs.csv`, `summary.csv`, `breakdown.csv`, `results.json`,
//! `table.txt` and SVG plots into `--out`. With `--simulate` it drives the
//! driver's scheduler state machine with simulated executors instead ([`simulate`]).
//!
//! Timings are measured here, never asserted: the test only checks that the outputs parse.

pub mod breakdown;
pub mod floor;
pub mod kafka;
pub mod plan;
pub mod plots;
pub mod ratios;
pub mod results;
pub mod runner;
mod sim_model;
pub mod simulate;
pub mod stats;

use crate::cli::BenchArgs;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use plan::Point;
use runner::RunRecord;
use std::path::Path;
use std::time::Duration;

/// Run the bench; returns the process exit code (non-zero if any run failed).
///
/// # Errors
/// When the output directory or a result file cannot be written.
pub fn run(args: &BenchArgs) -> anyhow::Result<i32> {
    if args.simulate {
        return simulate::run(args);
    }
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 });
    let duration = args.duration.unwrap_or(if args.quick {
        // 8 s at a 40 ms interval: about 160 steady-state micro-batches, enough for a p99.
        Duration::from_secs(8)
    } else {
        Duration::from_secs(15)
    });
    let mut workload = plan::base_workload();
    if args.source == crate::apps::Source::Kafka {
        workload.push(format!("stream.rate={}", kafka::RATE));
    }
    workload.extend(args.set.iter().cloned());
    let (points, out) = match args.sweep {
        None => {
            let mut variants = plan::policy_variants(args.executors, args.cores, &workload);
            if let Some(t) = args.slo_target_ms {
                plan::with_slo(&mut variants, t);
            }
            (
                vec![Point {
                    x: 0.0,
                    label: String::new(),
                    variants,
                }],
                args.out.clone(),
            )
        }
        Some(s) => {
            let mut points = plan::sweep_points(s, args.executors, args.cores, &workload);
            if let Some(t) = args.slo_target_ms {
                for p in &mut points {
                    plan::with_slo(&mut p.variants, t);
                }
            }
            (points, args.out.join(format!("sweep-{}", s.name())))
        }
    };
    let runs_dir = out.join("runs");
    std::fs::create_dir_all(&runs_dir)
        .with_context(|| format!("cannot create {}", runs_dir.display()))?;

    // Interleave: every repetition visits every (point, variant), rotated by the repetition.
    let pairs: Vec<(usize, usize)> = points
        .iter()
        .enumerate()
        .flat_map(|(p, pt)| (0..pt.variants.len()).map(move |v| (p, v)))
        .collect();
    let mut schedule = Vec::new();
    for rep in 0..reps {
        let mut order = pairs.clone();
        order.rotate_left(rep as usize % pairs.len().max(1));
        schedule.extend(order.into_iter().map(|(p, v)| (rep, p, v)));
    }
    let est = schedule.len() as f64 * (duration.as_secs_f64() + 1.5);
    eprintln!(
        "neptune bench: {} runs of {:.0?} ({} configurations x {reps} repetitions), about {:.0}s; writing to {}",
        schedule.len(),
        duration,
        pairs.len(),
        est,
        out.display()
    );
    // The machine's wake-up floor first, on the same machine state the runs start in.
    let interval = stream_interval(&workload)?;
    let floor = (!args.quick).then(|| {
        eprintln!("neptune bench: measuring the machine's wake-up floor (about 20 s)");
        floor::measure(interval, FLOOR_SAMPLES)
    });
    let kafka = match args.source {
        crate::apps::Source::Kafka => {
            let k = kafka::Brokers::new(args.kafka_bootstrap.as_deref(), &out.join("broker.log"))?;
            eprintln!(
                "neptune bench: stream input from Kafka, produced by the bench: {}",
                k.describe()
            );
            Some(k)
        }
        crate::apps::Source::Generator => None,
    };
    let load_start = runner::loadavg();
    let bar = ProgressBar::new(schedule.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let plain = bar.is_hidden();
    let mut runs: Vec<RunRecord> = Vec::new();
    for (i, &(rep, p, v)) in schedule.iter().enumerate() {
        let (pt, var) = (&points[p], &points[p].variants[v]);
        let what = format!("rep {} {} {}", rep + 1, pt.label, var.label);
        bar.set_message(what.clone());
        if plain {
            eprintln!("neptune bench: [{}/{}] {what}", i + 1, schedule.len());
        }
        let stem = format!(
            "{}{}-r{rep}",
            if pt.label.is_empty() {
                String::new()
            } else {
                format!("{}-", pt.label)
            },
            var.label
        );
        let slot = runner::Slot {
            point: &pt.label,
            rep,
            duration,
            dir: &runs_dir,
            stem: &stem,
        };
        let rec = match &kafka {
            Some(k) => k.run(var, &slot),
            None => runner::run_one(var, &slot),
        };
        if !rec.ok() {
            bar.println(format!("neptune bench: {what} failed: {}", rec.error));
        }
        runs.push(rec);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let sums = results::summarise(&runs);
    let ratios = ratios::paired(&runs);
    let mut table = results::table(&sums, if args.sweep.is_some() { "point" } else { "" });
    table += &ratios::table(&ratios);
    table += &results::source_table(&sums, if args.sweep.is_some() { "point" } else { "" });
    let hops = breakdown::summarise(&runs);
    table += &breakdown::table(&hops);
    if let Some(f) = &floor {
        table += &floor::table(f);
    }
    println!("{table}");
    std::fs::write(out.join("table.txt"), &table)?;
    let meta = serde_json::json!({
        "mode": if args.quick { "quick" } else { "default" },
        "sweep": args.sweep.map(|s| s.name()),
        "reps": reps,
        "duration_s": duration.as_secs_f64(),
        "executors": args.executors,
        "cores": args.cores,
        "source": args.source.to_string(),
        "kafka": kafka.as_ref().map(kafka::Brokers::describe),
        "workload": workload,
        "machine": machine(),
        "floor": floor,
        "loadavg_start": load_start,
        "loadavg_end": runner::loadavg(),
        "points": points,
    });
    results::write_all(&out, &runs, &sums, &ratios, meta)?;
    breakdown::write_csv(&out, &hops)?;
    match args.sweep {
        None => {
            comparison_plots(&out, &runs, &sums)?;
            let (labels, segments) = breakdown::stacks(&hops, "");
            if !labels.is_empty() {
                plots::stacked_bars(
                    &out.join("latency-breakdown.svg"),
                    "Stream micro-batch latency by hop (mean, median over repetitions)",
                    "mean latency (ms)",
                    &labels,
                    &segments,
                )?;
            }
        }
        Some(s) => sweep_plots(&out, s, &points, &sums)?,
    }
    eprintln!(
        "neptune bench: wrote table.txt, runs.csv, summary.csv, results.json and SVG plots to {}",
        out.display()
    );
    Ok(i32::from(runs.iter().any(|r| !r.ok())))
}

/// Wake-up samples per state of the machine floor: enough for a p99 (100), about 10 s each at
/// the bench's 40 ms interval.
const FLOOR_SAMPLES: usize = 250;

/// The stream interval the runs use, read as `synthetic` reads it (the last
/// `jobs.stream.interval_ms` of the workload, so a `--set` wins; the app's default without one):
/// the idle gap of the floor's wake-ups.
///
/// # Errors
/// A value the app would refuse, naming its key.
fn stream_interval(workload: &[String]) -> anyhow::Result<Duration> {
    let cfg = neptune_core::Config::from_args(workload)?;
    Ok(crate::apps::StreamLoad::read(&cfg, &crate::apps::synthetic::STREAM_TASKS)?.interval)
}

/// CPU model, logical CPUs and kernel, for the record.
fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_string();
    serde_json::json!({
        "cpu": model,
        "logical_cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

/// Latency CDF and latency over time (stream-carrying configurations), batch throughput bars
/// (batch-carrying configurations).
fn comparison_plots(
    out: &Path,
    runs: &[RunRecord],
    sums: &[results::Summary],
) -> anyhow::Result<()> {
    fn ok<'a>(runs: &'a [RunRecord], label: &'a str) -> impl Iterator<Item = &'a RunRecord> {
        runs.iter().filter(move |r| r.label == label && r.ok())
    }
    let stream: Vec<&str> = sums
        .iter()
        .map(|s| s.label.as_str())
        .filter(|l| *l != "batch-alone")
        .collect();
    let cdf: Vec<(String, Vec<f64>)> = stream
        .iter()
        .map(|l| {
            let v = ok(runs, l).flat_map(|r| r.latency_series.iter().map(|p| p.1));
            (l.to_string(), v.collect())
        })
        .collect();
    plots::latency_cdf(
        &out.join("latency-cdf.svg"),
        "Stream micro-batch latency CDF (all repetitions)",
        &cdf,
    )?;
    let over_time: Vec<(String, Vec<(f64, f64)>)> = stream
        .iter()
        .filter_map(|l| Some((l.to_string(), ok(runs, l).next()?.latency_series.clone())))
        .collect();
    plots::lines(
        &out.join("latency-over-time.svg"),
        "Stream micro-batch latency over time (first repetition)",
        ("time since start (s)", "latency (ms, log scale)"),
        &over_time,
        true,
    )?;
    let bars: Vec<(String, f64)> = sums
        .iter()
        .filter(|s| s.label != "stream-alone")
        .map(|s| (s.label.clone(), s.batch_records_per_sec))
        .collect();
    plots::bars(
        &out.join("batch-throughput.svg"),
        "Batch throughput per policy (median over repetitions)",
        "batch records/s",
        &bars,
    )
}

/// Stream p99 and batch records/s against the swept value, one line per variant.
fn sweep_plots(
    out: &Path,
    sweep: plan::Sweep,
    points: &[Point],
    sums: &[results::Summary],
) -> anyhow::Result<()> {
    let mut labels: Vec<String> = Vec::new();
    for v in points.iter().flat_map(|p| &p.variants) {
        if !labels.contains(&v.label) {
            labels.push(v.label.clone());
        }
    }
    let series = |f: &dyn Fn(&results::Summary) -> Option<f64>, skip: &str| {
        labels
            .iter()
            .filter(|l| *l != skip)
            .map(|l| {
                let pts = points
                    .iter()
                    .filter_map(|p| Some((p.x, f(results::find(sums, &p.label, l)?)?)))
                    .collect();
                (l.clone(), pts)
            })
            .collect::<Vec<_>>()
    };
    let axis = sweep.axis();
    plots::lines(
        &out.join(format!("sweep-{}-stream-p99.svg", sweep.name())),
        &format!("Stream p99 latency vs {axis}"),
        (axis, "stream p99 (ms, log scale)"),
        &series(&|s| s.stream_p99_ms, ""),
        true,
    )?;
    plots::lines(
        &out.join(format!("sweep-{}-batch.svg", sweep.name())),
        &format!("Batch throughput vs {axis}"),
        (axis, "batch records/s"),
        &series(&|s| Some(s.batch_records_per_sec), "stream-alone"),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_idles_for_the_stream_interval_a_set_value_wins() {
        let mut w = plan::base_workload();
        assert_eq!(stream_interval(&w).unwrap(), Duration::from_millis(40));
        w.push("jobs.stream.interval_ms=25".into());
        assert_eq!(stream_interval(&w).unwrap(), Duration::from_millis(25));
        assert_eq!(
            stream_interval(&[]).unwrap(),
            Duration::from_millis(crate::apps::STREAM_INTERVAL_MS),
            "the app's own default"
        );
        w.push("jobs.stream.interval_ms=soon".into());
        let e = stream_interval(&w).unwrap_err().to_string();
        assert!(e.contains("jobs.stream.interval_ms"), "{e}");
    }
}
