//! The typed Dataset API: lazily composed, partitioned iterators with a yield point per record in
//! every operator, ending in an [`Action`] that defines what a task returns and how the driver
//! merges task results.
//!
//! A `Dataset` is a recipe, not data: the same code builds it on the driver and on every executor
//! (same-binary model), and an executor runs the recipe for one partition of one run inside a task.

use crate::action::Action;
use crate::error::{BoxError, Error};
use crate::plan::StageDef;
use crate::task::TaskContext;
use std::sync::Arc;

/// A boxed iterator borrowing the task context.
pub type BoxIter<'a, T> = Box<dyn Iterator<Item = T> + 'a>;

/// Computes one partition (`ctx.partition()`) of one run (`ctx.run()`).
pub(crate) type ComputeFn<T> = dyn for<'a> Fn(&'a TaskContext) -> BoxIter<'a, T> + Send + Sync;

/// A partitioned collection of `T`, computed lazily inside tasks.
///
/// A dataset downstream of a shuffle also carries its lineage: the stages (`deps`) that must run
/// before its own, and which of them its pipeline reads (`reads`, by input slot).
pub struct Dataset<T> {
    partitions: u32,
    compute: Arc<ComputeFn<T>>,
    deps: Arc<Vec<StageDef>>,
    reads: Arc<Vec<u32>>,
    receivers: Arc<Vec<u32>>,
    inputs: Arc<Vec<String>>,
    kafka: Arc<Vec<u32>>,
}

impl<T> Clone for Dataset<T> {
    fn clone(&self) -> Self {
        Self {
            partitions: self.partitions,
            compute: self.compute.clone(),
            deps: self.deps.clone(),
            reads: self.reads.clone(),
            receivers: self.receivers.clone(),
            inputs: self.inputs.clone(),
            kafka: self.kafka.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Dataset<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("partitions", &self.partitions)
            .finish()
    }
}

/// Wraps an operator's output so that every record passes a yield point: the task can be
/// suspended (or killed) between any two records of any operator.
struct Yielding<'a, I> {
    ctx: &'a TaskContext,
    inner: I,
}

impl<I: Iterator> Iterator for Yielding<'_, I> {
    type Item = I::Item;

    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        if !self.ctx.yield_point() || self.ctx.has_failed() {
            return None;
        }
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.inner.size_hint().1)
    }
}

/// Box `inner` behind a per-record yield point.
pub(crate) fn yielding<'a, T: 'a>(
    ctx: &'a TaskContext,
    inner: impl Iterator<Item = T> + 'a,
) -> BoxIter<'a, T> {
    Box::new(Yielding { ctx, inner })
}

