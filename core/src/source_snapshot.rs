//! Input snapshots of the file sources: the driver lists a source's files once per run, keeps each
//! path with its size at listing time, and assigns them to the run's partitions; every task reads
//! exactly its own files, up to their listed sizes, from its launch parameters.
//!
//! Why: before snapshots, the driver and every executor listed the input when building the app, so
//! a file added between two listings was counted by some tasks and not by others and the job
//! committed a wrong result. Now one listing decides a run's whole input:
//! - a file added after the listing is read by the next run (batch jobs with several runs), never
//!   by part of this one;
//! - a file that grew is read up to its listed size only. A last line without its `\n` at that
//!   size is a record, as a file's unterminated last line always is: the snapshot is the file
//!   as it was at listing time. Writers that append must append whole lines (or drop files in
//!   atomically, by renaming them in) for a line cut by the listing not to be counted;
//! - a file deleted (or truncated below its listed size) before its task reads it fails the task
//!   with a message naming the file, never a silent skip.
//!
//! The partition count of a file source is fixed when the app is built (one partition per file
//! listed then); a run's snapshot spreads its files over those partitions round-robin in path
//! order, so with an unchanged input partition `p` reads file `p` as before.

use crate::shuffle::ShuffleRead;
use serde::{Deserialize, Serialize};

/// One file of a run's input snapshot: its path and its size when the driver listed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSlice {
    /// Path as the driver listed it (executors see the same filesystem: a shared volume).
    pub path: String,
    /// Bytes of the file at listing time: the task reads no more.
    pub len: u64,
}

