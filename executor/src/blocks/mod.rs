//! The executor's shuffle block store: map tasks append block segments, kept in memory up to the
//! store's budget and spilled to files in a temp directory beyond it (deleted on exit); reduce
//! tasks read local blocks directly and remote ones through [`fetch`] (over [`client`]'s pooled,
//! mutually authenticated connections); [`server`] serves this executor's blocks to the others.
//!
//! Budgets come from `--memory`: [`BLOCKS_SHARE`] of it for blocks, [`TASKS_SHARE`] shared by
//! the cores for tasks' aggregation state (which spills on its own, see
//! `neptune_core::shuffle::aggregate`), [`RECEIVERS_SHARE`](crate::receivers::RECEIVERS_SHARE)
//! for stream receivers' buffers. The rest is headroom for the process itself.
//!
//! A fetched block is held whole in the fetching task's memory, so fetches are capped at
//! `shuffle.max_block_bytes` (default [`DEFAULT_MAX_BLOCK_BYTES`]) and at the block's size as its
//! map task reported it; see [`fetch`] for the wire format and its checks.

pub mod client;
pub mod fetch;
pub mod server;

use crate::receivers::Receivers;
use neptune_core::shuffle::{BlockId, Blocks, FetchError, MapLoc};
use neptune_core::source_socket::RECEIVER_STAGE;
use neptune_core::task::TaskContext;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Share of `--memory` for shuffle blocks held in memory.
pub const BLOCKS_SHARE: f64 = 0.4;
/// Share of `--memory` for tasks' aggregation state, divided among the cores.
pub const TASKS_SHARE: f64 = 0.3;
/// Default of `shuffle.max_block_bytes`: the largest block (or receiver cut) a task fetches.
pub const DEFAULT_MAX_BLOCK_BYTES: u64 = 1 << 30;

/// What this executor has for a block request.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The block's bytes.
    Found(Vec<u8>),
    /// Not held here (never written, released, or not a block at all).
    Missing,
    /// A receiver cut of a run the driver has not announced (yet).
    NotOpen,
}

enum Segment {
    Mem(Arc<Vec<u8>>),
    Disk { path: PathBuf },
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<BlockId, Vec<Segment>>,
    mem_bytes: u64,
    seq: u64,
}

