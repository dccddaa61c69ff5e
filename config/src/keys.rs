//! The engine's settings: cluster shape, scheduler, heartbeats, per-job overrides. Apps declare
//! their own keys beside their code.
//!
//! A range changed here changes the CLI, the driver, the CRD (regenerate it with `crdgen`; CI
//! fails on drift) and `docs/config.md` (regenerate with `neptune config --markdown`; a test fails
//! on drift).

use crate::choice::{JobKind, Placement, Policy};
use crate::setting::{Bytes, Choice, Describe, Flag, Meta, UInt};

const MS_PER_HOUR: u64 = 3_600_000;

/// Executors of an app (`neptune local`/`driver --executors`, `spec.executor.replicas`). Scaling
/// to zero is `spec.suspend`, not zero replicas.
pub static EXECUTORS: UInt = UInt::new(
    Meta::flag_only("--executors", "Executor processes (pods) of the app.")
        .crd("spec.executor.replicas"),
    1,
    1000,
)
.default(2);

/// Task slots per executor (`--cores`, `spec.executor.cores`).
pub static CORES: UInt = UInt::new(
    Meta::flag_only(
        "--cores",
        "Task slots per executor (one `may` worker thread each).",
    )
    .crd("spec.executor.cores"),
    1,
    256,
)
.default(2);

/// Memory budget per executor (`--memory`, `spec.executor.memory`).
pub static MEMORY: Bytes = Bytes::new(
    Meta::flag_only(
        "--memory",
        "Memory budget per executor: shuffle buffers spill past it, receivers buffer 10 % of it.",
    )
    .crd("spec.executor.memory"),
    16 << 20,
    1 << 40,
)
.default(1 << 30);

/// Scheduling policy.
pub static POLICY: Choice<Policy> = Choice::new(
    Meta::new(
        "scheduler.policy",
        "Scheduling policy; `--policy` sets it too (both given: they must agree). A switch to or from `static` needs a restart.",
    )
    .flag("--policy")
    .crd("spec.scheduling.policy")
    .live(),
    Policy::Neptune,
);

/// Stream task placement.
pub static PLACEMENT: Choice<Placement> = Choice::new(
    Meta::new(
        "scheduler.placement",
        "Where stream tasks go (and so which batch tasks pause).",
    )
    .crd("spec.scheduling.placement")
    .live(),
    Placement::Lma,
);

/// Anti-starvation: preemptions after which a task is protected.
pub static MAX_SUSPENSIONS: UInt = UInt::new(
    Meta::new(
        "scheduler.max_suspensions",
        "A batch task preempted more often than this runs unpreemptible for `scheduler.quantum_ms` after each resume (anti-starvation).",
    )
    .crd("spec.scheduling.maxSuspensions")
    .live(),
    0,
    1_000_000,
)
.default(8);

/// Anti-starvation protection period.
pub static QUANTUM_MS: UInt = UInt::new(
    Meta::new(
        "scheduler.quantum_ms",
        "Anti-starvation quantum: how long a task past `scheduler.max_suspensions` runs unpreemptible after each resume.",
    )
    .crd("spec.scheduling.quantumMs")
    .live(),
    1,
    MS_PER_HOUR,
)
.default(1000)
.unit("ms");

/// `fair` policy: weight of the stream pool.
pub static FAIR_WEIGHT_STREAM: UInt = UInt::new(
    Meta::new(
        "scheduler.fair_weights.stream",
        "`fair` policy: weight of the stream pool's share of running tasks.",
    ),
    1,
    1000,
)
.default(1);

/// `fair` policy: weight of the batch pool.
pub static FAIR_WEIGHT_BATCH: UInt = UInt::new(
    Meta::new(
        "scheduler.fair_weights.batch",
        "`fair` policy: weight of the batch pool's share of running tasks.",
    ),
    1,
    1000,
)
.default(1);

/// `static` policy: stream-only executors.
pub static STATIC_STREAM_EXECUTORS: UInt = UInt::new(
    Meta::new(
        "scheduler.static_stream_executors",
        "`static` policy: executors that run only stream tasks (must leave at least one for batch).",
    )
    .crd("spec.scheduling.staticStreamExecutors"),
    1,
    999,
)
.default(1);

/// LMA's heartbeat window.
pub static METRICS_WINDOW: UInt = UInt::new(
    Meta::new(
        "scheduler.metrics_window",
        "Heartbeats in the sliding window LMA reads memory pressure from.",
    ),
    1,
    1000,
)
.default(10);

