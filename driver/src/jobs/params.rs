//! What travels with a task: the parameters of its launch (where the shuffle outputs and
//! receivers it reads are, and its files of the run's input snapshot) and the check of what its success reports (a map task's status).

use super::JobManager;
use neptune_core::ids::TaskId;
use neptune_core::shuffle::{MapLoc, ShuffleRead};
use neptune_core::source_snapshot::LaunchParams;
use neptune_core::source_socket::RECEIVER_STAGE;

/// Why a task must not launch now (see [`JobManager::params_for`]).
#[derive(Debug, thiserror::Error)]
pub enum LaunchBlocked {
    /// Its run committed or failed: the task is stale and is dropped.
    #[error("its run is over")]
    RunOver,
    /// A map output it reads was lost and is not recomputed yet: it is held until it is.
    #[error("a map output it reads is lost")]
    InputLost,
    /// A map output it reads lives on an executor that has no block server address any more
    /// (it is gone): that executor's outputs are lost and recomputed.
    #[error("a map output it reads lives on executor {0}, which is gone")]
    ExecutorGone(String),
    /// Its launch parameters could not be encoded.
    #[error("launch parameters do not encode")]
    Encode(#[source] postcard::Error),
}

/// Why a reported result cannot be the task's (see [`JobManager::check_result`]): the attempt
/// fails with this as its reason.
#[derive(Debug, thiserror::Error)]
pub enum InvalidResult {
    /// A map task's result is not a map status.
    #[error("map task {task} returned a map status that does not decode: {source}")]
    Undecodable {
        /// The map task.
        task: TaskId,
        /// Why it does not decode.
        source: postcard::Error,
    },
    /// A map status with another number of block sizes than its shuffle has partitions.
    #[error("map task {task} reported {got} block sizes for a shuffle of {want} partitions")]
    WrongPartitions {
        /// The map task.
        task: TaskId,
        /// Block sizes reported.
        got: usize,
        /// Partitions of the shuffle.
        want: u32,
    },
}

impl JobManager {
    /// Launch parameters of task `id`: where the map outputs its stage reads live, with each
    /// executor's block server address from `addr_of`, then where the receivers it reads run
    /// (stage `RECEIVER_STAGE | index`; no location when the receiver is not placed, which
    /// fails the task with a message naming the receiver), then, for a stage reading a file
    /// source, the task's files of the run's input snapshot ([`LaunchParams`]). A launch too
    /// large for `grpc.max_message_bytes` (a run of very many files over few partitions) fails
    /// the job with a message naming that limit (checked by the caller).
    ///
    /// # Errors
    /// [`LaunchBlocked`] when the task must not launch now; the caller returns it to the
    /// scheduler and calls [`JobManager::task_returned`] (naming the executor for
    /// [`LaunchBlocked::ExecutorGone`]).
    pub fn params_for(
        &self,
        id: TaskId,
        addr_of: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<u8>, LaunchBlocked> {
        let j = id.job as usize;
        let st = self
            .jobs
            .get(j)
            .and_then(|job| job.active.get(&id.run))
            .ok_or(LaunchBlocked::RunOver)?;
        let stage = self.app.jobs()[j]
            .stages
            .get(id.stage as usize)
            .ok_or(LaunchBlocked::RunOver)?;
        let mut out = Vec::with_capacity(stage.reads.len() + stage.receivers.len());
        for &r in &stage.reads {
            let maps = st
                .outputs(r as usize)
                .map(|o| {
                    let o = o.ok_or(LaunchBlocked::InputLost)?;
                    let addr = addr_of(&o.executor)
                        .ok_or_else(|| LaunchBlocked::ExecutorGone(o.executor.clone()))?;
                    Ok(MapLoc {
                        executor: o.executor.clone(),
                        addr,
                        max_block: o.status.bytes.iter().copied().max().unwrap_or(0),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(ShuffleRead { stage: r, maps });
        }
        for &r in &stage.receivers {
            let maps = self.receivers[r as usize]
                .as_ref()
                .and_then(|e| {
                    Some(MapLoc {
                        executor: e.clone(),
                        addr: addr_of(e)?,
                        // A cut's size is known only to its receiver: the fetch cap bounds it.
                        max_block: u64::MAX,
                    })
                })
                .into_iter()
                .collect();
            out.push(ShuffleRead {
                stage: RECEIVER_STAGE | r,
                maps,
            });
        }
        let params = LaunchParams {
            reads: out,
            // The task's share of the run's input snapshot (listed when the run began).
            files: (!stage.inputs.is_empty()).then(|| st.files_of(&stage.inputs, id.partition)),
            // The task's ranges of the micro-batch's Kafka plan (made when the run began).
            kafka: st.kafka_of(&stage.kafka, id.partition),
            kafka_batch: st.kafka_batch,
            // Every task gets it: a sink deduplicating by batch number keys by it too.
            epoch: st.epoch.clone(),
        };
        postcard::to_stdvec(&params).map_err(LaunchBlocked::Encode)
    }

    /// Whether `result` is a result task `id` can have: a map task's must be a [`MapStatus`]
    /// with one size per reduce partition of its shuffle. Checked before a success is accepted,
    /// so a malformed report fails the attempt instead of poisoning the run.
    ///
    /// # Errors
    /// [`InvalidResult`] saying what is wrong with the result.
    pub fn check_result(&self, id: TaskId, result: &[u8]) -> Result<(), InvalidResult> {
        let Some(stage) = self
            .app
            .jobs()
            .get(id.job as usize)
            .and_then(|d| d.stages.get(id.stage as usize))
        else {
            return Ok(()); // not a task of this app: the scheduler never knew it
        };
        let Some(reduces) = stage.shuffle_out else {
            return Ok(());
        };
        let status: neptune_core::shuffle::MapStatus = postcard::from_bytes(result)
            .map_err(|source| InvalidResult::Undecodable { task: id, source })?;
        if status.bytes.len() != reduces as usize {
            return Err(InvalidResult::WrongPartitions {
                task: id,
                got: status.bytes.len(),
                want: reduces,
            });
        }
        Ok(())
    }
}