/// What a task's `Launch.params` carry (postcard): the locations of the shuffle outputs and
/// receivers its stage reads, and, for a stage reading a file source, its files of the run's
/// snapshot (`None`: the stage reads no file source).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchParams {
    /// One per input slot of the stage (see [`crate::plan::StageDef::reads`]).
    pub reads: Vec<ShuffleRead>,
    /// The task's files, in the order it reads them.
    pub files: Option<Vec<FileSlice>>,
    /// For a stage reading a Kafka source, the task's offset ranges of the micro-batch's plan
    /// (see [`crate::kafka`]).
    pub kafka: Vec<crate::kafka::OffsetRange>,
    /// The durable number of the run's Kafka micro-batch, when it reads Kafka records.
    pub kafka_batch: Option<u64>,
    /// The identity of the run's numbering (see [`crate::task::TaskContext::output_epoch`]).
    pub epoch: String,
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The pattern is invalid or matches no file now.
    #[error(transparent)]
    List(crate::error::Error),
    /// A listed file's size could not be read.
    #[error("cannot read the size of input file {path}: {source}")]
    Stat {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// List `pattern` now and spread its files over `partitions` partitions (round-robin in path
/// order): one `Vec<FileSlice>` per partition. A file removed between the glob and its `stat` is
/// not in the snapshot (it was gone at listing time).
///
/// # Errors
/// [`SnapshotError`] naming the pattern or the file.
pub fn snapshot(pattern: &str, partitions: u32) -> Result<Vec<Vec<FileSlice>>, SnapshotError> {
    let files = crate::source::list_files(pattern).map_err(SnapshotError::List)?;
    let mut sized = Vec::with_capacity(files.len());
    for f in files {
        match std::fs::metadata(&f) {
            Ok(m) => sized.push(FileSlice {
                path: f.to_string_lossy().into_owned(),
                len: m.len(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SnapshotError::Stat {
                    path: f.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(assign(sized, partitions))
}

/// Spread `files` (in order) over `partitions` partitions round-robin: file `i` goes to partition
/// `i % partitions`, so partitions differ by at most one file.
pub fn assign(files: Vec<FileSlice>, partitions: u32) -> Vec<Vec<FileSlice>> {
    let n = partitions.max(1) as usize;
    let mut out = vec![Vec::new(); n];
    for (i, f) in files.into_iter().enumerate() {
        out[i % n].push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, len: u64) -> FileSlice {
        FileSlice {
            path: path.into(),
            len,
        }
    }

    #[test]
    fn files_spread_round_robin_in_order() {
        let files = vec![f("a", 1), f("b", 2), f("c", 3), f("d", 4), f("e", 5)];
        let parts = assign(files, 2);
        assert_eq!(parts[0], vec![f("a", 1), f("c", 3), f("e", 5)]);
        assert_eq!(parts[1], vec![f("b", 2), f("d", 4)]);
        // As many files as partitions: partition p reads file p, as the build-time listing did.
        let parts = assign(vec![f("a", 1), f("b", 2)], 2);
        assert_eq!(parts, vec![vec![f("a", 1)], vec![f("b", 2)]]);
        // Fewer files than partitions: the others read nothing.
        let parts = assign(vec![f("a", 1)], 3);
        assert_eq!(parts, vec![vec![f("a", 1)], vec![], vec![]]);
    }

    #[test]
    fn snapshot_keeps_sizes_at_listing_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "x\ny\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "zz\n").unwrap();
        let parts = snapshot(dir.path().to_str().unwrap(), 1).unwrap();
        let a = dir.path().join("a.txt").to_string_lossy().into_owned();
        let b = dir.path().join("b.txt").to_string_lossy().into_owned();
        assert_eq!(parts, vec![vec![f(&a, 4), f(&b, 3)]]);
        let e = snapshot(&format!("{}/*.csv", dir.path().display()), 1).unwrap_err();
        assert!(e.to_string().contains("matches no files"), "{e}");
    }

    #[test]
    fn launch_params_round_trip() {
        let p = LaunchParams {
            reads: Vec::new(),
            files: Some(vec![f("/in/a", 7)]),
            kafka: vec![crate::kafka::OffsetRange {
                partition: 3,
                from: 10,
                until: 20,
            }],
            kafka_batch: Some(4),
            epoch: "3f2a".into(),
        };
        let b = postcard::to_stdvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<LaunchParams>(&b).unwrap(), p);
    }
}

#[cfg(test)]
mod read_tests {
    //! Sources reading a snapshot: sizes at listing time bound what is read.
    use super::*;
    use crate::ids::JobKind;
    use crate::source::{csv_files, json_lines, text_files};
    use crate::task::TaskContext;
    use std::io::Write;

    fn ctx_with(files: Vec<FileSlice>) -> TaskContext {
        let c = TaskContext::detached_at(JobKind::Batch, 0, 0);
        c.set_input_files(files);
        c
    }

    #[test]
    fn a_file_that_grew_is_read_to_its_listed_size_and_a_cut_last_line_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        std::fs::write(&a, "one\ntwo\nthr").unwrap();
        let snap = snapshot(dir.path().to_str().unwrap(), 1).unwrap();
        let ds = text_files(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(ds.inputs(), [dir.path().to_str().unwrap()]);
        // Appended after the listing: not this run's input.
        let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
        f.write_all(b"ee\nfour\n").unwrap();
        // A file added after the listing is not either.
        std::fs::write(dir.path().join("0-new.txt"), "new\n").unwrap();
        let c = ctx_with(snap[0].clone());
        let got: Vec<String> = ds.iter(&c).collect();
        assert_eq!(got, ["one", "two", "thr"]);
        assert!(!c.has_failed());
        // The next run's snapshot sees both, whole.
        let snap = snapshot(dir.path().to_str().unwrap(), 1).unwrap();
        let c = ctx_with(snap[0].clone());
        let got: Vec<String> = ds.iter(&c).collect();
        assert_eq!(got, ["new", "one", "two", "three", "four"]);
    }

    #[test]
    fn a_partition_reads_every_file_it_is_given_naming_each_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "1\n2\n").unwrap();
        let pattern = format!("{}/*.jsonl", dir.path().display());
        let ds = json_lines::<u32>(&pattern).unwrap();
        std::fs::write(dir.path().join("b.jsonl"), "3\nx\n").unwrap();
        let snap = snapshot(&pattern, 1).unwrap();
        let c = ctx_with(snap[0].clone());
        assert_eq!(ds.iter(&c).collect::<Vec<_>>(), [1, 2, 3]);
        let e = c.take_error().unwrap().to_string();
        assert!(e.contains("b.jsonl:2"), "{e}");
    }

    #[test]
    fn a_file_deleted_or_truncated_after_the_listing_fails_the_task_naming_it() {
        #[derive(serde::Deserialize)]
        struct N {
            n: u32,
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "n\n1\n2\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "n\n3\n").unwrap();
        let pattern = format!("{}/*.csv", dir.path().display());
        let ds = csv_files::<N>(&pattern).unwrap();
        let snap = snapshot(&pattern, 1).unwrap();
        let c = ctx_with(snap[0].clone());
        assert_eq!(ds.iter(&c).map(|r| r.n).collect::<Vec<_>>(), [1, 2, 3]);
        std::fs::write(dir.path().join("a.csv"), "n\n1\n").unwrap();
        let c = ctx_with(snap[0].clone());
        let _ = ds.iter(&c).count();
        let e = c.take_error().unwrap();
        assert!(
            matches!(&e, crate::Error::Truncated { path, actual: 4, .. } if path.ends_with("a.csv")),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(e.contains("a.csv") && e.contains("fewer than"), "{e}");
        std::fs::remove_file(dir.path().join("b.csv")).unwrap();
        let c = ctx_with(snap[0][1..].to_vec());
        assert_eq!(ds.iter(&c).count(), 0);
        let e = c.take_error().unwrap().to_string();
        assert!(e.contains("b.csv") && e.contains("snapshot"), "{e}");
    }
}
