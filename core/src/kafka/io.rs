//! Network I/O to Kafka brokers, on a dedicated tokio runtime (one worker thread, `kafka-io`),
//! never on a task's `may` coroutine nor on the driver's event loop.
//!
//! Why a runtime of its own: the Kafka client (`rskafka`) is async/tokio. Executor tasks run on
//! `may` coroutines, which must not poll tokio futures (see `executor/src/runtime/` hazards), and
//! the driver's event loop must not wait on a broker. So every call is spawned here and its
//! answer comes back over a `std::sync::mpsc` channel: a task waits on it in
//! [`READ_TICK`]-long blocking receives with a yield point between them (the block fetch's
//! pattern: the wait stalls only the core the task holds anyway, and a suspend or kill is honoured
//! within a tick); the driver's offset poller only stores its answers for the planner to read.
//!
//! Clients are cached per [`Connection`] (brokers and credentials, see [`super::security`]) and
//! partition clients per (connection, topic, partition). A broker that is down — or refuses the
//! client's TLS certificate check or SASL login — fails a call after [`CALL_DEADLINE`] (the
//! client's own back-off inside it) with the client's reason; the callers retry with back-off
//! and say so in the log and `/status`, never skip data.

use super::KafkaError;
use super::plan::Available;
use super::security::Connection;
use rskafka::BackoffConfig;
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
// Re-exported: `fetch` and `produce` speak rskafka's record types, so callers can name them.
pub use rskafka::record::{Record, RecordAndOffset};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Longest blocking wait of a task before it passes a yield point.
pub const READ_TICK: Duration = Duration::from_millis(20);
/// A single client call gives up after this long (and is retried by its caller).
pub const CALL_DEADLINE: Duration = Duration::from_secs(3);
/// Bytes asked per fetch request: bounds what one fetch holds in memory.
pub const FETCH_BYTES: i32 = 1 << 20;

/// The I/O runtime, started on first use (only processes that talk to Kafka start it).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kafka-io")
            .enable_all()
            .build()
            .expect("the Kafka I/O runtime starts")
    })
}

type Clients = tokio::sync::Mutex<HashMap<Connection, Arc<Client>>>;
type Partitions = tokio::sync::Mutex<HashMap<(Connection, String, i32), Arc<PartitionClient>>>;

fn clients() -> &'static Clients {
    static C: OnceLock<Clients> = OnceLock::new();
    C.get_or_init(Default::default)
}

fn partitions() -> &'static Partitions {
    static C: OnceLock<Partitions> = OnceLock::new();
    C.get_or_init(Default::default)
}

fn backoff() -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        base: 2.0,
        deadline: Some(CALL_DEADLINE),
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> KafkaError {
    KafkaError::Broker(format!("{what}: {e}"))
}

/// The client for `conn`, connected once and shared.
///
/// # Errors
/// [`KafkaError::Broker`] when no bootstrap broker answers, the TLS handshake or the SASL login
/// fails (the client's reason in the message), or a credential file cannot be read.
pub async fn client(conn: &Connection) -> Result<Arc<Client>, KafkaError> {
    let mut map = clients().lock().await;
    if let Some(c) = map.get(conn) {
        return Ok(c.clone());
    }
    let what = format!(
        "connect to {} ({})",
        conn.bootstrap,
        conn.security.protocol()
    );
    let (tls, sasl) = conn.security.client_parts().map_err(|e| err(&what, e))?;
    let mut builder = ClientBuilder::new(conn.brokers())
        .client_id("neptune")
        .backoff_config(backoff());
    if let Some(tls) = tls {
        builder = builder.tls_config(tls);
    }
    if let Some(sasl) = sasl {
        builder = builder.sasl_config(sasl);
    }
    // The client gives up after its own back-off deadline with its reason (a refused
    // certificate, a failed login); this timeout only guards against a call that never ends.
    let c = tokio::time::timeout(CALL_DEADLINE * 2, builder.build())
        .await
        .map_err(|_| err(&what, "timed out"))?
        .map_err(|e| err(&what, format!("{e}{}", hint(&e.to_string()))))?;
    let c = Arc::new(c);
    map.insert(conn.clone(), c.clone());
    Ok(c)
}

/// What to check when the client's error says the TLS handshake or the SASL login failed.
fn hint(error: &str) -> &'static str {
    if error.contains("invalid peer certificate") {
        " (the broker's certificate must chain to `kafka.ssl.ca_file`, or the system's CAs \
         without it, and name the host in `kafka.bootstrap`)"
    } else if error.contains("Sasl") || error.contains("SASL") {
        " (check `kafka.sasl.mechanism`, `kafka.sasl.username` and the password the broker \
         expects)"
    } else {
        ""
    }
}

async fn partition(
    conn: &Connection,
    topic: &str,
    p: i32,
) -> Result<Arc<PartitionClient>, KafkaError> {
    let key = (conn.clone(), topic.to_string(), p);
    if let Some(c) = partitions().lock().await.get(&key) {
        return Ok(c.clone());
    }
    let c = client(conn)
        .await?
        .partition_client(topic, p, UnknownTopicHandling::Error)
        .await
        .map_err(|e| err(&format!("partition {p} of topic {topic}"), e))?;
    let c = Arc::new(c);
    partitions().lock().await.insert(key, c.clone());
    Ok(c)
}

