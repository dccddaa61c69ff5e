//! The Kafka sink's deduplication on a real broker, step by step: a task run in this process
//! (a detached task context, as an executor would run it) after an earlier attempt wrote part of
//! its output writes only the rest; run again after a whole write it writes nothing; the next
//! micro-batch writes all of its own; an attempt with fewer records than an earlier one wrote
//! fails naming the micro-batch.

use super::broker::*;
use neptune_core::kafka::sink::{HEADER, Mark, Output, SinkConfig, partition_for};
use neptune_core::kafka::{Connection, io};
use neptune_core::{Dataset, JobKind, TaskContext, TaskId};
use std::collections::BTreeMap;

const EPOCH: &str = "00000000feedbeef";
const TASK: u32 = 1;

/// A task of micro-batch `batch` writing `n` records keyed `k<i>` (values depend on `batch`).
fn run_task(sink: &SinkConfig, batch: u64, n: u64) -> neptune_core::Result<Vec<u8>> {
    let ds = Dataset::from_fn(2, move |_| Box::new(0..n));
    let action = ds.write_kafka(sink.clone(), move |i| record(batch, *i));
    let id = TaskId {
        job: 0,
        run: 7,
        stage: 0,
        partition: TASK,
    };
    let ctx = TaskContext::detached(id, JobKind::Stream);
    ctx.set_output_epoch(EPOCH.to_string());
    ctx.set_kafka_batch(Some(batch));
    (action.task_fn())(&ctx)
}

fn record(batch: u64, i: u64) -> Output {
    (
        Some(format!("k{i}").into_bytes()),
        format!("b{batch}-{i}").into_bytes(),
    )
}

/// Every record of `topic` as (partition, mark, value).
fn contents(bootstrap: &str, topic: &str) -> Vec<(i32, Mark, String)> {
    topic_records(bootstrap, topic)
        .into_iter()
        .map(|(p, r)| {
            let mark = Mark::parse(&r.headers[HEADER]).expect("a mark");
            (p, mark, String::from_utf8(r.value.unwrap()).unwrap())
        })
        .collect()
}

#[test]
#[ignore = "needs the tansu broker: `make kafka` (part of `make test`) builds it once per machine and runs these"]
fn a_retried_task_writes_only_what_its_earlier_attempts_did_not() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "out", 2);
    let sink = SinkConfig {
        name: "counts".into(),
        connection: Connection::plaintext(bootstrap.clone()),
        topic: "out".into(),
    };
    // The previous micro-batch of the job, whole.
    run_task(&sink, 4, 50).expect("micro-batch 4");

    // An attempt of micro-batch 5 that died after writing the first 30 records of its output
    // to each topic partition (in the order the sink writes them: sorted).
    let mut groups: BTreeMap<i32, Vec<Output>> = BTreeMap::new();
    for i in 0..400 {
        let r = record(5, i);
        groups
            .entry(partition_for(r.0.as_deref(), TASK, 2))
            .or_default()
            .push(r);
    }
    for (p, mut recs) in groups {
        recs.sort_unstable();
        let batch: Vec<_> = recs[..30]
            .iter()
            .enumerate()
            .map(|(seq, (k, v))| {
                let mut r = io::record(k.clone(), v.clone());
                let mark = Mark {
                    epoch: EPOCH.into(),
                    sink: "counts".into(),
                    batch: 5,
                    partition: TASK,
                    seq: seq as u64,
                };
                r.headers.insert(HEADER.to_string(), mark.encode());
                r
            })
            .collect();
        let (b, t) = (Connection::plaintext(bootstrap.clone()), "out".to_string());
        io::block_on(async move { io::produce(&b, &t, p, batch).await }).expect("produce");
    }
    // The retry writes the rest; another retry (the driver died before the commit) nothing.
    run_task(&sink, 5, 400).expect("micro-batch 5, retried");
    run_task(&sink, 5, 400).expect("micro-batch 5, run again");
    // The next micro-batch writes all of its output.
    run_task(&sink, 6, 100).expect("micro-batch 6");

    let got = contents(&bootstrap, "out");
    let mut per_batch: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut marks = std::collections::BTreeSet::new();
    for (p, mark, value) in &got {
        assert!(
            marks.insert((*p, mark.batch, mark.seq)),
            "written twice: {p} {mark:?}"
        );
        per_batch.entry(mark.batch).or_default().push(value.clone());
    }
    for (batch, n) in [(4u64, 50u64), (5, 400), (6, 100)] {
        let mut want: Vec<String> = (0..n).map(|i| format!("b{batch}-{i}")).collect();
        let mut have = per_batch.remove(&batch).unwrap_or_default();
        want.sort();
        have.sort();
        assert_eq!(have, want, "micro-batch {batch}");
    }

    // An attempt with fewer records than were written: the output is not deterministic.
    let e = run_task(&sink, 6, 10).unwrap_err().to_string();
    assert!(
        e.contains("micro-batch 6") && e.contains("deterministic"),
        "{e}"
    );
}
