//! Task updates in the event loop, under the holder rule: an update is applied only if it comes
//! from the current session of the executor that holds the task's current attempt
//! ([`Scheduler::check`](crate::scheduler::Scheduler::check)), and only then may it touch the
//! job manager, a total or a metric. Anything else is ignored and counted in
//! `neptune_driver_rejected_updates_total{reason}`.
//!
//! Values are bounded on the way in: counters saturate, free text is cut to
//! [`MAX_REASON_BYTES`](neptune_proto::MAX_REASON_BYTES), a phase this build does not know is
//! counted as `unknown`, a map task's result must decode as a map status of the right size (or
//! the attempt counts as failed), and a fetch failure must name a well-formed executor id (or
//! it counts as a plain failure).

use super::{EventLoop, Work};
use crate::scheduler::Event;
use crate::stats::{Breakdown, Hop};
use neptune_core::ids::check_executor_id;
use neptune_proto::{TaskUpdate, bounded_reason, core_phase, task_update};

impl EventLoop {
    fn reject(&self, executor: &str, reason: &str) {
        tracing::debug!(executor, reason, "task update ignored");
        self.metrics
            .rejected_updates
            .with_label_values(&[reason])
            .inc();
    }

    /// The scheduler's verdict on `ev`; a refusal is counted.
    fn holds(&self, executor: &str, ev: &Event) -> bool {
        match self.scheduler.check(ev) {
            Ok(()) => true,
            Err(why) => {
                self.reject(executor, why.as_str());
                false
            }
        }
    }