/// Task attempt limit.
pub static MAX_TASK_FAILURES: UInt = UInt::new(
    Meta::new(
        "scheduler.max_task_failures",
        "The task failure that reaches this count fails the job.",
    ),
    1,
    100,
)
.default(4);

/// SLO-aware mode of the preempting policies.
pub static SLO_AWARE: Flag = Flag::new(
    Meta::new(
        "scheduler.slo_aware",
        "`neptune`/`kill`, for stream jobs with a `jobs.<job>.latency_target_ms`: free the cores each micro-batch takes just before it is due (see `scheduler.slo_lead_us`); with `scheduler.slo_lead_us=0` instead, when a job's recent p99 passes 0.8 x its target, hold a micro-batch's worth of cores (never an executor's last) back from batch work on the executors its tasks run on, until the p99 is under 0.5 x the target after `scheduler.slo_window_ms`.",
    ),
    false,
);

/// The SLO-aware mode's recent window.
pub static SLO_WINDOW_MS: UInt = UInt::new(
    Meta::new(
        "scheduler.slo_window_ms",
        "SLO-aware mode: the recent window a stream job's p99 is read over, how long cores stay held at least, and how long a stream job's executor stays guarded after its last task there.",
    ),
    100,
    MS_PER_HOUR,
)
.default(5000)
.unit("ms");

/// The SLO-aware mode's margin when it acts ahead of a micro-batch.
pub static SLO_LEAD_US: UInt = UInt::new(
    Meta::new(
        "scheduler.slo_lead_us",
        "SLO-aware mode: free the cores a stream job's next micro-batch takes this margin plus the executors' measured suspend p95 before it is due (suspending the batch tasks on them), and give them back once its tasks launched (or this margin plus that p95 after it was due); 0: do not act ahead, only hold cores while the recent p99 nears the target.",
    ),
    0,
    100_000,
)
.default(500)
.unit("us");

/// Seed of the `random` placement.
pub static SEED: UInt = UInt::new(
    Meta::new("scheduler.seed", "Seed of the `random` placement."),
    0,
    u64::MAX,
)
.default(0);

/// Heartbeat interval executors are told to use.
pub static HEARTBEAT_INTERVAL_MS: UInt = UInt::new(
    Meta::new(
        "heartbeat.interval_ms",
        "How often executors report memory and spills to the driver.",
    )
    .crd("spec.scheduling.heartbeatIntervalMs"),
    10,
    60_000,
)
.default(250)
.unit("ms");

/// Silence after which an executor is dropped.
pub static HEARTBEAT_TIMEOUT_MS: UInt = UInt::new(
    Meta::new(
        "heartbeat.timeout_ms",
        "An executor silent this long is dropped and its tasks re-run elsewhere; at least twice `heartbeat.interval_ms`.",
    )
    .crd("spec.scheduling.heartbeatTimeoutMs")
    .default_doc("8 × heartbeat.interval_ms, at least 2000"),
    20,
    600_000,
)
.unit("ms");

/// Driver silence after which an executor ends its session and exits non-zero.
pub static DRIVER_TIMEOUT_MS: UInt = UInt::new(
    Meta::new(
        "heartbeat.driver_timeout_ms",
        "An executor that hears nothing from its driver this long (the driver answers every heartbeat) ends its session and exits non-zero, so Kubernetes restarts it; at least 3 × `heartbeat.interval_ms`.",
    )
    .default_doc("12 × heartbeat.interval_ms, at least 5000"),
    30,
    600_000,
)
.unit("ms");

/// Registrations an executor the driver dropped tries before it exits non-zero.
pub static REJOIN_ATTEMPTS: UInt = UInt::new(
    Meta::new(
        "executor.rejoin_attempts",
        "An executor the driver dropped for missed heartbeats registers again (a new session) up to this many times per drop, with exponential back-off, then exits non-zero; 0: exit non-zero at once.",
    ),
    0,
    100,
)
.default(5);

/// OS priority of the executors' task worker threads.
pub static WORKER_NICE: UInt = UInt::new(
    Meta::new(
        "executor.worker_nice",
        "Nice value the executor gives its task worker threads (the may workers running task code); its control threads (driver session, block server, receivers) keep the process's own, so on a busy machine they preempt batch work at once instead of waiting for a CPU share. 0: no change.",
    ),
    0,
    19,
)
.default(10);

/// Time with no registered executor, while jobs have work, after which the app fails.
pub static NO_EXECUTORS_TIMEOUT_MS: UInt = UInt::new(
    Meta::new(
        "driver.no_executors_timeout_ms",
        "The app fails (the driver exits non-zero) when jobs have work and no executor was registered for this long.",
    ),
    100,
    24 * MS_PER_HOUR,
)
.default(300_000)
.unit("ms");

