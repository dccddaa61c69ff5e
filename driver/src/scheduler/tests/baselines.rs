//! Baseline policies: `fifo`, `fair`, `kill`, `static`.

use super::*;

fn preempts(cmds: &[Command]) -> bool {
    launches(cmds).iter().any(|(_, _, p)| p.is_some())
}

#[test]
fn fifo_runs_tasks_in_submission_order_and_never_preempts() {
    let mut c = cluster().policy(Policy::Fifo).executor("e0", 1).build();
    assert_eq!(launches(&c.submit_ids([b(0), b(1)])), vec![on(b(0), "e0")]);
    let cmds = c.submit_ids([s(0)]);
    assert!(
        cmds.is_empty(),
        "the stream task waits behind the batch tasks"
    );
    assert_eq!(launches(&c.finish(b(0))), vec![on(b(1), "e0")]);
    assert_eq!(launches(&c.finish(b(1))), vec![on(s(0), "e0")]);
    assert_eq!(
        c.snapshot().totals.suspensions + c.snapshot().totals.kills,
        0
    );
}

#[test]
fn fair_gives_each_pool_its_weighted_share_of_slots() {
    let mut c = cluster()
        .policy(Policy::Fair)
        .config(|cfg| {
            cfg.fair_weights = FairWeights {
                stream: 3,
                batch: 1,
            }
        })
        .build();
    c.submit_ids((0..8).map(b));
    c.submit_ids((0..8).map(s));
    let cmds = c.register("e0", 4);
    assert!(!preempts(&cmds));
    assert_eq!(
        launches(&cmds),
        vec![
            on(s(0), "e0"),
            on(b(0), "e0"),
            on(s(1), "e0"),
            on(s(2), "e0")
        ],
        "3 stream : 1 batch"
    );
    // A batch slot frees: batch is below its share (0 of 1), so batch refills it.
    assert_eq!(launches(&c.finish(b(0))), vec![on(b(1), "e0")]);
    // A stream slot frees: stream is below its share (2 of 3).
    assert_eq!(launches(&c.finish(s(0))), vec![on(s(3), "e0")]);
}

#[test]
fn fair_with_one_pool_empty_gives_everything_to_the_other() {
    let mut c = cluster().policy(Policy::Fair).executor("e0", 2).build();
    let cmds = c.submit_ids([b(0), b(1), b(2)]);
    assert_eq!(launches(&cmds), vec![on(b(0), "e0"), on(b(1), "e0")]);
    assert!(
        c.submit_ids([s(0)]).is_empty(),
        "no preemption: the stream task waits"
    );
}

#[test]
fn kill_policy_kills_the_victim_and_requeues_it_at_the_batch_head_with_records_lost() {
    let mut c = cluster().policy(Policy::Kill).executor("e0", 1).build();
    c.submit_ids([b(0), b(1)]);
    let cmds = c.submit_ids([s(0)]);
    let kill = Some(Preempt {
        task: b(0),
        how: PreemptHow::Kill,
    });
    assert_eq!(launches(&cmds), vec![(s(0), "e0".to_owned(), kill)]);

    let cmds = c.confirm_killed(b(0), 42);
    assert_eq!(
        cmds,
        vec![Command::Requeued {
            task: b(0),
            reason: RequeueReason::Killed
        }]
    );
    assert_eq!(c.executor("e0").running, vec![s(0)]);
    let totals = c.snapshot().totals;
    assert_eq!(
        (totals.kills, totals.records_lost, totals.suspensions),
        (1, 42, 0)
    );

    // The killed task reruns before b1, as attempt 1.
    let cmds = c.finish(s(0));
    let Some(Command::Launch { task, .. }) = cmds.first() else {
        panic!("no launch: {cmds:?}")
    };
    assert_eq!((task.id, task.attempt), (b(0), 1));
}

#[test]
fn kill_policy_victim_finishing_first_is_not_counted_as_a_kill() {
    let mut c = cluster().policy(Policy::Kill).executor("e0", 1).build();
    c.submit_ids([b(0)]);
    c.submit_ids([s(0)]);
    c.finish(b(0));
    assert_eq!(c.executor("e0").running, vec![s(0)]);
    assert_eq!(c.snapshot().totals.kills, 0);
}

#[test]
fn static_policy_dedicates_the_first_executors_to_stream_tasks() {
    let mut c = cluster()
        .policy(Policy::Static)
        .config(|cfg| cfg.static_stream_executors = 1)
        .executor("e0", 1)
        .executor("e1", 1)
        .build();
    let cmds = c.submit_ids([b(0), b(1)]);
    assert_eq!(
        launches(&cmds),
        vec![on(b(0), "e1")],
        "batch never lands on the stream executor"
    );
    assert_eq!(launches(&c.submit_ids([s(0)])), vec![on(s(0), "e0")]);
    assert!(
        c.submit_ids([s(1)]).is_empty(),
        "no preemption, no spill-over to batch executors"
    );
    let snap = c.snapshot();
    assert_eq!(snap.executors[0].dedicated_to, Some(JobKind::Stream));
    assert_eq!(snap.executors[1].dedicated_to, Some(JobKind::Batch));
}

#[test]
fn static_policy_gives_a_lost_stream_executors_role_to_the_next_registered() {
    let mut c = cluster()
        .policy(Policy::Static)
        .executor("e0", 1)
        .executor("e1", 1)
        .build();
    c.lose("e0");
    c.register("e2", 1);
    assert_eq!(
        c.executor("e1").dedicated_to,
        Some(JobKind::Batch),
        "roles never change"
    );
    assert_eq!(c.executor("e2").dedicated_to, Some(JobKind::Stream));
}
