//! Actions end a dataset pipeline: what each task returns (serialized with postcard) and how the
//! driver merges the task results of a run into the run's result.

use crate::dataset::{BoxIter, Dataset};
use crate::error::{BoxError, Error, Result};
use crate::task::TaskContext;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Runs one task: the partition's records in, the serialized task result out.
pub type TaskFn = Arc<dyn Fn(&TaskContext) -> Result<Vec<u8>> + Send + Sync>;

/// Merges the serialized task results of one run (in partition order).
pub type MergeFn<R> = Arc<dyn Fn(Vec<Vec<u8>>) -> Result<R> + Send + Sync>;

/// A dataset plus what to do with it: the unit a job is made of.
pub struct Action<R> {
    pub(crate) partitions: u32,
    pub(crate) deps: Vec<crate::plan::StageDef>,
    pub(crate) reads: Vec<u32>,
    pub(crate) receivers: Vec<u32>,
    pub(crate) inputs: Vec<String>,
    pub(crate) kafka: Vec<u32>,
    pub(crate) run_task: TaskFn,
    pub(crate) merge: MergeFn<R>,
}

impl<R> std::fmt::Debug for Action<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action")
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl<R: 'static> Action<R> {
    pub(crate) fn new<T, P>(
        ds: Dataset<T>,
        run: impl Fn(&TaskContext, BoxIter<'_, T>) -> P + Send + Sync + 'static,
        merge: impl Fn(Vec<P>) -> R + Send + Sync + 'static,
    ) -> Self
    where
        T: 'static,
        P: Serialize + DeserializeOwned + 'static,
    {
        let partitions = ds.partitions();
        let deps = ds.lineage().to_vec();
        let reads = ds.reads().to_vec();
        let receivers = ds.receivers().to_vec();
        let inputs = ds.inputs().to_vec();
        let kafka = ds.kafka_sources().to_vec();
        let run_task: TaskFn = Arc::new(move |ctx: &TaskContext| {
            let partial = run(ctx, ds.iter(ctx));
            if let Some(e) = ctx.take_error() {
                return Err(e);
            }
            postcard::to_stdvec(&partial).map_err(|e| Error::codec("cannot encode task result", e))
        });
        let merge: MergeFn<R> = Arc::new(move |parts: Vec<Vec<u8>>| {
            let decoded = parts
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    postcard::from_bytes::<P>(b).map_err(|e| {
                        Error::codec(format!("cannot decode result of partition {i}"), e)
                    })
                })
                .collect::<Result<Vec<P>>>()?;
            Ok(merge(decoded))
        });
        Self {
            partitions,
            deps,
            reads,
            receivers,
            inputs,
            kafka,
            run_task,
            merge,
        }
    }

    /// The job's plan: the dataset's lineage followed by the stage running this action.
    pub fn stages(&self) -> Vec<crate::plan::StageDef> {
        let mut stages = self.deps.clone();
        stages.push(crate::plan::StageDef {
            partitions: self.partitions,
            run_task: self.run_task.clone(),
            reads: self.reads.clone(),
            shuffle_out: None,
            receivers: self.receivers.clone(),
            inputs: self.inputs.clone(),
            kafka: self.kafka.clone(),
        });
        stages
    }

    /// Tasks per run.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The task function (what executors run).
    pub fn task_fn(&self) -> TaskFn {
        self.run_task.clone()
    }

    /// The merge function (what the driver runs).
    pub fn merge_fn(&self) -> MergeFn<R> {
        self.merge.clone()
    }
}

