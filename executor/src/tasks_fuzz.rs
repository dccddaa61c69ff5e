//! Property-based fuzzing of the executor's session handling: arbitrary and mutated driver
//! messages (launches of tasks that exist or not, with valid, corrupt or empty parameters and
//! preemptions of anything; resumes and kills of anything; broadcasts, releases, announcements,
//! receivers, stray welcomes) into [`Tasks`] over a real task runtime running real tasks. No
//! message may panic, wedge the runtime, or leave a task behind once the session ends; every
//! update names a task and a launch that cannot run is answered with a failure.

use super::*;
use crate::metrics::ExecutorMetrics;
use crate::runtime::RuntimeEvent;
use neptune_core::config::Config;
use neptune_core::shuffle::{MapLoc, ShuffleRead};
use neptune_core::{Dataset, TaskId};
use neptune_proto::{ExecutorMessage, TaskKey, executor_message, task_update};
use proptest::prelude::*;
use std::time::Duration;
use tokio::sync::mpsc;

fn app() -> Arc<App> {
    let mut app = App::new("fuzz", Arc::new(Config::default()));
    // A generated source counts its records (what heartbeats report).
    let nums = neptune_core::source::generate(2, 0, |_, p| u64::from(p) * 100 + 10, |_, _, i| i);
    app.batch("count", nums.count());
    let words = Dataset::from_fn(2, |_| Box::new((0..20u64).map(|i| (i % 3, 1u64))));
    app.batch("wc", words.reduce_by_key(2, |a, b| a + b).count());
    app.stream("s", Dataset::from_fn(1, |_| Box::new(0..5u64)).count());
    Arc::new(app)
}

fn key() -> impl Strategy<Value = TaskKey> {
    (0u32..4, 0u64..2, 0u32..3, 0u32..3, 0u32..3).prop_map(
        |(job, run, stage, partition, attempt)| TaskKey {
            job,
            run,
            stage,
            partition,
            attempt,
        },
    )
}

/// Launch parameters: none, shuffle reads of this executor's own outputs, or random bytes.
fn params() -> impl Strategy<Value = Vec<u8>> {
    let reads = (0u32..3, 0usize..3).prop_map(|(stage, maps)| {
        let loc = MapLoc {
            executor: "fuzz".into(),
            addr: "127.0.0.1:1".into(),
            max_block: u64::MAX,
        };
        postcard::to_stdvec(&LaunchParams {
            reads: vec![ShuffleRead {
                stage,
                maps: vec![loc; maps],
            }],
            files: None,
            kafka: Vec::new(),
            kafka_batch: None,
            epoch: String::new(),
        })
        .unwrap()
    });
    prop_oneof![
        Just(Vec::new()),
        reads,
        prop::collection::vec(any::<u8>(), 0..48)
    ]
}

