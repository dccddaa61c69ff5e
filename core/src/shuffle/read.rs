//! The reduce side of a shuffle: fetch this task's block from every map output of an input slot
//! (locally or over the network, through [`Blocks::fetch`](super::Blocks::fetch)) and decode
//! its records one by one.
//!
//! Blocks are fetched one at a time and decoded before the next one is fetched, so a reduce task
//! holds one block's bytes plus its aggregation state. Phases: [`TaskPhase::Fetch`] while a block is
//! being fetched, [`TaskPhase::Reduce`] while its records are merged. A yield point per record.

use super::{BlockId, FetchError};
use crate::error::{Error, Result};
use crate::task::{TaskContext, TaskPhase};
use serde::de::DeserializeOwned;

/// Feed every record of input `slot` destined for this task's partition to `f`.
///
/// # Errors
/// [`Error::Launch`] when the slot is not in the launch parameters, [`Error::Fetch`] when a
/// block cannot be fetched (the task is then marked fetch-failed, naming the executor),
/// [`Error::Codec`] when a record does not decode, or `f`'s error.
/// A kill ends the iteration early with `Ok`.
pub fn for_each_shuffled<R>(
    ctx: &TaskContext,
    slot: usize,
    f: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    R: DeserializeOwned,
{
    for_each_shuffled_in(ctx, slot, ctx.partition(), f)
}

/// Like [`for_each_shuffled`], but reading reduce partition `reduce` of input `slot` whatever
/// this task's own partition: how every task of a stage reads one small shuffle written into a
/// single partition (a sort's range boundaries).
///
/// # Errors
/// As [`for_each_shuffled`].
pub fn for_each_shuffled_in<R>(
    ctx: &TaskContext,
    slot: usize,
    reduce: u32,
    mut f: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    R: DeserializeOwned,
{
    let reads = ctx.shuffle_reads();
    let read = reads.get(slot).ok_or_else(|| Error::Launch {
        task: ctx.id(),
        problem: format!(
            "reads shuffle input {slot} but its launch carries {} input(s)",
            reads.len()
        ),
    })?;
    let blocks = ctx.blocks().ok_or_else(|| Error::Launch {
        task: ctx.id(),
        problem: "reads a shuffle without a block store".into(),
    })?;
    let id = ctx.id();
    for (m, loc) in read.maps.iter().enumerate() {
        ctx.set_phase(TaskPhase::Fetch);
        let block = BlockId {
            job: id.job,
            run: id.run,
            stage: read.stage,
            map: m as u32,
            reduce,
        };
        let bytes = match blocks.fetch(ctx, loc, block) {
            Ok(b) => b,
            Err(FetchError::Killed) => return Ok(()),
            Err(source) => {
                // Returned rather than recorded on the context: name the executor to blame
                // here, whoever the error reaches.
                if let Some(exec) = source.executor() {
                    ctx.note_fetch_failed(exec);
                }
                return Err(Error::Fetch {
                    context: "fetch failed",
                    source,
                });
            }
        };
        ctx.set_phase(TaskPhase::Reduce);
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            if !ctx.yield_point() {
                return Ok(());
            }
            let (rec, tail): (R, &[u8]) = postcard::take_from_bytes(rest)
                .map_err(|e| Error::codec(format!("corrupt shuffle block {block:?}"), e))?;
            rest = tail;
            ctx.count_record();
            f(rec)?;
        }
    }
    Ok(())
}