/// Time a launch may go unacknowledged before it is re-launched elsewhere.
pub static LAUNCH_ACK_TIMEOUT_MS: UInt = UInt::new(
    Meta::new(
        "driver.launch_ack_timeout_ms",
        "A task launch the executor has not acknowledged (its first update for that attempt) within this long is re-launched elsewhere, and that executor is suspect: no new launches until it acknowledges something again.",
    ),
    10,
    MS_PER_HOUR,
)
.default(30_000)
.unit("ms");

/// `neptune local`: restarts of one executor process within the restart window.
pub static LOCAL_MAX_RESTARTS: UInt = UInt::new(
    Meta::new(
        "local.max_executor_restarts",
        "`neptune local`: an executor process that exits is restarted (exponential back-off) at most this many times within `local.restart_window_ms`; past that the run fails.",
    ),
    0,
    1000,
)
.default(3);

/// `neptune local`: the window of `local.max_executor_restarts`.
pub static LOCAL_RESTART_WINDOW_MS: UInt = UInt::new(
    Meta::new(
        "local.restart_window_ms",
        "`neptune local`: the window over which `local.max_executor_restarts` counts an executor's restarts.",
    ),
    1,
    24 * MS_PER_HOUR,
)
.default(60_000)
.unit("ms");

/// Wait for the expected executors before jobs start anyway.
pub static START_TIMEOUT_MS: UInt = UInt::new(
    Meta::new(
        "driver.start_timeout_ms",
        "Jobs start when `--executors` executors registered, or after this long with those that did.",
    ),
    0,
    MS_PER_HOUR,
)
.default(60_000)
.unit("ms");

/// Largest gRPC message between driver and executors (either way).
pub static GRPC_MAX_MESSAGE_BYTES: Bytes = Bytes::new(
    Meta::new(
        "grpc.max_message_bytes",
        "Largest gRPC message between the driver and its executors, either way (task results, broadcasts); the driver tells executors at registration.",
    ),
    1 << 20,
    1 << 30,
)
.default(256 << 20);

/// Fetch failures of one map output before its map task re-runs.
pub static MAX_FETCH_FAILURES: UInt = UInt::new(
    Meta::new(
        "driver.max_fetch_failures",
        "Reduce tasks that failed to fetch one map task's output before the driver re-runs that map task.",
    ),
    1,
    1000,
)
.default(4);

/// Largest shuffle block (or receiver cut) a task fetches.
pub static MAX_BLOCK_BYTES: Bytes = Bytes::new(
    Meta::new(
        "shuffle.max_block_bytes",
        "Largest shuffle block (or receiver cut) a task fetches; a peer announcing more is refused before anything is allocated.",
    ),
    1 << 20,
    1 << 40,
)
.default(1 << 30);

/// Warm-up of latency statistics: time after a stream job's first micro-batch.
pub static STATS_WARMUP_MS: UInt = UInt::new(
    Meta::new(
        "stats.warmup_ms",
        "Micro-batches committed less than this long after a stream job's first one are warm-up: reported apart (`warmup_latency_ms`), left out of the steady-state latency percentiles.",
    ),
    0,
    MS_PER_HOUR,
)
.default(1000)
.unit("ms");

/// Warm-up of latency statistics: first micro-batches.
pub static STATS_WARMUP_RUNS: UInt = UInt::new(
    Meta::new(
        "stats.warmup_runs",
        "A stream job's first this many micro-batches are warm-up too, however long they took (0: only `stats.warmup_ms` decides).",
    ),
    0,
    1_000_000_000,
)
.default(0);

/// Per-job kind override.
pub static JOB_KIND: Choice<JobKind> = Choice::new(
    Meta::new(
        "jobs.<job>.kind",
        "Run the job as a stream or a batch job, whatever its code declares.",
    )
    .crd("spec.jobs.<job>.kind")
    .default_doc("as declared by the app"),
    JobKind::Batch,
);

/// Per-job micro-batch interval.
pub static JOB_INTERVAL_MS: UInt = UInt::new(
    Meta::new(
        "jobs.<job>.interval_ms",
        "Micro-batch interval of a stream job (a batch job's run follows its predecessor).",
    )
    .crd("spec.jobs.<job>.intervalMs")
    .default_doc("as declared by the app"),
    1,
    MS_PER_HOUR,
)
.unit("ms");

/// Per-job run limit.
pub static JOB_RUNS: UInt = UInt::new(
    Meta::new(
        "jobs.<job>.runs",
        "Stop the job after this many runs (0: never; the app finishes when every job did).",
    ),
    0,
    u64::MAX,
)
.default(0);

