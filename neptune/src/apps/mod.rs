//! Built-in example apps, registered by name in the default `neptune` binary.

pub mod fraud;
pub mod shuffle;
pub mod synthetic;
pub mod wordcount;

use neptune_core::AppEntry;

/// Every app built into the `neptune` binary.
pub const BUILTIN: &[AppEntry] = &[
    AppEntry {
        name: "fraud-detection",
        description: "batch retrains a logistic-regression model; stream scores transactions with it",
        build: fraud::build,
    },
    AppEntry {
        name: "synthetic",
        description: "CPU-bound stream and batch jobs with configurable size and cost (benchmarks)",
        build: synthetic::build,
    },
    AppEntry {
        name: "shuffle",
        description: "generated (key, 1) records summed per key with reduce_by_key, or sorted with sort_by_key (shuffle.op=sort; shuffle benchmark)",
        build: shuffle::build,
    },
    AppEntry {
        name: "wordcount",
        description: "batch word count over text files (input=, output=); stream counts of a watched directory (stream.dir=), a TCP socket (stream.socket=) and a Kafka topic (kafka.topic=)",
        build: wordcount::build,
    },
];
