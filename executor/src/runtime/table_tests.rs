//! Unit tests of the runtime table: every transition stepped by hand, no coroutines, no threads.
//! The wake handle is a plain number standing for "the task's coroutine".

use super::*;
use crate::runtime::types::KindCounts;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

const HANDLE: u8 = 7;

fn task(partition: u32) -> TaskId {
    TaskId {
        job: 0,
        run: 0,
        stage: 0,
        partition,
    }
}

fn body() -> TaskBody {
    Box::new(|_| Ok(Vec::new()))
}

struct Fixture {
    table: Table<u8>,
    events: UnboundedReceiver<RuntimeEvent>,
}

impl Fixture {
    fn with_cores(cores: usize) -> Self {
        let (tx, events) = unbounded_channel();
        Self {
            table: Table::new(cores, tx),
            events,
        }
    }

    /// Launch and, if it got a core, play the coroutine's start (it stores its handle).
    fn launch(&mut self, id: TaskId, kind: JobKind) -> Vec<Action<u8>> {
        let actions = self
            .table
            .launch(id, 0, kind, body(), Instant::now())
            .unwrap();
        self.started(&actions);
        actions
    }

    fn started(&mut self, actions: &[Action<u8>]) {
        for a in actions {
            if let Action::Start { task, .. } = a {
                self.table.set_handle(task.id, task.serial, HANDLE);
            }
        }
    }

    fn serial(&self, id: TaskId) -> u64 {
        self.table.entries[&id].serial
    }

    /// Suspend `id` and play it reaching its yield point; returns the confirm's (worker, epoch).
    fn suspend_to_parking(&mut self, id: TaskId) -> (usize, u64) {
        self.table.suspend(id, Instant::now()).unwrap();
        match self.table.commit_park(id, self.serial(id)) {
            Commit::Park { worker, epoch } => (worker, epoch),
            other => panic!("expected to park, got {other:?}"),
        }
    }

    fn suspend_fully(&mut self, id: TaskId) -> Vec<Action<u8>> {
        let (_, epoch) = self.suspend_to_parking(id);
        let actions = self.table.confirm_parked(id, self.serial(id), epoch);
        self.started(&actions);
        actions
    }

    fn drain(&mut self) -> Vec<RuntimeEvent> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }

    fn state(&self, id: TaskId) -> TaskState {
        self.table.entries[&id].phase.public()
    }
}

fn started_ids(actions: &[Action<u8>]) -> Vec<(usize, TaskId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { worker, task } => Some((*worker, task.id)),
            Action::Wake { .. } => None,
        })
        .collect()
}

fn wakes(actions: &[Action<u8>]) -> Vec<usize> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Wake { worker, .. } => Some(*worker),
            Action::Start { .. } => None,
        })
        .collect()
}

fn is_suspended(e: &RuntimeEvent) -> bool {
    matches!(e, RuntimeEvent::Suspended { .. })
}

fn is_resumed(e: &RuntimeEvent) -> bool {
    matches!(e, RuntimeEvent::Resumed { .. })
}

#[test]
fn launch_takes_an_idle_core_and_queues_when_none_is_idle() {
    let mut f = Fixture::with_cores(1);
    assert_eq!(
        started_ids(&f.launch(task(0), JobKind::Batch)),
        vec![(0, task(0))]
    );
    assert!(f.launch(task(1), JobKind::Batch).is_empty());
    assert_eq!(f.state(task(1)), TaskState::Queued);
}

#[test]
fn launching_a_live_task_again_is_refused() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    let err = f
        .table
        .launch(task(0), 1, JobKind::Batch, body(), Instant::now())
        .err();
    assert_eq!(
        err,
        Some(RuntimeError::AlreadyRunning {
            id: task(0),
            attempt: 0
        })
    );
}

#[test]
fn a_core_is_freed_only_when_the_park_is_confirmed() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    let (worker, epoch) = f.suspend_to_parking(task(0));
    assert_eq!(worker, 0);
    assert_eq!(f.table.idle_workers(), 0, "parking is not parked");
    assert!(f.drain().is_empty());
    f.table.confirm_parked(task(0), f.serial(task(0)), epoch);
    assert_eq!(f.table.idle_workers(), 1);
    assert!(matches!(f.drain().as_slice(), [e] if is_suspended(e)));
}

#[test]
fn a_launch_waiting_for_a_core_gets_the_core_of_the_task_that_parks() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.launch(task(1), JobKind::Stream);
    let actions = f.suspend_fully(task(0));
    assert_eq!(started_ids(&actions), vec![(0, task(1))]);
}

