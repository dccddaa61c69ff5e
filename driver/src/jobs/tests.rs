//! Job manager tests: runs, stages, commits, lineage recovery.

use super::*;
use neptune_core::config::Config;
use neptune_core::shuffle::MapStatus;
use neptune_core::source_snapshot::LaunchParams;
use neptune_core::source_socket::RECEIVER_STAGE;
use neptune_core::{Dataset, TaskContext};

fn app(stream_runs: Option<u64>, batch_runs: Option<u64>) -> Arc<App> {
    let mut app = App::new("t", Arc::new(Config::default()));
    let ds = Dataset::from_fn(2, |ctx| Box::new(0..u64::from(ctx.partition()) + 1));
    app.batch("b", ds.count()).runs(batch_runs);
    app.stream("s", ds.count())
        .runs(stream_runs)
        .interval(Duration::from_millis(100));
    Arc::new(app)
}

fn result_of(app: &App, id: TaskId) -> Vec<u8> {
    let ctx = TaskContext::detached(id, JobKind::Batch);
    (app.jobs()[id.job as usize].stages[0].run_task)(&ctx).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn batch_runs_follow_each_other_until_their_limit() {
    let a = app(Some(0), Some(2));
    let mut m = JobManager::new(a.clone(), Arc::default());
    let s = m.start(ms(0));
    assert_eq!(s.submit.len(), 1);
    for t in s.submit[0].clone() {
        let next = m.task_succeeded(ms(5), t.id, result_of(&a, t.id), 1, "e0");
        if t.id.partition == 1 {
            assert_eq!(next.submit.len(), 1, "epoch 1 starts when epoch 0 commits");
            assert_eq!(next.submit[0][0].id.run, 1);
        }
    }
    assert_eq!(m.stats(0).runs, 1);
    assert_eq!(m.stats(0).last_result, serde_json::json!(3));
    assert!(!m.all_done());
}

#[test]
fn a_micro_batch_committing_after_a_later_one_does_not_replace_its_result() {
    // Run r counts r + 1 records: each run's result is its own.
    let mut app = App::new("t", Arc::new(Config::default()));
    let ds = Dataset::from_fn(1, |ctx| Box::new(0..ctx.run() + 1));
    app.stream("s", ds.count())
        .runs(Some(2))
        .interval(Duration::from_millis(100));
    let a = Arc::new(app);
    let mut m = JobManager::new(a.clone(), Arc::default());
    m.start(ms(0));
    let due = m.tick(ms(250)).submit.concat();
    assert_eq!(due.iter().map(|t| t.id.run).collect::<Vec<_>>(), [0, 1]);
    // Run 1 commits first, then run 0 (it ran long).
    for t in due.iter().rev() {
        m.task_succeeded(ms(260), t.id, result_of(&a, t.id), 1, "e0");
    }
    assert_eq!(m.stats(0).runs, 2);
    assert_eq!(
        m.stats(0).last_result,
        serde_json::json!(2),
        "run 1's count"
    );
    assert_eq!(m.stats(0).last_result_run, Some(1));
}

#[test]
fn stream_micro_batches_are_due_every_interval_and_latency_is_measured_from_due_time() {
    let a = app(Some(3), Some(0));
    let mut m = JobManager::new(a.clone(), Arc::default());
    assert!(m.start(ms(0)).submit.is_empty());
    assert_eq!(m.next_deadline(), Some(ms(100)));
    assert!(m.tick(ms(99)).submit.is_empty());
    let due = m.tick(ms(250));
    assert_eq!(due.submit.len(), 2, "micro-batches due at 100 and 200");
    for t in due.submit.concat() {
        m.task_succeeded(ms(260), t.id, result_of(&a, t.id), 1, "e0");
    }
    let lat = &m.stats(1).latency;
    assert_eq!(lat.len(), 2);
    // Both fall in the default warm-up (the first second of the job's micro-batches).
    assert_eq!((lat.warmup_ms().count, lat.steady_ms().count), (2, 0));
    assert_eq!(lat.warmup_ms().max, 160.0);
    assert_eq!(lat.recent(), vec![(0.26, 160.0), (0.26, 60.0)]);
}

/// 2023-11-14T22:13:20Z, the wall clock of the source-timestamp tests.
const WALL_MS: i64 = 1_700_000_000_000;

fn wall() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(WALL_MS as u64)
}