/// Per-job cap on micro-batches in flight.
pub static JOB_MAX_IN_FLIGHT: UInt = UInt::new(
    Meta::new(
        "jobs.<job>.max_in_flight",
        "Micro-batches of a stream job in flight at once. With that many begun and not committed, the next due ones wait and begin as earlier ones commit; their latency still counts from their due times. A job that cannot keep up falls behind (`/status` `waiting_runs`) with bounded driver memory.",
    )
    .crd("spec.jobs.<job>.maxInFlight"),
    1,
    100_000,
)
.default(DEFAULT_MAX_IN_FLIGHT);

/// Default of [`JOB_MAX_IN_FLIGHT`]: high enough that a stream job queued behind batch work
/// under `fifo` (seconds of backlog at a 40 ms interval) is not throttled, low enough that a
/// job's runs in flight stay a bounded amount of driver memory.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 128;

/// Per-job latency target.
pub static JOB_LATENCY_TARGET_MS: UInt = UInt::new(
    Meta::new(
        "jobs.<job>.latency_target_ms",
        "Latency target of a stream job (micro-batch due → committed).",
    )
    .crd("spec.jobs.<job>.latencyTargetMs"),
    1,
    MS_PER_HOUR,
)
.unit("ms");

/// Every engine setting, in the order of the reference.
pub static ENGINE: &[&dyn Describe] = &[
    &EXECUTORS,
    &CORES,
    &MEMORY,
    &POLICY,
    &PLACEMENT,
    &MAX_SUSPENSIONS,
    &QUANTUM_MS,
    &FAIR_WEIGHT_STREAM,
    &FAIR_WEIGHT_BATCH,
    &STATIC_STREAM_EXECUTORS,
    &METRICS_WINDOW,
    &MAX_TASK_FAILURES,
    &SLO_AWARE,
    &SLO_WINDOW_MS,
    &SLO_LEAD_US,
    &SEED,
    &HEARTBEAT_INTERVAL_MS,
    &HEARTBEAT_TIMEOUT_MS,
    &DRIVER_TIMEOUT_MS,
    &REJOIN_ATTEMPTS,
    &WORKER_NICE,
    &START_TIMEOUT_MS,
    &NO_EXECUTORS_TIMEOUT_MS,
    &LAUNCH_ACK_TIMEOUT_MS,
    &LOCAL_MAX_RESTARTS,
    &LOCAL_RESTART_WINDOW_MS,
    &GRPC_MAX_MESSAGE_BYTES,
    &MAX_FETCH_FAILURES,
    &MAX_BLOCK_BYTES,
    &STATS_WARMUP_MS,
    &STATS_WARMUP_RUNS,
    &JOB_KIND,
    &JOB_INTERVAL_MS,
    &JOB_RUNS,
    &JOB_MAX_IN_FLIGHT,
    &JOB_LATENCY_TARGET_MS,
];

/// The engine setting a `--set` key belongs to (`jobs.score.interval_ms` →
/// [`JOB_INTERVAL_MS`]).
pub fn engine_setting(key: &str) -> Option<&'static dyn Describe> {
    ENGINE.iter().copied().find(|d| {
        let m = d.meta();
        m.set && matches_pattern(m.key, key)
    })
}

/// Whether `key` is `pattern` with `<job>` standing for one job name.
fn matches_pattern(pattern: &str, key: &str) -> bool {
    match pattern.split_once("<job>") {
        None => pattern == key,
        Some((pre, post)) => {
            key.len() > pre.len() + post.len()
                && key.starts_with(pre)
                && key.ends_with(post)
                && !key[pre.len()..key.len() - post.len()].contains('.')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for d in ENGINE {
            let m = d.meta();
            assert!(seen.insert(m.key), "{} twice", m.key);
            assert!(m.doc.ends_with('.'), "{}: doc must be a sentence", m.key);
            if let Some((lo, hi)) = d.bounds() {
                assert!(lo <= hi, "{}", m.key);
            }
        }
    }

    #[test]
    fn job_keys_resolve_to_their_pattern() {
        assert_eq!(
            engine_setting("jobs.score.interval_ms").map(|d| d.meta().key),
            Some("jobs.<job>.interval_ms")
        );
        assert!(engine_setting("jobs.a.b.interval_ms").is_none());
        assert!(engine_setting("jobs..interval_ms").is_none());
        assert_eq!(
            engine_setting("scheduler.quantum_ms").map(|d| d.meta().key),
            Some("scheduler.quantum_ms")
        );
        assert!(
            engine_setting("--cores").is_none(),
            "flag-only settings have no --set key"
        );
    }
}