#[test]
fn stream_launches_go_before_earlier_resumes_and_kill_wakeups_before_both() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.suspend_fully(task(0));
    f.launch(task(1), JobKind::Batch);
    f.launch(task(9), JobKind::Batch); // queued
    f.suspend_fully(task(1)); // task 9 takes the core
    assert!(f.table.resume(task(0), Instant::now()).unwrap().is_empty());
    f.launch(task(2), JobKind::Stream);
    f.table.kill(task(1)).unwrap();
    let order: Vec<_> = std::iter::from_fn(|| f.table.pop_pending()).collect();
    assert_eq!(order, vec![task(1), task(2), task(0)]);
}

#[test]
fn resume_before_the_task_reached_a_yield_point_cancels_the_suspension() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.table.suspend(task(0), Instant::now()).unwrap();
    assert!(f.table.resume(task(0), Instant::now()).unwrap().is_empty());
    assert_eq!(
        f.table.commit_park(task(0), f.serial(task(0))),
        Commit::Recheck
    );
    assert_eq!(f.state(task(0)), TaskState::Running);
    assert!(matches!(f.drain().as_slice(), [e] if is_resumed(e)));
}

#[test]
fn resume_while_parking_wakes_the_task_on_the_core_it_still_holds() {
    let mut f = Fixture::with_cores(2);
    f.launch(task(0), JobKind::Batch);
    let (worker, epoch) = f.suspend_to_parking(task(0));
    let actions = f.table.resume(task(0), Instant::now()).unwrap();
    assert_eq!(wakes(&actions), vec![worker]);
    assert!(
        f.table
            .confirm_parked(task(0), f.serial(task(0)), epoch)
            .is_empty(),
        "stale"
    );
    f.table.note_running(task(0), f.serial(task(0)));
    assert_eq!(f.state(task(0)), TaskState::Running);
    assert!(matches!(f.drain().as_slice(), [e] if is_resumed(e)));
}

#[test]
fn resume_of_a_parked_task_waits_for_a_core_and_sees_run_only_then() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.suspend_fully(task(0));
    f.launch(task(1), JobKind::Batch);
    assert!(f.table.resume(task(0), Instant::now()).unwrap().is_empty());
    let control = f.table.entries[&task(0)].control.clone();
    assert_eq!(control.state(), SUSPEND, "a stray wake-up must re-park");
    assert_eq!(
        f.table.commit_park(task(0), f.serial(task(0))),
        Commit::Wait
    );
    let actions = f.table.finish(
        task(1),
        f.serial(task(1)),
        TaskOutcome::Killed,
        Tally::default(),
    );
    assert_eq!(wakes(&actions), vec![0]);
    assert_eq!(control.state(), neptune_core::task::RUN);
}

#[test]
fn kill_of_a_queued_task_finishes_it_without_running() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.launch(task(1), JobKind::Batch);
    f.table.kill(task(1)).unwrap();
    let events = f.drain();
    assert!(matches!(
        events.as_slice(),
        [RuntimeEvent::Finished {
            outcome: TaskOutcome::Killed,
            records: 0,
            ..
        }]
    ));
    assert_eq!(
        f.table.suspend(task(1), Instant::now()),
        Err(RuntimeError::UnknownTask { id: task(1) })
    );
}

#[test]
fn kill_of_a_suspended_task_wakes_it_on_a_free_core() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.suspend_fully(task(0));
    assert_eq!(wakes(&f.table.kill(task(0)).unwrap()), vec![0]);
    assert_eq!(
        f.table.kill(task(0)).unwrap().len(),
        0,
        "kill is idempotent"
    );
}

#[test]
fn kill_while_parking_makes_the_confirm_wake_the_task_instead_of_freeing_its_core() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    let (_, epoch) = f.suspend_to_parking(task(0));
    assert!(f.table.kill(task(0)).unwrap().is_empty());
    assert_eq!(
        wakes(&f.table.confirm_parked(task(0), f.serial(task(0)), epoch)),
        vec![0]
    );
    assert_eq!(f.table.idle_workers(), 0);
    f.table.finish(
        task(0),
        f.serial(task(0)),
        TaskOutcome::Succeeded(vec![1]),
        Tally::records(5),
    );
    assert_eq!(f.table.idle_workers(), 1);
    assert!(f.drain().iter().all(|e| !is_suspended(e)));
}

