//! One run's stages as a DAG, and lineage recovery: where every task of the run stands
//! (waiting, submitted, finished), where every map output lives, which outputs a lost executor
//! took with it, and which tasks can be submitted now.
//!
//! Rules.
//! - A stage is *complete* when every one of its tasks has finished and, for a map stage, every
//!   output is still available. A task is submitted once every stage its stage `reads` is
//!   complete, so independent stages run at the same time: a join's two map stages are in flight
//!   together, and its reduce stage starts when both are complete. The run commits when its
//!   result stage (the last in the list) is complete.
//! - A stage is *needed* while it is the result stage, or a needed stage that is not complete
//!   reads it. Only needed stages submit tasks: an output lost after every stage reading it
//!   completed is left alone (and recomputed only if a reader loses an output in turn and
//!   needs it again). Because a task waits for its stage's inputs, lost outputs are recomputed
//!   earliest needed stage first.
//! - A finished map output on a lost executor is *lost*: its task runs again (a recomputation),
//!   whether its stage was complete or still in flight. Results of the result stage live on the
//!   driver and are never lost.
//! - A task handed back because its inputs are lost (a fetch failure, or an input vanished
//!   before its launch) is *held*: the scheduler forgot it, and it waits like a task not yet
//!   submitted until nothing its stage reads is missing.
//! - The first result of a task wins; later ones (a rerun that raced its first attempt) are
//!   ignored. Records of a task count once per run, however often it runs.
//! - Resubmitted tasks get attempt numbers from [`RESUBMIT_ATTEMPT`] up, distinct from the
//!   scheduler's own re-queue attempts.

use crate::status::InputSnapshot;
use neptune_core::EventTimes;
use neptune_core::app::StageDef;
use neptune_core::kafka::{OffsetRange, SlotPlan};
use neptune_core::shuffle::MapStatus;
use neptune_core::source_snapshot::{FileSlice, SnapshotError, snapshot};
use std::collections::BTreeMap;
use std::time::Duration;

/// Attempt numbers of resubmissions start at multiples of this.
pub const RESUBMIT_ATTEMPT: u32 = 1000;

/// Where one map task's output lives.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub executor: String,
    pub status: MapStatus,
}

/// Where one task of a run stands.
#[derive(Debug, Clone)]
enum Part {
    /// Not submitted yet, or handed back: submitted once its stage's inputs are complete.
    Waiting,
    /// Finished, but its map output was lost: waits like `Waiting`, then runs as a recomputation.
    Lost,
    /// With the scheduler (queued, running or suspended).
    Submitted,
    /// A finished map task: where its output lives.
    Output(Output),
    /// A finished result-stage task: its result, kept on the driver until the commit.
    Result(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Task {
    part: Part,
    /// Submissions so far (the next one's attempt number follows from it).
    submissions: u32,
    /// Whether its records were counted (on its first success).
    counted: bool,
    /// Times it came back because its shuffle input could not be fetched.
    fetch_failures: u32,
}

/// One stage of a run: its tasks, and how many of them are finished (with their output).
#[derive(Debug, Clone)]
struct StageRun {
    tasks: Vec<Task>,
    finished: usize,
}

impl StageRun {
    fn complete(&self) -> bool {
        self.finished == self.tasks.len()
    }
}

/// A task to submit now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Submission {
    pub stage: usize,
    pub partition: u32,
    pub attempt: u32,
    /// Whether it runs again because its finished output was lost.
    pub recompute: bool,
}

/// What a task's first success changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finished {
    /// Records to count (zero when the task had succeeded before in this run).
    pub records: u64,
    /// Whether its stage is now complete.
    pub stage_complete: bool,
    /// Shuffle bytes the task wrote (map tasks; every successful attempt counts, as written).
    pub shuffle_bytes: u64,
}

/// A run's input snapshot: for each file source (pattern) its files by partition.
pub(crate) type Inputs = BTreeMap<String, Vec<Vec<FileSlice>>>;

/// List every file source the stages read, once each (stages of one pipeline, e.g. a sort's
/// sample and partitioning stages, share a source and so its snapshot).
pub(crate) fn snapshot_inputs(stages: &[StageDef]) -> Result<Inputs, SnapshotError> {
    let mut inputs = Inputs::new();
    for s in stages {
        for pattern in &s.inputs {
            if !inputs.contains_key(pattern) {
                inputs.insert(pattern.clone(), snapshot(pattern, s.partitions)?);
            }
        }
    }
    Ok(inputs)
}

