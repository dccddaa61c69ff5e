//! The Kafka source on a real Kafka-protocol broker: tansu (SQLite storage), built into
//! `.tools/bin` by `scripts/kafka-broker.sh` and started here on a loopback port. Records are
//! produced with the same client the engine uses (rskafka); `neptune local --app wordcount`
//! counts the words of the topic's record values and the counts written must be exact — no
//! record lost, none counted twice — while records keep arriving, and across a SIGKILL of the
//! whole app (driver and executors) restarted on the same checkpoint directory.
//!
//! Not part of `make test` yet: tansu is the one Kafka-protocol broker this machine can build
//! (crates.io only), and its 433 crates take 30–90 minutes on 2 cores, beyond CI's budget. The
//! tests are `#[ignore]`d with that reason; `make kafka` builds the broker once (cached in
//! `.tools/bin`) and runs them.

mod common;

use common::*;
use neptune_core::kafka::io;
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A tansu broker on `127.0.0.1:port`, its data in `dir` (killed when dropped).
struct Broker {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
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
    fn start(dir: &Path) -> Self {
        let mut b = Broker {
            child: None,
            dir: dir.to_path_buf(),
            port: free_port(),
        };
        b.restart();
        b
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port and data.
    fn restart(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .unwrap();
        let url = format!("tcp://{}", self.bootstrap());
        let child = Command::new(tansu())
            .current_dir(&self.dir)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let addr = self.bootstrap();
        wait_for(Duration::from_secs(60), "the broker to listen", || {
            TcpStream::connect(&addr).ok()
        });
    }

    fn stop(&mut self) {
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
fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    wait_for(Duration::from_secs(60), "the topic to be created", || {
        let (b, t) = (b.clone(), t.clone());
        io::block_on(async move { io::create_topic(&b, &t, partitions).await }).ok()
    });
}

/// Produce `n` records to each partition of `topic`, records `first..first+n` of a partition
/// keyed `k<i>` with text values; count their words into `expected`.
fn produce(
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
            let (b, t, c) = (bootstrap.to_string(), topic.to_string(), chunk.to_vec());
            io::block_on(async move { io::produce(&b, &t, p, c).await }).expect("produce");
        }
    }
}

fn sets(bootstrap: &str, topic: &str, out: &Path, extra: &[String]) -> Vec<String> {
    let mut s = vec![
        format!("kafka.bootstrap={bootstrap}"),
        format!("kafka.topic={topic}"),
        format!("stream.output={}", out.display()),
        "stream.partitions=2".to_string(),
        "jobs.kafka.interval_ms=100".to_string(),
        "kafka.max_records_per_batch=300".to_string(),
        "kafka.max_records_per_task=100".to_string(),
    ];
    s.extend_from_slice(extra);
    s
}

#[test]
#[ignore = "needs the tansu broker, too slow to build in CI: `make kafka` builds it and runs these"]
fn a_stream_wordcount_over_a_topic_counts_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "words", 3);
    let mut expected = BTreeMap::new();
    produce(&bootstrap, "words", 3, 0, 400, &mut expected);

    let out = dir.path().join("out");
    let addr = format!("127.0.0.1:{}", free_port());
    let sets = sets(&bootstrap, "words", &out, &[]);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let (child, _) = spawn_with_executor_pids(local_on(
        "wordcount",
        2,
        &report_path(&dir, "kafka"),
        &sets,
        &addr,
    ));
    // More records while the stream runs, between micro-batches.
    for round in 1..=3u64 {
        let seen = wait_for(Duration::from_secs(120), "a micro-batch", || {
            job_runs(&addr, "kafka").filter(|r| *r >= 1)
        });
        wait_for(Duration::from_secs(120), "two more micro-batches", || {
            job_runs(&addr, "kafka").filter(|r| *r >= seen + 2)
        });
        produce(&bootstrap, "words", 3, round * 400, 150, &mut expected);
    }
    let at = wait_for(Duration::from_secs(180), "every record counted", || {
        (word_totals(&out).0 == expected)
            .then(|| job_runs(&addr, "kafka"))
            .flatten()
    });
    wait_for(Duration::from_secs(60), "three more micro-batches", || {
        job_runs(&addr, "kafka").filter(|r| *r >= at + 3)
    });
    assert_eq!(
        word_totals(&out).0,
        expected,
        "later micro-batches counted again"
    );
    let st = status(&addr).expect("status");
    let kafka = &st["kafka"][0];
    assert_eq!(kafka["topic"], "words", "{st}");
    for p in kafka["partitions"].as_array().expect("partitions") {
        assert_eq!(p["lag"], 0, "{kafka}");
    }
    // The dashboard's Kafka panels read these series (tests/prometheus.rs leaves them to here).
    let (code, metrics) = http_get(&addr, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    for p in 0..3 {
        let labels = format!("{{neptune_job=\"kafka\",partition=\"{p}\",topic=\"words\"}}");
        for want in [
            format!("neptune_driver_kafka_lag_records{labels} 0"),
            format!("neptune_driver_kafka_committed_offset{labels} 850"),
            format!("neptune_driver_kafka_latest_offset{labels} 850"),
        ] {
            assert!(
                metrics.lines().any(|l| l == want),
                "missing `{want}` in /metrics"
            );
        }
    }
    let _ = terminate(child);
}

#[test]
#[ignore = "needs the tansu broker, too slow to build in CI: `make kafka` builds it and runs these"]
fn a_killed_app_restarted_on_its_checkpoint_counts_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "events", 2);
    let mut expected = BTreeMap::new();
    produce(&bootstrap, "events", 2, 0, 1500, &mut expected);

    let out = dir.path().join("out");
    let checkpoint = dir.path().join("checkpoint");
    let extra = [format!("kafka.checkpoint={}", checkpoint.display())];
    let sets = sets(&bootstrap, "events", &out, &extra);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let report = report_path(&dir, "kafka");

    let addr = format!("127.0.0.1:{}", free_port());
    let (mut child, pids) =
        spawn_with_executor_pids(local_on("wordcount", 2, &report, &sets, &addr));
    // Kill driver and executors mid-stream: some micro-batches committed, most not yet read.
    wait_for(Duration::from_secs(180), "a few micro-batches", || {
        (word_totals(&out).1 >= 3).then_some(())
    });
    child.kill().unwrap();
    let _ = child.wait();
    for pid in pids.lock().unwrap().values() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert_ne!(
        word_totals(&out).0,
        expected,
        "killed too late to test a restart"
    );
    assert!(
        std::fs::read_dir(checkpoint.join("kafka"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("commit-")),
        "no micro-batch committed before the kill"
    );
    // Records that arrive while the app is down are read after the restart.
    produce(&bootstrap, "events", 2, 1500, 300, &mut expected);

    let addr = format!("127.0.0.1:{}", free_port());
    let (child, _) = spawn_with_executor_pids(local_on("wordcount", 2, &report, &sets, &addr));
    let at = wait_for(Duration::from_secs(240), "every record counted", || {
        (word_totals(&out).0 == expected)
            .then(|| job_runs(&addr, "kafka"))
            .flatten()
    });
    wait_for(Duration::from_secs(60), "three more micro-batches", || {
        job_runs(&addr, "kafka").filter(|r| *r >= at + 3)
    });
    assert_eq!(
        word_totals(&out).0,
        expected,
        "a record counted twice after the restart"
    );
    let _ = terminate(child);
}