impl<T: 'static> Dataset<T> {
    /// A dataset of `partitions` partitions whose records `compute` produces for the partition and
    /// run of the context it is given. Sources are built on this; a yield point is added per record.
    pub fn from_fn<F>(partitions: u32, compute: F) -> Self
    where
        F: for<'a> Fn(&'a TaskContext) -> BoxIter<'a, T> + Send + Sync + 'static,
    {
        Self::with_lineage(partitions, Vec::new(), Vec::new(), compute)
    }

    /// A dataset computed by `compute` after the stages `deps`, reading the map stages `reads`
    /// (indices into `deps`) by slot. The shuffle operators build their output with it.
    pub(crate) fn with_lineage<F>(
        partitions: u32,
        deps: Vec<StageDef>,
        reads: Vec<u32>,
        compute: F,
    ) -> Self
    where
        F: for<'a> Fn(&'a TaskContext) -> BoxIter<'a, T> + Send + Sync + 'static,
    {
        Self {
            partitions,
            compute: Arc::new(move |ctx: &TaskContext| yielding(ctx, compute(ctx))),
            deps: Arc::new(deps),
            reads: Arc::new(reads),
            receivers: Arc::new(Vec::new()),
            inputs: Arc::new(Vec::new()),
            kafka: Arc::new(Vec::new()),
        }
    }

    /// The same dataset, reading the data of stream receiver `index` (see
    /// [`App::socket_lines`](crate::App::socket_lines)).
    pub(crate) fn reading_receiver(mut self, index: u32) -> Self {
        Arc::make_mut(&mut self.receivers).push(index);
        self
    }

    /// The same dataset, reading the file source `pattern` from the run's input snapshot (see
    /// [`crate::source_snapshot`]).
    pub(crate) fn reading_files(mut self, pattern: &str) -> Self {
        Arc::make_mut(&mut self.inputs).push(pattern.to_string());
        self
    }

    /// The same dataset, reading Kafka source `index` (see
    /// [`App::kafka_source`](crate::App::kafka_source)): the driver plans its offset ranges per
    /// micro-batch and sends every task its own.
    pub(crate) fn reading_kafka(mut self, index: u32) -> Self {
        Arc::make_mut(&mut self.kafka).push(index);
        self
    }

    /// Stages that must run before this dataset's own (empty without a shuffle upstream).
    pub fn lineage(&self) -> &[StageDef] {
        &self.deps
    }

    /// Map stages this dataset's pipeline reads, by slot.
    pub fn reads(&self) -> &[u32] {
        &self.reads
    }

    /// Kafka sources this dataset's pipeline reads (indices in the app's Kafka sources).
    pub fn kafka_sources(&self) -> &[u32] {
        &self.kafka
    }

    /// Stream receivers this dataset's pipeline reads (indices in the app's receivers).
    pub fn receivers(&self) -> &[u32] {
        &self.receivers
    }

    /// File sources (patterns) this dataset's pipeline reads.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// Number of partitions (tasks per run).
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Iterate this dataset's partition for `ctx` (what a task does).
    pub fn iter<'a>(&self, ctx: &'a TaskContext) -> BoxIter<'a, T> {
        (self.compute)(ctx)
    }

    fn derive<U: 'static, G>(&self, g: G) -> Dataset<U>
    where
        G: for<'a> Fn(&'a TaskContext, BoxIter<'a, T>) -> BoxIter<'a, U> + Send + Sync + 'static,
    {
        let parent = self.compute.clone();
        Dataset {
            partitions: self.partitions,
            compute: Arc::new(move |ctx: &TaskContext| {
                // A yield point before the operator's set-up code (e.g. `map_with`'s `setup`,
                // which may allocate or load a model), so a suspension never waits for it.
                if !ctx.yield_point() {
                    return Box::new(std::iter::empty());
                }
                yielding(ctx, g(ctx, parent(ctx)))
            }),
            deps: self.deps.clone(),
            reads: self.reads.clone(),
            receivers: self.receivers.clone(),
            inputs: self.inputs.clone(),
            kafka: self.kafka.clone(),
        }
    }

    /// Apply `f` to every record.
    pub fn map<U: 'static>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Dataset<U> {
        let f = Arc::new(f);
        self.derive(move |_, it| {
            let f = f.clone();
            Box::new(it.map(move |x| f(x)))
        })
    }

    /// Apply a fallible `f` to every record. `f` may fail with any error — the app's own error
    /// type through `?`, a `String` through `.into()`, a [`crate::Error`] — and the task fails
    /// with that error (its message is the task's failure), ending the partition: no record is
    /// silently dropped.
    pub fn try_map<U: 'static>(
        &self,
        f: impl Fn(T) -> Result<U, BoxError> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let f = Arc::new(f);
        self.derive(move |ctx, it| {
            let f = f.clone();
            Box::new(it.map_while(move |x| match f(x) {
                Ok(u) => Some(u),
                Err(e) => {
                    ctx.fail(Error::user(e));
                    None
                }
            }))
        })
    }

    /// Keep the records for which `f` holds.
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Dataset<T> {
        let f = Arc::new(f);
        self.derive(move |_, it| {
            let f = f.clone();
            Box::new(it.filter(move |x| f(x)))
        })
    }

    /// Map every record to zero or more records.
    pub fn flat_map<U, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> Dataset<U>
    where
        U: 'static,
        I: IntoIterator<Item = U> + 'static,
    {
        let f = Arc::new(f);
        self.derive(move |_, it| {
            let f = f.clone();
            Box::new(it.flat_map(move |x| f(x)))
        })
    }

    /// Map every record with per-partition state built once by `setup` (e.g. the latest model
    /// version read from shared state). A yield point precedes `setup`; a long set-up should
    /// call [`TaskContext::yield_point`] itself between steps.
    pub fn map_with<S, U>(
        &self,
        setup: impl Fn(&TaskContext) -> S + Send + Sync + 'static,
        f: impl Fn(&S, T) -> U + Send + Sync + 'static,
    ) -> Dataset<U>
    where
        S: 'static,
        U: 'static,
    {
        let setup = Arc::new(setup);
        let f = Arc::new(f);
        self.derive(move |ctx, it| {
            let state = setup(ctx);
            let f = f.clone();
            Box::new(it.map(move |x| f(&state, x)))
        })
    }

    /// Transform a whole partition at once: `f` gets the partition's records as an iterator (whose
    /// every step is a yield point) and returns the output records.
    pub fn map_partitions<U: 'static>(
        &self,
        f: impl Fn(&TaskContext, &mut dyn Iterator<Item = T>) -> Vec<U> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let f = Arc::new(f);
        self.derive(move |ctx, mut it| {
            let out = f(ctx, &mut it);
            Box::new(out.into_iter())
        })
    }

    /// Turn this dataset into an action: `run` consumes a partition into a task result and `merge`
    /// combines the task results of one run (in partition order) on the driver. The built-in
    /// actions (`count`, `reduce`, `collect`, sinks) are written with it.
    pub fn action<P, R>(
        &self,
        run: impl Fn(&TaskContext, BoxIter<'_, T>) -> P + Send + Sync + 'static,
        merge: impl Fn(Vec<P>) -> R + Send + Sync + 'static,
    ) -> Action<R>
    where
        P: serde::Serialize + serde::de::DeserializeOwned + 'static,
        R: 'static,
    {
        Action::new(self.clone(), run, merge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobKind;

    fn ctx(partition: u32) -> TaskContext {
        TaskContext::detached_at(JobKind::Batch, 0, partition)
    }

    fn numbers() -> Dataset<u64> {
        Dataset::from_fn(2, |ctx| {
            let base = u64::from(ctx.partition()) * 10;
            Box::new(base..base + 10)
        })
    }

    #[test]
    fn operators_compose_per_partition() {
        let ds = numbers()
            .map(|x| x * 2)
            .filter(|x| x % 3 == 0)
            .flat_map(|x| vec![x, x + 1]);
        let got: Vec<u64> = ds.iter(&ctx(1)).collect();
        assert_eq!(got, vec![24, 25, 30, 31, 36, 37]);
    }

    #[test]
    fn map_with_builds_state_once_per_partition() {
        let ds = numbers().map_with(|ctx| u64::from(ctx.partition()) + 100, |s, x| s + x);
        assert_eq!(ds.iter(&ctx(0)).take(2).collect::<Vec<_>>(), vec![100, 101]);
    }

    #[test]
    fn map_partitions_sees_whole_partition() {
        let ds = numbers().map_partitions(|_, it| vec![it.sum::<u64>()]);
        assert_eq!(ds.iter(&ctx(0)).collect::<Vec<_>>(), vec![45]);
    }

    #[test]
    fn a_killed_task_stops_at_the_next_record() {
        let c = ctx(0);
        let mut it = numbers().map(|x| x + 1).iter(&c);
        assert_eq!(it.next(), Some(1));
        c.control().request_kill();
        assert_eq!(it.next(), None);
    }

    #[test]
    fn a_failed_source_stops_the_pipeline() {
        let c = ctx(0);
        let mut it = numbers().iter(&c);
        assert_eq!(it.next(), Some(0));
        c.fail(Error::user("bad input"));
        assert_eq!(it.next(), None);
        assert_eq!(c.take_error().unwrap().to_string(), "bad input");
    }
}
