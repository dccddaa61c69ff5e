//! Property-style test: long seeded random interleavings of events against simulated executors
//! that keep confirming; invariants are checked after every step.
//!
//! The simulated executors are honest: they apply the driver's commands in order, report in
//! order (some reports are delivered twice), and assert they never run more tasks than cores — the scheduler's slot accounting
//! must hold under message delays, victims ending before their preemption lands, executor loss,
//! heartbeat timeouts and late events from dropped executors.

use super::super::executors::{BATCH_POOL, BATCH_SLOTS, STREAM_POOL};
use super::super::queues::{BATCH_LANE, STREAM_LANE};
use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

struct SimExecutor {
    name: String,
    cores: u32,
    /// Connected and processing commands.
    alive: bool,
    /// Stopped heartbeating (will time out) but still works.
    silent: bool,
    running: BTreeMap<TaskId, u32>,
    suspended: BTreeMap<TaskId, u32>,
    inbox: VecDeque<Command>,
    outbox: VecDeque<Event>,
}

struct Sim {
    sched: Scheduler,
    rng: ChaCha8Rng,
    now: Duration,
    execs: Vec<SimExecutor>,
    submitted: BTreeSet<TaskId>,
    abandoned: BTreeSet<TaskId>,
    /// Tasks submitted before their job was cancelled: they may or may not finish.
    cancelled: BTreeSet<TaskId>,
    finishes: BTreeMap<TaskId, u32>,
    next_run: u64,
}

impl Sim {
    fn new(cfg: SchedulerConfig, seed: u64) -> Self {
        let mut sim = Sim {
            sched: Scheduler::new(cfg).unwrap(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: Duration::ZERO,
            execs: Vec::new(),
            submitted: BTreeSet::new(),
            abandoned: BTreeSet::new(),
            cancelled: BTreeSet::new(),
            finishes: BTreeMap::new(),
            next_run: 0,
        };
        for _ in 0..4 {
            sim.add_executor();
        }
        sim
    }

    fn feed(&mut self, event: Event) {
        let finishing = match &event {
            Event::TaskFinished { id, .. } => Some(*id),
            _ => None,
        };
        let tracked_before = finishing.is_some_and(|id| self.sched.tasks.contains_key(&id));
        let cmds = self.sched.handle(self.now, event);
        if let Some(id) = finishing
            && tracked_before
            && !self.sched.tasks.contains_key(&id)
        {
            *self.finishes.entry(id).or_default() += 1;
        }
        if let Err(broken) = invariants::check(&self.sched) {
            panic!("invariant broken at {:?}: {broken}", self.now);
        }
        check_work_conserving(&self.sched);
        for cmd in cmds {
            self.route(cmd);
        }
    }

    fn route(&mut self, cmd: Command) {
        let target = match &cmd {
            Command::Launch { executor, .. }
            | Command::Suspend { executor, .. }
            | Command::Resume { executor, .. }
            | Command::Kill { executor, .. } => executor.clone(),
            Command::DropExecutor { id, .. } => {
                let e = self
                    .execs
                    .iter_mut()
                    .find(|e| e.name == *id && e.alive)
                    .unwrap();
                e.alive = false;
                e.inbox.clear();
                return;
            }
            Command::TaskAbandoned { task, .. } => {
                self.abandoned.insert(*task);
                return;
            }
            Command::Requeued { .. } | Command::ExecutorSuspect { .. } => return,
        };
        let e = self.execs.iter_mut().find(|e| e.name == target && e.alive);
        e.expect("commands only go to live executors")
            .inbox
            .push_back(cmd);
    }

    /// Registers a new executor; sometimes under the id of a dead one (a new incarnation,
    /// while the dead one's late events may still arrive).
    fn add_executor(&mut self) {
        let reusable: Vec<String> = self
            .execs
            .iter()
            .filter(|d| !d.alive && !self.execs.iter().any(|a| a.alive && a.name == d.name))
            .map(|d| d.name.clone())
            .collect();
        let name = if !reusable.is_empty() && self.rng.random_bool(0.5) {
            reusable[self.rng.random_range(0..reusable.len())].clone()
        } else {
            format!("e{}", self.execs.len())
        };
        let cores = self.rng.random_range(1..=4);
        self.execs.push(SimExecutor {
            name: name.clone(),
            cores,
            alive: true,
            silent: false,
            running: BTreeMap::new(),
            suspended: BTreeMap::new(),
            inbox: VecDeque::new(),
            outbox: VecDeque::new(),
        });
        self.feed(Event::ExecutorRegistered {
            id: name,
            cores,
            memory_limit: 1 << 30,
        });
    }

    fn pick(&mut self, filter: impl Fn(&SimExecutor) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.execs.len())
            .filter(|i| filter(&self.execs[*i]))
            .collect();
        (!candidates.is_empty()).then(|| candidates[self.rng.random_range(0..candidates.len())])
    }

