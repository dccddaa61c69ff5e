//! `neptune bench --simulate`: scale by simulation. Drives the driver's scheduler state machine
//! with 100 to 10,000 simulated executors and a virtual clock ([`super::sim_model`]), under the
//! `neptune` policy with `lma` placement at every size and `lb` / `random` too for the
//! memory-pressure comparison, and reports placements per second of scheduler time, scheduler
//! cost per event and per heartbeat, and virtual stream latency.

use super::sim_model::{SimConfig, SimResult, simulate};
use crate::cli::BenchArgs;
use anyhow::Context as _;
use neptune_driver::scheduler::Placement;
use std::fmt::Write as _;
use std::time::Duration;

/// The simulated workload at `executors`: 8 cores each; one stream task per executor every
/// 200 ms (5 ms of work each, so 1/8 of the slots are wanted by stream tasks at once); 10 s
/// batch tasks keeping every slot busy; 100 µs one-way messages, 50 µs suspend and resume.
pub fn config(executors: u32, placement: Placement, duration: Duration) -> SimConfig {
    SimConfig {
        executors,
        cores: 8,
        stream_tasks: executors,
        interval: Duration::from_millis(200),
        stream_task: Duration::from_millis(5),
        batch_task: Duration::from_secs(10),
        net: Duration::from_micros(100),
        suspend: Duration::from_micros(50),
        resume: Duration::from_micros(50),
        heartbeat: Duration::from_millis(250),
        duration,
        placement,
        pressured_every: 10,
    }
}

/// Run the simulations and write `simulation.{txt,csv,json}` and `simulation.svg`.
///
/// # Errors
/// When the output cannot be written.
pub fn run(args: &BenchArgs) -> anyhow::Result<i32> {
    let virt = args.duration.unwrap_or(if args.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    });
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut results: Vec<SimResult> = Vec::new();
    for &n in &args.sim_executors {
        for p in [Placement::Lma, Placement::Lb, Placement::Random] {
            eprintln!("neptune bench: simulating {n} executors, placement {p}, {virt:?} virtual");
            results.push(simulate(&config(n, p, virt))?);
        }
    }
    let mut t = format!(
        "{:>9} {:<7} {:>9} {:>10} {:>12} {:>9} {:>9} {:>8} {:>8} {:>9} {:>10}\n",
        "executors",
        "place",
        "events",
        "placements",
        "placements/s",
        "event us",
        "hbeat us",
        "p50 ms",
        "p99 ms",
        "micro-b",
        "on-press %"
    );
    for r in &results {
        let _ = writeln!(
            t,
            "{:>9} {:<7} {:>9} {:>10} {:>12.0} {:>9.2} {:>9.2} {:>8.2} {:>8.2} {:>9} {:>10.1}",
            r.executors,
            r.placement,
            r.events,
            r.placements,
            r.placements_per_sec,
            r.event_us,
            r.heartbeat_us,
            r.stream_p50_ms,
            r.stream_p99_ms,
            r.micro_batches,
            r.preempted_on_pressured_pct
        );
    }
    println!("{t}");
    std::fs::write(args.out.join("simulation.txt"), &t)?;
    let path = args.out.join("simulation.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| path.display().to_string())?;
    for r in &results {
        w.serialize(r)?;
    }
    w.flush()?;
    let cfgs: Vec<SimConfig> = args
        .sim_executors
        .iter()
        .map(|&n| config(n, Placement::Lma, virt))
        .collect();
    let doc = serde_json::json!({ "configs": cfgs, "results": results });
    std::fs::write(
        args.out.join("simulation.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    let series: Vec<(String, Vec<(f64, f64)>)> = ["lma", "lb", "random"]
        .iter()
        .map(|p| {
            let pts = results
                .iter()
                .filter(|r| r.placement == *p)
                .map(|r| (f64::from(r.executors).log10(), r.placements_per_sec))
                .collect();
            (format!("neptune-{p}"), pts)
        })
        .collect();
    super::plots::lines(
        &args.out.join("simulation.svg"),
        "Scheduler placements per second of scheduler time (simulated executors)",
        ("log10(simulated executors)", "placements/s"),
        &series,
        false,
    )?;
    eprintln!(
        "neptune bench: wrote simulation.txt, .csv, .json, .svg to {}",
        args.out.display()
    );
    Ok(0)
}
