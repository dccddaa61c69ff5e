//! Sources: a seeded generator (rate-controlled for stream jobs) and files (text lines, JSON lines,
//! CSV), each partition read inside a task with a yield point per record.

use crate::dataset::{Dataset, yielding};
use crate::error::{Error, Result};
use crate::task::TaskContext;
use neptune_config::ChoiceError;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The generator's RNG: seeded per (seed, run, partition), so every attempt of a task — on any
/// executor — sees the same records.
pub type Rng = ChaCha8Rng;

fn rng_for(seed: u64, run: u64, partition: u32) -> Rng {
    // SplitMix-style mixing so neighbouring (run, partition) pairs get unrelated streams.
    let mut z = seed
        ^ run.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(partition).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Rng::seed_from_u64(z ^ (z >> 31))
}

/// Records per partition per micro-batch for a stream source producing `rate_per_sec` records in
/// total every second, split over `partitions`, cut into micro-batches of `interval`.
pub fn records_per_micro_batch(rate_per_sec: u64, interval: Duration, partitions: u32) -> u64 {
    let total = (u128::from(rate_per_sec) * interval.as_millis()) / 1000;
    (total as u64).div_ceil(u64::from(partitions.max(1)))
}

/// A generated dataset: partition `p` of run `r` holds `count(r, p)` records, record `i` being
/// `make(rng, r, i)` with an RNG seeded from `(seed, r, p)`. Deterministic across attempts.
pub fn generate<T: 'static>(
    partitions: u32,
    seed: u64,
    count: impl Fn(u64, u32) -> u64 + Send + Sync + 'static,
    make: impl Fn(&mut Rng, u64, u64) -> T + Send + Sync + 'static,
) -> Dataset<T> {
    let make = Arc::new(make);
    Dataset::from_fn(partitions, move |ctx: &TaskContext| {
        let (run, part) = (ctx.run(), ctx.partition());
        let n = count(run, part);
        let mut rng = rng_for(seed, run, part);
        let make = make.clone();
        Box::new((0..n).map(move |i| {
            ctx.count_record();
            make(&mut rng, run, i)
        }))
    })
}

/// What a file source does with a record that does not parse.
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
#[strum(serialize_all = "lowercase", parse_err_ty = ChoiceError, parse_err_fn = malformed_err)]
pub enum Malformed {
    /// Fail the task (and, after retries, the job) with a message naming the file and line.
    #[default]
    Fail,
    /// Skip the record and count it (executor metric, task update, report).
    Skip,
}

fn malformed_err(s: &str) -> ChoiceError {
    ChoiceError::of::<Malformed>(s)
}

impl Malformed {
    /// Apply the policy to a bad record (an [`Error::Malformed`] naming file and line).
    pub fn handle(self, ctx: &TaskContext, error: Error) {
        match self {
            Malformed::Fail => ctx.fail(error),
            Malformed::Skip => {
                tracing::debug!(message = %error, "malformed record skipped");
                ctx.count_skipped();
            }
        }
    }
}

/// Files matching `pattern` (a glob, or a directory meaning all files in it), sorted by path.
///
/// # Errors
/// [`Error::BadPattern`] or [`Error::NoInput`] naming the pattern when it is invalid or
/// matches nothing.
pub fn list_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let path = std::path::Path::new(pattern);
    let pat = if path.is_dir() {
        format!("{}/*", pattern.trim_end_matches('/'))
    } else {
        pattern.to_string()
    };
    let mut files: Vec<PathBuf> = glob::glob(&pat)
        .map_err(|e| Error::BadPattern {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::NoInput {
            pattern: pattern.to_string(),
        });
    }
    Ok(files)
}

/// Longest line a file source reads, in bytes (64 MiB): a longer one fails the task naming its
/// file and line, instead of a buffer growing with whatever the file holds.
pub const MAX_RECORD_LINE: usize = 64 << 20;

/// The files partition `ctx.partition()` reads in this run, each with the size it is read up to:
/// the task's share of the run's input snapshot (launch parameters, see
/// [`crate::source_snapshot`]), else, for a context built outside an executor (unit tests), file
/// `partition` of the build-time listing, read whole.
fn partition_files(ctx: &TaskContext, listed: &[PathBuf]) -> Vec<(PathBuf, Option<u64>)> {
    match ctx.input_files() {
        Some(files) => files
            .iter()
            .map(|f| (PathBuf::from(&f.path), Some(f.len)))
            .collect(),
        None => listed
            .get(ctx.partition() as usize)
            .map(|p| (p.clone(), None))
            .into_iter()
            .collect(),
    }
}

