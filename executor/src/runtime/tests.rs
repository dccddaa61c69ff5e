//! Tests of the task runtime with real coroutines: suspend, resume, kill, panics, races, snapshot.
//!
//! may's workers are process-wide, so these tests take a lock and run one runtime at a time.
//! Every wait is bounded: a hang fails the test with a snapshot instead of stalling CI.

use super::*;
use neptune_core::task::TaskContext;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

static ONE_RUNTIME_AT_A_TIME: Mutex<()> = Mutex::new(());
/// Every test asks for the same count: the first runtime fixes it for the whole process.
const CORES: usize = 2;
const PATIENCE: Duration = Duration::from_secs(30);

fn task(partition: u32) -> TaskId {
    TaskId {
        job: 1,
        run: 0,
        stage: 0,
        partition,
    }
}

/// A batch-like operator: `records` records, a small computation each, a yield point each.
fn count_to(records: u64) -> TaskBody {
    Box::new(move |ctx| compute(ctx, records).map(|acc| acc.to_le_bytes().to_vec()))
}

fn compute(ctx: &TaskContext, records: u64) -> Result<u64, String> {
    let mut acc = 0u64;
    for i in 0..records {
        if !ctx.yield_point() {
            return Err("stopped by kill".into());
        }
        ctx.count_record();
        acc = (acc ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(7);
    }
    Ok(acc)
}

/// What `count_to(records)` returns when nothing disturbs it.
fn undisturbed(records: u64) -> Vec<u8> {
    let ctx = TaskContext::detached(task(0), JobKind::Batch);
    compute(&ctx, records).unwrap().to_le_bytes().to_vec()
}

/// A task that runs until killed, holding `retained` bytes.
fn forever(retained: u64) -> TaskBody {
    Box::new(move |ctx| {
        ctx.set_retained_bytes(retained);
        compute(ctx, u64::MAX).map(|_| Vec::new())
    })
}

/// A task that counts records until `stop` is set and returns how many it counted.
fn until_stopped(stop: Arc<AtomicBool>) -> TaskBody {
    Box::new(move |ctx| {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if !ctx.yield_point() {
                return Err("stopped by kill".into());
            }
            ctx.count_record();
            n += 1;
        }
        Ok(n.to_le_bytes().to_vec())
    })
}

