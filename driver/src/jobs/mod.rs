//! The job manager (DAG side of the driver): turns the app's jobs into runs, runs into stages,
//! stages into task sets; triggers stream micro-batches at their due times; collects task results
//! and commits each run on the driver. Pure and synchronous like the task scheduler: the event
//! loop passes the time in.
//!
//! A run's stages form a DAG (each stage `reads` earlier map stages). A stage's tasks are
//! submitted as soon as every stage it reads is complete, so independent stages (a join's two
//! sides) are in flight together; the run commits when its result stage, the last, completes.
//! Lost map outputs are recomputed from lineage (`lineage.rs` holds the rules).
//!
//! Stream latency of a micro-batch = its due time → its results committed. Batch records/s counts
//! records of successful tasks (work lost to kills does not count).
//!
//! Micro-batches of one stream job overlap (one that runs long does not hold back the next), up
//! to the job's `max_in_flight`. Beyond it, due micro-batches wait — nothing but the job's next due
//! time stands for them — and begin, in order and with their own due times, as earlier ones
//! commit. A job that cannot keep up so falls behind with its latency growing honestly and the
//! driver's memory bounded; without the cap every due micro-batch began at once, and a driver
//! that fell behind held (and scheduled) every one of them.
//!
//! Everything executors hold for a run (shuffle blocks, receiver cuts) is released when the run
//! ends, committed or failed ([`Step::released`]); runs that read stream receivers are announced
//! when they begin ([`Step::opened`]), and a receiver cuts its buffer only for announced runs.
//! A task whose shuffle input cannot be fetched is recomputed from lineage at most
//! `max_fetch_failures` times; then its job fails with a message naming the task and the executor.
//! Counters fed by executors' reports saturate instead of wrapping.

mod lineage;
mod params;

pub use params::{InvalidResult, LaunchBlocked};

/// Default of `driver.max_fetch_failures`: times one task may come back because its shuffle
/// input could not be fetched before its job fails.
pub const DEFAULT_MAX_FETCH_FAILURES: u32 = 4;
/// Bytes of a broadcast message besides its name and value (version, tags, gRPC framing).
const BROADCAST_OVERHEAD: u64 = 64;

use crate::scheduler::TaskSpec;
use crate::stats::{Latencies, Warmup};
use crate::status::InputSnapshot;
use lineage::RunState;
use neptune_core::EventTimes;
use neptune_core::app::{App, CommitCtx};
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::kafka::checkpoint::SavedState;
use neptune_core::state::Broadcasts;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time from a source timestamp `ms` (ms since the Unix epoch) to `wall`: zero for a timestamp
/// after `wall` (its producer's clock ahead of the driver's), never negative.
fn since(wall: SystemTime, ms: i64) -> Duration {
    let wall_us = wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Duration::from_micros(
        u64::try_from(wall_us.saturating_sub(ms.saturating_mul(1000))).unwrap_or(0),
    )
}

/// Per-job counters and latencies.
#[derive(Debug, Clone, Default)]
pub struct JobStats {
    /// Runs committed.
    pub runs: u64,
    /// Records read by successful tasks (each task of a run counted once).
    pub records: u64,
    /// Micro-batch end-to-end latencies (stream jobs): steady-state and warm-up histograms and
    /// the recent window of (seconds since the jobs started, latency ms), in commit order.
    /// Constant memory however long the job runs.
    pub latency: Latencies,
    /// Result (JSON, as the app's action shaped it) of the latest run committed, by run number:
    /// stream micro-batches overlap when one runs long, and one that commits after a later one
    /// does not replace the later one's result.
    pub last_result: serde_json::Value,
    /// The run `last_result` (and `input`) are from.
    pub last_result_run: Option<u64>,
    /// Failure, if the job failed.
    pub failed: Option<String>,
    /// Malformed input records skipped (policy `skip`).
    pub malformed_skipped: u64,
    /// Shuffle bytes written by the job's map tasks (postcard, after map-side combining).
    pub shuffle_write_bytes: u64,
    /// Map tasks run again because their outputs were lost.
    pub recomputed: u64,
    /// Input snapshot of the run `last_result` is from, for jobs reading file sources.
    pub input: Option<InputSnapshot>,
    /// Source → commit latency of a stream job whose records carry source timestamps (Kafka:
    /// produce time): per micro-batch, from its oldest record's timestamp to the commit, i.e.
    /// the longest any of its records waited. Wall clocks: on one host exact, across hosts off by
    /// their skew. Empty for other jobs.
    pub source_to_commit: Latencies,
    /// The same from the micro-batch's mean record timestamp: how long its records waited on
    /// average.
    pub source_to_commit_mean: Latencies,
}