/// Open `path` to be read up to `len` bytes (its size in the run's snapshot; `None`: whole). A
/// file deleted or truncated since the listing fails the task naming it: its snapshot is gone.
fn open_listed(ctx: &TaskContext, path: &Path, len: Option<u64>) -> Option<std::io::Take<File>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let listed = if len.is_some() {
                " (listed in the run's input snapshot)"
            } else {
                ""
            };
            ctx.fail(Error::io("open", path, e).with_note(listed));
            return None;
        }
    };
    let Some(len) = len else {
        return Some(file.take(u64::MAX));
    };
    match file.metadata() {
        Ok(m) if m.len() >= len => Some(file.take(len)),
        Ok(m) => {
            ctx.fail(Error::Truncated {
                path: path.to_path_buf(),
                listed: len,
                actual: m.len(),
            });
            None
        }
        Err(e) => {
            ctx.fail(Error::io("read", path, e));
            None
        }
    }
}

/// The lines of `path` (`\n` or `\r\n` ended), each counted as a record; an unreadable file,
/// a line that is not UTF-8 or longer than [`MAX_RECORD_LINE`] fails the task naming it.
pub(crate) fn read_lines(
    ctx: &TaskContext,
    path: PathBuf,
) -> Box<dyn Iterator<Item = String> + '_> {
    read_lines_max(ctx, path, None, MAX_RECORD_LINE)
}

/// [`read_lines`] of the first `len` bytes of `path` (all of it for `None`), lines of at most
/// `max` bytes. The last line needs no `\n`: cut at `len`, it is the file's last line as listed.
fn read_lines_max(
    ctx: &TaskContext,
    path: PathBuf,
    len: Option<u64>,
    max: usize,
) -> Box<dyn Iterator<Item = String> + '_> {
    let Some(f) = open_listed(ctx, &path, len) else {
        return Box::new(std::iter::empty());
    };
    let mut r = std::io::BufReader::new(f);
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    Box::new(std::iter::from_fn(move || {
        buf.clear();
        line_no += 1;
        let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
        match (&mut r).take(limit).read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                } else if buf.len() > max {
                    ctx.fail(Error::Malformed {
                        path: path.clone(),
                        line: line_no,
                        reason: format!("line longer than {max} bytes"),
                    });
                    return None;
                }
                match String::from_utf8(std::mem::take(&mut buf)) {
                    Ok(l) => {
                        ctx.count_record();
                        Some(l)
                    }
                    Err(_) => {
                        ctx.fail(Error::Malformed {
                            path: path.clone(),
                            line: line_no,
                            reason: "line is not UTF-8".into(),
                        });
                        None
                    }
                }
            }
            Err(e) => {
                ctx.fail(Error::io("read", &path, e));
                None
            }
        }
    }))
}

/// Lines of the files matching `pattern`: one partition per file listed when the app is built;
/// every run reads the snapshot the driver lists when it begins (see
/// [`crate::source_snapshot`]).
///
/// # Errors
/// [`Error::NoInput`] naming the pattern when it matches nothing.
pub fn text_files(pattern: &str) -> Result<Dataset<String>> {
    let files = Arc::new(list_files(pattern)?);
    let n = files.len() as u32;
    Ok(Dataset::from_fn(n, move |ctx: &TaskContext| {
        let parts = partition_files(ctx, &files);
        Box::new(
            parts
                .into_iter()
                .flat_map(move |(path, len)| read_lines_max(ctx, path, len, MAX_RECORD_LINE)),
        )
    })
    .reading_files(pattern))
}

/// Records of JSON-lines files matching `pattern`, partitioned and snapshotted as
/// [`text_files`]. A line that does not parse fails the task with a message naming the file and
/// the line number.
///
/// # Errors
/// [`Error::NoInput`] naming the pattern when it matches nothing.
pub fn json_lines<T: DeserializeOwned + 'static>(pattern: &str) -> Result<Dataset<T>> {
    json_lines_with(pattern, Malformed::Fail)
}

