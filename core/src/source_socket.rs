//! A TCP line socket as a stream source, through a *receiver* pinned to one executor.
//!
//! Model (Spark Streaming's receivers, without a write-ahead log): the driver pins each receiver
//! declared with [`App::socket_lines`](crate::App::socket_lines) to one executor, which connects
//! to `host:port` as a client and buffers the lines it reads (reconnecting with back-off when the
//! peer closes or is not there yet; bounded, so a slow job pushes back on the sender through TCP
//! instead of filling memory). The first task of micro-batch `R` to ask *cuts* the buffer: every
//! line received so far becomes run `R`'s data, split over the source's partitions by line index
//! (line `i` to partition `i % partitions`). Every later attempt of a task of run `R` (a retry,
//! another partition) reads that same cut, so a run's result does not depend on when its tasks
//! start. The cut is dropped when the driver releases the run.
//!
//! The driver prefers the receiver's executor for the micro-batch's tasks (locality: the data is
//! there); a task placed elsewhere fetches its share of the cut from the receiver's block server,
//! like a shuffle block (block id: stage [`RECEIVER_STAGE`]` | index`, map 0, reduce =
//! partition).
//!
//! Delivery: each line received is in exactly one run while the receiver's executor lives. If
//! that executor is lost, the lines it had buffered and not yet handed to a committed run are
//! lost with it (a socket cannot replay them); the driver restarts the receiver on another
//! executor and the micro-batch is retried there with what that one receives. Lines that are not
//! UTF-8 or longer than [`MAX_LINE`] are dropped and counted
//! (`neptune_executor_receiver_dropped_lines_total`).

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::shuffle::{BlockId, FetchError};
use crate::task::{TaskContext, TaskPhase};

/// Stage ids at or above this address receiver data, not map stages (low bits: the receiver).
pub const RECEIVER_STAGE: u32 = 0x8000_0000;

/// Longest line a receiver accepts, in bytes (longer ones are dropped and counted).
pub const MAX_LINE: usize = 1 << 20;

/// A receiver declared by the app: a stream source read by one executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverDef {
    /// Unique name in the app (metrics label, `/status`).
    pub name: String,
    /// `host:port` the receiver connects to.
    pub addr: String,
    /// Partitions each micro-batch's data is split into.
    pub partitions: u32,
}

/// Check a receiver's address: `host:port` with a non-empty host and a valid port.
///
/// # Errors
/// [`Error::Definition`] saying what is wrong with `addr`.
pub fn check_addr(addr: &str) -> Result<()> {
    let bad = |what: &str| Err(Error::Definition(format!("`{addr}` {what}")));
    let Some((host, port)) = addr.rsplit_once(':') else {
        return bad("is not host:port");
    };
    if host.is_empty() {
        return bad("has no host");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => bad("has no valid port (1-65535)"),
    }
}

/// Split `lines` (one cut) over `partitions`: line `i` goes to partition `i % partitions`; each
/// partition's bytes are its lines, postcard-encoded back to back (a block's format).
pub fn encode_cut(lines: &[String], partitions: u32) -> Vec<Vec<u8>> {
    let n = partitions.max(1) as usize;
    let mut out = vec![Vec::new(); n];
    for (i, l) in lines.iter().enumerate() {
        // Encoding a String into a Vec cannot fail.
        if let Ok(b) = postcard::to_extend(l, std::mem::take(&mut out[i % n])) {
            out[i % n] = b;
        }
    }
    out
}

/// The dataset of receiver `index` with `partitions` partitions: each task fetches its share of
/// its run's cut (locally when it runs on the receiver's executor) and yields its lines.
pub(crate) fn receiver_lines(index: u32, partitions: u32) -> Dataset<String> {
    let stage = RECEIVER_STAGE | index;
    Dataset::from_fn(partitions, move |ctx: &TaskContext| {
        let Some(bytes) = fetch_share(ctx, stage) else {
            return Box::new(std::iter::empty());
        };
        ctx.set_phase(TaskPhase::Compute);
        let mut at = 0usize;
        Box::new(std::iter::from_fn(move || {
            if at >= bytes.len() {
                return None;
            }
            match postcard::take_from_bytes::<String>(&bytes[at..]) {
                Ok((line, tail)) => {
                    at = bytes.len() - tail.len();
                    ctx.count_record();
                    Some(line)
                }
                Err(e) => {
                    let what = format!("corrupt receiver data for task {}", ctx.id());
                    ctx.fail(Error::codec(what, e));
                    at = bytes.len();
                    None
                }
            }
        }))
    })
    .reading_receiver(index)
}

/// This task's share of its run's cut, or `None` after failing the task.
fn fetch_share(ctx: &TaskContext, stage: u32) -> Option<Vec<u8>> {
    let id = ctx.id();
    let reads = ctx.shuffle_reads();
    let Some(loc) = reads
        .iter()
        .find(|r| r.stage == stage)
        .and_then(|r| r.maps.first())
    else {
        ctx.fail(Error::Launch {
            task: id,
            problem: format!(
                "reads receiver {} but its launch does not say where it runs",
                stage & !RECEIVER_STAGE
            ),
        });
        return None;
    };
    let Some(blocks) = ctx.blocks() else {
        ctx.fail(Error::Launch {
            task: id,
            problem: "reads a receiver without a block store".into(),
        });
        return None;
    };
    ctx.set_phase(TaskPhase::Fetch);
    let block = BlockId {
        job: id.job,
        run: id.run,
        stage,
        map: 0,
        reduce: id.partition,
    };
    match blocks.fetch(ctx, loc, block) {
        Ok(b) => Some(b),
        Err(FetchError::Killed) => None,
        Err(source) => {
            // Records the executor to blame too (`TaskContext::fail`).
            ctx.fail(Error::Fetch {
                context: "cannot read receiver data",
                source,
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_is_split_by_line_index_and_decodes_back() {
        let lines: Vec<String> = (0..7).map(|i| format!("line {i}")).collect();
        let parts = encode_cut(&lines, 3);
        assert_eq!(parts.len(), 3);
        let decode = |mut b: &[u8]| {
            let mut v = Vec::new();
            while !b.is_empty() {
                let (s, t): (String, &[u8]) = postcard::take_from_bytes(b).unwrap();
                v.push(s);
                b = t;
            }
            v
        };
        assert_eq!(decode(&parts[0]), ["line 0", "line 3", "line 6"]);
        assert_eq!(decode(&parts[1]), ["line 1", "line 4"]);
        assert_eq!(decode(&parts[2]), ["line 2", "line 5"]);
    }

    #[test]
    fn bad_addresses_are_named() {
        assert!(check_addr("localhost:9999").is_ok());
        assert!(check_addr("[::1]:80").is_ok());
        for (bad, why) in [
            ("localhost", "not host:port"),
            (":80", "no host"),
            ("h:0", "no valid port"),
            ("h:99999", "no valid port"),
            ("h:x", "no valid port"),
        ] {
            let e = check_addr(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains(why), "{bad}: {e}");
        }
    }
}