struct JobState {
    kind: JobKind,
    interval: Duration,
    runs_limit: Option<u64>,
    /// Runs in flight at most (stream jobs; a batch job has one at a time anyway).
    max_in_flight: usize,
    next_run: u64,
    next_due: Option<Duration>,
    active: BTreeMap<u64, RunState>,
    stats: JobStats,
    /// Shared state the job's commits published (or a Kafka checkpoint restored): kept with its
    /// Kafka sources' plans and commits ([`saved_state`]).
    durable: BTreeSet<String>,
}

impl JobState {
    /// Whether `max_in_flight` runs are in flight: no due micro-batch may begin before one
    /// commits.
    fn at_capacity(&self) -> bool {
        self.active.len() >= self.max_in_flight
    }
}

/// The current versions of `names` in `broadcasts`, for a Kafka checkpoint: a micro-batch run
/// again after a driver restart then reads what its first attempt read.
fn saved_state(broadcasts: &Broadcasts, names: &BTreeSet<String>) -> Vec<SavedState> {
    names
        .iter()
        .filter_map(|name| {
            let (version, bytes) = broadcasts.bytes(name)?;
            Some(SavedState {
                name: name.clone(),
                version,
                bytes: bytes.to_vec(),
            })
        })
        .collect()
}

/// What the event loop must do after a job-manager step.
#[derive(Debug, Default)]
pub struct Step {
    /// Task sets to submit to the scheduler, in order.
    pub submit: Vec<Vec<TaskSpec>>,
    /// Shared-state versions published by commits (send them to executors).
    pub published: Vec<(String, u64)>,
    /// Jobs that failed in this step: (job, reason).
    pub failed: Vec<(u32, String)>,
    /// Runs committed in this step: (job, end-to-end latency in ms for stream micro-batches).
    pub committed: Vec<(u32, Option<f64>)>,
    /// Stream micro-batches committed in this step whose records carry source timestamps: (job,
    /// time from the oldest record's timestamp to the commit).
    pub source_to_commit: Vec<(u32, Duration)>,
    /// Stream micro-batches committed in this step: (job, run, due time), for the per-hop
    /// latency attribution.
    pub stream_commits: Vec<(u32, u64, Duration)>,
    /// Runs whose shuffle blocks and receiver cuts executors may drop: (job, run).
    pub released: Vec<(u32, u64)>,
    /// Runs that began in this step and read stream receivers: (job, run). Receivers cut their
    /// buffers only for runs announced this way.
    pub opened: Vec<(u32, u64)>,
}

impl Step {
    /// Append `other`'s work after this step's.
    pub fn extend(&mut self, other: Step) {
        self.submit.extend(other.submit);
        self.published.extend(other.published);
        self.failed.extend(other.failed);
        self.committed.extend(other.committed);
        self.source_to_commit.extend(other.source_to_commit);
        self.stream_commits.extend(other.stream_commits);
        self.released.extend(other.released);
        self.opened.extend(other.opened);
    }
}

/// The driver's view of every job's runs.
pub struct JobManager {
    app: Arc<App>,
    broadcasts: Arc<Broadcasts>,
    jobs: Vec<JobState>,
    started_at: Option<Duration>,
    stopped: bool,
    /// Where each stream receiver of the app runs (executor id), if placed.
    receivers: Vec<Option<String>>,
    /// Fetch failures one task may have before its job fails.
    max_fetch_failures: u32,
    /// Largest broadcast message executors accept (value, name and framing).
    max_broadcast_bytes: u64,
    /// Names this driver's run numbering (runs of jobs without a durable micro-batch number).
    epoch: String,
    /// The wall clock source timestamps are compared with (a fixed one in tests).
    wall: fn() -> SystemTime,
}

impl std::fmt::Debug for JobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobManager")
            .field("app", &self.app.name())
            .finish()
    }
}

