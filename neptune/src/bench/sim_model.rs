//! The discrete-event model behind `neptune bench --simulate`: simulated executors and a virtual
//! clock around the driver's real task scheduler (`neptune_driver::scheduler::Scheduler`, the same
//! code the driver runs, not a copy).
//!
//! The driver is modelled as one server: an event reaching it at virtual time t is handled at
//! max(t, when the driver is next free), and handling takes the *measured wall time* of
//! `Scheduler::handle_into` — so scheduler cost shows up in virtual stream latency when the
//! driver saturates. Executors are ideal: a message takes `net` one way, a suspension `suspend`,
//! a resume `resume`; a batch task needs `batch_task` of core time (kept across suspensions), a
//! stream task `stream_task`. Every `pressured_every`-th executor reports 80 % memory use in its
//! heartbeats, the others 20 %, so placements that avoid memory pressure (LMA) can be told apart.

use neptune_core::ids::{JobKind, TaskId};
use neptune_driver::scheduler::{
    Command, Event, ExecutorMetrics, Placement, Policy, PreemptHow, Scheduler, SchedulerConfig,
    TaskSpec,
};
use neptune_driver::stats::{Histogram, Resolution};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Parameters of one simulation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimConfig {
    /// Simulated executors.
    pub executors: u32,
    /// Slots per executor.
    pub cores: u32,
    /// Stream tasks per micro-batch.
    pub stream_tasks: u32,
    /// Micro-batch interval.
    pub interval: Duration,
    /// Core time of a stream task.
    pub stream_task: Duration,
    /// Core time of a batch task.
    pub batch_task: Duration,
    /// One-way message latency driver ↔ executor.
    pub net: Duration,
    /// Suspend request → slot free on the executor.
    pub suspend: Duration,
    /// Resume request → running again.
    pub resume: Duration,
    /// Heartbeat interval per executor.
    pub heartbeat: Duration,
    /// Virtual time simulated.
    pub duration: Duration,
    /// Placement under test.
    pub placement: Placement,
    /// Every n-th executor is under memory pressure.
    pub pressured_every: u32,
}

/// What one simulation measured.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SimResult {
    /// Simulated executors.
    pub executors: u32,
    /// Placement.
    pub placement: String,
    /// Events handled by the scheduler.
    pub events: u64,
    /// Launch commands (placements) issued.
    pub placements: u64,
    /// Launches that preempted a batch task.
    pub preemptions: u64,
    /// Wall time spent inside the scheduler, s.
    pub scheduler_wall_s: f64,
    /// Placements per second of scheduler wall time.
    pub placements_per_sec: f64,
    /// Mean scheduler time per event, µs.
    pub event_us: f64,
    /// Mean scheduler time per heartbeat, µs.
    pub heartbeat_us: f64,
    /// Micro-batches completed.
    pub micro_batches: u64,
    /// Virtual stream latency (due → last task finished at the driver) p50, ms.
    pub stream_p50_ms: f64,
    /// p99, ms.
    pub stream_p99_ms: f64,
    /// Percentage of preemptions that hit an executor under memory pressure.
    pub preempted_on_pressured_pct: f64,
    /// Batch tasks finished.
    pub batch_finished: u64,
}

#[derive(Debug)]
enum Ev {
    /// An event reaching the driver.
    ToDriver(Event),
    /// A command reaching an executor.
    ToExec(Command),
    /// A task's work is done on its executor (if `gen` is still current).
    Done(TaskId, u32),
    MicroBatch(u64),
    Heartbeat(u32),
    Tick,
}

struct Task {
    exec: u32,
    attempt: u32,
    kind: JobKind,
    remaining: Duration,
    since: Option<Duration>,
    generation: u32,
}

struct Sim {
    cfg: SimConfig,
    sched: Scheduler,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    evs: Vec<Option<Ev>>,
    seq: u64,
    tasks: HashMap<TaskId, Task>,
    driver_free: Duration,
    due: HashMap<u64, (Duration, u32)>,
    next_batch: u32,
    /// Virtual micro-batch latencies: the engine's statistics type (constant memory however
    /// long the simulated run).
    latencies: Histogram,
    heartbeats: u64,
    r: SimResult,
    out: Vec<Command>,
}

fn exec_id(i: u32) -> String {
    format!("exec-{i}")
}

