//! The driver's Prometheus metrics, in a registry of its own (no globals).
//!
//! Per-job series are labelled `neptune_job` ([`n::JOB_LABEL`]), not `job`, which Prometheus
//! owns (the scrape job).

use neptune_core::metric_names as n;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Driver metrics.
#[derive(Clone)]
pub struct DriverMetrics {
    registry: Registry,
    /// Micro-batch end-to-end latency per stream job.
    pub stream_latency: HistogramVec,
    /// Source timestamp of each micro-batch's oldest record → commit, per stream job reading
    /// timestamped records (Kafka).
    pub source_to_commit: HistogramVec,
    /// Time per hop of each stream micro-batch (labels `neptune_job`, `hop`).
    pub microbatch_hop: HistogramVec,
    /// Latency target per stream job that has one.
    pub stream_latency_target: GaugeVec,
    /// Steady-state micro-batches per stream job with a target.
    pub stream_slo_microbatches: IntCounterVec,
    /// Those within the target.
    pub stream_slo_within: IntCounterVec,
    /// Whether the SLO-aware mode holds cores back from batch work for the job.
    pub stream_slo_guard: IntGaugeVec,
    /// Due micro-batches waiting for `max_in_flight`, per stream job.
    pub stream_runs_waiting: IntGaugeVec,
    /// Records per job.
    pub job_records: IntCounterVec,
    /// Batch records/s per job over the last window.
    pub batch_rps: GaugeVec,
    /// Runs committed per job.
    pub job_runs: IntCounterVec,
    /// Queued tasks by kind.
    pub tasks_queued: IntGaugeVec,
    /// Running tasks by kind.
    pub tasks_running: IntGaugeVec,
    /// Suspended tasks.
    pub tasks_suspended: IntGauge,
    /// Scheduler event handling time.
    pub decision: Histogram,
    /// Executors registered.
    pub executors: IntGauge,
    /// Suspensions confirmed.
    pub suspensions: IntCounter,
    /// Resumptions confirmed.
    pub resumptions: IntCounter,
    /// Kills.
    pub kills: IntCounter,
    /// Executors lost.
    pub executors_lost: IntCounter,
    /// Launches not acknowledged in time.
    pub launch_ack_timeouts: IntCounter,
    /// Executors suspect now.
    pub executors_suspect: IntGauge,
    /// Task updates ignored, by reason.
    pub rejected_updates: IntCounterVec,
    /// Registrations refused, by reason.
    pub refused_registrations: IntCounterVec,
    /// Kafka lag per job, topic and partition.
    pub kafka_lag: IntGaugeVec,
    /// Kafka committed offset per job, topic and partition.
    pub kafka_committed: IntGaugeVec,
    /// Kafka latest offset per job, topic and partition.
    pub kafka_latest: IntGaugeVec,
}

impl std::fmt::Debug for DriverMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DriverMetrics")
    }
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn kafka_gauge(name: &str, help: &str) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), &[n::JOB_LABEL, "topic", "partition"]).expect("valid")
}