impl JobManager {
    /// A manager for `app`'s jobs, committing shared state into `broadcasts`.
    pub fn new(app: Arc<App>, broadcasts: Arc<Broadcasts>) -> Self {
        let jobs = app
            .jobs()
            .iter()
            .map(|j| JobState {
                kind: j.kind,
                interval: j.interval,
                runs_limit: j.runs,
                max_in_flight: usize::try_from(j.max_in_flight)
                    .unwrap_or(usize::MAX)
                    .max(1),
                next_run: 0,
                next_due: None,
                active: BTreeMap::new(),
                durable: BTreeSet::new(),
                stats: {
                    let mut stats = JobStats::default();
                    // Attainment is a stream job's: a batch job's target (if set) means nothing.
                    if j.kind == JobKind::Stream {
                        stats.latency.set_target(j.latency_target);
                    }
                    stats
                },
            })
            .collect();
        Self {
            receivers: vec![None; app.receivers().len()],
            app,
            broadcasts,
            jobs,
            started_at: None,
            stopped: false,
            max_fetch_failures: DEFAULT_MAX_FETCH_FAILURES,
            max_broadcast_bytes: u64::MAX,
            epoch: neptune_core::kafka::new_epoch(),
            wall: SystemTime::now,
        }
    }

    /// Compare source timestamps with `wall` instead of the system clock (tests).
    pub fn set_wall_clock(&mut self, wall: fn() -> SystemTime) {
        self.wall = wall;
    }

    /// Fail a job whose commit publishes a broadcast that would not fit in a message of
    /// `bytes` (`grpc.max_message_bytes`): sent, it would break every executor's session.
    pub fn set_max_message_bytes(&mut self, bytes: u64) {
        self.max_broadcast_bytes = bytes;
    }

    /// Fail a job once one of its tasks came back `n` times because its shuffle input could not
    /// be fetched (at least 1).
    pub fn set_max_fetch_failures(&mut self, n: u32) {
        self.max_fetch_failures = n.max(1);
    }

    /// Which micro-batch latencies of each stream job count as warm-up (`stats.warmup_*`).
    pub fn set_warmup(&mut self, warmup: Warmup) {
        for job in &mut self.jobs {
            job.stats.latency.set_warmup(warmup);
            job.stats.source_to_commit.set_warmup(warmup);
            job.stats.source_to_commit_mean.set_warmup(warmup);
        }
    }

    /// Whether job `j` reads stream receivers (its runs are announced to executors).
    fn reads_receivers(&self, j: usize) -> bool {
        self.app.jobs()[j]
            .stages
            .iter()
            .any(|s| !s.receivers.is_empty())
    }

    /// Runs in flight that read stream receivers: what an executor joining now must know
    /// (every other executor got them in [`Step::opened`]).
    pub fn open_runs(&self) -> Vec<(u32, u64)> {
        (0..self.jobs.len())
            .filter(|&j| self.reads_receivers(j))
            .flat_map(|j| self.jobs[j].active.keys().map(move |&r| (j as u32, r)))
            .collect()
    }

    /// Start every job: batch jobs submit run 0 now; stream jobs' first micro-batch is due one
    /// interval from now.
    pub fn start(&mut self, now: Duration) -> Step {
        self.started_at = Some(now);
        let mut step = Step::default();
        for j in 0..self.jobs.len() {
            match self.jobs[j].kind {
                JobKind::Batch => self.begin_run(j, now, &mut step),
                JobKind::Stream => self.jobs[j].next_due = Some(now + self.jobs[j].interval),
            }
        }
        step
    }

    /// Receiver `index` now runs on `executor` (`None`: nowhere, its executor was lost).
    pub fn place_receiver(&mut self, index: usize, executor: Option<String>) {
        if let Some(r) = self.receivers.get_mut(index) {
            *r = executor;
        }
    }

    /// The first run of the job reading receiver `index` that has not begun yet: where a
    /// receiver (re)started now starts delivering.
    pub fn receiver_first_run(&self, index: usize) -> u64 {
        self.app
            .receiver_readers(index as u32)
            .next()
            .map_or(0, |j| self.jobs[j].next_run)
    }

    /// Where each receiver runs, by index.
    pub fn receiver_placement(&self) -> &[Option<String>] {
        &self.receivers
    }

    /// When the job clock started.
    pub fn started_at(&self) -> Option<Duration> {
        self.started_at
    }

    /// Stop triggering new runs (shutdown); runs in flight may still commit.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Earliest due time of a stream micro-batch that may begin then: a job with
    /// `max_in_flight` runs in flight has none (its next begins when one commits).
    pub fn next_deadline(&self) -> Option<Duration> {
        if self.stopped {
            return None;
        }
        self.jobs
            .iter()
            .filter(|j| !j.at_capacity())
            .filter_map(|j| j.next_due)
            .min()
    }