#[test]
fn suspend_and_resume_of_a_task_being_killed_are_refused() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.table.kill(task(0)).unwrap();
    assert_eq!(
        f.table.suspend(task(0), Instant::now()),
        Err(RuntimeError::Killing { id: task(0) })
    );
    assert!(matches!(
        f.table.resume(task(0), Instant::now()),
        Err(RuntimeError::Killing { .. })
    ));
}

#[test]
fn a_task_ending_after_an_accepted_suspend_reports_only_finished() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.table.suspend(task(0), Instant::now()).unwrap();
    f.table.finish(
        task(0),
        f.serial(task(0)),
        TaskOutcome::Succeeded(vec![1]),
        Tally::records(3),
    );
    let events = f.drain();
    assert!(matches!(
        events.as_slice(),
        [RuntimeEvent::Finished {
            outcome: TaskOutcome::Succeeded(_),
            records: 3,
            ..
        }]
    ));
    assert_eq!(
        f.table.suspend(task(0), Instant::now()),
        Err(RuntimeError::UnknownTask { id: task(0) })
    );
}

#[test]
fn a_killed_task_reports_killed_whatever_its_body_returned() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.table.kill(task(0)).unwrap();
    f.table.finish(
        task(0),
        f.serial(task(0)),
        TaskOutcome::Succeeded(vec![1]),
        Tally::records(42),
    );
    assert!(matches!(
        f.drain().as_slice(),
        [RuntimeEvent::Finished {
            outcome: TaskOutcome::Killed,
            records: 42,
            ..
        }]
    ));
}

#[test]
fn requests_that_do_not_fit_the_state_are_refused_with_the_state() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    let running = f.table.resume(task(0), Instant::now()).err();
    assert_eq!(
        running,
        Some(RuntimeError::NotSuspended {
            id: task(0),
            state: TaskState::Running
        })
    );
    f.table.suspend(task(0), Instant::now()).unwrap();
    let twice = f.table.suspend(task(0), Instant::now()).err();
    assert_eq!(
        twice,
        Some(RuntimeError::NotRunning {
            id: task(0),
            state: TaskState::Suspending
        })
    );
}

#[test]
fn snapshot_counts_running_suspended_and_queued_tasks_by_kind() {
    let mut f = Fixture::with_cores(2);
    f.launch(task(0), JobKind::Batch);
    f.launch(task(1), JobKind::Batch);
    f.suspend_fully(task(0));
    f.launch(task(2), JobKind::Stream); // takes task 0's core
    f.launch(task(3), JobKind::Stream); // queued
    let snap = f.table.snapshot();
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
    let ids: Vec<_> = snap.tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![task(0), task(1), task(2), task(3)]);
}

#[test]
fn a_finished_task_reports_its_hops_from_the_launch_received() {
    use std::time::Duration;
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    // Task 1 is received "20 ms ago" and waits for task 0's core.
    let received = Instant::now() - Duration::from_millis(20);
    let actions = f
        .table
        .launch(task(1), 0, JobKind::Stream, body(), received)
        .unwrap();
    assert!(actions.is_empty(), "no core yet");
    let actions = f.table.finish(
        task(0),
        f.serial(task(0)),
        TaskOutcome::Succeeded(vec![]),
        Tally::records(1),
    );
    assert_eq!(started_ids(&actions), vec![(0, task(1))]);
    f.drain();
    // Task 1 got task 0's core when it finished; play its coroutine running and finishing.
    let started = Instant::now();
    let first = started + Duration::from_millis(1);
    f.table.finish(
        task(1),
        f.serial(task(1)),
        TaskOutcome::Succeeded(vec![]),
        Tally {
            records: 1,
            started_at: Some(started),
            first_record_at: Some(first),
            ..Tally::default()
        },
    );
    let events = f.drain();
    let [
        RuntimeEvent::Finished {
            timing, elapsed, ..
        },
    ] = events.as_slice()
    else {
        panic!("one Finished: {events:?}")
    };
    let (timing, elapsed) = (*timing, *elapsed);
    assert!(timing.queued >= Duration::from_millis(20), "{timing:?}");
    // The first record is "1 ms after the start", later than the finish: clamped to the finish.
    assert!(
        timing.first_record <= Duration::from_millis(1),
        "{timing:?}"
    );
    assert_eq!(timing.process, Duration::ZERO);
    let sum = timing.queued + timing.start + timing.first_record + timing.process;
    assert!(
        sum <= elapsed + Duration::from_millis(2),
        "{sum:?} vs {elapsed:?}"
    );
}

