//! Job manager tests of input snapshots: a run lists its file sources once when it begins, every
//! task's launch carries its share, later files wait for the next run.

use super::*;
use neptune_core::config::Config;
use neptune_core::source::text_files;
use neptune_core::source_snapshot::{FileSlice, LaunchParams};
use neptune_core::{Dataset, TaskContext};

fn app(pattern: &str, runs: u64) -> Arc<App> {
    let mut app = App::new("t", Arc::new(Config::default()));
    let lines: Dataset<String> = text_files(pattern).unwrap();
    app.batch("lines", lines.count()).runs(Some(runs));
    Arc::new(app)
}

fn files_of(m: &JobManager, id: TaskId) -> Vec<FileSlice> {
    let params = m.params_for(id, |e| Some(e.to_string())).unwrap();
    postcard::from_bytes::<LaunchParams>(&params)
        .unwrap()
        .files
        .expect("a stage reading a file source gets its files")
}

/// Run task `id` as an executor would: with the files of its launch.
fn run(a: &App, m: &JobManager, id: TaskId) -> Vec<u8> {
    let ctx = TaskContext::detached(id, JobKind::Batch);
    ctx.set_input_files(files_of(m, id));
    (a.jobs()[0].stages[0].run_task)(&ctx).unwrap()
}

#[test]
fn a_run_reads_the_files_listed_when_it_began_and_the_next_run_the_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.txt"), "1\n2\n").unwrap();
    std::fs::write(dir.path().join("c.txt"), "3\n").unwrap();
    let pattern = dir.path().to_str().unwrap();
    let a = app(pattern, 2);
    let mut m = JobManager::new(a.clone(), Arc::default());
    let tasks = m.start(Duration::ZERO).submit.concat();
    assert_eq!(
        tasks.len(),
        2,
        "one partition per file listed at build time"
    );
    // Added (sorting first) and grown after run 0 was listed: not run 0's input.
    std::fs::write(dir.path().join("a.txt"), "new\n").unwrap();
    std::fs::write(dir.path().join("c.txt"), "3\n4\n").unwrap();
    assert_eq!(files_of(&m, tasks[0].id)[0].len, 4);
    assert!(files_of(&m, tasks[0].id)[0].path.ends_with("b.txt"));
    let mut next = Vec::new();
    for t in &tasks {
        let r = run(&a, &m, t.id);
        next.extend(
            m.task_succeeded(Duration::ZERO, t.id, r, 0, "e0")
                .submit
                .concat(),
        );
    }
    assert_eq!(m.stats(0).last_result, serde_json::json!(3));
    let input = m.stats(0).input.unwrap();
    assert_eq!((input.files, input.bytes), (2, 6));
    // Run 1 lists three files over the two partitions: partition 0 reads a.txt and c.txt.
    assert_eq!(next.len(), 2);
    let p0: Vec<String> = files_of(&m, next[0].id)
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert!(
        p0[0].ends_with("a.txt") && p0[1].ends_with("c.txt"),
        "{p0:?}"
    );
    for t in &next {
        let r = run(&a, &m, t.id);
        m.task_succeeded(Duration::ZERO, t.id, r, 0, "e0");
    }
    assert_eq!(m.stats(0).last_result, serde_json::json!(5));
    assert_eq!(m.stats(0).input.unwrap().files, 3);
    assert!(m.all_done());
}

#[test]
fn a_run_whose_input_matches_nothing_fails_the_job_naming_the_pattern() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "x\n").unwrap();
    let pattern = format!("{}/*.txt", dir.path().display());
    let a = app(&pattern, 1);
    std::fs::remove_file(dir.path().join("a.txt")).unwrap();
    let mut m = JobManager::new(a, Arc::default());
    let step = m.start(Duration::ZERO);
    assert!(step.submit.is_empty());
    let why = m.any_failed().unwrap();
    assert!(why.contains(&pattern) && why.contains("run 0"), "{why}");
}

#[test]
fn files_beyond_the_build_time_partitions_are_spread_over_them_in_the_launch_params() {
    // One partition at build time, then many files: they all go to the one task, whose params
    // grow with them; the event loop fails the job when they exceed grpc.max_message_bytes.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "x\n").unwrap();
    let a = app(dir.path().to_str().unwrap(), 1);
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("f{i:03}.txt")), "y\n").unwrap();
    }
    let mut m = JobManager::new(a, Arc::default());
    let tasks = m.start(Duration::ZERO).submit.concat();
    assert_eq!(files_of(&m, tasks[0].id).len(), 201);
    let bytes = m
        .params_for(tasks[0].id, |e| Some(e.to_string()))
        .unwrap()
        .len();
    assert!(bytes > 201 * dir.path().to_str().unwrap().len(), "{bytes}");
}
