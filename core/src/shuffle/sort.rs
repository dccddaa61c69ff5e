//! Sorting that spills: records are sorted by key in small chunks as they arrive; beyond the
//! task's memory budget the chunks are merged into one sorted run file on disk; at the end every
//! run and the chunks still in memory are merged lazily, one record at a time. So a task sorts
//! more records than fit its budget, and no step between two yield points sorts more than
//! [`CHUNK`] records: merging is a heap pop per record, each behind a yield point.
//!
//! The sort is stable: ties go to the earlier record (chunks and runs are merged in arrival
//! order). Memory is estimated like [`super::aggregate`]'s: `size_of::<(K, V)>()` plus
//! [`ENTRY_OVERHEAD`] per record. Run files hold length-prefixed postcard records and are
//! deleted once merged, when the sorter is dropped, or when the merge iterator is dropped.

use super::Blocks;
use super::aggregate::{ENTRY_OVERHEAD, entries_for_budget};
use crate::dataset::BoxIter;
use crate::error::{Error, Result};
use crate::task::TaskContext;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Records sorted at once (between two yield points) before they join the merge.
pub const CHUNK: usize = 1024;

/// Most runs merged at once at the end; beyond it, the oldest runs are merged into one run file
/// first, so a task never holds more than this many open files (and read buffers).
pub const MAX_FANIN: usize = 64;

/// Unique names for run files within a process.
static RUN_SEQ: AtomicU64 = AtomicU64::new(0);

/// A run file, deleted when dropped.
#[derive(Debug)]
struct RunFile(PathBuf);

impl Drop for RunFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Records of `(K, V)` sorted by `K`, in memory up to a budget and in run files beyond it.
pub struct SpillingSorter<K, V> {
    chunks: Vec<Vec<(K, V)>>,
    current: Vec<(K, V)>,
    held: usize,
    max_entries: usize,
    runs: Vec<RunFile>,
    spilled_bytes: u64,
}

impl<K, V> std::fmt::Debug for SpillingSorter<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillingSorter")
            .field("held", &self.held)
            .field("runs", &self.runs.len())
            .finish()
    }
}

impl<K, V> SpillingSorter<K, V>
where
    K: Ord + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// An empty sorter holding at most about `budget` bytes (estimated) in memory.
    pub fn new(budget: u64) -> Self {
        Self {
            chunks: Vec::new(),
            current: Vec::with_capacity(CHUNK),
            held: 0,
            max_entries: entries_for_budget::<K, V>(budget),
            runs: Vec::new(),
            spilled_bytes: 0,
        }
    }

    /// Estimated bytes held in memory now.
    pub fn estimated_bytes(&self) -> u64 {
        (self.held * (std::mem::size_of::<(K, V)>() + ENTRY_OVERHEAD)) as u64
    }

    /// Bytes written to run files so far.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    /// Run files written so far (and not yet merged into a later one).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Add one record; every [`CHUNK`] records the chunk is sorted, and beyond the budget the
    /// chunks are merged into a run file.
    ///
    /// # Errors
    /// A message naming the run file when it cannot be written.
    pub fn push(&mut self, ctx: &TaskContext, blocks: &dyn Blocks, key: K, value: V) -> Result<()> {
        self.current.push((key, value));
        self.held += 1;
        if self.current.len() >= CHUNK {
            self.seal();
            if self.held >= self.max_entries {
                self.spill(ctx, blocks)?;
            }
            ctx.set_retained_bytes(self.estimated_bytes());
        }
        Ok(())
    }

    /// Sort the current chunk and put it with the others.
    fn seal(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let mut chunk = std::mem::replace(&mut self.current, Vec::with_capacity(CHUNK));
        chunk.sort_by(|a, b| a.0.cmp(&b.0));
        self.chunks.push(chunk);
    }

    /// Merge every in-memory chunk into a new run file.
    fn spill(&mut self, ctx: &TaskContext, blocks: &dyn Blocks) -> Result<()> {
        self.seal();
        let sources = std::mem::take(&mut self.chunks)
            .into_iter()
            .map(|c| Source::Mem(c.into_iter()))
            .collect();
        self.held = 0;
        let merge = Merge::new(ctx, sources)?;
        let (run, bytes) = write_run(ctx, blocks, merge)?;
        self.runs.push(run);
        self.spilled_bytes += bytes;
        Ok(())
    }

    /// Every record, sorted by key: the in-memory chunks alone, or merged with the run files
    /// (after first merging the oldest runs while there are more than [`MAX_FANIN`]). Errors
    /// reading run files fail the task (`ctx.fail`) and end the iteration.
    ///
    /// # Errors
    /// A message naming a run file that cannot be written or opened.
    pub fn finish<'a>(
        mut self,
        ctx: &'a TaskContext,
        blocks: &dyn Blocks,
    ) -> Result<BoxIter<'a, (K, V)>>
    where
        K: 'a,
        V: 'a,
    {
        self.seal();
        while self.runs.len() > MAX_FANIN {
            if !ctx.yield_point() {
                return Ok(Box::new(std::iter::empty()));
            }
            let oldest: Vec<RunFile> = self.runs.drain(..MAX_FANIN).collect();
            let sources = oldest
                .into_iter()
                .map(RunReader::open)
                .map(|r| r.map(Source::<K, V>::File))
                .collect::<Result<Vec<_>, _>>()?;
            let (run, bytes) = write_run(ctx, blocks, Merge::new(ctx, sources)?)?;
            // The merged run holds the oldest records: it goes first, keeping the sort stable.
            self.runs.insert(0, run);
            self.spilled_bytes += bytes;
        }
        let mut sources = Vec::with_capacity(self.runs.len() + self.chunks.len());
        for run in std::mem::take(&mut self.runs) {
            sources.push(Source::File(RunReader::open(run)?));
        }
        sources.extend(
            std::mem::take(&mut self.chunks)
                .into_iter()
                .map(|c| Source::Mem(c.into_iter())),
        );
        let mut merge = Merge::new(ctx, sources)?;
        Ok(Box::new(std::iter::from_fn(move || {
            if !ctx.yield_point() || ctx.has_failed() {
                return None;
            }
            match merge.pop() {
                Ok(r) => r,
                Err(e) => {
                    ctx.fail(e);
                    None
                }
            }
        })))
    }
}