/// One run in flight.
pub(crate) struct RunState {
    pub due: Duration,
    /// Records read by the run's tasks (each task counted once).
    pub records: u64,
    /// The run's input snapshot: for each file source (pattern) its files by partition.
    pub inputs: Inputs,
    /// The run's Kafka plan: for each Kafka source (its index in the app) the ranges by
    /// partition.
    pub kafka: BTreeMap<u32, Vec<SlotPlan>>,
    /// The durable number of the run's Kafka micro-batch, when it reads Kafka records (every
    /// task of the run gets it: output written under it replaces a restarted run's own).
    pub kafka_batch: Option<u64>,
    /// The identity of the numbering `kafka_batch` (else the run number) belongs to (see
    /// `TaskContext::output_epoch`).
    pub epoch: String,
    /// Source timestamps of the records the run's tasks read (sources that have them: Kafka).
    /// Merging is idempotent for what is reported (oldest and mean): a retried or recomputed
    /// task reads exactly the records its first attempt did.
    pub event_times: Option<EventTimes>,
    stages: Vec<StageRun>,
}

impl RunState {
    pub fn new(due: Duration, stages: &[StageDef]) -> Self {
        let task = Task {
            part: Part::Waiting,
            submissions: 0,
            counted: false,
            fetch_failures: 0,
        };
        Self {
            due,
            records: 0,
            inputs: Inputs::new(),
            kafka: BTreeMap::new(),
            kafka_batch: None,
            epoch: String::new(),
            event_times: None,
            stages: stages
                .iter()
                .map(|s| StageRun {
                    tasks: vec![task.clone(); s.partitions as usize],
                    finished: 0,
                })
                .collect(),
        }
    }

    /// Files and bytes of the run's input snapshot.
    pub fn input_totals(&self) -> InputSnapshot {
        let mut t = InputSnapshot::default();
        for f in self.inputs.values().flatten().flatten() {
            t.files += 1;
            t.bytes = t.bytes.saturating_add(f.len);
        }
        t
    }

    /// The Kafka offset ranges task `partition` of a stage reading Kafka sources `sources`
    /// reads in this run.
    pub fn kafka_of(&self, sources: &[u32], partition: u32) -> Vec<OffsetRange> {
        sources
            .iter()
            .filter_map(|i| self.kafka.get(i)?.get(partition as usize))
            .flatten()
            .copied()
            .collect()
    }

    /// The files task `partition` of a stage reading `patterns` reads in this run.
    pub fn files_of(&self, patterns: &[String], partition: u32) -> Vec<FileSlice> {
        patterns
            .iter()
            .filter_map(|p| self.inputs.get(p)?.get(partition as usize))
            .flatten()
            .cloned()
            .collect()
    }

    /// Whether every output (or result) of stage `s` is available.
    pub fn complete(&self, s: usize) -> bool {
        self.stages.get(s).is_some_and(StageRun::complete)
    }

    /// Whether the result stage is complete: the run can commit.
    pub fn done(&self) -> bool {
        self.stages.last().is_none_or(StageRun::complete)
    }

    /// Which stages are needed (module rules): the result stage, and what incomplete needed
    /// stages read.
    fn needed(&self, defs: &[StageDef]) -> Vec<bool> {
        let mut needed = vec![false; defs.len()];
        let mut frontier: Vec<usize> = defs.len().checked_sub(1).into_iter().collect();
        while let Some(s) = frontier.pop() {
            if std::mem::replace(&mut needed[s], true) || self.complete(s) {
                continue;
            }
            frontier.extend(defs[s].reads.iter().map(|&r| r as usize));
        }
        needed
    }

    /// Mark every task that can run now as submitted and return them, one set per stage,
    /// earliest stage first: the waiting and lost tasks of needed stages whose inputs are
    /// complete.
    pub fn submit_ready(&mut self, defs: &[StageDef]) -> Vec<Vec<Submission>> {
        let needed = self.needed(defs);
        let mut sets = Vec::new();
        for (s, def) in defs.iter().enumerate() {
            if !needed[s] || !def.reads.iter().all(|&r| self.complete(r as usize)) {
                continue;
            }
            let mut set = Vec::new();
            for (p, t) in self.stages[s].tasks.iter_mut().enumerate() {
                let recompute = match t.part {
                    Part::Waiting => false,
                    Part::Lost => true,
                    Part::Submitted | Part::Output(_) | Part::Result(_) => continue,
                };
                set.push(Submission {
                    stage: s,
                    partition: p as u32,
                    attempt: t.submissions.saturating_mul(RESUBMIT_ATTEMPT),
                    recompute,
                });
                t.submissions = t.submissions.saturating_add(1);
                t.part = Part::Submitted;
            }
            if !set.is_empty() {
                sets.push(set);
            }
        }
        sets
    }

