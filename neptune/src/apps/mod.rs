//! Built-in example apps, registered by name in the default `neptune` binary.

pub mod fraud;
pub mod shuffle;
pub mod synthetic;
pub mod wordcount;

use neptune_core::config::keys::JOB_INTERVAL_MS;
use neptune_core::config::{ChoiceError, Config, Meta, UInt};
use neptune_core::source::{generate, records_per_micro_batch};
use neptune_core::{AppEntry, Dataset};
use rand::Rng as _;
use std::time::Duration;

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

/// Where a stream job reads its records (`fraud-detection`'s `score`, `synthetic`'s `stream`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    strum::Display,
    strum::EnumString,
    strum::VariantNames,
    clap::ValueEnum,
)]
#[strum(serialize_all = "lowercase", parse_err_ty = ChoiceError, parse_err_fn = source_err)]
pub enum Source {
    /// Records the app generates itself, seeded, at its configured rate.
    #[default]
    Generator,
    /// Records of `kafka.topic` (the `kafka.*` keys).
    Kafka,
}

fn source_err(s: &str) -> ChoiceError {
    ChoiceError::of::<Source>(s)
}

/// Stream rate (`synthetic` and `shuffle`).
pub static STREAM_RATE: UInt = UInt::new(
    Meta::new(
        "stream.rate",
        "Stream records per second over all stream tasks.",
    ),
    1,
    u64::MAX,
)
.default(20_000);
/// Cost per stream record (`synthetic` and `shuffle`).
pub static STREAM_COST: UInt = UInt::new(
    Meta::new("stream.cost", "Mixing rounds per stream record."),
    0,
    1_000_000,
)
.default(20);

/// Default micro-batch interval of the generated stream job.
pub(crate) const STREAM_INTERVAL_MS: u64 = 200;

/// The generated CPU-bound stream job of `synthetic` and `shuffle`: `tasks` tasks per
/// micro-batch, each with its share of `rate` records per second, every record put through
/// `cost` rounds of [`synthetic::burn`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLoad {
    /// Tasks per micro-batch (0: no stream job).
    pub tasks: u32,
    /// Records per second over all tasks.
    pub rate: u64,
    /// Mixing rounds per record.
    pub cost: u32,
    /// Micro-batch interval (`jobs.stream.interval_ms`).
    pub interval: Duration,
}

impl StreamLoad {
    /// Read the stream job's four keys: the app's own `tasks` setting (its default and doc
    /// differ per app), `stream.rate`, `stream.cost` and `jobs.stream.interval_ms`.
    ///
    /// # Errors
    /// [`neptune_core::Error::Config`] naming the key with a bad value.
    pub fn read(c: &Config, tasks: &'static UInt) -> neptune_core::Result<Self> {
        Ok(Self {
            tasks: tasks.get(c)? as u32,
            rate: STREAM_RATE.get(c)?,
            cost: STREAM_COST.get(c)? as u32,
            interval: Duration::from_millis(
                JOB_INTERVAL_MS
                    .get_opt_for(c, "stream")?
                    .unwrap_or(STREAM_INTERVAL_MS),
            ),
        })
    }

    /// Each micro-batch's records, seeded from `seed`, after their mixing rounds; `None` when
    /// there is no stream job (`tasks` is 0).
    pub fn records(&self, seed: u64) -> Option<Dataset<u64>> {
        if self.tasks == 0 {
            return None;
        }
        let per_batch = records_per_micro_batch(self.rate, self.interval, self.tasks);
        let cost = self.cost;
        let ds = generate(
            self.tasks,
            seed ^ 0x5EED,
            move |_, _| per_batch,
            |rng, _, _| rng.random::<u64>(),
        );
        Some(ds.map(move |x| synthetic::burn(x, cost)))
    }
}
