//! The task context: what a running task sees, and the yield point that makes it suspendable.
//!
//! Every operator loop calls [`TaskContext::yield_point`] once per record. When nothing is asked of
//! the task this is one relaxed atomic load. When the executor has asked the task to suspend or die,
//! the slow path hands control to the executor's [`YieldHook`], which parks the task's coroutine
//! (suspend) or tells the task to stop (kill). The hook is how the `may` runtime plugs in without
//! this crate knowing about coroutines.

use crate::error::Error;
use crate::event_time::EventTimes;
use crate::ids::{JobKind, TaskId};
use crate::kafka::OffsetRange;
use crate::shuffle::{Blocks, ShuffleRead};
use crate::source_snapshot::FileSlice;
use crate::state::Broadcasts;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

/// Control state: keep running.
pub const RUN: u8 = 0;
/// Control state: park at the next yield point.
pub const SUSPEND: u8 = 1;
/// Control state: stop at the next yield point; the task's result is discarded.
pub const KILL: u8 = 2;

/// Control block shared by the executor (which writes requests) and the task (which reads them at
/// its yield points). Cheap to read: one relaxed load on the fast path.
#[derive(Debug, Default)]
pub struct TaskControl {
    state: AtomicU8,
    /// Records processed so far, published every [`PUBLISH_EVERY`] records (progress for metrics and
    /// for counting work lost to kills).
    progress: AtomicU64,
    /// Bytes the task holds that stay resident while it is suspended (aggregation state, buffers).
    retained: AtomicU64,
    /// The [`TaskPhase`] the task is in (read by the executor when the task parks).
    phase: AtomicU8,
}

/// What a task is doing, as declared by its operators with [`TaskContext::set_phase`]. The
/// executor reads it when the task parks, so suspensions are counted per phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TaskPhase {
    /// Reading a source and applying narrow operators (map, filter, ...).
    Compute = 0,
    /// A shuffle-map task: consuming its input, combining and writing partitioned blocks.
    ShuffleWrite = 1,
    /// A reduce task fetching its input blocks (locally or from other executors).
    Fetch = 2,
    /// A reduce task merging fetched records and aggregating them (and what follows in its stage).
    Reduce = 3,
}

impl TaskPhase {
    /// Every phase, in declaration order.
    pub const ALL: [TaskPhase; 4] = [
        TaskPhase::Compute,
        TaskPhase::ShuffleWrite,
        TaskPhase::Fetch,
        TaskPhase::Reduce,
    ];

    /// Lower-case name for metrics labels and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskPhase::Compute => "compute",
            TaskPhase::ShuffleWrite => "shuffle_write",
            TaskPhase::Fetch => "fetch",
            TaskPhase::Reduce => "reduce",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => TaskPhase::ShuffleWrite,
            2 => TaskPhase::Fetch,
            3 => TaskPhase::Reduce,
            _ => TaskPhase::Compute,
        }
    }
}

impl std::fmt::Display for TaskPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskPhase {
    type Err = crate::config::ChoiceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const NAMES: &[&str] = &["compute", "shuffle_write", "fetch", "reduce"];
        TaskPhase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| crate::config::ChoiceError {
                value: s.to_string(),
                expected: NAMES,
            })
    }
}

/// How often (in records) a task publishes its record count to [`TaskControl::progress`].
pub const PUBLISH_EVERY: u64 = 1024;

