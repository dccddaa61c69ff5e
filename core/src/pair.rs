//! Key-based operators on `Dataset<(K, V)>`: each one is a shuffle boundary that splits the job
//! into stages. The upstream pipeline becomes a shuffle-map stage (combine per key, partition by
//! key hash, write blocks); the returned dataset's tasks fetch their partition from every map
//! output and merge it in aggregation state that spills beyond the task's memory budget.
//!
//! Keys hash with fixed seeds (see [`crate::shuffle::key_hash`]), so every process of the binary
//! agrees on partitions. A join's two sides are two independent map stages: the driver runs them
//! at the same time, and the join's reduce stage once both are complete.
//!
//! `sort_by_key` partitions by key range instead of hash, with three map stages before its
//! reduce stage (details in [`crate::shuffle::range`]): *sample* (the input's pipeline,
//! reservoir-sampling keys into one reduce partition), *boundaries* (one task: sorts the sample
//! and picks the range boundaries, written into one reduce partition) and *partition* (the
//! input's pipeline again, sending each record to its key's range). Its reduce tasks sort their
//! range with a [`SpillingSorter`], which spills sorted runs beyond the task's budget.
//!
//! Why this shape. A stage can already compute a narrow pipeline *and* read shuffles: its
//! `reads` list the map stages it fetches, by input slot, and a pipeline downstream of a shuffle
//! uses the leading slots. The partitioning stage appends one slot, the boundaries, which every
//! one of its tasks reads from reduce partition 0
//! ([`for_each_shuffled_in`](crate::shuffle::read::for_each_shuffled_in)); so the sort needs
//! no new stage kind, no driver change and no broadcast channel. The boundaries get a one-task
//! stage of their own rather than every partitioning task fetching the whole sample: that would
//! be a fetch per (sample task, partitioning task) pair, quadratic in the input partitions, and
//! the same sort repeated by every task; this way each partitioning task fetches one small block.
//! With a single output partition the sample and boundaries stages are left out.

use crate::dataset::{BoxIter, Dataset};
use crate::plan::{StageDef, append_lineage};
use crate::shuffle::aggregate::SpillingMap;
use crate::shuffle::range::{run_bounds_task, run_range_map_task, run_sample_task};
use crate::shuffle::read::for_each_shuffled;
use crate::shuffle::sort::SpillingSorter;
use crate::shuffle::write::{Combiner, run_map_task};
use crate::task::{TaskContext, TaskPhase};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::hash::Hash;
use std::sync::Arc;

/// What a shuffle key must be.
pub trait Key: Hash + Eq + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Hash + Eq + Serialize + DeserializeOwned + Send + Sync + 'static> Key for T {}

/// What a shuffled value must be.
pub trait Value: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// The shuffle-map stage writing `input` into `partitions` reduce partitions.
fn map_stage<K: Key, V: 'static, C: Value>(
    input: &Dataset<(K, V)>,
    partitions: u32,
    combiner: Combiner<V, C>,
) -> StageDef {
    let input = input.clone();
    StageDef {
        partitions: input.partitions(),
        reads: input.reads().to_vec(),
        shuffle_out: Some(partitions),
        receivers: input.receivers().to_vec(),
        inputs: input.inputs().to_vec(),
        kafka: input.kafka_sources().to_vec(),
        run_task: Arc::new(move |ctx: &TaskContext| {
            run_map_task(ctx, &input, partitions, &combiner)
        }),
    }
}

type MergeFn<C> = Arc<dyn Fn(&mut C, C) + Send + Sync>;

/// The block store, or a failed task explaining that there is none.
fn store(ctx: &TaskContext) -> Option<Arc<dyn crate::shuffle::Blocks>> {
    let b = ctx.blocks();
    if b.is_none() {
        ctx.fail(crate::Error::Launch {
            task: ctx.id(),
            problem: "reads a shuffle but runs without a block store".into(),
        });
    }
    b
}

/// Merge every record of input `slot` (turned into (key, combiner) by `to`) into `agg`.
fn feed<K: Key, R: DeserializeOwned, C: Value>(
    ctx: &TaskContext,
    blocks: &dyn crate::shuffle::Blocks,
    agg: &mut SpillingMap<K, C>,
    slot: usize,
    to: impl Fn(R) -> (K, C),
    merge: &MergeFn<C>,
) -> bool {
    let r = for_each_shuffled(ctx, slot, |rec: R| {
        let (k, c) = to(rec);
        agg.insert(ctx, blocks, k, c, |c| c, |acc, c| merge(acc, c))
    });
    if let Err(e) = r {
        ctx.fail(e);
        return false;
    }
    true
}

/// Iterate the merged state (in [`TaskPhase::Reduce`]).
fn drain_agg<'a, K: Key, C: Value>(
    ctx: &'a TaskContext,
    blocks: &dyn crate::shuffle::Blocks,
    agg: SpillingMap<K, C>,
    merge: MergeFn<C>,
) -> BoxIter<'a, (K, C)> {
    ctx.set_phase(TaskPhase::Reduce);
    match agg.finish(ctx, blocks, move |a, c| merge(a, c)) {
        Ok(it) => it,
        Err(e) => {
            ctx.fail(e);
            Box::new(std::iter::empty())
        }
    }
}

