//! `neptune bench --source kafka`: the stream side of every run reads a Kafka topic instead of
//! generating its records. The bench produces them itself, at the workload's `stream.rate`, each
//! stamped with its produce time, so the runs report source → commit latency (produce → the
//! micro-batch that read the record committed) beside the micro-batch latency.
//!
//! The broker is the user's (`--kafka-bootstrap`) or a fresh one per run that the bench starts on
//! a loopback port: `tansu` (the Kafka tests' broker, `scripts/kafka-broker.sh` builds it), in
//! SQLite in a scratch directory (the tests' build has no in-memory storage). Each run gets a
//! topic of its own with one partition per stream task, created before the run starts; the app
//! starts from its latest offsets, so records produced while the local cluster starts are not a
//! backlog. The producer is a thread of the bench process (the rskafka client on
//! the engine's Kafka I/O runtime): on a shared machine it and the broker take CPU from the runs,
//! alike for every configuration.

use super::plan::Variant;
use super::runner::{self, RunRecord, Slot};
use crate::apps::{StreamLoad, synthetic};
use anyhow::{Context as _, bail};
use neptune_core::kafka::{Connection, io};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The stream rate of `--source kafka` (records/s; `--set stream.rate=` overrides it), a quarter
/// of the synthetic runs' 20,000: the test broker (tansu 0.6 with SQLite, built for the tests) on
/// this 2-core machine, beside the engine, sustained 5,000 (every run produced its rate, stream
/// alone committed within 50 ms at p99) and fell behind at 20,000 (16,000 produced, seconds of
/// backlog even without batch work). A broker of the user's can take more.
pub const RATE: u64 = 5_000;

/// How long the producer waits between produce rounds: 5 ms, so a 40 ms micro-batch holds
/// records of eight rounds and the produce times are spread over the interval as a live
/// stream's are.
const PRODUCE_EVERY: Duration = Duration::from_millis(5);

/// Where the runs' brokers come from.
pub enum Brokers {
    /// The user's (`--kafka-bootstrap`), shared by every run; each run's topic is deleted after
    /// it.
    Given(String),
    /// A fresh tansu per run, its log appended to `log`: an empty broker each time, so no run
    /// inherits another's state (a bench that reused one broker, deleting each run's topic, saw
    /// tansu 0.6 panic in its SQLite storage and refuse every later topic), and no SQLite file
    /// grows over the runs.
    Tansu {
        /// The tansu binary.
        exe: PathBuf,
        /// The brokers' shared log.
        log: PathBuf,
    },
}

impl Brokers {
    /// The user's brokers at `bootstrap` (checked to answer), or tansu (found, and started once
    /// to check it runs) logging to `log`.
    ///
    /// # Errors
    /// When the brokers do not answer, or tansu cannot be found or started.
    pub fn new(bootstrap: Option<&str>, log: &Path) -> anyhow::Result<Self> {
        let this = match bootstrap {
            Some(b) => Self::Given(b.to_string()),
            None => Self::Tansu {
                exe: find_tansu()?,
                log: log.to_path_buf(),
            },
        };
        drop(this.for_run()?);
        Ok(this)
    }

    /// What the runs read from, for the log.
    pub fn describe(&self) -> String {
        match self {
            Self::Given(b) => format!("the brokers at {b}"),
            Self::Tansu { exe, log } => format!(
                "a fresh tansu per run ({}; log {})",
                exe.display(),
                log.display()
            ),
        }
    }

    /// Run `v` in `slot` (see [`runner::run_one`]) reading a topic the bench produces into, on a
    /// broker of its own; a run without a stream job runs as it is.
    pub fn run(&self, v: &Variant, slot: &Slot) -> RunRecord {
        let (partitions, rate, seed) = match stream_of(v) {
            Ok(Some(stream)) => stream,
            Ok(None) => return runner::run_one(v, slot),
            Err(e) => return runner::failed(v, slot.point, slot.rep, e),
        };
        let topic = format!("neptune-bench-{}-{:08x}", slot.stem, rand::random::<u32>());
        let started = self.for_run().and_then(|broker| {
            let producer = broker.produce(&topic, partitions, rate, seed)?;
            Ok((broker, producer))
        });
        match started {
            Ok((broker, producer)) => {
                let with_kafka = reading(v, broker.bootstrap(), &topic);
                let mut rec = runner::run_one(&with_kafka, slot);
                let produced = producer.stop();
                rec.produced = produced.records;
                rec.produce_s = produced.seconds;
                rec.produce_errors = produced.errors;
                rec
            }
            Err(e) => runner::failed(v, slot.point, slot.rep, format!("{e:#}")),
        }
    }