struct Harness {
    rt: TaskRuntime,
    events: UnboundedReceiver<RuntimeEvent>,
    /// Events read while looking for another task's.
    stash: VecDeque<RuntimeEvent>,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Harness {
    fn new() -> Self {
        let guard = ONE_RUNTIME_AT_A_TIME
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (tx, events) = unbounded_channel();
        let rt = TaskRuntime::new(CORES, Arc::new(Broadcasts::default()), tx);
        Self {
            rt,
            events,
            stash: VecDeque::new(),
            _one_at_a_time: guard,
        }
    }

    fn launch(&self, id: TaskId, kind: JobKind, body: TaskBody) {
        self.rt.launch(id, 0, kind, body).unwrap();
    }

    /// The next event about `id`, within [`PATIENCE`].
    fn next_of(&mut self, id: TaskId) -> RuntimeEvent {
        if let Some(i) = self.stash.iter().position(|e| e.id() == id) {
            return self.stash.remove(i).unwrap();
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            match self.events.try_recv() {
                Ok(e) if e.id() == id => return e,
                Ok(e) => self.stash.push_back(e),
                Err(_) if std::time::Instant::now() > deadline => {
                    panic!(
                        "no event for {id} in {PATIENCE:?}; runtime: {:#?}",
                        self.rt.snapshot()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }

    fn expect_suspended(&mut self, id: TaskId) {
        let e = self.next_of(id);
        assert!(
            matches!(e, RuntimeEvent::Suspended { .. }),
            "expected Suspended, got {e:?}"
        );
    }

    fn expect_resumed(&mut self, id: TaskId) {
        let e = self.next_of(id);
        assert!(
            matches!(e, RuntimeEvent::Resumed { .. }),
            "expected Resumed, got {e:?}"
        );
    }

    /// Waits for `Finished` of `id`, skipping its other events; returns (outcome, records).
    fn finished(&mut self, id: TaskId) -> (TaskOutcome, u64) {
        loop {
            if let RuntimeEvent::Finished {
                outcome, records, ..
            } = self.next_of(id)
            {
                return (outcome, records);
            }
        }
    }

    fn records(&self, id: TaskId) -> u64 {
        let snap = self.rt.snapshot();
        snap.tasks
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.records)
            .unwrap_or(0)
    }

    /// Wait until `id` holds a core (right after launch it may still be queued behind the cores a
    /// previous test's tasks are releasing).
    fn wait_running(&self, id: TaskId) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while !self
            .rt
            .snapshot()
            .tasks
            .iter()
            .any(|t| t.id == id && t.state == TaskState::Running)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{id} never got a core"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn wait_until_records(&self, id: TaskId, at_least: u64) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while self.records(id) < at_least {
            assert!(
                std::time::Instant::now() < deadline,
                "{id} made no progress"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Harness {
    /// Kill whatever a (possibly failed) test left behind, so it cannot hold the shared workers.
    fn drop(&mut self) {
        for t in self.rt.snapshot().tasks {
            let _ = self.rt.kill(t.id);
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        while !self.rt.snapshot().tasks.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn a_suspended_task_parks_keeps_its_progress_and_ends_with_the_undisturbed_result() {
    const RECORDS: u64 = 3_000_000;
    let mut h = Harness::new();
    h.launch(task(0), JobKind::Batch, count_to(RECORDS));
    let mut suspensions = 0;
    loop {
        match h.rt.suspend(task(0), Instant::now()) {
            Ok(()) => {}
            // Launched but not yet on a core (a loaded machine): try again.
            Err(RuntimeError::NotRunning {
                state: TaskState::Queued,
                ..
            }) => {
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
            Err(_) => break, // finished meanwhile
        }
        match h.next_of(task(0)) {
            RuntimeEvent::Suspended { .. } => suspensions += 1,
            RuntimeEvent::Finished {
                outcome, records, ..
            } => {
                assert_eq!(
                    (outcome, records),
                    (TaskOutcome::Succeeded(undisturbed(RECORDS)), RECORDS)
                );
                assert!(suspensions > 0);
                return;
            }
            other => panic!("unexpected {other:?}"),
        }
        let parked_at = h.records(task(0));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            h.records(task(0)),
            parked_at,
            "a parked task makes no progress"
        );
        h.rt.resume(task(0), Instant::now()).unwrap();
        h.expect_resumed(task(0));
    }
    let (outcome, records) = h.finished(task(0));
    assert_eq!(
        (outcome, records),
        (TaskOutcome::Succeeded(undisturbed(RECORDS)), RECORDS)
    );
    assert!(suspensions > 0, "the task was never suspended");
}

#[test]
fn a_resumed_task_continues_where_it_parked() {
    let mut h = Harness::new();
    h.launch(task(0), JobKind::Batch, forever(0));
    h.wait_until_records(task(0), 2048);
    h.rt.suspend(task(0), Instant::now()).unwrap();
    h.expect_suspended(task(0));
    let parked_at = h.records(task(0));
    h.rt.resume(task(0), Instant::now()).unwrap();
    h.expect_resumed(task(0));
    h.wait_until_records(task(0), parked_at + 4096);
    h.rt.kill(task(0)).unwrap();
    let (outcome, records) = h.finished(task(0));
    assert_eq!(outcome, TaskOutcome::Killed);
    assert!(
        records >= parked_at + 4096,
        "progress before the park was kept"
    );
}

#[test]
fn killing_a_running_task_reports_killed_and_the_records_it_had_processed() {
    let mut h = Harness::new();
    h.launch(task(0), JobKind::Batch, forever(0));
    h.wait_until_records(task(0), 1024);
    h.rt.kill(task(0)).unwrap();
    let (outcome, records) = h.finished(task(0));
    assert_eq!(outcome, TaskOutcome::Killed);
    assert!(records >= 1024);
    assert_eq!(
        h.rt.kill(task(0)),
        Err(RuntimeError::UnknownTask { id: task(0) })
    );
}

#[test]
fn killing_a_suspended_task_wakes_it_and_reports_killed() {
    let mut h = Harness::new();
    h.launch(task(0), JobKind::Batch, forever(0));
    h.wait_running(task(0));
    h.rt.suspend(task(0), Instant::now()).unwrap();
    h.expect_suspended(task(0));
    h.rt.kill(task(0)).unwrap();
    assert_eq!(h.finished(task(0)).0, TaskOutcome::Killed);
    assert_eq!(h.rt.snapshot().tasks, Vec::new());
}

#[test]
fn kill_racing_suspend_ends_the_task_and_never_reports_it_suspended_afterwards() {
    let mut h = Harness::new();
    for p in 0..200 {
        h.launch(task(p), JobKind::Batch, forever(0));
        h.wait_running(task(p));
        h.rt.suspend(task(p), Instant::now()).unwrap();
        h.rt.kill(task(p)).unwrap();
        assert_eq!(h.finished(task(p)).0, TaskOutcome::Killed);
    }
    assert!(
        h.stash
            .iter()
            .all(|e| !matches!(e, RuntimeEvent::Finished { .. }))
    );
}

#[test]
fn a_resume_that_arrives_before_the_task_parked_is_neither_lost_nor_hangs() {
    // The task runs until told to stop, so every race below meets it running: a task with a fixed
    // record count can finish between two polls on a loaded machine, and then no race happens.
    const RACES: u32 = 500;
    let stop = Arc::new(AtomicBool::new(false));
    let mut h = Harness::new();
    h.launch(task(0), JobKind::Batch, until_stopped(stop.clone()));
    h.wait_until_records(task(0), 1); // inside its operator loop
    for race in 0..RACES {
        h.rt.suspend(task(0), Instant::now())
            .unwrap_or_else(|e| panic!("suspend {race} refused: {e}"));
        h.rt.resume(task(0), Instant::now())
            .unwrap_or_else(|e| panic!("resume {race} refused: {e}"));
        // Either the resume cancelled the suspension (Resumed only) or the task had committed
        // to parking (Suspended first); both must end in Resumed, never in silence.
        loop {
            match h.next_of(task(0)) {
                RuntimeEvent::Suspended { .. } => continue,
                RuntimeEvent::Resumed { .. } => break,
                e => panic!("race {race}: expected Suspended or Resumed, got {e:?}"),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (outcome, records) = h.finished(task(0));
    assert_eq!(
        outcome,
        TaskOutcome::Succeeded(records.to_le_bytes().to_vec())
    );
}

#[test]
fn a_panicking_task_is_reported_failed_with_the_panic_message() {
    let mut h = Harness::new();
    h.launch(
        task(0),
        JobKind::Batch,
        Box::new(|_| panic!("operator exploded")),
    );
    let (outcome, _) = h.finished(task(0));
    assert!(
        matches!(&outcome, TaskOutcome::Failed(m) if m.contains("operator exploded")),
        "{outcome:?}"
    );
    // The core is free again: a new task runs.
    h.launch(task(1), JobKind::Stream, count_to(10));
    assert_eq!(
        h.finished(task(1)),
        (TaskOutcome::Succeeded(undisturbed(10)), 10)
    );
}

#[test]
fn a_failing_task_reports_its_error() {
    let mut h = Harness::new();
    h.launch(
        task(0),
        JobKind::Batch,
        Box::new(|_| Err("bad input".to_string())),
    );
    assert_eq!(
        h.finished(task(0)).0,
        TaskOutcome::Failed("bad input".into())
    );
}

#[test]
fn a_stream_task_launched_on_busy_cores_starts_on_the_core_a_suspended_batch_task_frees() {
    let mut h = Harness::new();
    h.launch(task(0), JobKind::Batch, forever(0));
    h.launch(task(1), JobKind::Batch, forever(0));
    h.wait_running(task(0));
    h.wait_running(task(1));
    h.launch(task(2), JobKind::Stream, count_to(1000));
    assert_eq!(h.rt.snapshot().queued.stream, 1);
    h.rt.suspend(task(0), Instant::now()).unwrap();
    h.expect_suspended(task(0));
    assert_eq!(
        h.finished(task(2)),
        (TaskOutcome::Succeeded(undisturbed(1000)), 1000)
    );
    h.rt.resume(task(0), Instant::now()).unwrap();
    h.expect_resumed(task(0));
    for p in [0, 1] {
        h.rt.kill(task(p)).unwrap();
        assert_eq!(h.finished(task(p)).0, TaskOutcome::Killed);
    }
}

/// The driver's standalone `Suspend` (ahead of a micro-batch): the named attempt parks, its
/// core stays idle (nothing waits for it), and a launch arriving later starts on it at once; a
/// request naming another attempt is refused and changes nothing.
#[test]
fn a_standalone_suspend_parks_the_task_and_leaves_its_core_idle() {
    let mut h = Harness::new();
    h.launch(task(0), JobKind::Batch, forever(0));
    h.launch(task(1), JobKind::Batch, forever(0));
    h.wait_running(task(0));
    h.wait_running(task(1));
    let err =
        h.rt.suspend_attempt(task(0), 3, Instant::now())
            .unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::OtherAttempt {
                alive: 0,
                asked: 3,
                ..
            }
        ),
        "{err}"
    );
    h.rt.suspend_attempt(task(0), 0, Instant::now()).unwrap();
    h.expect_suspended(task(0));
    let snap = h.rt.snapshot();
    assert_eq!((snap.running.batch, snap.suspended.batch), (1, 1));
    // The freed core is idle: a stream task launched now runs without anything else parking.
    h.launch(task(2), JobKind::Stream, count_to(1000));
    assert_eq!(
        h.finished(task(2)),
        (TaskOutcome::Succeeded(undisturbed(1000)), 1000)
    );
    assert!(
        h.rt.snapshot()
            .tasks
            .iter()
            .any(|t| t.id == task(1) && t.state == TaskState::Running),
        "the other batch task ran on undisturbed"
    );
    h.rt.resume(task(0), Instant::now()).unwrap();
    h.expect_resumed(task(0));
    for p in [0, 1] {
        h.rt.kill(task(p)).unwrap();
        assert_eq!(h.finished(task(p)).0, TaskOutcome::Killed);
    }
}

#[test]
fn snapshot_counts_tasks_by_kind_and_the_bytes_suspended_tasks_retain() {
    let mut h = Harness::new();
    h.launch(task(0), JobKind::Batch, forever(4096));
    h.launch(task(1), JobKind::Batch, forever(0));
    h.wait_until_records(task(0), 1);
    h.rt.suspend(task(0), Instant::now()).unwrap();
    h.expect_suspended(task(0));
    h.launch(task(2), JobKind::Stream, forever(0));
    h.launch(task(3), JobKind::Stream, forever(0));
    let snap = h.rt.snapshot();
    assert_eq!(snap.cores, 2);
    assert_eq!(
        snap.running,
        KindCounts {
            stream: 1,
            batch: 1
        }
    );
    assert_eq!(
        snap.suspended,
        KindCounts {
            stream: 0,
            batch: 1
        }
    );
    assert_eq!(
        snap.queued,
        KindCounts {
            stream: 1,
            batch: 0
        }
    );
    assert_eq!(snap.suspended_retained_bytes, 4096);
    let states: Vec<_> = snap.tasks.iter().map(|t| (t.id, t.state)).collect();
    assert_eq!(
        states,
        vec![
            (task(0), TaskState::Suspended),
            (task(1), TaskState::Running),
            (task(2), TaskState::Running),
            (task(3), TaskState::Queued),
        ]
    );
    // The parked task needs a core to unwind, so it dies once a running one has freed its core.
    for p in 0..4 {
        h.rt.kill(task(p)).unwrap();
    }
    for p in 0..4 {
        assert_eq!(h.finished(task(p)).0, TaskOutcome::Killed);
    }
}
