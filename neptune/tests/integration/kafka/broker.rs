//! The Kafka tests' broker (a tansu process on a loopback port, its data in SQLite) and what they
//! do with it: create topics, produce known records, read a sink topic back.

use crate::common::*;
use neptune::bench::kafka::tansu_broker;
use neptune_core::kafka::sink::{HEADER, Mark};
use neptune_core::kafka::{Connection, io};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// A tansu broker on `127.0.0.1:port`, its data in `dir` (killed when dropped).
pub struct Broker {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    /// More arguments of `tansu broker` (`restart_with`).
    extra: Vec<String>,
}

fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("NEPTUNE_TANSU") {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/tansu");
    assert!(
        p.exists(),
        "{} is missing: run `make kafka` (it builds it with scripts/kafka-broker.sh)",
        p.display()
    );
    p
}

impl Broker {
    pub fn start(dir: &Path) -> Self {
        let mut b = Broker {
            child: None,
            dir: dir.to_path_buf(),
            port: free_port(),
            extra: Vec::new(),
        };
        b.restart();
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port and data.
    pub fn restart(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .unwrap();
        let child = tansu_broker(&tansu(), &self.dir, self.port)
            .args(&self.extra)
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let addr = self.bootstrap();
        wait_for(Duration::from_secs(60), "the broker to listen", || {
            TcpStream::connect(&addr).ok()
        });
    }

    /// Stop, and start again on the same port and data with `args` added to the command line
    /// (e.g. `--authentication`).
    pub fn restart_with(&mut self, args: &[&str]) {
        self.stop();
        self.extra = args.iter().map(|a| (*a).to_string()).collect();
        self.restart();
    }

    /// Create the SCRAM user `name` (`mechanism`: `scram256` or `scram512`) with tansu's own
    /// client, through the running broker.
    pub fn create_user(&self, name: &str, password: &str, mechanism: &str) {
        let out = Command::new(tansu())
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://{}", self.bootstrap()),
            ])
            .args(["--mechanism", mechanism, name, password])
            .output()
            .expect("run tansu user create");
        assert!(
            out.status.success(),
            "tansu user create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Create `topic` with `partitions` partitions, retrying while the broker starts up.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let (b, t) = (Connection::plaintext(bootstrap), topic.to_string());
    wait_for(Duration::from_secs(60), "the topic to be created", || {
        let (b, t) = (b.clone(), t.clone());
        io::block_on(async move { io::create_topic(&b, &t, partitions).await }).ok()
    });
}

/// Produce `n` records to each partition of `topic`, records `first..first+n` of a partition
/// keyed `k<i>` with text values; count their words into `expected`.
pub fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    first: u64,
    n: u64,
    expected: &mut BTreeMap<String, u64>,
) {
    for p in 0..partitions {
        let mut batch = Vec::new();
        for i in first..first + n {
            let text = format!("w{} p{p} common", (i * 7 + p as u64) % 23);
            for w in text.split_whitespace() {
                *expected.entry(w.to_string()).or_default() += 1;
            }
            batch.push(io::record(
                Some(format!("k{i}").into_bytes()),
                text.into_bytes(),
            ));
        }
        // A few records per produce request, as a real producer batches them.
        for chunk in batch.chunks(50) {
            let (b, t, c) = (
                Connection::plaintext(bootstrap),
                topic.to_string(),
                chunk.to_vec(),
            );
            io::block_on(async move { io::produce(&b, &t, p, c).await }).expect("produce");
        }
    }
}

/// The `--set`s of a wordcount over `topic` (stream job `kafka`), small micro-batches.
pub fn sets(bootstrap: &str, topic: &str, extra: &[String]) -> Vec<String> {
    let mut s = vec![
        format!("kafka.bootstrap={bootstrap}"),
        format!("kafka.topic={topic}"),
        "stream.partitions=2".to_string(),
        "jobs.kafka.interval_ms=100".to_string(),
        "kafka.max_records_per_batch=300".to_string(),
        "kafka.max_records_per_task=100".to_string(),
    ];
    s.extend_from_slice(extra);
    s
}

