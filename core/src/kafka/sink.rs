//! A Kafka sink writing each micro-batch's output to a topic exactly once, without Kafka
//! transactions (`rskafka` has none): idempotent writes keyed by a mark on every record.
//!
//! Every record written carries the header [`HEADER`] = `epoch/sink/batch/partition/seq`
//! ([`Mark`]): the numbering of the run (the Kafka source's checkpoint id, else an id drawn at
//! driver start; see [`TaskContext::output_epoch`]), the sink's name, the micro-batch's durable
//! number (else the run number), the task's partition and the record's sequence number in the
//! task's output for that topic partition. A task first computes its whole output, orders it
//! (by key, then value: the same records give the same sequence in every attempt), and for each
//! topic partition it writes to reads the partition's tail back to where its job's earlier
//! micro-batches end, to find how much of the same (epoch, sink, batch, partition) an earlier
//! attempt already wrote — a task retried after an executor died mid-write, or a micro-batch run
//! again after a driver restart — and writes only the rest. A produce call that fails (it may
//! or may not have been applied) is followed by the same tail read before anything is written
//! again. So each output record of a micro-batch lands in the topic exactly once, under these
//! assumptions (documented in `docs/dataplane.md`):
//!
//! - the micro-batch's output is deterministic (the same records from the same input; the
//!   order does not matter), as for `write_lines`' exactly-once across restarts;
//! - micro-batches of the job that write output do not overlap and an attempt the driver gave
//!   up on does not keep writing (true of a killed executor; Kafka-source jobs run one
//!   micro-batch with records at a time), so everything a micro-batch writes lies after the
//!   last record of the job's earlier micro-batches — the point where the tail read stops;
//! - the topic's partition count does not change while a micro-batch is retried (keyed records
//!   go to `murmur2(key) % partitions`, Kafka's default partitioner);
//! - records are not deleted (retention, compaction) before the retry reads them.
//!
//! Consumers see records as they are appended (no read-committed isolation): a micro-batch
//! retried after a failure appears in part and then whole, never twice. The tail read costs
//! one read of what was appended to the partition since the job's previous micro-batch; the
//! first micro-batch of a new numbering (a new checkpoint) reads the partition back to its
//! earliest record once.

use super::KafkaError;
use super::io;
use super::security::{Connection, Security};
use super::source::{MAX_BACKOFF, pause, wait};
use crate::action::Action;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::task::TaskContext;
use rskafka::record::Record;
use std::collections::BTreeMap;
use std::time::Duration;

/// The header each written record carries ([`Mark`]).
pub const HEADER: &str = "neptune-output";
/// Largest record (key + value) the sink writes: Kafka's default `message.max.bytes` is ≈ 1 MB,
/// and a record the broker refuses would otherwise be retried for ever.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Bytes per produce request (one record batch, appended whole or not at all).
const REQUEST_BYTES: usize = 512 << 10;
/// Records per produce request.
const REQUEST_RECORDS: usize = 1000;
/// Offsets read per step of the tail read, at first; doubled per step up to [`MAX_WINDOW`].
const FIRST_WINDOW: i64 = 256;
const MAX_WINDOW: i64 = 1 << 16;

/// Where a Kafka sink writes.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Name (in the records' marks: two sinks of an app must differ).
    pub name: String,
    /// Brokers and credentials (the `kafka.security.*`, `kafka.ssl.*` and `kafka.sasl.*` keys,
    /// shared with the source).
    pub connection: Connection,
    /// Topic written (it must exist).
    pub topic: String,
}

impl SinkConfig {
    /// The sink `name` as the `kafka.sink.*` keys of `cfg` describe it (`kafka.sink.bootstrap`
    /// defaults to `kafka.bootstrap`); `None` when `kafka.sink.topic` is unset.
    ///
    /// # Errors
    /// A config error naming the key at fault.
    pub fn from_config(name: &str, cfg: &crate::config::Config) -> Result<Option<Self>> {
        use super::keys::{BOOTSTRAP, SINK_BOOTSTRAP, SINK_TOPIC};
        let topic = SINK_TOPIC.get_opt(cfg)?.unwrap_or_default();
        let bootstrap = match SINK_BOOTSTRAP.get_opt(cfg)? {
            Some(b) if !b.trim().is_empty() => b,
            _ => BOOTSTRAP.get_opt(cfg)?.unwrap_or_default(),
        };
        let security = Security::from_config(cfg);
        if topic.trim().is_empty() {
            return Ok(None);
        }
        if bootstrap.trim().is_empty() {
            return Err(format!(
                "Kafka sink `{name}`: set `kafka.sink.bootstrap` (or `kafka.bootstrap`) for \
                 `kafka.sink.topic={topic}`"
            )
            .into());
        }
        Ok(Some(Self {
            name: name.to_string(),
            connection: Connection {
                bootstrap,
                security: security?,
            },
            topic,
        }))
    }
}

