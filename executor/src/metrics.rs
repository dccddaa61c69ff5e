//! The executor's Prometheus metrics, labelled with the executor id, in a registry of its own.

use neptune_core::metric_names as n;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::HashMap;

/// Executor metrics.
#[derive(Clone)]
pub struct ExecutorMetrics {
    registry: Registry,
    /// Running tasks by kind.
    pub running: IntGaugeVec,
    /// Suspended tasks by kind.
    pub suspended: IntGaugeVec,
    /// Suspend latency (request received → parked).
    pub suspend_latency: Histogram,
    /// Suspensions.
    pub suspensions: IntCounter,
    /// Resumptions.
    pub resumptions: IntCounter,
    /// Kills.
    pub kills: IntCounter,
    /// Tasks finished by kind and outcome.
    pub finished: IntCounterVec,
    /// Records processed by kind.
    pub records: IntCounterVec,
    /// Memory used.
    pub memory_used: IntGauge,
    /// Memory limit.
    pub memory_limit: IntGauge,
    /// Bytes spilled.
    pub spilled: IntCounter,
    /// Bytes retained by suspended tasks.
    pub retained: IntGauge,
    /// Slots.
    pub slots: IntGauge,
    /// Suspensions by phase.
    pub suspensions_by_phase: IntCounterVec,
    /// Malformed records skipped.
    pub malformed_skipped: IntCounter,
    /// Tasks failed on a shuffle fetch.
    pub fetch_failures: IntCounter,
    /// Broadcast versions stored.
    pub broadcast_versions: IntCounter,
    /// Broadcast deliveries of a version already held.
    pub broadcast_duplicates: IntCounter,
    /// Broadcast versions decoded.
    pub broadcast_decodes: IntCounter,
    /// Lines read by stream receivers, by source.
    pub receiver_lines: IntCounterVec,
    /// Lines receivers dropped, by source and reason.
    pub receiver_dropped: IntCounterVec,
    /// Bytes receivers hold, by source.
    pub receiver_buffered: IntGaugeVec,
    /// 1 while a receiver is connected, by source.
    pub receiver_connected: IntGaugeVec,
}

impl std::fmt::Debug for ExecutorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExecutorMetrics")
    }
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

impl ExecutorMetrics {
    /// Register every executor metric, each labelled `executor=<id>`.
    pub fn new(executor_id: &str) -> Self {
        let labels = HashMap::from([("executor".to_string(), executor_id.to_string())]);
        let r = Registry::new_custom(None, Some(labels)).expect("valid labels");
        let suspend_buckets = vec![
            1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1,
        ];
        Self {
            running: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(n::EXECUTOR_TASKS_RUNNING, "Tasks running, by job kind."),
                    &["kind"],
                )
                .expect("valid"),
            ),
            suspended: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        n::EXECUTOR_TASKS_SUSPENDED,
                        "Tasks suspended (parked coroutines), by job kind.",
                    ),
                    &["kind"],
                )
                .expect("valid"),
            ),
            suspend_latency: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        n::EXECUTOR_SUSPEND_LATENCY,
                        "Suspend request received to task parked.",
                    )
                    .buckets(suspend_buckets),
                )
                .expect("valid"),
            ),
            suspensions: reg(
                &r,
                IntCounter::new(n::EXECUTOR_SUSPENSIONS, "Tasks suspended.").expect("valid"),
            ),
            resumptions: reg(
                &r,
                IntCounter::new(n::EXECUTOR_RESUMPTIONS, "Tasks resumed.").expect("valid"),
            ),
            kills: reg(
                &r,
                IntCounter::new(n::EXECUTOR_KILLS, "Tasks killed.").expect("valid"),
            ),
            finished: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::EXECUTOR_TASKS_FINISHED,
                        "Tasks finished, by job kind and outcome.",
                    ),
                    &["kind", "outcome"],
                )
                .expect("valid"),
            ),
            records: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::EXECUTOR_RECORDS,
                        "Records processed by tasks, by job kind.",
                    ),
                    &["kind"],
                )
                .expect("valid"),
            ),
            memory_used: reg(
                &r,
                IntGauge::new(
                    n::EXECUTOR_MEMORY_USED,
                    "Resident memory of the executor process.",
                )
                .expect("valid"),
            ),
            memory_limit: reg(
                &r,
                IntGauge::new(
                    n::EXECUTOR_MEMORY_LIMIT,
                    "Memory budget of the executor (--memory).",
                )
                .expect("valid"),
            ),
            spilled: reg(
                &r,
                IntCounter::new(n::EXECUTOR_SPILLED, "Bytes spilled to disk.").expect("valid"),
            ),
            retained: reg(
                &r,
                IntGauge::new(
                    n::EXECUTOR_SUSPENDED_RETAINED,
                    "Bytes retained by suspended tasks.",
                )
                .expect("valid"),
            ),
            slots: reg(
                &r,
                IntGauge::new(n::EXECUTOR_SLOTS, "Task slots (--cores).").expect("valid"),
            ),
            suspensions_by_phase: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::EXECUTOR_SUSPENSIONS_BY_PHASE,
                        "Tasks suspended, by the phase they were in when they parked.",
                    ),
                    &["phase"],
                )
                .expect("valid"),
            ),
            malformed_skipped: reg(
                &r,
                IntCounter::new(
                    n::EXECUTOR_MALFORMED_SKIPPED,
                    "Malformed input records skipped (policy skip).",
                )
                .expect("valid"),
            ),
            fetch_failures: reg(
                &r,
                IntCounter::new(
                    n::EXECUTOR_FETCH_FAILURES,
                    "Tasks failed because shuffle blocks could not be fetched.",
                )
                .expect("valid"),
            ),
            broadcast_versions: reg(
                &r,
                IntCounter::new(
                    n::EXECUTOR_BROADCAST_VERSIONS,
                    "Shared-state (broadcast) versions received and stored.",
                )
                .expect("valid"),
            ),
            broadcast_duplicates: reg(
                &r,
                IntCounter::new(
                    n::EXECUTOR_BROADCAST_DUPLICATES,
                    "Broadcast deliveries of a version already held.",
                )
                .expect("valid"),
            ),
            broadcast_decodes: reg(
                &r,
                IntCounter::new(
                    n::EXECUTOR_BROADCAST_DECODES,
                    "Broadcast versions decoded for tasks (once per version).",
                )
                .expect("valid"),
            ),
            receiver_lines: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::EXECUTOR_RECEIVER_LINES,
                        "Lines stream receivers read from their sockets.",
                    ),
                    &["source"],
                )
                .expect("valid"),
            ),
            receiver_dropped: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        n::EXECUTOR_RECEIVER_DROPPED,
                        "Lines stream receivers dropped (not UTF-8, or too long).",
                    ),
                    &["source", "reason"],
                )
                .expect("valid"),
            ),
            receiver_buffered: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        n::EXECUTOR_RECEIVER_BUFFERED,
                        "Bytes stream receivers hold until their runs are released.",
                    ),
                    &["source"],
                )
                .expect("valid"),
            ),
            receiver_connected: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        n::EXECUTOR_RECEIVER_CONNECTED,
                        "1 while a stream receiver is connected to its socket.",
                    ),
                    &["source"],
                )
                .expect("valid"),
            ),
            registry: r,
        }
    }

    /// Text exposition.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
