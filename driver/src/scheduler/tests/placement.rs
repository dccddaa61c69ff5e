//! Placement: LMA ordering (locality, then memory pressure from the window, then task balance),
//! `lb`, and seeded `random`.

use super::*;

fn three_executors(placement: Placement, cores: u32) -> Cluster {
    cluster()
        .placement(placement)
        .config(|cfg| cfg.metrics_window = 2)
        .executor("e0", cores)
        .executor("e1", cores)
        .executor("e2", cores)
        .build()
}

fn targets(cmds: &[Command]) -> Vec<String> {
    launches(cmds).into_iter().map(|(_, e, _)| e).collect()
}

#[test]
fn lma_puts_a_task_on_its_preferred_executor_when_it_has_a_free_slot() {
    let mut c = three_executors(Placement::Lma, 2);
    c.heartbeat("e2", memory(90));
    assert_eq!(
        targets(&c.submit([local(b(0), &["e2"])])),
        ["e2"],
        "locality beats memory"
    );
    assert_eq!(
        targets(&c.submit([local(b(1), &["gone"])])),
        ["e0"],
        "unknown preference"
    );
    assert_eq!(c.snapshot().totals.local_launches, 1);
    assert_eq!(c.snapshot().totals.non_local_launches, 1);
}

#[test]
fn lma_uses_any_free_slot_before_preempting_on_the_preferred_executor() {
    let mut c = cluster().executor("e0", 1).executor("e1", 1).build();
    c.submit_ids([b(0)]);
    assert_eq!(
        launches(&c.submit([local(s(0), &["e0"])])),
        vec![on(s(0), "e1")]
    );
}

#[test]
fn lma_preempts_on_the_preferred_executor_when_the_cluster_is_full() {
    let mut c = cluster().executor("e0", 1).executor("e1", 1).build();
    c.submit_ids([b(0), b(1)]);
    let cmds = c.submit([local(s(0), &["e1"])]);
    assert_eq!(launches(&cmds), vec![suspending(s(0), "e1", b(1))]);
    let cmds = c.submit_ids([s(1)]);
    assert_eq!(launches(&cmds), vec![suspending(s(1), "e0", b(0))]);
}

#[test]
fn lma_prefers_executors_under_less_memory_pressure() {
    let mut c = three_executors(Placement::Lma, 2);
    c.heartbeat("e0", memory(70));
    c.heartbeat("e1", memory(20));
    c.heartbeat("e2", memory(45));
    let cmds = c.submit_ids([b(0), b(1), b(2), b(3), b(4)]);
    assert_eq!(
        targets(&cmds),
        ["e1", "e1", "e2", "e2", "e0"],
        "pressure bands beat task counts"
    );
}

#[test]
fn lma_memory_pressure_is_the_mean_over_the_sliding_window() {
    let mut c = three_executors(Placement::Lma, 4);
    c.heartbeat("e0", memory(90));
    c.heartbeat("e0", memory(10)); // window mean 50 %
    c.heartbeat("e1", memory(40));
    c.heartbeat("e2", memory(60));
    assert_eq!(targets(&c.submit_ids([b(0)])), ["e1"]);
    c.heartbeat("e0", memory(10)); // the 90 % sample leaves the window: mean 10 %
    assert_eq!(targets(&c.submit_ids([b(1)])), ["e0"]);
}

#[test]
fn lma_counts_bytes_retained_by_suspended_tasks_as_pressure() {
    let mut c = three_executors(Placement::Lma, 2);
    let retaining = ExecutorMetrics {
        suspended_retained_bytes: 2 * GIB,
        ..memory(25)
    };
    c.heartbeat("e0", retaining); // 25 % + 50 %
    c.heartbeat("e1", memory(40));
    c.heartbeat("e2", memory(60));
    assert_eq!(targets(&c.submit_ids([b(0)])), ["e1"]);
    assert_eq!(c.executor("e0").memory_pressure_permille, 750);
}

#[test]
fn lma_puts_executors_that_spilled_within_the_window_last() {
    let mut c = three_executors(Placement::Lma, 2);
    let spilled = ExecutorMetrics {
        spilled_bytes_total: 1 << 20,
        ..memory(10)
    };
    c.heartbeat("e0", spilled);
    c.heartbeat("e1", memory(80));
    c.heartbeat("e2", memory(90));
    assert_eq!(
        targets(&c.submit_ids([b(0)])),
        ["e1"],
        "spilling beats memory use"
    );
    assert!(c.executor("e0").spilling);
    // Two more heartbeats without new spill: the spill leaves the window.
    c.heartbeat("e0", spilled);
    c.heartbeat("e0", spilled);
    assert!(!c.executor("e0").spilling);
    assert_eq!(targets(&c.submit_ids([b(1)])), ["e0"]);
}

#[test]
fn lma_equalises_tasks_among_executors_in_the_same_pressure_band() {
    let mut c = three_executors(Placement::Lma, 4);
    c.heartbeat("e0", memory(12));
    c.heartbeat("e1", memory(15));
    c.heartbeat("e2", memory(55));
    let cmds = c.submit_ids((0..5).map(b));
    assert_eq!(targets(&cmds), ["e0", "e1", "e0", "e1", "e0"]);
}

#[test]
fn lma_picks_the_least_pressured_executor_for_a_preemption() {
    let mut c = three_executors(Placement::Lma, 1);
    c.submit_ids([b(0), b(1), b(2)]);
    c.heartbeat("e0", memory(80));
    c.heartbeat("e1", memory(50));
    c.heartbeat("e2", memory(30));
    assert_eq!(
        launches(&c.submit_ids([s(0)])),
        vec![suspending(s(0), "e2", b(2))]
    );
}

#[test]
fn lb_equalises_tasks_and_ignores_locality_and_memory() {
    let mut c = three_executors(Placement::Lb, 4);
    c.heartbeat("e0", memory(95));
    let cmds = c.submit([local(b(0), &["e2"]), spec(b(1)), spec(b(2)), spec(b(3))]);
    assert_eq!(targets(&cmds), ["e0", "e1", "e2", "e0"]);
}

fn random_targets(seed: u64) -> Vec<String> {
    let mut builder = cluster()
        .placement(Placement::Random)
        .config(|cfg| cfg.seed = seed);
    for i in 0..8 {
        builder = builder.executor(&format!("e{i}"), 4);
    }
    let mut c = builder.build();
    targets(&c.submit_ids((0..16).map(b)))
}

#[test]
fn random_placement_is_deterministic_for_a_seed() {
    let first = random_targets(7);
    assert_eq!(first, random_targets(7));
    assert_ne!(first, random_targets(8));
    let distinct: std::collections::BTreeSet<_> = first.iter().collect();
    assert!(distinct.len() > 2, "spread over executors: {first:?}");
}
