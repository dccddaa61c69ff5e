//! Failures around a stream wordcount that reads a topic and writes its counts to a sink topic:
//! (b) an executor SIGKILLed while it runs a task of a micro-batch, (d) the broker stopped for a
//! few seconds and started again on the same data and port. Either way the sink topic must end
//! up holding every produced word's count exactly once.

use super::broker::*;
use crate::common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The app's `--set`s: read `events`, write `counts`, offsets checkpointed under `dir`.
fn sink_sets(bootstrap: &str, dir: &tempfile::TempDir) -> Vec<String> {
    let checkpoint = dir.path().join("checkpoint");
    sets(
        bootstrap,
        "events",
        &[
            format!("kafka.checkpoint={}", checkpoint.display()),
            "kafka.sink.topic=counts".to_string(),
        ],
    )
}

#[test]
#[ignore = "needs the tansu broker: `make kafka` (part of `make test`) builds it once per machine and runs these"]
fn an_executor_killed_mid_micro_batch_leaves_each_output_in_the_sink_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "events", 2);
    create_topic(&bootstrap, "counts", 3);
    let mut expected = BTreeMap::new();
    produce(&bootstrap, "events", 2, 0, 3000, &mut expected);

    let sets = sink_sets(&bootstrap, &dir);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let addr = format!("127.0.0.1:{}", free_port());
    let (child, pids) = spawn_with_executor_pids(local_on(
        "wordcount",
        2,
        &report_path(&dir, "kafka"),
        &sets,
        &addr,
    ));
    // A few micro-batches committed, and an executor running a task of the next one.
    let victim = executor_mid_micro_batch(&addr, "kafka", &pids);
    assert!(
        read_sink(&bootstrap, "counts").totals != expected,
        "the backlog was done before the kill"
    );
    sigkill(victim.1);
    eprintln!("killed executor {} (pid {})", victim.0, victim.1);
    // The driver sees the loss (the kill hit a live executor) and runs its tasks again.
    wait_for(Duration::from_secs(120), "the executor's loss", || {
        let (_, m) = http_get(&addr, "/metrics").ok()?;
        m.lines()
            .find_map(|l| l.strip_prefix("neptune_driver_executors_lost_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| *n >= 1.0)
    });
    produce(&bootstrap, "events", 2, 3000, 200, &mut expected);
    assert_sink_exact(&bootstrap, "counts", &addr, &expected, 3);
    let _ = terminate(child);
}

#[test]
#[ignore = "needs the tansu broker: `make kafka` (part of `make test`) builds it once per machine and runs these"]
fn a_broker_stopped_and_restarted_makes_the_job_wait_then_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&dir.path().join("broker"));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "events", 2);
    create_topic(&bootstrap, "counts", 3);
    let mut expected = BTreeMap::new();
    produce(&bootstrap, "events", 2, 0, 1500, &mut expected);

    let sets = sink_sets(&bootstrap, &dir);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let addr = format!("127.0.0.1:{}", free_port());
    let (child, _) = spawn_with_executor_pids(local_on(
        "wordcount",
        2,
        &report_path(&dir, "kafka"),
        &sets,
        &addr,
    ));
    wait_for(Duration::from_secs(180), "a few micro-batches", || {
        job_runs(&addr, "kafka").filter(|r| *r >= 2)
    });
    assert!(
        read_sink(&bootstrap, "counts").totals != expected,
        "the backlog was done before the broker stopped"
    );
    broker.stop();
    let down = Instant::now();
    // The job waits, and says why in /status.
    let error = wait_for(
        Duration::from_secs(120),
        "the broker error in /status",
        || {
            status(&addr)?["kafka"][0]["error"]
                .as_str()
                .map(str::to_string)
        },
    );
    eprintln!("while the broker is down: {error}");
    // The outage lasts a few seconds (it is what this test is about, not a wait for work).
    if let Some(left) = Duration::from_secs(4).checked_sub(down.elapsed()) {
        std::thread::sleep(left);
    }
    broker.restart();
    wait_for(
        Duration::from_secs(120),
        "the broker error to clear",
        || status(&addr)?["kafka"][0]["error"].is_null().then_some(()),
    );
    // Records produced after the restart are read too.
    produce(&bootstrap, "events", 2, 1500, 300, &mut expected);
    assert_sink_exact(&bootstrap, "counts", &addr, &expected, 3);
    let _ = terminate(child);
}
