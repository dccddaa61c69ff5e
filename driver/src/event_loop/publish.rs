//! Publishing the driver's status document (and gauges) from the event loop's state.

use super::EventLoop;
use crate::status::{ExecutorStatus, JobProgress, JobSummary, ReceiverStatus, Status, Totals};
use neptune_core::ids::{JobKind, TaskId};

impl EventLoop {
    /// Refresh the shared status (and gauges); the final one also carries latency series.
    pub(super) fn publish_status(&mut self, final_status: bool) {
        let snap = self.scheduler.snapshot();
        let now = self.now();
        let elapsed = self
            .jobs
            .started_at()
            .map_or(0.0, |s| (now.saturating_sub(s)).as_secs_f64());
        let mut executors: Vec<ExecutorStatus> = snap
            .executors
            .iter()
            .map(|e| {
                let c = self.conns.get(&e.id);
                ExecutorStatus {
                    id: e.id.clone(),
                    cores: e.cores,
                    running: e.running.len(),
                    suspended: e.suspended.len(),
                    memory_used_bytes: c.map_or(0, |c| c.memory_used),
                    memory_limit_bytes: c.map_or(0, |c| c.memory_limit),
                    http: c.map_or_else(String::new, |c| c.http_addr.clone()),
                    blocks: c.map_or_else(String::new, |c| c.block_addr.clone()),
                    suspect: e.suspect,
                }
            })
            .collect();
        executors.sort_by(|a, b| a.id.cmp(&b.id));
        let mut running = [0i64; 2];
        let mut suspended = 0i64;
        for e in &snap.executors {
            for t in &e.running {
                running[self.kind_index(*t)] += 1;
            }
            suspended += e.suspended.len() as i64;
        }
        self.metrics
            .tasks_running
            .with_label_values(&["stream"])
            .set(running[0]);
        self.metrics
            .tasks_running
            .with_label_values(&["batch"])
            .set(running[1]);
        self.metrics.tasks_suspended.set(suspended);
        let suspect = snap.executors.iter().filter(|e| e.suspect).count();
        self.metrics.executors_suspect.set(suspect as i64);
        self.metrics
            .tasks_queued
            .with_label_values(&["stream"])
            .set(snap.queued_stream as i64);
        self.metrics
            .tasks_queued
            .with_label_values(&["batch"])
            .set(snap.queued_batch as i64);

        let jobs = self
            .app
            .jobs()
            .iter()
            .enumerate()
            .map(|(j, def)| {
                let st = self.jobs.stats(j);
                let waiting_runs = self.jobs.waiting_runs(j, now);
                if def.kind == JobKind::Stream {
                    self.metrics
                        .stream_runs_waiting
                        .with_label_values(&[&def.name])
                        .set(i64::try_from(waiting_runs).unwrap_or(i64::MAX));
                }
                let (records_processed, records_processed_per_sec) =
                    self.processed.job(j, self.jobs.started_at(), now);
                JobSummary {
                    progress: JobProgress {
                        name: def.name.clone(),
                        kind: def.kind.as_str().to_string(),
                        runs: st.runs,
                        records: st.records,
                        records_per_sec: if elapsed > 0.0 {
                            st.records as f64 / elapsed
                        } else {
                            0.0
                        },
                        records_processed,
                        records_processed_per_sec,
                        latency_ms: st.latency.steady_ms(),
                        warmup_latency_ms: st.latency.warmup_ms(),
                        latency_target_ms: st.latency.target().map(|t| t.as_secs_f64() * 1000.0),
                        slo_attainment: st.latency.slo_attainment(),
                        slo_within: st.latency.slo_within(),
                        latency_breakdown_ms: self.hops[j].steady_ms(),
                        source_to_commit_ms: (!st.source_to_commit.is_empty()).then(|| {
                            crate::status::SourceToCommit {
                                oldest: st.source_to_commit.steady_ms(),
                                mean: st.source_to_commit_mean.steady_ms(),
                                warmup_oldest: st.source_to_commit.warmup_ms(),
                            }
                        }),
                        result: st.last_result.clone(),
                        malformed_skipped: st.malformed_skipped,
                        shuffle_write_bytes: st.shuffle_write_bytes,
                        input: st.input,
                    },
                    slo_guard: (self.scheduler.config().slo_aware && st.latency.target().is_some())
                        .then(|| self.scheduler.slo_guarded(j as u32)),
                    active_runs: self.jobs.active_runs(j),
                    waiting_runs,
                    latency_series: if final_status {
                        st.latency.recent()
                    } else {
                        Vec::new()
                    },
                    failed: st.failed.clone(),
                }
            })
            .collect::<Vec<_>>();
        let stats_bytes = (0..self.app.jobs().len())
            .map(|j| {
                let st = self.jobs.stats(j);
                st.latency.heap_bytes()
                    + st.source_to_commit.heap_bytes()
                    + st.source_to_commit_mean.heap_bytes()
                    + self.hops[j].heap_bytes()
            })
            .sum::<usize>()
            + self.suspend_latency.heap_bytes();
        let totals = Totals {
            suspend_latency_us: self
                .suspend_latency
                .percentiles(std::time::Duration::from_micros(1)),
            stats_bytes: stats_bytes as u64,
            queued: snap.queued_stream + snap.queued_batch,
            local_launches: snap.totals.local_launches,
            launch_ack_timeouts: snap.totals.ack_timeouts,
            slo_reservations: snap.totals.reservations,
            slo_reservations_expired: snap.totals.reservations_expired,
            slo_ahead_suspensions: snap.totals.ahead_suspensions,
            non_local_launches: snap.totals.non_local_launches,
            spilled_bytes: self
                .spilled
                .values()
                .fold(0u64, |sum, b| sum.saturating_add(*b)),
            map_outputs_recomputed: (0..self.app.jobs().len()).fold(0u64, |sum, j| {
                sum.saturating_add(self.jobs.stats(j).recomputed)
            }),
            ..self.totals.clone()
        };
        let receivers = self
            .app
            .receivers()
            .iter()
            .zip(self.jobs.receiver_placement())
            .map(|(r, at)| ReceiverStatus {
                name: r.name.clone(),
                addr: r.addr.clone(),
                executor: at.clone(),
            })
            .collect();
        let kafka = self.kafka_status();
        let scheduling = crate::status::Scheduling::of(self.scheduler.config());
        let mut st = self.status.write().unwrap_or_else(|e| e.into_inner());
        let transport = std::mem::take(&mut st.transport); // set once at bind
        *st = Status {
            transport,
            app: self.app.name().to_string(),
            policy: scheduling.policy,
            placement: scheduling.placement,
            max_suspensions: scheduling.max_suspensions,
            quantum_ms: scheduling.quantum_ms,
            executors_expected: self.cfg.executors,
            ready: self.started,
            elapsed_s: elapsed,
            finished: self.jobs.all_done(),
            failure: self.jobs.any_failed(),
            executors,
            jobs,
            receivers,
            kafka,
            totals,
        };
    }

    /// Each Kafka source's status, its offsets and lag exported for every job reading it.
    fn kafka_status(&self) -> Vec<neptune_core::kafka::SourceStatus> {
        let sources = self.app.kafka_sources();
        let mut out = Vec::with_capacity(sources.len());
        for k in sources {
            let status = k.status();
            let jobs: Vec<&str> = self
                .app
                .jobs()
                .iter()
                .filter(|j| j.stages.iter().any(|s| s.kafka.contains(&k.index())))
                .map(|j| j.name.as_str())
                .collect();
            self.metrics.set_kafka(&jobs, &status);
            out.push(status);
        }
        out
    }

    fn kind_index(&self, t: TaskId) -> usize {
        match self.app.jobs().get(t.job as usize).map(|j| j.kind) {
            Some(JobKind::Stream) => 0,
            _ => 1,
        }
    }
}
