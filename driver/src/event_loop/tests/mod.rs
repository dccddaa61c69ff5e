//! Event loop tests, driven synchronously (events in, [`EventLoop::drain`], messages out):
//! registration rules, the holder rule end to end, bounded values, the latency breakdown; the
//! harness (a loop over a real app, simulated executors running its real tasks) that they and
//! the rogue-session fuzz (`rogue.rs`) share.

use super::*;
use crate::registration::Registration;
use crate::scheduler::Policy;
use crate::server::{OUTBOX_CAPACITY, Welcomed};
use neptune_core::config::Config;
use neptune_core::shuffle::LocalBlocks;
use neptune_core::source_snapshot::LaunchParams;
use neptune_core::{Dataset, TaskContext};
use neptune_proto::{TaskKey, TaskUpdate, task_update};
use proptest::prelude::*;
use std::collections::BTreeSet;
use tokio::sync::oneshot;
use tonic::Code;

mod rogue;

/// Two batch jobs: a word count through a shuffle (2 maps → 3 reduces), and a plain sum; two
/// runs each.
fn app() -> Arc<App> {
    let mut app = App::new("t", Arc::new(neptune_core::config::Config::default()));
    let words = Dataset::from_fn(2, |ctx| {
        let p = u64::from(ctx.partition());
        Box::new((0..50u64).map(move |i| (format!("w{}", (i * 7 + p) % 11), 1u64)))
    });
    app.batch("wc", words.reduce_by_key(3, |a, b| a + b).count())
        .runs(Some(2));
    let nums = Dataset::from_fn(2, |ctx| Box::new(0..u64::from(ctx.partition()) * 10 + 5));
    app.batch("sum", nums.count()).runs(Some(2));
    Arc::new(app)
}

