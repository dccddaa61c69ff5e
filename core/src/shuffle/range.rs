//! Range partitioning for a sort: the three map tasks that send every record to the reduce
//! partition of its key's range, so reduce partition `i` holds keys no greater than those of
//! partition `i + 1`.
//!
//! 1. **Sample** ([`run_sample_task`], one task per input partition): reservoir-samples at most
//!    [`sample_size`] keys of its partition with an RNG seeded from (run, partition), so a
//!    recomputation picks the same keys, and writes them, each weighted by `seen / sampled`, into
//!    a single reduce partition. Weights make a large input partition count for its size even
//!    though every partition sends a sample of the same bound.
//! 2. **Boundaries** ([`run_bounds_task`], one task): sorts the weighted sample (spilling beyond
//!    its budget, like a reduce task) and picks the `partitions - 1` keys at the weighted
//!    quantiles ([`boundaries`]). A heavy key is picked several times: boundaries may repeat.
//!    Writes them as one record into a single reduce partition.
//! 3. **Partition** ([`run_range_map_task`], one task per input partition): reads the boundaries
//!    and recomputes its input partition, sending each record to its key's range
//!    ([`RangePartitioner`]).
//!
//! Everything is deterministic given the input: the sample, the order of the merged sample, the
//! floating-point sums over it, and which partition each record of a repeated boundary key goes
//! to. A lost map output recomputed from lineage is therefore the same output.

use super::read::{for_each_shuffled, for_each_shuffled_in};
use super::sort::SpillingSorter;
use super::write::write_records;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::task::{TaskContext, TaskPhase};
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Sampled keys wanted per reduce partition, in total over the input (Spark's sortByKey uses 20).
pub const SAMPLE_PER_PARTITION: u64 = 20;

/// Over-sampling factor per input partition, for input partitions of uneven size.
pub const OVERSAMPLE: u64 = 3;

/// Cap of the wanted total sample, and of one input partition's sample.
pub const MAX_SAMPLE: u64 = 1_000_000;

/// Keys sampled from each of `input_partitions` for `reduce_partitions` ranges: over-sampled
/// share of `min(20 × reduce_partitions, MAX_SAMPLE)`, at least 1.
pub fn sample_size(reduce_partitions: u32, input_partitions: u32) -> usize {
    let total = (SAMPLE_PER_PARTITION * u64::from(reduce_partitions.max(1))).min(MAX_SAMPLE);
    let per = (OVERSAMPLE * total).div_ceil(u64::from(input_partitions.max(1)));
    per.clamp(1, MAX_SAMPLE) as usize
}

/// A uniform sample of at most `cap` keys (Algorithm R) drawn with a seeded RNG.
#[derive(Debug)]
pub struct Reservoir<K> {
    cap: usize,
    seen: u64,
    keys: Vec<K>,
    rng: ChaCha8Rng,
}

impl<K: Clone> Reservoir<K> {
    /// An empty sample of at most `cap` keys whose choices follow `seed`.
    pub fn new(cap: usize, seed: u64) -> Self {
        Self {
            cap,
            seen: 0,
            keys: Vec::with_capacity(cap.min(4096)),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Offer one key (cloned only when it is kept).
    pub fn offer(&mut self, key: &K) {
        self.seen += 1;
        if self.keys.len() < self.cap {
            self.keys.push(key.clone());
            return;
        }
        let j = self.rng.random_range(0..self.seen);
        if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.keys.get_mut(j)) {
            *slot = key.clone();
        }
    }

    /// Keys offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Records each sampled key stands for (0 for an empty sample).
    pub fn weight(&self) -> f64 {
        if self.keys.is_empty() {
            0.0
        } else {
            self.seen as f64 / self.keys.len() as f64
        }
    }

    /// The sampled keys.
    pub fn into_keys(self) -> Vec<K> {
        self.keys
    }
}

/// The `partitions - 1` range boundaries of weighted keys given in key order (`total` being the
/// sum of their weights): boundary `i` is the first key at which the cumulative weight reaches
/// `(i + 1) / partitions` of the total. A key holding several quantiles repeats; fewer
/// boundaries come back only when the weights are all zero (no input).
pub fn boundaries<K: Clone>(
    sorted: impl Iterator<Item = (K, f64)>,
    total: f64,
    partitions: u32,
) -> Vec<K> {
    let want = partitions.saturating_sub(1) as usize;
    let mut bounds = Vec::with_capacity(want);
    if want == 0 || total <= 0.0 {
        return bounds;
    }
    let step = total / f64::from(partitions);
    let mut cumulative = 0.0;
    for (key, weight) in sorted {
        cumulative += weight;
        while bounds.len() < want && cumulative >= step * (bounds.len() + 1) as f64 {
            bounds.push(key.clone());
        }
        if bounds.len() == want {
            break;
        }
    }
    bounds
}

/// Sends a key to its range. With boundaries `b`, partition `i` takes keys in `[b[i-1], b[i]]`
/// (open-ended at both ends), so every key of partition `i` is `<=` every key of `i + 1`.
///
/// A key equal to no boundary, or to a single one (`b[lo]`), goes to partition `lo`, so every
/// record of an ordinary key meets in one partition. A key repeated as boundaries `b[lo..hi]`
/// (it holds several quantiles of the sample) may go to any partition in `lo..=hi`, the middle
/// ones holding nothing else: its records are dealt over them in turn, starting at an offset so
/// map tasks do not all favour the first. This spreads a heavy key over the partitions its
/// weight earned instead of piling it onto one.
#[derive(Debug)]
pub struct RangePartitioner<K> {
    bounds: Vec<K>,
    next: u64,
}

impl<K: Ord> RangePartitioner<K> {
    /// A partitioner over `bounds` (sorted; repeats allowed) dealing repeated-boundary keys from
    /// `offset`.
    pub fn new(bounds: Vec<K>, offset: u64) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] <= w[1]), "sorted boundaries");
        Self {
            bounds,
            next: offset,
        }
    }

    /// Number of partitions (boundaries + 1).
    pub fn partitions(&self) -> u32 {
        self.bounds.len() as u32 + 1
    }

    /// The partition of `key`.
    pub fn partition(&mut self, key: &K) -> u32 {
        let lo = self.bounds.partition_point(|b| b < key);
        let hi = lo + self.bounds[lo..].partition_point(|b| b <= key);
        if hi - lo < 2 {
            return lo as u32;
        }
        let span = (hi - lo + 1) as u64;
        let p = lo as u64 + self.next % span;
        self.next = self.next.wrapping_add(1);
        p as u32
    }
}

