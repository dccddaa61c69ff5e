//! Identifiers shared by driver, executors and the wire protocol.

use crate::error::Error;
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

/// Longest executor id: a DNS subdomain name (Kubernetes pod names are at most this long).
pub const MAX_EXECUTOR_ID: usize = 253;

/// Check an executor id: 1 to [`MAX_EXECUTOR_ID`] characters of `A-Z a-z 0-9 . _ -`, not
/// starting with `.` or `-`. Ids end up in file names (spill directories), metric labels and
/// logs, so anything else (path separators, control characters, megabytes of text) is refused.
///
/// # Errors
/// [`Error::ExecutorId`] saying what is wrong with `id`.
pub fn check_executor_id(id: &str) -> Result<(), Error> {
    let bad = |why: String| Err(Error::ExecutorId(why));
    if id.is_empty() {
        return bad("executor id is empty".into());
    }
    if id.len() > MAX_EXECUTOR_ID {
        return bad(format!(
            "executor id is {} bytes long (at most {MAX_EXECUTOR_ID})",
            id.len()
        ));
    }
    if id.starts_with(['.', '-']) {
        return bad(format!("executor id `{id}` starts with `.` or `-`"));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => bad(format!(
            "executor id `{}` contains {c:?} (allowed: A-Z a-z 0-9 . _ -)",
            id.escape_debug()
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executor_ids_are_bounded_in_length_and_charset() {
        for ok in [
            "exec-0",
            "fraud-executor-12",
            "a",
            "x.y_z",
            &"a".repeat(253),
        ] {
            assert!(check_executor_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../etc",
            "a/b",
            "-x",
            ".x",
            "a b",
            "é",
            "a\nb",
            &"a".repeat(254),
        ] {
            assert!(check_executor_id(bad).is_err(), "{bad:?}");
        }
        let e = check_executor_id("a/b").unwrap_err().to_string();
        assert!(e.contains("'/'"), "{e}");
    }
}
