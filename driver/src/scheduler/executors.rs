//! Executor registry: per-executor slot accounting and the ordered indices placement reads.
//!
//! Every executor holds the sets its tasks live in (running, being preempted, suspended, being
//! killed). The registry keeps four indices so no event scans all executors:
//! `free[pool]` (executors with a free slot, ordered by placement rank), `victims` (executors
//! with a preemptible-kind batch task, same order), `resumable` (a free slot and a suspended
//! task) and `by_last_seen` (heartbeat timeouts). Mutate an executor only through
//! [`Registry::with_mut`], which re-indexes it afterwards.

use super::placement::{MetricsWindow, Rank, rank};
use super::protocol::ExecutorMetrics;
use crate::scheduler::config::Placement;
use neptune_core::ids::{ExecutorId, TaskId};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Internal executor handle: registration sequence number, unique per incarnation (an executor
/// that re-registers under the same id gets a new one), and the last tie-breaker of every rank.
pub(super) type Seq = u64;

/// Pool of executors that take stream tasks (every executor, except under `static`).
pub(super) const STREAM_POOL: usize = 0;
/// Pool of batch-only executors (`static` only).
pub(super) const BATCH_POOL: usize = 1;
/// Not a pool but a view of [`STREAM_POOL`] for batch work: its executors with a free slot the
/// SLO guard does not hold back (see `slo.rs`). The same as [`STREAM_POOL`] while no guard is on.
pub(super) const BATCH_SLOTS: usize = 2;

/// The pool whose executors the free-slot index `class` lists.
pub(super) fn pool_of(class: usize) -> usize {
    if class == BATCH_SLOTS {
        STREAM_POOL
    } else {
        class
    }
}

/// One registered executor.
#[derive(Debug)]
pub(super) struct Executor {
    pub(super) name: ExecutorId,
    pub(super) seq: Seq,
    pub(super) cores: u32,
    pub(super) memory_limit: u64,
    /// [`STREAM_POOL`] or [`BATCH_POOL`]; fixed for the executor's lifetime.
    pub(super) pool: usize,
    pub(super) last_seen: Duration,
    pub(super) window: MetricsWindow,
    /// Tasks holding a slot on their own (state `Running`).
    pub(super) running: BTreeSet<TaskId>,
    /// Running batch tasks that may be preempted (confirmed, not cancelled); protection by the
    /// anti-starvation quantum is checked at pick time because it expires with the clock.
    pub(super) candidates: BTreeSet<TaskId>,
    /// Victim being preempted → the task whose launch carried the preemption. Each pair holds
    /// exactly one slot: the victim's, which the launched task inherits.
    pub(super) preempting: BTreeMap<TaskId, TaskId>,
    /// Tasks a [`Command::Suspend`](super::Command) was sent for, not yet parked: each holds
    /// its slot, which nobody inherits (acting ahead of a micro-batch, see `ahead.rs`).
    pub(super) suspending: BTreeSet<TaskId>,
    /// Suspended tasks by suspension order (oldest first resumes first). No slot.
    pub(super) suspended: BTreeMap<u64, TaskId>,
    /// Suspended tasks of cancelled jobs, waiting for their kill to be confirmed. No slot.
    pub(super) killing: BTreeSet<TaskId>,
    /// The rank under which the executor is in the indices now.
    pub(super) rank: Rank,
    /// A launch to it went unacknowledged for `launch_ack_timeout`: it gets no launch, resume
    /// or preemption until it acknowledges something again (or is dropped).
    pub(super) suspect: bool,
    /// Launches to it that timed out unacknowledged (task, attempt): a late acknowledgement of
    /// one proves it processes launches again and clears `suspect`. Emptied then; at most one
    /// entry per launch given while it was trusted.
    pub(super) timed_out: BTreeSet<(TaskId, u32)>,
    /// Slots the SLO guard wants held back from batch work (launches and resumes): a
    /// micro-batch's worth of the guarded jobs' stream tasks here. [`Executor::held`] caps it.
    pub(super) guarded: u32,
    /// Slots reserved for stream jobs' imminent micro-batches (acting ahead, see `ahead.rs`):
    /// kept from batch work like `guarded`, but every core may be reserved (for a lead and
    /// the micro-batch's tasks only).
    pub(super) reserved: u32,
}

impl Executor {
    /// Slots taken: running tasks plus one per preemption in flight.
    pub(super) fn occupied(&self) -> usize {
        self.running.len() + self.preempting.len() + self.suspending.len()
    }

    /// Free slots.
    pub(super) fn free(&self) -> usize {
        (self.cores as usize).saturating_sub(self.occupied())
    }

    /// Whether it may be given work now: a free slot, and not suspect.
    pub(super) fn launchable(&self) -> bool {
        self.free() > 0 && !self.suspect
    }

    /// Slots held back from batch work: what the SLO guard wants, but never the last core (an
    /// executor of one core is never held; batch work always keeps a core to progress on).
    pub(super) fn held(&self) -> usize {
        self.guarded.min(self.cores.saturating_sub(1)) as usize
    }

    /// Free slots batch work may take: those neither the SLO guard holds back nor a
    /// reservation keeps for a micro-batch.
    pub(super) fn batch_free(&self) -> usize {
        let kept = self.held().max(self.reserved.min(self.cores) as usize);
        self.free().saturating_sub(kept)
    }

    /// Free slots as the free-slot index `class` counts them.
    pub(super) fn free_in(&self, class: usize) -> usize {
        if class == BATCH_SLOTS {
            self.batch_free()
        } else {
            self.free()
        }
    }

    /// Whether a stream task may preempt one of its batch tasks now.
    pub(super) fn preemptible(&self) -> bool {
        !self.candidates.is_empty() && !self.suspect
    }

    /// Tasks the executor holds (slots taken plus suspended): what `lma` and `lb` equalise.
    pub(super) fn tasks(&self) -> usize {
        self.occupied() + self.suspended.len()
    }

    /// Every task placed on this executor, in any state.
    pub(super) fn all_tasks(&self) -> BTreeSet<TaskId> {
        let mut all: BTreeSet<TaskId> = self.running.iter().copied().collect();
        all.extend(self.preempting.iter().flat_map(|(v, s)| [*v, *s]));
        all.extend(self.suspending.iter().copied());
        all.extend(self.suspended.values().copied());
        all.extend(self.killing.iter().copied());
        all
    }
}

/// All registered executors and their indices.
#[derive(Debug)]
pub(super) struct Registry {
    pub(super) execs: HashMap<Seq, Executor>,
    pub(super) names: HashMap<ExecutorId, Seq>,
    /// Executors with a free slot, by [`STREAM_POOL`], [`BATCH_POOL`] and [`BATCH_SLOTS`].
    pub(super) free: [BTreeSet<Rank>; 3],
    pub(super) victims: BTreeSet<Rank>,
    pub(super) resumable: BTreeSet<Seq>,
    pub(super) by_last_seen: BTreeSet<(Duration, Seq)>,
    next_seq: Seq,
    placement: Placement,
    metrics_window: usize,
    /// `Some(n)` under `static`: the first `n` executors alive take only stream tasks.
    static_stream: Option<usize>,
    /// Registered executors in [`STREAM_POOL`].
    stream_members: usize,
    rng: ChaCha8Rng,
}

impl Registry {
    pub(super) fn new(
        placement: Placement,
        metrics_window: usize,
        static_stream: Option<usize>,
        seed: u64,
    ) -> Self {
        Registry {
            execs: HashMap::new(),
            names: HashMap::new(),
            free: [BTreeSet::new(), BTreeSet::new(), BTreeSet::new()],
            victims: BTreeSet::new(),
            resumable: BTreeSet::new(),
            by_last_seen: BTreeSet::new(),
            next_seq: 0,
            placement,
            metrics_window,
            static_stream,
            stream_members: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub(super) fn seq_of(&self, name: &str) -> Option<Seq> {
        self.names.get(name).copied()
    }

    pub(super) fn get(&self, seq: Seq) -> &Executor {
        &self.execs[&seq]
    }

    /// Adds an executor (the caller has removed any previous incarnation of `name`).
    ///
    /// Under `static`, it takes only stream tasks while fewer than `static_stream_executors`
    /// stream executors are registered, else only batch tasks; the role never changes.
    pub(super) fn register(
        &mut self,
        name: ExecutorId,
        cores: u32,
        memory_limit: u64,
        now: Duration,
    ) -> Seq {
        let seq = self.next_seq;
        self.next_seq += 1;
        let pool = match self.static_stream {
            Some(n) if self.stream_members >= n => BATCH_POOL,
            _ => STREAM_POOL,
        };
        if pool == STREAM_POOL {
            self.stream_members += 1;
        }
        let exec = Executor {
            name: name.clone(),
            seq,
            cores,
            memory_limit,
            pool,
            last_seen: now,
            window: MetricsWindow::new(self.metrics_window),
            running: BTreeSet::new(),
            candidates: BTreeSet::new(),
            preempting: BTreeMap::new(),
            suspending: BTreeSet::new(),
            suspended: BTreeMap::new(),
            killing: BTreeSet::new(),
            rank: (0, 0, 0, seq),
            suspect: false,
            timed_out: BTreeSet::new(),
            guarded: 0,
            reserved: 0,
        };
        self.names.insert(name, seq);
        self.execs.insert(seq, exec);
        self.index(seq);
        seq
    }

    /// Removes an executor from the registry and every index; returns it.
    pub(super) fn remove(&mut self, seq: Seq) -> Executor {
        self.unindex(seq);
        let exec = self
            .execs
            .remove(&seq)
            .expect("removing a registered executor");
        self.names.remove(&exec.name);
        if exec.pool == STREAM_POOL {
            self.stream_members -= 1;
        }
        exec
    }

    /// Applies `f` to the executor, then re-computes its rank and index entries.
    pub(super) fn with_mut<R>(&mut self, seq: Seq, f: impl FnOnce(&mut Executor) -> R) -> R {
        self.unindex(seq);
        let r = f(self
            .execs
            .get_mut(&seq)
            .expect("mutating a registered executor"));
        self.index(seq);
        r
    }

    /// Records a heartbeat: liveness and one metrics sample.
    pub(super) fn heartbeat(&mut self, seq: Seq, now: Duration, metrics: ExecutorMetrics) {
        self.with_mut(seq, |e| {
            e.last_seen = now;
            let limit = if metrics.memory_limit > 0 {
                metrics.memory_limit
            } else {
                e.memory_limit
            };
            e.window.push(metrics, limit);
        });
    }

    /// Executors silent for longer than `timeout` at `now`, oldest first.
    pub(super) fn timed_out(&self, now: Duration, timeout: Duration) -> Vec<Seq> {
        self.by_last_seen
            .iter()
            .take_while(|(seen, _)| now.saturating_sub(*seen) > timeout)
            .map(|(_, seq)| *seq)
            .collect()
    }

    /// Switches placement and re-ranks every executor under it.
    pub(super) fn set_placement(&mut self, placement: Placement) {
        self.placement = placement;
        let seqs: Vec<Seq> = self.execs.keys().copied().collect();
        for seq in seqs {
            self.unindex(seq);
            self.index(seq);
        }
    }

    fn unindex(&mut self, seq: Seq) {
        let e = &self.execs[&seq];
        self.free[e.pool].remove(&e.rank);
        self.free[BATCH_SLOTS].remove(&e.rank);
        self.victims.remove(&e.rank);
        self.resumable.remove(&seq);
        self.by_last_seen.remove(&(e.last_seen, seq));
    }

    fn index(&mut self, seq: Seq) {
        let placement = self.placement;
        let e = self
            .execs
            .get_mut(&seq)
            .expect("indexing a registered executor");
        e.rank = rank(placement, e, &mut self.rng);
        if e.launchable() {
            self.free[e.pool].insert(e.rank);
        }
        // Suspended tasks are batch tasks: they resume into slots batch work may take.
        if e.batch_free() > 0 && !e.suspect {
            if e.pool == STREAM_POOL {
                self.free[BATCH_SLOTS].insert(e.rank);
            }
            if !e.suspended.is_empty() {
                self.resumable.insert(seq);
            }
        }
        if e.preemptible() {
            self.victims.insert(e.rank);
        }
        self.by_last_seen.insert((e.last_seen, seq));
    }
}
