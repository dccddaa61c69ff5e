//! `neptune local`'s cluster shape when `--executors` or `--cores` is not given: as many busy
//! task workers as the machine has CPUs, never more.
//!
//! Why not the settings' defaults (2 executors × 2 cores): they are the Kubernetes defaults
//! (`spec.executor.replicas`, `spec.executor.cores`), where every executor is a pod with its own
//! CPU request. On one machine they put 4 busy task workers on however many CPUs there are; on
//! 2 CPUs, batch workers then preempt stream tasks at the kernel's whim and the measured stream
//! p99 and suspend latency are the oversubscription's, not the engine's (issue 10: suspend p99
//! 5.4 ms under 2 × 2 against 0.2–0.7 ms under 1 × 2). So local resolves its own shape from the
//! CPU count, the shared defaults stay as they are, and explicit flags always win.
//!
//! The rule, a pure function of the CPU count ([`choose`]):
//! - task workers: one per CPU on 1 or 2 CPUs; from 3 CPUs on, one CPU is left for the driver,
//!   the executors' RPC threads and the block servers (they are mostly idle, which is why 2
//!   CPUs keep both for tasks: a single slot would serialise stream and batch entirely);
//! - executors: one, or two once there are 4 workers to share (so the app runs distributed, as
//!   it will on a cluster: shuffles between processes, placement choosing), and never fewer
//!   than the policy needs (`static`: its stream-only executors plus one for batch);
//! - cores: the workers divided among the executors (at least one).

/// A resolved shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Executor processes.
    pub executors: u32,
    /// Task slots per executor.
    pub cores: u32,
    /// What was chosen and why, for the user (`None` when both were given).
    pub why: Option<String>,
}

/// Task workers for `cpus` CPUs: see the module doc.
pub fn workers(cpus: usize) -> u32 {
    let cpus = u32::try_from(cpus.max(1)).unwrap_or(u32::MAX);
    if cpus <= 2 { cpus } else { cpus - 1 }
}

/// The shape for `cpus` CPUs, given the flags (`None`: not given) and the fewest executors the
/// policy works with. Results stay within the flags' ranges (cores 1–256, executors 1–1000).
pub fn choose(
    cpus: usize,
    executors: Option<u32>,
    cores: Option<u32>,
    min_executors: u32,
) -> Shape {
    const MAX_CORES: u32 = 256;
    const MAX_EXECUTORS: u32 = 1000;
    let w = workers(cpus);
    let min_e = min_executors.clamp(1, MAX_EXECUTORS);
    let (e, c) = match (executors, cores) {
        (Some(e), Some(c)) => {
            return Shape {
                executors: e,
                cores: c,
                why: None,
            };
        }
        (Some(e), None) => (e, (w / e.max(1)).clamp(1, MAX_CORES)),
        (None, Some(c)) => ((w / c.max(1)).clamp(min_e, MAX_EXECUTORS), c),
        (None, None) => {
            let e = if w >= 4 { 2 } else { 1 }.max(min_e);
            (e, (w / e).clamp(1, MAX_CORES))
        }
    };
    let total = u64::from(e) * u64::from(c);
    let mut why = format!(
        "{e} executor{} x {c} core{} = {total} task worker{} on {cpus} CPU{} (auto: one busy \
         worker per CPU{}",
        plural(e),
        plural(c),
        plural_u64(total),
        plural_u64(cpus as u64),
        if cpus > 2 {
            ", one CPU left for the driver and RPC threads"
        } else {
            ""
        }
    );
    if min_e > 1 && e == min_e {
        why += &format!("; the policy needs {min_e} executors");
    }
    why += "; --executors and --cores choose)";
    if total > cpus as u64 {
        why += " - more task workers than CPUs: latency figures include the oversubscription";
    }
    Shape {
        executors: e,
        cores: c,
        why: Some(why),
    }
}

fn plural(n: u32) -> &'static str {
    plural_u64(u64::from(n))
}

fn plural_u64(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(cpus: usize, e: Option<u32>, c: Option<u32>, min: u32) -> (u32, u32) {
        let s = choose(cpus, e, c, min);
        (s.executors, s.cores)
    }

    #[test]
    fn no_more_busy_workers_than_cpus() {
        assert_eq!(shape(1, None, None, 1), (1, 1));
        assert_eq!(shape(2, None, None, 1), (1, 2));
        assert_eq!(shape(3, None, None, 1), (1, 2));
        assert_eq!(shape(4, None, None, 1), (1, 3));
        assert_eq!(shape(5, None, None, 1), (2, 2));
        assert_eq!(shape(8, None, None, 1), (2, 3));
        assert_eq!(shape(64, None, None, 1), (2, 31));
        for cpus in 1..=128 {
            let (e, c) = shape(cpus, None, None, 1);
            assert!((e * c) as usize <= cpus.max(1), "{cpus} CPUs: {e} x {c}");
            assert!(e >= 1 && c >= 1);
        }
    }

    #[test]
    fn the_policy_minimum_and_explicit_flags_win() {
        // `static` needs a stream-only executor and one for batch.
        assert_eq!(shape(2, None, None, 2), (2, 1));
        let s = choose(2, None, None, 2);
        assert!(s.why.unwrap().contains("the policy needs 2 executors"));
        // On one CPU that is more workers than CPUs, and it says so.
        let s = choose(1, None, None, 2);
        assert_eq!((s.executors, s.cores), (2, 1));
        assert!(s.why.unwrap().contains("more task workers than CPUs"));
        // Both flags: taken as they are, nothing to explain.
        let s = choose(2, Some(2), Some(2), 1);
        assert_eq!((s.executors, s.cores, s.why), (2, 2, None));
        // One flag: the other fills the CPUs.
        assert_eq!(shape(8, Some(7), None, 1), (7, 1));
        assert_eq!(shape(2, Some(4), None, 1), (4, 1));
        assert_eq!(shape(8, None, Some(2), 1), (3, 2));
        assert_eq!(shape(2, None, Some(4), 1), (1, 4));
        assert_eq!(shape(2, None, Some(4), 3), (3, 4));
    }

    #[test]
    fn the_explanation_names_the_shape_and_the_cpus() {
        let why = choose(2, None, None, 1).why.unwrap();
        assert!(
            why.starts_with("1 executor x 2 cores = 2 task workers on 2 CPUs (auto"),
            "{why}"
        );
        assert!(why.contains("--executors and --cores choose"), "{why}");
        let why = choose(8, None, None, 1).why.unwrap();
        assert!(why.contains("one CPU left for the driver"), "{why}");
    }
}
