//! The SLO-aware mode of `neptune` and `kill` (`scheduler.slo_aware`): a stream job whose recent
//! p99 approaches its latency target gets a core held back from batch work on the executors its
//! tasks run on, until its margin returns.
//!
//! The driver feeds [`Event::StreamLatency`](super::Event) after each micro-batch of a job with
//! a target: the p99 of the job's micro-batches committed in the last `scheduler.slo_window_ms`
//! (a bounded recent window, not the whole run). A job's guard
//! - turns **on** when that p99 passes [`ENGAGE`] x target;
//! - turns **off** when it is under [`RELEASE`] x target and the guard has been on for at least
//!   one window (the p99 then covers micro-batches that all ran under the guard: hysteresis, so
//!   the guard does not flap on each micro-batch).
//!
//! While a job's guard is on, every executor where one of its stream tasks was launched within
//! the window holds one slot back from batch work: no batch launch or resume takes its last free
//! slot, so the next micro-batch's task finds a free core instead of waiting for a batch task to
//! park (the suspend round trip). Stream tasks still take every slot, and still preempt when
//! all are taken (a micro-batch of more tasks than the held core). The held slot is one of a
//! multi-core executor's: an executor of one core is never guarded, or its batch work would stop
//! altogether. The cost to batch is that core's work while the guard is on, which is why it
//! turns off again: the aim is the latency of `static` (a core set apart for stream work) at
//! the batch throughput of plain `neptune`.
//!
//! Guards are re-evaluated at each latency report and each stream launch (an executor whose
//! last launch of a guarded job left the window is released at the next report); a policy
//! without preemption, or the mode switched off, clears them all.

use super::Scheduler;
use super::config::preemption;
use super::executors::Seq;
use neptune_core::ids::JobId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A guard turns on when the recent p99 passes this fraction of the target.
pub const ENGAGE: f64 = 0.8;
/// A guard turns off when the recent p99 is under this fraction of the target (and has been on
/// for a window).
pub const RELEASE: f64 = 0.5;

/// One stream job's guard.
#[derive(Debug, Default)]
struct JobGuard {
    /// Since when the guard is on (`None`: off).
    on_since: Option<Duration>,
    /// When the job's last stream task was launched on each executor (one entry per executor
    /// incarnation, dropped once out of the window or the executor gone).
    launches: BTreeMap<Seq, Duration>,
}

/// Every stream job's guard, and the executors they hold a slot on.
#[derive(Debug, Default)]
pub(super) struct SloGuards {
    jobs: BTreeMap<JobId, JobGuard>,
    /// Executors guarded now (mirrors `Executor::guarded`).
    guarded: BTreeSet<Seq>,
}

impl SloGuards {
    /// Whether executor `seq` is guarded now.
    #[cfg(test)]
    pub(super) fn is_guarded(&self, seq: Seq) -> bool {
        self.guarded.contains(&seq)
    }

    /// Whether job `job`'s guard is on.
    pub(super) fn is_on(&self, job: JobId) -> bool {
        self.jobs.get(&job).is_some_and(|g| g.on_since.is_some())
    }
}

impl Scheduler {
    /// Whether the SLO-aware mode acts under the configuration in force.
    fn slo_active(&self) -> bool {
        self.cfg.slo_aware && preemption(self.cfg.policy).is_some()
    }

    /// Whether stream job `job`'s SLO guard is on (holding a core back from batch work).
    pub fn slo_guarded(&self, job: JobId) -> bool {
        self.slo.is_on(job)
    }

    /// Jobs whose SLO guard is on, and the executors held for them.
    pub fn slo_guard_counts(&self) -> (usize, usize) {
        let jobs = self.slo.jobs.values().filter(|g| g.on_since.is_some());
        (jobs.count(), self.slo.guarded.len())
    }

    /// [`Event::StreamLatency`](super::Event): job `job`'s recent p99 against its target.
    pub(super) fn on_stream_latency(
        &mut self,
        now: Duration,
        job: JobId,
        recent_p99: Duration,
        target: Duration,
    ) {
        if !self.slo_active() || target.is_zero() {
            return;
        }
        let window = self.cfg.slo_window;
        let g = self.slo.jobs.entry(job).or_default();
        let ratio = recent_p99.as_secs_f64() / target.as_secs_f64();
        match g.on_since {
            None if ratio > ENGAGE => {
                tracing::info!(job, p99_ms = recent_p99.as_secs_f64() * 1e3, "SLO guard on");
                g.on_since = Some(now);
            }
            Some(since) if ratio < RELEASE && now.saturating_sub(since) >= window => {
                tracing::info!(
                    job,
                    p99_ms = recent_p99.as_secs_f64() * 1e3,
                    "SLO guard off"
                );
                g.on_since = None;
            }
            _ => {}
        }
        self.apply_guards(now);
    }

    /// A stream task of `job` was launched on `seq` at `now`.
    pub(super) fn slo_note_launch(&mut self, now: Duration, job: JobId, seq: Seq) {
        if !self.slo_active() {
            return;
        }
        let g = self.slo.jobs.entry(job).or_default();
        g.launches.insert(seq, now);
        if g.on_since.is_some() && !self.slo.guarded.contains(&seq) {
            self.set_guarded(seq, true);
        }
    }

    /// Brings every executor's guard in line with the jobs' guards at `now`; drops launches out
    /// of the window or of executors gone.
    pub(super) fn apply_guards(&mut self, now: Duration) {
        let active = self.slo_active();
        let window = self.cfg.slo_window;
        let execs = &self.execs;
        let mut want = BTreeSet::new();
        for g in self.slo.jobs.values_mut() {
            if !active {
                g.on_since = None;
            }
            g.launches.retain(|seq, at| {
                execs.execs.contains_key(seq) && now.saturating_sub(*at) <= window
            });
            if g.on_since.is_some() {
                want.extend(g.launches.keys().copied());
            }
        }
        let gone: Vec<Seq> = self.slo.guarded.difference(&want).copied().collect();
        let new: Vec<Seq> = want.difference(&self.slo.guarded).copied().collect();
        for seq in gone {
            self.set_guarded(seq, false);
        }
        for seq in new {
            self.set_guarded(seq, true);
        }
    }

    fn set_guarded(&mut self, seq: Seq, on: bool) {
        if on {
            self.slo.guarded.insert(seq);
        } else {
            self.slo.guarded.remove(&seq);
        }
        if self.execs.execs.contains_key(&seq) {
            self.execs.with_mut(seq, |e| e.guarded = on);
        }
    }
}
