//! What `neptune bench` runs: the benchmark workload (the `synthetic` app), the configurations
//! compared (every policy and placement, plus the stream-alone and batch-alone baselines), and
//! the sweeps. Pure data: nothing here starts a process.

use neptune_driver::scheduler::Policy;

/// The workload of the policy comparison, as `synthetic` config keys.
///
/// Batch: 8 tasks per run of 1.6 M records at cost 20 (about 70 ms per task on one core of the
/// reference machine), re-run as soon as a run commits, so batch always has a task queued for
/// every slot: the cluster is full whenever a micro-batch arrives. Stream: 2 tasks every 40 ms,
/// 20,000 records/s in all (400 records, a few hundredths of a millisecond of work per task),
/// so stream latency is dominated by scheduling, not by its own work.
///
/// Why 40 ms: a percentile needs enough samples not to be the maximum (p99: 100). A default
/// 15 s run at 40 ms gives about 340 steady-state micro-batches (after executor start and the
/// first second of warm-up), so p99 is about the 4th-largest; at 200 ms it gave 70, and p99 was
/// the slowest micro-batch of the run. p99.9 needs 1,000 per run (a 45 s run): the default bench
/// reports it as not available rather than stretch 27 runs past 20 minutes.
///
/// Why 70 ms tasks: the batch task stays 1.75 micro-batch intervals long, as it was (0.35 s
/// tasks, 200 ms interval), so a task meets as many micro-batches as before. With 0.35 s tasks
/// at 40 ms a task is preempted past `scheduler.max_suspensions` (8) and runs unpreemptible
/// for `scheduler.quantum_ms`: the stream tail then measures the anti-starvation quantum.
pub fn base_workload() -> Vec<String> {
    [
        "seed=42",
        "batch.tasks=8",
        "batch.records=1600000",
        "batch.cost=20",
        "stream.tasks=2",
        "stream.rate=20000",
        "stream.cost=20",
        "jobs.stream.interval_ms=40",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect()
}

/// One configuration to run: a policy (and placement) on a cluster shape, with extra config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Variant {
    /// Short name used in tables, file names and plot legends.
    pub label: String,
    /// `--policy`.
    pub policy: Policy,
    /// `--executors`.
    pub executors: u32,
    /// `--cores`.
    pub cores: u32,
    /// `--set` values: workload first, then the variant's own (later keys win).
    pub set: Vec<String>,
}

impl Variant {
    fn new(label: &str, policy: Policy, executors: u32, cores: u32, set: &[String]) -> Self {
        Self {
            label: label.to_string(),
            policy,
            executors,
            cores,
            set: set.to_vec(),
        }
    }

    fn with(mut self, kv: &str) -> Self {
        self.set.push(kv.to_string());
        self
    }

    /// Whether this is a baseline with one of the two jobs missing.
    pub fn is_baseline(&self) -> bool {
        self.label.ends_with("alone")
    }
}

/// Every policy and placement on `executors` x `cores`, plus the two baselines.
///
/// `static` dedicates whole executors to stream jobs, so on a single executor batch would never
/// run: with one executor it runs on two executors with half the cores each (same total).
pub fn policy_variants(executors: u32, cores: u32, workload: &[String]) -> Vec<Variant> {
    let (se, sc) = if executors == 1 {
        (2, (cores / 2).max(1))
    } else {
        (executors, cores)
    };
    vec![
        Variant::new("neptune-lma", Policy::Neptune, executors, cores, workload)
            .with("scheduler.placement=lma"),
        Variant::new("neptune-lb", Policy::Neptune, executors, cores, workload)
            .with("scheduler.placement=lb"),
        Variant::new(
            "neptune-random",
            Policy::Neptune,
            executors,
            cores,
            workload,
        )
        .with("scheduler.placement=random"),
        Variant::new("fifo", Policy::Fifo, executors, cores, workload),
        Variant::new("fair", Policy::Fair, executors, cores, workload),
        Variant::new("kill", Policy::Kill, executors, cores, workload),
        Variant::new("static", Policy::Static, se, sc, workload),
        Variant::new("stream-alone", Policy::Neptune, executors, cores, workload)
            .with("batch.tasks=0"),
        Variant::new("batch-alone", Policy::Neptune, executors, cores, workload)
            .with("stream.tasks=0"),
    ]
}