/// Write every record of `merge` to a new run file (a yield point per record; a kill stops
/// early, the task's result being discarded anyway). Returns the file and the bytes written.
fn write_run<K: Ord + Serialize + DeserializeOwned, V: Serialize + DeserializeOwned>(
    ctx: &TaskContext,
    blocks: &dyn Blocks,
    mut merge: Merge<K, V>,
) -> Result<(RunFile, u64)> {
    let dir = blocks.spill_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create spill directory", &dir, e))?;
    let seq = RUN_SEQ.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("sort-{}-a{}-{seq}.run", ctx.id(), ctx.attempt()));
    let file = std::fs::File::create(&path).map_err(|e| Error::io("create run file", &path, e))?;
    let run = RunFile(path);
    let mut w = BufWriter::new(file);
    let mut bytes = 0u64;
    let mut buf = Vec::new();
    while let Some(rec) = merge.pop()? {
        if !ctx.yield_point() {
            break;
        }
        buf.clear();
        buf = postcard::to_extend(&rec, std::mem::take(&mut buf))
            .map_err(|e| Error::codec("cannot encode sorted record", e))?;
        let len = u32::try_from(buf.len()).map_err(|_| {
            Error::Spill(format!("sorted record of {} bytes is too large", buf.len()))
        })?;
        w.write_all(&len.to_le_bytes())
            .and_then(|()| w.write_all(&buf))
            .map_err(|e| Error::io("write", &run.0, e))?;
        bytes += 4 + buf.len() as u64;
    }
    w.flush().map_err(|e| Error::io("write", &run.0, e))?;
    blocks.note_spilled(bytes);
    Ok((run, bytes))
}

/// Streams the records of one run file.
struct RunReader {
    file: RunFile,
    reader: BufReader<std::fs::File>,
    buf: Vec<u8>,
}

impl RunReader {
    fn open(file: RunFile) -> Result<Self> {
        let f = std::fs::File::open(&file.0).map_err(|e| Error::io("open run file", &file.0, e))?;
        Ok(Self {
            file,
            reader: BufReader::new(f),
            buf: Vec::new(),
        })
    }

    fn next<R: DeserializeOwned>(&mut self) -> Result<Option<R>> {
        let path = &self.file.0;
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < len.len() {
            match self.reader.read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(Error::Spill(format!(
                        "truncated run file {}",
                        path.display()
                    )));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read run file", path, e)),
            }
        }
        self.buf.resize(u32::from_le_bytes(len) as usize, 0);
        self.reader
            .read_exact(&mut self.buf)
            .map_err(|e| Error::io("read run file", path, e))?;
        postcard::from_bytes(&self.buf)
            .map(Some)
            .map_err(|e| Error::codec(format!("corrupt run file {}", path.display()), e))
    }
}

/// One sorted input of a merge.
enum Source<K, V> {
    Mem(std::vec::IntoIter<(K, V)>),
    File(RunReader),
}