/// Seed of a sample task's reservoir: mixed from (run, partition) only, so every attempt of
/// the task on any executor samples the same keys.
fn sample_seed(ctx: &TaskContext) -> u64 {
    let mut z = 0x5A4D_9E1E_u64
        ^ ctx.run().wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(ctx.partition()).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Run one sample task: sample the keys of `input`'s partition for `reduce_partitions` ranges
/// and write them, weighted, into reduce partition 0. Returns the encoded map status.
///
/// # Errors
/// The input's error, or a message naming what could not be written.
pub fn run_sample_task<K, V>(
    ctx: &TaskContext,
    input: &Dataset<(K, V)>,
    reduce_partitions: u32,
) -> Result<Vec<u8>>
where
    K: Clone + Serialize + 'static,
    V: 'static,
{
    let cap = sample_size(reduce_partitions, input.partitions());
    let mut reservoir = Reservoir::new(cap, sample_seed(ctx));
    let records = input.iter(ctx);
    ctx.set_phase(TaskPhase::ShuffleWrite);
    for (k, _) in records {
        reservoir.offer(&k);
        if reservoir.seen() == cap as u64 {
            let per = std::mem::size_of::<K>() + super::aggregate::ENTRY_OVERHEAD;
            ctx.set_retained_bytes((cap * per) as u64);
        }
    }
    if let Some(e) = ctx.take_error() {
        return Err(e);
    }
    if ctx.is_killed() {
        return Ok(Vec::new());
    }
    let weight = reservoir.weight();
    let sample = reservoir.into_keys().into_iter().map(|k| (k, weight));
    write_records(ctx, 1, sample, |_| 0)
}

/// Run the boundaries task: read every weighted sample (input slot 0), sort it, and write the
/// boundaries of `reduce_partitions` ranges as one record into reduce partition 0.
///
/// # Errors
/// A fetch failure, a sort spill that cannot be written, or a write error.
pub fn run_bounds_task<K>(ctx: &TaskContext, reduce_partitions: u32) -> Result<Vec<u8>>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
{
    let blocks = ctx.blocks().ok_or_else(|| Error::Launch {
        task: ctx.id(),
        problem: "reads a shuffle but runs without a block store".into(),
    })?;
    let mut sorter = SpillingSorter::<K, f64>::new(blocks.task_budget());
    let mut total = 0.0;
    for_each_shuffled(ctx, 0, |(k, w): (K, f64)| {
        total += w;
        sorter.push(ctx, &*blocks, k, w)
    })?;
    if ctx.is_killed() {
        return Ok(Vec::new());
    }
    let bounds = boundaries(sorter.finish(ctx, &*blocks)?, total, reduce_partitions);
    if let Some(e) = ctx.take_error() {
        return Err(e);
    }
    if ctx.is_killed() {
        return Ok(Vec::new());
    }
    write_records(ctx, 1, std::iter::once(bounds), |_| 0)
}

/// Run one partitioning task: read the boundaries from input slot `bounds_slot` (none: a single
/// range) and write every record of `input`'s partition to its key's range among
/// `reduce_partitions`.
///
/// # Errors
/// A fetch failure, missing boundaries, the input's error, or a write error.
pub fn run_range_map_task<K, V>(
    ctx: &TaskContext,
    input: &Dataset<(K, V)>,
    bounds_slot: Option<usize>,
    reduce_partitions: u32,
) -> Result<Vec<u8>>
where
    K: Ord + Serialize + DeserializeOwned + 'static,
    V: Serialize + 'static,
{
    let mut bounds = Vec::new();
    if let Some(slot) = bounds_slot {
        let mut got = None;
        for_each_shuffled_in(ctx, slot, 0, |b: Vec<K>| {
            got = Some(b);
            Ok(())
        })?;
        if ctx.is_killed() {
            return Ok(Vec::new());
        }
        bounds = got.ok_or_else(|| Error::Launch {
            task: ctx.id(),
            problem: format!("found no range boundaries in shuffle input {slot}"),
        })?;
    }
    let mut ranges = RangePartitioner::new(bounds, u64::from(ctx.partition()));
    let records = input.iter(ctx);
    write_records(ctx, reduce_partitions, records, |(k, _)| {
        ranges.partition(k)
    })
}

#[cfg(test)]
#[path = "range_tests.rs"]
mod tests;
