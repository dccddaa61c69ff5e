//! One run's progress through its stages, and lineage recovery: where every map output of the
//! run lives, which outputs a lost executor took with it, and which map tasks must run again
//! (and in which order) before the tasks waiting for them can be resubmitted.
//!
//! Rules. A map output is *needed* while a stage at or after the current one reads its stage
//! (directly, or through a needed stage whose outputs are also missing). Lost needed outputs are
//! recomputed earliest stage first, each stage only once its own inputs are complete. Tasks of
//! the current stage that could not fetch their inputs are *held* (the scheduler forgot them)
//! and resubmitted once nothing they read is missing. Resubmitted tasks get attempt numbers
//! from [`RESUBMIT_ATTEMPT`] up, distinct from the scheduler's own re-queue attempts.

use neptune_core::app::StageDef;
use neptune_core::shuffle::MapStatus;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Attempt numbers of resubmissions start at multiples of this.
pub const RESUBMIT_ATTEMPT: u32 = 1000;

/// Where one map task's output lives.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub executor: String,
    pub status: MapStatus,
}

pub(crate) struct RunState {
    pub due: Duration,
    pub stage: usize,
    pub results: Vec<Option<Vec<u8>>>,
    pub remaining: usize,
    pub records: u64,
    /// Per stage, per partition: the map output (shuffle-writing stages only).
    pub outputs: Vec<Vec<Option<Output>>>,
    /// Map tasks of earlier stages submitted again for lost outputs.
    pub recomputing: BTreeSet<(usize, u32)>,
    /// Current-stage partitions waiting for lost inputs.
    pub held: BTreeSet<u32>,
    /// Resubmissions per (stage, partition), for attempt numbers.
    pub resubmits: HashMap<(usize, u32), u32>,
}

impl RunState {
    pub fn new(due: Duration, stages: &[StageDef]) -> Self {
        Self {
            due,
            stage: 0,
            results: Vec::new(),
            remaining: 0,
            records: 0,
            outputs: stages
                .iter()
                .map(|s| vec![None; s.partitions as usize])
                .collect(),
            recomputing: BTreeSet::new(),
            held: BTreeSet::new(),
            resubmits: HashMap::new(),
        }
    }

    /// Whether every output of stage `r` is available.
    pub fn complete(&self, r: usize) -> bool {
        self.outputs[r].iter().all(Option::is_some)
    }

    /// Forget the outputs held by `executor` in stages `stages` (all stages if `None`). Returns
    /// the current-stage partitions whose finished output was lost (they must run again).
    pub fn lose(&mut self, executor: &str, stages: Option<&[u32]>) -> Vec<u32> {
        let mut rerun = Vec::new();
        for (s, outs) in self.outputs.iter_mut().enumerate() {
            if s > self.stage || stages.is_some_and(|st| !st.contains(&(s as u32))) {
                continue;
            }
            for (p, o) in outs.iter_mut().enumerate() {
                if o.as_ref().is_some_and(|o| o.executor == executor) {
                    *o = None;
                    if s == self.stage && self.results[p].take().is_some() {
                        self.remaining += 1;
                        rerun.push(p as u32);
                    }
                }
            }
        }
        rerun
    }

    /// The next attempt number for a resubmission of (stage, partition).
    pub fn next_attempt(&mut self, stage: usize, p: u32) -> u32 {
        let n = self.resubmits.entry((stage, p)).or_default();
        *n += 1;
        *n * RESUBMIT_ATTEMPT
    }

    /// Map tasks to run again now (earliest needed stage first), and whether the held tasks can
    /// be resubmitted.
    pub fn recovery_plan(&self, stages: &[StageDef]) -> (Vec<(usize, u32)>, bool) {
        let mut needed: BTreeSet<usize> = BTreeSet::new();
        let mut frontier: Vec<usize> = stages[self.stage..]
            .iter()
            .flat_map(|s| s.reads.iter().map(|&r| r as usize))
            .collect();
        while let Some(r) = frontier.pop() {
            if needed.insert(r) && !self.complete(r) {
                frontier.extend(stages[r].reads.iter().map(|&x| x as usize));
            }
        }
        let mut submit = Vec::new();
        for &r in &needed {
            if r >= self.stage || self.complete(r) {
                continue;
            }
            let inputs_ready = stages[r].reads.iter().all(|&x| self.complete(x as usize));
            if !inputs_ready {
                continue;
            }
            for (p, o) in self.outputs[r].iter().enumerate() {
                if o.is_none() && !self.recomputing.contains(&(r, p as u32)) {
                    submit.push((r, p as u32));
                }
            }
        }
        let reads_ready = stages[self.stage]
            .reads
            .iter()
            .all(|&r| self.complete(r as usize));
        (submit, reads_ready && self.recomputing.is_empty())
    }

    /// Executors holding at least a third of the input bytes of reduce partition `p` of the
    /// current stage, most bytes first.
    pub fn preferred(&self, stages: &[StageDef], p: u32) -> Vec<String> {
        let mut by_exec: BTreeMap<&str, u64> = BTreeMap::new();
        for &r in &stages[self.stage].reads {
            for o in self.outputs[r as usize].iter().flatten() {
                let b = o.status.bytes.get(p as usize).copied().unwrap_or(0);
                *by_exec.entry(&o.executor).or_default() += b;
            }
        }
        let total: u64 = by_exec.values().sum();
        let mut v: Vec<(&str, u64)> = by_exec
            .into_iter()
            .filter(|(_, b)| total > 0 && *b * 3 >= total)
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.into_iter().map(|(e, _)| e.to_string()).collect()
    }
}