#[test]
fn source_timestamps_give_each_micro_batch_its_source_to_commit_latency() {
    let a = app(Some(3), Some(0));
    let mut m = JobManager::new(a.clone(), Arc::default());
    m.set_wall_clock(wall);
    m.set_warmup(crate::stats::Warmup {
        duration: Duration::ZERO,
        runs: 1,
    });
    m.start(ms(0));
    let mut steps = Vec::new();
    for (now, ages) in [(150, [900, 700]), (250, [400, 50])] {
        for (t, age) in m.tick(ms(now)).submit.concat().into_iter().zip(ages) {
            // Each task read records produced `age` and `age - 100` ms before the commit.
            let times =
                EventTimes::one(WALL_MS - age).merged(&EventTimes::one(WALL_MS - age + 100));
            m.note_event_times(t.id, times);
            steps.push(m.task_succeeded(ms(now + 10), t.id, result_of(&a, t.id), 1, "e0"));
        }
    }
    let st = m.stats(1);
    let (oldest, mean) = (&st.source_to_commit, &st.source_to_commit_mean);
    assert_eq!((oldest.warmup_ms().count, oldest.steady_ms().count), (1, 1));
    assert_eq!(oldest.warmup_ms().max, 900.0, "the run's oldest record");
    assert_eq!(oldest.steady_ms().max, 400.0);
    // Run 1's records: produced 400, 300, 50 and -50 (clamped into the mean) ms before.
    assert_eq!(
        mean.steady_ms().max,
        175.0,
        "the mean of its four records' timestamps"
    );
    let observed: Vec<_> = steps
        .iter()
        .flat_map(|s| s.source_to_commit.clone())
        .collect();
    assert_eq!(
        observed,
        vec![(1, ms(900)), (1, ms(400))],
        "one per micro-batch, for /metrics"
    );
}

#[test]
fn a_record_stamped_after_the_commit_counts_as_no_wait() {
    let a = app(Some(1), Some(0));
    let mut m = JobManager::new(a.clone(), Arc::default());
    m.set_wall_clock(wall);
    m.start(ms(0));
    for t in m.tick(ms(150)).submit.concat() {
        // The producer's clock runs 5 s ahead of the driver's.
        m.note_event_times(t.id, EventTimes::one(WALL_MS + 5_000));
        m.task_succeeded(ms(160), t.id, result_of(&a, t.id), 1, "e0");
    }
    assert_eq!(m.stats(1).source_to_commit.warmup_ms().max, 0.0);
    assert!(
        m.stats(0).source_to_commit.is_empty(),
        "the batch job has none"
    );
}

#[test]
fn latencies_after_the_warmup_are_steady_state() {
    let a = app(Some(3), Some(0));
    let mut m = JobManager::new(a.clone(), Arc::default());
    m.set_warmup(crate::stats::Warmup {
        duration: Duration::ZERO,
        runs: 1,
    });
    m.start(ms(0));
    for now in [150, 250] {
        for t in m.tick(ms(now)).submit.concat() {
            m.task_succeeded(ms(now + 10), t.id, result_of(&a, t.id), 1, "e0");
        }
    }
    let lat = &m.stats(1).latency;
    assert_eq!((lat.warmup_ms().count, lat.steady_ms().count), (1, 1));
    assert_eq!((lat.warmup_ms().max, lat.steady_ms().max), (60.0, 60.0));
}

#[test]
fn duplicate_results_are_ignored() {
    let a = app(Some(0), Some(1));
    let mut m = JobManager::new(a.clone(), Arc::default());
    let s = m.start(ms(0));
    let t = s.submit[0][0].id;
    m.task_succeeded(ms(1), t, result_of(&a, t), 1, "e0");
    m.task_succeeded(ms(2), t, result_of(&a, t), 1, "e0");
    assert_eq!(m.stats(0).records, 1);
    assert_eq!(m.stats(0).runs, 0);
}

fn two_stage() -> Arc<App> {
    let mut app = App::new("t", Arc::new(Config::default()));
    let words = Dataset::from_fn(2, |_| Box::new(vec![("a".to_string(), 1u64)].into_iter()));
    app.batch("wc", words.reduce_by_key(2, |a, b| a + b).count())
        .runs(Some(1));
    Arc::new(app)
}

