//! Aggregation state that spills: a hash map of key → combiner that, beyond its memory budget,
//! moves its entries to disk in hash buckets and merges each bucket back on its own at the end,
//! so peak memory is about one bucket's worth of keys rather than all of them.
//!
//! Memory is estimated, not measured: `size_of::<(K, C)>()` plus a fixed allowance per entry
//! for heap data and table overhead ([`ENTRY_OVERHEAD`]). Every loop over entries passes a yield
//! point, so a task can be suspended while it spills or merges and resumes with the state intact.

use super::{Blocks, key_hash};
use crate::error::{Error, Result};
use crate::task::TaskContext;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::hash::Hash;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Estimated bytes per entry beyond `size_of::<(K, C)>()`: heap data of small keys and values
/// plus the hash table's own overhead.
pub const ENTRY_OVERHEAD: usize = 48;

/// Spill files per spill: a bucket holds about 1/`BUCKETS` of the keys.
const BUCKETS: usize = 16;

/// Seed of the bucket hash (different from the partitioner's, or every key of a reduce
/// partition would land in the same bucket).
const BUCKET_SEED: u64 = 0xB0C4E7;

/// Unique names for spill files within a process.
static SPILL_SEQ: AtomicU64 = AtomicU64::new(0);

type Hasher = foldhash::fast::FixedState;

/// Key → combiner state with a memory budget.
pub struct SpillingMap<K, C> {
    map: HashMap<K, C, Hasher>,
    max_entries: usize,
    files: Vec<PathBuf>,
    spilled_bytes: u64,
}

impl<K, C> std::fmt::Debug for SpillingMap<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillingMap")
            .field("entries", &self.map.len())
            .field("spill_files", &self.files.len())
            .finish()
    }
}

/// Entries that fit `budget` bytes, at least 1024.
pub fn entries_for_budget<K, C>(budget: u64) -> usize {
    let per = std::mem::size_of::<(K, C)>() + ENTRY_OVERHEAD;
    ((budget / per as u64) as usize).max(1024)
}

