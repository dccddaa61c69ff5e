//! `synthetic`: CPU-bound stream and batch jobs with configurable task counts, per-record cost,
//! stream rate and interval — the workload for benchmarks and the scheduler integration tests.
//!
//! Every record is a seeded random `u64` put through `cost` rounds of a mixing function (real work
//! the optimiser cannot drop); each run's result is `(records, checksum)`, so a run disturbed by
//! suspensions, kills or lost executors can be compared exactly with an undisturbed one.
//!
//! With `source=kafka` the stream job reads its records from `kafka.topic` instead (the
//! `kafka.*` keys; one task per `stream.tasks` slot): every record's value is one `u64`, 8 bytes
//! big-endian, and any other value fails the job naming topic, partition and offset. `neptune
//! bench --source kafka` produces such records at `stream.rate` and reads the stream job's
//! source → commit latency from the report.
//!
//! Keys: see the settings below (`neptune config --app synthetic`, `docs/config.md`), and the
//! per-job keys `jobs.{batch,stream}.*` every app has. Memory pressure (the LMA benchmark):
//! `batch.retain_mb` makes every `batch.retain_every`-th batch task (by partition) allocate and
//! touch that many MiB for its whole life and declare them with
//! `TaskContext::set_retained_bytes`, so its executor's memory use (and, while it is suspended, its
//! retained bytes) show up in heartbeats.

use super::{Source, StreamLoad};
use neptune_core::config::{Choice, Meta, UInt};
use neptune_core::kafka::{self, KafkaRecord};
use neptune_core::source::generate;
use neptune_core::{App, Dataset};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Seed of the generated records.
pub static SEED: UInt = UInt::new(
    Meta::new("seed", "Seed of the generated records."),
    0,
    u64::MAX,
)
.default(42);
/// Batch tasks.
pub static BATCH_TASKS: UInt = UInt::new(
    Meta::new("batch.tasks", "Tasks of the batch job (0: no batch job)."),
    0,
    100_000,
)
.default(4);
/// Records per batch task.
pub static BATCH_RECORDS: UInt = UInt::new(
    Meta::new("batch.records", "Records per batch task."),
    1,
    u64::MAX,
)
.default(3_000_000);
/// Cost per batch record.
pub static BATCH_COST: UInt = UInt::new(
    Meta::new(
        "batch.cost",
        "Mixing rounds per batch record (a few ns each).",
    ),
    0,
    1_000_000,
)
.default(20);
/// Memory held per retaining batch task.
pub static RETAIN_MB: UInt = UInt::new(Meta::new("batch.retain_mb", "MiB each retaining batch task allocates, touches and holds for its whole life (must fit in `--memory`)."), 0, 1 << 20).default(0).unit("MiB");
/// Which batch tasks retain memory.
pub static RETAIN_EVERY: UInt = UInt::new(
    Meta::new(
        "batch.retain_every",
        "Every this many-th batch task (by partition) retains `batch.retain_mb`.",
    ),
    1,
    100_000,
)
.default(2);
/// Stream tasks per micro-batch.
pub static STREAM_TASKS: UInt = UInt::new(
    Meta::new(
        "stream.tasks",
        "Tasks per micro-batch of the stream job (0: no stream job).",
    ),
    0,
    100_000,
)
.default(2);
/// Where the stream job reads.
pub static SOURCE: Choice<Source> = Choice::new(
    Meta::new(
        "source",
        "Where the stream job reads: `generator` (seeded, `stream.rate` per second) or `kafka` (`kafka.topic`, each record's value one u64, 8 bytes big-endian; `stream.rate` is then the producer's business).",
    ),
    Source::Generator,
);