/// What [`HEADER`] holds: which output record of which attempt-independent task this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The run numbering's id.
    pub epoch: String,
    /// The sink's name.
    pub sink: String,
    /// Micro-batch (or run) number.
    pub batch: u64,
    /// Task partition.
    pub partition: u32,
    /// Sequence number in the task's output for the topic partition.
    pub seq: u64,
}

impl Mark {
    /// `epoch/sink/batch/partition/seq`.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{}/{}/{}/{}/{}",
            self.epoch, self.sink, self.batch, self.partition, self.seq
        )
        .into_bytes()
    }

    /// The mark in a header value; `None` for anything else (records of other writers).
    pub fn parse(v: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(v).ok()?;
        // The epoch has no `/`; the sink's name may: numbers are split off the right.
        let mut it = s.rsplitn(4, '/');
        let seq = it.next()?.parse().ok()?;
        let partition = it.next()?.parse().ok()?;
        let batch = it.next()?.parse().ok()?;
        let (epoch, sink) = it.next()?.split_once('/')?;
        Some(Self {
            epoch: epoch.to_string(),
            sink: sink.to_string(),
            batch,
            partition,
            seq,
        })
    }
}

/// The topic partition of a record: Kafka's default partitioner for a keyed record
/// (`toPositive(murmur2(key)) % partitions`), the task's partition for one without a key.
pub fn partition_for(key: Option<&[u8]>, task_partition: u32, partitions: i32) -> i32 {
    let n = partitions.max(1) as u32;
    let h = match key {
        Some(k) => murmur2::murmur2(k, murmur2::KAFKA_SEED) & 0x7fff_ffff,
        None => task_partition,
    };
    (h % n) as i32
}

/// What the tail read found of one task's output in one topic partition.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tail {
    /// Records of the task's output already written (the highest sequence number + 1).
    written: u64,
}

/// Read `topic`/`p` back from its end until a record of an earlier batch of the same (epoch,
/// sink) — everything of `mark`'s batch lies after it — or the earliest offset; count what an
/// earlier attempt of `mark`'s task wrote.
async fn read_tail(
    conn: &Connection,
    topic: &str,
    p: i32,
    mark: &Mark,
) -> Result<Tail, KafkaError> {
    let b = io::bounds(conn, topic, p).await?;
    let mut hi = b.latest;
    let mut window = FIRST_WINDOW;
    let mut tail = Tail::default();
    while hi > b.earliest {
        let lo = (hi - window).max(b.earliest);
        let mut at = lo;
        let mut older = false;
        while at < hi {
            let (records, _) = io::fetch(conn, topic, p, at).await?;
            let Some(last) = records.iter().map(|r| r.offset).max() else {
                break; // nothing readable below `hi` from here (deleted or control records)
            };
            if last < at {
                break;
            }
            for r in records {
                if r.offset < at || r.offset >= hi {
                    continue;
                }
                let Some(m) = r.record.headers.get(HEADER).and_then(|v| Mark::parse(v)) else {
                    continue;
                };
                if m.epoch != mark.epoch || m.sink != mark.sink {
                    continue;
                }
                if m.batch < mark.batch {
                    older = true;
                } else if m.batch == mark.batch && m.partition == mark.partition {
                    tail.written = tail.written.max(m.seq.saturating_add(1));
                }
            }
            at = (last + 1).min(hi);
        }
        if older {
            break;
        }
        hi = lo;
        window = (window * 2).min(MAX_WINDOW);
    }
    Ok(tail)
}

/// A key and a value to write.
pub type Output = (Option<Vec<u8>>, Vec<u8>);

