//! The Neptune wire protocol: generated gRPC types plus conversions to core ids.

#![allow(missing_docs, clippy::all, reason = "generated code")]

/// Generated from `proto/neptune.proto`.
pub mod v1 {
    tonic::include_proto!("neptune.v1");
}

pub use v1::*;

use neptune_core::ids::TaskId;

impl TaskKey {
    /// The wire key for `id` at `attempt`.
    pub fn new(id: TaskId, attempt: u32) -> Self {
        TaskKey {
            job: id.job,
            run: id.run,
            stage: id.stage,
            partition: id.partition,
            attempt,
        }
    }

    /// The task id this key names.
    pub fn id(&self) -> TaskId {
        TaskId {
            job: self.job,
            run: self.run,
            stage: self.stage,
            partition: self.partition,
        }
    }
}