/// The `u64` a Kafka record of `topic` carries (its value, 8 bytes big-endian).
///
/// # Errors
/// Naming topic, partition and offset, when the value is not 8 bytes.
pub fn kafka_value(topic: &str, r: &KafkaRecord) -> Result<u64, String> {
    let bytes: [u8; 8] = r.value.as_slice().try_into().map_err(|_| {
        format!(
            "Kafka record {topic}/{} at offset {}: a {}-byte value, not an 8-byte u64",
            r.partition,
            r.offset,
            r.value.len()
        )
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// A run's result: how many records and a checksum over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Digest {
    /// Records processed.
    pub records: u64,
    /// Wrapping sum of every record's mixed value.
    pub checksum: u64,
}

/// `rounds` rounds of the SplitMix64 finaliser: a few ns each, impossible to constant-fold.
#[inline]
pub fn burn(mut x: u64, rounds: u32) -> u64 {
    for _ in 0..rounds {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

/// A buffer a batch task holds for its whole life (the memory-pressure scenario): really
/// allocated and touched, so it is resident, and declared as the task's retained bytes.
struct Retained(Vec<u8>);

impl Retained {
    fn new(ctx: &neptune_core::TaskContext, mb: u64, every: u32) -> Self {
        if !ctx.partition().is_multiple_of(every) {
            return Self(Vec::new());
        }
        let len = usize::try_from(mb << 20).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; len];
        // Touch every page so the memory is resident, not just reserved.
        for (i, page) in buf.chunks_mut(4096).enumerate() {
            page[0] = i as u8 | 1;
        }
        ctx.set_retained_bytes(len as u64);
        Self(buf)
    }

    /// Read one byte of the buffer per record (0 without a buffer), so it stays live.
    #[inline]
    fn probe(&self, x: u64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            u64::from(self.0[(x % self.0.len() as u64) as usize] & 1)
        }
    }
}

fn digest(ds: &Dataset<u64>) -> neptune_core::Action<Digest> {
    ds.action(
        |_, it| {
            it.fold(Digest::default(), |d, x| Digest {
                records: d.records + 1,
                checksum: d.checksum.wrapping_add(x),
            })
        },
        |parts| {
            parts.into_iter().fold(Digest::default(), |a, b| Digest {
                records: a.records + b.records,
                checksum: a.checksum.wrapping_add(b.checksum),
            })
        },
    )
}

/// Build the synthetic app.
///
/// # Errors
/// [`neptune_core::Error::Config`] naming the config key with a bad value.
pub fn build(app: &mut App) -> neptune_core::Result<()> {
    let c = app.config();
    let seed = SEED.get(c)?;
    let batch_tasks = BATCH_TASKS.get(c)? as u32;
    let batch_records = BATCH_RECORDS.get(c)?;
    let batch_cost = BATCH_COST.get(c)? as u32;
    let retain_mb = RETAIN_MB.get(c)?;
    let retain_every = RETAIN_EVERY.get(c)? as u32;
    let stream = StreamLoad::read(c, &STREAM_TASKS)?;
    let source = SOURCE.get(c)?;
    let kafka_cfg = (source == Source::Kafka && stream.tasks > 0)
        .then(|| kafka::source::SourceConfig::from_config("stream", c, stream.tasks))
        .transpose()?;
    app.require_task_memory(RETAIN_MB.meta.key, retain_mb.saturating_mul(1 << 20));

    if batch_tasks > 0 {
        let ds = generate(
            batch_tasks,
            seed,
            move |_, _| batch_records,
            |rng, _, _| rng.random::<u64>(),
        );
        let ds = if retain_mb == 0 {
            ds.map(move |x| burn(x, batch_cost))
        } else {
            ds.map_with(
                move |ctx| Retained::new(ctx, retain_mb, retain_every),
                move |buf, x| burn(x, batch_cost) ^ buf.probe(x),
            )
        };
        app.batch("batch", digest(&ds));
    }
    let records = match kafka_cfg {
        None => stream.records(seed),
        Some(cfg) => {
            let topic = cfg.topic.clone();
            let cost = stream.cost;
            let ds = app.kafka_source(cfg)?.records().try_map(move |r| {
                let x = kafka_value(&topic, &r)?;
                Ok(burn(x, cost))
            });
            Some(ds)
        }
    };
    if let Some(ds) = records {
        app.stream("stream", digest(&ds)).interval(stream.interval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use neptune_core::config::Config;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn builds_a_stream_and_a_batch_job_from_config() {
        let cfg = Config::from_args(&[
            "batch.tasks=3",
            "stream.tasks=1",
            "jobs.stream.interval_ms=100",
        ]);
        let app = neptune_core::app::build_app(
            super::super::BUILTIN,
            "synthetic",
            Arc::new(cfg.unwrap()),
        )
        .unwrap();
        assert_eq!(app.jobs().len(), 2);
        assert_eq!(app.jobs()[0].stages[0].partitions, 3);
        assert_eq!(app.jobs()[1].interval, Duration::from_millis(100));
        assert!(app.config().check_all_used().is_ok());
    }

    #[test]
    fn the_kafka_stream_reads_the_topic_and_refuses_values_that_are_not_a_u64() {
        let cfg = Config::from_args(&[
            "source=kafka",
            "kafka.bootstrap=127.0.0.1:9092",
            "kafka.topic=numbers",
            "stream.tasks=3",
            "batch.tasks=0",
        ])
        .unwrap();
        let app = neptune_core::app::build_app(super::super::BUILTIN, "synthetic", Arc::new(cfg))
            .unwrap();
        assert_eq!(app.jobs().len(), 1);
        assert_eq!(app.kafka_sources().len(), 1);
        assert_eq!(app.jobs()[0].stages[0].partitions, 3);
        assert!(app.config().check_all_used().is_ok());

        let record = |value: Vec<u8>| neptune_core::kafka::KafkaRecord {
            partition: 2,
            offset: 17,
            key: None,
            value,
            timestamp_ms: 0,
        };
        assert_eq!(
            super::kafka_value("numbers", &record(42u64.to_be_bytes().to_vec())),
            Ok(42)
        );
        let e = super::kafka_value("numbers", &record(b"42".to_vec())).unwrap_err();
        assert!(
            e.contains("numbers/2 at offset 17") && e.contains("2-byte"),
            "{e}"
        );
    }

    #[test]
    fn the_kafka_stream_needs_a_topic() {
        let cfg = Config::from_args(&["source=kafka", "kafka.bootstrap=127.0.0.1:9092"]).unwrap();
        let e = neptune_core::app::build_app(super::super::BUILTIN, "synthetic", Arc::new(cfg))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.topic"), "{e}");
    }

    #[test]
    fn bad_cost_names_the_key() {
        let cfg = Config::from_args(&["batch.cost=-1"]).unwrap();
        let e = neptune_core::app::build_app(super::super::BUILTIN, "synthetic", Arc::new(cfg))
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch.cost"), "{e}");
    }
}
