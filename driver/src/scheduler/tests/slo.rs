//! The SLO-aware mode: a guard turns on when a stream job's recent p99 nears its target, holds
//! one core back from batch launches and resumes on the executors the job's tasks use, and
//! turns off once the margin has returned for a window.

use super::*;

const TARGET: Duration = Duration::from_millis(100);

fn slo_cluster(executors: &[(&str, u32)]) -> Cluster {
    // Hold only (no acting ahead): the guard's own thresholds (`ahead.rs` is tested apart).
    let mut b = cluster().config(|c| {
        c.slo_aware = true;
        c.slo_lead = Duration::ZERO;
    });
    for (name, cores) in executors {
        b = b.executor(name, *cores);
    }
    b.build()
}

impl Cluster {
    fn p99(&mut self, ms: u64) -> Vec<Command> {
        self.send(Event::StreamLatency {
            job: STREAM_JOB,
            recent_p99: Duration::from_millis(ms),
            target: TARGET,
        })
    }
}

/// e0 (2 cores) runs b0 and b1 with b2 queued; s0 preempted b0, which is suspended. The stream
/// job reported a latency before (well within its target): the scheduler tracks its launches.
fn stream_ran_once(c: &mut Cluster) {
    c.p99(10);
    c.submit_ids([b(0), b(1), b(2)]);
    assert_eq!(
        launches(&c.submit_ids([s(0)])),
        vec![suspending(s(0), "e0", b(0))]
    );
    c.confirm_suspended(b(0));
}

#[test]
fn a_guard_holds_a_core_for_the_next_micro_batch_until_the_margin_returns() {
    let mut c = slo_cluster(&[("e0", 2)]);
    stream_ran_once(&mut c);
    // 85 ms of a 100 ms target: past 0.8, the guard turns on.
    c.p99(85);
    assert!(c.sched.slo_guarded(STREAM_JOB));
    assert_eq!(c.sched.slo_guard_counts(), (1, 1));
    let cmds = c.finish(s(0));
    assert!(
        resumes(&cmds).is_empty() && launches(&cmds).is_empty(),
        "the freed core is held for stream work: {cmds:?}"
    );
    // The next micro-batch finds it free: no preemption, no suspend round trip.
    c.advance_ms(40);
    let cmds = c.submit_ids([TaskId { run: 1, ..s(0) }]);
    assert_eq!(launches(&cmds), vec![on(TaskId { run: 1, ..s(0) }, "e0")]);
    c.finish(TaskId { run: 1, ..s(0) });
    // Under 0.5 x target, but the guard has not been on for a window yet: it stays.
    c.advance_ms(1000);
    assert!(resumes(&c.p99(30)).is_empty());
    assert!(c.sched.slo_guarded(STREAM_JOB));
    // Between the thresholds after a window (micro-batches still running there): hysteresis
    // keeps it on.
    c.advance_ms(5000);
    let run2 = TaskId { run: 2, ..s(0) };
    assert_eq!(launches(&c.submit_ids([run2])), vec![on(run2, "e0")]);
    c.finish(run2);
    assert!(resumes(&c.p99(60)).is_empty());
    assert!(c.sched.slo_guarded(STREAM_JOB));
    // Under 0.5 x target after a window: off, and the suspended task takes the core back.
    let cmds = c.p99(30);
    assert!(!c.sched.slo_guarded(STREAM_JOB));
    assert_eq!(resumes(&cmds), vec![(b(0), "e0".to_owned())]);
    assert_eq!(c.sched.slo_guard_counts(), (0, 0));
}

#[test]
fn launches_of_a_job_that_never_reported_are_not_tracked() {
    // s0 runs before any latency report: its executor is unknown to the guard, which holds
    // nothing when it turns on; the next micro-batch's launch puts the hold in place.
    let mut c = slo_cluster(&[("e0", 2)]);
    c.submit_ids([b(0), b(1), b(2)]);
    c.submit_ids([s(0)]);
    c.confirm_suspended(b(0));
    c.p99(90);
    assert_eq!(c.sched.slo_guard_counts(), (1, 0));
    assert_eq!(resumes(&c.finish(s(0))), vec![(b(0), "e0".to_owned())]);
    let next = TaskId { run: 1, ..s(0) };
    c.submit_ids([next]);
    assert_eq!(c.sched.slo_guard_counts(), (1, 1));
}

#[test]
fn without_the_mode_latency_reports_change_nothing() {
    let mut c = cluster().executor("e0", 2).build();
    stream_ran_once(&mut c);
    c.p99(500);
    assert!(!c.sched.slo_guarded(STREAM_JOB));
    let cmds = c.finish(s(0));
    assert_eq!(resumes(&cmds), vec![(b(0), "e0".to_owned())]);
}

