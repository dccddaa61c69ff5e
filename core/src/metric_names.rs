//! Every Prometheus metric name Neptune processes export, in one place.
//!
//! The driver, the executor and the operator register metrics under these names; the Grafana
//! dashboard in the Helm chart may only query names listed in [`ALL`] (a test checks it).
//! Units are base units (seconds, bytes), names pass `promtool check metrics`.
//!
//! Per-job driver series carry the Neptune job name in the label [`JOB_LABEL`] (`neptune_job`),
//! never `job`: Prometheus sets `job` itself (the scrape job) and renames a scraped `job` to
//! `exported_job` unless the scrape honours labels, so a `job` label would not survive plain
//! annotation-based scraping.

/// The label holding the Neptune job name on the driver's per-job series.
pub const JOB_LABEL: &str = "neptune_job";

/// Every label Neptune processes put on their series (histograms add `le`; Prometheus adds the
/// target's labels, e.g. `namespace` and `pod` on Kubernetes).
pub const LABELS: &[&str] = &[
    JOB_LABEL,
    "kind",
    "outcome",
    "phase",
    "executor",
    "source",
    "reason",
    "category",
    "hop",
    "topic",
    "partition",
];

/// Executor: tasks currently running, label `kind`.
pub const EXECUTOR_TASKS_RUNNING: &str = "neptune_executor_tasks_running";
/// Executor: tasks currently suspended (parked coroutines), label `kind`.
pub const EXECUTOR_TASKS_SUSPENDED: &str = "neptune_executor_tasks_suspended";
/// Executor: suspend request received → task parked, histogram in seconds.
pub const EXECUTOR_SUSPEND_LATENCY: &str = "neptune_executor_task_suspend_latency_seconds";
/// Executor: suspensions performed.
pub const EXECUTOR_SUSPENSIONS: &str = "neptune_executor_suspensions_total";
/// Executor: resumptions performed.
pub const EXECUTOR_RESUMPTIONS: &str = "neptune_executor_resumptions_total";
/// Executor: tasks killed.
pub const EXECUTOR_KILLS: &str = "neptune_executor_kills_total";
/// Executor: tasks finished, labels `kind`, `outcome` (`succeeded`, `failed`, `killed`).
pub const EXECUTOR_TASKS_FINISHED: &str = "neptune_executor_tasks_finished_total";
/// Executor: records processed by tasks, label `kind`.
pub const EXECUTOR_RECORDS: &str = "neptune_executor_records_processed_total";
/// Executor: memory in use (process RSS or cgroup), bytes.
pub const EXECUTOR_MEMORY_USED: &str = "neptune_executor_memory_used_bytes";
/// Executor: memory budget (`--memory`), bytes.
pub const EXECUTOR_MEMORY_LIMIT: &str = "neptune_executor_memory_limit_bytes";
/// Executor: bytes spilled to disk.
pub const EXECUTOR_SPILLED: &str = "neptune_executor_spilled_bytes_total";
/// Executor: bytes retained by suspended tasks.
pub const EXECUTOR_SUSPENDED_RETAINED: &str = "neptune_executor_suspended_retained_bytes";
/// Executor: suspensions by the phase the task was in when it parked, label `phase`
/// (`compute`, `shuffle_write`, `fetch`, `reduce`).
pub const EXECUTOR_SUSPENSIONS_BY_PHASE: &str = "neptune_executor_suspensions_by_phase_total";
/// Executor: malformed input records skipped under the `skip` policy.
pub const EXECUTOR_MALFORMED_SKIPPED: &str = "neptune_executor_malformed_records_skipped_total";
/// Executor: tasks failed because shuffle blocks could not be fetched.
pub const EXECUTOR_FETCH_FAILURES: &str = "neptune_executor_fetch_failures_total";
/// Executor: shared-state (broadcast) versions received and stored.
pub const EXECUTOR_BROADCAST_VERSIONS: &str = "neptune_executor_broadcast_versions_total";
/// Executor: broadcast deliveries of a version already held (redundant; expected to stay 0).
pub const EXECUTOR_BROADCAST_DUPLICATES: &str = "neptune_executor_broadcast_duplicates_total";
/// Executor: broadcast versions decoded for tasks (once per version, not per task).
pub const EXECUTOR_BROADCAST_DECODES: &str = "neptune_executor_broadcast_decodes_total";
/// Executor: lines a stream receiver read from its socket, label `source`.
pub const EXECUTOR_RECEIVER_LINES: &str = "neptune_executor_receiver_lines_total";
/// Executor: lines a receiver dropped, labels `source`, `reason` (`not_utf8`, `too_long`).
pub const EXECUTOR_RECEIVER_DROPPED: &str = "neptune_executor_receiver_dropped_lines_total";
/// Executor: bytes a receiver holds (received, not yet released with their run), label `source`.
pub const EXECUTOR_RECEIVER_BUFFERED: &str = "neptune_executor_receiver_buffered_bytes";
/// Executor: 1 while a receiver is connected to its socket, label `source`.
pub const EXECUTOR_RECEIVER_CONNECTED: &str = "neptune_executor_receiver_connected";
/// Executor: task slots (`--cores`).
pub const EXECUTOR_SLOTS: &str = "neptune_executor_slots";