fn new_loop(app: Arc<App>) -> EventLoop {
    let cfg = DriverConfig::new(
        "t".into(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        2,
        Some(Policy::Neptune),
        Config::default(),
    )
    .unwrap();
    EventLoop::new(cfg, app, DriverMetrics::new(), Arc::default())
}

/// One side of a session, as an executor sees it.
struct Peer {
    id: String,
    session: u64,
    rx: mpsc::Receiver<Result<DriverMessage, tonic::Status>>,
    /// Launches received and not yet run.
    pending: VecDeque<neptune_proto::Launch>,
}

fn registration(id: Option<&str>) -> Registration {
    Registration {
        id: id.map(str::to_string),
        cores: 2,
        memory_limit: 1 << 30,
        http_addr: "127.0.0.1:1".into(),
        block_addr: "127.0.0.1:2".into(),
    }
}

fn register(lp: &mut EventLoop, r: Registration) -> Result<Peer, tonic::Status> {
    let (outbox, rx) = mpsc::channel(OUTBOX_CAPACITY);
    let (reply, mut answer) = oneshot::channel();
    lp.on_inbound(Inbound::Register {
        registration: r,
        outbox,
        reply,
    });
    lp.drain();
    let Welcomed { id, session } = answer.try_recv().expect("the loop answers at once")?;
    let mut peer = Peer {
        id,
        session,
        rx,
        pending: VecDeque::new(),
    };
    match peer.rx.try_recv() {
        Ok(Ok(DriverMessage {
            msg: Some(driver_message::Msg::Welcome(w)),
        })) => assert_eq!(
            (w.executor_id.as_str(), w.session),
            (peer.id.as_str(), session)
        ),
        other => panic!("the first message must be the welcome, got {other:?}"),
    }
    Ok(peer)
}

fn send(lp: &mut EventLoop, peer: &Peer, key: TaskKey, state: task_update::State) {
    lp.on_inbound(Inbound::Update {
        id: peer.id.clone(),
        session: peer.session,
        update: TaskUpdate {
            task: Some(key),
            state: Some(state),
        },
        received: std::time::Instant::now(),
    });
    lp.drain();
}

/// Read every message queued for `peer`, keeping launches; answer kills of pending tasks.
fn read(lp: &mut EventLoop, peer: &mut Peer) {
    while let Ok(Ok(m)) = peer.rx.try_recv() {
        match m.msg {
            Some(driver_message::Msg::Launch(l)) => peer.pending.push_back(l),
            Some(driver_message::Msg::Kill(k)) => {
                peer.pending
                    .retain(|l| l.task.is_none_or(|t| t.id() != k.id()));
                let state = task_update::State::Killed(neptune_proto::Killed { records: 0 });
                send(lp, peer, k, state);
            }
            _ => {}
        }
    }
}

/// Run `peer`'s oldest pending launch for real (its stage's closure over `blocks`) and report.
fn run_one(lp: &mut EventLoop, peer: &mut Peer, app: &App, blocks: &Arc<LocalBlocks>) -> bool {
    read(lp, peer);
    let Some(l) = peer.pending.pop_front() else {
        return false;
    };
    let key = l.task.expect("launches carry a key");
    let id = key.id();
    let params: LaunchParams = if l.params.is_empty() {
        LaunchParams::default()
    } else {
        postcard::from_bytes(&l.params).expect("driver params decode")
    };
    let ctx = TaskContext::detached(id, JobKind::Batch);
    ctx.set_shuffle(blocks.clone(), params.reads);
    if let Some(files) = params.files {
        ctx.set_input_files(files);
    }
    let result = (app.jobs()[id.job as usize].stages[id.stage as usize].run_task)(&ctx);
    let state = match result {
        Ok(result) => task_update::State::Succeeded(neptune_proto::Succeeded {
            result,
            records: ctx.records(),
            elapsed_us: 1,
            skipped: ctx.skipped(),
            event_time: ctx.event_times().map(neptune_proto::EventTime::from),
            timing: Some(neptune_proto::TaskTiming {
                queued_ns: 1_000,
                start_ns: 2_000,
                first_record_ns: 3_000,
                process_ns: 4_000,
            }),
        }),
        Err(reason) => task_update::State::Failed(neptune_proto::Failed {
            reason: reason.to_string(),
            records: ctx.records(),
            fetch_failed_executor: ctx.fetch_failed().unwrap_or_default(),
        }),
    };
    send(lp, peer, key, state);
    true
}

/// Let `peers` run everything until the app is done (bounded).
fn finish(lp: &mut EventLoop, peers: &mut [Peer], app: &App, blocks: &Arc<LocalBlocks>) {
    for _ in 0..10_000 {
        if lp.jobs.all_done() {
            return;
        }
        let mut any = false;
        for p in peers.iter_mut() {
            any |= run_one(lp, p, app, blocks);
        }
        if !any {
            lp.work.push_back(Work::Schedule(Event::Tick));
            lp.drain();
        }
    }
    panic!("the app did not finish: {:?}", lp.jobs.any_failed());
}

fn blocks() -> Arc<LocalBlocks> {
    Arc::new(LocalBlocks::new(std::env::temp_dir(), 1 << 30))
}

fn results(lp: &EventLoop) -> Vec<(serde_json::Value, u64, u64)> {
    (0..lp.app.jobs().len())
        .map(|j| {
            let st = lp.jobs.stats(j);
            (st.last_result.clone(), st.records, st.runs)
        })
        .collect()
}

/// The results of an undisturbed run of [`app`].
fn reference() -> Vec<(serde_json::Value, u64, u64)> {
    let app = app();
    let mut lp = new_loop(app.clone());
    let mut peers = vec![
        register(&mut lp, registration(Some("exec-0"))).unwrap(),
        register(&mut lp, registration(Some("exec-1"))).unwrap(),
    ];
    finish(&mut lp, &mut peers, &app, &blocks());
    results(&lp)
}

fn rejected(lp: &EventLoop, reason: &str) -> u64 {
    lp.metrics
        .rejected_updates
        .with_label_values(&[reason])
        .get()
}

fn assert_no_totals_moved(lp: &EventLoop) {
    let t = &lp.totals;
    assert_eq!(
        (t.kills, t.records_lost, t.suspensions, t.resumptions),
        (0, 0, 0, 0)
    );
    assert_eq!((t.malformed_skipped, t.fetch_failures), (0, 0));
    assert!(t.suspensions_by_phase.is_empty());
}

#[test]
fn an_id_with_a_live_session_is_refused_and_free_again_once_that_session_ends() {
    let mut lp = new_loop(app());
    let first = register(&mut lp, registration(Some("exec-0"))).unwrap();
    let e = register(&mut lp, registration(Some("exec-0")))
        .err()
        .unwrap();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains("live session"), "{}", e.message());
    let refused = lp
        .metrics
        .refused_registrations
        .with_label_values(&["id_in_use"]);
    assert_eq!(refused.get(), 1);
    // Assigned ids skip the ones in use.
    let fresh = register(&mut lp, registration(None)).unwrap();
    assert_eq!(fresh.id, "exec-1");
    lp.on_inbound(Inbound::Disconnected {
        id: first.id.clone(),
        session: first.session,
        reason: "gone".into(),
    });
    lp.drain();
    let again = register(&mut lp, registration(Some("exec-0"))).unwrap();
    assert!(again.session > first.session);
    // The old session's late update is ignored even though the id is back.
    let key = TaskKey::new(
        TaskId {
            job: 0,
            run: 0,
            stage: 0,
            partition: 0,
        },
        0,
    );
    let killed = task_update::State::Killed(neptune_proto::Killed { records: 5 });
    send(&mut lp, &first, key, killed);
    assert_eq!(rejected(&lp, "stale_session"), 1);
    assert_no_totals_moved(&lp);
}