/// The partitions of `topic`, as the brokers' metadata lists them.
///
/// # Errors
/// [`KafkaError::NoTopic`] when the broker does not know the topic, [`KafkaError::Broker`] when
/// the brokers cannot be reached.
async fn topic_partitions(conn: &Connection, topic: &str) -> Result<BTreeSet<i32>, KafkaError> {
    let c = client(conn).await?;
    let topics = c.list_topics().await.map_err(|e| err("list topics", e))?;
    topics
        .into_iter()
        .find(|t| t.name == topic)
        .map(|t| t.partitions)
        .ok_or_else(|| KafkaError::NoTopic(topic.to_string()))
}

/// The partitions of `topic` and, for each, its earliest and latest offsets.
///
/// # Errors
/// [`KafkaError::NoTopic`] when the broker does not know the topic, [`KafkaError::Broker`] when
/// the brokers cannot be reached.
pub async fn available(
    conn: &Connection,
    topic: &str,
) -> Result<BTreeMap<i32, Available>, KafkaError> {
    let mut out = BTreeMap::new();
    for p in topic_partitions(conn, topic).await? {
        out.insert(p, bounds(conn, topic, p).await?);
    }
    Ok(out)
}

/// The number of partitions of `topic`.
///
/// # Errors
/// [`KafkaError::NoTopic`] when the broker does not know the topic, [`KafkaError::Broker`] when
/// the brokers cannot be reached.
pub async fn partition_count(conn: &Connection, topic: &str) -> Result<i32, KafkaError> {
    let partitions = topic_partitions(conn, topic).await?;
    i32::try_from(partitions.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| err(&format!("topic {topic}"), "no partitions"))
}

/// The earliest and latest offsets of `topic`/`p`.
///
/// # Errors
/// [`KafkaError::Broker`] naming the partition.
pub async fn bounds(conn: &Connection, topic: &str, p: i32) -> Result<Available, KafkaError> {
    let pc = partition(conn, topic, p).await?;
    let earliest = pc
        .get_offset(OffsetAt::Earliest)
        .await
        .map_err(|e| err(&format!("earliest offset of {topic}/{p}"), e))?;
    let latest = pc
        .get_offset(OffsetAt::Latest)
        .await
        .map_err(|e| err(&format!("latest offset of {topic}/{p}"), e))?;
    Ok(Available { earliest, latest })
}

/// Records of `topic`/`p` from `offset` (at most [`FETCH_BYTES`] of them) and the partition's
/// high watermark.
///
/// # Errors
/// [`KafkaError::Broker`] naming the partition.
pub async fn fetch(
    conn: &Connection,
    topic: &str,
    p: i32,
    offset: i64,
) -> Result<(Vec<RecordAndOffset>, i64), KafkaError> {
    let pc = partition(conn, topic, p).await?;
    // max_wait 0: a task reads a planned range, whose records exist; waiting for more at the
    // broker would only delay it (tansu 0.6 even waits the whole max_wait when records are
    // there: 100 ms per fetch made every Kafka task at least 100 ms long).
    pc.fetch_records(offset, 1..FETCH_BYTES, 0)
        .await
        .map_err(|e| err(&format!("fetch {topic}/{p} at offset {offset}"), e))
}

/// Append `records` to `topic`/`p` as one record batch (all or nothing); returns their offsets.
///
/// # Errors
/// [`KafkaError::Broker`] naming the partition.
pub async fn produce(
    conn: &Connection,
    topic: &str,
    p: i32,
    records: Vec<Record>,
) -> Result<Vec<i64>, KafkaError> {
    let pc = partition(conn, topic, p).await?;
    pc.produce(records, Compression::NoCompression)
        .await
        .map_err(|e| err(&format!("produce to {topic}/{p}"), e))
}

/// A record of `value` under `key`, stamped now, without headers.
pub fn record(key: Option<Vec<u8>>, value: Vec<u8>) -> Record {
    Record {
        key,
        value: Some(value),
        headers: BTreeMap::new(),
        timestamp: chrono::Utc::now(),
    }
}

/// Create `topic` with `partitions` partitions (replication 1); an existing topic is fine.
///
/// # Errors
/// [`KafkaError::Broker`] when the broker refuses.
pub async fn create_topic(
    conn: &Connection,
    topic: &str,
    partitions: i32,
) -> Result<(), KafkaError> {
    let c = client(conn).await?;
    let ctl = c
        .controller_client()
        .map_err(|e| err("controller client", e))?;
    match ctl.create_topic(topic, partitions, 1, 5_000).await {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().contains("TopicAlreadyExists") => Ok(()),
        Err(e) => Err(err(&format!("create topic {topic}"), e)),
    }
}

/// Run `fut` on the I/O runtime and wait for it from a plain thread (tests, the CLI; never a
/// task coroutine nor the driver's event loop).
pub fn block_on<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the Kafka I/O runtime runs")
}

/// Start `fut` on the I/O runtime; its answer arrives on the returned channel.
pub fn start<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx
}