    /// Task (`s`, `p`) succeeded on `executor` with `result` (a [`MapStatus`] when its stage
    /// writes a shuffle) after reading `records`. `None` when it had already finished (a
    /// duplicate: the first result wins) or is not part of the run.
    pub fn finish(
        &mut self,
        (s, p): (usize, usize),
        executor: &str,
        result: Vec<u8>,
        writes_shuffle: bool,
        records: u64,
    ) -> Option<Finished> {
        let stage = self.stages.get_mut(s)?;
        let t = stage.tasks.get_mut(p)?;
        if matches!(t.part, Part::Output(_) | Part::Result(_)) {
            return None;
        }
        let mut shuffle_bytes = 0;
        t.part = if writes_shuffle {
            // Checked before the success was accepted (`JobManager::check_result`).
            let status: MapStatus = postcard::from_bytes(&result).unwrap_or_default();
            shuffle_bytes = status
                .bytes
                .iter()
                .fold(0u64, |sum, b| sum.saturating_add(*b));
            Part::Output(Output {
                executor: executor.to_string(),
                status,
            })
        } else {
            Part::Result(result)
        };
        stage.finished += 1;
        let records = if std::mem::replace(&mut t.counted, true) {
            0
        } else {
            records
        };
        self.records = self.records.saturating_add(records);
        Some(Finished {
            records,
            stage_complete: stage.complete(),
            shuffle_bytes,
        })
    }

    /// Task (`s`, `p`) came back unrun (its inputs are lost): hold it. `false` when it has
    /// finished meanwhile (a stale hand-back) or is not part of the run.
    pub fn hand_back(&mut self, (s, p): (usize, usize)) -> bool {
        let Some(t) = self.stages.get_mut(s).and_then(|st| st.tasks.get_mut(p)) else {
            return false;
        };
        match t.part {
            Part::Submitted => t.part = Part::Waiting,
            Part::Waiting | Part::Lost => {}
            Part::Output(_) | Part::Result(_) => return false,
        }
        true
    }

    /// Count a fetch failure of task (`s`, `p`); returns how many it has had in this run.
    pub fn note_fetch_failure(&mut self, (s, p): (usize, usize)) -> u32 {
        match self.stages.get_mut(s).and_then(|st| st.tasks.get_mut(p)) {
            Some(t) => {
                t.fetch_failures = t.fetch_failures.saturating_add(1);
                t.fetch_failures
            }
            None => 0,
        }
    }

    /// Forget the map outputs held by `executor` in stages `only` (every stage if `None`): their
    /// tasks must run again. Returns how many were lost.
    pub fn lose(&mut self, executor: &str, only: Option<&[u32]>) -> usize {
        let mut lost = 0;
        for (s, stage) in self.stages.iter_mut().enumerate() {
            if only.is_some_and(|o| !o.contains(&(s as u32))) {
                continue;
            }
            for t in &mut stage.tasks {
                if matches!(&t.part, Part::Output(o) if o.executor == executor) {
                    t.part = Part::Lost;
                    stage.finished -= 1;
                    lost += 1;
                }
            }
        }
        lost
    }

    /// The outputs of map stage `s` by partition (`None` where one is missing).
    pub fn outputs(&self, s: usize) -> impl Iterator<Item = Option<&Output>> {
        self.stages
            .get(s)
            .into_iter()
            .flat_map(|st| &st.tasks)
            .map(|t| match &t.part {
                Part::Output(o) => Some(o),
                _ => None,
            })
    }

    /// The result stage's results by partition, for the commit.
    pub fn take_results(&mut self) -> Vec<Vec<u8>> {
        let Some(last) = self.stages.last_mut() else {
            return Vec::new();
        };
        last.tasks
            .iter_mut()
            .map(|t| match std::mem::replace(&mut t.part, Part::Waiting) {
                Part::Result(r) => r,
                _ => Vec::new(),
            })
            .collect()
    }

    /// Executors holding at least a third of the input bytes of partition `p` of stage `s`,
    /// most bytes first (no preference for a stage that reads no shuffle).
    pub fn preferred(&self, defs: &[StageDef], s: usize, p: u32) -> Vec<String> {
        let mut by_exec: BTreeMap<&str, u64> = BTreeMap::new();
        for &r in &defs[s].reads {
            for o in self.outputs(r as usize).flatten() {
                let b = o.status.bytes.get(p as usize).copied().unwrap_or(0);
                let e = by_exec.entry(&o.executor).or_default();
                *e = e.saturating_add(b);
            }
        }
        let total: u64 = by_exec.values().fold(0u64, |s, b| s.saturating_add(*b));
        let mut v: Vec<(&str, u64)> = by_exec
            .into_iter()
            .filter(|(_, b)| total > 0 && u128::from(*b) * 3 >= u128::from(total))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.into_iter().map(|(e, _)| e.to_string()).collect()
    }
}
