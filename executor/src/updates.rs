//! The last step of the executor's data flow: runtime events become task updates on the session
//! stream (with the executor's metrics counted on the way), and heartbeats are composed.
//!
//! Everything a task update carries comes with the runtime's event (phase of a suspension;
//! records, malformed records skipped and the executor a fetch failed from, for a finished
//! task): there is no side channel between the task and its report. A result larger than the
//! driver accepts (`max_message_bytes` from its welcome) would break the session if sent, so
//! the task fails instead, with a message naming the limit.

use crate::metrics::ExecutorMetrics;
use crate::runtime::{RuntimeEvent, TaskOutcome};
use neptune_core::ids::JobKind;
use neptune_proto::{
    ExecutorMessage, Heartbeat, TaskKey, TaskUpdate, executor_message, task_update,
};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// Headroom left in a message for everything but a result's bytes (key, counters, framing).
const UPDATE_OVERHEAD: u64 = 1024;

/// Sends task updates and heartbeats to the driver.
pub(crate) struct Updates {
    out: mpsc::UnboundedSender<ExecutorMessage>,
    metrics: ExecutorMetrics,
    /// Largest message the driver accepts.
    max_message_bytes: u64,
    /// Records of the tasks that succeeded in this session, by job (the `done` of the
    /// heartbeat's `job_records`). One entry per job of the app at most: a task of a job the app
    /// lacks never starts.
    done: BTreeMap<u32, u64>,
}

impl Updates {
    pub(crate) fn new(
        out: mpsc::UnboundedSender<ExecutorMessage>,
        metrics: ExecutorMetrics,
        max_message_bytes: u64,
    ) -> Self {
        Self {
            out,
            metrics,
            max_message_bytes,
            done: BTreeMap::new(),
        }
    }

    /// Records of the tasks that succeeded in this session, by job.
    pub(crate) fn done(&self) -> &BTreeMap<u32, u64> {
        &self.done
    }

    pub(crate) fn metrics(&self) -> &ExecutorMetrics {
        &self.metrics
    }

    fn send(&self, msg: executor_message::Msg) {
        // A closed channel means the session is over; the loop is stopping.
        let _ = self.out.send(ExecutorMessage { msg: Some(msg) });
    }

    /// Report `state` for task `key`.
    pub(crate) fn update(&self, key: TaskKey, state: task_update::State) {
        let u = TaskUpdate {
            task: Some(key),
            state: Some(state),
        };
        self.send(executor_message::Msg::Update(u));
    }

    /// The executor could not act on a request for `key`.
    pub(crate) fn reject(&self, key: TaskKey, reason: String) {
        tracing::debug!(task = %key.id(), %reason, "request rejected");
        let reason = neptune_proto::bounded_reason(reason);
        self.update(
            key,
            task_update::State::Rejected(neptune_proto::Rejected { reason }),
        );
    }

    /// Task `key` failed before or without running.
    pub(crate) fn fail(&self, key: TaskKey, reason: String) {
        self.update(key, failed(reason, 0, None));
    }

    /// Report a runtime event of a task of kind `kind`.
    pub(crate) fn report(&mut self, ev: RuntimeEvent, kind: JobKind) {
        let m = &self.metrics;
        match ev {
            RuntimeEvent::Suspended {
                id,
                attempt,
                latency,
                phase,
            } => {
                m.suspensions.inc();
                m.suspend_latency.observe(latency.as_secs_f64());
                m.suspensions_by_phase
                    .with_label_values(&[phase.as_str()])
                    .inc();
                let s = neptune_proto::Suspended {
                    latency_ns: saturating_ns(latency),
                    phase: neptune_proto::Phase::from(phase) as i32,
                };
                self.update(TaskKey::new(id, attempt), task_update::State::Suspended(s));
            }
            RuntimeEvent::Resumed {
                id,
                attempt,
                latency,
            } => {
                m.resumptions.inc();
                let r = neptune_proto::Resumed {
                    latency_ns: saturating_ns(latency),
                };
                self.update(TaskKey::new(id, attempt), task_update::State::Resumed(r));
            }
            RuntimeEvent::Finished {
                id,
                attempt,
                outcome,
                records,
                skipped,
                fetch_failed,
                event_times,
                elapsed,
                timing,
            } => {
                let key = TaskKey::new(id, attempt);
                let (label, state) = match outcome {
                    TaskOutcome::Succeeded(result)
                        if result.len() as u64
                            > self.max_message_bytes.saturating_sub(UPDATE_OVERHEAD) =>
                    {
                        let reason = format!(
                            "task {id}'s result is {} bytes, more than the driver accepts in a \
                             message ({} bytes, grpc.max_message_bytes)",
                            result.len(),
                            self.max_message_bytes
                        );
                        tracing::warn!(task = %id, %reason, "task failed");
                        ("failed", failed(reason, records, None))
                    }
                    TaskOutcome::Succeeded(result) => {
                        m.records
                            .with_label_values(&[kind.as_str()])
                            .inc_by(records);
                        let done = self.done.entry(id.job).or_default();
                        *done = done.saturating_add(records);
                        m.malformed_skipped.inc_by(skipped);
                        let s = neptune_proto::Succeeded {
                            result,
                            records,
                            elapsed_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                            skipped,
                            timing: Some(neptune_proto::TaskTiming {
                                queued_ns: saturating_ns(timing.queued),
                                start_ns: saturating_ns(timing.start),
                                first_record_ns: saturating_ns(timing.first_record),
                                process_ns: saturating_ns(timing.process),
                            }),
                            event_time: event_times.map(neptune_proto::EventTime::from),
                        };
                        ("succeeded", task_update::State::Succeeded(s))
                    }
                    TaskOutcome::Failed(reason) => {
                        tracing::warn!(task = %id, %reason, "task failed");
                        if fetch_failed.is_some() {
                            m.fetch_failures.inc();
                        }
                        ("failed", failed(reason, records, fetch_failed))
                    }
                    TaskOutcome::Killed => {
                        m.kills.inc();
                        (
                            "killed",
                            task_update::State::Killed(neptune_proto::Killed { records }),
                        )
                    }
                };
                m.finished.with_label_values(&[kind.as_str(), label]).inc();
                self.update(key, state);
            }
        }
    }

    /// Send a heartbeat.
    pub(crate) fn heartbeat(&self, hb: Heartbeat) {
        self.send(executor_message::Msg::Heartbeat(hb));
    }
}

fn saturating_ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn failed(reason: String, records: u64, fetch_failed: Option<String>) -> task_update::State {
    task_update::State::Failed(neptune_proto::Failed {
        reason: neptune_proto::bounded_reason(reason),
        records,
        fetch_failed_executor: fetch_failed.unwrap_or_default(),
    })
}
