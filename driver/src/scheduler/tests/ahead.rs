//! The SLO-aware mode acting ahead of a micro-batch: a reservation made a lead before it is
//! due suspends the batch tasks in the slots the job's tasks took last time (a standalone
//! `Command::Suspend`), keeps batch launches and resumes out of them, is consumed by the
//! micro-batch's launch (no preemption round trip), and ends at its deadline otherwise.

use super::*;
use crate::scheduler::acceptance::Ignored;

const TARGET: Duration = Duration::from_millis(100);

/// Stream task `p` of run `run`.
fn sr(run: u64, p: u32) -> TaskId {
    TaskId { run, ..s(p) }
}

fn ahead_cluster(policy: Policy, executors: &[(&str, u32)]) -> Cluster {
    let mut b = cluster().policy(policy).config(|c| {
        c.slo_aware = true;
        c.slo_lead = Duration::from_micros(500);
    });
    for (name, cores) in executors {
        b = b.executor(name, *cores);
    }
    b.build()
}

/// The (task, attempt, executor) of every standalone suspension in `cmds`.
fn suspends(cmds: &[Command]) -> Vec<(TaskId, u32, String)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Suspend {
                task,
                attempt,
                executor,
            } => Some((*task, *attempt, executor.clone())),
            _ => None,
        })
        .collect()
}

impl Cluster {
    fn report_p99(&mut self, ms: u64) -> Vec<Command> {
        self.send(Event::StreamLatency {
            job: STREAM_JOB,
            recent_p99: Duration::from_millis(ms),
            target: TARGET,
        })
    }

    /// The stream job's next micro-batch is due in `in_us` microseconds.
    fn due_in_us(&mut self, in_us: u64) -> Vec<Command> {
        let due = self.now + Duration::from_micros(in_us);
        self.send(Event::StreamDueSoon {
            job: STREAM_JOB,
            due,
        })
    }
}

/// e0 (2 cores) runs b0 and b1 with b2 queued; run 0 of the stream job (s0, s1) preempted both,
/// finished, and both resumed: the job's last micro-batch took 2 slots on e0.
fn micro_batch_ran_once(c: &mut Cluster) {
    c.report_p99(10);
    c.submit_ids([b(0), b(1), b(2)]);
    let cmds = c.submit_ids([sr(0, 0), sr(0, 1)]);
    assert_eq!(launches(&cmds).len(), 2, "{cmds:?}");
    assert!(launches(&cmds).iter().all(|l| l.2.is_some()), "{cmds:?}");
    c.confirm_suspended(b(0));
    c.confirm_suspended(b(1));
    c.finish(sr(0, 0));
    c.finish(sr(0, 1));
    c.confirm_resumed(b(0));
    c.confirm_resumed(b(1));
    assert_eq!(c.executor("e0").running, vec![b(0), b(1)]);
}

#[test]
fn a_reservation_suspends_batch_ahead_and_the_micro_batch_launches_without_preempting() {
    let mut c = ahead_cluster(Policy::Neptune, &[("e0", 2)]);
    micro_batch_ran_once(&mut c);
    c.advance_ms(39);
    // A lead before run 1 is due: both slots are reserved and their batch tasks suspended.
    let cmds = c.due_in_us(800);
    let mut got = suspends(&cmds);
    got.sort();
    assert_eq!(
        got,
        vec![(b(0), 0, "e0".to_owned()), (b(1), 0, "e0".to_owned())]
    );
    assert!(launches(&cmds).is_empty(), "{cmds:?}");
    assert!(c.sched.slo_reserved(STREAM_JOB));
    assert_eq!(c.sched.ahead.slots(STREAM_JOB, 0), 2);
    assert_eq!(c.executor("e0").suspending, vec![b(0), b(1)]);
    // Only a suspension is accepted for a task being suspended ahead; a stale attempt is not.
    let resumed = Event::TaskResumed {
        id: b(0),
        attempt: 0,
        executor: "e0".into(),
    };
    assert_eq!(c.sched.check(&resumed), Err(Ignored::NotAsked));
    let stale = Event::TaskSuspended {
        id: b(0),
        attempt: 1,
        executor: "e0".into(),
    };
    assert_eq!(c.sched.check(&stale), Err(Ignored::StaleAttempt));
    // b0 parks: its slot stays free for the micro-batch (neither b2 nor b0 takes it).
    let cmds = c.confirm_suspended(b(0));
    assert!(
        launches(&cmds).is_empty() && resumes(&cmds).is_empty(),
        "{cmds:?}"
    );
    assert_eq!(c.executor("e0").suspended, vec![b(0)]);
    // Run 1 arrives before b1 parked: one task takes the free slot, the other the slot b1 is
    // leaving (a preemption of b1 only, no other victim); the reservation is consumed.
    c.advance_ms(1);
    let cmds = c.submit_ids([sr(1, 0), sr(1, 1)]);
    assert_eq!(
        launches(&cmds),
        vec![on(sr(1, 0), "e0"), suspending(sr(1, 1), "e0", b(1))]
    );
    assert!(!c.sched.slo_reserved(STREAM_JOB));
    let cmds = c.confirm_suspended(b(1));
    assert!(resumes(&cmds).is_empty(), "{cmds:?}");
    assert_eq!(c.executor("e0").running, vec![sr(1, 0), sr(1, 1)]);
    // The stream tasks finish: the suspended batch tasks resume by the usual rules.
    let r0 = resumes(&c.finish(sr(1, 0)));
    let r1 = resumes(&c.finish(sr(1, 1)));
    assert_eq!(
        [r0, r1].concat(),
        vec![(b(0), "e0".to_owned()), (b(1), "e0".to_owned())]
    );
    let t = c.snapshot().totals;
    assert_eq!((t.reservations, t.ahead_suspensions), (1, 2));
    assert_eq!(t.reservations_expired, 0);
}

