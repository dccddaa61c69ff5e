//! The SLO-aware mode acting *ahead* of a micro-batch (`scheduler.slo_aware` with
//! `scheduler.slo_lead_us` > 0): free the cores a stream job's next micro-batch will take just
//! before it is due, and give them back as soon as its tasks have them.
//!
//! Why: under plain `neptune` a micro-batch that finds every core taken by batch work waits
//! for a batch task to park (launch received → core granted: 120–180 µs at p50 in the cluster
//! with a millisecond tail, plus the wait for the victim's next yield point). Holding cores back
//! for as long as a job's p99 is near its target (the guard in `slo.rs`) removes that wait but
//! on a small cluster stays on and becomes a static split: batch lost 42 % of its throughput
//! on 1 x 2 (docs/evaluation.md). Acting ahead costs batch a lead plus the micro-batch's own
//! run per interval, which is what a preemption costs anyway, and nothing between micro-batches.
//!
//! How:
//! - The driver knows when each stream job's next micro-batch is due (its clock). At
//!   `due − lead` it feeds [`Event::StreamDueSoon`](super::Event) (`lead`: the executors'
//!   measured suspend p95 plus `scheduler.slo_lead_us`, computed by the driver).
//! - The scheduler *reserves*, on every executor where the job's latest micro-batch launched its
//!   first stage within `scheduler.slo_window_ms` (the launches `slo.rs` tracks), as many slots as
//!   it launched there. Reserved slots are kept from batch launches and resumes
//!   (`Executor::reserved`, read by `batch_free`); if batch tasks run in them, the scheduler
//!   suspends those now with a standalone [`Command::Suspend`] (state `Suspending`: the task
//!   holds its slot until the executor reports it parked, and no task inherits the slot). Only
//!   under `neptune`: `kill` would lose their work, so there a reservation only keeps free slots.
//! - The job's stream tasks go to its reserved executors first; if a reserved slot is still
//!   held by a task being suspended, the stream task is launched with a preemption of that task
//!   (the executor starts it on the core the moment the task has parked, see `Preempt`), never
//!   of another batch task.
//! - The reservation ends when the micro-batch has launched (the first dispatch that launched a
//!   task of the job), or at `due + max(lead, slo_lead_us, 5 ms)` if the run did not start, or
//!   when the mode stops acting (policy switched live); a new reservation of the job replaces
//!   its old one.
//!   Executors lost meanwhile leave it. Suspended batch tasks then resume by the usual rules:
//!   into the slots the stream tasks free when they finish.
//!
//! Engagement: the scheduler acts ahead for every stream job with a latency target whenever
//! the mode is on (the driver announces only such jobs), whatever the job's recent p99; the
//! hold guard of `slo.rs` is then off (see its module docs for why).
//!
//! Cost: O(executors of the job's last micro-batch) per announcement, O(log E) per slot
//! consumed; expiry checks the earliest deadline only.

use super::config::preemption;
use super::executors::Seq;
use super::protocol::{Command, PreemptHow};
use super::{Scheduler, TaskState};
use neptune_core::ids::{JobId, TaskId};
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Duration;

/// The least a reservation outlives its due time when the micro-batch has not launched: a
/// driver on a busy node plans a run a few milliseconds late, and a reservation that expired
/// just before its launch would resume the suspended batch tasks only for the micro-batch to
/// preempt them again. (A run that never comes is rare: the job stopped or failed.)
const MIN_GRACE: Duration = Duration::from_millis(5);

/// One stream job's reservation for its next micro-batch.
#[derive(Debug)]
struct Reservation {
    /// When it ends if the micro-batch has not launched by then.
    until: Duration,
    /// The job's latest run launched when it was made: only tasks of later runs take it (a
    /// late stage of the previous micro-batch must not).
    after_run: Option<u64>,
    /// Slots still reserved on each executor (entries at zero are removed).
    slots: BTreeMap<Seq, u32>,
}

/// Every stream job's reservation, and counters for `/status`.
#[derive(Debug, Default)]
pub(super) struct Reservations {
    jobs: BTreeMap<JobId, Reservation>,
    /// Jobs that launched a stream task in the current dispatch (their reservation ends after
    /// it).
    launched: Vec<JobId>,
}

impl Reservations {
    /// Slots reserved for `job` on `seq` now.
    #[cfg(test)]
    pub(super) fn slots(&self, job: JobId, seq: Seq) -> u32 {
        self.jobs
            .get(&job)
            .and_then(|r| r.slots.get(&seq))
            .copied()
            .unwrap_or(0)
    }

    /// Slots reserved on `seq` by every job.
    #[cfg(test)]
    pub(super) fn reserved_on(&self, seq: Seq) -> u32 {
        self.jobs.values().filter_map(|r| r.slots.get(&seq)).sum()
    }

    /// Whether `job` has a reservation now.
    pub(super) fn has(&self, job: JobId) -> bool {
        self.jobs.contains_key(&job)
    }
}

impl Scheduler {
    /// Whether the SLO-aware mode acts ahead under the configuration in force.
    fn ahead_active(&self) -> bool {
        self.cfg.slo_aware && !self.cfg.slo_lead.is_zero() && preemption(self.cfg.policy).is_some()
    }

    /// Whether stream job `job` has slots reserved for its next micro-batch now.
    pub fn slo_reserved(&self, job: JobId) -> bool {
        self.ahead.has(job)
    }