    /// When stream job `j`'s next micro-batch is due, and its interval (`None`: no more are
    /// due, the job is not a stream job, or it has `max_in_flight` runs in flight — its next
    /// begins when one commits, whatever its due time, so there is nothing to act ahead for).
    pub fn next_due(&self, j: usize) -> Option<(Duration, Duration)> {
        if self.stopped {
            return None;
        }
        let job = self.jobs.get(j)?;
        if job.at_capacity() {
            return None;
        }
        job.next_due.map(|due| (due, job.interval))
    }

    /// Submit every micro-batch due at `now` that its job's `max_in_flight` lets begin.
    pub fn tick(&mut self, now: Duration) -> Step {
        let mut step = Step::default();
        for j in 0..self.jobs.len() {
            self.begin_due(j, now, &mut step);
        }
        step
    }

    /// Begin stream job `j`'s micro-batches due at `now`, oldest first, while fewer than its
    /// `max_in_flight` are in flight. Each keeps its own due time, however late it begins.
    fn begin_due(&mut self, j: usize, now: Duration, step: &mut Step) {
        if self.stopped {
            return;
        }
        while let Some(due) = self.jobs[j].next_due {
            if due > now || self.runs_exhausted(j) || self.jobs[j].at_capacity() {
                break;
            }
            self.jobs[j].next_due = Some(due + self.jobs[j].interval);
            self.begin_run(j, due, step);
        }
        if self.runs_exhausted(j) {
            self.jobs[j].next_due = None;
        }
    }

    /// Stream job `j`'s micro-batches due by `now` that have not begun because
    /// `max_in_flight` are in flight (0 for a job keeping up, and for batch jobs).
    pub fn waiting_runs(&self, j: usize, now: Duration) -> u64 {
        let job = &self.jobs[j];
        let Some(due) = job.next_due.filter(|d| *d <= now && !self.stopped) else {
            return 0;
        };
        let interval = job.interval.as_nanos().max(1);
        let waiting = u64::try_from((now - due).as_nanos() / interval)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        match job.runs_limit {
            Some(limit) => waiting.min(limit.saturating_sub(job.next_run)),
            None => waiting,
        }
    }

    fn runs_exhausted(&self, j: usize) -> bool {
        self.jobs[j]
            .runs_limit
            .is_some_and(|n| self.jobs[j].next_run >= n)
    }

    fn begin_run(&mut self, j: usize, due: Duration, step: &mut Step) {
        if self.runs_exhausted(j) || self.jobs[j].stats.failed.is_some() {
            return;
        }
        let run = self.jobs[j].next_run;
        // The run's input snapshot: every file source is listed once, here, and each task reads
        // exactly its share (see `neptune_core::source_snapshot`).
        let inputs = match lineage::snapshot_inputs(&self.app.jobs()[j].stages) {
            Ok(inputs) => inputs,
            Err(e) => {
                self.fail_job_into(j, &format!("run {run}: {e}"), step);
                return;
            }
        };
        // Kafka sources: this run's offset ranges, planned from the offsets last polled (never
        // waits on a broker) and logged in the source's checkpoint before any task runs.
        let mut kafka = BTreeMap::new();
        let mut kafka_batch = None;
        let mut kafka_epoch = None;
        let mut restored = Vec::new();
        for s in &self.app.jobs()[j].stages {
            for &k in &s.kafka {
                if kafka.contains_key(&k) {
                    continue;
                }
                let Some(source) = self.app.kafka_sources().get(k as usize) else {
                    continue;
                };
                let planned =
                    source.plan(run, || saved_state(&self.broadcasts, &self.jobs[j].durable));
                restored.extend(source.take_restored());
                match planned {
                    Ok(slots) => {
                        kafka.insert(k, slots);
                        if kafka_batch.is_none() {
                            kafka_batch = source.batch_of(run);
                            kafka_epoch = kafka_batch.and_then(|_| source.epoch());
                        }
                    }
                    Err(e) => {
                        self.fail_job_into(j, &format!("run {run}: Kafka source: {e}"), step);
                        return;
                    }
                }
            }
        }
        self.restore_state(j, restored, step);
        self.jobs[j].next_run += 1;
        let mut st = RunState::new(due, &self.app.jobs()[j].stages);
        st.kafka = kafka;
        st.kafka_batch = kafka_batch;
        st.epoch = kafka_epoch.unwrap_or_else(|| self.epoch.clone());
        if !inputs.is_empty() {
            st.inputs = inputs;
            let t = st.input_totals();
            tracing::info!(
                job = j,
                run,
                files = t.files,
                bytes = t.bytes,
                "input snapshot"
            );
        }
        self.jobs[j].active.insert(run, st);
        if self.reads_receivers(j) {
            step.opened.push((j as u32, run));
        }
        // A result stage without partitions is complete at once: the run commits now.
        self.advance(j, run, due, step);
    }