/// The stream job's latency target `target_ms` for every run of `workload`, and the SLO-aware
/// variants of `neptune` (acting ahead, and holding only) beside the others: attainment is then comparable across policies.
pub fn with_slo(variants: &mut Vec<Variant>, target_ms: u64) {
    let target = format!("jobs.stream.latency_target_ms={target_ms}");
    // Not batch-alone: without a stream job the key names no job, and the run refuses it.
    for v in variants
        .iter_mut()
        .filter(|v| !v.set.iter().any(|kv| kv == "stream.tasks=0"))
    {
        v.set.push(target.clone());
    }
    if let Some(neptune) = variants.iter().find(|v| v.label == "neptune-lma") {
        // The mode as configured by default (acting ahead of each micro-batch, the hold guard
        // as a last resort), and the hold guard alone (`scheduler.slo_lead_us=0`).
        let mut slo = neptune.clone().with("scheduler.slo_aware=true");
        slo.label = "neptune-slo".into();
        let mut hold = slo.clone().with("scheduler.slo_lead_us=0");
        hold.label = "neptune-slo-hold".into();
        variants.insert(1, slo);
        variants.insert(2, hold);
    }
}

/// A sweep: one parameter varied, a few policies at each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sweep {
    /// Stream input rate (records/s).
    Rate,
    /// Stream micro-batch interval (ms).
    Interval,
    /// Batch task length (records per task; about 44 ns per record at cost 20).
    TaskLength,
    /// Executors x cores.
    Topology,
    /// Some batch tasks retain large buffers: LMA against lb and random, 2 executors.
    Memory,
}

impl Sweep {
    /// Name used for output files.
    pub fn name(self) -> &'static str {
        match self {
            Sweep::Rate => "rate",
            Sweep::Interval => "interval",
            Sweep::TaskLength => "task-length",
            Sweep::Topology => "topology",
            Sweep::Memory => "memory",
        }
    }

    /// Label of the swept axis.
    pub fn axis(self) -> &'static str {
        match self {
            Sweep::Rate => "stream rate (records/s)",
            Sweep::Interval => "micro-batch interval (ms)",
            Sweep::TaskLength => "batch records per task (millions)",
            Sweep::Topology => "executors x cores",
            Sweep::Memory => "MiB retained by every other batch task",
        }
    }
}

/// One value of a sweep and the variants run at it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Point {
    /// The swept value (for plots; topology uses its index).
    pub x: f64,
    /// The swept value as shown in tables.
    pub label: String,
    /// What runs at this value.
    pub variants: Vec<Variant>,
}

