//! A watched directory as an incremental stream source: each micro-batch reads only the files that
//! appeared in the directory since the previous one, every file exactly once.
//!
//! How: the task of (run `R`, partition `P`) *claims* the new files of its partition (by name
//! hash) by renaming them into `DIR/.neptune/claims/run-R/part-P/`, then *seals* the claim by
//! creating `SEALED` there (create-new, so exactly one attempt wins) listing what it claimed. Any
//! later attempt of the same task (a retry, a recomputation from lineage on another executor)
//! reads exactly the sealed list, so the run's result never changes between attempts; an attempt
//! that loses the sealing race puts its extra claims back for the next micro-batch. When the run
//! commits on the driver, [`WatchedDir::commit`] moves `run-R` to `DIR/.neptune/done/` (cleanup
//! [`Cleanup::Archive`], the default: the input files are kept there, like Spark's
//! `cleanSource=archive`) or deletes it ([`Cleanup::Delete`]), so a restarted app (whose run
//! numbers start again) finds only claims of uncommitted runs, and processes them once.
//!
//! Not: a polling of file contents. Writers must drop files complete, atomically: write under a
//! name starting with `.` (ignored) and rename it into the directory. All executors and the
//! driver must see the same directory (one host, or a shared volume).

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::shuffle::partition_of;
use crate::source::read_lines;
use crate::task::TaskContext;
use neptune_config::ChoiceError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SEALED: &str = "SEALED";

/// What happens to the files of a committed run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    strum::Display,
    strum::EnumString,
    strum::VariantNames,
)]
#[strum(serialize_all = "lowercase", parse_err_ty = ChoiceError, parse_err_fn = cleanup_err)]
pub enum Cleanup {
    /// Keep them under `DIR/.neptune/done/run-R-<time>/` (never pruned: move or delete them
    /// yourself if the directory must not grow).
    #[default]
    Archive,
    /// Delete them.
    Delete,
}

fn cleanup_err(s: &str) -> ChoiceError {
    ChoiceError::of::<Cleanup>(s)
}

/// A directory watched for new files (see the module docs for the exactly-once protocol).
#[derive(Debug, Clone)]
pub struct WatchedDir {
    dir: Arc<PathBuf>,
    cleanup: Cleanup,
}