impl<K: DeserializeOwned, V: DeserializeOwned> Source<K, V> {
    fn next(&mut self) -> Result<Option<(K, V)>> {
        match self {
            Source::Mem(it) => Ok(it.next()),
            Source::File(r) => r.next(),
        }
    }
}

/// The smallest unmerged record of one source.
struct Head<K, V> {
    key: K,
    value: V,
    src: usize,
}

impl<K: Ord, V> PartialEq for Head<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl<K: Ord, V> Eq for Head<K, V> {}

impl<K: Ord, V> PartialOrd for Head<K, V> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord, V> Ord for Head<K, V> {
    /// Reversed (the heap is a max-heap): smallest key first, then the earliest source.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other
            .key
            .cmp(&self.key)
            .then_with(|| other.src.cmp(&self.src))
    }
}

/// A k-way merge of sorted sources.
struct Merge<K, V> {
    sources: Vec<Source<K, V>>,
    heap: BinaryHeap<Head<K, V>>,
}

impl<K: Ord + DeserializeOwned, V: DeserializeOwned> Merge<K, V> {
    fn new(ctx: &TaskContext, mut sources: Vec<Source<K, V>>) -> Result<Self> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (src, s) in sources.iter_mut().enumerate() {
            if !ctx.yield_point() {
                break;
            }
            if let Some((key, value)) = s.next()? {
                heap.push(Head { key, value, src });
            }
        }
        Ok(Self { sources, heap })
    }

    /// The next record in key order.
    fn pop(&mut self) -> Result<Option<(K, V)>> {
        let Some(Head { key, value, src }) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some((k, v)) = self.sources[src].next()? {
            self.heap.push(Head {
                key: k,
                value: v,
                src,
            });
        }
        Ok(Some((key, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobKind;
    use crate::shuffle::LocalBlocks;

    fn ctx() -> TaskContext {
        TaskContext::detached_at(JobKind::Batch, 0, 0)
    }

    fn sort(budget: u64, records: &[(u64, u64)]) -> (Vec<(u64, u64)>, usize, u64) {
        let dir = tempfile::tempdir().unwrap();
        let blocks = LocalBlocks::new(dir.path(), budget);
        let c = ctx();
        let mut s = SpillingSorter::new(budget);
        for &(k, v) in records {
            s.push(&c, &blocks, k, v).unwrap();
        }
        let runs = s.runs();
        let out: Vec<(u64, u64)> = s.finish(&c, &blocks).unwrap().collect();
        assert!(c.take_error().is_none());
        let left = std::fs::read_dir(dir.path()).map_or(0, Iterator::count);
        assert_eq!(left, 0, "run files are deleted once merged");
        (out, runs, blocks.spilled())
    }

    fn records(n: u64) -> Vec<(u64, u64)> {
        (0..n).map(|i| ((i * 7919) % 1013, i)).collect()
    }

    fn stable_sorted(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
        r.sort_by_key(|x| x.0);
        r
    }

    #[test]
    fn records_within_the_budget_sort_in_memory_and_stably() {
        let input = records(5000);
        let (out, runs, spilled) = sort(1 << 30, &input);
        assert_eq!(runs, 0);
        assert_eq!(spilled, 0);
        assert_eq!(out, stable_sorted(input));
    }

    #[test]
    fn records_beyond_the_budget_spill_runs_and_merge_to_the_same_order() {
        let input = records(10_000);
        let (out, runs, spilled) = sort(1, &input);
        assert!(runs > 1, "a tiny budget spills several runs");
        assert!(spilled > 0);
        assert_eq!(out, stable_sorted(input));
    }

    #[test]
    fn more_runs_than_the_fan_in_are_merged_in_rounds_and_stay_stable() {
        let input = records((MAX_FANIN as u64 * 2 + 5) * CHUNK as u64);
        let (out, runs, _) = sort(1, &input);
        assert!(runs > MAX_FANIN);
        assert_eq!(out, stable_sorted(input));
    }

    #[test]
    fn an_empty_sorter_yields_nothing() {
        assert!(sort(1, &[]).0.is_empty());
    }

    #[test]
    fn a_killed_merge_stops_at_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = LocalBlocks::new(dir.path(), 1);
        let c = ctx();
        let mut s = SpillingSorter::new(1);
        for (k, v) in records(3000) {
            s.push(&c, &blocks, k, v).unwrap();
        }
        let mut it = s.finish(&c, &blocks).unwrap();
        assert!(it.next().is_some());
        c.control().request_kill();
        assert!(it.next().is_none());
    }
}