    /// The executor applies the next command from the driver.
    fn apply_command(&mut self, i: usize) {
        let e = &mut self.execs[i];
        let Some(cmd) = e.inbox.pop_front() else {
            return;
        };
        let name = e.name.clone();
        match cmd {
            Command::Launch { task, preempt, .. } => {
                if let Some(p) = preempt
                    && let Some(attempt) = e.running.remove(&p.task)
                {
                    let id = p.task;
                    let executor = name.clone();
                    e.outbox.push_back(match p.how {
                        _ if self.rng.random_bool(0.2) => Event::TaskFinished {
                            id,
                            attempt,
                            executor,
                        },
                        PreemptHow::Suspend => {
                            e.suspended.insert(id, attempt);
                            Event::TaskSuspended {
                                id,
                                attempt,
                                executor,
                            }
                        }
                        PreemptHow::Kill => {
                            let records_lost = self.rng.random_range(0..100);
                            Event::TaskKilled {
                                id,
                                attempt,
                                executor,
                                records_lost,
                            }
                        }
                    });
                }
                assert!(
                    e.running.insert(task.id, task.attempt).is_none(),
                    "{} twice",
                    task.id
                );
            }
            Command::Suspend { task, attempt, .. } => {
                // A task that already ended is not suspended (its end is on its way).
                if e.running.get(&task) == Some(&attempt) {
                    e.running.remove(&task);
                    let executor = name.clone();
                    e.outbox.push_back(if self.rng.random_bool(0.2) {
                        Event::TaskFinished {
                            id: task,
                            attempt,
                            executor,
                        }
                    } else {
                        e.suspended.insert(task, attempt);
                        Event::TaskSuspended {
                            id: task,
                            attempt,
                            executor,
                        }
                    });
                }
            }
            Command::Resume { task, .. } => {
                let attempt = e
                    .suspended
                    .remove(&task)
                    .expect("resume of a task suspended here");
                e.running.insert(task, attempt);
                e.outbox.push_back(Event::TaskResumed {
                    id: task,
                    attempt,
                    executor: name,
                });
            }
            Command::Kill { task, .. } => {
                if let Some(attempt) = e
                    .running
                    .remove(&task)
                    .or_else(|| e.suspended.remove(&task))
                {
                    let ev = Event::TaskKilled {
                        id: task,
                        attempt,
                        executor: name,
                        records_lost: 0,
                    };
                    e.outbox.push_back(ev);
                }
            }
            other => panic!("not an executor command: {other:?}"),
        }
        assert!(
            e.running.len() <= e.cores as usize,
            "{} runs more tasks than cores",
            e.name
        );
    }

    /// A running task on executor `i` ends by itself.
    fn end_task(&mut self, i: usize, fail: bool) {
        // Stream tasks are short, batch tasks long: end a stream task when there is one, mostly.
        let e = &mut self.execs[i];
        let streams: Vec<(TaskId, u32)> = e
            .running
            .iter()
            .filter(|(id, _)| id.job == STREAM_JOB)
            .map(|(id, a)| (*id, *a))
            .collect();
        let pool: Vec<(TaskId, u32)> = if !streams.is_empty() && self.rng.random_bool(0.8) {
            streams
        } else {
            e.running.iter().map(|(id, a)| (*id, *a)).collect()
        };
        let Some(&(id, attempt)) = pool.get(self.rng.random_range(0..pool.len().max(1))) else {
            return;
        };
        e.running.remove(&id);
        let executor = e.name.clone();
        e.outbox.push_back(if fail {
            Event::TaskFailed {
                id,
                attempt,
                executor,
                reason: "sim".into(),
            }
        } else {
            Event::TaskFinished {
                id,
                attempt,
                executor,
            }
        });
    }

    fn submit(&mut self) {
        let stream = self.rng.random_bool(0.5);
        let (job, n) = if stream {
            (STREAM_JOB, self.rng.random_range(1..=3))
        } else {
            // A new batch job every 40 runs, so cancelling one does not end batch work.
            let job = BATCH_JOB + u32::try_from(self.next_run / 40).unwrap();
            (job, self.rng.random_range(1..=4))
        };
        self.next_run += 1;
        let tasks: Vec<TaskSpec> = (0..n)
            .map(|p| {
                let id = TaskId {
                    job,
                    run: self.next_run,
                    stage: 0,
                    partition: p,
                };
                self.submitted.insert(id);
                let alive: Vec<String> = self
                    .execs
                    .iter()
                    .filter(|e| e.alive)
                    .map(|e| e.name.clone())
                    .collect();
                let preferred = if !alive.is_empty() && self.rng.random_bool(0.3) {
                    vec![alive[self.rng.random_range(0..alive.len())].clone()]
                } else {
                    Vec::new()
                };
                TaskSpec {
                    preferred,
                    ..spec(id)
                }
            })
            .collect();
        self.feed(Event::TasksSubmitted { tasks });
    }

