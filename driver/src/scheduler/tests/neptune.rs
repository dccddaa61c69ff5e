//! The `neptune` policy: stream first, suspension in the launch message, exact slot accounting
//! under every interleaving, resume on the same executor, anti-starvation.

use super::*;

/// One executor with two slots, both running batch tasks b0 and b1.
fn full_single_executor() -> Cluster {
    let mut c = cluster().executor("e0", 2).build();
    c.submit_ids([b(0), b(1), b(2)]);
    c
}

#[test]
fn batch_tasks_take_free_slots_in_submission_order() {
    let mut c = cluster().executor("e0", 2).build();
    let cmds = c.submit_ids([b(0), b(1), b(2)]);
    assert_eq!(launches(&cmds), vec![on(b(0), "e0"), on(b(1), "e0")]);
    assert_eq!(c.snapshot().queued_batch, 1);
}

#[test]
fn freed_slot_goes_to_the_suspended_task_before_queued_batch_tasks() {
    let mut c = full_single_executor();
    c.submit_ids([s(0)]);
    c.confirm_suspended(b(0));
    let cmds = c.finish(s(0));
    assert_eq!(resumes(&cmds), vec![(b(0), "e0".to_owned())]);
    assert!(launches(&cmds).is_empty(), "b2 stays queued");
}

#[test]
fn stream_task_on_a_full_cluster_suspends_a_batch_task_in_the_launch_message() {
    let mut c = full_single_executor();
    let cmds = c.submit_ids([s(0)]);
    // Same start time and no prior preemption: the smallest id among the youngest loses.
    assert_eq!(launches(&cmds), vec![suspending(s(0), "e0", b(0))]);
    assert_eq!(cmds.len(), 1, "one message: launch and suspend together");
}

#[test]
fn most_recently_started_batch_task_is_the_victim() {
    let mut c = cluster().executor("e0", 2).build();
    c.submit_ids([b(0)]);
    c.advance_ms(10).submit_ids([b(1)]);
    let cmds = c.submit_ids([s(0)]);
    assert_eq!(launches(&cmds), vec![suspending(s(0), "e0", b(1))]);
}

#[test]
fn slot_is_not_reused_before_the_suspension_is_confirmed() {
    let mut c = full_single_executor();
    c.submit_ids([s(0)]);
    // b2 is queued and a second stream task arrives: neither may take the victim's slot.
    let cmds = c.submit_ids([s(1)]);
    assert_eq!(launches(&cmds), vec![suspending(s(1), "e0", b(1))]);
    let e0 = c.executor("e0");
    assert_eq!(e0.suspending, vec![b(0), b(1)]);
    assert_eq!(e0.reserved, vec![s(0), s(1)]);
    assert!(e0.running.is_empty());
    assert!(
        c.submit_ids([s(2)]).is_empty(),
        "no candidate left: s2 waits"
    );

    let cmds = c.confirm_suspended(b(0));
    assert!(
        cmds.is_empty(),
        "the confirmed slot belongs to s0, nothing else is launched"
    );
    let e0 = c.executor("e0");
    assert_eq!(e0.running, vec![s(0)]);
    assert_eq!(e0.suspended, vec![b(0)]);
    assert_eq!(c.snapshot().totals.suspensions, 1);
}

#[test]
fn suspended_task_resumes_on_its_own_executor_only() {
    let mut c = cluster().executor("e0", 1).executor("e1", 1).build();
    c.submit_ids([b(0), b(1)]);
    c.submit_ids([s(0)]);
    c.confirm_suspended(b(0));
    // A slot frees on e1: the suspended b0 (on e0) must not migrate there.
    let cmds = c.finish(b(1));
    assert!(resumes(&cmds).is_empty());
    // The slot on e0 frees: b0 resumes there.
    let cmds = c.finish(s(0));
    assert_eq!(resumes(&cmds), vec![(b(0), "e0".to_owned())]);
    c.confirm_resumed(b(0));
    assert_eq!(c.snapshot().totals.resumptions, 1);
    assert_eq!(c.executor("e0").running, vec![b(0)]);
}

#[test]
fn queued_stream_beats_suspended_task_beats_queued_batch_when_a_slot_frees() {
    let mut c = full_single_executor();
    c.submit_ids([s(0)]);
    c.confirm_suspended(b(0));
    c.submit_ids([s(1)]);
    c.confirm_suspended(b(1));
    c.submit_ids([s(2)]); // full of stream tasks: s2 waits
    let cmds = c.finish(s(0));
    assert_eq!(launches(&cmds), vec![on(s(2), "e0")]);
    let cmds = c.finish(s(1));
    assert_eq!(
        resumes(&cmds),
        vec![(b(0), "e0".to_owned())],
        "oldest suspension first"
    );
    let cmds = c.finish(s(2));
    assert_eq!(resumes(&cmds), vec![(b(1), "e0".to_owned())]);
    c.confirm_resumed(b(1));
    let cmds = c.finish(b(1));
    assert_eq!(launches(&cmds), vec![on(b(2), "e0")]);
}