#[test]
fn a_forged_success_for_a_reduce_task_it_was_never_given_is_not_committed() {
    let app = app();
    let mut lp = new_loop(app.clone());
    let blocks = blocks();
    let mut peers = vec![
        register(&mut lp, registration(Some("exec-0"))).unwrap(),
        register(&mut lp, registration(Some("exec-1"))).unwrap(),
    ];
    // Maps of run 0 of `wc` done: its reduce tasks are launched, on exec-0 and exec-1.
    for _ in 0..4 {
        for p in peers.iter_mut() {
            run_one(&mut lp, p, &app, &blocks);
        }
    }
    let forged = postcard::to_stdvec(&1_000_000u64).unwrap();
    for partition in 0..3 {
        let reduce = TaskId {
            job: 0,
            run: 0,
            stage: 1,
            partition,
        };
        for (attempt, forger) in [(0, 0), (1000, 0), (0, 1), (7, 1)] {
            let state = task_update::State::Succeeded(neptune_proto::Succeeded {
                result: forged.clone(),
                records: u64::MAX,
                elapsed_us: u64::MAX,
                skipped: u64::MAX,
                timing: Some(neptune_proto::TaskTiming {
                    queued_ns: u64::MAX,
                    start_ns: u64::MAX,
                    first_record_ns: u64::MAX,
                    process_ns: u64::MAX,
                }),
                event_time: Some(neptune_proto::EventTime {
                    oldest_ms: i64::MIN,
                    newest_ms: i64::MAX,
                    count: u64::MAX,
                    mean_ms: 0,
                }),
            });
            let peer = &peers[forger];
            let holds = peer
                .pending
                .iter()
                .any(|l| l.task.is_some_and(|t| t.id() == reduce));
            if !holds {
                send(&mut lp, peer, TaskKey::new(reduce, attempt), state);
            }
        }
    }
    assert!(
        rejected(&lp, "not_holder")
            + rejected(&lp, "stale_attempt")
            + rejected(&lp, "unknown_task")
            > 0
    );
    finish(&mut lp, &mut peers, &app, &blocks);
    assert_eq!(results(&lp), reference());
    assert_no_totals_moved(&lp);
}

#[test]
fn counters_a_holder_reports_saturate() {
    let app = app();
    let mut lp = new_loop(app.clone());
    let mut a = register(&mut lp, registration(Some("exec-0"))).unwrap();
    let _b = register(&mut lp, registration(Some("exec-1"))).unwrap();
    for _ in 0..3 {
        read(&mut lp, &mut a);
        let l = a.pending.pop_front().expect("a launch");
        let killed = task_update::State::Killed(neptune_proto::Killed { records: u64::MAX });
        send(&mut lp, &a, l.task.unwrap(), killed);
    }
    assert_eq!(lp.totals.kills, 3);
    assert_eq!(lp.totals.records_lost, u64::MAX);
    lp.on_inbound(Inbound::Heartbeat {
        id: a.id.clone(),
        session: a.session,
        heartbeat: neptune_proto::Heartbeat {
            memory_used: u64::MAX,
            memory_limit: 1,
            spilled_bytes_total: u64::MAX,
            suspended_retained_bytes: u64::MAX,
            job_records: vec![
                neptune_proto::JobRecords {
                    job: u32::MAX,
                    done: u64::MAX,
                    in_flight: u64::MAX,
                },
                neptune_proto::JobRecords {
                    job: 0,
                    done: 5,
                    in_flight: 7,
                },
            ],
        },
    });
    lp.drain();
    lp.publish_status(false);
    let st = lp.status.read().unwrap().clone();
    assert_eq!(st.totals.spilled_bytes, u64::MAX);
    assert_eq!(
        st.jobs[0].progress.records_processed, 12,
        "the executor's counters: done plus in flight; an unknown job is ignored"
    );
    assert_eq!(
        st.executors[0].memory_limit_bytes,
        1 << 30,
        "an out-of-bounds limit is ignored"
    );
}