fn message() -> impl Strategy<Value = DriverMessage> {
    use neptune_proto as p;
    let launch = (
        key(),
        any::<bool>(),
        prop::option::of((key(), any::<bool>())),
        params(),
    )
        .prop_map(|(k, stream, preempt, params)| {
            driver_message::Msg::Launch(p::Launch {
                task: Some(k),
                stream,
                preempt: preempt.map(|(t, kill)| p::Preempt {
                    task: Some(t),
                    kill,
                }),
                params,
            })
        });
    let msg = prop_oneof![
        6 => launch,
        2 => key().prop_map(driver_message::Msg::Suspend),
        2 => key().prop_map(driver_message::Msg::Resume),
        2 => key().prop_map(driver_message::Msg::Kill),
        1 => ("[a-c]{1,2}", any::<u64>(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(
            |(name, version, value)| driver_message::Msg::Broadcast(p::Broadcast { name, version, value })
        ),
        1 => (0u32..4, 0u64..3).prop_map(|(job, run)| driver_message::Msg::Release(p::Release { job, run })),
        1 => (0u32..4, any::<u64>()).prop_map(|(job, run)| driver_message::Msg::OpenRun(p::OpenRun { job, run })),
        1 => (any::<u32>(), any::<u64>()).prop_map(|(index, first_run)| {
            driver_message::Msg::StartReceiver(p::StartReceiver { index, first_run })
        }),
        1 => Just(driver_message::Msg::Welcome(p::Welcome::default())),
        1 => Just(driver_message::Msg::Shutdown(p::Shutdown::default())),
    ];
    prop::option::weighted(0.95, msg).prop_map(|msg| DriverMessage { msg })
}

struct Harness {
    tasks: Tasks,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    out: mpsc::UnboundedReceiver<ExecutorMessage>,
    runtime: TaskRuntime,
}

fn harness() -> Harness {
    harness_with(app())
}

fn harness_with(app: Arc<App>) -> Harness {
    let broadcasts = Arc::new(Broadcasts::default());
    let (ev_tx, events) = mpsc::unbounded_channel();
    let runtime = TaskRuntime::new(2, broadcasts.clone(), ev_tx);
    let blocks = Arc::new(BlockStore::new("fuzz", 1 << 24, 2, None).unwrap());
    blocks.set_executor_id("fuzz");
    let receivers = Arc::new(Receivers::new(app.receivers().to_vec(), 1 << 24, None));
    blocks.set_receivers(receivers.clone());
    let (out_tx, out) = mpsc::unbounded_channel();
    let updates = Updates::new(out_tx, ExecutorMetrics::new("fuzz"), 1 << 20);
    let tasks = Tasks::new(app, runtime.clone(), broadcasts, blocks, receivers, updates);
    Harness {
        tasks,
        events,
        out,
        runtime,
    }
}

impl Harness {
    /// Hand every runtime event to the session until `done` holds or the deadline passes.
    fn pump_until(&mut self, done: impl Fn(&TaskRuntime) -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            while let Ok(ev) = self.events.try_recv() {
                self.tasks.on_runtime_event(ev);
            }
            if done(&self.runtime) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn arbitrary_driver_messages_never_wedge_the_session_or_strand_a_task(
        msgs in prop::collection::vec(message(), 1..24)
    ) {
        let mut h = harness();
        let mut launched = 0usize;
        for m in msgs {
            if matches!(m.msg, Some(driver_message::Msg::Launch(_))) {
                launched += 1;
            }
            h.tasks.on_driver_message(m);
            while let Ok(ev) = h.events.try_recv() {
                h.tasks.on_runtime_event(ev);
            }
        }
        // The session ends: whatever still lives (suspended, waiting) is killed, and dies.
        h.tasks.kill_all();
        let drained = h.pump_until(|rt| rt.snapshot().tasks.is_empty());
        prop_assert!(drained, "tasks left behind: {:?}", h.runtime.snapshot().tasks);
        let mut finished = 0usize;
        while let Ok(m) = h.out.try_recv() {
            let Some(executor_message::Msg::Update(u)) = m.msg else { continue };
            prop_assert!(u.task.is_some(), "an update without a task");
            if matches!(
                u.state,
                Some(task_update::State::Succeeded(_) | task_update::State::Failed(_) | task_update::State::Killed(_))
            ) {
                finished += 1;
            }
        }
        // Every launch ends exactly once (ran, failed to start, or killed), and nothing else does.
        prop_assert!(finished <= launched, "{finished} ends for {launched} launches");
    }
}

#[test]
fn a_launch_naming_a_task_the_app_does_not_have_fails_with_a_message() {
    let mut h = harness();
    let bogus = TaskId {
        job: 9,
        run: 0,
        stage: 0,
        partition: 0,
    };
    let launch = neptune_proto::Launch {
        task: Some(TaskKey::new(bogus, 0)),
        ..Default::default()
    };
    h.tasks.on_driver_message(DriverMessage {
        msg: Some(driver_message::Msg::Launch(launch)),
    });
    // Receipt is acknowledged first, then the attempt fails.
    let Some(executor_message::Msg::Update(u)) = h.out.try_recv().unwrap().msg else {
        panic!("an update")
    };
    assert!(
        matches!(u.state, Some(task_update::State::Accepted(_))),
        "{:?}",
        u.state
    );
    let Some(executor_message::Msg::Update(u)) = h.out.try_recv().unwrap().msg else {
        panic!("an update")
    };
    let Some(task_update::State::Failed(f)) = u.state else {
        panic!("a failure")
    };
    assert!(f.reason.contains("does not exist"), "{}", f.reason);
}

/// An app's own error type, returned through `?` from one of its closures.
#[derive(Debug, thiserror::Error)]
#[error("sensor reading {0} is out of range")]
struct OutOfRange(u64);

fn checked(reading: u64) -> Result<u64, OutOfRange> {
    if reading > 6 {
        return Err(OutOfRange(reading));
    }
    Ok(reading)
}

#[test]
fn an_app_closure_error_is_the_task_failure_the_driver_receives() {
    let mut app = App::new("sensors", Arc::new(Config::default()));
    let readings = Dataset::from_fn(1, |_| Box::new(0..10u64));
    app.batch("check", readings.try_map(|r| Ok(checked(r)? * 2)).count());
    let mut h = harness_with(Arc::new(app));
    let id = TaskId {
        job: 0,
        run: 0,
        stage: 0,
        partition: 0,
    };
    h.tasks.on_driver_message(DriverMessage {
        msg: Some(driver_message::Msg::Launch(neptune_proto::Launch {
            task: Some(TaskKey::new(id, 0)),
            ..Default::default()
        })),
    });
    assert!(
        h.pump_until(|rt| rt.snapshot().tasks.is_empty()),
        "the task ends"
    );
    let failed = std::iter::from_fn(|| h.out.try_recv().ok())
        .filter_map(|m| match m.msg {
            Some(executor_message::Msg::Update(u)) => u.state,
            _ => None,
        })
        .find_map(|s| match s {
            task_update::State::Failed(f) => Some(f),
            _ => None,
        })
        .expect("a failure update");
    assert_eq!(failed.reason, "sensor reading 7 is out of range");
    assert!(failed.fetch_failed_executor.is_empty());
}

#[test]
fn a_result_larger_than_the_driver_accepts_fails_the_task_instead_of_the_session() {
    let (out_tx, mut out) = mpsc::unbounded_channel();
    let mut updates = Updates::new(out_tx, ExecutorMetrics::new("fuzz"), 1 << 20);
    let id = TaskId {
        job: 0,
        run: 0,
        stage: 0,
        partition: 0,
    };
    updates.report(
        RuntimeEvent::Finished {
            id,
            attempt: 0,
            outcome: crate::runtime::TaskOutcome::Succeeded(vec![0; 2 << 20]),
            records: 3,
            skipped: 0,
            fetch_failed: None,
            event_times: None,
            elapsed: Duration::from_millis(1),
            timing: crate::runtime::TaskTiming::default(),
        },
        JobKind::Batch,
    );
    let Some(executor_message::Msg::Update(u)) = out.try_recv().unwrap().msg else {
        panic!("an update")
    };
    let Some(task_update::State::Failed(f)) = u.state else {
        panic!("a failure, got {:?}", u.state)
    };
    assert!(f.reason.contains("grpc.max_message_bytes"), "{}", f.reason);
}

#[test]
fn heartbeats_count_the_records_of_succeeded_tasks_per_job() {
    let mut h = harness();
    // Job 0 (`count`): partition p reads p * 100 + 10 records.
    for partition in 0..2 {
        let id = TaskId {
            job: 0,
            run: 0,
            stage: 0,
            partition,
        };
        let launch = neptune_proto::Launch {
            task: Some(TaskKey::new(id, 0)),
            ..Default::default()
        };
        h.tasks.on_driver_message(DriverMessage {
            msg: Some(driver_message::Msg::Launch(launch)),
        });
    }
    // Both ended and their events reached the session.
    assert!(h.pump_until(|rt| rt.snapshot().tasks.is_empty()));
    while let Ok(ev) = h.events.try_recv() {
        h.tasks.on_runtime_event(ev);
    }
    h.tasks.heartbeat(1 << 30);
    let hb = std::iter::from_fn(|| h.out.try_recv().ok())
        .find_map(|m| match m.msg {
            Some(executor_message::Msg::Heartbeat(hb)) => Some(hb),
            _ => None,
        })
        .expect("a heartbeat");
    assert_eq!(
        hb.job_records,
        vec![neptune_proto::JobRecords {
            job: 0,
            done: 120,
            in_flight: 0
        }]
    );
}

#[test]
fn records_in_flight_are_what_live_tasks_published() {
    use crate::runtime::{TaskState, TaskSummary};
    let task = |job, partition, records| TaskSummary {
        id: TaskId {
            job,
            run: 0,
            stage: 0,
            partition,
        },
        attempt: 0,
        kind: JobKind::Batch,
        state: TaskState::Suspended,
        holds_core: false,
        records,
        retained_bytes: 0,
    };
    let snap = RuntimeSnapshot {
        tasks: vec![task(1, 0, 4096), task(1, 1, 1024), task(2, 0, 7)],
        ..RuntimeSnapshot::default()
    };
    let done = [(0u32, 10u64), (1, u64::MAX)].into_iter().collect();
    let r = job_records(&done, &snap);
    let got: Vec<(u32, u64, u64)> = r.iter().map(|j| (j.job, j.done, j.in_flight)).collect();
    assert_eq!(
        got,
        vec![(0, 10, 0), (1, u64::MAX, 5120), (2, 0, 7)],
        "per job, done and in flight apart"
    );
}

#[test]
fn a_standalone_suspend_of_a_task_not_alive_here_is_rejected_with_the_reason() {
    let mut h = harness();
    let id = TaskId {
        job: 0,
        run: 0,
        stage: 0,
        partition: 0,
    };
    h.tasks.on_driver_message(DriverMessage {
        msg: Some(driver_message::Msg::Suspend(TaskKey::new(id, 0))),
    });
    let Some(executor_message::Msg::Update(u)) = h.out.try_recv().unwrap().msg else {
        panic!("an update")
    };
    assert_eq!(u.task, Some(TaskKey::new(id, 0)));
    let Some(task_update::State::Rejected(r)) = u.state else {
        panic!("a rejection, got {:?}", u.state)
    };
    assert!(r.reason.contains("not known"), "{}", r.reason);
}

/// A launch whose preemption victim is already parking (the driver's standalone suspend went
/// out first) takes over that victim's core: its events follow the victim's `Suspended`, as
/// the driver's contract requires, even though a core may free up elsewhere first.
#[test]
fn a_launch_preempting_a_task_already_being_suspended_reports_after_the_victim() {
    let mut app = App::new("ahead", Arc::new(Config::default()));
    app.batch(
        "long",
        Dataset::from_fn(2, |_| Box::new(0..u64::MAX)).count(),
    );
    app.stream("s", Dataset::from_fn(1, |_| Box::new(0..5u64)).count());
    let mut h = harness_with(Arc::new(app));
    let batch = |partition| TaskId {
        job: 0,
        run: 0,
        stage: 0,
        partition,
    };
    for p in [0, 1] {
        h.tasks.on_driver_message(DriverMessage {
            msg: Some(driver_message::Msg::Launch(neptune_proto::Launch {
                task: Some(TaskKey::new(batch(p), 0)),
                ..Default::default()
            })),
        });
    }
    assert!(h.pump_until(|rt| {
        rt.snapshot()
            .tasks
            .iter()
            .all(|t| t.state == crate::runtime::TaskState::Running)
    }));
    let stream = TaskId {
        job: 1,
        run: 0,
        stage: 0,
        partition: 0,
    };
    h.tasks.on_driver_message(DriverMessage {
        msg: Some(driver_message::Msg::Suspend(TaskKey::new(batch(0), 0))),
    });
    h.tasks.on_driver_message(DriverMessage {
        msg: Some(driver_message::Msg::Launch(neptune_proto::Launch {
            task: Some(TaskKey::new(stream, 0)),
            stream: true,
            preempt: Some(neptune_proto::Preempt {
                task: Some(TaskKey::new(batch(0), 0)),
                kill: false,
            }),
            params: Vec::new(),
        })),
    });
    assert!(
        h.pump_until(|rt| !rt.snapshot().tasks.iter().any(|t| t.id == stream)),
        "the stream task ran"
    );
    let updates: Vec<(TaskId, &'static str)> = std::iter::from_fn(|| h.out.try_recv().ok())
        .filter_map(|m| match m.msg {
            Some(executor_message::Msg::Update(u)) => {
                let kind = match u.state? {
                    task_update::State::Accepted(_) => "accepted",
                    task_update::State::Suspended(_) => "suspended",
                    task_update::State::Succeeded(_) => "succeeded",
                    _ => "other",
                };
                Some((u.task?.id(), kind))
            }
            _ => None,
        })
        .filter(|(id, kind)| *id == stream || *kind == "suspended")
        .collect();
    assert_eq!(
        updates,
        vec![
            (stream, "accepted"),
            (batch(0), "suspended"),
            (stream, "succeeded")
        ]
    );
    h.tasks.kill_all();
    assert!(h.pump_until(|rt| rt.snapshot().tasks.is_empty()));
}