    /// Cancels the stream job or the current batch job.
    fn cancel_a_job(&mut self) {
        let batch_job = BATCH_JOB + u32::try_from(self.next_run / 40).unwrap();
        let job = if self.rng.random_bool(0.5) {
            STREAM_JOB
        } else {
            batch_job
        };
        let doomed = self.submitted.iter().filter(|id| id.job == job);
        self.cancelled.extend(doomed);
        self.feed(Event::JobCancelled { job });
    }

    fn heartbeat(&mut self, i: usize) {
        let used = self.rng.random_range(0..1u64 << 30);
        let spill = self.rng.random_range(0..4u64) << 20;
        let metrics = ExecutorMetrics {
            memory_used: used,
            memory_limit: 1 << 30,
            spilled_bytes_total: spill,
            suspended_retained_bytes: self.rng.random_range(0..1u64 << 28),
        };
        self.feed(Event::Heartbeat {
            id: self.execs[i].name.clone(),
            metrics,
        });
    }

    fn tick(&mut self, heartbeats: bool) {
        self.now += Duration::from_millis(self.rng.random_range(0..300));
        if heartbeats {
            for i in 0..self.execs.len() {
                if self.execs[i].alive && !self.execs[i].silent && self.rng.random_bool(0.9) {
                    self.heartbeat(i);
                }
            }
        }
        self.feed(Event::Tick);
        // The stream job's recent p99 against a 100 ms target, anywhere from well within to
        // far over it: under the SLO-aware mode its guard turns on and off at random.
        if self.rng.random_bool(0.3) {
            let p99 = Duration::from_millis(self.rng.random_range(0..200));
            self.feed(Event::StreamLatency {
                job: STREAM_JOB,
                recent_p99: p99,
                target: Duration::from_millis(100),
            });
        }
        // Its next micro-batch due soon (acting ahead), sometimes already past.
        if self.rng.random_bool(0.4) {
            let due = (self.now + Duration::from_millis(self.rng.random_range(0..5)))
                .saturating_sub(Duration::from_millis(self.rng.random_range(0..2)));
            self.feed(Event::StreamDueSoon {
                job: STREAM_JOB,
                due,
            });
        }
    }

    /// One random step; `chaos` enables submissions, failures, losses and new executors.
    fn step(&mut self, chaos: bool) {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..30 => {
                if let Some(i) = self.pick(|e| e.alive && !e.inbox.is_empty()) {
                    self.apply_command(i);
                }
            }
            30..60 => {
                if let Some(i) = self.pick(|e| !e.outbox.is_empty()) {
                    let ev = self.execs[i].outbox.pop_front().unwrap();
                    if self.rng.random_bool(0.03) {
                        // At-least-once delivery: the same report again, later.
                        self.execs[i].outbox.push_back(ev.clone());
                    }
                    self.feed(ev);
                }
            }
            60..78 => {
                if let Some(i) = self.pick(|e| e.alive && !e.running.is_empty()) {
                    let fail = chaos && self.rng.random_bool(0.05);
                    self.end_task(i, fail);
                }
            }
            78..86 => {
                if chaos {
                    self.submit();
                }
            }
            86..97 => self.tick(true),
            97 => {
                if chaos
                    && self.rng.random_bool(0.2)
                    && let Some(i) = self.pick(|e| e.alive)
                {
                    let e = &mut self.execs[i];
                    e.alive = false;
                    e.inbox.clear();
                    let id = e.name.clone();
                    self.feed(Event::ExecutorLost { id });
                }
            }
            98 => {
                if chaos
                    && self.rng.random_bool(0.2)
                    && let Some(i) = self.pick(|e| e.alive)
                {
                    self.execs[i].silent = true;
                }
            }
            99 if chaos && self.rng.random_bool(0.1) => self.cancel_a_job(),
            _ => {
                if chaos && self.execs.iter().filter(|e| e.alive).count() < 6 {
                    self.add_executor();
                }
            }
        }
    }

    fn drain(&mut self) {
        for round in 0..200_000 {
            if self.sched.tasks.is_empty() && self.execs.iter().all(|e| e.outbox.is_empty()) {
                return;
            }
            // Keep enough live executors of every role (`static` needs both).
            if round % 2_000 == 1_999 || !self.execs.iter().any(|e| e.alive && !e.silent) {
                self.add_executor();
            }
            self.step(false);
        }
        panic!("did not drain: {:?}", self.sched.snapshot());
    }
}