#[test]
fn an_update_without_a_key_or_state_is_counted_as_malformed() {
    let mut lp = new_loop(app());
    let a = register(&mut lp, registration(Some("exec-0"))).unwrap();
    lp.on_inbound(Inbound::Update {
        id: a.id.clone(),
        session: a.session,
        update: TaskUpdate::default(),
        received: std::time::Instant::now(),
    });
    lp.drain();
    assert_eq!(rejected(&lp, "malformed"), 1);
}

/// A committed stream micro-batch fills every hop of the breakdown: the loop's own points
/// (submitted, launch sent, update received, committed) and the executor's reported hops. A
/// two-stage job, so the critical task is a reduce task and `upstream` is its map stage.
#[test]
fn committed_micro_batches_fill_every_hop_of_the_breakdown() {
    use crate::stats::Hop;
    let mut app = App::new("s", Arc::new(Config::default()));
    let words = Dataset::from_fn(2, |ctx| {
        let p = u64::from(ctx.partition());
        Box::new((0..20u64).map(move |i| (i % 3 + p, 1u64)))
    });
    app.stream("s", words.reduce_by_key(2, |a, b| a + b).count())
        .interval(Duration::from_millis(1))
        .runs(Some(3));
    let app = Arc::new(app);
    let cfg = DriverConfig::new(
        "s".into(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        1,
        Some(Policy::Neptune),
        Config::from_args(&["stats.warmup_ms=0"]).unwrap(),
    )
    .unwrap();
    let mut lp = EventLoop::new(cfg, app.clone(), DriverMetrics::new(), Arc::default());
    let mut peer = register(&mut lp, registration(Some("exec-0"))).unwrap();
    assert!(lp.started);
    let blocks = blocks();
    // Bounded by iterations, not time: micro-batches fall due as the loop's clock passes them.
    for _ in 0..1_000_000 {
        if lp.jobs.all_done() {
            break;
        }
        let step = lp.jobs.tick(lp.now());
        lp.work.push_back(Work::Step(step));
        lp.drain();
        while run_one(&mut lp, &mut peer, &app, &blocks) {}
    }
    assert!(lp.jobs.all_done(), "{:?}", lp.jobs.any_failed());
    lp.publish_status(true);
    let st = lp.status.read().unwrap().clone();
    let job = &st.jobs[0].progress;
    assert_eq!(job.latency_ms.count, 3);
    let names: Vec<_> = job
        .latency_breakdown_ms
        .iter()
        .map(|h| h.hop.as_str())
        .collect();
    assert_eq!(names, Hop::ALL.map(Hop::as_str));
    for h in &job.latency_breakdown_ms {
        assert_eq!(h.ms.count, 3, "hop {} recorded per micro-batch", h.hop);
    }
    let ms = |name: &str| {
        job.latency_breakdown_ms
            .iter()
            .find(|h| h.hop == name)
            .unwrap()
            .ms
    };
    // The fake executor reports 1, 2, 3, 4 µs (bounded by what the driver saw, so at most).
    assert!(ms("core_wait").max <= 0.001 + 1e-9, "{:?}", ms("core_wait"));
    assert!(ms("process").max <= 0.004 + 1e-9);
    // The sum of the hops' means is the mean end-to-end latency (hops are consecutive).
    let sum: f64 = job.latency_breakdown_ms.iter().map(|h| h.ms.mean).sum();
    let e2e = job.latency_ms.mean;
    assert!(
        (sum - e2e).abs() <= 0.01 + e2e * 0.01,
        "hops {sum} ms vs {e2e} ms"
    );
    assert!(st.totals.stats_bytes > 0);
    let hist = lp
        .metrics
        .microbatch_hop
        .with_label_values(&["s", "upstream"]);
    assert_eq!(
        hist.get_sample_count(),
        3,
        "/metrics has a histogram per hop"
    );
}
