//! The holder rule: only the executor holding a task's current attempt may report on it, and a
//! launch the driver could not send is withdrawn without stranding its victim.

use super::*;

fn finished(id: TaskId, attempt: u32, executor: &str) -> Event {
    Event::TaskFinished {
        id,
        attempt,
        executor: executor.into(),
    }
}

#[test]
fn check_names_why_an_update_from_anyone_but_the_holder_is_ignored() {
    let mut c = cluster().executor("e0", 1).executor("e1", 1).build();
    c.submit_ids([b(0), b(1), b(2)]);
    let (holder, attempt) = c.placement_of(b(0));
    let other = if holder == "e0" { "e1" } else { "e0" };
    let s = &c.sched;
    assert_eq!(s.check(&finished(b(0), attempt, &holder)), Ok(()));
    assert_eq!(
        s.check(&finished(b(0), attempt, other)),
        Err(Ignored::NotHolder)
    );
    assert_eq!(
        s.check(&finished(b(0), attempt, "rogue")),
        Err(Ignored::UnknownExecutor)
    );
    assert_eq!(
        s.check(&finished(b(0), attempt + 1000, &holder)),
        Err(Ignored::StaleAttempt)
    );
    assert_eq!(
        s.check(&finished(b(2), 0, &holder)),
        Err(Ignored::NotHolder),
        "b2 is queued: nobody holds it"
    );
    assert_eq!(
        s.check(&finished(b(7), 0, &holder)),
        Err(Ignored::UnknownTask)
    );
    let unasked = Event::TaskSuspended {
        id: b(0),
        attempt,
        executor: holder.clone(),
    };
    assert_eq!(s.check(&unasked), Err(Ignored::NotAsked));
    let unasked = Event::TaskResumed {
        id: b(0),
        attempt,
        executor: holder.clone(),
    };
    assert_eq!(s.check(&unasked), Err(Ignored::NotAsked));
    // A duplicate success is a task the scheduler no longer knows.
    c.finish(b(0));
    assert_eq!(
        c.sched.check(&finished(b(0), attempt, &holder)),
        Err(Ignored::UnknownTask)
    );
}

#[test]
fn a_task_launched_with_a_preemption_may_not_report_before_its_victim() {
    let mut c = cluster().executor("e0", 1).build();
    c.submit_ids([b(0)]);
    c.submit_ids([s(0)]);
    let ev = finished(s(0), 0, "e0");
    assert_eq!(c.sched.check(&ev), Err(Ignored::BeforeVictim));
    assert!(c.send(ev).is_empty());
    c.confirm_suspended(b(0));
    assert_eq!(c.sched.check(&finished(s(0), 0, "e0")), Ok(()));
}

#[test]
fn a_cancelled_plain_launch_frees_its_slot_for_the_next_task() {
    let mut c = cluster().executor("e0", 1).build();
    c.submit_ids([b(0), b(1)]);
    let cmds = c.send(Event::LaunchCancelled {
        id: b(0),
        attempt: 0,
        executor: "e0".into(),
    });
    assert_eq!(launches(&cmds), vec![on(b(1), "e0")]);
    assert!(c.sched.attempt_of(b(0)).is_none(), "b0 is forgotten");
}

#[test]
fn a_cancelled_launch_with_a_preemption_leaves_the_victim_running() {
    let mut c = cluster().executor("e0", 1).build();
    c.submit_ids([b(0)]);
    let cmds = c.submit_ids([s(0)]);
    assert_eq!(launches(&cmds), vec![suspending(s(0), "e0", b(0))]);
    let cmds = c.send(Event::LaunchCancelled {
        id: s(0),
        attempt: 0,
        executor: "e0".into(),
    });
    assert!(launches(&cmds).is_empty());
    assert_eq!(c.executor("e0").running, vec![b(0)]);
    // The victim is a candidate again: the next stream task preempts it.
    let cmds = c.submit_ids([s(1)]);
    assert_eq!(launches(&cmds), vec![suspending(s(1), "e0", b(0))]);
    // And a cancellation that arrives after the task moved on changes nothing.
    let stale = Event::LaunchCancelled {
        id: s(0),
        attempt: 0,
        executor: "e0".into(),
    };
    assert_eq!(c.sched.check(&stale), Err(Ignored::UnknownTask));
    assert!(c.send(stale).is_empty());
}

#[test]
fn absurd_heartbeat_values_and_endless_kills_saturate_instead_of_overflowing() {
    let mut c = cluster().executor("e0", 1).executor("e1", 1).build();
    // Regression: a window sum of per-mille ratios overflowed on `memory_used = u64::MAX` with a
    // tiny limit (a panic under overflow checks).
    let absurd = ExecutorMetrics {
        memory_used: u64::MAX,
        memory_limit: 1,
        spilled_bytes_total: u64::MAX,
        suspended_retained_bytes: u64::MAX,
    };
    for _ in 0..20 {
        c.heartbeat("e0", absurd);
    }
    c.heartbeat("e1", memory(10));
    // The calmer executor still ranks first.
    let cmds = c.submit_ids([b(0)]);
    assert_eq!(launches(&cmds), vec![on(b(0), "e1")]);
    for _ in 0..3 {
        c.confirm_killed(b(0), u64::MAX);
    }
    assert_eq!(
        c.snapshot().totals.records_lost,
        0,
        "unasked kills are not preemptions"
    );
    // Two preemptive kills, each losing "everything".
    let mut c = cluster().policy(Policy::Kill).executor("e0", 1).build();
    c.submit_ids([b(1)]);
    for i in 0..2 {
        let cmds = c.submit_ids([s(i)]);
        let victim = launches(&cmds)[0].2.expect("a preemption").task;
        c.confirm_killed(victim, u64::MAX);
        c.finish(s(i));
    }
    assert_eq!(c.snapshot().totals.kills, 2);
    assert_eq!(c.snapshot().totals.records_lost, u64::MAX);
}