/// What a sink topic written by wordcount holds.
#[derive(Debug, Default)]
pub struct SinkContents {
    /// Counts per word, summed over every record (a micro-batch's counts are its own).
    pub totals: BTreeMap<String, u64>,
    /// Marks seen more than once in a topic partition (`partition:mark`): output written twice.
    pub duplicates: Vec<String>,
    /// Micro-batch numbers seen.
    pub batches: BTreeSet<u64>,
    /// Records without a Neptune mark.
    pub unmarked: usize,
}

/// Every record of `topic` with its partition: all partitions, earliest to latest offset.
pub fn topic_records(bootstrap: &str, topic: &str) -> Vec<(i32, io::Record)> {
    let (b, t) = (Connection::plaintext(bootstrap), topic.to_string());
    io::block_on(async move {
        let mut out = Vec::new();
        for p in 0..io::partition_count(&b, &t).await? {
            let bounds = io::bounds(&b, &t, p).await?;
            let mut at = bounds.earliest;
            while at < bounds.latest {
                let (rs, _) = io::fetch(&b, &t, p, at).await?;
                let from = at;
                for r in rs
                    .into_iter()
                    .filter(|r| r.offset >= from && r.offset < bounds.latest)
                {
                    at = r.offset + 1;
                    out.push((p, r.record));
                }
                assert!(at > from, "no progress reading {t}/{p} at {from}");
            }
        }
        Ok::<_, neptune_core::kafka::KafkaError>(out)
    })
    .unwrap_or_else(|e| panic!("read the topic {topic}: {e}"))
}

/// Read every record of `topic` (all partitions, earliest to latest offset).
pub fn read_sink(bootstrap: &str, topic: &str) -> SinkContents {
    let records = topic_records(bootstrap, topic);
    let mut c = SinkContents::default();
    let mut seen = BTreeSet::new();
    for (p, r) in records {
        let Some(mark) = r.headers.get(HEADER).and_then(|v| Mark::parse(v)) else {
            c.unmarked += 1;
            continue;
        };
        let word = String::from_utf8(r.key.expect("a keyed record")).expect("UTF-8 word");
        let n: u64 = std::str::from_utf8(&r.value.expect("a value"))
            .expect("UTF-8 count")
            .parse()
            .expect("a count");
        *c.totals.entry(word).or_default() += n;
        c.batches.insert(mark.batch);
        // Sequence numbers count per topic partition.
        let m = format!("{p}:{}", String::from_utf8(mark.encode()).unwrap());
        if !seen.insert(m.clone()) {
            c.duplicates.push(m);
        }
    }
    c
}

/// Wait until the sink topic holds exactly `expected` (counts summed), then for `more` further
/// micro-batches of job `kafka`, and check it still does, with no output written twice.
pub fn assert_sink_exact(
    bootstrap: &str,
    topic: &str,
    addr: &str,
    expected: &BTreeMap<String, u64>,
    more: u64,
) {
    let at = wait_for(
        Duration::from_secs(240),
        "the sink to hold every count",
        || {
            (read_sink(bootstrap, topic).totals == *expected)
                .then(|| job_runs(addr, "kafka"))
                .flatten()
        },
    );
    wait_for(Duration::from_secs(60), "more micro-batches", || {
        job_runs(addr, "kafka").filter(|r| *r >= at + more)
    });
    let c = read_sink(bootstrap, topic);
    assert!(c.duplicates.is_empty(), "written twice: {:?}", c.duplicates);
    assert_eq!(c.unmarked, 0, "records without a mark");
    assert_eq!(c.totals, *expected, "later micro-batches wrote again");
}

/// Waits until `job` has committed two micro-batches and an executor runs a task of the next
/// one; returns that executor's id and pid (from `pids`, as `spawn_with_executor_pids` fills it).
pub fn executor_mid_micro_batch(
    addr: &str,
    job: &str,
    pids: &std::sync::Mutex<std::collections::HashMap<String, u32>>,
) -> (String, u32) {
    wait_for(
        Duration::from_secs(180),
        "an executor mid-micro-batch",
        || {
            job_runs(addr, job).filter(|r| *r >= 2)?;
            let st = status(addr)?;
            let busy = st["executors"]
                .as_array()?
                .iter()
                .find(|e| e["running"].as_u64().is_some_and(|n| n > 0))?;
            let id = busy["id"].as_str()?.to_string();
            let pid = pids.lock().unwrap().get(&id).copied()?;
            Some((id, pid))
        },
    )
}