    /// Apply update `u` of executor `executor`'s session `session`, read off the wire at
    /// `received` (loop time).
    pub(super) fn on_update(
        &mut self,
        executor: String,
        session: u64,
        u: TaskUpdate,
        received: std::time::Duration,
    ) {
        if !self.is_current(&executor, session) {
            return self.reject(&executor, "stale_session");
        }
        let (Some(key), Some(state)) = (u.task, u.state) else {
            return self.reject(&executor, "malformed");
        };
        let (task, attempt) = (key.id(), key.attempt);
        match state {
            task_update::State::Suspended(s) => {
                let ev = Event::TaskSuspended {
                    id: task,
                    attempt,
                    executor: executor.clone(),
                };
                if !self.holds(&executor, &ev) {
                    return;
                }
                let phase = core_phase(s.phase).map_or("unknown", |p| p.as_str());
                self.totals.suspensions = self.totals.suspensions.saturating_add(1);
                let n = self
                    .totals
                    .suspensions_by_phase
                    .entry(phase.to_string())
                    .or_default();
                *n = n.saturating_add(1);
                self.metrics.suspensions.inc();
                self.suspend_latency
                    .record(std::time::Duration::from_nanos(s.latency_ns));
                self.work.push_back(Work::Schedule(ev));
            }
            task_update::State::Resumed(_) => {
                let ev = Event::TaskResumed {
                    id: task,
                    attempt,
                    executor: executor.clone(),
                };
                if !self.holds(&executor, &ev) {
                    return;
                }
                self.totals.resumptions = self.totals.resumptions.saturating_add(1);
                self.metrics.resumptions.inc();
                self.work.push_back(Work::Schedule(ev));
            }
            task_update::State::Succeeded(s) => {
                let ev = Event::TaskFinished {
                    id: task,
                    attempt,
                    executor: executor.clone(),
                };
                if !self.holds(&executor, &ev) {
                    return;
                }
                if let Err(reason) = self.jobs.check_result(task, &s.result) {
                    tracing::warn!(%task, attempt, %executor, %reason, "invalid result: the attempt failed");
                    let ev = Event::TaskFailed {
                        id: task,
                        attempt,
                        executor,
                        reason: reason.to_string(),
                    };
                    self.work.push_back(Work::Schedule(ev));
                    return;
                }
                self.totals.malformed_skipped =
                    self.totals.malformed_skipped.saturating_add(s.skipped);
                self.jobs.note_skipped(task.job as usize, s.skipped);
                if let Some(e) = s.event_time {
                    // Statistics only: a summary that describes no records is dropped, not the
                    // task's result.
                    match e.checked() {
                        Ok(t) => self.jobs.note_event_times(task, t),
                        Err(reason) => {
                            tracing::warn!(%task, attempt, %executor, %reason, "invalid source timestamps ignored");
                        }
                    }
                }
                let now = self.now();
                let timing = s.timing.as_ref().map(crate::stats::ExecutorHops::from);
                let step = self
                    .jobs
                    .task_succeeded(now, task, s.result, s.records, &executor);
                for &(job, run, due) in &step.stream_commits {
                    if (job, run) != (task.job, task.run) {
                        continue;
                    }
                    // This task's success committed its run: it is the critical task.
                    let b = self.attribution.committed(
                        task,
                        attempt,
                        due,
                        received,
                        now,
                        timing.as_ref(),
                    );
                    if let Some(b) = b {
                        self.record_hops(job as usize, now, &b);
                    }
                }
                if let Some(job) = self.app.jobs().get(task.job as usize) {
                    let c = self
                        .metrics
                        .job_records
                        .with_label_values(&[&job.name, job.kind.as_str()]);
                    // Prometheus counters wrap on overflow: add no more than fits.
                    c.inc_by(s.records.min(u64::MAX - c.get()));
                }
                self.work.push_back(Work::Schedule(ev));
                self.work.push_back(Work::Step(step));
            }
            task_update::State::Failed(f)
                if !f.fetch_failed_executor.is_empty()
                    && check_executor_id(&f.fetch_failed_executor).is_ok() =>
            {
                let ev = Event::TaskReturned {
                    id: task,
                    attempt,
                    executor: executor.clone(),
                };
                if !self.holds(&executor, &ev) {
                    return;
                }
                let reason = bounded_reason(f.reason);
                tracing::warn!(%task, attempt, %reason, "fetch failed: recomputing lost map outputs");
                self.totals.fetch_failures = self.totals.fetch_failures.saturating_add(1);
                self.work.push_back(Work::Schedule(ev));
                let from = f.fetch_failed_executor;
                let step = self.jobs.task_returned(task, Some(&from), true);
                self.work.push_back(Work::Step(step));
            }
            task_update::State::Failed(f) => {
                let reason = bounded_reason(f.reason);
                let ev = Event::TaskFailed {
                    id: task,
                    attempt,
                    executor: executor.clone(),
                    reason: reason.clone(),
                };
                if !self.holds(&executor, &ev) {
                    return;
                }
                tracing::warn!(%task, attempt, %reason, "task failed");
                self.work.push_back(Work::Schedule(ev));
            }
            task_update::State::Killed(k) => {
                let ev = Event::TaskKilled {
                    id: task,
                    attempt,
                    executor: executor.clone(),
                    records_lost: k.records,
                };
                if !self.holds(&executor, &ev) {
                    return;
                }
                self.totals.kills = self.totals.kills.saturating_add(1);
                self.totals.records_lost = self.totals.records_lost.saturating_add(k.records);
                self.metrics.kills.inc();
                self.work.push_back(Work::Schedule(ev));
            }
            task_update::State::Accepted(_) => {
                let ev = Event::TaskAcknowledged {
                    id: task,
                    attempt,
                    executor: executor.clone(),
                };
                if self.holds(&executor, &ev) {
                    self.work.push_back(Work::Schedule(ev));
                }
            }
            task_update::State::Rejected(r) => {
                // Changes nothing whoever sends it; the holder's final update settles the task.
                let reason = bounded_reason(r.reason);
                tracing::debug!(%task, attempt, %reason, "executor rejected a request");
            }
        }
    }
}

impl EventLoop {
    /// Record micro-batch hops `b` of job `job`, committed at `now`, into its statistics and
    /// the `/metrics` histograms.
    fn record_hops(&mut self, job: usize, now: std::time::Duration, b: &Breakdown) {
        let at = now.saturating_sub(self.jobs.started_at().unwrap_or_default());
        let Some(stats) = self.hops.get_mut(job) else {
            return;
        };
        stats.record(at, b);
        let name = &self.app.jobs()[job].name;
        for hop in Hop::ALL {
            if let Some(d) = b.get(hop) {
                self.metrics
                    .microbatch_hop
                    .with_label_values(&[name.as_str(), hop.as_str()])
                    .observe(d.as_secs_f64());
            }
        }
    }
}