    /// Put shared state a Kafka checkpoint held into the broadcasts (sent to executors with the
    /// step, before its tasks) and keep it durable for job `j`.
    fn restore_state(&mut self, j: usize, state: Vec<SavedState>, step: &mut Step) {
        for s in state {
            if self.broadcasts.put(&s.name, s.version, s.bytes) {
                tracing::info!(job = j, state = %s.name, version = s.version, "shared state restored from the Kafka checkpoint");
                step.published.push((s.name.clone(), s.version));
            } else {
                tracing::warn!(job = j, state = %s.name, version = s.version, held = ?self.broadcasts.version(&s.name), "shared state in the Kafka checkpoint not restored: a newer version is held");
            }
            self.jobs[j].durable.insert(s.name);
        }
    }

    /// Commit run `run` of job `j` if its result stage is complete; otherwise submit what can
    /// run now.
    fn advance(&mut self, j: usize, run: u64, now: Duration, step: &mut Step) {
        match self.jobs[j].active.get(&run) {
            Some(st) if st.done() => self.commit(j, run, now, step),
            Some(_) => self.pump(j, run, step),
            None => {}
        }
    }

    /// Submit every task that can run now (lineage rules): one task set per stage, earliest
    /// first. Reduce tasks carry the executors holding most of their input as preferences.
    fn pump(&mut self, j: usize, run: u64, step: &mut Step) {
        let stages = &self.app.jobs()[j].stages;
        let receivers = &self.receivers;
        let job = &mut self.jobs[j];
        let Some(st) = job.active.get_mut(&run) else {
            return;
        };
        // Source locality first: a receiver's micro-batch data is where the receiver runs.
        let preferred = |st: &RunState, stage: usize, p: u32| -> Vec<String> {
            let reads = &stages[stage].receivers;
            if reads.is_empty() {
                st.preferred(stages, stage, p)
            } else {
                reads
                    .iter()
                    .filter_map(|&r| receivers.get(r as usize).cloned().flatten())
                    .collect()
            }
        };
        for set in st.submit_ready(stages) {
            let tasks = set
                .into_iter()
                .map(|sub| {
                    if sub.recompute {
                        job.stats.recomputed += 1;
                    }
                    TaskSpec {
                        id: TaskId {
                            job: j as u32,
                            run,
                            stage: sub.stage as u32,
                            partition: sub.partition,
                        },
                        kind: job.kind,
                        attempt: sub.attempt,
                        preferred: preferred(st, sub.stage, sub.partition),
                    }
                })
                .collect();
            step.submit.push(tasks);
        }
    }

    /// Task `id` could not run because inputs held by `executor` are lost (fetch failed, or
    /// they vanished before its launch): treat that executor's outputs of the stages it reads as
    /// lost, hold the task, and recompute. `fetch_failed` says an executor reported the failure
    /// (not the driver finding an input gone before the launch): those count towards
    /// `max_fetch_failures`, past which the job fails.
    pub fn task_returned(
        &mut self,
        id: TaskId,
        executor: Option<&str>,
        fetch_failed: bool,
    ) -> Step {
        let mut step = Step::default();
        let j = id.job as usize;
        let Some(st) = self
            .jobs
            .get_mut(j)
            .and_then(|job| job.active.get_mut(&id.run))
        else {
            return step;
        };
        let (s, p) = (id.stage as usize, id.partition as usize);
        if !st.hand_back((s, p)) {
            return step;
        }
        if fetch_failed {
            let n = st.note_fetch_failure((s, p));
            if n >= self.max_fetch_failures {
                let from = executor.unwrap_or("an unknown executor");
                let reason = format!(
                    "task {id} could not fetch its shuffle input {n} times (last from executor \
                     {from}); giving up after driver.max_fetch_failures = {}",
                    self.max_fetch_failures
                );
                self.fail_job_into(j, &reason, &mut step);
                return step;
            }
        }
        if let Some(e) = executor {
            st.lose(e, Some(&self.app.jobs()[j].stages[s].reads));
        }
        self.pump(j, id.run, &mut step);
        step
    }