/// The points of `sweep` around `workload` on `executors` x `cores`.
pub fn sweep_points(sweep: Sweep, executors: u32, cores: u32, workload: &[String]) -> Vec<Point> {
    let trio = |w: &[String], e: u32, c: u32, extra: &str| -> Vec<Variant> {
        vec![
            Variant::new("neptune-lma", Policy::Neptune, e, c, w).with(extra),
            Variant::new("fifo", Policy::Fifo, e, c, w).with(extra),
            Variant::new("fair", Policy::Fair, e, c, w).with(extra),
        ]
    };
    match sweep {
        Sweep::Rate => [5_000u64, 20_000, 80_000, 320_000]
            .iter()
            .map(|&r| Point {
                x: r as f64,
                label: r.to_string(),
                variants: trio(workload, executors, cores, &format!("stream.rate={r}")),
            })
            .collect(),
        Sweep::Interval => [50u64, 200, 1000]
            .iter()
            .map(|&ms| Point {
                x: ms as f64,
                label: format!("{ms}"),
                variants: trio(
                    workload,
                    executors,
                    cores,
                    &format!("jobs.stream.interval_ms={ms}"),
                ),
            })
            .collect(),
        Sweep::TaskLength => [1u64, 4, 16, 32]
            .iter()
            .map(|&m| {
                let kv = format!("batch.records={}", m * 1_000_000);
                Point {
                    x: m as f64,
                    label: format!("{m}M"),
                    variants: vec![
                        Variant::new("neptune-lma", Policy::Neptune, executors, cores, workload)
                            .with(&kv),
                        Variant::new("fifo", Policy::Fifo, executors, cores, workload).with(&kv),
                        Variant::new("kill", Policy::Kill, executors, cores, workload).with(&kv),
                    ],
                }
            })
            .collect(),
        Sweep::Topology => [(1u32, 2u32), (2, 1), (2, 2), (4, 1)]
            .iter()
            .enumerate()
            .map(|(i, &(e, c))| {
                let mut variants = trio(workload, e, c, "seed=42");
                variants.truncate(2);
                variants.push(
                    Variant::new("stream-alone", Policy::Neptune, e, c, workload)
                        .with("batch.tasks=0"),
                );
                Point {
                    x: i as f64,
                    label: format!("{e}x{c}"),
                    variants,
                }
            })
            .collect(),
        Sweep::Memory => [0u64, 256]
            .iter()
            .map(|&mb| {
                let (e, c) = (executors.max(2), 1);
                let kv = format!("batch.retain_mb={mb}");
                let placed = |p: &str| {
                    Variant::new(&format!("neptune-{p}"), Policy::Neptune, e, c, workload)
                        .with(&kv)
                        .with("batch.retain_every=2")
                        .with(&format!("scheduler.placement={p}"))
                };
                Point {
                    x: mb as f64,
                    label: format!("{mb}"),
                    variants: vec![placed("lma"), placed("lb"), placed("random")],
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_and_both_baselines_are_compared() {
        let v = policy_variants(1, 2, &base_workload());
        let labels: Vec<_> = v.iter().map(|v| v.label.as_str()).collect();
        assert_eq!(labels.len(), 9);
        for p in [
            "neptune-lma",
            "fifo",
            "fair",
            "kill",
            "static",
            "stream-alone",
        ] {
            assert!(labels.contains(&p), "{p}");
        }
        let st = v.iter().find(|v| v.policy == Policy::Static).unwrap();
        assert_eq!(
            (st.executors, st.cores),
            (2, 1),
            "static keeps the total cores"
        );
        let alone = v.iter().find(|v| v.label == "stream-alone").unwrap();
        assert_eq!(alone.set.last().unwrap(), "batch.tasks=0");
    }

    #[test]
    fn a_latency_target_reaches_every_run_and_adds_the_slo_aware_variant() {
        let mut v = policy_variants(1, 2, &base_workload());
        with_slo(&mut v, 25);
        assert_eq!(v.len(), 11);
        let target = "jobs.stream.latency_target_ms=25".to_string();
        for v in &v {
            assert_eq!(
                v.set.contains(&target),
                v.label != "batch-alone",
                "{}: a target where there is a stream job",
                v.label
            );
        }
        let slo = v.iter().find(|v| v.label == "neptune-slo").unwrap();
        assert_eq!(
            (slo.policy, slo.executors, slo.cores),
            (Policy::Neptune, 1, 2)
        );
        assert!(slo.set.contains(&"scheduler.slo_aware=true".to_string()));
        assert!(slo.set.contains(&"scheduler.placement=lma".to_string()));
        let hold = v.iter().find(|v| v.label == "neptune-slo-hold").unwrap();
        assert_eq!(hold.set.last().unwrap(), "scheduler.slo_lead_us=0");
    }

    #[test]
    fn every_sweep_has_points_with_variants() {
        for s in [
            Sweep::Rate,
            Sweep::Interval,
            Sweep::TaskLength,
            Sweep::Topology,
            Sweep::Memory,
        ] {
            let pts = sweep_points(s, 1, 2, &base_workload());
            assert!(pts.len() >= 2, "{s:?}");
            assert!(pts.iter().all(|p| !p.variants.is_empty()), "{s:?}");
        }
    }
}
