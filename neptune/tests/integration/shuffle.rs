//! Multi-stage jobs on a real local cluster: exact word counts, an exact join whose sides run
//! concurrently, suspensions in the shuffle-write and reduce phases, spilling beyond the memory
//! budget, recomputation of map outputs lost with a SIGKILLed executor, and a range-partitioned
//! sort.

use crate::common;

use common::*;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn wordcount_gives_the_exact_counts_of_a_single_threaded_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for f in 0..5u64 {
        let mut text = String::new();
        for line in 0..2000u64 {
            let n = (f * 7919 + line * 104_729) % 997;
            text += &format!("w{} x{} Case{} w{}\n", n % 50, n, line % 3, (n * n) % 211);
        }
        for w in text.split_whitespace() {
            *expected.entry(w.to_string()).or_default() += 1;
        }
        std::fs::write(input.join(format!("part{f}.txt")), text).unwrap();
    }
    let output = dir.path().join("out");
    let report = report_path(&dir, "wc");
    run_ok(local(
        "wordcount",
        2,
        &report,
        &[
            &format!("input={}", input.display()),
            &format!("output={}", output.display()),
            "partitions=3",
        ],
    ));
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for e in std::fs::read_dir(output.join("run-000000")).unwrap() {
        for l in std::fs::read_to_string(e.unwrap().path()).unwrap().lines() {
            let (w, n) = l.split_once('\t').unwrap();
            assert!(
                got.insert(w.to_string(), n.parse().unwrap()).is_none(),
                "{w} twice"
            );
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn a_shuffle_job_preempted_by_a_stream_job_is_suspended_in_shuffle_write_and_reduce_and_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let work = [
        "shuffle.records=4000000",
        "shuffle.keys=2000000",
        "shuffle.maps=4",
        // The per-record work: it lengthens the map computation, not the shuffle write or the
        // reduce (those grow with the records and keys), so it is kept small.
        "shuffle.cost=500",
    ];
    let report = report_path(&dir, "preempted");
    let mut sets = work.to_vec();
    // The stream job runs until the batch job is done (then the app is stopped), so it preempts
    // both of the batch job's stages however long each takes on a loaded machine.
    sets.extend([
        "stream.tasks=2",
        "stream.rate=2000",
        "jobs.stream.interval_ms=50",
    ]);
    let http = format!("127.0.0.1:{}", free_port());
    let child = local_on("shuffle", 2, &report, &sets, &http)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(600), "the batch job's run", || {
        job_runs(&http, "sum").filter(|r| *r >= 1)
    });
    terminate(child);
    let r = read_report(&report);
    let phases = &r["totals"]["suspensions_by_phase"];
    assert!(
        phases["shuffle_write"].as_u64().unwrap_or(0) > 0,
        "{phases}"
    );
    assert!(
        phases["reduce"].as_u64().unwrap_or(0) + phases["fetch"].as_u64().unwrap_or(0) > 0,
        "{phases}"
    );
    assert!(phases["reduce"].as_u64().unwrap_or(0) > 0, "{phases}");
    let tasks = r["totals"]["local_launches"].as_u64().unwrap()
        + r["totals"]["non_local_launches"].as_u64().unwrap();
    assert!(tasks > 0, "reduce tasks carried locality preferences: {r}");

    let alone = report_path(&dir, "alone");
    run_ok(local("shuffle", 1, &alone, &work));
    let a = read_report(&alone);
    assert_eq!(job(&r, "sum")["result"], job(&a, "sum")["result"]);
    assert_eq!(job(&a, "sum")["result"]["total"], 4_000_000);
}

#[test]
fn a_join_of_two_sides_with_their_own_map_stages_gives_the_plain_sum_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let work = [
        "shuffle.records=1000000",
        "shuffle.keys=50000",
        "shuffle.maps=6",
        "shuffle.reduces=4",
    ];
    let joined = report_path(&dir, "joined");
    let mut sets = work.to_vec();
    sets.push("shuffle.join=true");
    run_ok(local("shuffle", 2, &joined, &sets));
    let plain = report_path(&dir, "plain");
    run_ok(local("shuffle", 1, &plain, &work));
    let (joined, plain) = (read_report(&joined), read_report(&plain));
    assert_eq!(job(&joined, "sum")["result"]["total"], 1_000_000);
    assert_eq!(job(&joined, "sum")["result"], job(&plain, "sum")["result"]);
}