    /// Executor `executor` is gone: every map output it held is lost. Finished tasks of stages
    /// in flight run again; lost outputs of complete stages are recomputed while still needed.
    pub fn executor_lost(&mut self, executor: &str) -> Step {
        let mut step = Step::default();
        for j in 0..self.jobs.len() {
            let runs: Vec<u64> = self.jobs[j].active.keys().copied().collect();
            for run in runs {
                let st = self.jobs[j].active.get_mut(&run).expect("listed");
                if st.lose(executor, None) > 0 {
                    self.pump(j, run, &mut step);
                }
            }
        }
        step
    }

    /// A task succeeded with `result` after reading `records`. Duplicate results (a rerun that
    /// raced its first attempt) are ignored: the first one wins, and results are deterministic.
    /// Results of runs no longer active (committed or failed) are ignored too.
    pub fn task_succeeded(
        &mut self,
        now: Duration,
        id: TaskId,
        result: Vec<u8>,
        records: u64,
        executor: &str,
    ) -> Step {
        let mut step = Step::default();
        let j = id.job as usize;
        let Some(stage_def) = self
            .app
            .jobs()
            .get(j)
            .and_then(|d| d.stages.get(id.stage as usize))
        else {
            return step;
        };
        let writes_shuffle = stage_def.shuffle_out.is_some();
        let job = &mut self.jobs[j];
        let Some(st) = job.active.get_mut(&id.run) else {
            return step;
        };
        let at = (id.stage as usize, id.partition as usize);
        let Some(done) = st.finish(at, executor, result, writes_shuffle, records) else {
            return step;
        };
        job.stats.records = job.stats.records.saturating_add(done.records);
        job.stats.shuffle_write_bytes = job
            .stats
            .shuffle_write_bytes
            .saturating_add(done.shuffle_bytes);
        if done.stage_complete {
            self.advance(j, id.run, now, &mut step);
            // A commit makes room for micro-batches that waited for `max_in_flight`.
            self.begin_due(j, now, &mut step);
        }
        step
    }

    /// The source timestamps of the records task `id` read, reported with its success (before
    /// [`Self::task_succeeded`]); kept with its run until the run commits.
    pub fn note_event_times(&mut self, id: TaskId, times: EventTimes) {
        let run = self
            .jobs
            .get_mut(id.job as usize)
            .and_then(|j| j.active.get_mut(&id.run));
        if let Some(run) = run {
            EventTimes::add(&mut run.event_times, times);
        }
    }

    /// Count malformed records a task of job `j` skipped.
    pub fn note_skipped(&mut self, j: usize, n: u64) {
        if let Some(job) = self.jobs.get_mut(j) {
            job.stats.malformed_skipped = job.stats.malformed_skipped.saturating_add(n);
        }
    }

