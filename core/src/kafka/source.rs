//! A Kafka source: the driver side plans micro-batches (offset poller, checkpoint, plan), the
//! task side reads exactly its ranges.
//!
//! Driver: the first [`KafkaSource::plan`] loads the checkpoint and starts a poller on the Kafka
//! I/O runtime that keeps the topic's earliest and latest offsets per partition (and the last
//! error, for `/status`). Planning never waits on the broker: it plans from the last offsets
//! polled (none yet, or the broker unreachable since start: an empty micro-batch; the poller's
//! error is in the log and `/status`). At most one non-empty micro-batch is in flight: a
//! micro-batch due while the previous one still runs is planned empty, so batches commit in order
//! and the checkpoint's committed offsets are always a prefix of what was read (Spark runs
//! micro-batches one after the other too).
//!
//! Task: reads its ranges in order, fetching on the I/O runtime and waiting with a yield point
//! every [`READ_TICK`](super::io::READ_TICK); the reader's position lives in the task's iterator,
//! so a suspended task resumes where it stopped. A broker that does not answer is retried with
//! back-off for as long as it takes (the micro-batch waits; never a skip); a range whose records
//! are gone fails the task naming the partition and offsets.

use super::checkpoint::{Checkpoint, Committed, SavedState};
use super::io::{self, READ_TICK};
use super::plan::{Available, BatchPlan, PartitionOffsets, SlotPlan, StartingOffsets};
use super::security::{Connection, Security};
use super::{KafkaError, OffsetRange};
use crate::dataset::Dataset;
use crate::source::Malformed;
use crate::task::TaskContext;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest pause between polls, or between a task's fetch attempts, while the broker is down.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Empty fetches below a range's end tolerated before its records are declared lost (about 5 s
/// of them: see [`EMPTY_FETCH_PAUSE`]).
const MAX_EMPTY_FETCHES: u32 = 50;
/// The longest pause after an empty fetch (from 5 ms, doubling). Fetches do not wait at the
/// broker ([`io::fetch`]): a planned range's records exist, so an empty answer is rare (records
/// not yet visible to this broker, or gone) and paced here instead.
const EMPTY_FETCH_PAUSE: Duration = Duration::from_millis(100);

/// One record read from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    /// Topic partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value (empty for a null value).
    pub value: Vec<u8>,
    /// Timestamp, ms since the Unix epoch: the producer's (CreateTime, Kafka's default) or the
    /// broker's append time (LogAppendTime), as the topic is configured.
    pub timestamp_ms: i64,
}

/// What a Kafka source needs to know (from the app's config keys).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Name (checkpoint subdirectory, `/status`).
    pub name: String,
    /// Brokers and credentials.
    pub connection: Connection,
    /// Topic.
    pub topic: String,
    /// Where a source without a checkpoint starts.
    pub starting: StartingOffsets,
    /// Records per micro-batch cap.
    pub max_records_per_batch: Option<u64>,
    /// How often the driver polls the latest offsets.
    pub poll: Duration,
    /// A range longer than this is split over tasks.
    pub max_records_per_task: u64,
    /// Task slots of a micro-batch (the dataset's partitions).
    pub slots: u32,
    /// Fail when records were deleted before being read (else skip and count them).
    pub fail_on_data_loss: bool,
    /// Checkpoint directory of this source (`None`: offsets in memory only).
    pub checkpoint: Option<PathBuf>,
}

