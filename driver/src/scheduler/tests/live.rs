//! Live scheduling changes: a running scheduler switches policy and placement, keeps queued work
//! in order, and refuses what it cannot apply live.

use super::*;

fn set(c: &mut Cluster, changes: &[(&str, &str)]) -> Result<Vec<Command>, ConfigError> {
    let changes: Vec<(String, String)> = changes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.sched.reconfigure(&changes)?;
    Ok(c.send(Event::Tick))
}

#[test]
fn switching_fifo_to_neptune_lets_a_waiting_stream_task_preempt_at_once() {
    let mut c = cluster().policy(Policy::Fifo).executor("e0", 1).build();
    assert_eq!(launches(&c.submit_ids([b(0), b(1)])), vec![on(b(0), "e0")]);
    assert!(
        c.submit_ids([s(0)]).is_empty(),
        "fifo: the stream task waits"
    );
    let cmds = set(&mut c, &[("scheduler.policy", "neptune")]).unwrap();
    let l = launches(&cmds);
    assert_eq!(l.len(), 1, "{cmds:?}");
    assert_eq!((l[0].0, l[0].1.as_str()), (s(0), "e0"));
    assert!(l[0].2.is_some(), "the stream task preempts the batch task");
    assert_eq!(c.sched.config().policy, Policy::Neptune);
    // The queued batch task is still there, behind.
    c.confirm_suspended(b(0));
    c.finish(s(0));
    let snap = c.snapshot();
    assert_eq!(snap.totals.suspensions, 1);
}

#[test]
fn switching_neptune_to_fifo_merges_the_lanes_stream_first_and_stops_preempting() {
    let mut c = cluster().executor("e0", 1).build();
    assert_eq!(launches(&c.submit_ids([b(0), b(1)])), vec![on(b(0), "e0")]);
    set(&mut c, &[("scheduler.policy", "fifo")]).unwrap();
    assert!(
        c.submit_ids([s(0)]).is_empty(),
        "fifo now: no preemption, the stream task waits"
    );
    // Order kept: b(1) was queued first.
    assert_eq!(launches(&c.finish(b(0))), vec![on(b(1), "e0")]);
    assert_eq!(launches(&c.finish(b(1))), vec![on(s(0), "e0")]);
}

#[test]
fn placement_and_anti_starvation_change_live_and_bad_changes_change_nothing() {
    let mut c = cluster().executor("e0", 2).executor("e1", 2).build();
    set(
        &mut c,
        &[
            ("scheduler.placement", "lb"),
            ("scheduler.max_suspensions", "3"),
            ("scheduler.quantum_ms", "250"),
        ],
    )
    .unwrap();
    let cfg = c.sched.config().clone();
    assert_eq!(cfg.placement, Placement::Lb);
    assert_eq!(cfg.max_suspensions, 3);
    assert_eq!(cfg.quantum, Duration::from_millis(250));
    // All or nothing: a valid change next to a bad one is not applied.
    for bad in [
        &[
            ("scheduler.quantum_ms", "7"),
            ("scheduler.policy", "static"),
        ][..],
        &[
            ("scheduler.quantum_ms", "7"),
            ("scheduler.max_suspensions", "-1"),
        ],
        &[
            ("scheduler.quantum_ms", "7"),
            ("heartbeat.timeout_ms", "9000"),
        ],
        &[("scheduler.quantum_ms", "7"), ("scheduler.bogus", "1")],
    ] {
        let e = set(&mut c, bad).unwrap_err().to_string();
        let key = bad[1].0;
        assert!(e.contains(key), "{e}");
        assert_eq!(c.sched.config(), &cfg, "nothing applied after {e}");
    }
    let e = set(&mut c, &[("scheduler.policy", "static")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("restart"), "{e}");
    // Placement still works after the re-rank: tasks spread over both executors.
    let l = launches(&c.submit_ids([s(0), s(1)]));
    let execs: std::collections::BTreeSet<_> = l.iter().map(|x| x.1.clone()).collect();
    assert_eq!(execs.len(), 2, "{l:?}");
}