/// Grouping combiner (values of a key into a `Vec`), used by both sides of a join.
fn grouping<V: 'static>() -> Combiner<V, Vec<V>> {
    Combiner {
        create: Arc::new(|v| vec![v]),
        merge_value: Arc::new(|acc: &mut Vec<V>, v| acc.push(v)),
        merge_combiners: Arc::new(|acc: &mut Vec<V>, mut c| acc.append(&mut c)),
    }
}

impl<K: Key, V: Value> Dataset<(K, V)> {
    /// Combine the values of each key with `create` / `merge_value` / `merge_combiners` into
    /// `partitions` partitions (the general form of the operators below). Values are combined
    /// on the map side first, so only one record per key and map task crosses the network.
    pub fn combine_by_key<C: Value>(
        &self,
        partitions: u32,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(&mut C, V) + Send + Sync + 'static,
        merge_combiners: impl Fn(&mut C, C) + Send + Sync + 'static,
    ) -> Dataset<(K, C)> {
        let partitions = partitions.max(1);
        let merge: MergeFn<C> = Arc::new(merge_combiners);
        let combiner = Combiner {
            create: Arc::new(create),
            merge_value: Arc::new(merge_value),
            merge_combiners: merge.clone(),
        };
        let mut deps = self.lineage().to_vec();
        deps.push(map_stage(self, partitions, combiner));
        let map = deps.len() as u32 - 1;
        Dataset::with_lineage(partitions, deps, vec![map], move |ctx| {
            let Some(blocks) = store(ctx) else {
                return Box::new(std::iter::empty());
            };
            let mut agg = SpillingMap::new(blocks.task_budget());
            if !feed(ctx, &*blocks, &mut agg, 0, |kc: (K, C)| kc, &merge) {
                return Box::new(std::iter::empty());
            }
            drain_agg(ctx, &*blocks, agg, merge.clone())
        })
    }

    /// Combine the values of each key with an associative, commutative `f` (e.g. a sum).
    pub fn reduce_by_key(
        &self,
        partitions: u32,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Dataset<(K, V)>
    where
        V: Clone,
    {
        let f = Arc::new(f);
        let (g, h) = (f.clone(), f);
        self.combine_by_key(
            partitions,
            |v| v,
            move |acc: &mut V, v| *acc = g(acc.clone(), v),
            move |acc: &mut V, c| *acc = h(acc.clone(), c),
        )
    }

    /// All values of each key (in no particular order).
    pub fn group_by_key(&self, partitions: u32) -> Dataset<(K, Vec<V>)> {
        let g = grouping::<V>();
        let (a, b, c) = (g.create, g.merge_value, g.merge_combiners);
        self.combine_by_key(
            partitions,
            move |v| a(v),
            move |acc, v| b(acc, v),
            move |acc, x| c(acc, x),
        )
    }

    /// Inner join on the key: every pair of values of a key present on both sides.
    pub fn join<W: Value + Clone>(
        &self,
        other: &Dataset<(K, W)>,
        partitions: u32,
    ) -> Dataset<(K, (V, W))>
    where
        K: Clone,
        V: Clone,
    {
        let partitions = partitions.max(1);
        let mut deps = self.lineage().to_vec();
        let offset = append_lineage(&mut deps, other.lineage());
        let left = map_stage(self, partitions, grouping::<V>());
        let right = map_stage(other, partitions, grouping::<W>());
        let right = StageDef {
            reads: right.reads.iter().map(|r| r + offset).collect(),
            ..right
        };
        deps.push(left);
        deps.push(right);
        let n = deps.len() as u32;
        type Both<V, W> = (Vec<V>, Vec<W>);
        let merge: MergeFn<Both<V, W>> = Arc::new(|acc, (mut l, mut r)| {
            acc.0.append(&mut l);
            acc.1.append(&mut r);
        });
        let grouped: Dataset<(K, Both<V, W>)> =
            Dataset::with_lineage(partitions, deps, vec![n - 2, n - 1], move |ctx| {
                let Some(blocks) = store(ctx) else {
                    return Box::new(std::iter::empty());
                };
                let mut agg = SpillingMap::new(blocks.task_budget());
                let ok = feed(
                    ctx,
                    &*blocks,
                    &mut agg,
                    0,
                    |(k, l)| (k, (l, Vec::new())),
                    &merge,
                ) && feed(
                    ctx,
                    &*blocks,
                    &mut agg,
                    1,
                    |(k, r)| (k, (Vec::new(), r)),
                    &merge,
                );
                if !ok {
                    return Box::new(std::iter::empty());
                }
                drain_agg(ctx, &*blocks, agg, merge.clone())
            });
        grouped.flat_map(|(k, (ls, rs))| {
            let mut out = Vec::with_capacity(ls.len() * rs.len());
            for l in &ls {
                for r in &rs {
                    out.push((k.clone(), (l.clone(), r.clone())));
                }
            }
            out
        })
    }
}

impl<K: Key + Ord + Clone, V: Value> Dataset<(K, V)> {
    /// Every record, sorted by key, in as many partitions as this dataset has: see
    /// [`Dataset::sort_by_key_into`].
    pub fn sort_by_key(&self) -> Dataset<(K, V)> {
        self.sort_by_key_into(self.partitions())
    }

