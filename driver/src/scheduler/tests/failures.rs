//! Executor loss, heartbeat timeout, stale events, task failures, and configuration errors.

use super::*;

fn requeued(cmds: &[Command]) -> Vec<(TaskId, RequeueReason)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Requeued { task, reason } => Some((*task, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn executor_lost_requeues_every_task_on_it_with_the_next_attempt_stream_first() {
    let mut c = cluster().executor("e0", 2).build();
    c.submit_ids([b(0), b(1), b(2)]);
    c.submit_ids([s(0)]);
    c.confirm_suspended(b(0));
    let lost = RequeueReason::ExecutorLost;
    let cmds = c.lose("e0");
    assert_eq!(
        requeued(&cmds),
        vec![(b(1), lost.clone()), (b(0), lost.clone()), (s(0), lost)]
    );
    assert!(c.snapshot().executors.is_empty());

    let cmds = c.register("e1", 4);
    let started: Vec<(TaskId, u32)> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Launch { task, .. } => Some((task.id, task.attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![(s(0), 1), (b(0), 1), (b(1), 1), (b(2), 0)]);
}

#[test]
fn heartbeat_timeout_drops_a_silent_executor_on_tick_and_requeues_its_tasks() {
    let mut c = cluster()
        .config(|cfg| cfg.heartbeat_timeout = Duration::from_secs(1))
        .executor("e0", 1)
        .executor("e1", 1)
        .build();
    c.submit_ids([b(0), b(1)]);
    c.advance_ms(600).heartbeat("e1", memory(10));
    let cmds = c.advance_ms(600).tick();
    assert_eq!(
        cmds,
        vec![
            Command::DropExecutor {
                id: "e0".into(),
                silent_for: Duration::from_millis(1200)
            },
            Command::Requeued {
                task: b(0),
                reason: RequeueReason::HeartbeatTimeout
            },
        ]
    );
    assert!(c.snapshot().executor("e0").is_none());
    assert!(
        c.snapshot().executor("e1").is_some(),
        "e1 was heard 600 ms ago"
    );
}

#[test]
fn late_events_from_a_removed_executor_or_a_stale_attempt_are_ignored() {
    let mut c = cluster().executor("e0", 1).build();
    c.submit_ids([b(0)]);
    c.lose("e0");
    c.register("e1", 1);
    assert_eq!(c.placement_of(b(0)), ("e1".to_owned(), 1));
    let from_removed = Event::TaskFinished {
        id: b(0),
        attempt: 0,
        executor: "e0".into(),
    };
    assert!(c.send(from_removed).is_empty());
    let stale_attempt = Event::TaskFailed {
        id: b(0),
        attempt: 0,
        executor: "e1".into(),
        reason: "late".into(),
    };
    assert!(c.send(stale_attempt).is_empty());
    assert_eq!(c.executor("e1").running, vec![b(0)]);
    c.finish(b(0));
    assert!(c.executor("e1").running.is_empty());
}

#[test]
fn re_registering_an_executor_id_starts_a_new_incarnation() {
    let mut c = cluster().executor("e0", 1).build();
    c.submit_ids([b(0)]);
    let cmds = c.register("e0", 1);
    assert_eq!(requeued(&cmds), vec![(b(0), RequeueReason::ExecutorLost)]);
    assert_eq!(c.placement_of(b(0)), ("e0".to_owned(), 1));
    let old_life = Event::TaskFinished {
        id: b(0),
        attempt: 0,
        executor: "e0".into(),
    };
    assert!(c.send(old_life).is_empty());
    assert_eq!(c.executor("e0").running, vec![b(0)]);
}

#[test]
fn unknown_executors_and_tasks_are_ignored() {
    let mut c = cluster().executor("e0", 1).build();
    assert!(c.heartbeat("nobody", memory(50)).is_empty());
    assert!(c.lose("nobody").is_empty());
    let unknown = Event::TaskSuspended {
        id: b(9),
        attempt: 0,
        executor: "e0".into(),
    };
    assert!(c.send(unknown).is_empty());
    let resumed_unasked = Event::TaskResumed {
        id: b(9),
        attempt: 0,
        executor: "e0".into(),
    };
    assert!(c.send(resumed_unasked).is_empty());
}

#[test]
fn a_task_submitted_twice_is_queued_once() {
    let mut c = cluster().build();
    c.submit_ids([b(0), b(0)]);
    c.submit_ids([b(0)]);
    assert_eq!(c.snapshot().queued_batch, 1);
}

#[test]
fn failed_task_is_requeued_until_its_failure_limit_then_abandoned() {
    let mut c = cluster()
        .config(|cfg| cfg.max_task_failures = 3)
        .executor("e0", 1)
        .build();
    c.submit_ids([b(0)]);
    for attempt in 1..3 {
        let cmds = c.fail(b(0));
        assert_eq!(requeued(&cmds), vec![(b(0), RequeueReason::Failed)]);
        assert_eq!(
            c.placement_of(b(0)),
            ("e0".to_owned(), attempt),
            "re-launched at once"
        );
    }
    let cmds = c.fail(b(0));
    let abandoned = Command::TaskAbandoned {
        task: b(0),
        failures: 3,
        reason: "boom".into(),
    };
    assert_eq!(cmds, vec![abandoned]);
    assert_eq!(c.snapshot().totals.abandoned, 1);
    assert!(!c.sched.tasks.contains_key(&b(0)));
}

#[test]
fn default_config_is_neptune_with_lma_and_valid() {
    let cfg = SchedulerConfig::default();
    assert_eq!(
        (cfg.policy, cfg.placement),
        (Policy::Neptune, Placement::Lma)
    );
    assert_eq!(cfg.validate(), Ok(()));
}

#[test]
fn invalid_config_values_name_their_key() {
    type Breaker = fn(&mut SchedulerConfig);
    let cases: [(&str, Breaker); 4] = [
        ("scheduler.max_task_failures", |c| c.max_task_failures = 0),
        ("scheduler.metrics_window", |c| c.metrics_window = 0),
        ("scheduler.fair_weights.batch", |c| c.fair_weights.batch = 0),
        ("heartbeat.timeout_ms", |c| {
            c.heartbeat_timeout = Duration::ZERO
        }),
    ];
    for (key, break_it) in cases {
        let mut cfg = SchedulerConfig::default();
        break_it(&mut cfg);
        let err = Scheduler::new(cfg).expect_err(key).to_string();
        assert!(err.contains(key), "{err:?} should name {key}");
    }
    let mut cfg = SchedulerConfig {
        policy: Policy::Static,
        ..SchedulerConfig::default()
    };
    cfg.static_stream_executors = 0;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("static_stream_executors")
    );
}

#[test]
fn config_keys_parse_from_strings_and_errors_name_the_key_or_value() {
    let mut cfg = SchedulerConfig::default();
    cfg.set("scheduler.policy", "kill").unwrap();
    cfg.set("scheduler.placement", "random").unwrap();
    cfg.set("scheduler.quantum_ms", "250").unwrap();
    cfg.set("scheduler.fair_weights.stream", "3").unwrap();
    assert_eq!(
        (cfg.policy, cfg.placement),
        (Policy::Kill, Placement::Random)
    );
    assert_eq!(cfg.quantum, Duration::from_millis(250));
    assert_eq!(cfg.fair_weights.stream, 3);

    let err = cfg.set("scheduler.policy", "lifo").unwrap_err().to_string();
    assert!(err.contains("policy") && err.contains("lifo"), "{err}");
    let err = cfg
        .set("scheduler.quantum_ms", "0")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("scheduler.quantum_ms") && err.contains("between"),
        "{err}"
    );
    let err = cfg
        .set("scheduler.metrics_window", "-1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("metrics_window") && err.contains("-1"),
        "{err}"
    );
    let err = cfg.set("bogus", "1").unwrap_err().to_string();
    assert!(err.contains("bogus"), "{err}");
    let err = "rand".parse::<Placement>().unwrap_err().to_string();
    assert!(err.contains("`rand`") && err.contains("lma"), "{err}");
}
