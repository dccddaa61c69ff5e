//! Launch acknowledgement: an unacknowledged launch is re-queued and its executor is suspect
//! (no launch, resume or preemption) until it acknowledges something again.

use super::*;

fn ack(c: &mut Cluster, id: TaskId) -> Vec<Command> {
    let (executor, attempt) = c.placement_of(id);
    c.send(Event::TaskAcknowledged {
        id,
        attempt,
        executor,
    })
}

fn acking(ms: u64) -> ClusterBuilder {
    cluster().config(|cfg| cfg.launch_ack_timeout = Duration::from_millis(ms))
}

#[test]
fn an_unacknowledged_launch_is_relaunched_elsewhere_and_its_executor_is_suspect() {
    let mut c = acking(1000).executor("e0", 1).executor("e1", 1).build();
    c.submit_ids([b(0), b(1)]);
    let (silent, _) = c.placement_of(b(0));
    let other = c.placement_of(b(1)).0;
    ack(&mut c, b(1));
    // Not yet due: nothing happens.
    assert!(c.advance_ms(999).tick().is_empty());
    let cmds = c.advance_ms(2).tick();
    assert!(cmds.contains(&Command::ExecutorSuspect {
        id: silent.clone(),
        task: b(0),
        attempt: 0
    }));
    assert!(cmds.contains(&Command::Requeued {
        task: b(0),
        reason: RequeueReason::AckTimeout
    }));
    assert!(c.executor(&silent).suspect);
    assert!(!c.executor(&other).suspect);
    assert_eq!(c.snapshot().totals.ack_timeouts, 1);
    // The task goes to the healthy executor once it has a free slot, never to the suspect one.
    assert!(launches(&cmds).is_empty(), "{cmds:?}");
    let cmds = c.finish(b(1));
    assert_eq!(launches(&cmds), vec![on(b(0), &other)]);
    assert_eq!(c.attempt_of(b(0)), 1);
}

#[test]
fn a_suspect_executor_gets_work_again_once_it_acknowledges_something() {
    let mut c = acking(1000).executor("e0", 2).build();
    c.submit_ids([b(0), b(1)]);
    ack(&mut c, b(1));
    c.advance_ms(1001).tick();
    assert!(c.executor("e0").suspect);
    // b(0) is queued again but its only executor is suspect.
    assert_eq!(c.snapshot().queued_batch, 1);
    // An update of a task it holds (b(1) finishing) clears the suspicion: b(0) goes out again.
    let cmds = c.finish(b(1));
    assert!(!c.executor("e0").suspect);
    assert_eq!(launches(&cmds), vec![on(b(0), "e0")]);
}

#[test]
fn a_late_acknowledgement_of_the_timed_out_launch_clears_the_suspicion() {
    let mut c = acking(1000).executor("e0", 1).executor("e1", 1).build();
    c.submit_ids([b(0), b(1)]);
    let (slow, _) = c.placement_of(b(0));
    ack(&mut c, b(1));
    c.advance_ms(1001).tick();
    assert!(c.executor(&slow).suspect);
    // The slow executor wakes up and acknowledges attempt 0, which is no longer current.
    let late = Event::TaskAcknowledged {
        id: b(0),
        attempt: 0,
        executor: slow.clone(),
    };
    assert_eq!(c.sched.check(&late), Ok(()));
    let cmds = c.send(late);
    assert!(!c.executor(&slow).suspect);
    // b(0) (attempt 1) goes to the now trusted executor's free slot.
    assert_eq!(launches(&cmds), vec![on(b(0), &slow)]);
    assert_eq!(c.attempt_of(b(0)), 1);
    // Its stale completion still changes nothing.
    let stale = Event::TaskFinished {
        id: b(0),
        attempt: 0,
        executor: slow.clone(),
    };
    assert!(c.sched.check(&stale).is_err());
}