#[test]
fn a_reservation_ends_at_its_deadline_when_the_micro_batch_does_not_come() {
    let mut c = ahead_cluster(Policy::Neptune, &[("e0", 2)]);
    micro_batch_ran_once(&mut c);
    c.advance_ms(39);
    assert_eq!(suspends(&c.due_in_us(1000)).len(), 2);
    c.confirm_suspended(b(0));
    c.confirm_suspended(b(1));
    // Due + grace (at least 5 ms) has not passed: still held.
    c.advance_ms(5);
    assert!(resumes(&c.tick()).is_empty());
    assert!(c.sched.slo_reserved(STREAM_JOB));
    // Past it: released, and the suspended tasks take their cores back.
    c.advance_ms(1);
    let cmds = c.tick();
    assert!(!c.sched.slo_reserved(STREAM_JOB));
    assert_eq!(
        resumes(&cmds),
        vec![(b(0), "e0".to_owned()), (b(1), "e0".to_owned())]
    );
    assert_eq!(c.snapshot().totals.reservations_expired, 1);
}

#[test]
fn tasks_of_the_previous_micro_batch_do_not_consume_the_reservation() {
    let mut c = ahead_cluster(Policy::Neptune, &[("e0", 2)]);
    micro_batch_ran_once(&mut c);
    c.advance_ms(39);
    c.due_in_us(800);
    c.confirm_suspended(b(0));
    // A late stage of run 0 launches: it takes the free slot, but the reservation (for run 1)
    // stands.
    let late = TaskId {
        stage: 1,
        ..sr(0, 0)
    };
    assert_eq!(launches(&c.submit_ids([late])), vec![on(late, "e0")]);
    assert!(c.sched.slo_reserved(STREAM_JOB));
}

#[test]
fn a_task_that_ends_while_being_suspended_leaves_its_slot_to_the_micro_batch() {
    let mut c = ahead_cluster(Policy::Neptune, &[("e0", 2)]);
    micro_batch_ran_once(&mut c);
    c.advance_ms(39);
    c.due_in_us(800);
    // b0 finished before it reached a yield point: its slot is free, and still reserved.
    let cmds = c.finish(b(0));
    assert!(launches(&cmds).is_empty(), "b2 must not take it: {cmds:?}");
    // b1 fails meanwhile: re-queued, its slot free and reserved too.
    let cmds = c.fail(b(1));
    assert!(launches(&cmds).is_empty(), "{cmds:?}");
    let cmds = c.submit_ids([sr(1, 0), sr(1, 1)]);
    assert_eq!(
        launches(&cmds),
        vec![on(sr(1, 0), "e0"), on(sr(1, 1), "e0")]
    );
}

#[test]
fn an_executor_lost_meanwhile_leaves_the_reservation() {
    let mut c = cluster()
        .placement(Placement::Lb)
        .config(|c| c.slo_aware = true)
        .executor("e0", 2)
        .executor("e1", 2)
        .build();
    c.report_p99(10);
    c.submit_ids([b(0), b(1), b(2), b(3)]);
    let cmds = c.submit_ids([sr(0, 0)]);
    let (_, exec, preempt) = launches(&cmds)[0].clone();
    let victim = preempt.unwrap().task;
    c.confirm_suspended(victim);
    c.finish(sr(0, 0));
    c.confirm_resumed(victim);
    c.advance_ms(39);
    let cmds = c.due_in_us(800);
    assert_eq!(suspends(&cmds).len(), 1);
    assert_eq!(suspends(&cmds)[0].2, exec);
    c.lose(&exec);
    assert!(!c.sched.slo_reserved(STREAM_JOB));
    // The micro-batch goes where it can, preempting as usual.
    let cmds = c.submit_ids([sr(1, 0)]);
    assert_eq!(launches(&cmds).len(), 1, "{cmds:?}");
}