/// Driver: stream micro-batch end-to-end latency (due time → results committed), label
/// `neptune_job`.
pub const DRIVER_STREAM_LATENCY: &str = "neptune_driver_stream_latency_seconds";
/// Driver: stream micro-batch latency from its oldest record's source timestamp (Kafka: produce
/// time) to its results committed, wall clocks, label `neptune_job`; only stream jobs whose
/// records carry timestamps have the series.
pub const DRIVER_STREAM_SOURCE_TO_COMMIT: &str = "neptune_driver_stream_source_to_commit_seconds";
/// Driver: time a stream micro-batch spent in each hop of its path (its critical task's:
/// due → planned → launch sent → executor → update received → committed), histogram in seconds,
/// labels `neptune_job`, `hop` (`trigger`, `upstream`, `schedule`, `network`, `core_wait`,
/// `core_start`, `first_record`, `process`, `commit`; see docs/engine.md, "Latency attribution").
pub const DRIVER_MICROBATCH_HOP: &str = "neptune_driver_microbatch_hop_seconds";
/// Driver: a stream job's latency target (`jobs.<job>.latency_target_ms`), seconds, label
/// `neptune_job`; only stream jobs with a target have the series (the latency alert compares
/// the p99 of [`DRIVER_STREAM_LATENCY`] with it).
pub const DRIVER_STREAM_LATENCY_TARGET: &str = "neptune_driver_stream_latency_target_seconds";
/// Driver: steady-state micro-batches (warm-up left out) of a stream job with a latency target,
/// label `neptune_job`. With [`DRIVER_STREAM_SLO_WITHIN`], attainment over any window:
/// `increase(within[1h]) / increase(microbatches[1h])`. Jobs without a target have no series.
pub const DRIVER_STREAM_SLO_MICROBATCHES: &str = "neptune_driver_stream_slo_microbatches_total";
/// Driver: those of [`DRIVER_STREAM_SLO_MICROBATCHES`] committed within the target.
pub const DRIVER_STREAM_SLO_WITHIN: &str = "neptune_driver_stream_slo_within_total";
/// Driver: 1 while the SLO-aware mode (`scheduler.slo_aware`) holds cores back from batch work
/// for the stream job, else 0, label `neptune_job` (jobs with a target only).
pub const DRIVER_STREAM_SLO_GUARD: &str = "neptune_driver_stream_slo_guard";
/// Driver: micro-batches of a stream job that are due and have not begun because
/// `jobs.<job>.max_in_flight` are in flight, label `neptune_job`: above 0, the job is behind.
pub const DRIVER_STREAM_RUNS_WAITING: &str = "neptune_driver_stream_runs_waiting";
/// Driver: records processed per job, labels `neptune_job`, `kind` (use `rate()` for records/s).
pub const DRIVER_JOB_RECORDS: &str = "neptune_driver_job_records_total";
/// Driver: batch records per second over the last window, label `neptune_job`.
pub const DRIVER_BATCH_RECORDS_PER_SECOND: &str = "neptune_driver_batch_records_per_second";
/// Driver: completed runs (micro-batches or epochs), labels `neptune_job`, `kind`.
pub const DRIVER_JOB_RUNS: &str = "neptune_driver_job_runs_total";
/// Driver: tasks waiting for a slot, label `kind`.
pub const DRIVER_TASKS_QUEUED: &str = "neptune_driver_tasks_queued";
/// Driver: tasks running, label `kind`.
pub const DRIVER_TASKS_RUNNING: &str = "neptune_driver_tasks_running";
/// Driver: tasks suspended, cluster-wide.
pub const DRIVER_TASKS_SUSPENDED: &str = "neptune_driver_tasks_suspended";
/// Driver: time to handle one scheduler event, histogram in seconds.
pub const DRIVER_SCHEDULING_DECISION: &str = "neptune_driver_scheduling_decision_seconds";
/// Driver: executors registered and alive.
pub const DRIVER_EXECUTORS: &str = "neptune_driver_executors_registered";
/// Driver: suspensions confirmed.
pub const DRIVER_SUSPENSIONS: &str = "neptune_driver_suspensions_total";
/// Driver: resumptions confirmed.
pub const DRIVER_RESUMPTIONS: &str = "neptune_driver_resumptions_total";
/// Driver: tasks killed by the `kill` policy.
pub const DRIVER_KILLS: &str = "neptune_driver_kills_total";
/// Driver: executors lost (connection closed or heartbeats missing).
pub const DRIVER_EXECUTORS_LOST: &str = "neptune_driver_executors_lost_total";
/// Driver: task launches not acknowledged within `driver.launch_ack_timeout_ms` (each re-queued
/// its task and made its executor suspect).
pub const DRIVER_LAUNCH_ACK_TIMEOUTS: &str = "neptune_driver_launch_ack_timeouts_total";
/// Driver: executors suspect now (a launch went unacknowledged; no new work until they
/// acknowledge something again).
pub const DRIVER_EXECUTORS_SUSPECT: &str = "neptune_driver_executors_suspect";
/// Driver: task updates ignored because they do not come from the holder of the task's current
/// attempt (or are malformed), label `reason`; never counted in any job total.
pub const DRIVER_REJECTED_UPDATES: &str = "neptune_driver_rejected_updates_total";
/// Driver: registrations refused, label `reason` (`invalid`, `id_in_use`, `too_many`).
pub const DRIVER_REFUSED_REGISTRATIONS: &str = "neptune_driver_refused_registrations_total";
/// Driver: records of a Kafka topic partition not yet committed by a job reading it (latest
/// offset − committed offset), labels `neptune_job`, `topic`, `partition`.
pub const DRIVER_KAFKA_LAG: &str = "neptune_driver_kafka_lag_records";
/// Driver: the offset where a job's next micro-batch starts reading a Kafka topic partition
/// (committed), labels `neptune_job`, `topic`, `partition`.
pub const DRIVER_KAFKA_COMMITTED_OFFSET: &str = "neptune_driver_kafka_committed_offset";
/// Driver: the latest offset (high watermark) of a Kafka topic partition a job reads, as last
/// polled, labels `neptune_job`, `topic`, `partition`.
pub const DRIVER_KAFKA_LATEST_OFFSET: &str = "neptune_driver_kafka_latest_offset";

