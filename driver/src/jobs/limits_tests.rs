//! Job manager bounds: fetch-failure recomputations are limited, everything a run holds is
//! released when it ends however it ends, runs reading receivers are announced, reported values
//! are checked and saturate, a stream job that falls behind has at most `max_in_flight` runs.

use super::*;
use neptune_core::config::Config;
use neptune_core::shuffle::MapStatus;
use neptune_core::{Dataset, TaskContext};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One batch job: 2 map tasks into 2 reduce partitions, one run.
fn shuffle_app() -> Arc<App> {
    let mut app = App::new("t", Arc::new(Config::default()));
    let words = Dataset::from_fn(2, |_| Box::new(vec![("a".to_string(), 1u64)].into_iter()));
    app.batch("wc", words.reduce_by_key(2, |a, b| a + b).count())
        .runs(Some(1));
    Arc::new(app)
}

fn map_status(bytes: Vec<u64>) -> Vec<u8> {
    postcard::to_stdvec(&MapStatus { bytes, records: 1 }).unwrap()
}

fn task(stage: u32, partition: u32) -> TaskId {
    TaskId {
        job: 0,
        run: 0,
        stage,
        partition,
    }
}

/// Both maps of run 0 done on `e0`/`e1`; returns the reduce tasks.
fn maps_done(m: &mut JobManager) -> Vec<TaskSpec> {
    m.start(ms(0));
    m.task_succeeded(ms(1), task(0, 0), map_status(vec![1, 1]), 1, "e0");
    m.task_succeeded(ms(1), task(0, 1), map_status(vec![1, 1]), 1, "e1")
        .submit
        .concat()
}

#[test]
fn fetch_failures_of_one_task_are_recomputed_up_to_the_limit_then_the_job_fails_and_releases() {
    let mut m = JobManager::new(shuffle_app(), Arc::default());
    m.set_max_fetch_failures(2);
    let r = maps_done(&mut m)[0].id;
    let first = m.task_returned(r, Some("e1"), true);
    assert!(first.failed.is_empty());
    assert_eq!(
        first.submit.concat().len(),
        1,
        "e1's map output is recomputed"
    );
    m.task_succeeded(ms(2), task(0, 1), map_status(vec![1, 1]), 1, "e0");
    let second = m.task_returned(r, Some("e0"), true);
    assert_eq!(second.failed.len(), 1);
    let why = &second.failed[0].1;
    assert!(why.contains("2 times") && why.contains("e0"), "{why}");
    assert!(why.contains("driver.max_fetch_failures"), "{why}");
    assert_eq!(
        second.released,
        vec![(0, 0)],
        "the failed run's blocks are released"
    );
    assert!(m.any_failed().is_some());
    assert!(m.all_done());
}

#[test]
fn inputs_found_gone_before_a_launch_do_not_count_as_fetch_failures() {
    let mut m = JobManager::new(shuffle_app(), Arc::default());
    m.set_max_fetch_failures(1);
    let r = maps_done(&mut m)[0].id;
    for _ in 0..3 {
        assert!(m.task_returned(r, Some("e1"), false).failed.is_empty());
    }
    assert!(m.any_failed().is_none());
}

#[test]
fn a_failed_job_releases_every_run_in_flight() {
    let mut app = App::new("t", Arc::new(Config::default()));
    let ds = Dataset::from_fn(1, |_| Box::new(0..1u64));
    app.stream("s", ds.count()).runs(Some(10)).interval(ms(10));
    let mut m = JobManager::new(Arc::new(app), Arc::default());
    m.start(ms(0));
    m.tick(ms(35));
    assert_eq!(m.active_runs(0), 3);
    let s = m.fail_job(0, "boom");
    assert_eq!(s.released, vec![(0, 0), (0, 1), (0, 2)]);
    assert_eq!(s.failed, vec![(0, "boom".to_string())]);
    assert!(m.fail_job(0, "again").released.is_empty(), "released once");
}

#[test]
fn runs_reading_a_receiver_are_announced_and_listed_for_newcomers() {
    let mut app = App::new("t", Arc::new(Config::default()));
    let lines = app.socket_lines("events", "localhost:9", 2).unwrap();
    app.stream("words", lines.count())
        .runs(Some(5))
        .interval(ms(10));
    let ds = Dataset::from_fn(1, |_| Box::new(0..1u64));
    app.stream("plain", ds.count())
        .runs(Some(5))
        .interval(ms(10));
    let mut m = JobManager::new(Arc::new(app), Arc::default());
    m.start(ms(0));
    let s = m.tick(ms(25));
    assert_eq!(
        s.opened,
        vec![(0, 0), (0, 1)],
        "only the job reading the receiver"
    );
    assert_eq!(m.open_runs(), vec![(0, 0), (0, 1)]);
}