#[test]
fn task_timing_never_goes_negative_or_past_the_end() {
    use std::time::Duration;
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let t = TaskTiming::between(t0, Some(ms(2)), Some(ms(3)), Some(ms(5)), ms(9));
    let want = [2, 1, 2, 4].map(Duration::from_millis);
    assert_eq!([t.queued, t.start, t.first_record, t.process], want);
    // No record read: the setup hop runs to the end, processing is zero.
    let t = TaskTiming::between(t0, Some(ms(2)), Some(ms(3)), None, ms(9));
    assert_eq!(
        (t.first_record, t.process),
        (Duration::from_millis(6), Duration::ZERO)
    );
    // Killed while queued: all of it was queueing.
    let t = TaskTiming::between(t0, None, None, None, ms(4));
    assert_eq!(t.queued, Duration::from_millis(4));
    // Instants out of order (a first record "before" the start) are clamped, never negative,
    // and the hops still sum to received → finished.
    let t = TaskTiming::between(ms(1), Some(ms(5)), Some(ms(3)), Some(t0), ms(4));
    let sum = t.queued + t.start + t.first_record + t.process;
    assert_eq!(sum, Duration::from_millis(3));
}

impl Fixture {
    fn launch_after(
        &mut self,
        victim: TaskId,
        id: TaskId,
    ) -> Result<Vec<Action<u8>>, RuntimeError> {
        let actions =
            self.table
                .launch_after(victim, id, 0, JobKind::Stream, body(), Instant::now())?;
        self.started(&actions);
        Ok(actions)
    }
}

#[test]
fn an_heir_starts_on_its_victims_core_right_after_the_victims_suspension() {
    let mut f = Fixture::with_cores(2);
    f.launch(task(0), JobKind::Batch);
    f.launch(task(1), JobKind::Batch);
    let (worker, epoch) = f.suspend_to_parking(task(1));
    assert!(
        f.launch_after(task(1), task(9)).unwrap().is_empty(),
        "waits for the core"
    );
    assert_eq!(f.state(task(9)), TaskState::Queued);
    // Another core freeing first does not go to the heir: it is promised the victim's core.
    let other = f.table.finish(
        task(0),
        f.serial(task(0)),
        TaskOutcome::Killed,
        Tally::default(),
    );
    assert!(started_ids(&other).is_empty());
    let actions = f.table.confirm_parked(task(1), f.serial(task(1)), epoch);
    assert_eq!(started_ids(&actions), vec![(worker, task(9))]);
    let events = f.drain();
    assert!(
        is_suspended(events.last().unwrap()),
        "the victim's event is reported first"
    );
}

#[test]
fn an_heir_takes_the_core_of_a_victim_that_ends_instead_of_parking() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    f.table.suspend(task(0), Instant::now()).unwrap();
    f.launch_after(task(0), task(9)).unwrap();
    // The victim finished before reaching a yield point.
    let actions = f.table.finish(
        task(0),
        f.serial(task(0)),
        TaskOutcome::Succeeded(Vec::new()),
        Tally::default(),
    );
    assert_eq!(started_ids(&actions), vec![(0, task(9))]);
    assert!(matches!(f.drain()[..], [RuntimeEvent::Finished { id, .. }] if id == task(0)));
}

#[test]
fn an_heir_of_a_task_holding_no_core_is_an_ordinary_launch() {
    let mut f = Fixture::with_cores(1);
    // Unknown victim (it ended): the heir starts on the idle core at once.
    let actions = f.launch_after(task(5), task(9)).unwrap();
    assert_eq!(started_ids(&actions), vec![(0, task(9))]);
}

#[test]
fn a_second_heir_of_one_victim_is_refused_and_a_killed_heir_gives_its_promise_back() {
    let mut f = Fixture::with_cores(1);
    f.launch(task(0), JobKind::Batch);
    let (_, epoch) = f.suspend_to_parking(task(0));
    f.launch_after(task(0), task(8)).unwrap();
    assert!(matches!(
        f.launch_after(task(0), task(9)),
        Err(RuntimeError::VictimTaken { victim, heir }) if victim == task(0) && heir == task(8)
    ));
    // Killed while waiting: it ends at once and the victim's core goes back to the queue.
    f.table.kill(task(8)).unwrap();
    f.launch(task(3), JobKind::Batch);
    let actions = f.table.confirm_parked(task(0), f.serial(task(0)), epoch);
    assert_eq!(started_ids(&actions), vec![(0, task(3))]);
}