/// Driver and executor: 1 when cluster connections use mutual TLS, 0 under `--insecure`.
pub const TRANSPORT_TLS: &str = "neptune_transport_tls_enabled";
/// Driver and executor: connections open, label `server` (`grpc`, `http`, `blocks`).
pub const TRANSPORT_CONNECTIONS_OPEN: &str = "neptune_transport_connections_open";
/// Driver and executor: connections the server closed before their peer did, labels `server`,
/// `reason` (`limit`, `evicted`, `handshake_failed`, `handshake_timeout`, `idle_timeout`,
/// `frame_timeout`).
pub const TRANSPORT_CONNECTIONS_CLOSED: &str = "neptune_transport_connections_closed_total";

/// Operator: reconciliations run.
pub const OPERATOR_RECONCILES: &str = "neptune_operator_reconciles_total";
/// Operator: reconcile errors, label `category`.
pub const OPERATOR_RECONCILE_ERRORS: &str = "neptune_operator_reconcile_errors_total";
/// Operator: reconcile duration, histogram in seconds.
pub const OPERATOR_RECONCILE_DURATION: &str = "neptune_operator_reconcile_duration_seconds";
/// Operator: apps by phase, label `phase`.
pub const OPERATOR_APPS: &str = "neptune_operator_apps";
/// Operator: watch (list/watch) errors of the controllers.
pub const OPERATOR_WATCH_ERRORS: &str = "neptune_operator_watch_errors_total";
/// Operator: 1 while this replica holds the leader lease (always 1 without leader election).
pub const OPERATOR_LEADER: &str = "neptune_operator_leader";