#[test]
fn only_the_executors_the_stream_job_uses_are_guarded_and_never_a_single_core() {
    // e0 (1 core) and e1 (2 cores), both full of batch work; s0 preempts on e0.
    let mut c = cluster()
        .placement(Placement::Lb)
        .config(|c| {
            c.slo_aware = true;
            c.slo_lead = Duration::ZERO;
        })
        .executor("e0", 1)
        .executor("e1", 2)
        .build();
    c.p99(10);
    c.submit_ids([b(0), b(1), b(2), b(3), b(4)]);
    let cmds = c.submit_ids([s(0)]);
    let (_, exec, _) = &launches(&cmds)[0];
    assert_eq!(exec, "e0", "{cmds:?}");
    let victim = launches(&cmds)[0].2.as_ref().unwrap().task;
    c.confirm_suspended(victim);
    c.p99(90);
    assert!(c.sched.slo_guarded(STREAM_JOB));
    // e0 has one core: not held back; the suspended batch task resumes there.
    let cmds = c.finish(s(0));
    assert_eq!(resumes(&cmds), vec![(victim, "e0".to_owned())]);
    // e1 ran no stream task: its freed cores all go to batch work.
    let on_e1 = c.placement_of(b(1)).0;
    assert_eq!(on_e1, "e1");
    let cmds = c.finish(b(1));
    assert_eq!(launches(&cmds), vec![on(b(3), "e1")]);
}

#[test]
fn a_guard_follows_the_window_and_a_switch_to_fifo_releases_it() {
    let mut c = slo_cluster(&[("e0", 2)]);
    stream_ran_once(&mut c);
    c.p99(90);
    c.finish(s(0));
    assert_eq!(c.sched.slo_guard_counts(), (1, 1));
    // No stream task on e0 for longer than the window: the next report releases e0 (the job's
    // guard stays on: its p99 is still high).
    c.advance_ms(5001);
    let cmds = c.p99(90);
    assert_eq!(c.sched.slo_guard_counts(), (1, 0));
    assert_eq!(resumes(&cmds), vec![(b(0), "e0".to_owned())]);
    // A new stream task there puts the guard back on e0 at once.
    c.submit_ids([TaskId { run: 1, ..s(0) }]);
    assert_eq!(c.sched.slo_guard_counts(), (1, 1));
    // Live switch to fifo (no preemption, so no guard).
    c.sched
        .reconfigure(&[("scheduler.policy".into(), "fifo".into())])
        .unwrap();
    assert_eq!(c.sched.slo_guard_counts(), (0, 0));
    assert!(!c.sched.slo_guarded(STREAM_JOB));
}

#[test]
fn a_guard_holds_a_micro_batchs_worth_of_cores_but_never_the_last_one() {
    // e0 has 4 cores, all running batch work; a micro-batch of two stream tasks preempts two.
    let mut c = slo_cluster(&[("e0", 4)]);
    c.p99(10);
    c.submit_ids((0..6).map(b));
    let cmds = c.submit_ids([s(0), s(1)]);
    let victims: Vec<TaskId> = launches(&cmds)
        .iter()
        .map(|(_, _, p)| p.as_ref().unwrap().task)
        .collect();
    assert_eq!(victims.len(), 2, "{cmds:?}");
    for v in &victims {
        c.confirm_suspended(*v);
    }
    c.p99(90);
    // Both freed cores stay free for the next micro-batch.
    assert!(resumes(&c.finish(s(0))).is_empty());
    assert!(resumes(&c.finish(s(1))).is_empty());
    assert_eq!(c.executor("e0").running.len(), 2, "two batch tasks run on");
    let next = [TaskId { run: 1, ..s(0) }, TaskId { run: 1, ..s(1) }];
    let cmds = c.submit_ids(next);
    assert_eq!(launches(&cmds), vec![on(next[0], "e0"), on(next[1], "e0")]);

    // On 2 cores the same micro-batch is held one core only: batch keeps the other.
    let mut c = slo_cluster(&[("e0", 2)]);
    c.p99(10);
    c.submit_ids([b(0), b(1), b(2)]);
    let cmds = c.submit_ids([s(0), s(1)]);
    for (_, _, p) in launches(&cmds) {
        c.confirm_suspended(p.unwrap().task);
    }
    c.p99(90);
    c.finish(s(0));
    let cmds = c.finish(s(1));
    assert_eq!(
        resumes(&cmds).len(),
        1,
        "one suspended task resumes: {cmds:?}"
    );
}
