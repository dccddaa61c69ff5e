//! Identifiers shared by driver, executors and the wire protocol.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use neptune_config::JobKind;

/// Index of a job in its [`App`](crate) (same order on driver and executors: same binary, same code).
pub type JobId = u32;

/// One task: a partition of a stage of one run (micro-batch for stream jobs, epoch for batch jobs).
///
/// Ordering is (job, run, stage, partition), which is also submission order within a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    /// Job index in the app.
    pub job: JobId,
    /// Run number: micro-batch index (stream) or epoch (batch), from 0.
    pub run: u64,
    /// Stage index within the job's plan.
    pub stage: u32,
    /// Partition index within the stage.
    pub partition: u32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "j{}.r{}.s{}.p{}",
            self.job, self.run, self.stage, self.partition
        )
    }
}

/// Executor identity, unique within an app (`exec-0`, a pod name, ...).
pub type ExecutorId = String;