fn map_status(bytes: Vec<u64>) -> Vec<u8> {
    postcard::to_stdvec(&MapStatus { bytes, records: 1 }).unwrap()
}

fn ids(step: &Step) -> Vec<(u32, u32)> {
    step.submit
        .concat()
        .iter()
        .map(|t| (t.id.stage, t.id.partition))
        .collect()
}

#[test]
fn reduce_tasks_prefer_the_executor_holding_most_of_their_input() {
    let a = two_stage();
    let mut m = JobManager::new(a.clone(), Arc::default());
    let s = m.start(ms(0));
    let maps = s.submit[0].clone();
    assert_eq!(a.jobs()[0].stages.len(), 2);
    m.task_succeeded(ms(1), maps[0].id, map_status(vec![90, 10]), 1, "e0");
    let next = m.task_succeeded(ms(2), maps[1].id, map_status(vec![5, 80]), 1, "e1");
    let reduces = next.submit.concat();
    assert_eq!(ids(&next), vec![(1, 0), (1, 1)]);
    assert_eq!(reduces[0].preferred, vec!["e0".to_string()]);
    assert_eq!(reduces[1].preferred, vec!["e1".to_string()]);
    assert_eq!(
        m.stats(0).shuffle_write_bytes,
        185,
        "bytes the map tasks wrote"
    );
    let params = m
        .params_for(reduces[0].id, |e| Some(format!("{e}:1")))
        .unwrap();
    let reads = postcard::from_bytes::<LaunchParams>(&params).unwrap().reads;
    assert_eq!(reads[0].stage, 0);
    assert_eq!(reads[0].maps[1].addr, "e1:1");
}

#[test]
fn a_lost_executor_map_outputs_are_recomputed_before_held_reduce_tasks_run_again() {
    let a = two_stage();
    let mut m = JobManager::new(a.clone(), Arc::default());
    let maps = m.start(ms(0)).submit[0].clone();
    m.task_succeeded(ms(1), maps[0].id, map_status(vec![1, 1]), 1, "e0");
    let reduces = m
        .task_succeeded(ms(2), maps[1].id, map_status(vec![1, 1]), 1, "e1")
        .submit
        .concat();
    let lost = m.executor_lost("e1");
    assert_eq!(ids(&lost), vec![(0, 1)], "only e1's map output runs again");
    assert!(lost.submit[0][0].attempt >= lineage::RESUBMIT_ATTEMPT);
    assert!(
        m.params_for(reduces[0].id, |e| Some(e.to_string()))
            .is_err(),
        "no launch while an input is missing"
    );
    let held = m.task_returned(reduces[0].id, Some("e1"), true);
    assert!(
        held.submit.is_empty(),
        "held until the recomputation is done"
    );
    let done = m.task_succeeded(ms(3), maps[1].id, map_status(vec![1, 1]), 1, "e0");
    assert_eq!(ids(&done), vec![(1, 0)]);
    assert_eq!(m.stats(0).recomputed, 1);
    let r = postcard::to_stdvec(&1u64).unwrap();
    m.task_succeeded(ms(4), reduces[1].id, r.clone(), 1, "e0");
    let fin = m.task_succeeded(ms(5), reduces[0].id, r, 1, "e0");
    assert_eq!(fin.released, vec![(0, 0)]);
    assert_eq!(m.stats(0).runs, 1);
}