    /// Commit run `run` of job `j` (its result stage is complete) and start the next epoch of
    /// a batch job.
    fn commit(&mut self, j: usize, run: u64, now: Duration, step: &mut Step) {
        let stages = self.app.jobs()[j].stages.len();
        let mut st = self.jobs[j].active.remove(&run).expect("run is active");
        let def = &self.app.jobs()[j];
        if stages > 1 || def.stages.iter().any(|s| !s.receivers.is_empty()) {
            step.released.push((j as u32, run));
        }
        let parts = st.take_results();
        let mut ctx = CommitCtx::new(run, st.records, &self.broadcasts);
        let commit = self.app.jobs()[j].commit.clone();
        let outcome =
            commit(&mut ctx, parts).map_err(|e| format!("run {run} failed to commit: {e}"));
        if outcome.is_ok() {
            // What the commit published is the job's durable state from now on.
            self.jobs[j]
                .durable
                .extend(ctx.published().iter().map(|(name, _)| name.clone()));
        }
        let outcome = outcome
            .and_then(|v| {
                // The micro-batch's Kafka offsets become the committed ones, after the job's own
                // commit succeeded (a failed commit leaves them to be read again), with the job's
                // shared state as this commit left it.
                for &k in st.kafka.keys() {
                    if let Some(source) = self.app.kafka_sources().get(k as usize) {
                        source
                            .commit(run, || saved_state(&self.broadcasts, &self.jobs[j].durable))
                            .map_err(|e| format!("run {run} failed to commit: {e}"))?;
                    }
                }
                Ok(v)
            })
            .and_then(|v| match self.oversized_broadcast(run, ctx.published()) {
                Some(reason) => Err(reason),
                None => Ok(v),
            });
        match outcome {
            Ok(v) => {
                step.published.extend(ctx.published().iter().cloned());
                let job = &mut self.jobs[j];
                job.stats.runs += 1;
                if job.stats.last_result_run.is_none_or(|r| r < run) {
                    job.stats.last_result = v;
                    job.stats.last_result_run = Some(run);
                    if !st.inputs.is_empty() {
                        job.stats.input = Some(st.input_totals());
                    }
                }
                if job.kind == JobKind::Stream {
                    let latency = now.saturating_sub(st.due);
                    let at = now.saturating_sub(self.started_at.unwrap_or_default());
                    job.stats.latency.record(at, latency);
                    step.committed
                        .push((j as u32, Some(latency.as_secs_f64() * 1000.0)));
                    if let Some(t) = st.event_times {
                        let wall = (self.wall)();
                        let oldest = since(wall, t.min_ms());
                        job.stats.source_to_commit.record(at, oldest);
                        job.stats
                            .source_to_commit_mean
                            .record(at, since(wall, t.mean_ms()));
                        step.source_to_commit.push((j as u32, oldest));
                    }
                    step.stream_commits.push((j as u32, run, st.due));
                } else {
                    step.committed.push((j as u32, None));
                }
                if job.kind == JobKind::Batch && !self.stopped {
                    self.begin_run(j, now, step);
                }
            }
            Err(reason) => self.fail_job_into(j, &reason, step),
        }
    }

    /// Why the first of `published` is too large to send to executors, if one is.
    fn oversized_broadcast(&self, run: u64, published: &[(String, u64)]) -> Option<String> {
        published.iter().find_map(|(name, version)| {
            let (_, bytes) = self.broadcasts.bytes(name)?;
            let size = (bytes.len() + name.len()) as u64 + BROADCAST_OVERHEAD;
            (size > self.max_broadcast_bytes).then(|| {
                format!(
                    "run {run} published shared state `{name}` version {version} of {} bytes, \
                     more than a message may carry (grpc.max_message_bytes = {})",
                    bytes.len(),
                    self.max_broadcast_bytes
                )
            })
        })
    }

    /// Mark job `j` failed (a task was abandoned or a commit failed): no more runs. Its runs in
    /// flight end here, so what executors hold for them is released.
    pub fn fail_job(&mut self, j: usize, reason: &str) -> Step {
        let mut step = Step::default();
        self.fail_job_into(j, reason, &mut step);
        step
    }

    fn fail_job_into(&mut self, j: usize, reason: &str, step: &mut Step) {
        let Some(job) = self.jobs.get_mut(j) else {
            return;
        };
        if job.stats.failed.is_some() {
            return;
        }
        job.stats.failed = Some(reason.to_string());
        job.next_due = None;
        let runs = std::mem::take(&mut job.active);
        step.released
            .extend(runs.into_keys().map(|run| (j as u32, run)));
        step.failed.push((j as u32, reason.to_string()));
    }

    /// Whether every job has a run limit and has committed all its runs (or failed).
    pub fn all_done(&self) -> bool {
        self.jobs.iter().all(|j| {
            j.stats.failed.is_some()
                || j.runs_limit
                    .is_some_and(|n| j.stats.runs >= n && j.active.is_empty())
        })
    }

    /// Whether any job failed.
    pub fn any_failed(&self) -> Option<String> {
        self.jobs.iter().zip(self.app.jobs()).find_map(|(j, d)| {
            j.stats
                .failed
                .as_ref()
                .map(|f| format!("job `{}` failed: {f}", d.name))
        })
    }

    /// Stats of job `j`.
    pub fn stats(&self, j: usize) -> &JobStats {
        &self.jobs[j].stats
    }

    /// Micro-batches (or epochs) in flight for job `j`.
    pub fn active_runs(&self, j: usize) -> usize {
        self.jobs[j].active.len()
    }
}

#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