#[test]
fn stream_tasks_are_never_preempted() {
    let mut c = cluster().executor("e0", 1).build();
    c.submit_ids([s(0)]);
    assert!(c.submit_ids([s(1)]).is_empty());
    assert_eq!(c.snapshot().queued_stream, 1);
}

#[test]
fn victim_finishing_before_the_suspension_lands_hands_its_slot_to_the_stream_task() {
    let mut c = full_single_executor();
    c.submit_ids([s(0)]);
    let cmds = c.finish(b(0));
    assert!(cmds.is_empty(), "the slot went to s0, not to the queued b2");
    let e0 = c.executor("e0");
    assert_eq!(e0.running, vec![s(0), b(1)]);
    assert!(e0.suspended.is_empty() && e0.suspending.is_empty());
    assert_eq!(c.snapshot().totals.suspensions, 0);
}

#[test]
fn victim_failing_before_the_suspension_lands_is_requeued_and_the_stream_task_runs() {
    let mut c = full_single_executor();
    c.submit_ids([s(0)]);
    let cmds = c.fail(b(0));
    assert!(cmds.contains(&Command::Requeued {
        task: b(0),
        reason: RequeueReason::Failed
    }));
    assert_eq!(c.executor("e0").running, vec![s(0), b(1)]);
    assert_eq!(c.attempt_of(b(0)), 1);
}

#[test]
fn events_of_the_reserved_task_before_its_victims_outcome_are_ignored() {
    let mut c = full_single_executor();
    c.submit_ids([s(0)]);
    let early = Event::TaskFinished {
        id: s(0),
        attempt: 0,
        executor: "e0".into(),
    };
    assert!(c.send(early).is_empty());
    assert_eq!(c.executor("e0").reserved, vec![s(0)]);
}

#[test]
fn executor_lost_during_a_preemption_requeues_both_stream_first() {
    let mut c = cluster().executor("e0", 1).build();
    c.submit_ids([b(0), b(1)]);
    c.submit_ids([s(0)]);
    let cmds = c.lose("e0");
    let requeued: Vec<TaskId> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Requeued { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    assert_eq!(requeued, vec![b(0), s(0)]);
    let cmds = c.register("e1", 1);
    assert_eq!(
        launches(&cmds),
        vec![on(s(0), "e1")],
        "stream first, then b0, then b1"
    );
    assert_eq!(c.attempt_of(s(0)), 1);
    assert_eq!(c.attempt_of(b(0)), 1);
    assert_eq!(c.attempt_of(b(1)), 0);
}

#[test]
fn often_suspended_task_runs_unpreemptible_for_a_quantum_after_resuming() {
    let mut c = cluster()
        .executor("e0", 1)
        .config(|cfg| {
            cfg.max_suspensions = 1;
            cfg.quantum = Duration::from_secs(10);
        })
        .build();
    c.submit_ids([b(0)]);
    for p in 0..2 {
        c.advance_ms(100);
        assert_eq!(
            launches(&c.submit_ids([s(p)])),
            vec![suspending(s(p), "e0", b(0))]
        );
        c.confirm_suspended(b(0));
        c.finish(s(p));
        c.advance_ms(1).confirm_resumed(b(0));
    }
    // Suspended twice (> 1): protected for 10 s from its resume.
    assert!(c.advance_ms(100).submit_ids([s(2)]).is_empty());
    assert!(
        c.advance_ms(5_000).tick().is_empty(),
        "still inside the quantum"
    );
    let cmds = c.advance_ms(5_000).tick();
    assert_eq!(
        launches(&cmds),
        vec![suspending(s(2), "e0", b(0))],
        "quantum expired"
    );
}

#[test]
fn least_often_preempted_batch_task_is_the_victim() {
    let mut c = cluster().executor("e0", 2).build();
    c.submit_ids([b(0), b(1)]);
    c.advance_ms(10).submit_ids([s(0)]);
    c.confirm_suspended(b(0));
    c.finish(s(0));
    c.advance_ms(10).confirm_resumed(b(0));
    // b0 started more recently, but was already suspended once.
    assert_eq!(
        launches(&c.submit_ids([s(1)])),
        vec![suspending(s(1), "e0", b(1))]
    );
}

#[test]
fn cancelling_a_job_drops_its_queue_and_kills_its_placed_tasks() {
    let mut c = full_single_executor();
    c.submit_ids([s(0)]);
    c.confirm_suspended(b(0));
    let cmds = c.send(Event::JobCancelled { job: BATCH_JOB });
    let kills: Vec<TaskId> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Kill { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    assert_eq!(kills, vec![b(0), b(1)]);
    assert_eq!(c.snapshot().queued_batch, 0);
    // b1 keeps its slot until the executor reports its end; then nothing is re-queued.
    assert_eq!(c.executor("e0").running, vec![s(0), b(1)]);
    let cmds = c.confirm_killed(b(1), 5);
    assert!(cmds.is_empty());
    c.confirm_killed(b(0), 0);
    assert_eq!(c.executor("e0").running, vec![s(0)]);
    assert_eq!(
        c.snapshot().totals.kills,
        0,
        "cancellation kills are not preemptions"
    );
}