fn exec_index(id: &str) -> u32 {
    id.strip_prefix("exec-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn spec(job: u32, run: u64, partition: u32, kind: JobKind) -> TaskSpec {
    let id = TaskId {
        job,
        run,
        stage: 0,
        partition,
    };
    TaskSpec::new(id, kind)
}

impl Sim {
    fn push(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.evs.push(Some(ev));
        self.queue.push(Reverse((at, self.seq, self.evs.len() - 1)));
    }

    /// Hand `ev` to the scheduler at `t` (queued behind earlier work) and send its commands.
    fn drive(&mut self, t: Duration, ev: Event) {
        let heartbeat = matches!(ev, Event::Heartbeat { .. });
        let start = t.max(self.driver_free);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let wall = Instant::now();
        self.sched.handle_into(start, ev, &mut out);
        let took = wall.elapsed();
        self.r.events += 1;
        self.r.scheduler_wall_s += took.as_secs_f64();
        if heartbeat {
            self.heartbeats += 1;
            self.r.heartbeat_us += took.as_secs_f64() * 1e6;
        }
        self.driver_free = start + took;
        let send = self.driver_free + self.cfg.net;
        for c in out.drain(..) {
            if let Command::Launch {
                preempt, executor, ..
            } = &c
            {
                self.r.placements += 1;
                if preempt.is_some() {
                    self.r.preemptions += 1;
                    if exec_index(executor).is_multiple_of(self.cfg.pressured_every) {
                        self.r.preempted_on_pressured_pct += 1.0;
                    }
                }
            }
            if matches!(c, Command::Launch { .. } | Command::Resume { .. }) {
                self.push(send, Ev::ToExec(c));
            }
        }
        self.out = out;
    }

    fn start(&mut self, t: Duration, id: TaskId) {
        let task = self.tasks.get_mut(&id).expect("started task is known");
        task.since = Some(t);
        task.generation += 1;
        let (at, g) = (t + task.remaining, task.generation);
        self.push(at, Ev::Done(id, g));
    }

    fn send_to_driver(&mut self, at: Duration, ev: Event) {
        self.push(at + self.cfg.net, Ev::ToDriver(ev));
    }

    fn on_exec(&mut self, t: Duration, c: Command) {
        match c {
            Command::Launch {
                task,
                executor,
                preempt,
            } => {
                let exec = exec_index(&executor);
                let mut begin = t;
                if let Some(p) = preempt
                    && let Some(v) = self.tasks.get_mut(&p.task)
                    && let Some(since) = v.since.take()
                {
                    v.remaining = v.remaining.saturating_sub(t - since);
                    v.generation += 1;
                    let (id, attempt) = (p.task, v.attempt);
                    begin = t + self.cfg.suspend;
                    let ev = match p.how {
                        PreemptHow::Suspend => Event::TaskSuspended {
                            id,
                            attempt,
                            executor: executor.clone(),
                        },
                        PreemptHow::Kill => {
                            self.tasks.remove(&id);
                            Event::TaskKilled {
                                id,
                                attempt,
                                executor: executor.clone(),
                                records_lost: 0,
                            }
                        }
                    };
                    self.send_to_driver(begin, ev);
                }
                let remaining = match task.kind {
                    JobKind::Stream => self.cfg.stream_task,
                    JobKind::Batch => self.cfg.batch_task,
                };
                self.tasks.insert(
                    task.id,
                    Task {
                        exec,
                        attempt: task.attempt,
                        kind: task.kind,
                        remaining,
                        since: None,
                        generation: 0,
                    },
                );
                self.start(begin, task.id);
            }
            Command::Resume { task, executor } => {
                if let Some(a) = self.tasks.get(&task).map(|x| x.attempt) {
                    let at = t + self.cfg.resume;
                    self.start(at, task);
                    let ev = Event::TaskResumed {
                        id: task,
                        attempt: a,
                        executor,
                    };
                    self.send_to_driver(at, ev);
                }
            }
            _ => {}
        }
    }

    fn on_done(&mut self, t: Duration, id: TaskId, generation: u32) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        if task.generation != generation || task.since.is_none() {
            return;
        }
        let task = self.tasks.remove(&id).expect("present");
        let ev = Event::TaskFinished {
            id,
            attempt: task.attempt,
            executor: exec_id(task.exec),
        };
        self.send_to_driver(t, ev);
        let _ = task.kind;
    }

    /// Driver-side bookkeeping when a task's finish reaches it.
    fn finished_at_driver(&mut self, t: Duration, id: TaskId) {
        if id.job == 1 {
            self.r.batch_finished += 1;
            self.next_batch += 1;
            let s = spec(1, 0, self.next_batch, JobKind::Batch);
            self.drive(t, Event::TasksSubmitted { tasks: vec![s] });
        } else if let Some((due, left)) = self.due.get_mut(&id.run) {
            *left -= 1;
            if *left == 0 {
                let lat = t.max(self.driver_free).saturating_sub(*due);
                self.latencies.record(lat);
                self.due.remove(&id.run);
                self.r.micro_batches += 1;
            }
        }
    }

    fn step(&mut self, t: Duration, ev: Ev) {
        match ev {
            Ev::ToDriver(e) => {
                let fin = match &e {
                    Event::TaskFinished { id, .. } => Some(*id),
                    _ => None,
                };
                self.drive(t, e);
                if let Some(id) = fin {
                    self.finished_at_driver(t, id);
                }
            }
            Ev::ToExec(c) => self.on_exec(t, c),
            Ev::Done(id, g) => self.on_done(t, id, g),
            Ev::MicroBatch(run) => {
                let n = self.cfg.stream_tasks;
                let tasks = (0..n).map(|p| spec(0, run, p, JobKind::Stream)).collect();
                self.due.insert(run, (t, n));
                self.drive(t, Event::TasksSubmitted { tasks });
                self.push(t + self.cfg.interval, Ev::MicroBatch(run + 1));
            }
            Ev::Heartbeat(i) => {
                let limit = 8u64 << 30;
                let pct = if i.is_multiple_of(self.cfg.pressured_every) {
                    80
                } else {
                    20
                };
                let metrics = ExecutorMetrics {
                    memory_used: limit / 100 * pct,
                    memory_limit: limit,
                    spilled_bytes_total: 0,
                    suspended_retained_bytes: 0,
                };
                self.drive(
                    t,
                    Event::Heartbeat {
                        id: exec_id(i),
                        metrics,
                    },
                );
                self.push(t + self.cfg.heartbeat, Ev::Heartbeat(i));
            }
            Ev::Tick => {
                self.drive(t, Event::Tick);
                self.push(t + Duration::from_millis(100), Ev::Tick);
            }
        }
    }
}