/// [`json_lines`] with a chosen policy for lines that do not parse.
///
/// # Errors
/// [`Error::NoInput`] naming the pattern when it matches nothing.
pub fn json_lines_with<T: DeserializeOwned + 'static>(
    pattern: &str,
    policy: Malformed,
) -> Result<Dataset<T>> {
    let files = Arc::new(list_files(pattern)?);
    let n = files.len() as u32;
    Ok(Dataset::from_fn(n, move |ctx: &TaskContext| {
        let parts = partition_files(ctx, &files);
        Box::new(parts.into_iter().flat_map(move |(path, len)| {
            let name = path.clone();
            // Behind a yield point, which also stops at the first failure (a malformed line
            // under `Malformed::Fail`) instead of reading on.
            yielding(ctx, read_lines_max(ctx, path, len, MAX_RECORD_LINE))
                .enumerate()
                .filter_map(move |(i, l)| {
                    if l.trim().is_empty() {
                        return None;
                    }
                    match serde_json::from_str::<T>(&l) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            let bad = Error::Malformed {
                                path: name.clone(),
                                line: i as u64 + 1,
                                reason: format!("malformed JSON record: {e}"),
                            };
                            policy.handle(ctx, bad);
                            None
                        }
                    }
                })
        }))
    })
    .reading_files(pattern))
}

/// Records of CSV files (with a header row) matching `pattern`, partitioned and snapshotted as
/// [`text_files`]. A row that does not parse fails the task with a message naming the file and
/// the line number.
///
/// # Errors
/// [`Error::NoInput`] naming the pattern when it matches nothing.
pub fn csv_files<T: DeserializeOwned + 'static>(pattern: &str) -> Result<Dataset<T>> {
    csv_files_with(pattern, Malformed::Fail)
}

/// [`csv_files`] with a chosen policy for rows that do not parse.
///
/// # Errors
/// [`Error::NoInput`] naming the pattern when it matches nothing.
pub fn csv_files_with<T: DeserializeOwned + 'static>(
    pattern: &str,
    policy: Malformed,
) -> Result<Dataset<T>> {
    let files = Arc::new(list_files(pattern)?);
    let n = files.len() as u32;
    Ok(Dataset::from_fn(n, move |ctx: &TaskContext| {
        let parts = partition_files(ctx, &files);
        Box::new(
            parts
                .into_iter()
                .flat_map(move |(path, len)| csv_rows::<T>(ctx, path, len, policy)),
        )
    })
    .reading_files(pattern))
}