impl Inner {
    /// Forget block `id`, freeing its memory and deleting its spill files.
    fn drop_block(&mut self, id: BlockId) {
        for seg in self.blocks.remove(&id).unwrap_or_default() {
            match seg {
                Segment::Mem(b) => self.mem_bytes = self.mem_bytes.saturating_sub(b.len() as u64),
                Segment::Disk { path, .. } => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// One executor's blocks.
pub struct BlockStore {
    executor: std::sync::RwLock<String>,
    inner: Mutex<Inner>,
    budget: u64,
    task_budget: u64,
    dir: tempfile::TempDir,
    spilled: AtomicU64,
    /// Largest block a task of this executor fetches (`shuffle.max_block_bytes`).
    max_block: AtomicU64,
    /// Stream receivers of this executor's current session (set once the app is known): their
    /// cuts are served as blocks of stage `RECEIVER_STAGE | index`.
    receivers: std::sync::RwLock<Option<Arc<Receivers>>>,
    /// Connections to other executors' block servers.
    pool: client::Pool,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore")
            .field("executor", &self.executor)
            .field("budget", &self.budget)
            .finish()
    }
}

impl BlockStore {
    /// A store for `executor` sized from its `memory` budget and `cores`, spilling into a new
    /// temp directory (removed when the store is dropped), fetching remote blocks under `tls`
    /// (`None`: plaintext, `--insecure`).
    ///
    /// # Errors
    /// When the temp directory cannot be created.
    pub fn new(
        executor: &str,
        memory: u64,
        cores: u32,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("neptune-{executor}-"))
            .tempdir()?;
        Ok(Self {
            executor: std::sync::RwLock::new(executor.to_string()),
            inner: Mutex::default(),
            budget: (memory as f64 * BLOCKS_SHARE) as u64,
            task_budget: (memory as f64 * TASKS_SHARE) as u64 / u64::from(cores.max(1)),
            dir,
            spilled: AtomicU64::new(0),
            max_block: AtomicU64::new(DEFAULT_MAX_BLOCK_BYTES),
            receivers: std::sync::RwLock::new(None),
            pool: client::Pool::new(tls),
        })
    }

    /// The executor id the driver confirmed (blocks at a location with this id are local).
    pub fn set_executor_id(&self, id: &str) {
        *self.executor.write().unwrap_or_else(|e| e.into_inner()) = id.to_string();
    }

    fn is_me(&self, id: &str) -> bool {
        *self.executor.read().unwrap_or_else(|e| e.into_inner()) == id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuse fetched blocks longer than `bytes` (the app's `shuffle.max_block_bytes`).
    pub fn set_max_block_bytes(&self, bytes: u64) {
        self.max_block.store(bytes, Ordering::Relaxed);
    }

    /// Serve the cuts of `receivers` (those of the current session; a new session's replace
    /// them).
    pub fn set_receivers(&self, receivers: Arc<Receivers>) {
        *self.receivers.write().unwrap_or_else(|e| e.into_inner()) = Some(receivers);
    }

    fn receivers(&self) -> Option<Arc<Receivers>> {
        self.receivers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drop every block and the session's receivers: the driver dropped this executor and
    /// forgot what it held, so nothing will ask for them again (a re-registered executor
    /// starts empty).
    pub fn clear(&self) {
        *self.receivers.write().unwrap_or_else(|e| e.into_inner()) = None;
        let mut inner = self.lock();
        let ids: Vec<BlockId> = inner.blocks.keys().copied().collect();
        for id in ids {
            inner.drop_block(id);
        }
    }

    /// Bytes spilled to disk since start (blocks and aggregation state).
    pub fn spilled_total(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    /// Connections to other executors' block servers.
    pub fn pool(&self) -> &client::Pool {
        &self.pool
    }

    /// Bytes of blocks held in memory now.
    pub fn memory_bytes(&self) -> u64 {
        self.lock().mem_bytes
    }

    /// Block `id`, every segment concatenated, or `None` if this executor does not hold it.
    /// Reads spilled segments from disk: call off the RPC threads (tasks, or `spawn_blocking`).
    ///
    /// # Errors
    /// When a spilled segment cannot be read back.
    pub fn get(&self, id: BlockId) -> std::io::Result<Option<Vec<u8>>> {
        Ok(match self.lookup(id)? {
            Lookup::Found(b) => Some(b),
            Lookup::Missing | Lookup::NotOpen => None,
        })
    }

    /// What this executor has for block `id`: a shuffle block, or a receiver's cut (made now if
    /// this is its run's first request and the driver announced the run). Reads spilled
    /// segments from disk: call off the RPC threads.
    ///
    /// # Errors
    /// When a spilled segment cannot be read back.
    pub fn lookup(&self, id: BlockId) -> std::io::Result<Lookup> {
        if id.stage >= RECEIVER_STAGE {
            return Ok(match self.receivers() {
                Some(r) => r.cut_block(id),
                None => Lookup::Missing,
            });
        }
        // Segments to copy, read outside the lock: bytes in memory, or a spill file.
        let parts: Vec<Result<Arc<Vec<u8>>, PathBuf>> = {
            let inner = self.lock();
            let Some(segs) = inner.blocks.get(&id) else {
                return Ok(Lookup::Missing);
            };
            segs.iter()
                .map(|s| match s {
                    Segment::Mem(b) => Ok(b.clone()),
                    Segment::Disk { path, .. } => Err(path.clone()),
                })
                .collect()
        };
        let mut out = Vec::new();
        for p in parts {
            match p {
                Ok(b) => out.extend_from_slice(&b),
                Err(path) => out.extend_from_slice(&std::fs::read(&path)?),
            }
        }
        Ok(Lookup::Found(out))
    }

    /// Drop every block (and receiver cut) of run `run` of job `job`.
    pub fn release(&self, job: u32, run: u64) {
        if let Some(r) = self.receivers() {
            r.release(job, run);
        }
        let mut inner = self.lock();
        let ids: Vec<BlockId> = inner
            .blocks
            .keys()
            .filter(|b| b.job == job && b.run == run)
            .copied()
            .collect();
        for id in ids {
            inner.drop_block(id);
        }
    }
}

impl Blocks for BlockStore {
    fn put(&self, id: BlockId, bytes: Vec<u8>) -> neptune_core::Result<()> {
        let len = bytes.len() as u64;
        let mut inner = self.lock();
        if inner.mem_bytes + len <= self.budget || len == 0 {
            inner.mem_bytes += len;
            inner
                .blocks
                .entry(id)
                .or_default()
                .push(Segment::Mem(Arc::new(bytes)));
            return Ok(());
        }
        inner.seq += 1;
        let path = self.dir.path().join(format!(
            "block-{}-{}-{}-{}-{}-{}",
            id.job, id.run, id.stage, id.map, id.reduce, inner.seq
        ));
        // Reserve the entry first so a concurrent release cannot miss the file.
        drop(inner);
        std::fs::write(&path, &bytes)
            .map_err(|e| neptune_core::Error::io(format!("spill block {id:?} to"), &path, e))?;
        self.spilled.fetch_add(len, Ordering::Relaxed);
        self.lock()
            .blocks
            .entry(id)
            .or_default()
            .push(Segment::Disk { path });
        Ok(())
    }

    fn discard(&self, id: BlockId) {
        self.lock().drop_block(id);
    }

    fn fetch(&self, ctx: &TaskContext, loc: &MapLoc, id: BlockId) -> Result<Vec<u8>, FetchError> {
        if self.is_me(&loc.executor) {
            return match self.get(id) {
                Ok(Some(b)) => Ok(b),
                Ok(None) => Err(FetchError::Missing {
                    block: id,
                    executor: loc.executor.clone(),
                }),
                Err(e) => Err(FetchError::Unreachable {
                    block: id,
                    executor: loc.executor.clone(),
                    addr: "local".into(),
                    reason: e.to_string(),
                }),
            };
        }
        let cap = self.max_block.load(Ordering::Relaxed);
        fetch::fetch_with_retries(ctx, &self.pool, loc, id, cap)
    }

    fn spill_dir(&self) -> PathBuf {
        self.dir.path().join("agg")
    }

    fn task_budget(&self) -> u64 {
        self.task_budget
    }

    fn note_spilled(&self, bytes: u64) {
        self.spilled.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