/// After dispatch, no queue waits while a slot it could use is free, and no suspended task
/// waits while its executor has a free slot.
fn check_work_conserving(s: &Scheduler) {
    let reg = &s.execs;
    assert!(
        reg.resumable.is_empty(),
        "a suspended task waits next to a free slot"
    );
    let (stream_pool, batch_pool) = match s.cfg.policy {
        Policy::Static => (STREAM_POOL, BATCH_POOL),
        // Batch work beside stream tasks: the slots the SLO guard does not hold back.
        _ => (STREAM_POOL, BATCH_SLOTS),
    };
    if !s.lanes.lanes[STREAM_LANE].is_empty() {
        assert!(
            reg.free[stream_pool].is_empty(),
            "stream queue waits next to a free slot"
        );
    }
    if !s.lanes.lanes[BATCH_LANE].is_empty() {
        assert!(
            reg.free[batch_pool].is_empty(),
            "batch queue waits next to a free slot"
        );
    }
}

fn run(cfg: SchedulerConfig, seed: u64) {
    let mut sim = Sim::new(cfg, seed);
    for _ in 0..8_000 {
        sim.step(true);
    }
    sim.drain();
    for id in &sim.submitted {
        let finished = sim.finishes.get(id).copied().unwrap_or(0);
        if sim.cancelled.contains(id) {
            assert!(finished <= 1, "{id} finished twice");
        } else if sim.abandoned.contains(id) {
            assert_eq!(finished, 0, "{id} abandoned and finished");
        } else {
            assert_eq!(finished, 1, "{id} must finish exactly once");
        }
    }
    let totals = sim.sched.snapshot().totals;
    assert!(!sim.cancelled.is_empty(), "the run cancelled some job");
    assert!(sim.submitted.len() > 500, "the run exercised enough tasks");
    if sim.sched.cfg.policy == Policy::Neptune {
        assert!(
            totals.suspensions > 0 && totals.resumptions > 0,
            "{totals:?}"
        );
    }
    if sim.sched.cfg.policy == Policy::Kill {
        assert!(totals.kills > 0, "{totals:?}");
    }
    if sim.sched.cfg.slo_aware && !sim.sched.cfg.slo_lead.is_zero() {
        assert!(totals.reservations > 0, "{totals:?}");
        if sim.sched.cfg.policy == Policy::Neptune {
            assert!(totals.ahead_suspensions > 0, "{totals:?}");
        }
    }
}

fn config(policy: Policy, placement: Placement) -> SchedulerConfig {
    SchedulerConfig {
        policy,
        placement,
        max_suspensions: 2,
        quantum: Duration::from_millis(500),
        heartbeat_timeout: Duration::from_secs(2),
        max_task_failures: 3,
        metrics_window: 3,
        ..SchedulerConfig::default()
    }
}

#[test]
fn random_interleavings_keep_every_invariant_under_neptune_with_each_placement() {
    for (seed, placement) in [
        (1, Placement::Lma),
        (2, Placement::Lb),
        (3, Placement::Random),
    ] {
        run(config(Policy::Neptune, placement), seed);
    }
}

#[test]
fn random_interleavings_keep_every_invariant_under_the_baselines() {
    for (seed, policy) in [
        (4, Policy::Kill),
        (5, Policy::Fifo),
        (6, Policy::Fair),
        (7, Policy::Static),
    ] {
        run(config(policy, Placement::Lma), seed);
    }
}

/// The SLO-aware mode's guards (turned on and off at random by the latency reports) hold cores
/// back from batch work, and its reservations ahead of micro-batches (announced at random)
/// suspend batch tasks, without breaking an invariant; every task still finishes.
#[test]
fn random_interleavings_keep_every_invariant_under_the_slo_aware_mode() {
    // Lead 0: the hold guard alone; otherwise acting ahead.
    for (seed, policy, placement, lead_us) in [
        (8, Policy::Neptune, Placement::Lma, 500),
        (9, Policy::Neptune, Placement::Lb, 0),
        (10, Policy::Kill, Placement::Random, 500),
        (11, Policy::Neptune, Placement::Random, 2000),
    ] {
        run(
            SchedulerConfig {
                slo_aware: true,
                slo_window: Duration::from_millis(400),
                slo_lead: Duration::from_micros(lead_us),
                ..config(policy, placement)
            },
            seed,
        );
    }
}

/// The same, over many seeds (slow in debug builds; run with `--release -- --ignored`).
#[test]
#[ignore = "soak: 100 seeds per policy"]
fn random_interleavings_keep_every_invariant_over_many_seeds() {
    let policies = [
        (Policy::Neptune, Placement::Lma),
        (Policy::Neptune, Placement::Lb),
        (Policy::Neptune, Placement::Random),
        (Policy::Kill, Placement::Lma),
        (Policy::Fifo, Placement::Lma),
        (Policy::Fair, Placement::Lb),
        (Policy::Static, Placement::Lma),
    ];
    for seed in 100..200 {
        for (policy, placement) in policies {
            run(config(policy, placement), seed);
        }
    }
}