/// The rows of one CSV file, read up to `len` bytes.
fn csv_rows<T: DeserializeOwned + 'static>(
    ctx: &TaskContext,
    path: PathBuf,
    len: Option<u64>,
    policy: Malformed,
) -> Box<dyn Iterator<Item = T> + '_> {
    let Some(f) = open_listed(ctx, &path, len) else {
        return Box::new(std::iter::empty());
    };
    let mut rows = csv::Reader::from_reader(f).into_deserialize::<T>();
    Box::new(std::iter::from_fn(move || {
        loop {
            match rows.next()? {
                Ok(v) => {
                    ctx.count_record();
                    return Some(v);
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    let bad = Error::Malformed {
                        path: path.clone(),
                        line,
                        reason: format!("malformed CSV record: {e}"),
                    };
                    policy.handle(ctx, bad);
                    if policy == Malformed::Fail || !ctx.yield_point() {
                        return None;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
#[path = "source_fuzz.rs"]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobKind;
    use rand::Rng as _;

    fn ctx(run: u64, partition: u32) -> TaskContext {
        TaskContext::detached_at(JobKind::Stream, run, partition)
    }

    #[test]
    fn generated_records_are_deterministic_per_run_and_partition() {
        let ds = generate(2, 7, |_, _| 5, |rng, _, _| rng.random::<u32>());
        let a: Vec<_> = ds.iter(&ctx(1, 0)).collect();
        let b: Vec<_> = ds.iter(&ctx(1, 0)).collect();
        let c: Vec<_> = ds.iter(&ctx(2, 0)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 5);
    }

    #[test]
    fn micro_batch_size_follows_rate_and_interval() {
        assert_eq!(
            records_per_micro_batch(10_000, Duration::from_millis(200), 4),
            500
        );
        assert_eq!(
            records_per_micro_batch(3, Duration::from_millis(1000), 2),
            2
        );
    }

    #[test]
    fn malformed_json_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.jsonl");
        std::fs::write(&f, "1\n2\nthree\n4\n").unwrap();
        let ds = json_lines::<u32>(dir.path().to_str().unwrap()).unwrap();
        let c = ctx(0, 0);
        let got: Vec<u32> = ds.iter(&c).collect();
        assert_eq!(got, vec![1, 2]);
        let e = c.take_error().unwrap();
        assert!(matches!(&e, Error::Malformed { line: 3, .. }), "{e:?}");
        assert!(e.to_string().contains("a.jsonl:3"), "{e}");
    }

    #[test]
    fn csv_rows_parse_into_records() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Row {
            name: String,
            n: u32,
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.csv"), "name,n\na,1\nb,oops\n").unwrap();
        let ds = csv_files::<Row>(&format!("{}/*.csv", dir.path().display())).unwrap();
        let c = ctx(0, 0);
        let got: Vec<Row> = ds.iter(&c).collect();
        assert_eq!(
            got,
            vec![Row {
                name: "a".into(),
                n: 1
            }]
        );
        assert!(c.take_error().unwrap().to_string().contains("x.csv:3"));
    }

    #[test]
    fn skip_policy_counts_malformed_records_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "1\nx\n3\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "n\n1\nzz\n4\n").unwrap();
        let glob = format!("{}/*.jsonl", dir.path().display());
        let ds = json_lines_with::<u32>(&glob, Malformed::Skip).unwrap();
        let c = ctx(0, 0);
        assert_eq!(ds.iter(&c).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!((c.skipped(), c.has_failed()), (1, false));
        #[derive(serde::Deserialize)]
        struct N {
            n: u32,
        }
        let glob = format!("{}/*.csv", dir.path().display());
        let ds = csv_files_with::<N>(&glob, "skip".parse().unwrap()).unwrap();
        let c = ctx(0, 0);
        assert_eq!(ds.iter(&c).map(|r| r.n).collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(c.skipped(), 1);
    }

    #[test]
    fn a_line_longer_than_the_limit_or_not_utf8_fails_the_task_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        std::fs::write(&f, "ok\r\n0123456789\nlast").unwrap();
        let c = ctx(0, 0);
        let got: Vec<String> = read_lines_max(&c, f.clone(), None, 10).collect();
        assert_eq!(got, ["ok", "0123456789", "last"]);
        assert!(!c.has_failed());
        let c = ctx(0, 0);
        let got: Vec<String> = read_lines_max(&c, f, None, 9).collect();
        assert_eq!(got, ["ok"]);
        let e = c.take_error().unwrap().to_string();
        assert!(e.contains("a.txt:2") && e.contains("longer than 9"), "{e}");
        let g = dir.path().join("b.txt");
        std::fs::write(&g, b"fine\n\xff\xfe\n").unwrap();
        let c = ctx(0, 0);
        assert_eq!(read_lines(&c, g).collect::<Vec<_>>(), ["fine"]);
        let e = c.take_error().unwrap().to_string();
        assert!(e.contains("b.txt:2") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn empty_input_pattern_is_an_error_naming_it() {
        let e = text_files("/nonexistent/dir/*.txt").unwrap_err();
        assert!(
            matches!(&e, Error::NoInput { pattern } if pattern == "/nonexistent/dir/*.txt"),
            "{e:?}"
        );
        assert!(e.to_string().contains("/nonexistent/dir/*.txt"));
    }

    #[test]
    fn an_input_file_gone_since_the_build_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gone.txt");
        std::fs::write(&f, "a\n").unwrap();
        let ds = text_files(dir.path().to_str().unwrap()).unwrap();
        std::fs::remove_file(&f).unwrap();
        let c = ctx(0, 0);
        assert_eq!(ds.iter(&c).count(), 0);
        match c.take_error() {
            Some(Error::Io {
                op, path, source, ..
            }) => {
                assert_eq!((op.as_str(), path), ("open", f));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected an I/O error naming the file, got {other:?}"),
        }
    }
}