impl DriverMetrics {
    /// Register every driver metric in a fresh registry.
    pub fn new() -> Self {
        let r = Registry::new();
        let latency_buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0,
        ];
        Self {
            stream_latency: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        n::DRIVER_STREAM_LATENCY,
                        "Stream micro-batch end-to-end latency: due time to results committed.",
                    )
                    .buckets(latency_buckets),
                    &[n::JOB_LABEL],
                )
                .expect("valid"),
            ),
            source_to_commit: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        n::DRIVER_STREAM_SOURCE_TO_COMMIT,
                        "Stream micro-batch latency from its oldest record's source timestamp \
                         (Kafka: produce time) to its results committed (wall clocks).",
                    )
                    // Includes the time records wait for their micro-batch, and any backlog.
                    .buckets(vec![
                        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0,
                        10.0, 30.0, 60.0, 300.0,
                    ]),
                    &[n::JOB_LABEL],
                )
                .expect("valid"),
            ),
            microbatch_hop: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        n::DRIVER_MICROBATCH_HOP,
                        "Time a stream micro-batch spent in each hop of its path (its critical \
                         task's), from the driver's clock and the executor's reported durations.",
                    )
                    // Hops range from microseconds (a core handed over) to the whole latency.
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 0.5, 1.0, 2.5,
                    ]),
                    &[n::JOB_LABEL, "hop"],
                )
                .expect("valid"),
            ),
            stream_latency_target: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        n::DRIVER_STREAM_LATENCY_TARGET,
                        "Stream job latency target (jobs.<job>.latency_target_ms), in seconds.",
                    ),
                    &[n::JOB_LABEL],
                )
                .expect("valid"),
            ),
            stream_slo_microbatches: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::DRIVER_STREAM_SLO_MICROBATCHES,
                        "Steady-state micro-batches (warm-up left out) of stream jobs with a \
                         latency target.",
                    ),
                    &[n::JOB_LABEL],
                )
                .expect("valid"),
            ),
            stream_slo_within: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::DRIVER_STREAM_SLO_WITHIN,
                        "Steady-state micro-batches committed within their job's latency target.",
                    ),
                    &[n::JOB_LABEL],
                )
                .expect("valid"),
            ),
            stream_slo_guard: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        n::DRIVER_STREAM_SLO_GUARD,
                        "1 while the SLO-aware scheduler holds cores back from batch work for \
                         the stream job.",
                    ),
                    &[n::JOB_LABEL],
                )
                .expect("valid"),
            ),
            stream_runs_waiting: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        n::DRIVER_STREAM_RUNS_WAITING,
                        "Micro-batches of the stream job due and not begun because \
                         jobs.<job>.max_in_flight are in flight (above 0: the job is behind).",
                    ),
                    &[n::JOB_LABEL],
                )
                .expect("valid"),
            ),
            job_records: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(n::DRIVER_JOB_RECORDS, "Records read by successful tasks."),
                    &[n::JOB_LABEL, "kind"],
                )
                .expect("valid"),
            ),
            batch_rps: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        n::DRIVER_BATCH_RECORDS_PER_SECOND,
                        "Batch records per second since the job started, from the executors' record counters (work of running and suspended tasks included).",
                    ),
                    &[n::JOB_LABEL],
                )
                .expect("valid"),
            ),
            job_runs: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::DRIVER_JOB_RUNS,
                        "Runs (micro-batches or epochs) committed.",
                    ),
                    &[n::JOB_LABEL, "kind"],
                )
                .expect("valid"),
            ),
            tasks_queued: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(n::DRIVER_TASKS_QUEUED, "Tasks waiting for a slot."),
                    &["kind"],
                )
                .expect("valid"),
            ),
            tasks_running: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(n::DRIVER_TASKS_RUNNING, "Tasks holding a slot."),
                    &["kind"],
                )
                .expect("valid"),
            ),
            tasks_suspended: reg(
                &r,
                IntGauge::new(n::DRIVER_TASKS_SUSPENDED, "Tasks suspended on executors.")
                    .expect("valid"),
            ),
            decision: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        n::DRIVER_SCHEDULING_DECISION,
                        "Time to handle one scheduler event.",
                    )
                    .buckets(prometheus::exponential_buckets(1e-6, 4.0, 10).expect("valid")),
                )
                .expect("valid"),
            ),
            executors: reg(
                &r,
                IntGauge::new(n::DRIVER_EXECUTORS, "Executors registered and alive.")
                    .expect("valid"),
            ),
            suspensions: reg(
                &r,
                IntCounter::new(
                    n::DRIVER_SUSPENSIONS,
                    "Task suspensions confirmed by executors.",
                )
                .expect("valid"),
            ),
            resumptions: reg(
                &r,
                IntCounter::new(
                    n::DRIVER_RESUMPTIONS,
                    "Task resumptions confirmed by executors.",
                )
                .expect("valid"),
            ),
            kills: reg(
                &r,
                IntCounter::new(n::DRIVER_KILLS, "Tasks killed to make room (kill policy).")
                    .expect("valid"),
            ),
            executors_lost: reg(
                &r,
                IntCounter::new(
                    n::DRIVER_EXECUTORS_LOST,
                    "Executors lost: connection closed or heartbeats missing.",
                )
                .expect("valid"),
            ),
            launch_ack_timeouts: reg(
                &r,
                IntCounter::new(
                    n::DRIVER_LAUNCH_ACK_TIMEOUTS,
                    "Task launches not acknowledged within driver.launch_ack_timeout_ms.",
                )
                .expect("valid"),
            ),
            executors_suspect: reg(
                &r,
                IntGauge::new(
                    n::DRIVER_EXECUTORS_SUSPECT,
                    "Executors that left a launch unacknowledged and get no new work.",
                )
                .expect("valid"),
            ),
            rejected_updates: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::DRIVER_REJECTED_UPDATES,
                        "Task updates ignored: not from the holder of the task's current attempt, \
                         or malformed.",
                    ),
                    &["reason"],
                )
                .expect("valid"),
            ),
            refused_registrations: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::DRIVER_REFUSED_REGISTRATIONS,
                        "Executor registrations refused.",
                    ),
                    &["reason"],
                )
                .expect("valid"),
            ),
            kafka_lag: reg(&r, kafka_gauge(n::DRIVER_KAFKA_LAG, "Records of a Kafka topic partition not yet committed by the job reading it (latest offset minus committed offset).")),
            kafka_committed: reg(&r, kafka_gauge(n::DRIVER_KAFKA_COMMITTED_OFFSET, "Offset of a Kafka topic partition where the job's next micro-batch starts (committed).")),
            kafka_latest: reg(&r, kafka_gauge(n::DRIVER_KAFKA_LATEST_OFFSET, "Latest offset (high watermark) of a Kafka topic partition the job reads, as last polled.")),
            registry: r,
        }
    }

    /// Exports the offsets and lag of Kafka `source` for each job in `jobs` reading it (the
    /// `/status` figures: they come from the source's offset poller and its committed offsets).
    /// Partitions the poller has not seen yet have no series.
    pub fn set_kafka(&self, jobs: &[&str], source: &neptune_core::kafka::SourceStatus) {
        for job in jobs {
            for p in &source.partitions {
                let part = p.partition.to_string();
                let labels = [*job, source.topic.as_str(), part.as_str()];
                self.kafka_lag.with_label_values(&labels).set(p.lag);
                self.kafka_committed
                    .with_label_values(&labels)
                    .set(p.committed);
                self.kafka_latest.with_label_values(&labels).set(p.latest);
            }
        }
    }

    /// Brings the SLO counters of job `name` up to `microbatches` steady-state micro-batches,
    /// `within` of them within the target (the job's statistics are the source; counters only
    /// grow, so a smaller value leaves them as they are).
    pub fn set_slo_counts(&self, name: &str, microbatches: u64, within: u64) {
        for (c, v) in [
            (&self.stream_slo_microbatches, microbatches),
            (&self.stream_slo_within, within),
        ] {
            let c = c.with_label_values(&[name]);
            c.inc_by(v.saturating_sub(c.get()));
        }
    }

    /// Exports the latency target of every stream job of `app` that has one (fixed for the
    /// app's life: the jobs and their config are set before the driver starts).
    pub fn set_latency_targets(&self, app: &neptune_core::App) {
        for job in app.jobs() {
            if let (neptune_core::JobKind::Stream, Some(t)) = (job.kind, job.latency_target) {
                self.stream_latency_target
                    .with_label_values(&[&job.name])
                    .set(t.as_secs_f64());
                // Present (at 0) from the start: a rate over them is defined before the first
                // steady-state micro-batch, and jobs without a target have none at all.
                self.stream_slo_microbatches.with_label_values(&[&job.name]);
                self.stream_slo_within.with_label_values(&[&job.name]);
                self.stream_slo_guard.with_label_values(&[&job.name]).set(0);
            }
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for DriverMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neptune_core::kafka::SourceStatus;
    use neptune_core::kafka::source::PartitionStatus;

    #[test]
    fn kafka_offsets_and_lag_are_exported_per_job_topic_and_partition() {
        let m = DriverMetrics::new();
        let mut s = SourceStatus {
            name: "kafka".into(),
            topic: "events".into(),
            ..SourceStatus::default()
        };
        for (partition, latest, committed) in [(0, 120, 100), (1, 7, 7)] {
            s.partitions.push(PartitionStatus {
                partition,
                latest,
                committed,
                lag: latest - committed,
            });
        }
        m.set_kafka(&["counts", "alerts"], &s);
        let text = m.encode();
        for job in ["counts", "alerts"] {
            let l = |p| format!("{{neptune_job=\"{job}\",partition=\"{p}\",topic=\"events\"}}");
            for line in [
                format!("{}{} 20", n::DRIVER_KAFKA_LAG, l(0)),
                format!("{}{} 0", n::DRIVER_KAFKA_LAG, l(1)),
                format!("{}{} 100", n::DRIVER_KAFKA_COMMITTED_OFFSET, l(0)),
                format!("{}{} 120", n::DRIVER_KAFKA_LATEST_OFFSET, l(0)),
                format!("{}{} 7", n::DRIVER_KAFKA_LATEST_OFFSET, l(1)),
            ] {
                assert!(
                    text.lines().any(|t| t == line),
                    "missing `{line}` in\n{text}"
                );
            }
        }
        // The lag follows the source: a commit brings it down.
        s.partitions[0].committed = 120;
        s.partitions[0].lag = 0;
        m.set_kafka(&["counts"], &s);
        let lag = m
            .kafka_lag
            .with_label_values(&["counts", "events", "0"])
            .get();
        assert_eq!(lag, 0);
    }
}
