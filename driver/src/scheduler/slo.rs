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
//! the window holds a micro-batch's worth of slots back from batch work (as many as the job's
//! latest micro-batch launched there, at most all cores but one): no batch launch or resume
//! takes them, so the next micro-batch's tasks find free cores instead of waiting for batch
//! tasks to park (the suspend round trip). Stream tasks still take every slot, and still
//! preempt when all are taken. Batch work always keeps a core per executor (an executor of one
//! core is never held), or it would stop altogether. The cost to batch is the held cores' work
//! while the guard is on, which is why it turns off again: the aim is the latency of `static`
//! (cores set apart for stream work) at the batch throughput of plain `neptune`.
//!
//! With acting ahead on (`scheduler.slo_lead_us` > 0, the default; `ahead.rs`) no guard turns
//! on: the hold is the mode of `scheduler.slo_lead_us=0` only. Measured on 1 x 2 with a target
//! at 2x stream-alone's p99 (docs/evaluation.md), a guard kept as a last resort behind acting
//! ahead engaged on one slow window and, needing the p99 well under the target for a whole
//! window to let go, held a core for the rest of the run: batch fell to the static split's
//! 60 % of fifo, with or without acting ahead.
//!
//! Guards are re-evaluated at each latency report and each stream launch (an executor whose
//! last launch of a guarded job left the window is released at the next report); a policy
//! without preemption, or the mode switched off, clears them all.

use super::Scheduler;
use super::config::preemption;
use super::executors::Seq;
use neptune_core::ids::{JobId, TaskId};
use std::collections::BTreeMap;
use std::time::Duration;

/// A guard turns on when the recent p99 passes this fraction of the target.
pub const ENGAGE: f64 = 0.8;
/// A guard turns off when the recent p99 is under this fraction of the target (and has been on
/// for a window).
pub const RELEASE: f64 = 0.5;

/// A job's latest stream launches on one executor.
#[derive(Debug, Clone, Copy)]
struct Launches {
    /// When the last one was.
    at: Duration,
    /// Its run (micro-batch).
    run: u64,
    /// The job's stream tasks of that run launched there: a micro-batch's worth of cores.
    tasks: u32,
    /// The lowest stage of that run launched there, and how many of its tasks: the cores the
    /// micro-batch takes the moment it is due (what acting ahead reserves).
    first_stage: u32,
    first_tasks: u32,
}

/// One stream job's guard.
#[derive(Debug, Default)]
struct JobGuard {
    /// Since when the guard is on (`None`: off).
    on_since: Option<Duration>,
    /// The job's latest launches on each executor (one entry per executor incarnation, dropped
    /// once out of the window or the executor gone).
    launches: BTreeMap<Seq, Launches>,
}

/// Every stream job's guard, and the slots they hold on each executor.
#[derive(Debug, Default)]
pub(super) struct SloGuards {
    jobs: BTreeMap<JobId, JobGuard>,
    /// Executors guarded now and the slots wanted there (mirrors `Executor::guarded`).
    guarded: BTreeMap<Seq, u32>,
}