impl<T: 'static> Dataset<T> {
    /// Sink: write each record, as `record` makes it a (key, value), to `sink`'s topic, exactly
    /// once per micro-batch (see the module docs for how and under which assumptions). The
    /// run's result is the number of records of the run's output (whether this attempt or an
    /// earlier one wrote them). A broker that does not answer is retried with back-off for as
    /// long as it takes (the micro-batch waits); a missing topic or a record over
    /// [`MAX_RECORD_BYTES`] fails the task.
    pub fn write_kafka(
        &self,
        sink: SinkConfig,
        record: impl Fn(&T) -> Output + Send + Sync + 'static,
    ) -> Action<u64> {
        self.action(
            move |ctx, it| {
                let out: Vec<Output> = it.map(|x| record(&x)).collect();
                if ctx.is_killed() || ctx.has_failed() {
                    return 0;
                }
                match write_task(ctx, &sink, out) {
                    Ok(n) => n,
                    Err(e) => {
                        ctx.fail(e);
                        0
                    }
                }
            },
            |parts| parts.into_iter().sum(),
        )
    }
}

/// Run `fut` on the Kafka I/O runtime until it succeeds, retrying broker errors with back-off;
/// `Ok(None)` when the task was killed meanwhile.
fn call<T: Send + 'static, F>(
    ctx: &TaskContext,
    what: &str,
    mut make: impl FnMut() -> F,
) -> Result<Option<T>>
where
    F: std::future::Future<Output = Result<T, KafkaError>> + Send + 'static,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(got) = wait(ctx, &io::start(make())) else {
            return Ok(None);
        };
        match got {
            Ok(v) => return Ok(Some(v)),
            Err(e @ KafkaError::NoTopic(_)) => return Err(Error::user(e)),
            Err(e) => {
                tracing::warn!(task = %ctx.id(), error = %e, "Kafka sink: {what} failed; retrying");
                if !pause(ctx, backoff) {
                    return Ok(None);
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn write_task(ctx: &TaskContext, sink: &SinkConfig, out: Vec<Output>) -> Result<u64> {
    let total = out.len() as u64;
    if out.is_empty() {
        return Ok(0);
    }
    if let Some((k, v)) = out
        .iter()
        .find(|(k, v)| k.as_ref().map_or(0, Vec::len) + v.len() > MAX_RECORD_BYTES)
    {
        return Err(Error::user(format!(
            "Kafka sink `{}`: a record of {} bytes (key {:?}…) is larger than {MAX_RECORD_BYTES} \
             bytes",
            sink.name,
            k.as_ref().map_or(0, Vec::len) + v.len(),
            k.as_deref()
                .map(|k| String::from_utf8_lossy(&k[..k.len().min(32)]).into_owned())
        )));
    }
    let (b, t) = (sink.connection.clone(), sink.topic.clone());
    let Some(partitions) = call(ctx, "list partitions", || {
        let (b, t) = (b.clone(), t.clone());
        async move { io::partition_count(&b, &t).await }
    })?
    else {
        return Ok(0);
    };
    let mut by_partition: BTreeMap<i32, Vec<Output>> = BTreeMap::new();
    for o in out {
        let p = partition_for(o.0.as_deref(), ctx.partition(), partitions);
        by_partition.entry(p).or_default().push(o);
    }
    let epoch = ctx.output_epoch();
    if epoch.is_empty() {
        return Err(Error::user(format!(
            "Kafka sink `{}`: the task has no output epoch (it must run under a driver)",
            sink.name
        )));
    }
    for (p, mut records) in by_partition {
        // The same records in the same order in every attempt: sequence numbers name records.
        records.sort_unstable();
        let mark = Mark {
            epoch: epoch.clone(),
            sink: sink.name.clone(),
            batch: ctx.output_batch(),
            partition: ctx.partition(),
            seq: 0,
        };
        if !write_partition(ctx, sink, p, &mark, &records)? {
            return Ok(total);
        }
    }
    Ok(total)
}

/// Write what an earlier attempt did not of `records` to topic partition `p`; `false` when the
/// task was killed meanwhile.
fn write_partition(
    ctx: &TaskContext,
    sink: &SinkConfig,
    p: i32,
    mark: &Mark,
    records: &[Output],
) -> Result<bool> {
    let mut backoff = Duration::from_millis(50);
    'read: loop {
        let (b, t, m) = (sink.connection.clone(), sink.topic.clone(), mark.clone());
        let Some(tail) = call(ctx, "read the partition's tail", || {
            let (b, t, m) = (b.clone(), t.clone(), m.clone());
            async move { read_tail(&b, &t, p, &m).await }
        })?
        else {
            return Ok(false);
        };
        let mut next = usize::try_from(tail.written).unwrap_or(usize::MAX);
        if next > records.len() {
            return Err(Error::user(format!(
                "Kafka sink `{}`: an earlier attempt of micro-batch {} wrote {} records of task \
                 partition {} to {}/{p}, this one has only {}: the job's output is not \
                 deterministic",
                sink.name,
                mark.batch,
                tail.written,
                mark.partition,
                sink.topic,
                records.len()
            )));
        }
        if next > 0 {
            tracing::info!(task = %ctx.id(), partition = p, written = next, of = records.len(),
                "Kafka sink: an earlier attempt wrote part of this output; writing the rest");
        }
        while next < records.len() {
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            while next + batch.len() < records.len() && batch.len() < REQUEST_RECORDS {
                let (k, v) = &records[next + batch.len()];
                let size = k.as_ref().map_or(0, Vec::len) + v.len();
                if !batch.is_empty() && bytes + size > REQUEST_BYTES {
                    break;
                }
                bytes += size;
                let m = Mark {
                    seq: (next + batch.len()) as u64,
                    ..mark.clone()
                };
                let mut r: Record = io::record(k.clone(), v.clone());
                r.headers.insert(HEADER.to_string(), m.encode());
                batch.push(r);
            }
            let n = batch.len();
            let (b, t) = (sink.connection.clone(), sink.topic.clone());
            let Some(got) = wait(
                ctx,
                &io::start(async move { io::produce(&b, &t, p, batch).await }),
            ) else {
                return Ok(false);
            };
            match got {
                Ok(_) => next += n,
                Err(e) => {
                    // The request may have been applied: read the tail again before writing.
                    tracing::warn!(task = %ctx.id(), error = %e, "Kafka sink: produce failed; retrying");
                    if !pause(ctx, backoff) {
                        return Ok(false);
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue 'read;
                }
            }
        }
        return Ok(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_other_headers_are_not_marks() {
        let m = Mark {
            epoch: "00c0ffee12345678".into(),
            sink: "alerts/eu".into(),
            batch: 42,
            partition: 3,
            seq: 17,
        };
        assert_eq!(Mark::parse(&m.encode()), Some(m));
        for bad in [
            &b"hello"[..],
            b"a/b/c/d",
            b"e/s/1/2/x",
            b"e/s/-1/2/3",
            &[0xff, b'/'],
        ] {
            assert_eq!(Mark::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keyed_records_go_where_kafkas_default_partitioner_puts_them() {
        // Kafka's `Utils.murmur2` test vectors (clients' UtilsTest).
        assert_eq!(
            murmur2::murmur2(b"21", murmur2::KAFKA_SEED) as i32,
            -973_932_308
        );
        assert_eq!(
            murmur2::murmur2(b"foobar", murmur2::KAFKA_SEED) as i32,
            -790_332_482
        );
        for key in [&b"21"[..], b"foobar", b"w7", b""] {
            let p = partition_for(Some(key), 9, 6);
            assert!((0..6).contains(&p));
            assert_eq!(
                p,
                partition_for(Some(key), 0, 6),
                "the task does not matter"
            );
        }
        assert_eq!(
            partition_for(None, 7, 3),
            1,
            "unkeyed: the task's partition"
        );
        assert_eq!(partition_for(Some(b"x"), 0, 1), 0);
    }

    #[test]
    fn the_sink_is_configured_from_its_keys() {
        let cfg = |pairs: &[(&str, &str)]| {
            let mut c = crate::config::Config::default();
            for (k, v) in pairs {
                c.set(k, v);
            }
            c
        };
        assert!(SinkConfig::from_config("out", &cfg(&[])).unwrap().is_none());
        let s = SinkConfig::from_config(
            "out",
            &cfg(&[
                ("kafka.bootstrap", "b:9092"),
                ("kafka.sink.topic", "counts"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.connection.bootstrap.as_str(), s.topic.as_str()),
            ("b:9092", "counts")
        );
        assert_eq!(s.connection.security, Security::default());
        let s = SinkConfig::from_config(
            "out",
            &cfg(&[
                ("kafka.bootstrap", "b:9092"),
                ("kafka.sink.bootstrap", "c:9092"),
                ("kafka.sink.topic", "counts"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.connection.bootstrap, "c:9092");
        let e = SinkConfig::from_config("out", &cfg(&[("kafka.sink.topic", "counts")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.sink.bootstrap"), "{e}");
    }
}