/// Run one simulation to `cfg.duration` of virtual time.
///
/// # Errors
/// When the scheduler refuses the configuration.
pub fn simulate(cfg: &SimConfig) -> anyhow::Result<SimResult> {
    let sched = Scheduler::new(SchedulerConfig {
        policy: Policy::Neptune,
        placement: cfg.placement,
        heartbeat_timeout: Duration::from_secs(3600),
        ..SchedulerConfig::default()
    })?;
    let mut sim = Sim {
        cfg: cfg.clone(),
        sched,
        queue: BinaryHeap::new(),
        evs: Vec::new(),
        seq: 0,
        tasks: HashMap::new(),
        driver_free: Duration::ZERO,
        due: HashMap::new(),
        next_batch: 0,
        latencies: Histogram::new(Resolution::Micros),
        heartbeats: 0,
        r: SimResult {
            executors: cfg.executors,
            placement: cfg.placement.as_str().to_string(),
            ..SimResult::default()
        },
        out: Vec::new(),
    };
    for i in 0..cfg.executors {
        let ev = Event::ExecutorRegistered {
            id: exec_id(i),
            cores: cfg.cores,
            memory_limit: 8 << 30,
        };
        sim.drive(Duration::ZERO, ev);
        // Stagger heartbeats over the interval, as real executors started at different times.
        let off = cfg.heartbeat * i / cfg.executors.max(1);
        sim.push(off, Ev::Heartbeat(i));
    }
    // Twice the slots in batch tasks: the cluster stays full, one new task per finished one.
    let n = cfg.executors * cfg.cores * 2;
    sim.next_batch = n;
    let tasks = (0..n).map(|p| spec(1, 0, p, JobKind::Batch)).collect();
    sim.drive(Duration::ZERO, Event::TasksSubmitted { tasks });
    sim.push(cfg.interval, Ev::MicroBatch(1));
    sim.push(Duration::from_millis(100), Ev::Tick);
    sim.heartbeats = 0;
    sim.r = SimResult {
        executors: cfg.executors,
        placement: cfg.placement.as_str().to_string(),
        ..SimResult::default()
    };
    while let Some(Reverse((t, _, i))) = sim.queue.pop() {
        if t > cfg.duration {
            break;
        }
        let ev = sim.evs[i].take().expect("each event is popped once");
        sim.step(t, ev);
    }
    let mut r = sim.r;
    r.heartbeat_us /= sim.heartbeats.max(1) as f64;
    r.event_us = r.scheduler_wall_s * 1e6 / (r.events.max(1) as f64);
    r.placements_per_sec = r.placements as f64 / r.scheduler_wall_s.max(1e-12);
    r.preempted_on_pressured_pct =
        100.0 * r.preempted_on_pressured_pct / (r.preemptions.max(1) as f64);
    let p = sim.latencies.percentiles(Duration::from_millis(1));
    r.stream_p50_ms = p.p50;
    r.stream_p99_ms = p.p99;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(placement: Placement) -> SimConfig {
        SimConfig {
            executors: 20,
            cores: 4,
            stream_tasks: 20,
            interval: Duration::from_millis(200),
            stream_task: Duration::from_millis(5),
            batch_task: Duration::from_secs(2),
            net: Duration::from_micros(100),
            suspend: Duration::from_micros(50),
            resume: Duration::from_micros(50),
            heartbeat: Duration::from_millis(250),
            duration: Duration::from_secs(3),
            placement,
            pressured_every: 4,
        }
    }

    #[test]
    fn stream_tasks_preempt_batch_and_micro_batches_complete() {
        let r = simulate(&small(Placement::Lma)).unwrap();
        assert!(r.micro_batches >= 10, "{r:?}");
        assert!(r.preemptions > 0, "{r:?}");
        assert!(r.batch_finished > 0, "{r:?}");
        // Every stream task is preempting: latency is work + messages + suspension.
        assert!(r.stream_p50_ms >= 5.0, "{r:?}");
    }

    #[test]
    fn lma_avoids_pressured_executors_that_lb_uses() {
        let lma = simulate(&small(Placement::Lma)).unwrap();
        let lb = simulate(&small(Placement::Lb)).unwrap();
        assert!(
            lma.preempted_on_pressured_pct < lb.preempted_on_pressured_pct,
            "{lma:?} {lb:?}"
        );
    }
}