    /// The broker of one run, answering.
    ///
    /// # Errors
    /// When it cannot be started or does not answer within 30 s.
    pub fn for_run(&self) -> anyhow::Result<Broker> {
        let broker = match self {
            Self::Given(b) => Broker {
                bootstrap: b.clone(),
                child: None,
                _dir: None,
            },
            Self::Tansu { exe, log } => {
                // In memory where the machine has it: SQLite syncs every produce request.
                let shm = Path::new("/dev/shm");
                let dir = if shm.is_dir() {
                    tempfile::tempdir_in(shm)
                } else {
                    tempfile::tempdir()
                }
                .context("cannot create the broker's directory")?;
                let port = TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .context("cannot find a free loopback port")?
                    .port();
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .with_context(|| format!("cannot open {}", log.display()))?;
                let child = tansu_broker(exe, dir.path(), port)
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("cannot start {}", exe.display()))?;
                Broker {
                    bootstrap: format!("127.0.0.1:{port}"),
                    child: Some(child),
                    _dir: Some(dir),
                }
            }
        };
        broker.wait_ready()?;
        Ok(broker)
    }
}

/// One run's broker.
pub struct Broker {
    bootstrap: String,
    /// The tansu process started for the run (killed when this is dropped).
    child: Option<Child>,
    /// Its working directory.
    _dir: Option<tempfile::TempDir>,
}