#[test]
fn a_stale_attempt_that_turns_up_late_is_killed_before_its_slot_is_reused() {
    let mut c = acking(1000).executor("e0", 1).executor("e1", 1).build();
    c.submit_ids([b(0), b(1), b(2)]);
    let (slow, _) = c.placement_of(b(0));
    let other = c.placement_of(b(1)).0;
    ack(&mut c, b(1));
    c.advance_ms(1001).tick();
    // b(0) attempt 1 runs on the healthy executor once it is free.
    let cmds = c.finish(b(1));
    assert_eq!(launches(&cmds), vec![on(b(0), &other)]);
    // The slow executor wakes up still running attempt 0: the scheduler gave its slot away, so
    // that attempt is killed before the slot's next task (b(2)) is sent there.
    let cmds = c.send(Event::TaskAcknowledged {
        id: b(0),
        attempt: 0,
        executor: slow.clone(),
    });
    let kill = Command::Kill {
        task: b(0),
        attempt: 0,
        executor: slow.clone(),
    };
    let at = |cmd: &Command| cmds.iter().position(|c| c == cmd);
    let kill_at = at(&kill).unwrap_or_else(|| panic!("no kill of the stale attempt: {cmds:?}"));
    let launch_at = cmds
        .iter()
        .position(|c| matches!(c, Command::Launch { task, executor, .. } if task.id == b(2) && *executor == slow))
        .unwrap_or_else(|| panic!("b(2) not launched on {slow}: {cmds:?}"));
    assert!(kill_at < launch_at, "{cmds:?}");
    // Its end (killed) is stale: it frees nothing twice and counts nothing.
    let killed = Event::TaskKilled {
        id: b(0),
        attempt: 0,
        executor: slow.clone(),
        records_lost: 0,
    };
    assert!(c.sched.check(&killed).is_err());
    // A late report that is the attempt's end asks for no kill.
    let mut c = acking(1000).executor("e0", 1).executor("e1", 1).build();
    c.submit_ids([b(0), b(1)]);
    let (slow, _) = c.placement_of(b(0));
    ack(&mut c, b(1));
    c.advance_ms(1001).tick();
    let cmds = c.send(Event::TaskFinished {
        id: b(0),
        attempt: 0,
        executor: slow.clone(),
    });
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Kill { .. })),
        "{cmds:?}"
    );
    assert!(!c.executor(&slow).suspect);
}

#[test]
fn stale_or_forged_acknowledgements_acknowledge_nothing() {
    let mut c = acking(1000).executor("e0", 1).executor("e1", 1).build();
    c.submit_ids([b(0)]);
    let (holder, attempt) = c.placement_of(b(0));
    let other = if holder == "e0" { "e1" } else { "e0" };
    // Another executor, or an older attempt, cannot acknowledge b(0) for its holder.
    for (executor, attempt) in [(other.to_string(), attempt), (holder.clone(), attempt + 1)] {
        let ev = Event::TaskAcknowledged {
            id: b(0),
            attempt,
            executor,
        };
        assert!(c.sched.check(&ev).is_err());
        c.send(ev);
    }
    let cmds = c.advance_ms(1001).tick();
    assert!(
        cmds.contains(&Command::Requeued {
            task: b(0),
            reason: RequeueReason::AckTimeout
        }),
        "{cmds:?}"
    );
}

#[test]
fn any_update_of_the_attempt_acknowledges_its_launch() {
    let mut c = acking(1000).executor("e0", 1).build();
    c.submit_ids([b(0), b(1)]);
    // b(0)'s end acknowledges it; b(1) takes its slot with a deadline of its own.
    c.finish(b(0));
    assert!(c.advance_ms(500).tick().is_empty());
    // A failure acknowledges the attempt too; the re-launch gets its own deadline.
    c.fail(b(1));
    assert_eq!(c.attempt_of(b(1)), 1);
    ack(&mut c, b(1));
    assert!(c.advance_ms(5000).tick().is_empty());
    assert_eq!(c.snapshot().totals.ack_timeouts, 0);
}

#[test]
fn the_suspect_executor_of_a_lost_connection_is_simply_gone() {
    let mut c = acking(1000).executor("e0", 1).build();
    c.submit_ids([b(0)]);
    c.advance_ms(1001).tick();
    assert!(c.executor("e0").suspect);
    let cmds = c.lose("e0");
    assert!(c.snapshot().executor("e0").is_none(), "{cmds:?}");
    let cmds = c.register("e0", 1);
    assert!(
        !c.executor("e0").suspect,
        "a new incarnation starts trusted"
    );
    assert_eq!(launches(&cmds), vec![on(b(0), "e0")]);
}
