//! The map side of a shuffle: a shuffle-map task consumes its input, combines values per key in
//! a bounded hash map, partitions the combined records by key hash and writes one block per
//! reduce partition to its executor's block store (in segments once its buffers fill up).
//! [`write_records`] is the same writer without combining, for records whose reduce partition
//! the caller chooses (the range partitioning of a sort, its sample and boundaries).
//!
//! The whole task is in [`TaskPhase::ShuffleWrite`] once its input iterator exists (an upstream
//! reduce stage's fetch and merge happen before, in their own phases). Every loop passes a yield
//! point: input records (through the dataset's iterator), and every record drained from the
//! combine map into the partition buffers.

use super::aggregate::{ENTRY_OVERHEAD, entries_for_budget};
use super::{BlockId, Blocks, MapStatus, partition_of};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::task::{TaskContext, TaskPhase};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// Bytes a map task buffers per executor core before it writes its buffers as block segments.
const WRITE_BUFFER: usize = 4 << 20;

/// Folds one value into a combiner.
pub type MergeValue<V, C> = Arc<dyn Fn(&mut C, V) + Send + Sync>;
/// Merges a combiner into another.
pub type MergeCombiners<C> = Arc<dyn Fn(&mut C, C) + Send + Sync>;

/// How values of one key are combined: the three functions of a combine-by-key.
pub struct Combiner<V, C> {
    /// First value of a key → combiner.
    pub create: Arc<dyn Fn(V) -> C + Send + Sync>,
    /// Fold one more value into a combiner.
    pub merge_value: MergeValue<V, C>,
    /// Merge two combiners of the same key (map outputs meeting on the reduce side).
    pub merge_combiners: MergeCombiners<C>,
}

impl<V, C> Clone for Combiner<V, C> {
    fn clone(&self) -> Self {
        Self {
            create: self.create.clone(),
            merge_value: self.merge_value.clone(),
            merge_combiners: self.merge_combiners.clone(),
        }
    }
}

/// Partition buffers of one map task.
struct PartitionWriter<'b> {
    blocks: &'b dyn Blocks,
    base: BlockId,
    bufs: Vec<Vec<u8>>,
    status: MapStatus,
    buffered: usize,
}

impl<'b> PartitionWriter<'b> {
    fn new(blocks: &'b dyn Blocks, base: BlockId, partitions: u32) -> Self {
        // Blocks are appended to segment by segment: what an earlier attempt of this map task
        // wrote here (it was killed or failed part-way) must not be read twice.
        for r in 0..partitions {
            blocks.discard(BlockId { reduce: r, ..base });
        }
        Self {
            blocks,
            base,
            bufs: vec![Vec::new(); partitions as usize],
            status: MapStatus {
                bytes: vec![0; partitions as usize],
                records: 0,
            },
            buffered: 0,
        }
    }

    /// Write `(k, c)` to the reduce partition of `k`'s hash.
    fn emit<K: Hash + Serialize, C: Serialize>(&mut self, k: &K, c: &C) -> Result<()> {
        let r = partition_of(k, self.bufs.len() as u32);
        self.emit_to(r, &(k, c))
    }