impl Broker {
    /// The brokers' address.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        let conn = Connection::plaintext(&self.bootstrap);
        loop {
            let ok = TcpStream::connect(&self.bootstrap).is_ok() && {
                let c = conn.clone();
                io::block_on(async move { io::client(&c).await }).is_ok()
            };
            if ok {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("the Kafka broker at {} does not answer", self.bootstrap);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Create `topic` with `partitions` partitions and start producing `rate` records per
    /// second into it, seeded by `seed`.
    ///
    /// # Errors
    /// When the topic cannot be created.
    pub fn produce(
        &self,
        topic: &str,
        partitions: u32,
        rate: u64,
        seed: u64,
    ) -> anyhow::Result<Producer> {
        let conn = Connection::plaintext(&self.bootstrap);
        let parts = i32::try_from(partitions.max(1)).context("too many partitions")?;
        let (c, t) = (conn.clone(), topic.to_string());
        io::block_on(async move { io::create_topic(&c, &t, parts).await })
            .with_context(|| format!("cannot create topic {topic}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let thread = {
            let (stop, counts, topic) = (stop.clone(), counts.clone(), topic.to_string());
            std::thread::Builder::new()
                .name("bench-producer".into())
                .spawn(move || produce_loop(&conn, &topic, parts, rate, seed, &stop, &counts))?
        };
        Ok(Producer {
            started: Instant::now(),
            stop,
            counts,
            thread: Some(thread),
            // A broker of the run's own goes with the topic; the user's keeps no bench topic.
            delete: self
                .child
                .is_none()
                .then(|| (Connection::plaintext(&self.bootstrap), topic.to_string())),
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The command that starts tansu `exe` as a broker on `127.0.0.1:port`, its data in SQLite in
/// `dir` (how the bench's runs and the Kafka tests start it; the caller directs its log).
pub fn tansu_broker(exe: &Path, dir: &Path, port: u16) -> Command {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(exe);
    cmd.current_dir(dir)
        .args(["broker", "--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .args(["--storage-engine", "sqlite://tansu.db"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// tansu: `$NEPTUNE_TANSU`, else `.tools/bin/tansu` under the working directory (where
/// `scripts/kafka-broker.sh` installs it), else `tansu` on the `PATH`.
fn find_tansu() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("NEPTUNE_TANSU") {
        return Ok(p.into());
    }
    // Absolute: the broker runs in a directory of its own.
    if let Ok(local) = std::fs::canonicalize(".tools/bin/tansu") {
        return Ok(local);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.exists())
    });
    on_path.ok_or_else(|| {
        anyhow::anyhow!(
            "--source kafka needs a Kafka broker: give --kafka-bootstrap HOST:PORT, or install \
             tansu (`scripts/kafka-broker.sh` builds it into .tools/bin) or set NEPTUNE_TANSU"
        )
    })
}

#[derive(Debug, Default)]
struct Counts {
    produced: AtomicU64,
    errors: AtomicU64,
}

/// What a producer did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Produced {
    /// Records the broker acknowledged.
    pub records: u64,
    /// Produce requests that failed (their records were produced in a later round).
    pub errors: u64,
    /// How long the producer ran (from before the run started to after it ended).
    pub seconds: f64,
}

/// A producer thread writing into one topic until stopped.
pub struct Producer {
    started: Instant,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    thread: Option<JoinHandle<()>>,
    /// The topic to delete when stopped.
    delete: Option<(Connection, String)>,
}

impl Producer {
    /// Stop producing and delete the topic; what was produced.
    pub fn stop(mut self) -> Produced {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let seconds = self.started.elapsed().as_secs_f64();
        if let Some((c, t)) = self.delete.take() {
            let topic = t.clone();
            if let Err(e) = io::block_on(async move { delete_topic(&c, &t).await }) {
                eprintln!("neptune bench: could not delete topic {topic}: {e}");
            }
        }
        Produced {
            records: self.counts.produced.load(Ordering::Relaxed),
            errors: self.counts.errors.load(Ordering::Relaxed),
            seconds,
        }
    }
}

async fn delete_topic(conn: &Connection, topic: &str) -> Result<(), String> {
    let c = io::client(conn).await.map_err(|e| e.to_string())?;
    let ctl = c.controller_client().map_err(|e| e.to_string())?;
    ctl.delete_topic(topic, 5_000)
        .await
        .map_err(|e| e.to_string())
}

/// Produce `rate` records per second, round-robin over `parts` partitions, in rounds every
/// [`PRODUCE_EVERY`]: each round produces what is due by then (so a slow round is caught up,
/// not lost), each record stamped as it is made.
fn produce_loop(
    conn: &Connection,
    topic: &str,
    parts: i32,
    rate: u64,
    seed: u64,
    stop: &AtomicBool,
    counts: &Counts,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut next_partition = 0i32;
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        let n = due.saturating_sub(sent);
        if n > 0 {
            let mut per: Vec<Vec<io::Record>> = vec![Vec::new(); parts as usize];
            for _ in 0..n {
                let x: u64 = rng.random();
                per[next_partition as usize].push(io::record(None, x.to_be_bytes().to_vec()));
                next_partition = (next_partition + 1) % parts;
            }
            for (p, records) in per.into_iter().enumerate() {
                if records.is_empty() {
                    continue;
                }
                let len = records.len() as u64;
                let (c, t) = (conn.clone(), topic.to_string());
                let p = p as i32;
                match io::block_on(async move { io::produce(&c, &t, p, records).await }) {
                    Ok(_) => {
                        counts.produced.fetch_add(len, Ordering::Relaxed);
                        sent += len;
                    }
                    Err(_) => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        std::thread::sleep(PRODUCE_EVERY);
    }
}

/// What a run of `v` reads from Kafka: its stream tasks (the topic's partitions), rate and seed,
/// read from its `--set`s by `synthetic`'s own settings (later values win, defaults as the app
/// has them); `None` for a run without a stream job.
///
/// # Errors
/// A value the app would refuse, naming its key.
pub fn stream_of(v: &Variant) -> Result<Option<(u32, u64, u64)>, String> {
    let cfg = neptune_core::Config::from_args(&v.set).map_err(|e| e.to_string())?;
    let stream = StreamLoad::read(&cfg, &synthetic::STREAM_TASKS).map_err(|e| e.to_string())?;
    let seed = synthetic::SEED.get(&cfg).map_err(|e| e.to_string())?;
    Ok((stream.tasks > 0).then_some((stream.tasks, stream.rate, seed)))
}

/// `v` reading `topic` at `bootstrap` from its latest offsets.
pub fn reading(v: &Variant, bootstrap: &str, topic: &str) -> Variant {
    let mut v = v.clone();
    v.set.extend([
        "source=kafka".to_string(),
        format!("kafka.bootstrap={bootstrap}"),
        format!("kafka.topic={topic}"),
        "kafka.starting_offsets=latest".to_string(),
        // A record waits up to a poll period before a micro-batch plans it: well under the
        // bench's 40 ms interval.
        "kafka.poll_interval_ms=10".to_string(),
    ]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use neptune_driver::scheduler::Policy;

    fn variant(set: &[&str]) -> Variant {
        Variant {
            label: "fifo".into(),
            policy: Policy::Fifo,
            executors: 1,
            cores: 2,
            set: set.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    #[test]
    fn a_run_reads_what_its_last_settings_say() {
        let v = variant(&[
            "stream.tasks=2",
            "stream.rate=20000",
            "stream.tasks=3",
            "seed=7",
        ]);
        assert_eq!(stream_of(&v), Ok(Some((3, 20_000, 7))));
        assert_eq!(
            stream_of(&variant(&["stream.tasks=2", "stream.tasks=0"])),
            Ok(None)
        );
        let e = stream_of(&variant(&["stream.rate=fast"])).unwrap_err();
        assert!(e.contains("stream.rate"), "{e}");
        let r = reading(&v, "127.0.0.1:9", "t");
        assert!(r.set.ends_with(&[
            "source=kafka".to_string(),
            "kafka.bootstrap=127.0.0.1:9".to_string(),
            "kafka.topic=t".to_string(),
            "kafka.starting_offsets=latest".to_string(),
            "kafka.poll_interval_ms=10".to_string(),
        ]));
    }
}
