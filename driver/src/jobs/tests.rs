//! Job manager tests: runs, stages, commits, lineage recovery.

use super::*;
use neptune_core::config::Config;
use neptune_core::shuffle::{MapStatus, ShuffleRead};
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
    let lat = m.stats(1).latency_ms.clone();
    assert_eq!(lat.len(), 2);
    assert_eq!(lat.max(), 160.0);
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
    let params = m
        .params_for(reduces[0].id, |e| Some(format!("{e}:1")))
        .unwrap();
    let reads: Vec<ShuffleRead> = postcard::from_bytes(&params).unwrap();
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
            .is_none(),
        "no launch while an input is missing"
    );
    let held = m.task_returned(reduces[0].id, Some("e1"));
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
    let reads: Vec<ShuffleRead> = postcard::from_bytes(&params).unwrap();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].stage, RECEIVER_STAGE);
    assert_eq!(reads[0].maps[0].executor, "e1");
    assert_eq!(reads[0].maps[0].addr, "e1:7");
    // Unplaced (its executor was lost): no location, so the task fails naming the receiver
    // instead of reading another executor's data.
    m.place_receiver(0, None);
    let params = m.params_for(tasks[0].id, |e| Some(e.to_string())).unwrap();
    let reads: Vec<ShuffleRead> = postcard::from_bytes(&params).unwrap();
    assert!(reads[0].maps.is_empty());
    let r = postcard::to_stdvec(&0u64).unwrap();
    m.task_succeeded(ms(101), tasks[0].id, r.clone(), 0, "e1");
    let fin = m.task_succeeded(ms(102), tasks[1].id, r, 0, "e1");
    assert_eq!(fin.released, vec![(0, 0)], "the run's cuts are dropped");
}
