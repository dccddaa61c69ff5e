//! Shuffle vocabulary shared by the driver, the executors and the key-based operators: block
//! ids, where map outputs live, what a map task reports, and the [`Blocks`] interface through
//! which tasks write and fetch shuffle blocks without this crate knowing about sockets or disks.
//!
//! A shuffle block is the part of one map task's output destined for one reduce partition:
//! `(job, run, map stage, map partition, reduce partition)`. Its bytes are a concatenation of
//! postcard-encoded records (self-delimiting, so segments appended to a block stay readable).

pub mod aggregate;
pub mod range;
pub mod read;
pub mod sort;
pub mod write;

use crate::task::TaskContext;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// One shuffle block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlockId {
    /// Job index.
    pub job: u32,
    /// Run of the job.
    pub run: u64,
    /// The map stage that wrote it.
    pub stage: u32,
    /// The map task (partition of the map stage).
    pub map: u32,
    /// The reduce partition it is destined for.
    pub reduce: u32,
}

/// Where one map task's output lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapLoc {
    /// Executor holding the blocks.
    pub executor: String,
    /// The executor's block server (`host:port`).
    pub addr: String,
    /// The largest block this map output holds, in bytes, as its map task reported it
    /// (`u64::MAX` when unknown, e.g. a receiver's cut). A peer announcing a longer block is
    /// refused before anything is allocated.
    pub max_block: u64,
}

/// One shuffle input of a task's stage: the map stage it reads and where each of that stage's
/// map outputs lives (indexed by map partition). Sent by the driver in `Launch.params`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShuffleRead {
    /// The map stage.
    pub stage: u32,
    /// Location of each map partition's output.
    pub maps: Vec<MapLoc>,
}

/// What a shuffle-map task returns to the driver: bytes written per reduce partition (for
/// locality preferences of the reduce tasks) and records written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapStatus {
    /// Bytes per reduce partition.
    pub bytes: Vec<u64>,
    /// Records written (after map-side combining).
    pub records: u64,
}

/// Why a block could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The executor holding it could not be reached or broke the connection (after retries).
    #[error("cannot fetch block {block:?} from executor {executor} at {addr}: {reason}")]
    Unreachable {
        /// Block.
        block: BlockId,
        /// Executor.
        executor: String,
        /// Its block server.
        addr: String,
        /// Last error.
        reason: String,
    },
    /// The executor answered that it does not hold the block (it restarted, or released it).
    #[error("executor {executor} does not hold block {block:?}")]
    Missing {
        /// Block.
        block: BlockId,
        /// Executor.
        executor: String,
    },
    /// The executor holding it answered something no honest block server sends (a length above
    /// the block's known size or the fetch cap, an unknown status): not retried.
    #[error("executor {executor} at {addr} sent a bad reply for block {block:?}: {reason}")]
    BadReply {
        /// Block.
        block: BlockId,
        /// Executor.
        executor: String,
        /// Its block server.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// The task was killed while fetching.
    #[error("killed while fetching")]
    Killed,
}

impl FetchError {
    /// The executor to blame (whose outputs must be recomputed), if any.
    pub fn executor(&self) -> Option<&str> {
        match self {
            FetchError::Unreachable { executor, .. }
            | FetchError::Missing { executor, .. }
            | FetchError::BadReply { executor, .. } => Some(executor),
            FetchError::Killed => None,
        }
    }
}

/// The executor's block store as tasks see it.
///
/// # Contract
/// `put` appends a segment to a block (a map task may flush a block in several segments);
/// `fetch` returns every segment of a block, in order, concatenated. Implementations spill to
/// disk beyond their memory budget and count the bytes spilled.
pub trait Blocks: Send + Sync {
    /// Append `bytes` to block `id` on this executor.
    ///
    /// # Errors
    /// An [`Error`](crate::Error) naming the block when it cannot be stored (disk full, ...).
    fn put(&self, id: BlockId, bytes: Vec<u8>) -> crate::Result<()>;

    /// Drop block `id` from this executor if it holds it: a map task's new attempt replaces
    /// whatever an earlier attempt wrote.
    fn discard(&self, id: BlockId);

    /// Fetch block `id` from `loc` (this executor or another one), with yield points while
    /// waiting for bytes.
    ///
    /// # Errors
    /// [`FetchError`] once retries are exhausted.
    fn fetch(&self, ctx: &TaskContext, loc: &MapLoc, id: BlockId) -> Result<Vec<u8>, FetchError>;

    /// Directory for a task's spill files (aggregation state beyond its budget).
    fn spill_dir(&self) -> PathBuf;

    /// In-memory budget of one task's aggregation state, bytes.
    fn task_budget(&self) -> u64;

    /// Count bytes a task spilled to disk.
    fn note_spilled(&self, bytes: u64);
}

/// The hasher of partitioning and aggregation: fixed seeds, so every process of the same binary
/// sends a key to the same reduce partition.
pub fn key_hash<K: Hash + ?Sized>(key: &K, seed: u64) -> u64 {
    foldhash::fast::FixedState::with_seed(seed).hash_one(key)
}

/// The reduce partition of `key` among `partitions`.
pub fn partition_of<K: Hash + ?Sized>(key: &K, partitions: u32) -> u32 {
    (key_hash(key, 0x054A_FF1E) % u64::from(partitions.max(1))) as u32
}

/// An in-process block store (tests, and evaluating a plan without executors): blocks live in a
/// map, fetches ignore the location, nothing spills unless the budget is tiny.
#[derive(Debug)]
pub struct LocalBlocks {
    blocks: Mutex<HashMap<BlockId, Vec<u8>>>,
    dir: PathBuf,
    budget: u64,
    spilled: AtomicU64,
}

impl LocalBlocks {
    /// A store whose tasks spill aggregation state beyond `task_budget` bytes into `dir`.
    pub fn new(dir: impl Into<PathBuf>, task_budget: u64) -> Self {
        Self {
            blocks: Mutex::default(),
            dir: dir.into(),
            budget: task_budget,
            spilled: AtomicU64::new(0),
        }
    }

    /// Bytes spilled so far.
    pub fn spilled(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }
}

impl Blocks for LocalBlocks {
    fn put(&self, id: BlockId, bytes: Vec<u8>) -> crate::Result<()> {
        let mut m = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(id).or_default().extend_from_slice(&bytes);
        Ok(())
    }

    fn discard(&self, id: BlockId) {
        let mut m = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&id);
    }

    fn fetch(&self, _: &TaskContext, loc: &MapLoc, id: BlockId) -> Result<Vec<u8>, FetchError> {
        let m = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&id).cloned().ok_or_else(|| FetchError::Missing {
            block: id,
            executor: loc.executor.clone(),
        })
    }

    fn spill_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    fn task_budget(&self) -> u64 {
        self.budget
    }

    fn note_spilled(&self, bytes: u64) {
        self.spilled.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
