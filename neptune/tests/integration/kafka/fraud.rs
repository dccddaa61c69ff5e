//! `fraud-detection` over Kafka (`source=kafka`): `score` reads JSON transactions from a topic
//! while `train` retrains the model, and writes its alerts to a sink topic; an executor is
//! SIGKILLed mid-stream. The alerts topic must hold each alert once (no transaction alerted
//! twice, no mark twice), only for produced transactions, and every record of a micro-batch must
//! name the same model version — the model is pinned per micro-batch (see the app's module docs),
//! also for the tasks run again after the kill — while several versions appear over the stream.
//!
//! Then the same across a *driver* restart: the whole app is SIGKILLed while a micro-batch has
//! written part of its alerts (one executor frozen by SIGSTOP holds the rest of its tasks) and
//! restarted on its checkpoint. The micro-batch runs again and must score with the model its first
//! attempt used — the pin is restored from the checkpoint (`neptune_core::kafka::checkpoint`) —
//! or its alerts would mix two models' (an untrained model alerts on every transaction here).

use super::broker::*;
use crate::common::*;
use neptune_core::kafka::sink::{HEADER, Mark};
use neptune_core::kafka::{Connection, io};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Transaction `i` of partition `p`: features spread over [-1, 1], deterministic.
fn transaction(p: i32, i: u64) -> serde_json::Value {
    let id = p as u64 * 1_000_000 + i;
    let features: Vec<f64> = (0..8u64)
        .map(|f| (((id * 31 + f * 17) % 200) as f64 - 100.0) / 100.0)
        .collect();
    serde_json::json!({ "id": id, "features": features, "note": "extra fields are ignored" })
}

/// Produce `n` transactions from `first` to each of `partitions`; their ids into `ids`.
fn produce_transactions(
    bootstrap: &str,
    partitions: i32,
    first: u64,
    n: u64,
    ids: &mut BTreeSet<u64>,
) {
    for p in 0..partitions {
        let records: Vec<_> = (first..first + n)
            .map(|i| {
                let t = transaction(p, i);
                ids.insert(t["id"].as_u64().unwrap());
                io::record(None, serde_json::to_vec(&t).unwrap())
            })
            .collect();
        for chunk in records.chunks(50) {
            let (b, c) = (Connection::plaintext(bootstrap), chunk.to_vec());
            io::block_on(async move { io::produce(&b, "transactions", p, c).await })
                .expect("produce");
        }
    }
}

/// Every alert of the `alerts` topic with its topic partition and its record's mark (a mark is
/// unique within a topic partition: its `seq` counts a task's output per topic partition).
fn alerts(bootstrap: &str) -> Vec<(i32, Mark, serde_json::Value)> {
    topic_records(bootstrap, "alerts")
        .into_iter()
        .map(|(p, r)| {
            let mark = Mark::parse(&r.headers[HEADER]).expect("a mark");
            let alert: serde_json::Value =
                serde_json::from_slice(&r.value.expect("a value")).expect("an alert as JSON");
            let key = String::from_utf8(r.key.expect("a key")).unwrap();
            assert_eq!(key, alert["id"].to_string(), "keyed by the transaction id");
            (p, mark, alert)
        })
        .collect()
}

#[test]
#[ignore = "needs the tansu broker: `make kafka` (part of `make test`) builds it once per machine and runs these"]
fn fraud_detection_over_kafka_alerts_once_per_transaction_with_a_model_pinned_per_micro_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap, mut ids) = broker_with_transactions(&dir, 1500);

    let sets = fraud_sets(&bootstrap, &dir.path().join("checkpoint"), &[]);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let addr = format!("127.0.0.1:{}", free_port());
    let (child, pids) = spawn_with_executor_pids(local_on(
        "fraud-detection",
        2,
        &report_path(&dir, "fraud"),
        &sets,
        &addr,
    ));
    // Killed if an assertion fails before the end (a leaked app would load the machine).
    let child = Reap(Some(child));
    // An executor killed while it runs a task of a micro-batch: its tasks run again elsewhere,
    // and must score with the same model.
    let victim = executor_mid_micro_batch(&addr, "score", &pids).1;
    sigkill(victim);
    produce_transactions(&bootstrap, 2, 1500, 300, &mut ids);
    wait_until_every_transaction_is_scored(&addr);
    let versions = assert_alerts_once_with_one_model_per_micro_batch(&bootstrap, &ids);
    let all: BTreeSet<u64> = versions.values().flatten().copied().collect();
    assert!(
        all.len() >= 2,
        "the pin never moved while training ran: versions {all:?}"
    );
    let _ = terminate(child.take());
}