impl<T: 'static> Dataset<T> {
    /// Number of records.
    pub fn count(&self) -> Action<u64> {
        self.action(|_, it| it.count() as u64, |parts| parts.into_iter().sum())
    }

    /// Combine all records with an associative `f`; `None` for an empty dataset.
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> Action<Option<T>>
    where
        T: Serialize + DeserializeOwned,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.action(
            move |_, it| it.reduce(|a, b| f(a, b)),
            move |parts| parts.into_iter().flatten().reduce(|a, b| g(a, b)),
        )
    }

    /// All records, in partition order, on the driver.
    pub fn collect(&self) -> Action<Vec<T>>
    where
        T: Serialize + DeserializeOwned,
    {
        self.action(
            |_, it| it.collect::<Vec<T>>(),
            |parts| parts.into_iter().flatten().collect(),
        )
    }

    /// Sink: call `f` on every record on the executor; the run's result is the record count.
    pub fn for_each(&self, f: impl Fn(&TaskContext, T) + Send + Sync + 'static) -> Action<u64> {
        self.action(
            move |ctx, it| {
                let mut n = 0u64;
                for x in it {
                    f(ctx, x);
                    n += 1;
                }
                n
            },
            |parts| parts.into_iter().sum(),
        )
    }

    /// Sink: call a fallible `f` on every record on the executor; the run's result is the record
    /// count. `f` may fail with any error — the app's own error type through `?`, a `String`
    /// through `.into()`, a [`crate::Error`] — and the task fails with that error (its message
    /// is the task's failure); the partition stops there.
    pub fn try_for_each(
        &self,
        f: impl Fn(&TaskContext, T) -> Result<(), BoxError> + Send + Sync + 'static,
    ) -> Action<u64> {
        self.action(
            move |ctx, it| {
                let mut n = 0u64;
                for x in it {
                    if let Err(e) = f(ctx, x) {
                        ctx.fail(Error::user(e));
                        break;
                    }
                    n += 1;
                }
                n
            },
            |parts| parts.into_iter().sum(),
        )
    }

    /// Sink: print every record to the executor's stdout, one per line.
    pub fn print(&self) -> Action<u64>
    where
        T: std::fmt::Display,
    {
        self.for_each(|_, x| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{x}");
        })
    }

    /// Sink: write each partition of each run to `dir/run-RRRRRR/part-PPPPP` (one line per
    /// record, formatted by `line`). The file is written under a temporary name and renamed when
    /// complete, so a reader never sees a partial file and a rerun task replaces its output whole.
    /// The run's result is the number of records written.
    pub fn write_lines(
        &self,
        dir: impl Into<PathBuf>,
        line: impl Fn(&T) -> String + Send + Sync + 'static,
    ) -> Action<u64> {
        let dir: PathBuf = dir.into();
        self.action(
            move |ctx, it| match write_partition(ctx, &dir, it, &line) {
                Ok(n) => n,
                Err(e) => {
                    ctx.fail(e);
                    0
                }
            },
            |parts| parts.into_iter().sum(),
        )
    }
}