impl WatchedDir {
    /// Watch `dir`, creating it (and its bookkeeping directory) when missing.
    ///
    /// # Errors
    /// [`Error::Io`] naming the directory when it cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join(".neptune").join("done"))
            .map_err(|e| Error::io("create watched directory", &dir, e))?;
        Ok(Self {
            dir: Arc::new(dir),
            cleanup: Cleanup::default(),
        })
    }

    /// The same directory, handling committed files with `cleanup`.
    #[must_use]
    pub fn with_cleanup(mut self, cleanup: Cleanup) -> Self {
        self.cleanup = cleanup;
        self
    }

    fn run_dir(&self, run: u64) -> PathBuf {
        self.dir
            .join(".neptune")
            .join("claims")
            .join(format!("run-{run:06}"))
    }

    /// The lines of the files new in run `ctx.run()` for partition `ctx.partition()`, over
    /// `partitions` partitions.
    pub fn lines(&self, partitions: u32) -> Dataset<String> {
        let this = self.clone();
        Dataset::from_fn(partitions, move |ctx: &TaskContext| {
            let files = match this.claim(ctx.run(), ctx.partition(), partitions) {
                Ok(f) => f,
                Err(e) => {
                    ctx.fail(e);
                    return Box::new(std::iter::empty());
                }
            };
            Box::new(files.into_iter().flat_map(move |f| read_lines(ctx, f)))
        })
    }

    /// The files of (run, partition): the sealed list if sealed, else new files claimed now.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path when the claim directory cannot be read or written.
    pub fn claim(&self, run: u64, partition: u32, partitions: u32) -> Result<Vec<PathBuf>> {
        let part = self.run_dir(run).join(format!("part-{partition:05}"));
        let io = |what: &str, p: &Path, e: std::io::Error| Error::io(what, p, e);
        std::fs::create_dir_all(&part).map_err(|e| io("create", &part, e))?;
        if let Some(sealed) = read_sealed(&part)? {
            return Ok(sealed);
        }
        for entry in std::fs::read_dir(&*self.dir).map_err(|e| io("list", &self.dir, e))? {
            let entry = entry.map_err(|e| io("list", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if !is_file || name.starts_with('.') || partition_of(&name, partitions) != partition {
                continue;
            }
            let mut to = part.join(&name);
            for n in 1.. {
                if !to.exists() {
                    break;
                }
                to = part.join(format!("{name}.{n}"));
            }
            // Another attempt may have claimed it first: then it is theirs.
            let _ = std::fs::rename(entry.path(), to);
        }
        let mut mine: Vec<String> = std::fs::read_dir(&part)
            .map_err(|e| io("list", &part, e))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != SEALED)
            .collect();
        mine.sort();
        let seal = part.join(SEALED);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&seal)
        {
            Ok(mut f) => {
                f.write_all(mine.join("\n").as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| io("write", &seal, e))?;
                Ok(mine.into_iter().map(|n| part.join(n)).collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let sealed = read_sealed(&part)?.unwrap_or_default();
                for extra in mine.iter().filter(|n| !sealed.contains(&part.join(n))) {
                    let _ = std::fs::rename(part.join(extra), self.dir.join(extra));
                }
                Ok(sealed)
            }
            Err(e) => Err(io("create", &seal, e)),
        }
    }

    /// Run `run` committed: archive or delete its claims (per [`Cleanup`]; always delete them
    /// when it claimed nothing) so they are never read again.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path when the claims cannot be moved.
    pub fn commit(&self, run: u64) -> Result<()> {
        let from = self.run_dir(run);
        let Ok(parts) = std::fs::read_dir(&from) else {
            return Ok(());
        };
        let claimed_any = parts.filter_map(Result::ok).any(|p| {
            std::fs::read_dir(p.path())
                .is_ok_and(|fs| fs.filter_map(Result::ok).any(|f| f.file_name() != SEALED))
        });
        if !claimed_any || self.cleanup == Cleanup::Delete {
            return std::fs::remove_dir_all(&from).map_err(|e| Error::io("remove", &from, e));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let to = self
            .dir
            .join(".neptune")
            .join("done")
            .join(format!("run-{run:06}-{nanos}"));
        std::fs::rename(&from, &to)
            .map_err(|e| Error::io("archive", &from, e).with_note(format!(" to {}", to.display())))
    }
}

/// The sealed file list of a claim directory, if sealed.
fn read_sealed(part: &Path) -> Result<Option<Vec<PathBuf>>> {
    let seal = part.join(SEALED);
    match std::fs::read_to_string(&seal) {
        Ok(s) => Ok(Some(
            s.lines()
                .filter(|l| !l.is_empty())
                .map(|n| part.join(n))
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &seal, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobKind;

    fn ctx(run: u64, partition: u32) -> TaskContext {
        TaskContext::detached_at(JobKind::Stream, run, partition)
    }

    fn read_run(w: &WatchedDir, run: u64, parts: u32) -> Vec<String> {
        let ds = w.lines(parts);
        let mut all: Vec<String> = Vec::new();
        for p in 0..parts {
            let c = ctx(run, p);
            all.extend(ds.iter(&c));
            assert!(!c.has_failed(), "{:?}", c.take_error());
        }
        all.sort();
        all
    }

    #[test]
    fn each_run_reads_only_the_files_new_since_the_previous_one() {
        let d = tempfile::tempdir().unwrap();
        let w = WatchedDir::new(d.path()).unwrap();
        std::fs::write(d.path().join("a"), "a1\na2\n").unwrap();
        std::fs::write(d.path().join(".partial"), "ignored\n").unwrap();
        assert_eq!(read_run(&w, 0, 3), ["a1", "a2"]);
        w.commit(0).unwrap();
        assert!(read_run(&w, 1, 3).is_empty());
        std::fs::write(d.path().join("b"), "b1\n").unwrap();
        std::fs::write(d.path().join("c"), "c1\n").unwrap();
        assert_eq!(read_run(&w, 2, 3), ["b1", "c1"]);
    }

    #[test]
    fn a_retried_task_reads_exactly_what_its_first_attempt_sealed() {
        let d = tempfile::tempdir().unwrap();
        let w = WatchedDir::new(d.path()).unwrap();
        std::fs::write(d.path().join("a"), "a1\n").unwrap();
        let first = read_run(&w, 5, 1);
        std::fs::write(d.path().join("b"), "b1\n").unwrap();
        assert_eq!(read_run(&w, 5, 1), first, "the retry sees the sealed claim");
        w.commit(5).unwrap();
        assert_eq!(
            read_run(&w, 6, 1),
            ["b1"],
            "the late file goes to the next run"
        );
    }

    #[test]
    fn a_file_dropped_again_under_a_claimed_name_is_read_again() {
        let d = tempfile::tempdir().unwrap();
        let w = WatchedDir::new(d.path()).unwrap();
        std::fs::write(d.path().join("a"), "one\n").unwrap();
        assert_eq!(read_run(&w, 0, 1), ["one"]);
        w.commit(0).unwrap();
        std::fs::write(d.path().join("a"), "two\n").unwrap();
        assert_eq!(read_run(&w, 1, 1), ["two"]);
        w.commit(1).unwrap();
        let done = std::fs::read_dir(d.path().join(".neptune/done")).unwrap();
        assert_eq!(done.count(), 2, "both claims archived");
    }

    #[test]
    fn cleanup_delete_removes_committed_files_and_keeps_uncommitted_claims() {
        let d = tempfile::tempdir().unwrap();
        let w = WatchedDir::new(d.path())
            .unwrap()
            .with_cleanup("delete".parse().unwrap());
        std::fs::write(d.path().join("a"), "one\n").unwrap();
        assert_eq!(read_run(&w, 0, 1), ["one"]);
        w.commit(0).unwrap();
        std::fs::write(d.path().join("b"), "two\n").unwrap();
        assert_eq!(read_run(&w, 1, 1), ["two"]);
        let count = |p: &str| std::fs::read_dir(d.path().join(p)).unwrap().count();
        assert_eq!(count(".neptune/done"), 0, "nothing archived");
        assert_eq!(count(".neptune/claims"), 1, "run 1 is not committed yet");
        w.commit(1).unwrap();
        assert_eq!(count(".neptune/claims"), 0);
        assert!(
            "keep"
                .parse::<Cleanup>()
                .unwrap_err()
                .to_string()
                .contains("`keep`")
        );
    }
}