/// Every metric name above. Histograms also export `_bucket`, `_sum` and `_count` series.
pub const ALL: &[&str] = &[
    EXECUTOR_TASKS_RUNNING,
    EXECUTOR_TASKS_SUSPENDED,
    EXECUTOR_SUSPEND_LATENCY,
    EXECUTOR_SUSPENSIONS,
    EXECUTOR_RESUMPTIONS,
    EXECUTOR_KILLS,
    EXECUTOR_TASKS_FINISHED,
    EXECUTOR_RECORDS,
    EXECUTOR_MEMORY_USED,
    EXECUTOR_MEMORY_LIMIT,
    EXECUTOR_SPILLED,
    EXECUTOR_SUSPENDED_RETAINED,
    EXECUTOR_SLOTS,
    EXECUTOR_SUSPENSIONS_BY_PHASE,
    EXECUTOR_MALFORMED_SKIPPED,
    EXECUTOR_FETCH_FAILURES,
    EXECUTOR_BROADCAST_VERSIONS,
    EXECUTOR_BROADCAST_DUPLICATES,
    EXECUTOR_BROADCAST_DECODES,
    EXECUTOR_RECEIVER_LINES,
    EXECUTOR_RECEIVER_DROPPED,
    EXECUTOR_RECEIVER_BUFFERED,
    EXECUTOR_RECEIVER_CONNECTED,
    DRIVER_STREAM_LATENCY,
    DRIVER_STREAM_SOURCE_TO_COMMIT,
    DRIVER_MICROBATCH_HOP,
    DRIVER_STREAM_LATENCY_TARGET,
    DRIVER_STREAM_SLO_MICROBATCHES,
    DRIVER_STREAM_SLO_WITHIN,
    DRIVER_STREAM_SLO_GUARD,
    DRIVER_STREAM_RUNS_WAITING,
    DRIVER_JOB_RECORDS,
    DRIVER_BATCH_RECORDS_PER_SECOND,
    DRIVER_JOB_RUNS,
    DRIVER_TASKS_QUEUED,
    DRIVER_TASKS_RUNNING,
    DRIVER_TASKS_SUSPENDED,
    DRIVER_SCHEDULING_DECISION,
    DRIVER_EXECUTORS,
    DRIVER_SUSPENSIONS,
    DRIVER_RESUMPTIONS,
    DRIVER_KILLS,
    DRIVER_EXECUTORS_LOST,
    DRIVER_LAUNCH_ACK_TIMEOUTS,
    DRIVER_EXECUTORS_SUSPECT,
    DRIVER_REJECTED_UPDATES,
    DRIVER_REFUSED_REGISTRATIONS,
    DRIVER_KAFKA_LAG,
    DRIVER_KAFKA_COMMITTED_OFFSET,
    DRIVER_KAFKA_LATEST_OFFSET,
    TRANSPORT_TLS,
    TRANSPORT_CONNECTIONS_OPEN,
    TRANSPORT_CONNECTIONS_CLOSED,
    OPERATOR_RECONCILES,
    OPERATOR_RECONCILE_ERRORS,
    OPERATOR_RECONCILE_DURATION,
    OPERATOR_APPS,
    OPERATOR_WATCH_ERRORS,
    OPERATOR_LEADER,
];

/// Whether `series` (e.g. `neptune_driver_stream_latency_seconds_bucket`) belongs to a known metric.
pub fn is_known_series(series: &str) -> bool {
    ALL.iter().any(|m| {
        series == *m
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| series.strip_prefix(m) == Some(s))
    })
}
