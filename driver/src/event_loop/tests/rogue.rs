//! A property-based fuzz of the event loop: a rogue session sends arbitrary updates, heartbeats
//! and registrations while honest simulated executors run the app's real tasks; the results
//! must equal an undisturbed run's and no total may move for the rogue's sake.

use super::*;

/// One thing the rogue does.
#[derive(Debug, Clone)]
enum Act {
    /// Honest executor `i` runs one pending task.
    Honest(usize),
    /// Honest executor `i` is lost and registers again (its pending launches are dropped).
    Bounce(usize),
    /// The rogue sends an update.
    Update(TaskKey, task_update::State),
    /// The rogue sends a heartbeat.
    Heartbeat(neptune_proto::Heartbeat),
    /// The rogue tries to register under an honest executor's id.
    Steal(usize),
}

fn key() -> impl Strategy<Value = TaskKey> {
    (
        0u32..3,
        0u64..3,
        0u32..3,
        0u32..4,
        prop_oneof![Just(0u32), Just(1), Just(1000), any::<u32>()],
    )
        .prop_map(|(job, run, stage, partition, attempt)| TaskKey {
            job,
            run,
            stage,
            partition,
            attempt,
        })
}

fn big() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..100, Just(u64::MAX), any::<u64>()]
}

/// Source timestamps as a peer may send them: none, plausible, or any four values.
fn event_time() -> impl Strategy<Value = Option<neptune_proto::EventTime>> {
    let ms = prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        any::<i64>(),
        1_600_000_000_000i64..1_800_000_000_000
    ];
    prop::option::of((ms.clone(), ms.clone(), big(), ms).prop_map(
        |(oldest_ms, newest_ms, count, mean_ms)| neptune_proto::EventTime {
            oldest_ms,
            newest_ms,
            count,
            mean_ms,
        },
    ))
}

fn state() -> impl Strategy<Value = task_update::State> {
    use neptune_proto as p;
    let status = (prop::collection::vec(big(), 0..5), big()).prop_map(|(bytes, records)| {
        postcard::to_stdvec(&neptune_core::shuffle::MapStatus { bytes, records }).unwrap()
    });
    let result = prop_oneof![status, prop::collection::vec(any::<u8>(), 0..32)];
    let executor = prop_oneof![
        Just(String::new()),
        Just("exec-0".to_string()),
        Just("rogue".to_string()),
        "[ -~]{0,40}",
    ];
    prop_oneof![
        (big(), any::<i32>()).prop_map(|(l, phase)| task_update::State::Suspended(p::Suspended {
            latency_ns: l,
            phase
        })),
        big().prop_map(|l| task_update::State::Resumed(p::Resumed { latency_ns: l })),
        (result, big(), big(), big(), event_time()).prop_map(
            |(result, records, elapsed_us, skipped, event_time)| {
                task_update::State::Succeeded(p::Succeeded {
                    result,
                    records,
                    elapsed_us,
                    skipped,
                    timing: None,
                    event_time,
                })
            }
        ),
        ("[ -~]{0,64}", big(), executor).prop_map(|(reason, records, from)| {
            task_update::State::Failed(p::Failed {
                reason,
                records,
                fetch_failed_executor: from,
            })
        }),
        big().prop_map(|records| task_update::State::Killed(p::Killed { records })),
        "[ -~]{0,16}".prop_map(|reason| task_update::State::Rejected(p::Rejected { reason })),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (0usize..2).prop_map(Act::Honest),
        1 => (0usize..2).prop_map(Act::Bounce),
        6 => (key(), state()).prop_map(|(k, s)| Act::Update(k, s)),
        1 => (big(), big(), big(), big(), any::<u32>()).prop_map(|(a, b, c, d, job)| Act::Heartbeat(neptune_proto::Heartbeat {
            memory_used: a,
            memory_limit: b,
            spilled_bytes_total: c,
            suspended_retained_bytes: d,
            job_records: vec![neptune_proto::JobRecords { job: job % 4, done: a, in_flight: c }],
        })),
        1 => (0usize..2).prop_map(Act::Steal),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_rogue_session_cannot_move_results_or_totals(acts in prop::collection::vec(act(), 1..60)) {
        let app = app();
        let mut lp = new_loop(app.clone());
        let blocks = blocks();
        let mut peers = vec![
            register(&mut lp, registration(Some("exec-0"))).unwrap(),
            register(&mut lp, registration(Some("exec-1"))).unwrap(),
        ];
        let mut rogue = register(&mut lp, registration(Some("rogue"))).unwrap();
        // Tasks launched on the rogue are its own to report on; it forges only the others.
        let mut held: BTreeSet<TaskId> = BTreeSet::new();
        for a in acts {
            match a {
                Act::Honest(i) => {
                    run_one(&mut lp, &mut peers[i], &app, &blocks);
                }
                Act::Bounce(i) => {
                    let p = &peers[i];
                    lp.on_inbound(Inbound::Disconnected { id: p.id.clone(), session: p.session, reason: "bounce".into() });
                    lp.drain();
                    peers[i] = register(&mut lp, registration(Some(&format!("exec-{i}")))).unwrap();
                }
                Act::Update(k, s) => {
                    read(&mut lp, &mut rogue);
                    held.extend(rogue.pending.iter().filter_map(|l| l.task.map(|t| t.id())));
                    if !held.contains(&k.id()) {
                        send(&mut lp, &rogue, k, s);
                    }
                }
                Act::Heartbeat(heartbeat) => {
                    lp.on_inbound(Inbound::Heartbeat { id: rogue.id.clone(), session: rogue.session, heartbeat });
                    lp.drain();
                }
                Act::Steal(i) => {
                    let e = register(&mut lp, registration(Some(&format!("exec-{i}")))).err();
                    prop_assert_eq!(e.map(|e| e.code()), Some(Code::AlreadyExists));
                }
            }
            prop_assert!(lp.jobs.any_failed().is_none(), "{:?}", lp.jobs.any_failed());
        }
        lp.on_inbound(Inbound::Disconnected { id: rogue.id.clone(), session: rogue.session, reason: "done".into() });
        lp.drain();
        finish(&mut lp, &mut peers, &app, &blocks);
        prop_assert_eq!(results(&lp), reference());
        assert_no_totals_moved(&lp);
    }
}
