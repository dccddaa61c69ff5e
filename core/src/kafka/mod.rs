//! Kafka as a stream source (Spark Structured Streaming's offset model), on a real Kafka client
//! (`rskafka`, pure Rust; see `docs/dataplane.md` for the choice).
//!
//! Model: the driver plans each micro-batch of a job reading a Kafka source as exact offset
//! ranges `[from, until)` per topic partition — from where the previous micro-batch ended up to
//! the latest offsets its poller saw, capped by `kafka.max_records_per_batch` — logs the plan in
//! the checkpoint directory *before* any task runs ([`checkpoint`]) and sends each task its ranges
//! in the launch parameters. A task reads exactly its ranges, so a retried or recomputed task
//! reads the same records; a restarted driver re-runs a planned but uncommitted micro-batch with
//! the same ranges. Offsets advance only when the micro-batch commits. Network I/O runs on the
//! Kafka I/O runtime ([`io`]), never on a task coroutine nor on the driver's event loop. The
//! client connects in plaintext, over TLS and/or with SASL as [`security`] describes.

pub mod checkpoint;
pub mod io;
pub mod keys;
pub mod plan;
pub mod security;
pub mod sink;
pub mod source;

pub use plan::{Available, OffsetRange, PartitionOffsets, SlotPlan, StartingOffsets};
pub use security::Connection;
pub use source::{KafkaRecord, KafkaSource, SourceStatus};

/// A fresh random id naming a numbering of micro-batches or runs (16 hex digits; see
/// [`TaskContext::output_epoch`](crate::task::TaskContext::output_epoch)).
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What goes wrong talking to Kafka.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaError {
    /// The brokers cannot be reached or refused a request (retried by the callers).
    #[error("Kafka broker: {0}")]
    Broker(String),
    /// The topic does not exist.
    #[error("Kafka topic `{0}` does not exist")]
    NoTopic(String),
    /// Records of a planned range are gone (deleted or the topic was recreated).
    #[error("{0}")]
    Lost(String),
    /// The task was killed while waiting for the broker.
    #[error("killed while waiting for the Kafka broker")]
    Killed,
    /// The checkpoint directory cannot be read or written.
    #[error("Kafka checkpoint: {0}")]
    Checkpoint(String),
}