#[test]
fn tasks_reading_a_receiver_prefer_its_executor_are_told_where_it_runs_and_release_its_cuts() {
    let mut app = App::new("t", Arc::new(Config::default()));
    let lines = app.socket_lines("events", "localhost:9999", 2).unwrap();
    app.stream("count", lines.count())
        .runs(Some(2))
        .interval(ms(100));
    let a = Arc::new(app);
    let mut m = JobManager::new(a.clone(), Arc::default());
    assert_eq!(m.receiver_first_run(0), 0);
    m.place_receiver(0, Some("e1".into()));
    m.start(ms(0));
    let tasks = m.tick(ms(100)).submit.concat();
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().all(|t| t.preferred == vec!["e1".to_string()]));
    assert_eq!(m.receiver_first_run(0), 1, "run 0 has begun");
    let params = m
        .params_for(tasks[0].id, |e| Some(format!("{e}:7")))
        .unwrap();
    let reads = postcard::from_bytes::<LaunchParams>(&params).unwrap().reads;
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].stage, RECEIVER_STAGE);
    assert_eq!(reads[0].maps[0].executor, "e1");
    assert_eq!(reads[0].maps[0].addr, "e1:7");
    // Unplaced (its executor was lost): no location, so the task fails naming the receiver
    // instead of reading another executor's data.
    m.place_receiver(0, None);
    let params = m.params_for(tasks[0].id, |e| Some(e.to_string())).unwrap();
    let reads = postcard::from_bytes::<LaunchParams>(&params).unwrap().reads;
    assert!(reads[0].maps.is_empty());
    let r = postcard::to_stdvec(&0u64).unwrap();
    m.task_succeeded(ms(101), tasks[0].id, r.clone(), 0, "e1");
    let fin = m.task_succeeded(ms(102), tasks[1].id, r, 0, "e1");
    assert_eq!(fin.released, vec![(0, 0)], "the run's cuts are dropped");
}

/// Task `partition` of `stage` in run 0 of job 0.
fn task(stage: u32, partition: u32) -> TaskId {
    TaskId {
        job: 0,
        run: 0,
        stage,
        partition,
    }
}

/// Map task (`stage`, `partition`) of run 0 wrote one byte per reduce partition on `executor`.
fn map_done(m: &mut JobManager, stage: u32, partition: u32, executor: &str) -> Step {
    m.task_succeeded(
        ms(1),
        task(stage, partition),
        map_status(vec![1, 1]),
        1,
        executor,
    )
}

/// Result-stage task `partition` of run 0 counted one record.
fn reduce_done(m: &mut JobManager, stage: u32, partition: u32) -> Step {
    let one = postcard::to_stdvec(&1u64).unwrap();
    m.task_succeeded(ms(2), task(stage, partition), one, 1, "e0")
}

/// `left (2 maps) join right (3 maps)` into 2 partitions: map stages 0 and 1, reduce stage 2.
fn join_plan() -> Arc<App> {
    let mut app = App::new("t", Arc::new(Config::default()));
    let left = Dataset::from_fn(2, |ctx| {
        Box::new(vec![(format!("k{}", ctx.partition()), 1u64)].into_iter())
    });
    let right = Dataset::from_fn(3, |ctx| {
        Box::new(vec![(format!("k{}", ctx.partition()), 10u64)].into_iter())
    });
    app.batch("join", left.join(&right, 2).count())
        .runs(Some(1));
    let app = Arc::new(app);
    let reads: Vec<Vec<u32>> = app.jobs()[0]
        .stages
        .iter()
        .map(|s| s.reads.clone())
        .collect();
    assert_eq!(
        reads,
        vec![vec![], vec![], vec![0, 1]],
        "the plan is join-shaped"
    );
    app
}

/// A chain of two shuffles: map stage 0, map stage 1 reading it, result stage 2 reading 1.
fn chain_plan() -> Arc<App> {
    let mut app = App::new("t", Arc::new(Config::default()));
    let words = Dataset::from_fn(2, |_| Box::new(vec![("a".to_string(), 1u64)].into_iter()));
    let counts = words
        .reduce_by_key(2, |a, b| a + b)
        .map(|(w, n)| (n, w))
        .group_by_key(2);
    app.batch("chain", counts.count()).runs(Some(1));
    Arc::new(app)
}