    /// Every record, sorted by key, range-partitioned into `partitions` partitions (at least 1).
    ///
    /// # Guarantees
    /// Each partition is sorted by key, and every key of partition `i` is `<=` every key of
    /// partition `i + 1`: the partitions concatenated in order (what [`Dataset::collect`]
    /// returns) are totally ordered. Every record appears exactly once. Values of one key keep no
    /// particular order, and a key holding a large share of the records may span several
    /// adjacent partitions (so it does not land on one task). Partitions may be empty when the
    /// sample shows fewer distinct keys than partitions, or the input is empty.
    ///
    /// # Cost
    /// With more than one partition the input is computed twice, as by Spark's `sortByKey`: once
    /// to sample keys for the range boundaries, once to partition it. Each reduce task sorts its
    /// range within its memory budget, spilling sorted runs to disk beyond it.
    pub fn sort_by_key_into(&self, partitions: u32) -> Dataset<(K, V)> {
        let partitions = partitions.max(1);
        let mut deps = self.lineage().to_vec();
        let bounds_slot = if partitions > 1 {
            deps.push(sample_stage(self, partitions));
            deps.push(bounds_stage::<K>(deps.len() as u32 - 1, partitions));
            Some(deps.len() as u32 - 1)
        } else {
            None
        };
        deps.push(range_map_stage(self, bounds_slot, partitions));
        let map = deps.len() as u32 - 1;
        Dataset::with_lineage(partitions, deps, vec![map], move |ctx| {
            let Some(blocks) = store(ctx) else {
                return Box::new(std::iter::empty());
            };
            let mut sorter = SpillingSorter::new(blocks.task_budget());
            let fed = for_each_shuffled(ctx, 0, |(k, v): (K, V)| sorter.push(ctx, &*blocks, k, v));
            if let Err(e) = fed {
                ctx.fail(e);
                return Box::new(std::iter::empty());
            }
            ctx.set_phase(TaskPhase::Reduce);
            match sorter.finish(ctx, &*blocks) {
                Ok(it) => it,
                Err(e) => {
                    ctx.fail(e);
                    Box::new(std::iter::empty())
                }
            }
        })
    }
}

/// The sort's sampling stage: one task per partition of `input`, writing its weighted key
/// sample into one reduce partition.
fn sample_stage<K, V>(input: &Dataset<(K, V)>, partitions: u32) -> StageDef
where
    K: Key + Ord + Clone,
    V: 'static,
{
    let input = input.clone();
    StageDef {
        partitions: input.partitions(),
        reads: input.reads().to_vec(),
        shuffle_out: Some(1),
        receivers: input.receivers().to_vec(),
        inputs: input.inputs().to_vec(),
        kafka: input.kafka_sources().to_vec(),
        run_task: Arc::new(move |ctx: &TaskContext| run_sample_task(ctx, &input, partitions)),
    }
}

/// The sort's boundaries stage: one task reading the sample stage `sample`, writing the range
/// boundaries into one reduce partition.
fn bounds_stage<K: Key + Ord + Clone>(sample: u32, partitions: u32) -> StageDef {
    StageDef {
        partitions: 1,
        reads: vec![sample],
        shuffle_out: Some(1),
        receivers: Vec::new(),
        inputs: Vec::new(),
        kafka: Vec::new(),
        run_task: Arc::new(move |ctx: &TaskContext| run_bounds_task::<K>(ctx, partitions)),
    }
}

/// The sort's partitioning stage: `input`'s pipeline (reading its own shuffle inputs by their
/// slots) plus one more slot, the boundaries stage `bounds`, when there is one.
fn range_map_stage<K, V>(input: &Dataset<(K, V)>, bounds: Option<u32>, partitions: u32) -> StageDef
where
    K: Key + Ord + Clone,
    V: Value,
{
    let input = input.clone();
    let mut reads = input.reads().to_vec();
    let bounds_slot = bounds.map(|b| {
        reads.push(b);
        reads.len() - 1
    });
    StageDef {
        partitions: input.partitions(),
        reads,
        shuffle_out: Some(partitions),
        receivers: input.receivers().to_vec(),
        inputs: input.inputs().to_vec(),
        kafka: input.kafka_sources().to_vec(),
        run_task: Arc::new(move |ctx: &TaskContext| {
            run_range_map_task(ctx, &input, bounds_slot, partitions)
        }),
    }
}

impl<T: Key + Clone> Dataset<T> {
    /// Each distinct record once, in `partitions` partitions.
    pub fn distinct(&self, partitions: u32) -> Dataset<T> {
        self.map(|x| (x, ()))
            .reduce_by_key(partitions, |(), ()| ())
            .map(|(x, ())| x)
    }
}

#[cfg(test)]
#[path = "pair_tests.rs"]
mod tests;