fn write_partition<T>(
    ctx: &TaskContext,
    dir: &std::path::Path,
    it: BoxIter<'_, T>,
    line: &dyn Fn(&T) -> String,
) -> Result<u64> {
    // A micro-batch of a Kafka source has a durable number: its output goes under it, so a
    // micro-batch run again after a driver restart (same ranges, same records) replaces its
    // earlier output instead of adding to it (see `crate::kafka`).
    let run_dir = match ctx.kafka_batch() {
        Some(b) => dir.join(format!("batch-{b:06}")),
        None => dir.join(format!("run-{:06}", ctx.run())),
    };
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| Error::io("create output directory", &run_dir, e))?;
    let final_path = run_dir.join(format!("part-{:05}", ctx.partition()));
    let tmp = run_dir.join(format!(
        ".part-{:05}.attempt-{}.tmp",
        ctx.partition(),
        ctx.attempt()
    ));
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let mut w = std::io::BufWriter::new(file);
    let mut n = 0u64;
    for x in it {
        writeln!(w, "{}", line(&x)).map_err(|e| Error::io("write", &tmp, e))?;
        n += 1;
    }
    if ctx.is_killed() || ctx.has_failed() {
        drop(w);
        let _ = std::fs::remove_file(&tmp);
        return Ok(n);
    }
    w.flush().map_err(|e| Error::io("write", &tmp, e))?;
    drop(w);
    std::fs::rename(&tmp, &final_path).map_err(|e| {
        Error::io("rename", &tmp, e).with_note(format!(" to {}", final_path.display()))
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{JobKind, TaskId};

    fn run_all<R: 'static>(a: &Action<R>) -> R {
        let parts = (0..a.partitions())
            .map(|p| {
                let ctx = TaskContext::detached(
                    TaskId {
                        job: 0,
                        run: 3,
                        stage: 0,
                        partition: p,
                    },
                    JobKind::Batch,
                );
                (a.task_fn())(&ctx).unwrap()
            })
            .collect();
        (a.merge_fn())(parts).unwrap()
    }

    fn numbers() -> Dataset<u64> {
        Dataset::from_fn(3, |ctx| {
            let base = u64::from(ctx.partition()) * 100;
            Box::new(base..base + 100)
        })
    }

    #[test]
    fn count_reduce_collect_merge_partitions() {
        assert_eq!(run_all(&numbers().count()), 300);
        assert_eq!(
            run_all(&numbers().reduce(|a, b| a + b)),
            Some((0..300).sum())
        );
        assert_eq!(
            run_all(&numbers().filter(|x| *x < 2 || *x == 299).collect()),
            vec![0, 1, 299]
        );
        assert_eq!(
            run_all(&numbers().filter(|_| false).reduce(|a, b| a + b)),
            None
        );
    }

    /// An app's own error type, with a `From` so its closures can use `?`.
    #[derive(Debug, thiserror::Error)]
    enum PriceError {
        #[error("price `{0}` is not a number")]
        NotANumber(String, #[source] std::num::ParseIntError),
    }

    fn price(s: &str) -> Result<u64, PriceError> {
        s.parse()
            .map_err(|e| PriceError::NotANumber(s.to_string(), e))
    }

    fn prices() -> Dataset<&'static str> {
        Dataset::from_fn(2, |ctx| {
            let part: &[&'static str] = if ctx.partition() == 0 {
                &["1", "2", "3"]
            } else {
                &["4", "x5", "6"]
            };
            Box::new(part.iter().copied())
        })
    }

    fn run_part<R: 'static>(a: &Action<R>, p: u32) -> Result<Vec<u8>> {
        let id = TaskId {
            job: 0,
            run: 0,
            stage: 0,
            partition: p,
        };
        (a.task_fn())(&TaskContext::detached(id, JobKind::Batch))
    }

    #[test]
    fn an_app_closure_error_fails_the_task_with_its_own_message() {
        let sum = prices()
            .try_map(|s| Ok(price(s)? * 100))
            .reduce(|a, b| a + b);
        assert!(run_part(&sum, 0).is_ok());
        let e = run_part(&sum, 1).unwrap_err();
        assert_eq!(e.to_string(), "price `x5` is not a number");
        let Error::User(inner) = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(
            inner.downcast_ref::<PriceError>(),
            Some(PriceError::NotANumber(s, _)) if s == "x5"
        ));

        let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let n = seen.clone();
        let sink = prices().try_for_each(move |_, s| {
            price(s)?;
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        });
        let e = run_part(&sink, 1).unwrap_err();
        assert!(e.to_string().contains("`x5`"), "{e}");
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "stops at the error"
        );
    }

    #[test]
    fn a_string_error_from_a_closure_reads_the_same() {
        let ds = prices().try_map(|s| {
            s.parse::<u64>()
                .map_err(|_| format!("bad price {s}").into())
        });
        let e = run_part(&ds.count(), 1).unwrap_err();
        assert_eq!(e.to_string(), "bad price x5");
    }

    #[test]
    fn write_lines_writes_one_file_per_partition_and_run() {
        let dir = tempfile::tempdir().unwrap();
        let n = run_all(&numbers().write_lines(dir.path(), |x| x.to_string()));
        assert_eq!(n, 300);
        let p1 = std::fs::read_to_string(dir.path().join("run-000003/part-00001")).unwrap();
        assert_eq!(p1.lines().count(), 100);
        assert_eq!(p1.lines().next(), Some("100"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("run-000003"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .collect();
        assert!(leftovers.is_empty());
    }
}