impl SourceConfig {
    /// The source `name` as the `kafka.*` keys of `cfg` describe it, over `slots` tasks.
    ///
    /// # Errors
    /// A config error naming the key at fault.
    pub fn from_config(
        name: &str,
        cfg: &crate::config::Config,
        slots: u32,
    ) -> crate::error::Result<Self> {
        use super::keys::*;
        // Every key is read before any is found missing, so `neptune config` lists them all.
        let bootstrap = BOOTSTRAP.get_opt(cfg)?.unwrap_or_default();
        let topic = TOPIC.get_opt(cfg)?.unwrap_or_default();
        let starting_raw = STARTING_OFFSETS.get_opt(cfg)?.unwrap_or_default();
        let cap = MAX_RECORDS_PER_BATCH.get(cfg)?;
        let poll = Duration::from_millis(POLL_INTERVAL_MS.get(cfg)?);
        let per_task = MAX_RECORDS_PER_TASK.get(cfg)?;
        let fail_on_data_loss = FAIL_ON_DATA_LOSS.get(cfg)?;
        let checkpoint = CHECKPOINT.get_opt(cfg)?;
        let security = Security::from_config(cfg);
        for (value, key) in [(&bootstrap, &BOOTSTRAP), (&topic, &TOPIC)] {
            if value.trim().is_empty() {
                return Err(format!("Kafka source `{name}`: set `{}`", key.meta.key).into());
            }
        }
        let starting = starting_raw.parse::<StartingOffsets>().map_err(|e| {
            format!("invalid value `{starting_raw}` for config key `kafka.starting_offsets`: {e}")
        })?;
        Ok(Self {
            name: name.to_string(),
            connection: Connection {
                bootstrap,
                security: security?,
            },
            topic,
            starting,
            max_records_per_batch: (cap > 0).then_some(cap),
            poll,
            max_records_per_task: per_task,
            slots: slots.max(1),
            fail_on_data_loss,
            checkpoint: checkpoint.map(|d| PathBuf::from(d).join(name)),
        })
    }
}

/// What the poller last saw.
#[derive(Debug, Default)]
struct Polled {
    avail: Option<BTreeMap<i32, Available>>,
    error: Option<String>,
}

/// The micro-batch in flight.
#[derive(Debug)]
struct InFlight {
    run: u64,
    batch: u64,
    plan: BatchPlan,
}

/// Driver-side state, made on the first plan.
#[derive(Debug)]
struct Planner {
    /// Id of the micro-batch numbering (the checkpoint's, or drawn at start without one).
    epoch: String,
    polled: Arc<Mutex<Polled>>,
    checkpoint: Option<Checkpoint>,
    /// Where the next micro-batch starts (`None`: from the starting offsets).
    next: Option<PartitionOffsets>,
    next_batch: u64,
    /// Micro-batches planned by an earlier driver and not committed: run again first, as planned.
    replay: VecDeque<(u64, BatchPlan)>,
    in_flight: Option<InFlight>,
    /// Records skipped because they were deleted before being read.
    lost: u64,
    /// Shared state from the checkpoint the driver has not restored yet
    /// ([`KafkaSource::take_restored`]).
    restore: Vec<SavedState>,
}

/// Per-partition offsets of a source, for `/status` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PartitionStatus {
    /// Topic partition.
    pub partition: i32,
    /// Latest offset polled.
    pub latest: i64,
    /// Where the next micro-batch starts (committed).
    pub committed: i64,
    /// `latest − committed`.
    pub lag: i64,
}

/// A source's state as `/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStatus {
    /// Source name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// The last micro-batch committed (durable number), if any.
    pub committed_batch: Option<u64>,
    /// The last error talking to the brokers, while it lasts.
    pub error: Option<String>,
    /// Per partition.
    pub partitions: Vec<PartitionStatus>,
    /// Records skipped because they were deleted before being read.
    pub lost: u64,
}

/// A Kafka source of an app (see the module docs).
#[derive(Debug, Clone)]
pub struct KafkaSource {
    index: u32,
    config: Arc<SourceConfig>,
    planner: Arc<Mutex<Option<Planner>>>,
}

