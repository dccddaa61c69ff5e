//! The driver's status document (`/status`, live progress, the final report's source).

use crate::stats::Percentiles;
use serde::{Deserialize, Serialize};

/// One executor as the driver sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExecutorStatus {
    /// Executor id.
    pub id: String,
    /// Task slots.
    pub cores: u32,
    /// Tasks running.
    pub running: usize,
    /// Tasks suspended.
    pub suspended: usize,
    /// Memory in use (last heartbeat), bytes.
    pub memory_used_bytes: u64,
    /// Memory budget, bytes.
    pub memory_limit_bytes: u64,
    /// HTTP address of the executor's `/metrics`.
    pub http: String,
    /// Address of the executor's block server (shuffle blocks, receiver cuts), as advertised to
    /// other executors.
    pub blocks: String,
    /// It left a launch unacknowledged for `driver.launch_ack_timeout_ms`: it gets no new work
    /// until it acknowledges something again (or is dropped).
    pub suspect: bool,
}

/// The files a run read (its input snapshot, see `neptune_core::source_snapshot`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InputSnapshot {
    /// Files listed when the run began.
    pub files: u64,
    /// Their bytes at listing time: what the run's tasks read.
    pub bytes: u64,
}

/// What a job has done: the fields the driver's `/status` ([`JobSummary`]) and the run report
/// of `neptune local --report` share, flattened into each (the JSON lists them as the job's own
/// fields).
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobProgress {
    /// Job name.
    pub name: String,
    /// `stream` or `batch`.
    pub kind: String,
    /// Runs committed (micro-batches or epochs).
    pub runs: u64,
    /// Records read by successful tasks.
    pub records: u64,
    /// Records per second since the jobs started (`records` over the time since the start).
    pub records_per_sec: f64,
    /// Records processed by the job's tasks by the executors' own counters, as of each
    /// executor's last heartbeat: succeeded tasks plus what running and suspended tasks have
    /// processed so far (killed and failed tasks' work left out). Unlike `records` it is not
    /// quantised to whole tasks and includes work not finished yet.
    pub records_processed: u64,
    /// `records_processed` per second: per executor over the time from the start to its last
    /// heartbeat, summed. What `neptune bench` reports as batch throughput.
    pub records_processed_per_sec: f64,
    /// Micro-batch end-to-end latency (stream jobs; zeros for batch jobs), milliseconds, in the
    /// steady state: the warm-up micro-batches (`stats.warmup_ms`, `stats.warmup_runs`) are
    /// left out.
    pub latency_ms: Percentiles,
    /// Latency of the warm-up micro-batches, milliseconds.
    pub warmup_latency_ms: Percentiles,
    /// The stream job's latency target (`jobs.<job>.latency_target_ms`), milliseconds; absent
    /// for jobs without one (and for batch jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_target_ms: Option<f64>,
    /// Fraction (0 to 1) of the steady-state micro-batches (`latency_ms.count`; warm-up left
    /// out) committed within the target. Absent without a target, and before the first
    /// steady-state micro-batch: never a 0 or 100 % that nothing measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<f64>,
    /// Steady-state micro-batches committed within the target (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_within: Option<u64>,
    /// Where the steady-state micro-batches' time went (stream jobs): per hop of the path, in
    /// path order, its percentiles in milliseconds (the hops of each micro-batch's critical
    /// task; see `crate::stats::hops`). Empty (and absent from the JSON) for batch jobs and
    /// before the first micro-batch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latency_breakdown_ms: Vec<crate::stats::HopSummary>,
    /// How long records took from their source to their micro-batch's commit (stream jobs
    /// whose records carry source timestamps: Kafka's produce time), milliseconds; absent for
    /// other jobs and before the first such micro-batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_to_commit_ms: Option<SourceToCommit>,
    /// Result of the last committed run.
    pub result: serde_json::Value,
    /// Malformed input records skipped (policy `skip`).
    pub malformed_skipped: u64,
    /// Shuffle bytes written by the job's map tasks.
    pub shuffle_write_bytes: u64,
    /// Input snapshot of the last committed run (jobs reading file sources): what its result
    /// counts, as listed when the run began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<InputSnapshot>,
}

/// Source → commit latency of a stream job's micro-batches, milliseconds, by wall clock (on one
/// host exact; across hosts off by their clocks' skew). It includes what the micro-batch latency
/// (`latency_ms`, due → committed) does not: the time a record waits for its micro-batch, and any
/// backlog.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceToCommit {
    /// Per steady-state micro-batch, from its oldest record's timestamp: the longest any record
    /// waited.
    pub oldest: Percentiles,
    /// Per steady-state micro-batch, from its mean record timestamp.
    pub mean: Percentiles,
    /// Warm-up micro-batches, from the oldest record's timestamp.
    pub warmup_oldest: Percentiles,
}