#[test]
fn a_join_submits_both_map_stages_in_the_same_step_before_either_completes() {
    let mut m = JobManager::new(join_plan(), Arc::default());
    let s = m.start(ms(0));
    assert_eq!(s.submit.len(), 2, "one task set per map stage");
    assert_eq!(ids(&s), vec![(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]);
    assert!(s.submit.concat().iter().all(|t| t.attempt == 0));
}

#[test]
fn a_join_reduce_stage_is_submitted_only_when_both_map_stages_are_complete() {
    let mut m = JobManager::new(join_plan(), Arc::default());
    m.start(ms(0));
    for p in 0..2 {
        let s = map_done(&mut m, 0, p, "e0");
        assert!(s.submit.is_empty(), "the left side alone is not enough");
    }
    assert!(map_done(&mut m, 1, 0, "e1").submit.is_empty());
    assert!(map_done(&mut m, 1, 1, "e1").submit.is_empty());
    assert!(
        m.params_for(task(2, 0), |e| Some(e.to_string())).is_err(),
        "a reduce task cannot launch before both sides are complete"
    );
    let s = m.task_succeeded(ms(1), task(1, 2), map_status(vec![9, 0]), 1, "e1");
    assert_eq!(ids(&s), vec![(2, 0), (2, 1)]);
    let reduces = s.submit.concat();
    assert_eq!(
        reduces[0].preferred,
        vec!["e1".to_string()],
        "11 of 13 bytes"
    );
    assert_eq!(
        reduces[1].preferred,
        vec!["e0".to_string(), "e1".to_string()],
        "2 and 2 of 4 bytes"
    );
    let params = m
        .params_for(reduces[0].id, |e| Some(format!("{e}:1")))
        .unwrap();
    let reads = postcard::from_bytes::<LaunchParams>(&params).unwrap().reads;
    let shape: Vec<(u32, usize)> = reads.iter().map(|r| (r.stage, r.maps.len())).collect();
    assert_eq!(shape, vec![(0, 2), (1, 3)], "both sides, by input slot");
    assert!(reduce_done(&mut m, 2, 0).committed.is_empty());
    let fin = reduce_done(&mut m, 2, 1);
    assert_eq!(fin.committed, vec![(0, None)]);
    assert_eq!(fin.released, vec![(0, 0)]);
    assert_eq!(m.stats(0).records, 7, "five map tasks and two reduce tasks");
}

#[test]
fn losing_an_executor_while_both_map_stages_are_in_flight_recomputes_exactly_what_is_lost() {
    let mut m = JobManager::new(join_plan(), Arc::default());
    m.start(ms(0));
    map_done(&mut m, 0, 0, "e1");
    map_done(&mut m, 0, 1, "e0");
    map_done(&mut m, 1, 0, "e1");
    map_done(&mut m, 1, 1, "e0");
    // Map task (1, 2) is still in flight: the scheduler re-queues it if it ran on e1.
    let lost = m.executor_lost("e1");
    assert_eq!(ids(&lost), vec![(0, 0), (1, 0)], "one lost output per side");
    assert!(
        lost.submit
            .concat()
            .iter()
            .all(|t| t.attempt >= lineage::RESUBMIT_ATTEMPT)
    );
    assert_eq!(m.stats(0).recomputed, 2);
    assert!(
        m.executor_lost("e1").submit.is_empty(),
        "nothing more is lost"
    );
    assert!(map_done(&mut m, 1, 2, "e0").submit.is_empty());
    assert!(map_done(&mut m, 0, 0, "e0").submit.is_empty());
    let s = map_done(&mut m, 1, 0, "e0");
    assert_eq!(ids(&s), vec![(2, 0), (2, 1)]);
    assert!(
        map_done(&mut m, 1, 0, "e1").submit.is_empty(),
        "a late duplicate changes nothing"
    );
    reduce_done(&mut m, 2, 0);
    let fin = reduce_done(&mut m, 2, 1);
    assert_eq!(fin.committed, vec![(0, None)]);
    assert_eq!(m.stats(0).runs, 1);
    assert_eq!(m.stats(0).last_result, serde_json::json!(2));
    assert_eq!(
        m.stats(0).records,
        7,
        "recomputations do not count records twice"
    );
    assert!(
        matches!(
            m.params_for(task(0, 0), |e| Some(e.to_string())),
            Err(LaunchBlocked::RunOver)
        ),
        "a stale task of a committed run does not launch"
    );
    assert!(map_done(&mut m, 0, 0, "e0").submit.is_empty());
    assert_eq!(m.stats(0).runs, 1);
}

#[test]
fn a_fetch_failure_in_a_reduce_with_two_parents_recomputes_the_lost_outputs_of_each() {
    let mut m = JobManager::new(join_plan(), Arc::default());
    m.start(ms(0));
    map_done(&mut m, 0, 0, "e0");
    map_done(&mut m, 0, 1, "e1");
    map_done(&mut m, 1, 0, "e1");
    map_done(&mut m, 1, 1, "e0");
    let reduces = map_done(&mut m, 1, 2, "e1").submit.concat();
    assert_eq!(reduces.len(), 2);
    let s = m.task_returned(reduces[0].id, Some("e1"), true);
    assert_eq!(
        ids(&s),
        vec![(0, 1), (1, 0), (1, 2)],
        "e1's outputs of both sides"
    );
    assert_eq!(m.stats(0).recomputed, 3);
    assert!(matches!(
        m.params_for(reduces[1].id, |e| Some(e.to_string())),
        Err(LaunchBlocked::InputLost)
    ));
    assert!(
        m.task_returned(reduces[1].id, None, false)
            .submit
            .is_empty()
    );
    assert!(map_done(&mut m, 1, 2, "e0").submit.is_empty());
    assert!(map_done(&mut m, 0, 1, "e0").submit.is_empty());
    let s = map_done(&mut m, 1, 0, "e0");
    assert_eq!(ids(&s), vec![(2, 0), (2, 1)], "held reduce tasks run again");
    assert!(
        s.submit
            .concat()
            .iter()
            .all(|t| t.attempt >= lineage::RESUBMIT_ATTEMPT)
    );
    reduce_done(&mut m, 2, 1);
    assert_eq!(reduce_done(&mut m, 2, 0).committed, vec![(0, None)]);
}

#[test]
fn a_reduce_reading_from_a_vanished_executor_is_returned_and_that_input_recomputed() {
    let mut m = JobManager::new(join_plan(), Arc::default());
    m.start(ms(0));
    for (stage, p, e) in [(0, 0, "e0"), (0, 1, "e0"), (1, 0, "e0"), (1, 1, "e0")] {
        map_done(&mut m, stage, p, e);
    }
    let reduces = map_done(&mut m, 1, 2, "e9").submit.concat();
    let addr = |e: &str| (e != "e9").then(|| e.to_string());
    let err = m.params_for(reduces[0].id, addr).unwrap_err();
    assert!(matches!(&err, LaunchBlocked::ExecutorGone(e) if e == "e9"));
    let s = m.task_returned(reduces[0].id, Some("e9"), false);
    assert_eq!(ids(&s), vec![(1, 2)]);
}

#[test]
fn lost_outputs_of_a_chain_are_recomputed_earliest_stage_first() {
    let a = chain_plan();
    let mut m = JobManager::new(a, Arc::default());
    assert_eq!(ids(&m.start(ms(0))), vec![(0, 0), (0, 1)]);
    map_done(&mut m, 0, 0, "e1");
    assert_eq!(ids(&map_done(&mut m, 0, 1, "e0")), vec![(1, 0), (1, 1)]);
    map_done(&mut m, 1, 0, "e0");
    assert_eq!(ids(&map_done(&mut m, 1, 1, "e1")), vec![(2, 0), (2, 1)]);
    let lost = m.executor_lost("e1");
    assert_eq!(ids(&lost), vec![(0, 0)], "stage 1 waits for its input");
    let s = map_done(&mut m, 0, 0, "e0");
    assert_eq!(ids(&s), vec![(1, 1)]);
    assert!(map_done(&mut m, 1, 1, "e0").submit.is_empty());
    assert_eq!(m.stats(0).recomputed, 2);
}

#[test]
fn a_lost_output_no_incomplete_stage_reads_is_not_recomputed() {
    let a = chain_plan();
    let mut m = JobManager::new(a, Arc::default());
    m.start(ms(0));
    map_done(&mut m, 0, 0, "e1");
    map_done(&mut m, 0, 1, "e0");
    map_done(&mut m, 1, 0, "e0");
    map_done(&mut m, 1, 1, "e0");
    assert!(
        m.executor_lost("e1").submit.is_empty(),
        "stage 1 is complete: nothing needs stage 0 any more"
    );
    assert_eq!(m.stats(0).recomputed, 0);
    let s = m.task_returned(task(2, 0), Some("e0"), true);
    assert_eq!(
        ids(&s),
        vec![(0, 0)],
        "stage 1 needs stage 0 again once it loses outputs: the earliest lost runs first"
    );
    assert_eq!(m.stats(0).recomputed, 1);
}