impl KafkaSource {
    /// Source number `index` of the app, configured by `config`.
    pub fn new(index: u32, config: SourceConfig) -> Self {
        Self {
            index,
            config: Arc::new(config),
            planner: Arc::new(Mutex::new(None)),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// Its index in the app's Kafka sources (what [`StageDef::kafka`](crate::plan::StageDef::kafka)
    /// lists).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The records of the micro-batch's ranges, one partition per task slot.
    pub fn records(&self) -> Dataset<KafkaRecord> {
        let conn = self.config.connection.clone();
        let topic = self.config.topic.clone();
        Dataset::from_fn(self.config.slots, move |ctx: &TaskContext| {
            Box::new(Reader::new(ctx, conn.clone(), topic.clone()))
        })
        .reading_kafka(self.index)
    }

    /// The records' values as text lines; a value that is not UTF-8 is malformed: it fails the
    /// task naming partition and offset, or is skipped and counted (`policy`).
    pub fn lines(&self, policy: Malformed) -> Dataset<String> {
        let conn = self.config.connection.clone();
        let topic = self.config.topic.clone();
        Dataset::from_fn(self.config.slots, move |ctx: &TaskContext| {
            let topic = topic.clone();
            Box::new(
                Reader::new(ctx, conn.clone(), topic.clone()).filter_map(move |r| {
                    match String::from_utf8(r.value) {
                        Ok(s) => Some(s),
                        Err(_) => {
                            let reason = format!(
                                "Kafka record {topic}/{} at offset {} is not UTF-8 text",
                                r.partition, r.offset
                            );
                            policy.handle(ctx, crate::error::Error::user(reason));
                            None
                        }
                    }
                }),
            )
        })
        .reading_kafka(self.index)
    }

    fn start(&self) -> Result<Planner, KafkaError> {
        let c = &self.config;
        let checkpoint = c.checkpoint.as_ref().map(Checkpoint::open).transpose()?;
        let (mut committed, replay) = match &checkpoint {
            Some(cp) => cp.load()?,
            None => (None, Vec::new()),
        };
        let next_batch = replay
            .last()
            .map(|(b, _)| b + 1)
            .or(committed.as_ref().map(|k| k.batch + 1))
            .unwrap_or(0);
        if let Some(k) = &committed {
            tracing::info!(source = %c.name, batch = k.batch, "Kafka source resumes after its last committed micro-batch");
        }
        // The numbering of this source's micro-batches: the checkpoint's, or this start's.
        let epoch = match &checkpoint {
            Some(cp) => cp.id()?,
            None => super::new_epoch(),
        };
        let polled = Arc::new(Mutex::new(Polled::default()));
        let weak = Arc::downgrade(&polled);
        let (conn, topic, name) = (c.connection.clone(), c.topic.clone(), c.name.clone());
        let every = c.poll;
        io::runtime().spawn(async move {
            let mut pause = every;
            loop {
                let got = io::available(&conn, &topic).await;
                let Some(polled) = weak.upgrade() else { return };
                {
                    let mut p = polled.lock().expect("poll state");
                    match got {
                        Ok(a) => {
                            if p.error.take().is_some() {
                                tracing::info!(source = %name, "Kafka brokers answer again");
                            }
                            p.avail = Some(a);
                            pause = every;
                        }
                        Err(e) => {
                            let e = e.to_string();
                            if p.error.as_deref() != Some(e.as_str()) {
                                tracing::warn!(source = %name, error = %e, "cannot poll Kafka offsets; retrying");
                            }
                            p.error = Some(e);
                            pause = (pause * 2).min(MAX_BACKOFF);
                        }
                    }
                }
                drop(polled);
                tokio::time::sleep(pause).await;
            }
        });
        Ok(Planner {
            epoch,
            polled,
            checkpoint,
            restore: committed
                .as_mut()
                .map(|k| std::mem::take(&mut k.state))
                .unwrap_or_default(),
            next: committed.map(|k| k.next),
            next_batch,
            replay: replay.into(),
            in_flight: None,
            lost: 0,
        })
    }

    /// Plan run `run`'s micro-batch: the ranges of each task slot (empty ones when nothing is
    /// to be read now). Called by the driver when the run begins; never waits on the broker.
    /// `state` gives the job's shared state as the micro-batch's tasks will read it, logged with
    /// a new plan (asked only then).
    ///
    /// # Errors
    /// [`KafkaError::Checkpoint`] when the plan cannot be logged, [`KafkaError::Lost`] when
    /// records were deleted before being read and `kafka.fail_on_data_loss` is set.
    pub fn plan(
        &self,
        run: u64,
        state: impl FnOnce() -> Vec<SavedState>,
    ) -> Result<Vec<SlotPlan>, KafkaError> {
        let c = &self.config;
        let mut guard = self.planner.lock().expect("planner");
        if guard.is_none() {
            *guard = Some(self.start()?);
        }
        let p = guard.as_mut().expect("started");
        let empty = vec![Vec::new(); c.slots as usize];
        if p.in_flight.is_some() {
            return Ok(empty);
        }
        let (batch, plan) = if let Some((batch, plan)) = p.replay.pop_front() {
            if plan.slots.len() != c.slots as usize {
                return Err(KafkaError::Checkpoint(format!(
                    "micro-batch {batch} of source `{}` was planned over {} tasks, this app has {}: \
                     restart it with the partitions it had",
                    c.name,
                    plan.slots.len(),
                    c.slots
                )));
            }
            tracing::info!(source = %c.name, batch, records = plan.records(), "Kafka micro-batch planned before a restart runs again");
            if !plan.state.is_empty() {
                // What its first attempt read.
                p.restore = plan.state.clone();
            }
            (batch, plan)
        } else {
            let Some(avail) = p.polled.lock().expect("poll state").avail.clone() else {
                return Ok(empty);
            };
            let next = p
                .next
                .clone()
                .unwrap_or_else(|| super::plan::start_offsets(&c.starting, &avail));
            let mut plan = super::plan::plan_batch(
                &next,
                &avail,
                c.max_records_per_batch,
                c.max_records_per_task,
                c.slots,
                c.fail_on_data_loss,
            )
            .map_err(KafkaError::Lost)?;
            if plan.records() == 0 {
                // Nothing new; remember where the source starts so `latest` stays put.
                p.next = Some(plan.ends());
                return Ok(empty);
            }
            let batch = p.next_batch;
            if let Some(cp) = &p.checkpoint {
                // What the tasks will read: the driver's state, and what it restores from the
                // checkpoint before they run.
                plan.state = state();
                for r in &p.restore {
                    plan.state.retain(|s| s.name != r.name);
                    plan.state.push(r.clone());
                }
                cp.log_plan(batch, &plan)?;
            }
            p.next_batch += 1;
            (batch, plan)
        };
        p.lost = p.lost.saturating_add(plan.lost);
        let slots = plan.slots.clone();
        p.in_flight = Some(InFlight { run, batch, plan });
        Ok(slots)
    }

    /// Run `run` committed: its micro-batch's offsets become the committed ones (durably, when
    /// there is a checkpoint, with the job's shared state as the commit left it: `state`, asked
    /// only then). Runs planned empty commit nothing.
    ///
    /// # Errors
    /// [`KafkaError::Checkpoint`] when the commit cannot be written.
    pub fn commit(
        &self,
        run: u64,
        state: impl FnOnce() -> Vec<SavedState>,
    ) -> Result<(), KafkaError> {
        let mut guard = self.planner.lock().expect("planner");
        let Some(p) = guard.as_mut() else {
            return Ok(());
        };
        if p.in_flight.as_ref().is_none_or(|f| f.run != run) {
            return Ok(());
        }
        let f = p.in_flight.take().expect("checked");
        let next = f.plan.ends();
        if let Some(cp) = &p.checkpoint {
            cp.commit(&Committed {
                batch: f.batch,
                next: next.clone(),
                state: state(),
            })?;
        }
        p.next = Some(next);
        Ok(())
    }

    /// Shared state this source's checkpoint holds and the driver has not restored yet: after a
    /// restart, the replayed micro-batch's (what its first attempt read), else the newest
    /// commit's. Empty once taken, and without a checkpoint.
    pub fn take_restored(&self) -> Vec<SavedState> {
        let mut guard = self.planner.lock().expect("planner");
        guard
            .as_mut()
            .map(|p| std::mem::take(&mut p.restore))
            .unwrap_or_default()
    }

    /// The durable number of run `run`'s micro-batch, if it reads records.
    pub fn batch_of(&self, run: u64) -> Option<u64> {
        let guard = self.planner.lock().expect("planner");
        let f = guard.as_ref()?.in_flight.as_ref()?;
        (f.run == run).then_some(f.batch)
    }

    /// The id of this source's micro-batch numbering (see
    /// [`TaskContext::output_epoch`](crate::task::TaskContext::output_epoch)), once planning
    /// started.
    pub fn epoch(&self) -> Option<String> {
        let guard = self.planner.lock().expect("planner");
        Some(guard.as_ref()?.epoch.clone())
    }

    /// Offsets and lag per partition, and the last broker error (driver side).
    pub fn status(&self) -> SourceStatus {
        let guard = self.planner.lock().expect("planner");
        let mut s = SourceStatus {
            name: self.config.name.clone(),
            topic: self.config.topic.clone(),
            ..SourceStatus::default()
        };
        let Some(p) = guard.as_ref() else {
            return s;
        };
        s.committed_batch = p
            .next_batch
            .checked_sub(1 + u64::from(p.in_flight.is_some()));
        s.lost = p.lost;
        let polled = p.polled.lock().expect("poll state");
        s.error = polled.error.clone();
        if let Some(avail) = &polled.avail {
            for (&partition, a) in avail {
                let committed = p
                    .next
                    .as_ref()
                    .and_then(|n| n.get(&partition).copied())
                    .unwrap_or(a.earliest);
                s.partitions.push(PartitionStatus {
                    partition,
                    latest: a.latest,
                    committed,
                    lag: (a.latest - committed).max(0),
                });
            }
        }
        s
    }
}

/// Wait for `rx` with a yield point every tick; `None` when the task was killed.
pub(super) fn wait<T>(ctx: &TaskContext, rx: &std::sync::mpsc::Receiver<T>) -> Option<T> {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match rx.recv_timeout(READ_TICK) {
            Ok(v) => return Some(v),
            Err(RecvTimeoutError::Timeout) => {
                if !ctx.yield_point() {
                    return None;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Pause `d` in ticks with yield points; `false` when the task was killed.
pub(super) fn pause(ctx: &TaskContext, d: Duration) -> bool {
    let mut left = d;
    while !left.is_zero() {
        let t = left.min(READ_TICK);
        std::thread::sleep(t);
        left -= t;
        if !ctx.yield_point() {
            return false;
        }
    }
    true
}

/// A task's reader over its ranges.
struct Reader<'a> {
    ctx: &'a TaskContext,
    conn: Connection,
    topic: String,
    ranges: Arc<Vec<OffsetRange>>,
    at: usize,
    next: i64,
    buf: VecDeque<KafkaRecord>,
}

impl<'a> Reader<'a> {
    fn new(ctx: &'a TaskContext, conn: Connection, topic: String) -> Self {
        let ranges = ctx.kafka_ranges();
        let next = ranges.first().map_or(0, |r| r.from);
        Self {
            ctx,
            conn,
            topic,
            ranges,
            at: 0,
            next,
            buf: VecDeque::new(),
        }
    }

    /// Fetch the next records of the current range into the buffer; `false` to stop (killed or
    /// failed: the failure is recorded on the task).
    fn fill(&mut self, r: OffsetRange) -> bool {
        let mut backoff = Duration::from_millis(50);
        let mut empty = 0u32;
        let mut empty_pause = Duration::from_millis(5);
        loop {
            let (b, t, p, at) = (
                self.conn.clone(),
                self.topic.clone(),
                r.partition,
                self.next,
            );
            let rx = io::start(async move { io::fetch(&b, &t, p, at).await });
            let Some(got) = wait(self.ctx, &rx) else {
                return false;
            };
            match got {
                Ok((records, high_watermark)) => {
                    let before = self.buf.len();
                    for ro in records {
                        if ro.offset < self.next || ro.offset >= r.until {
                            continue;
                        }
                        self.next = ro.offset + 1;
                        self.buf.push_back(KafkaRecord {
                            partition: r.partition,
                            offset: ro.offset,
                            key: ro.record.key,
                            value: ro.record.value.unwrap_or_default(),
                            timestamp_ms: ro.record.timestamp.timestamp_millis(),
                        });
                    }
                    if self.buf.len() > before {
                        return true;
                    }
                    if high_watermark >= r.until {
                        // Only control records or compacted-away offsets left in the range.
                        self.next = r.until;
                        return true;
                    }
                    empty += 1;
                    if empty >= MAX_EMPTY_FETCHES {
                        self.ctx.fail(crate::error::Error::user(KafkaError::Lost(format!(
                            "records {}..{} of {}/{} were planned but the partition now ends at \
                             {high_watermark} (the topic was truncated or recreated)",
                            self.next, r.until, self.topic, r.partition
                        ))));
                        return false;
                    }
                    if !pause(self.ctx, empty_pause) {
                        return false;
                    }
                    empty_pause = (empty_pause * 2).min(EMPTY_FETCH_PAUSE);
                }
                Err(KafkaError::NoTopic(t)) => {
                    self.ctx
                        .fail(crate::error::Error::user(KafkaError::NoTopic(t)));
                    return false;
                }
                Err(e) => {
                    tracing::warn!(task = %self.ctx.id(), error = %e, "Kafka fetch failed; retrying");
                    if !pause(self.ctx, backoff) {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl Iterator for Reader<'_> {
    type Item = KafkaRecord;

    fn next(&mut self) -> Option<KafkaRecord> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                self.ctx.count_record();
                if r.timestamp_ms >= 0 {
                    // -1: the record has none (Kafka's NO_TIMESTAMP, old message formats).
                    self.ctx.note_event_time(r.timestamp_ms);
                }
                return Some(r);
            }
            let r = *self.ranges.get(self.at)?;
            if self.next >= r.until {
                self.at += 1;
                self.next = self.ranges.get(self.at).map_or(0, |n| n.from);
                continue;
            }
            if self.ctx.has_failed() || !self.fill(r) {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::plan::OffsetRange;

    /// A source whose brokers never answer (nothing listens on port 9) over `checkpoint`.
    fn source(checkpoint: &std::path::Path) -> KafkaSource {
        let cfg = crate::config::Config::from_args(&[
            "kafka.bootstrap=127.0.0.1:9".to_string(),
            "kafka.topic=t".to_string(),
            format!("kafka.checkpoint={}", checkpoint.display()),
        ])
        .unwrap();
        KafkaSource::new(0, SourceConfig::from_config("src", &cfg, 1).unwrap())
    }

    fn pin(version: u64) -> SavedState {
        SavedState {
            name: "pin".into(),
            version,
            bytes: vec![version as u8],
        }
    }

    #[test]
    fn a_restarted_source_restores_the_replayed_plans_state_else_the_last_commits() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::open(dir.path().join("src")).unwrap();
        let r = OffsetRange {
            partition: 0,
            from: 5,
            until: 9,
        };
        cp.commit(&Committed {
            batch: 0,
            next: [(0, 5)].into(),
            state: vec![pin(1)],
        })
        .unwrap();
        let plan = BatchPlan {
            ranges: [(0, r)].into(),
            slots: vec![vec![r]],
            lost: 0,
            state: vec![pin(2)],
        };
        cp.log_plan(1, &plan).unwrap();

        // Batch 1 was planned and did not commit: it runs again with what it read.
        let s = source(dir.path());
        assert_eq!(s.take_restored(), vec![], "nothing before planning starts");
        let asked = std::cell::Cell::new(false);
        let slots = s
            .plan(0, || {
                asked.set(true);
                vec![]
            })
            .unwrap();
        assert_eq!(slots, plan.slots);
        assert!(!asked.get(), "a replayed plan is not logged again");
        assert_eq!(s.take_restored(), vec![pin(2)]);
        assert_eq!(s.take_restored(), vec![], "taken once");
        s.commit(0, || vec![pin(3)]).unwrap();

        // Restarted after that commit: nothing to replay, the commit's state comes back.
        let s = source(dir.path());
        assert!(s.plan(0, Vec::new).unwrap().iter().all(Vec::is_empty));
        assert_eq!(s.take_restored(), vec![pin(3)]);
    }

    #[test]
    fn its_datasets_name_the_source_by_index_not_as_a_file_input() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path());
        for ds in [
            s.records().map(|r| r.offset as u64),
            s.lines(Malformed::Skip).map(|l| l.len() as u64),
        ] {
            let stages = ds.count().stages();
            assert_eq!(stages[0].kafka, [s.index()]);
            assert!(stages[0].inputs.is_empty(), "no file listing for it");
        }
    }
}