impl SloGuards {
    /// Slots the guards want on executor `seq` now (0: not guarded).
    #[cfg(test)]
    pub(super) fn wanted(&self, seq: Seq) -> u32 {
        self.guarded.get(&seq).copied().unwrap_or(0)
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

    /// Whether stream job `job`'s SLO guard is on (holding cores back from batch work).
    pub fn slo_guarded(&self, job: JobId) -> bool {
        self.slo.is_on(job)
    }

    /// Jobs whose SLO guard is on, and the executors holding slots for them.
    pub fn slo_guard_counts(&self) -> (usize, usize) {
        let jobs = self.slo.jobs.values().filter(|g| g.on_since.is_some());
        let held = self.slo.guarded.keys();
        let held = held.filter(|seq| self.execs.execs.get(seq).is_some_and(|e| e.held() > 0));
        (jobs.count(), held.count())
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
            // Acting ahead replaces the hold: see the module docs.
            None if ratio > ENGAGE && self.cfg.slo_lead.is_zero() => {
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

    /// A stream task of run `run` of `job` was launched on `seq` at `now`.
    pub(super) fn slo_note_launch(&mut self, now: Duration, task: TaskId, seq: Seq) {
        let (job, run, stage) = (task.job, task.run, task.stage);
        // Only jobs that report their latency (those with a target) are tracked: their reports
        // also prune the launches, so the map stays bounded by the executors of the window.
        if !self.slo_active() {
            return;
        }
        let Some(g) = self.slo.jobs.get_mut(&job) else {
            return;
        };
        let fresh = Launches {
            at: now,
            run,
            tasks: 0,
            first_stage: stage,
            first_tasks: 0,
        };
        let l = g.launches.entry(seq).or_insert(fresh);
        if l.run != run {
            *l = fresh;
        }
        l.at = now;
        l.tasks = l.tasks.saturating_add(1);
        if stage < l.first_stage {
            (l.first_stage, l.first_tasks) = (stage, 0);
        }
        if stage == l.first_stage {
            l.first_tasks = l.first_tasks.saturating_add(1);
        }
        if g.on_since.is_some() {
            // Only this executor's wish can have changed: O(guarded jobs), not a full pass.
            let want = self
                .slo
                .jobs
                .values()
                .filter(|g| g.on_since.is_some())
                .filter_map(|g| g.launches.get(&seq).map(|l| l.tasks))
                .max()
                .unwrap_or(0);
            if self.slo.guarded.get(&seq) != Some(&want) {
                self.slo.guarded.insert(seq, want);
                self.execs.with_mut(seq, |e| e.guarded = want);
            }
        }
    }

    /// Where job `job`'s latest micro-batch launched its first stage within the window (and how
    /// many tasks on each executor), and the latest run it launched: what acting ahead reserves.
    pub(super) fn slo_first_stage_launches(&self, job: JobId) -> (Vec<(Seq, u32)>, Option<u64>) {
        let Some(g) = self.slo.jobs.get(&job) else {
            return (Vec::new(), None);
        };
        let window = self.cfg.slo_window;
        let recent = g
            .launches
            .iter()
            .filter(|(_, l)| self.now.saturating_sub(l.at) <= window);
        let latest = recent.clone().map(|(_, l)| l.run).max();
        let wanted = recent
            .filter(|(_, l)| Some(l.run) == latest)
            .map(|(seq, l)| (*seq, l.first_tasks))
            .collect();
        (wanted, latest)
    }

    /// Brings every executor's guard in line with the jobs' guards at `now`; drops launches out
    /// of the window or of executors gone.
    pub(super) fn apply_guards(&mut self, now: Duration) {
        let active = self.slo_active();
        let window = self.cfg.slo_window;
        let execs = &self.execs;
        let mut want: BTreeMap<Seq, u32> = BTreeMap::new();
        for g in self.slo.jobs.values_mut() {
            if !active {
                g.on_since = None;
            }
            g.launches.retain(|seq, l| {
                execs.execs.contains_key(seq) && now.saturating_sub(l.at) <= window
            });
            if g.on_since.is_some() {
                for (seq, l) in &g.launches {
                    let w = want.entry(*seq).or_default();
                    *w = (*w).max(l.tasks);
                }
            }
        }
        let changed: Vec<(Seq, u32)> = self
            .slo
            .guarded
            .keys()
            .filter(|seq| !want.contains_key(seq))
            .map(|seq| (*seq, 0))
            .chain(
                want.iter()
                    .filter(|(seq, n)| self.slo.guarded.get(seq) != Some(n))
                    .map(|(seq, n)| (*seq, *n)),
            )
            .collect();
        self.slo.guarded = want;
        for (seq, n) in changed {
            if self.execs.execs.contains_key(&seq) {
                self.execs.with_mut(seq, |e| e.guarded = n);
            }
        }
    }
}
