//! Tables for the pod phase and conditions.

use super::*;

fn t(code: i32) -> Terminated {
    Terminated {
        exit_code: code,
        signal: None,
        reason: if code == 0 { "Completed" } else { "Error" }.into(),
        message: None,
        started_at: None,
        finished_at: Timestamp::UNIX_EPOCH,
    }
}

fn c(state: State, last: Option<Terminated>, ready: bool) -> ContainerView {
    ContainerView {
        name: "c".into(),
        image: "img".into(),
        state,
        last,
        restart_count: 0,
        ready,
        started: ready,
        container_id: None,
    }
}

fn running() -> State {
    State::Running {
        started_at: Timestamp::UNIX_EPOCH,
    }
}

fn waiting(reason: &str) -> State {
    State::Waiting {
        reason: reason.into(),
        message: None,
    }
}

fn view<'a>(init: &'a [ContainerView], cs: &'a [ContainerView], policy: &'a str) -> PodView<'a> {
    PodView {
        init,
        containers: cs,
        restart_policy: policy,
        pod_ip: Some("127.0.1.2".into()),
        host_ip: Some("127.0.1.1".into()),
        start_time: None,
        readiness_gates: Vec::new(),
        phase_override: None,
    }
}

#[test]
fn phase_table() {
    let cases: Vec<(Vec<ContainerView>, Vec<ContainerView>, &str, &str)> = vec![
        (
            vec![],
            vec![c(waiting("ContainerCreating"), None, false)],
            "Always",
            "Pending",
        ),
        (
            vec![],
            vec![c(waiting("ImagePullBackOff"), None, false)],
            "Never",
            "Pending",
        ),
        (vec![], vec![c(running(), None, true)], "Never", "Running"),
        (
            vec![],
            vec![c(State::Terminated(t(0)), None, false)],
            "Never",
            "Succeeded",
        ),
        (
            vec![],
            vec![c(State::Terminated(t(1)), None, false)],
            "Never",
            "Failed",
        ),
        (
            vec![],
            vec![c(State::Terminated(t(0)), None, false)],
            "OnFailure",
            "Succeeded",
        ),
        (
            vec![],
            vec![c(State::Terminated(t(1)), None, false)],
            "OnFailure",
            "Running",
        ),
        (
            vec![],
            vec![c(State::Terminated(t(0)), None, false)],
            "Always",
            "Running",
        ),
        // Crash-looping: waiting after having run counts as stopped, not as never started.
        (
            vec![],
            vec![c(waiting("CrashLoopBackOff"), Some(t(1)), false)],
            "Always",
            "Running",
        ),
        (
            vec![],
            vec![
                c(running(), None, true),
                c(State::Terminated(t(1)), None, false),
            ],
            "Never",
            "Running",
        ),
        (
            vec![c(running(), None, false)],
            vec![c(waiting("PodInitializing"), None, false)],
            "Never",
            "Pending",
        ),
        (
            vec![c(State::Terminated(t(2)), None, false)],
            vec![c(waiting("PodInitializing"), None, false)],
            "Never",
            "Failed",
        ),
        (
            vec![c(State::Terminated(t(2)), None, false)],
            vec![c(waiting("PodInitializing"), None, false)],
            "Always",
            "Pending",
        ),
        (
            vec![c(State::Terminated(t(0)), None, false)],
            vec![c(running(), None, true)],
            "Never",
            "Running",
        ),
    ];
    for (i, (init, cs, policy, want)) in cases.iter().enumerate() {
        assert_eq!(phase(&view(init, cs, policy)), *want, "case {i}");
    }
}

#[test]
fn conditions_follow_readiness_and_keep_their_transition_times() {
    let t0 = Timestamp::UNIX_EPOCH;
    let t1 = Timestamp::from_second(100).unwrap();
    let mut a = c(running(), None, false);
    a.name = "a".into();
    let mut b = c(running(), None, true);
    b.name = "b".into();
    let cs = [a.clone(), b.clone()];
    let s0 = pod_status(&view(&[], &cs, "Always"), None, t0);
    let get = |s: &PodStatus, ty: &str| {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == ty)
            .unwrap()
            .clone()
    };
    let ready = get(&s0, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [a]")
    );
    assert_eq!(get(&s0, "PodScheduled").status, "True");
    assert_eq!(s0.pod_ips.as_ref().unwrap()[0].ip, "127.0.1.2");

    // Still unready at t1: the transition time stays t0. Ready at t1: it moves.
    let s1 = pod_status(&view(&[], &cs, "Always"), Some(&s0), t1);
    assert_eq!(get(&s1, "Ready").last_transition_time.unwrap().0, t0);
    a.ready = true;
    let cs = [a, b];
    let s2 = pod_status(&view(&[], &cs, "Always"), Some(&s1), t1);
    assert_eq!(get(&s2, "Ready").status, "True");
    assert_eq!(get(&s2, "Ready").last_transition_time.unwrap().0, t1);
    assert_eq!(get(&s2, "PodScheduled").last_transition_time.unwrap().0, t0);
}

#[test]
fn finished_pods_are_not_ready_and_report_exit_codes() {
    let mut done = c(State::Terminated(t(3)), None, false);
    done.state = State::Terminated(Terminated {
        message: Some("boom".into()),
        ..t(3)
    });
    let cs = [done];
    let s = pod_status(&view(&[], &cs, "Never"), None, Timestamp::UNIX_EPOCH);
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    let ready = s
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    let term = s.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(term.exit_code, 3);
    assert_eq!(term.message.as_deref(), Some("boom"));
}

#[test]
fn readiness_gates_hold_ready_until_their_condition_is_true() {
    let cs = [c(running(), None, true)];
    let mut v = view(&[], &cs, "Always");
    v.readiness_gates = vec!["example.com/lb".into()];
    let s = pod_status(&v, None, Timestamp::UNIX_EPOCH);
    let ready = |s: &PodStatus| {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .clone()
    };
    assert_eq!(ready(&s).status, "False");
    assert_eq!(ready(&s).reason.as_deref(), Some("ReadinessGatesNotReady"));
    let mut with_gate = s.clone();
    with_gate.conditions.as_mut().unwrap().push(PodCondition {
        type_: "example.com/lb".into(),
        status: "True".into(),
        ..Default::default()
    });
    let s2 = pod_status(&v, Some(&with_gate), Timestamp::UNIX_EPOCH);
    assert_eq!(ready(&s2).status, "True");
    assert!(
        s2.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "example.com/lb"),
        "other writers' conditions are kept"
    );
}
