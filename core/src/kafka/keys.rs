//! Config keys of the Kafka source and sink, read by the apps that offer one (`KEY.get(cfg)`);
//! they appear in an app's reference when the app reads them.

use neptune_config::{Flag, Meta, Text, UInt};

/// Brokers.
pub static BOOTSTRAP: Text = Text::new(Meta::new(
    "kafka.bootstrap",
    "Comma-separated `host:port` list of Kafka bootstrap brokers (TLS and SASL: `kafka.security.protocol`).",
));
/// Topic read.
pub static TOPIC: Text = Text::new(Meta::new(
    "kafka.topic",
    "Kafka topic the stream job reads (it must exist).",
));
/// Where a job without a checkpoint starts.
pub static STARTING_OFFSETS: Text = Text::new(Meta::new(
    "kafka.starting_offsets",
    "Where a job without committed offsets starts: `earliest`, `latest` or JSON `{\"<partition>\": <offset>}` (-2: earliest, -1: latest), as Spark's `startingOffsets`.",
))
.default("earliest");
/// Cap per micro-batch.
pub static MAX_RECORDS_PER_BATCH: UInt = UInt::new(
    Meta::new(
        "kafka.max_records_per_batch",
        "Most records (offsets) one micro-batch reads, shared by the partitions in proportion to their backlog (0: no cap).",
    ),
    0,
    u64::MAX,
)
.default(0);
/// Split long ranges.
pub static MAX_RECORDS_PER_TASK: UInt = UInt::new(
    Meta::new(
        "kafka.max_records_per_task",
        "A partition's range longer than this is split over several tasks of the micro-batch.",
    ),
    1,
    u64::MAX,
)
.default(100_000);
/// Offset polling.
pub static POLL_INTERVAL_MS: UInt = UInt::new(
    Meta::new(
        "kafka.poll_interval_ms",
        "How often the driver asks the brokers for the topic's latest offsets: a micro-batch reads up to what the last poll saw, so a record waits up to this long before one plans it. Keep it well under the micro-batch interval (`neptune bench --source kafka` uses 10 at 40 ms).",
    ),
    1,
    60_000,
)
.default(100)
.unit("ms");
/// Checkpoint directory.
pub static CHECKPOINT: Text = Text::new(Meta::new(
    "kafka.checkpoint",
    "Directory where the driver logs each micro-batch's offset ranges before it runs and marks it committed; a restarted app resumes from it (unset: offsets live in memory only).",
));
/// Deleted records.
pub static FAIL_ON_DATA_LOSS: Flag = Flag::new(
    Meta::new(
        "kafka.fail_on_data_loss",
        "Fail the job when records were deleted (retention) before they were read; `false` skips them and counts them.",
    ),
    true,
);
/// Topic written by the sink.
pub static SINK_TOPIC: Text = Text::new(Meta::new(
    "kafka.sink.topic",
    "Kafka topic the app writes its stream output to, exactly once per micro-batch (records marked with a `neptune-output` header; see docs/dataplane.md); it must exist.",
));
/// Brokers of the sink.
pub static SINK_BOOTSTRAP: Text = Text::new(Meta::new(
    "kafka.sink.bootstrap",
    "Comma-separated `host:port` list of the Kafka brokers the sink writes to (unset: `kafka.bootstrap`).",
));
