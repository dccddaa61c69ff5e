//! Placement: the LMA metrics window, executor ranks, and picking an executor (or a victim).
//!
//! An executor's `Rank` is a tuple compared lexicographically, smallest first; the last
//! element is the registration sequence number, which makes ranks unique and ties deterministic.
//!
//! - `lma`: `(spilling, pressure_band, tasks, seq)` where, over the last `metrics_window`
//!   heartbeats, `spilling` is 1 if `spilled_bytes_total` grew during the window,
//!   `pressure_band` is `(mean(memory_used / memory_limit) + suspended_retained_bytes(latest) /
//!   memory_limit)` in tenths (0 for 0–9.9 %, 1 for 10–19.9 %, ...), and `tasks` counts
//!   slots taken plus suspended tasks. Bands (rather than the raw ratio) let task balance decide
//!   among executors of similar pressure. Locality preferences are honoured before the rank.
//! - `lb`: `(0, 0, tasks, seq)`; no locality.
//! - `random`: `(r, 0, 0, seq)` with `r` drawn from the seeded RNG every time the executor's
//!   state changes, so the smallest rank is a uniform pick; no locality.

use super::config::Placement;
use super::executors::{Executor, Registry, STREAM_POOL, Seq};
use super::protocol::{ExecutorMetrics, TaskSpec};
use neptune_core::ids::TaskId;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// Placement order of an executor: smaller is preferred. See the module docs.
pub(super) type Rank = (u64, u64, u64, Seq);

/// Memory pressure in per mille per band (`lma`): 100 ‰ = 10 %.
const BAND_PERMILLE: u64 = 100;

/// The last `len` heartbeat samples of one executor, reduced to what LMA ranks by.
#[derive(Debug)]
pub(super) struct MetricsWindow {
    len: usize,
    /// (memory used in ‰ of the limit, spilled bytes total) per sample, oldest first.
    samples: VecDeque<(u64, u64)>,
    /// `spilled_bytes_total` of the sample that last left the window (0 = since registration).
    spilled_before: u64,
    /// Retained bytes of suspended tasks in ‰ of the limit, from the latest sample.
    retained_permille: u64,
    /// Sum of `samples.0`, kept to make the mean O(1).
    used_sum: u64,
}

/// Highest ratio kept, in ‰ (1000 × the limit): beyond it every executor is in the last band
/// anyway, and sums over a window of samples cannot overflow.
const MAX_PERMILLE: u64 = 1_000_000;

fn permille(bytes: u64, limit: u64) -> u64 {
    if limit == 0 {
        0
    } else {
        u64::try_from(u128::from(bytes) * 1000 / u128::from(limit))
            .unwrap_or(u64::MAX)
            .min(MAX_PERMILLE)
    }
}

impl MetricsWindow {
    pub(super) fn new(len: usize) -> Self {
        MetricsWindow {
            len: len.max(1),
            samples: VecDeque::new(),
            spilled_before: 0,
            retained_permille: 0,
            used_sum: 0,
        }
    }

    /// Adds a sample; `limit` is the memory limit the ratios are taken against.
    pub(super) fn push(&mut self, m: ExecutorMetrics, limit: u64) {
        let used = permille(m.memory_used, limit);
        self.samples.push_back((used, m.spilled_bytes_total));
        self.used_sum = self.used_sum.saturating_add(used);
        if self.samples.len() > self.len
            && let Some((old_used, old_spilled)) = self.samples.pop_front()
        {
            self.used_sum = self.used_sum.saturating_sub(old_used);
            self.spilled_before = old_spilled;
        }
        self.retained_permille = permille(m.suspended_retained_bytes, limit);
    }

    /// Whether the executor spilled during the window.
    pub(super) fn spilling(&self) -> bool {
        self.samples
            .back()
            .is_some_and(|(_, s)| *s > self.spilled_before)
    }

    /// Mean memory use plus retained bytes, in ‰ of the limit (0 before any heartbeat).
    pub(super) fn pressure_permille(&self) -> u64 {
        let mean = match self.samples.len() {
            0 => 0,
            n => self.used_sum / n as u64,
        };
        mean.saturating_add(self.retained_permille)
    }
}

/// The rank of `e` under `placement` (draws from `rng` for `random`).
pub(super) fn rank(placement: Placement, e: &Executor, rng: &mut ChaCha8Rng) -> Rank {
    let tasks = e.tasks() as u64;
    match placement {
        Placement::Lma => (
            u64::from(e.window.spilling()),
            e.window.pressure_permille() / BAND_PERMILLE,
            tasks,
            e.seq,
        ),
        Placement::Lb => (0, 0, tasks, e.seq),
        Placement::Random => (rng.next_u64(), 0, 0, e.seq),
    }
}

impl Registry {
    /// The preferred executors of `spec` (known, in `pool`) when placement is `lma`, best rank
    /// first.
    fn local_candidates(
        &self,
        placement: Placement,
        spec: &TaskSpec,
        pool: usize,
    ) -> Vec<&Executor> {
        if placement != Placement::Lma || spec.preferred.is_empty() {
            return Vec::new();
        }
        let mut local: Vec<&Executor> = spec
            .preferred
            .iter()
            .filter_map(|name| self.seq_of(name))
            .map(|seq| self.get(seq))
            .filter(|e| e.pool == super::executors::pool_of(pool))
            .collect();
        local.sort_by_key(|e| e.rank);
        local.dedup_by_key(|e| e.seq);
        local
    }

    /// The executor in `pool` (a free-slot class: [`super::executors::BATCH_SLOTS`] for batch
    /// work beside stream tasks) with a free slot that `spec` should go to, if any: a preferred
    /// executor with a free slot (`lma`), else the best-ranked executor with a free slot.
    pub(super) fn pick_free(
        &self,
        placement: Placement,
        spec: &TaskSpec,
        pool: usize,
    ) -> Option<Seq> {
        let local = self.local_candidates(placement, spec, pool);
        if let Some(e) = local.iter().find(|e| e.free_in(pool) > 0) {
            return Some(e.seq);
        }
        self.free[pool].first().map(|r| r.3)
    }

    /// Where stream task `spec` should preempt, and whom: on a preferred executor (`lma`), else
    /// the best-ranked executor with a candidate; on that executor, the candidate with the
    /// smallest `victim_key`. Every executor in the victim index has a candidate, so this is
    /// O(|preferred| + log E + cores).
    pub(super) fn pick_victim<K: Ord>(
        &self,
        placement: Placement,
        spec: &TaskSpec,
        victim_key: impl Fn(TaskId) -> K,
    ) -> Option<(Seq, TaskId)> {
        let best_on = |e: &Executor| {
            e.candidates
                .iter()
                .map(|t| (victim_key(*t), *t))
                .min()
                .map(|(_, t)| (e.seq, t))
        };
        let local = self.local_candidates(placement, spec, STREAM_POOL);
        if let Some(found) = local.iter().find_map(|e| best_on(e)) {
            return Some(found);
        }
        self.victims.first().and_then(|r| best_on(self.get(r.3)))
    }
}