impl<K, C> SpillingMap<K, C>
where
    K: Hash + Eq + Serialize + DeserializeOwned,
    C: Serialize + DeserializeOwned,
{
    /// An empty map holding at most `budget` bytes (estimated) in memory.
    pub fn new(budget: u64) -> Self {
        Self {
            map: HashMap::with_hasher(Hasher::with_seed(7)),
            max_entries: entries_for_budget::<K, C>(budget),
            files: Vec::new(),
            spilled_bytes: 0,
        }
    }

    /// Estimated bytes held in memory now.
    pub fn estimated_bytes(&self) -> u64 {
        (self.map.len() * (std::mem::size_of::<(K, C)>() + ENTRY_OVERHEAD)) as u64
    }

    /// Bytes written to disk so far.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    /// Merge `value` into the entry of `key` (`create` for a new key, `merge` otherwise),
    /// spilling first when the map is full.
    ///
    /// # Errors
    /// A message naming the spill file when it cannot be written.
    pub fn insert<V>(
        &mut self,
        ctx: &TaskContext,
        blocks: &dyn Blocks,
        key: K,
        value: V,
        create: impl FnOnce(V) -> C,
        merge: impl FnOnce(&mut C, V),
    ) -> Result<()> {
        match self.map.get_mut(&key) {
            Some(c) => merge(c, value),
            None => {
                if self.map.len() >= self.max_entries {
                    self.spill(ctx, blocks)?;
                }
                self.map.insert(key, create(value));
            }
        }
        ctx.set_retained_bytes(self.estimated_bytes());
        Ok(())
    }

    /// Move every in-memory entry to a new set of bucket files.
    fn spill(&mut self, ctx: &TaskContext, blocks: &dyn Blocks) -> Result<()> {
        let dir = blocks.spill_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create spill directory", &dir, e))?;
        let seq = SPILL_SEQ.fetch_add(1, Ordering::Relaxed);
        let id = ctx.id();
        let mut writers = Vec::with_capacity(BUCKETS);
        for b in 0..BUCKETS {
            let path = dir.join(format!("agg-{id}-a{}-{seq}-{b}.spill", ctx.attempt()));
            let f = std::fs::File::create(&path)
                .map_err(|e| Error::io("create spill file", &path, e))?;
            writers.push((BufWriter::new(f), path));
        }
        let mut bytes = 0u64;
        let mut buf = Vec::new();
        for (k, c) in self.map.drain() {
            // A yield point per entry; a kill only stops early (the task's result is dropped).
            if !ctx.yield_point() {
                break;
            }
            let b = (key_hash(&k, BUCKET_SEED) % BUCKETS as u64) as usize;
            buf.clear();
            let rec = postcard::to_extend(&(k, c), std::mem::take(&mut buf))
                .map_err(|e| Error::codec("cannot encode spilled record", e))?;
            writers[b]
                .0
                .write_all(&rec)
                .map_err(|e| Error::io("write", &writers[b].1, e))?;
            bytes += rec.len() as u64;
            buf = rec;
        }
        for (mut w, path) in writers {
            w.flush().map_err(|e| Error::io("write", &path, e))?;
            self.files.push(path);
        }
        self.spilled_bytes += bytes;
        blocks.note_spilled(bytes);
        ctx.set_retained_bytes(0);
        Ok(())
    }

    /// Every (key, combined value): the in-memory entries, or, after a spill, each bucket merged
    /// back on its own as the iterator reaches it (so only one bucket is in memory at a time).
    /// Errors reading spill files fail the task (`ctx.fail`) and end the iteration.
    ///
    /// # Errors
    /// A message naming the spill file when the last spill cannot be written.
    pub fn finish<'a>(
        mut self,
        ctx: &'a TaskContext,
        blocks: &dyn Blocks,
        merge: impl Fn(&mut C, C) + 'a,
    ) -> Result<Box<dyn Iterator<Item = (K, C)> + 'a>>
    where
        K: 'a,
        C: 'a,
    {
        ctx.set_retained_bytes(0);
        if self.files.is_empty() {
            let map = std::mem::take(&mut self.map);
            return Ok(Box::new(map.into_iter()));
        }
        self.spill(ctx, blocks)?;
        let files = std::mem::take(&mut self.files);
        let mut bucket = 0usize;
        let mut current = std::collections::hash_map::IntoIter::default();
        Ok(Box::new(std::iter::from_fn(move || {
            loop {
                if let Some(kv) = current.next() {
                    return Some(kv);
                }
                if bucket >= BUCKETS || ctx.has_failed() {
                    return None;
                }
                let paths: Vec<&PathBuf> = files.iter().skip(bucket).step_by(BUCKETS).collect();
                bucket += 1;
                match merge_bucket(ctx, &paths, &merge) {
                    Ok(m) => current = m.into_iter(),
                    Err(e) => {
                        ctx.fail(e);
                        return None;
                    }
                }
            }
        })))
    }
}

/// Read one bucket's spill files back into a map, merging equal keys (a yield point per record).
fn merge_bucket<K, C>(
    ctx: &TaskContext,
    paths: &[&PathBuf],
    merge: &dyn Fn(&mut C, C),
) -> Result<HashMap<K, C, Hasher>>
where
    K: Hash + Eq + DeserializeOwned,
    C: DeserializeOwned,
{
    let mut map: HashMap<K, C, Hasher> = HashMap::with_hasher(Hasher::with_seed(7));
    for path in paths {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map(BufReader::new)
            .and_then(|mut r| r.read_to_end(&mut bytes))
            .map_err(|e| Error::io("read spill file", path, e))?;
        let _ = std::fs::remove_file(path);
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            if !ctx.yield_point() {
                return Ok(map);
            }
            let ((k, c), tail): ((K, C), &[u8]) = postcard::take_from_bytes(rest)
                .map_err(|e| Error::codec(format!("corrupt spill file {}", path.display()), e))?;
            rest = tail;
            match map.get_mut(&k) {
                Some(acc) => merge(acc, c),
                None => {
                    map.insert(k, c);
                }
            }
        }
    }
    Ok(map)
}

impl<K, C> Drop for SpillingMap<K, C> {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}