/// A broker with topics `transactions` (`n` transactions in each of its 2 partitions) and
/// `alerts`; its address and the transactions' ids.
fn broker_with_transactions(dir: &tempfile::TempDir, n: u64) -> (Broker, String, BTreeSet<u64>) {
    let broker = Broker::start(&dir.path().join("broker"));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "transactions", 2);
    create_topic(&bootstrap, "alerts", 2);
    let mut ids = BTreeSet::new();
    produce_transactions(&bootstrap, 2, 0, n, &mut ids);
    (broker, bootstrap, ids)
}

/// Waits until the app at `addr` has read every transaction (no lag on the source) and
/// committed three more micro-batches (any alerts of the last records are written by then).
fn wait_until_every_transaction_is_scored(addr: &str) {
    wait_for(Duration::from_secs(240), "every transaction scored", || {
        let st = status(addr)?;
        let parts = st["kafka"][0]["partitions"].as_array()?.clone();
        (parts.len() == 2 && parts.iter().all(|p| p["lag"] == 0)).then_some(())
    });
    let at = job_runs(addr, "score").expect("runs");
    wait_for(Duration::from_secs(60), "three more micro-batches", || {
        job_runs(addr, "score").filter(|r| *r >= at + 3)
    });
}

/// The app's `--set`s: transactions from `transactions`, alerts to `alerts`, offsets and the
/// pinned model checkpointed under `checkpoint`; then `extra`.
fn fraud_sets(bootstrap: &str, checkpoint: &Path, extra: &[&str]) -> Vec<String> {
    let mut sets = vec![
        "source=kafka".to_string(),
        format!("kafka.bootstrap={bootstrap}"),
        "kafka.topic=transactions".to_string(),
        "kafka.sink.topic=alerts".to_string(),
        format!("kafka.checkpoint={}", checkpoint.display()),
        "kafka.max_records_per_batch=200".to_string(),
        "jobs.score.interval_ms=100".to_string(),
        "history.partitions=2".to_string(),
        "history.records=2000".to_string(),
        // An untrained model scores 0.5: every transaction alerts until training moves it.
        "score.threshold=0.5".to_string(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    sets
}

/// The alerts topic holds each alert once (no transaction alerted twice, no mark twice), only
/// for transactions in `ids`, and every micro-batch's alerts name one model version; the
/// versions by micro-batch.
fn assert_alerts_once_with_one_model_per_micro_batch(
    bootstrap: &str,
    ids: &BTreeSet<u64>,
) -> BTreeMap<u64, BTreeSet<u64>> {
    let got = alerts(bootstrap);
    assert!(!got.is_empty(), "no alert at all");
    let mut alerted = BTreeSet::new();
    let mut marks = BTreeSet::new();
    let mut versions: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (p, mark, a) in &got {
        let id = a["id"].as_u64().unwrap();
        assert!(
            ids.contains(&id),
            "an alert for a transaction never produced: {a}"
        );
        assert!(alerted.insert(id), "transaction {id} alerted twice");
        assert!(
            marks.insert((*p, mark.encode())),
            "mark written twice in alerts/{p}: {mark:?}"
        );
        assert!(a["score"].as_f64().unwrap() >= 0.5, "{a}");
        versions
            .entry(mark.batch)
            .or_default()
            .insert(a["model_version"].as_u64().unwrap());
    }
    for (batch, v) in &versions {
        assert_eq!(
            v.len(),
            1,
            "micro-batch {batch} scored with model versions {v:?}"
        );
    }
    versions
}

/// The micro-batch planned after the newest commit in the source's checkpoint, if any.
fn planned_uncommitted(checkpoint: &Path) -> Option<u64> {
    let batches = |prefix: &str| -> Vec<u64> {
        std::fs::read_dir(checkpoint.join("transactions"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        name.strip_prefix(prefix)?
                            .strip_suffix(".json")?
                            .parse()
                            .ok()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let committed = batches("commit-").into_iter().max();
    batches("plan-")
        .into_iter()
        .filter(|b| committed.is_none_or(|c| *b > c))
        .max()
}

#[test]
#[ignore = "needs the tansu broker: `make kafka` (part of `make test`) builds it once per machine and runs these"]
fn fraud_detection_restarted_mid_micro_batch_scores_it_again_with_the_same_pinned_model() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap, mut ids) = broker_with_transactions(&dir, 600);
    let checkpoint = dir.path().join("checkpoint");
    // Six scoring tasks over 2 executors x 2 cores: a micro-batch's tasks land on both. A frozen
    // executor is neither declared lost nor has its launches moved elsewhere while the test
    // looks (the half-written micro-batch stays so until the kill).
    let sets = fraud_sets(
        &bootstrap,
        &checkpoint,
        &[
            "score.partitions=6",
            "heartbeat.timeout_ms=120000",
            "driver.launch_ack_timeout_ms=120000",
        ],
    );
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let report = report_path(&dir, "fraud");
    let addr = format!("127.0.0.1:{}", free_port());
    let (child, pids) =
        spawn_with_executor_pids(local_on("fraud-detection", 2, &report, &sets, &addr));
    let child = Reap(Some(child));
    // The pin has moved off the untrained model: a restarted driver's own pin would differ.
    wait_for(
        Duration::from_secs(180),
        "alerts of a trained model",
        || {
            alerts(&bootstrap)
                .iter()
                .any(|(_, _, a)| a["model_version"].as_u64() > Some(0))
                .then_some(())
        },
    );
    // Freeze one executor, then give the app a micro-batch: the tasks on the other one write
    // their alerts, the frozen one's never finish.
    let frozen = Frozen(
        *pids
            .lock()
            .unwrap()
            .values()
            .next()
            .expect("an executor pid"),
    );
    signal("-STOP", frozen.0);
    produce_transactions(&bootstrap, 2, 600, 100, &mut ids);
    let (batch, version) = wait_for(
        Duration::from_secs(120),
        "a micro-batch with part of its alerts written",
        || {
            let b = planned_uncommitted(&checkpoint)?;
            let v = alerts(&bootstrap)
                .iter()
                .find(|(_, m, _)| m.batch == b)
                .map(|(_, _, a)| a["model_version"].as_u64().unwrap())?;
            Some((b, v))
        },
    );
    eprintln!("micro-batch {batch} half written with model version {version}; killing the app");
    assert!(version > 0, "scored with the untrained model");
    let mut app = child.take();
    app.kill().unwrap();
    let _ = app.wait();
    for pid in pids.lock().unwrap().values() {
        signal("-9", *pid);
    }
    std::mem::forget(frozen); // killed above with the others

    // Restarted on the checkpoint: the micro-batch runs again, then the rest.
    produce_transactions(&bootstrap, 2, 700, 100, &mut ids);
    let addr = format!("127.0.0.1:{}", free_port());
    let (child, _) =
        spawn_with_executor_pids(local_on("fraud-detection", 2, &report, &sets, &addr));
    let child = Reap(Some(child));
    wait_until_every_transaction_is_scored(&addr);
    let versions = assert_alerts_once_with_one_model_per_micro_batch(&bootstrap, &ids);
    assert_eq!(
        versions.get(&batch),
        Some(&BTreeSet::from([version])),
        "micro-batch {batch} run again with another model"
    );
    let _ = terminate(child.take());
}

fn signal(sig: &str, pid: u32) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status();
    assert!(ok.is_ok_and(|s| s.success()), "kill {sig} {pid}");
}

/// A SIGSTOPped executor, killed when the test ends however it ends (a stopped process would
/// never exit on its own).
struct Frozen(u32);

impl Drop for Frozen {
    fn drop(&mut self) {
        for sig in ["-CONT", "-9"] {
            let _ = Command::new("kill")
                .args([sig, &self.0.to_string()])
                .status();
        }
    }
}