    /// [`Event::StreamDueSoon`](super::Event): job `job`'s micro-batch is due at `due`.
    pub(super) fn on_stream_due_soon(
        &mut self,
        now: Duration,
        job: JobId,
        due: Duration,
        out: &mut Vec<Command>,
    ) {
        if !self.ahead_active() {
            return;
        }
        self.end_reservation(job);
        let (wanted, after_run) = self.slo_first_stage_launches(job);
        if wanted.is_empty() {
            return;
        }
        let grace = due
            .saturating_sub(now)
            .max(self.cfg.slo_lead)
            .max(MIN_GRACE);
        let mut slots = BTreeMap::new();
        for (seq, n) in wanted {
            let Some(e) = self.execs.execs.get(&seq) else {
                continue;
            };
            if e.suspect || e.pool != super::executors::STREAM_POOL {
                continue;
            }
            let n = n.min(e.cores);
            if n == 0 {
                continue;
            }
            slots.insert(seq, n);
            self.execs
                .with_mut(seq, |e| e.reserved = e.reserved.saturating_add(n));
            self.totals.reservations += 1;
            self.free_reserved(seq, out);
        }
        if !slots.is_empty() {
            let until = due.saturating_add(grace);
            self.ahead.jobs.insert(
                job,
                Reservation {
                    until,
                    after_run,
                    slots,
                },
            );
        }
    }

    /// Suspends batch tasks on `seq` until its free slots plus those being freed cover what is
    /// reserved there (under `neptune` only: see the module docs).
    fn free_reserved(&mut self, seq: Seq, out: &mut Vec<Command>) {
        if preemption(self.cfg.policy) != Some(PreemptHow::Suspend) {
            return;
        }
        loop {
            let e = self.execs.get(seq);
            let want = e.reserved.min(e.cores) as usize;
            if e.free() + e.suspending.len() >= want {
                return;
            }
            let tasks = &self.tasks;
            let Some(victim) = e
                .candidates
                .iter()
                .map(|t| {
                    let entry = &tasks[t];
                    ((entry.preemptions, Reverse(entry.started_at)), *t)
                })
                .min()
                .map(|(_, t)| t)
            else {
                return;
            };
            let executor = e.name.clone();
            let attempt = self.tasks[&victim].spec.attempt;
            self.relocate(victim, TaskState::Suspending { exec: seq });
            if let Some(entry) = self.tasks.get_mut(&victim) {
                entry.suspend_sent = true;
            }
            self.totals.ahead_suspensions += 1;
            out.push(Command::Suspend {
                task: victim,
                attempt,
                executor,
            });
        }
    }

    /// Where a stream task of `job` should go first: an executor still holding a reserved
    /// slot for the job with a free slot (`Ok`), or, failing that, one whose reserved slot a
    /// task being suspended still holds (`Err`: launch it with a preemption of that task).
    pub(super) fn reserved_for(&self, task: TaskId) -> Option<Result<Seq, (Seq, TaskId)>> {
        let r = self.ahead.jobs.get(&task.job)?;
        if r.after_run.is_some_and(|run| task.run <= run) {
            return None;
        }
        let execs = &self.execs.execs;
        let usable = |seq: &Seq| execs.get(seq).filter(|e| !e.suspect);
        if let Some(seq) = r
            .slots
            .keys()
            .find(|seq| usable(seq).is_some_and(|e| e.free() > 0))
        {
            return Some(Ok(*seq));
        }
        r.slots.keys().find_map(|seq| {
            let e = usable(seq)?;
            let victim = e.suspending.first()?;
            Some(Err((*seq, *victim)))
        })
    }

    /// Stream task `task` was launched on `seq`: if it belongs to the micro-batch its job's
    /// reservation is for, it takes one of the reserved slots there, if any, and the
    /// reservation ends after this dispatch.
    pub(super) fn consume_reservation(&mut self, task: TaskId, seq: Seq) {
        let job = task.job;
        let Some(r) = self.ahead.jobs.get_mut(&job) else {
            return;
        };
        if r.after_run.is_some_and(|run| task.run <= run) {
            return;
        }
        if let Some(n) = r.slots.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                r.slots.remove(&seq);
            }
            self.execs
                .with_mut(seq, |e| e.reserved = e.reserved.saturating_sub(1));
        }
        if !self.ahead.launched.contains(&job) {
            self.ahead.launched.push(job);
        }
    }

    /// Ends the reservations of the jobs whose micro-batch launched in this dispatch.
    pub(super) fn end_launched_reservations(&mut self) {
        for job in std::mem::take(&mut self.ahead.launched) {
            self.end_reservation(job);
        }
    }

    /// Ends the reservations past their deadline at `now`, and all of them when the mode no
    /// longer acts ahead.
    pub(super) fn expire_reservations(&mut self, now: Duration) {
        if self.ahead.jobs.is_empty() {
            return;
        }
        let active = self.ahead_active();
        let over: Vec<JobId> = self
            .ahead
            .jobs
            .iter()
            .filter(|(_, r)| !active || r.until <= now)
            .map(|(job, _)| *job)
            .collect();
        for job in over {
            self.totals.reservations_expired += 1;
            self.end_reservation(job);
        }
    }

    /// Gives job `job`'s reserved slots back to batch work.
    fn end_reservation(&mut self, job: JobId) {
        let Some(r) = self.ahead.jobs.remove(&job) else {
            return;
        };
        for (seq, n) in r.slots {
            if self.execs.execs.contains_key(&seq) {
                self.execs
                    .with_mut(seq, |e| e.reserved = e.reserved.saturating_sub(n));
            }
        }
    }

    /// Executor `seq` is gone: no reservation counts on it any more.
    pub(super) fn forget_reserved_on(&mut self, seq: Seq) {
        for r in self.ahead.jobs.values_mut() {
            r.slots.remove(&seq);
        }
        self.ahead.jobs.retain(|_, r| !r.slots.is_empty());
    }
}