#[test]
fn a_map_result_that_is_not_a_map_status_of_the_right_size_is_refused() {
    let m = JobManager::new(shuffle_app(), Arc::default());
    assert!(m.check_result(task(0, 0), &map_status(vec![1, 1])).is_ok());
    let e = m.check_result(task(0, 0), &[0xff; 9]).unwrap_err();
    assert!(matches!(e, InvalidResult::Undecodable { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("does not decode"), "{e}");
    let e = m
        .check_result(task(0, 0), &map_status(vec![1; 1000]))
        .unwrap_err();
    assert!(
        matches!(e, InvalidResult::WrongPartitions { got: 1000, .. }),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(e.contains("1000 block sizes"), "{e}");
    assert!(
        m.check_result(task(1, 0), b"anything").is_ok(),
        "reduce results are the app's"
    );
    assert!(m.check_result(task(9, 0), b"x").is_ok());
}

#[test]
fn reported_records_and_sizes_saturate_instead_of_wrapping() {
    let mut m = JobManager::new(shuffle_app(), Arc::default());
    m.start(ms(0));
    m.task_succeeded(
        ms(1),
        task(0, 0),
        map_status(vec![u64::MAX, 5]),
        u64::MAX,
        "e0",
    );
    m.task_succeeded(
        ms(1),
        task(0, 1),
        map_status(vec![u64::MAX, 5]),
        u64::MAX,
        "e1",
    );
    m.note_skipped(0, u64::MAX);
    m.note_skipped(0, 4);
    let st = m.stats(0);
    assert_eq!(st.records, u64::MAX);
    assert_eq!(st.shuffle_write_bytes, u64::MAX);
    assert_eq!(st.malformed_skipped, u64::MAX);
}

#[test]
fn a_commit_publishing_shared_state_larger_than_a_message_fails_the_job() {
    let mut app = App::new("t", Arc::new(Config::default()));
    let model = app.state("model", Vec::<u8>::new());
    let ds = Dataset::from_fn(1, |_| Box::new(0..1u64));
    app.batch("train", ds.count())
        .runs(Some(1))
        .on_result(move |ctx, _| {
            model.publish(ctx, &vec![7u8; 4096])?;
            Ok(())
        });
    let app = Arc::new(app);
    let mut m = JobManager::new(app.clone(), Arc::default());
    m.set_max_message_bytes(1024);
    let s = m.start(ms(0));
    let t = s.submit[0][0].id;
    let ctx = TaskContext::detached(t, JobKind::Batch);
    let result = (app.jobs()[0].stages[0].run_task)(&ctx).unwrap();
    let s = m.task_succeeded(ms(1), t, result, 1, "e0");
    assert!(s.published.is_empty(), "nothing is sent");
    let why = &s.failed[0].1;
    assert!(
        why.contains("`model`") && why.contains("grpc.max_message_bytes"),
        "{why}"
    );
}

/// A stream job of one task per micro-batch counting `run + 1` records, every 10 ms, at most
/// `max` micro-batches in flight.
fn capped_stream(max: u64) -> Arc<App> {
    let cfg = Config::from_args(&[format!("jobs.s.max_in_flight={max}")]).unwrap();
    let mut app = App::new("t", Arc::new(cfg));
    let ds = Dataset::from_fn(1, |ctx| Box::new(0..ctx.run() + 1));
    app.stream("s", ds.count()).interval(ms(10));
    app.apply_overrides().unwrap();
    Arc::new(app)
}

fn succeed(m: &mut JobManager, app: &App, now: u64, id: TaskId) -> Step {
    let ctx = TaskContext::detached(id, JobKind::Stream);
    let result = (app.jobs()[0].stages[0].run_task)(&ctx).unwrap();
    m.task_succeeded(ms(now), id, result, 1, "e0")
}

#[test]
fn a_stream_job_behind_keeps_max_in_flight_runs_and_begins_the_rest_in_order_as_runs_commit() {
    let a = capped_stream(2);
    let mut m = JobManager::new(a.clone(), Arc::default());
    m.start(ms(0));
    // Five micro-batches are due by 55 ms (at 10..50): two begin, three wait.
    let begun = m.tick(ms(55)).submit.concat();
    assert_eq!(begun.iter().map(|t| t.id.run).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(m.active_runs(0), 2);
    assert_eq!(m.waiting_runs(0, ms(55)), 3);
    assert_eq!(
        m.next_deadline(),
        None,
        "nothing may begin until a run commits"
    );
    assert_eq!(m.next_due(0), None, "nothing to announce ahead either");
    assert!(m.tick(ms(70)).submit.is_empty(), "still two in flight");
    assert_eq!(m.waiting_runs(0, ms(70)), 5, "due at 30..70");

    // Run 0 commits at 75: run 2 (due at 30) begins in its place.
    let next = succeed(&mut m, &a, 75, begun[0].id).submit.concat();
    assert_eq!(next.iter().map(|t| t.id.run).collect::<Vec<_>>(), [2]);
    assert_eq!(m.active_runs(0), 2);
    assert_eq!(m.waiting_runs(0, ms(75)), 4, "due at 40..70");
    // Run 2's latency counts from its due time, the wait for a slot included.
    let next = succeed(&mut m, &a, 90, next[0].id).submit.concat();
    assert_eq!(next.iter().map(|t| t.id.run).collect::<Vec<_>>(), [3]);
    assert_eq!(
        m.stats(0).latency.recent(),
        vec![(0.075, 65.0), (0.09, 60.0)]
    );
    assert_eq!(
        m.stats(0).last_result,
        serde_json::json!(3),
        "run 2's count"
    );

    // Caught up: with the backlog drained the job follows its interval again.
    let mut in_flight = vec![begun[1].id, next[0].id];
    let mut now = 90;
    while m.waiting_runs(0, ms(now)) > 0 {
        now += 1;
        let id = in_flight.remove(0);
        in_flight.extend(
            succeed(&mut m, &a, now, id)
                .submit
                .concat()
                .iter()
                .map(|t| t.id),
        );
        assert!(m.active_runs(0) <= 2);
    }
    assert_eq!(
        m.stats(0).runs + m.active_runs(0) as u64,
        now / 10,
        "every micro-batch due by then began, none was skipped"
    );
}

#[test]
fn max_in_flight_must_be_positive() {
    let cfg = Config::from_args(&["jobs.s.max_in_flight=0"]).unwrap();
    let mut app = App::new("t", Arc::new(cfg));
    let ds = Dataset::from_fn(1, |_| Box::new(0..1u64));
    app.stream("s", ds.count());
    let e = app.apply_overrides().unwrap_err().to_string();
    assert!(e.contains("jobs.s.max_in_flight"), "{e}");
}
