//! The event loop's side of a stream job's latency target: after each committed micro-batch,
//! bring the job's SLO counters on `/metrics` up to its statistics and, under the SLO-aware
//! mode (`scheduler.slo_aware`), tell the scheduler the job's recent p99 so it can hold cores
//! back from batch work; with `scheduler.slo_lead_us` > 0, also tell it a lead before each
//! micro-batch of such a job is due, so it frees the cores the micro-batch will take (see
//! `crate::scheduler`, "SLO-aware mode").
//!
//! The lead is the executors' measured suspend latency p95 (request received → task parked,
//! from their `Suspended` updates, over the whole run) plus `scheduler.slo_lead_us`, at most
//! [`MAX_LEAD`] and a quarter of the job's interval: long enough for a batch task to reach its
//! next yield point and park before the micro-batch's launch arrives, short enough that the
//! idle cores cost batch little. p95, not p99: a suspension slower than the lead costs only
//! that micro-batch the rest of it (its task takes over the slot being freed; no other victim
//! is suspended), while every microsecond of lead costs batch the cores it idles, every
//! interval; the p99 of a loaded node (several ms, docs/evaluation.md) would idle them a tenth
//! of the time. It is recomputed at every status tick (100 ms).

use super::EventLoop;
use crate::scheduler::Event;
use std::collections::HashMap;
use std::time::Duration;

/// The longest lead: a suspend p95 beyond it means the executors are overloaded, and freeing
/// cores earlier would only idle them longer.
pub(super) const MAX_LEAD: Duration = Duration::from_millis(20);

/// Announcements of imminent micro-batches (acting ahead).
#[derive(Debug, Default)]
pub(super) struct Ahead {
    /// The lead now (zero: not acting ahead).
    lead: Duration,
    /// Per stream job, the due time last announced.
    announced: HashMap<u32, Duration>,
}

impl EventLoop {
    /// Stream job `job` committed a micro-batch.
    pub(super) fn stream_committed(&mut self, job: u32) {
        let j = job as usize;
        let name = self.app.jobs()[j].name.clone();
        let lat = &self.jobs.stats(j).latency;
        let (Some(target), Some(within)) = (lat.target(), lat.slo_within()) else {
            return;
        };
        self.metrics.set_slo_counts(&name, lat.steady_len(), within);
        if !self.scheduler.config().slo_aware {
            return;
        }
        let at = self
            .now()
            .saturating_sub(self.jobs.started_at().unwrap_or_default());
        let window = self.scheduler.config().slo_window;
        let Some(recent_p99) = lat.recent_p99(at, window) else {
            return;
        };
        self.schedule(Event::StreamLatency {
            job,
            recent_p99,
            target,
        });
        let guarded = self.scheduler.slo_guarded(job);
        self.metrics
            .stream_slo_guard
            .with_label_values(&[&name])
            .set(i64::from(guarded));
    }

    /// Recompute the lead from the suspend latencies measured so far.
    pub(super) fn refresh_lead(&mut self) {
        let cfg = self.scheduler.config();
        self.ahead.lead = if cfg.slo_aware && !cfg.slo_lead.is_zero() {
            let p95_us = self
                .suspend_latency
                .percentiles(Duration::from_micros(1))
                .p95;
            let measured = Duration::from_secs_f64(p95_us.max(0.0) / 1e6);
            (cfg.slo_lead + measured).min(MAX_LEAD)
        } else {
            Duration::ZERO
        };
    }

    /// Stream jobs with a latency target whose next micro-batch is due within the lead and not
    /// announced yet, with that due time; and the earliest time one will be (to arm the clock).
    fn due_soon(&self, now: Duration) -> (Vec<(u32, Duration)>, Option<Duration>) {
        let mut ready = Vec::new();
        let mut next: Option<Duration> = None;
        if self.ahead.lead.is_zero() {
            return (ready, next);
        }
        for j in 0..self.app.jobs().len() {
            if self.jobs.stats(j).latency.target().is_none() {
                continue;
            }
            let Some((due, interval)) = self.jobs.next_due(j) else {
                continue;
            };
            if self.ahead.announced.get(&(j as u32)) == Some(&due) {
                continue;
            }
            let at = due.saturating_sub(self.ahead.lead.min(interval / 4));
            if at <= now {
                ready.push((j as u32, due));
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        (ready, next)
    }

    /// Announce the micro-batches due within the lead; returns when the next one will be.
    pub(super) fn announce_due_soon(&mut self) -> Option<Duration> {
        let (ready, next) = self.due_soon(self.now());
        for (job, due) in ready {
            self.ahead.announced.insert(job, due);
            self.schedule(Event::StreamDueSoon { job, due });
        }
        next
    }
}