/// One job as the driver's `/status` shows it (the operator condenses it into the CRD's
/// `JobStatus`; the JSON field names here and in [`JobProgress`] are the contract it parses).
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobSummary {
    /// What the job has done.
    #[serde(flatten)]
    pub progress: JobProgress,
    /// Under `scheduler.slo_aware`, for a job with a target: whether the scheduler holds cores
    /// back from batch work for it now (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_guard: Option<bool>,
    /// Runs in flight.
    pub active_runs: usize,
    /// Stream micro-batches due and not begun because `jobs.<job>.max_in_flight` are in flight:
    /// how far the job is behind (0 while it keeps up).
    pub waiting_runs: u64,
    /// (seconds since start, latency ms) of the last committed micro-batches, at most
    /// [`crate::stats::RECENT_POINTS`] (final status only; not in `/status`).
    #[serde(skip)]
    pub latency_series: Vec<(f64, f64)>,
    /// Why the job failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// Cluster-wide counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Suspensions confirmed by executors.
    pub suspensions: u64,
    /// Resumptions confirmed by executors.
    pub resumptions: u64,
    /// Tasks killed.
    pub kills: u64,
    /// Records processed by killed tasks (work lost).
    pub records_lost: u64,
    /// Executor-measured suspend latency (request received → parked), microseconds.
    pub suspend_latency_us: Percentiles,
    /// Executors lost.
    pub executors_lost: u64,
    /// Task launches not acknowledged within `driver.launch_ack_timeout_ms`.
    pub launch_ack_timeouts: u64,
    /// Tasks queued, waiting for a slot.
    pub queued: usize,
    /// Suspensions by the phase the task was in when it parked (`compute`, `shuffle_write`,
    /// `fetch`, `reduce`).
    pub suspensions_by_phase: std::collections::BTreeMap<String, u64>,
    /// Launches of tasks with locality preferences onto a preferred executor.
    pub local_launches: u64,
    /// Launches of tasks with locality preferences onto another executor.
    pub non_local_launches: u64,
    /// Bytes executors spilled to disk (shuffle blocks and aggregation state).
    pub spilled_bytes: u64,
    /// Malformed input records skipped (policy `skip`).
    pub malformed_skipped: u64,
    /// Tasks that failed to fetch shuffle blocks (their inputs were recomputed).
    pub fetch_failures: u64,
    /// Map tasks run again because their outputs were lost.
    pub map_outputs_recomputed: u64,
    /// SLO-aware mode acting ahead: slots reserved for imminent micro-batches (one per
    /// executor and announcement).
    pub slo_reservations: u64,
    /// Of those, reservations that ended at their deadline (the micro-batch did not launch in
    /// time) or because the mode stopped acting.
    pub slo_reservations_expired: u64,
    /// Batch tasks suspended ahead of a micro-batch (standalone suspensions; they are also in
    /// `suspensions` once confirmed).
    pub slo_ahead_suspensions: u64,
    /// Heap bytes the driver's latency statistics hold (histograms, recent windows): constant
    /// once every stream job's window is full, however long the app runs.
    pub stats_bytes: u64,
}

/// Everything `/status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// App name.
    pub app: String,
    /// Scheduling policy in force (it may have changed live since the start).
    pub policy: String,
    /// Placement for stream tasks (neptune and kill policies), in force.
    pub placement: String,
    /// `scheduler.max_suspensions` in force.
    pub max_suspensions: u32,
    /// `scheduler.quantum_ms` in force.
    pub quantum_ms: u64,
    /// Executors expected.
    pub executors_expected: usize,
    /// Cluster transport: `mtls` (mutual TLS) or `insecure`.
    pub transport: String,
    /// Whether jobs have started (enough executors registered, or the start timeout passed).
    /// Not the driver's readiness: `/readyz` is ready as soon as it serves.
    pub ready: bool,
    /// Seconds since jobs started.
    pub elapsed_s: f64,
    /// Whether the app has finished (every job committed all its runs, or failed).
    pub finished: bool,
    /// First job failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Executors.
    pub executors: Vec<ExecutorStatus>,
    /// Jobs.
    pub jobs: Vec<JobSummary>,
    /// Stream receivers (socket sources) and where they run.
    pub receivers: Vec<ReceiverStatus>,
    /// Kafka sources: committed and latest offsets, lag per partition, broker errors.
    pub kafka: Vec<neptune_core::kafka::SourceStatus>,
    /// Totals.
    pub totals: Totals,
}

/// One stream receiver.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReceiverStatus {
    /// Source name.
    pub name: String,
    /// `host:port` it reads.
    pub addr: String,
    /// Executor it is pinned to (`null` while it has none).
    pub executor: Option<String>,
}

/// The live scheduling settings in force: what `POST /admin/scheduling` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scheduling {
    /// `scheduler.policy`.
    pub policy: String,
    /// `scheduler.placement`.
    pub placement: String,
    /// `scheduler.max_suspensions`.
    pub max_suspensions: u32,
    /// `scheduler.quantum_ms`.
    pub quantum_ms: u64,
}

impl Scheduling {
    /// The values of `cfg`.
    pub fn of(cfg: &crate::scheduler::SchedulerConfig) -> Self {
        Self {
            policy: cfg.policy.as_str().into(),
            placement: cfg.placement.as_str().into(),
            max_suspensions: cfg.max_suspensions,
            quantum_ms: u64::try_from(cfg.quantum.as_millis()).unwrap_or(u64::MAX),
        }
    }
}