impl TaskControl {
    /// A control block in state [`RUN`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Current request (`RUN`, `SUSPEND` or `KILL`).
    #[inline]
    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Ask the task to park at its next yield point. Returns false if it was killed already.
    pub fn request_suspend(&self) -> bool {
        self.state
            .compare_exchange(RUN, SUSPEND, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Clear a suspend request. Returns false if the task was killed meanwhile.
    pub fn request_resume(&self) -> bool {
        self.state
            .compare_exchange(SUSPEND, RUN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || self.state() == RUN
    }

    /// Ask the task to stop at its next yield point (wins over suspend).
    pub fn request_kill(&self) {
        self.state.store(KILL, Ordering::Release);
    }

    /// Records processed as last published by the task.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Bytes retained by the task (as declared by its operators).
    pub fn retained_bytes(&self) -> u64 {
        self.retained.load(Ordering::Relaxed)
    }

    /// The phase the task last declared.
    pub fn phase(&self) -> TaskPhase {
        TaskPhase::from_u8(self.phase.load(Ordering::Relaxed))
    }
}

/// The executor side of a yield point: called on the task's own coroutine when the control state is
/// not [`RUN`].
pub trait YieldHook: Send + Sync {
    /// Block (park the coroutine) while the task is asked to suspend; return `true` to go on, or
    /// `false` when the task was killed and must stop.
    fn on_yield(&self, control: &TaskControl) -> bool;
}

/// A hook for code that runs outside any runtime (tests, the driver's local evaluation): suspend
/// requests are ignored, kill stops the task.
#[derive(Debug, Default)]
pub struct NoSuspend;

impl YieldHook for NoSuspend {
    fn on_yield(&self, control: &TaskControl) -> bool {
        control.state() != KILL
    }
}

/// What a running task sees: its id, its control block, shared broadcast state.
///
/// Owned by the task's coroutine; not shared across threads (the record counter is a `Cell`).
pub struct TaskContext {
    id: TaskId,
    attempt: u32,
    kind: JobKind,
    control: Arc<TaskControl>,
    hook: Arc<dyn YieldHook>,
    broadcasts: Arc<Broadcasts>,
    records: Cell<u64>,
    /// When the first record was counted (the executor's per-hop latency attribution).
    first_record_at: Cell<Option<Instant>>,
    skipped: Cell<u64>,
    /// Source timestamps of the records read (sources that have them: Kafka).
    event_times: Cell<Option<EventTimes>>,
    error: RefCell<Option<Error>>,
    fetch_failed: RefCell<Option<String>>,
    blocks: RefCell<Option<Arc<dyn Blocks>>>,
    reads: RefCell<Arc<Vec<ShuffleRead>>>,
    files: RefCell<Option<Arc<Vec<FileSlice>>>>,
    kafka: RefCell<Arc<Vec<OffsetRange>>>,
    kafka_batch: Cell<Option<u64>>,
    epoch: RefCell<String>,
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("kind", &self.kind)
            .field("records", &self.records.get())
            .finish()
    }
}

impl TaskContext {
    /// A context for task `id`.
    pub fn new(
        id: TaskId,
        attempt: u32,
        kind: JobKind,
        control: Arc<TaskControl>,
        hook: Arc<dyn YieldHook>,
        broadcasts: Arc<Broadcasts>,
    ) -> Self {
        Self {
            id,
            attempt,
            kind,
            control,
            hook,
            broadcasts,
            records: Cell::new(0),
            first_record_at: Cell::new(None),
            skipped: Cell::new(0),
            event_times: Cell::new(None),
            error: RefCell::new(None),
            fetch_failed: RefCell::new(None),
            blocks: RefCell::new(None),
            reads: RefCell::new(Arc::new(Vec::new())),
            files: RefCell::new(None),
            kafka: RefCell::new(Arc::new(Vec::new())),
            kafka_batch: Cell::new(None),
            epoch: RefCell::new(String::new()),
        }
    }

    /// Give the task its executor's block store and the locations of the shuffle outputs its
    /// stage reads (one [`ShuffleRead`] per input slot, from the launch parameters).
    pub fn set_shuffle(&self, blocks: Arc<dyn Blocks>, reads: Vec<ShuffleRead>) {
        *self.blocks.borrow_mut() = Some(blocks);
        *self.reads.borrow_mut() = Arc::new(reads);
    }

    /// Give the task its files of the run's input snapshot (from the launch parameters; see
    /// [`crate::source_snapshot`]).
    pub fn set_input_files(&self, files: Vec<FileSlice>) {
        *self.files.borrow_mut() = Some(Arc::new(files));
    }

    /// The task's files of the run's input snapshot; `None` when none were given (a context
    /// built outside an executor, e.g. in a unit test: file sources then read their build-time
    /// listing).
    pub fn input_files(&self) -> Option<Arc<Vec<FileSlice>>> {
        self.files.borrow().clone()
    }

    /// Give the task its offset ranges of the micro-batch's Kafka plan (from the launch
    /// parameters; see [`crate::kafka`]).
    pub fn set_kafka_ranges(&self, ranges: Vec<OffsetRange>) {
        *self.kafka.borrow_mut() = Arc::new(ranges);
    }

    /// Give the task the durable number of its run's Kafka micro-batch.
    pub fn set_kafka_batch(&self, batch: Option<u64>) {
        self.kafka_batch.set(batch);
    }

    /// The durable number of the task's Kafka micro-batch (`None`: its run reads no Kafka
    /// records): the same across a driver restart, unlike the run number.
    pub fn kafka_batch(&self) -> Option<u64> {
        self.kafka_batch.get()
    }

    /// Give the task the identity of its output's numbering (see [`Self::output_epoch`]).
    pub fn set_output_epoch(&self, epoch: String) {
        *self.epoch.borrow_mut() = epoch;
    }

    /// Which numbering [`Self::output_batch`] belongs to: the Kafka source's checkpoint id when
    /// the run is a micro-batch of a checkpointed Kafka source (its numbers survive a driver
    /// restart), else an id drawn when the driver (or the source's planner) started. Empty when
    /// the task was given none (a detached context). Output deduplicated by batch number (the
    /// Kafka sink) is keyed by both.
    pub fn output_epoch(&self) -> String {
        self.epoch.borrow().clone()
    }

    /// The number under which the task's output is deduplicated: the Kafka micro-batch's
    /// durable number when there is one, else the run number.
    pub fn output_batch(&self) -> u64 {
        self.kafka_batch().unwrap_or(self.id.run)
    }

    /// The task's Kafka offset ranges (empty when it was given none).
    pub fn kafka_ranges(&self) -> Arc<Vec<OffsetRange>> {
        self.kafka.borrow().clone()
    }

    /// The executor's block store, if the task runs where there is one.
    pub fn blocks(&self) -> Option<Arc<dyn Blocks>> {
        self.blocks.borrow().clone()
    }

    /// Shuffle inputs of this task's stage, by slot.
    pub fn shuffle_reads(&self) -> Arc<Vec<ShuffleRead>> {
        self.reads.borrow().clone()
    }

    /// Declare the phase the task is in (counted per phase when the task is suspended).
    pub fn set_phase(&self, phase: TaskPhase) {
        self.control.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// The phase last declared.
    pub fn phase(&self) -> TaskPhase {
        self.control.phase()
    }

    /// Count one malformed input record skipped under the `skip` policy.
    pub fn count_skipped(&self) {
        self.skipped.set(self.skipped.get() + 1);
    }

    /// Malformed records skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped.get()
    }

    /// Record that a shuffle input could not be fetched from `executor`: the task's failure is
    /// then a distinct one the driver answers by recomputing that executor's map outputs, never
    /// by a partial result. [`TaskContext::fail`] records it itself for an [`Error::Fetch`].
    pub fn note_fetch_failed(&self, executor: &str) {
        self.fetch_failed
            .borrow_mut()
            .get_or_insert_with(|| executor.to_string());
    }

    /// The executor whose blocks could not be fetched, if the task failed that way.
    pub fn fetch_failed(&self) -> Option<String> {
        self.fetch_failed.borrow().clone()
    }

    /// A context that runs outside any executor: never suspends; for tests and local evaluation.
    pub fn detached(id: TaskId, kind: JobKind) -> Self {
        Self::new(
            id,
            0,
            kind,
            Arc::new(TaskControl::new()),
            Arc::new(NoSuspend),
            Arc::new(Broadcasts::default()),
        )
    }

    /// A detached context (see [`Self::detached`]) for partition `partition` of run `run` of
    /// job 0's first stage: what a test, a benchmark or a local evaluation of one partition of a
    /// dataset needs.
    pub fn detached_at(kind: JobKind, run: u64, partition: u32) -> Self {
        let id = TaskId {
            job: 0,
            run,
            stage: 0,
            partition,
        };
        Self::detached(id, kind)
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Attempt number (0 for the first launch; reruns after a kill or a lost executor count up).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Kind of the task's job.
    pub fn kind(&self) -> JobKind {
        self.kind
    }

    /// The run (micro-batch or epoch) this task belongs to.
    pub fn run(&self) -> u64 {
        self.id.run
    }

    /// The partition this task computes.
    pub fn partition(&self) -> u32 {
        self.id.partition
    }

    /// Shared broadcast state as held by this executor.
    pub fn broadcasts(&self) -> &Broadcasts {
        &self.broadcasts
    }

    /// The yield point. Returns `true` to go on, `false` when the task was killed and must stop
    /// (operators then end their iteration; the executor discards the result).
    ///
    /// # Guarantees
    /// On the fast path (nothing requested) this is a single relaxed atomic load and a branch.
    #[inline]
    pub fn yield_point(&self) -> bool {
        if self.control.state.load(Ordering::Relaxed) == RUN {
            true
        } else {
            self.yield_slow()
        }
    }

    #[cold]
    #[inline(never)]
    fn yield_slow(&self) -> bool {
        self.control
            .progress
            .store(self.records.get(), Ordering::Relaxed);
        self.hook.on_yield(&self.control)
    }

    /// Count one record read by a source (for progress, metrics and lost-work accounting).
    #[inline]
    pub fn count_record(&self) {
        let n = self.records.get() + 1;
        self.records.set(n);
        if n == 1 {
            self.first_record_at.set(Some(Instant::now()));
        }
        if n.is_multiple_of(PUBLISH_EVERY) {
            self.control.progress.store(n, Ordering::Relaxed);
        }
    }

    /// Count `n` records at once.
    pub fn count_records(&self, n: u64) {
        if n > 0 && self.first_record_at.get().is_none() {
            self.first_record_at.set(Some(Instant::now()));
        }
        let total = self.records.get() + n;
        self.records.set(total);
        self.control.progress.store(total, Ordering::Relaxed);
    }

    /// Note the source timestamp (ms since the Unix epoch) of a record read: sources whose
    /// records carry one (Kafka) call it per record, so the driver can report source → commit
    /// latency.
    pub fn note_event_time(&self, ms: i64) {
        let mut t = self.event_times.get();
        EventTimes::note(&mut t, ms);
        self.event_times.set(t);
    }

    /// The source timestamps noted so far (`None`: no record with one).
    pub fn event_times(&self) -> Option<EventTimes> {
        self.event_times.get()
    }

    /// Records read so far by this task.
    pub fn records(&self) -> u64 {
        self.records.get()
    }

    /// When this task counted its first record (`None` while it has counted none).
    pub fn first_record_at(&self) -> Option<Instant> {
        self.first_record_at.get()
    }

    /// Declare how many bytes the task currently holds (stays resident while suspended).
    pub fn set_retained_bytes(&self, bytes: u64) {
        self.control.retained.store(bytes, Ordering::Relaxed);
    }

    /// Record an error found while iterating (a source that cannot read its input, a closure
    /// of the app that failed): operators stop and the task fails with it. The first error wins.
    /// An [`Error::Fetch`] also records the executor to blame
    /// ([`TaskContext::note_fetch_failed`]).
    pub fn fail(&self, error: impl Into<Error>) {
        let error = error.into();
        if let Some(exec) = error.fetch_failed_executor() {
            self.note_fetch_failed(exec);
        }
        let mut e = self.error.borrow_mut();
        if e.is_none() {
            *e = Some(error);
        }
    }

    /// Whether [`TaskContext::fail`] was called.
    pub fn has_failed(&self) -> bool {
        self.error.borrow().is_some()
    }

    /// Take the error recorded by [`TaskContext::fail`].
    pub fn take_error(&self) -> Option<Error> {
        self.error.borrow_mut().take()
    }

    /// The control block (the executor holds another handle to it).
    pub fn control(&self) -> &Arc<TaskControl> {
        &self.control
    }

    /// Whether the task has been asked to die.
    pub fn is_killed(&self) -> bool {
        self.control.state() == KILL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid() -> TaskId {
        TaskId {
            job: 0,
            run: 0,
            stage: 0,
            partition: 0,
        }
    }

    #[test]
    fn yield_point_goes_on_until_killed() {
        let ctx = TaskContext::detached(tid(), JobKind::Batch);
        assert!(ctx.yield_point());
        ctx.control.request_suspend();
        assert!(ctx.yield_point(), "NoSuspend ignores suspend requests");
        ctx.control.request_kill();
        assert!(!ctx.yield_point());
        assert!(ctx.is_killed());
    }

    #[test]
    fn phases_parse_from_their_names_only() {
        for p in TaskPhase::ALL {
            assert_eq!(p.as_str().parse::<TaskPhase>().unwrap(), p);
        }
        let e = "sorting".parse::<TaskPhase>().unwrap_err();
        assert_eq!(e.expected.len(), TaskPhase::ALL.len());
        assert!(e.to_string().contains("`sorting`"), "{e}");
    }

    #[test]
    fn resume_after_kill_is_refused() {
        let c = TaskControl::new();
        assert!(c.request_suspend());
        c.request_kill();
        assert!(!c.request_resume());
        assert!(!c.request_suspend());
    }

    #[test]
    fn the_first_record_is_timed_once() {
        let ctx = TaskContext::detached(tid(), JobKind::Stream);
        assert_eq!(ctx.first_record_at(), None);
        ctx.count_records(0);
        assert_eq!(ctx.first_record_at(), None, "no record yet");
        ctx.count_record();
        let first = ctx.first_record_at().expect("timed at the first record");
        ctx.count_record();
        ctx.count_records(5);
        assert_eq!(ctx.first_record_at(), Some(first), "later records keep it");
        let bulk = TaskContext::detached(tid(), JobKind::Stream);
        bulk.count_records(3);
        assert!(bulk.first_record_at().is_some());
    }

    #[test]
    fn progress_is_published_on_yield_slow_path() {
        let ctx = TaskContext::detached(tid(), JobKind::Batch);
        for _ in 0..10 {
            ctx.count_record();
        }
        assert_eq!(ctx.control.progress(), 0, "not yet published");
        ctx.control.request_kill();
        ctx.yield_point();
        assert_eq!(ctx.control.progress(), 10);
    }
}
