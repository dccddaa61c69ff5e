//! A job's plan: the stages a dataset's lineage splits into at shuffle boundaries.
//!
//! The stages form a DAG through their `reads`, which name the earlier map stages whose outputs
//! a stage's tasks fetch, by input slot; the driver sends their locations in `Launch.params`. A
//! stage runs once every stage it reads is complete, so independent stages (a join's two sides)
//! run at the same time. A stage either writes a shuffle (its tasks are shuffle-map tasks whose
//! results are [`MapStatus`](crate::shuffle::MapStatus)es) or is the job's last stage (its task
//! results are what the job's commit merges).

use crate::action::TaskFn;

/// One stage of a job's plan: `partitions` tasks running `run_task`.
#[derive(Clone)]
pub struct StageDef {
    /// Tasks per run of this stage.
    pub partitions: u32,
    /// What each task runs.
    pub run_task: TaskFn,
    /// Map stages (indices in the job's stage list) whose outputs this stage reads, by slot.
    pub reads: Vec<u32>,
    /// For a shuffle-map stage: the number of reduce partitions it writes; `None` for the last
    /// stage.
    pub shuffle_out: Option<u32>,
    /// Stream receivers (indices in the app's [`receivers`](crate::App::receivers)) whose
    /// data this stage's tasks read: the driver sends where each one runs in `Launch.params`
    /// and prefers that executor for the tasks.
    pub receivers: Vec<u32>,
    /// File sources (their patterns) this stage's tasks read: the driver lists each once per run
    /// and sends every task its files in `Launch.params` (see [`crate::source_snapshot`]).
    pub inputs: Vec<String>,
    /// Kafka sources (indices in the app's [`kafka_sources`](crate::App::kafka_sources)) this
    /// stage's tasks read: the driver plans their offset ranges per run and sends every task
    /// its own in `Launch.params`.
    pub kafka: Vec<u32>,
}

impl std::fmt::Debug for StageDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageDef")
            .field("partitions", &self.partitions)
            .field("reads", &self.reads)
            .field("shuffle_out", &self.shuffle_out)
            .field("receivers", &self.receivers)
            .field("inputs", &self.inputs)
            .field("kafka", &self.kafka)
            .finish()
    }
}

/// Append `more` (a lineage built on its own, whose `reads` index into itself) after `base`,
/// renumbering its reads. Returns the offset `more`'s stages got.
pub(crate) fn append_lineage(base: &mut Vec<StageDef>, more: &[StageDef]) -> u32 {
    let offset = base.len() as u32;
    base.extend(more.iter().map(|s| StageDef {
        reads: s.reads.iter().map(|r| r + offset).collect(),
        ..s.clone()
    }));
    offset
}