#[test]
fn a_cancelled_job_kills_its_task_being_suspended() {
    let mut c = ahead_cluster(Policy::Neptune, &[("e0", 2)]);
    micro_batch_ran_once(&mut c);
    c.advance_ms(39);
    c.due_in_us(800);
    let cmds = c.send(Event::JobCancelled { job: BATCH_JOB });
    let killed: Vec<TaskId> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Kill { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    assert_eq!(killed, vec![b(0), b(1)]);
    // One parks before the kill lands, one is killed outright: both are gone.
    c.confirm_suspended(b(0));
    c.confirm_killed(b(0), 0);
    c.confirm_killed(b(1), 0);
    assert!(c.executor("e0").suspending.is_empty());
    assert!(c.executor("e0").suspended.is_empty());
}

#[test]
fn a_switch_to_a_policy_without_preemption_ends_the_reservation() {
    let mut c = ahead_cluster(Policy::Neptune, &[("e0", 2)]);
    micro_batch_ran_once(&mut c);
    c.advance_ms(39);
    c.due_in_us(800);
    c.sched
        .reconfigure(&[("scheduler.policy".into(), "fair".into())])
        .unwrap();
    c.tick();
    assert!(!c.sched.slo_reserved(STREAM_JOB));
    // b0 parks: its free slot goes to queued batch work at once.
    let cmds = c.confirm_suspended(b(0));
    assert_eq!(launches(&cmds), vec![on(b(2), "e0")]);
}

#[test]
fn under_kill_a_reservation_keeps_free_slots_without_suspending() {
    let mut c = ahead_cluster(Policy::Kill, &[("e0", 2)]);
    c.report_p99(10);
    c.submit_ids([b(0), b(1), b(2)]);
    let cmds = c.submit_ids([sr(0, 0)]);
    let victim = launches(&cmds)[0].2.unwrap().task;
    c.confirm_killed(victim, 5);
    c.finish(sr(0, 0));
    // The killed task was re-queued and relaunched in the freed slot.
    c.advance_ms(39);
    let cmds = c.due_in_us(800);
    assert!(suspends(&cmds).is_empty(), "{cmds:?}");
    assert!(c.sched.slo_reserved(STREAM_JOB));
    // A batch task ends: its slot is kept for the micro-batch.
    let running = c.executor("e0").running;
    let cmds = c.finish(running[0]);
    assert!(launches(&cmds).is_empty(), "{cmds:?}");
    let cmds = c.submit_ids([sr(1, 0)]);
    assert_eq!(launches(&cmds), vec![on(sr(1, 0), "e0")]);
}

#[test]
fn without_a_lead_or_a_latency_report_due_soon_changes_nothing() {
    // Lead 0: the mode only holds (slo.rs).
    let mut c = cluster()
        .config(|c| {
            c.slo_aware = true;
            c.slo_lead = Duration::ZERO;
        })
        .executor("e0", 2)
        .build();
    micro_batch_ran_once(&mut c);
    assert!(suspends(&c.due_in_us(800)).is_empty());
    assert!(!c.sched.slo_reserved(STREAM_JOB));
    // Mode on, but the job never reported a latency (no target): nothing is known of it.
    let mut c = ahead_cluster(Policy::Neptune, &[("e0", 2)]);
    c.submit_ids([b(0), b(1)]);
    assert!(suspends(&c.due_in_us(800)).is_empty());
    assert!(!c.sched.slo_reserved(STREAM_JOB));
}

#[test]
fn with_acting_ahead_no_hold_guard_engages() {
    let mut c = ahead_cluster(Policy::Neptune, &[("e0", 2)]);
    micro_batch_ran_once(&mut c);
    // Far past the target: acting ahead stays the only action, no core is held between
    // micro-batches.
    c.report_p99(500);
    assert!(!c.sched.slo_guarded(STREAM_JOB));
    assert_eq!(c.sched.slo_guard_counts(), (0, 0));
}

#[test]
fn a_cancelled_launch_leaves_its_victim_being_suspended_ahead() {
    let mut c = ahead_cluster(Policy::Neptune, &[("e0", 2)]);
    micro_batch_ran_once(&mut c);
    c.advance_ms(39);
    c.due_in_us(800);
    c.confirm_suspended(b(0));
    let cmds = c.submit_ids([sr(1, 0), sr(1, 1)]);
    assert_eq!(launches(&cmds)[1], suspending(sr(1, 1), "e0", b(1)));
    // The paired launch could not be sent: b1's own suspension is still in flight.
    c.send(Event::LaunchCancelled {
        id: sr(1, 1),
        attempt: 0,
        executor: "e0".into(),
    });
    assert_eq!(c.executor("e0").suspending, vec![b(1)]);
    // It parks: accepted (it was asked), and its slot goes to the oldest suspended task.
    let cmds = c.confirm_suspended(b(1));
    assert_eq!(resumes(&cmds), vec![(b(0), "e0".to_owned())]);
    assert_eq!(c.executor("e0").running, vec![sr(1, 0), b(0)]);
    assert_eq!(c.executor("e0").suspended, vec![b(1)]);
}