    /// Write `rec` to reduce partition `r` (which must be below the partition count).
    fn emit_to<R: Serialize>(&mut self, r: u32, rec: &R) -> Result<()> {
        let r = r as usize;
        let before = self.bufs[r].len();
        let buf = std::mem::take(&mut self.bufs[r]);
        self.bufs[r] =
            postcard::to_extend(rec, buf).map_err(|e| Error::codec("cannot encode record", e))?;
        let n = self.bufs[r].len() - before;
        self.status.bytes[r] += n as u64;
        self.status.records += 1;
        self.buffered += n;
        if self.buffered >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    /// Write every non-empty buffer as a segment of its block.
    fn flush(&mut self) -> Result<()> {
        for (r, buf) in self.bufs.iter_mut().enumerate() {
            if !buf.is_empty() {
                let id = BlockId {
                    reduce: r as u32,
                    ..self.base
                };
                self.blocks.put(id, std::mem::take(buf))?;
            }
        }
        self.buffered = 0;
        Ok(())
    }

    /// Flush, and create the blocks no record went to, so a missing block always means lost.
    fn finish(mut self) -> Result<MapStatus> {
        self.flush()?;
        for (r, bytes) in self.status.bytes.iter().enumerate() {
            if *bytes == 0 {
                let id = BlockId {
                    reduce: r as u32,
                    ..self.base
                };
                self.blocks.put(id, Vec::new())?;
            }
        }
        Ok(self.status)
    }
}

/// Run one shuffle-map task: `input`'s partition combined with `combiner` and written into
/// `reduce_partitions` blocks. Returns the encoded [`MapStatus`].
///
/// # Errors
/// The input's error, or one naming what could not be written.
pub fn run_map_task<K, V, C>(
    ctx: &TaskContext,
    input: &Dataset<(K, V)>,
    reduce_partitions: u32,
    combiner: &Combiner<V, C>,
) -> Result<Vec<u8>>
where
    K: Hash + Eq + Serialize + DeserializeOwned + 'static,
    V: 'static,
    C: Serialize + 'static,
{
    let (blocks, base) = map_output(ctx)?;
    let mut writer = PartitionWriter::new(&*blocks, base, reduce_partitions);
    let max_entries = entries_for_budget::<K, C>(blocks.task_budget());
    let entry_bytes = (std::mem::size_of::<(K, C)>() + ENTRY_OVERHEAD) as u64;
    let mut map: HashMap<K, C, foldhash::fast::FixedState> =
        HashMap::with_hasher(foldhash::fast::FixedState::with_seed(3));
    let records = input.iter(ctx);
    ctx.set_phase(TaskPhase::ShuffleWrite);
    for (k, v) in records {
        match map.get_mut(&k) {
            Some(c) => (combiner.merge_value)(c, v),
            None => {
                if map.len() >= max_entries {
                    drain(ctx, &mut map, &mut writer)?;
                }
                map.insert(k, (combiner.create)(v));
                if map.len().is_multiple_of(4096) {
                    ctx.set_retained_bytes(map.len() as u64 * entry_bytes + writer.buffered as u64);
                }
            }
        }
    }
    if let Some(e) = ctx.take_error() {
        return Err(e);
    }
    drain(ctx, &mut map, &mut writer)?;
    if ctx.is_killed() {
        return Ok(Vec::new());
    }
    let status = writer.finish()?;
    ctx.set_retained_bytes(0);
    postcard::to_stdvec(&status).map_err(|e| Error::codec("cannot encode map status", e))
}

/// The block store a shuffle-map task writes to, and the id of its first output block (reduce
/// partition 0).
fn map_output(ctx: &TaskContext) -> Result<(Arc<dyn Blocks>, BlockId)> {
    let blocks = ctx.blocks().ok_or_else(|| Error::Launch {
        task: ctx.id(),
        problem: "is a shuffle-map task but runs without a block store".into(),
    })?;
    let id = ctx.id();
    let base = BlockId {
        job: id.job,
        run: id.run,
        stage: id.stage,
        map: id.partition,
        reduce: 0,
    };
    Ok((blocks, base))
}

/// Run the writing half of a shuffle-map task without combining: every record of `records` goes
/// as it is to reduce partition `partition(&record)` (clamped below `reduce_partitions`), with a
/// yield point per record, in [`TaskPhase::ShuffleWrite`]. Returns the encoded [`MapStatus`], or an
/// empty result when the task was killed. Callers build `records` (e.g. the input iterator)
/// first, so its own set-up keeps its phases.
///
/// # Errors
/// An error recorded on the context while iterating, or one naming what could not be written.
pub fn write_records<R: Serialize>(
    ctx: &TaskContext,
    reduce_partitions: u32,
    records: impl Iterator<Item = R>,
    mut partition: impl FnMut(&R) -> u32,
) -> Result<Vec<u8>> {
    let (blocks, base) = map_output(ctx)?;
    let reduce_partitions = reduce_partitions.max(1);
    let mut writer = PartitionWriter::new(&*blocks, base, reduce_partitions);
    ctx.set_phase(TaskPhase::ShuffleWrite);
    for rec in records {
        if !ctx.yield_point() {
            break;
        }
        let r = partition(&rec).min(reduce_partitions - 1);
        writer.emit_to(r, &rec)?;
        if writer.status.records.is_multiple_of(4096) {
            ctx.set_retained_bytes(writer.buffered as u64);
        }
    }
    if let Some(e) = ctx.take_error() {
        return Err(e);
    }
    if ctx.is_killed() {
        return Ok(Vec::new());
    }
    let status = writer.finish()?;
    ctx.set_retained_bytes(0);
    postcard::to_stdvec(&status).map_err(|e| Error::codec("cannot encode map status", e))
}

fn drain<K, C>(
    ctx: &TaskContext,
    map: &mut HashMap<K, C, foldhash::fast::FixedState>,
    writer: &mut PartitionWriter<'_>,
) -> Result<()>
where
    K: Hash + Serialize,
    C: Serialize,
{
    for (k, c) in map.drain() {
        if !ctx.yield_point() {
            return Ok(());
        }
        writer.emit(&k, &c)?;
    }
    Ok(())
}