#[test]
fn a_shuffle_beyond_the_memory_budget_spills_completes_and_reports_the_bytes_spilled() {
    let dir = tempfile::tempdir().unwrap();
    let work = ["shuffle.records=2000000", "shuffle.keys=1000000"];
    let report = report_path(&dir, "spill");
    let mut cmd = local("shuffle", 2, &report, &work);
    cmd.args(["--memory", "16Mi", "--set", "heartbeat.interval_ms=50"]);
    run_ok(cmd);
    let r = read_report(&report);
    assert!(r["totals"]["spilled_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(
        job(&r, "sum")["shuffle_write_bytes"].as_u64().unwrap() > 0,
        "{r}"
    );
    let roomy = report_path(&dir, "roomy");
    run_ok(local("shuffle", 1, &roomy, &work));
    assert_eq!(
        job(&r, "sum")["result"],
        job(&read_report(&roomy), "sum")["result"]
    );
}

#[test]
fn sigkill_of_an_executor_holding_map_outputs_recomputes_them_and_the_result_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let work = [
        "shuffle.records=4000000",
        "shuffle.keys=100000",
        "shuffle.maps=16",
        "shuffle.reduces=8",
        "shuffle.cost=1000",
    ];
    let report = report_path(&dir, "killed");
    let http = format!("127.0.0.1:{}", free_port());
    let mut cmd = local_on("shuffle", 2, &report, &work, &http);
    cmd.args(["--set", "heartbeat.interval_ms=100"]);
    let (child, victim) = spawn_with_executor_pid(cmd);
    // Wait until the first wave of map tasks (one per core, 250k records each) has written its
    // outputs on both executors: records are counted when tasks succeed. Twelve of the sixteen
    // maps are still to run, so the kill lands mid-job.
    wait_for(Duration::from_secs(120), "map outputs written", || {
        (status(&http)?["jobs"][0]["records"].as_u64()? >= 1_000_000).then_some(())
    });
    sigkill(victim);
    let out = wait_with_timeout(child, Duration::from_secs(240));
    assert!(
        out.status.success(),
        "job failed after SIGKILL of an executor"
    );
    let r = read_report(&report);
    assert!(r["totals"]["executors_lost"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        r["totals"]["map_outputs_recomputed"].as_u64().unwrap() >= 1,
        "{r}"
    );
    let undisturbed = report_path(&dir, "undisturbed");
    run_ok(local("shuffle", 1, &undisturbed, &work));
    assert_eq!(
        job(&r, "sum")["result"],
        job(&read_report(&undisturbed), "sum")["result"]
    );
}

/// Run the shuffle app's sort over `keys` distinct keys into `reduces` partitions on two
/// executors with a small memory budget (2.5 MB per task, so reduce tasks of more than ~40k
/// records sort with spilled runs); check the output is a total order of exactly the input's
/// records, and return the records per partition. (Bytes spilled reach the report only through
/// heartbeats, which a job this short may finish between, so they are not asserted here.)
fn sort_on_a_cluster(keys: &str, reduces: u32) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir, "sort");
    let reduces_set = format!("shuffle.reduces={reduces}");
    let keys_set = format!("shuffle.keys={keys}");
    let sets = [
        "shuffle.op=sort",
        "shuffle.records=300000",
        "shuffle.maps=4",
        &keys_set,
        &reduces_set,
    ];
    let mut cmd = local("shuffle", 2, &report, &sets);
    cmd.args(["--memory", "16Mi"]);
    run_ok(cmd);
    let r = read_report(&report);
    let sort = &job(&r, "sort")["result"];
    let input = &job(&r, "input")["result"];
    assert_eq!(sort["records"], 300_000, "{sort}");
    assert_eq!(sort["records"], input["records"], "{sort} vs {input}");
    assert_eq!(
        sort["checksum"], input["checksum"],
        "the sorted records are exactly the input's"
    );
    assert_eq!(sort["ordered"], true, "globally sorted: {sort}");
    let parts: Vec<u64> = sort["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(parts.len(), reduces as usize);
    parts
}

#[test]
fn a_sort_over_many_keys_is_a_total_order_of_every_record_spread_over_its_partitions() {
    let parts = sort_on_a_cluster("1000000", 4);
    let even = 300_000 / 4;
    assert!(
        parts.iter().all(|&n| n > even / 2 && n < even * 2),
        "sampled ranges balance the partitions: {parts:?}"
    );
}

#[test]
fn a_sort_over_fewer_keys_than_partitions_is_a_total_order_and_spreads_them() {
    let parts = sort_on_a_cluster("3", 8);
    let used = parts.iter().filter(|&&n| n > 0).count();
    assert!(
        used > 3,
        "heavy keys dealt over several partitions: {parts:?}"
    );
}
