//! Scheduler hot-path benchmark: one suspend/resume cycle (stream task arrives at a full
//! cluster, suspension confirmed, stream task finishes, resume confirmed) and one heartbeat
//! (under `lma`, which re-ranks the executor, and `lb`, which ignores memory), at 100, 1,000 and
//! 10,000 simulated executors of 8 cores each.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use neptune_core::ids::{JobKind, TaskId};
use neptune_driver::scheduler::{
    Command, Event, ExecutorMetrics, Placement, Scheduler, SchedulerConfig, TaskSpec,
};
use std::hint::black_box;
use std::time::Duration;

const CORES: u32 = 8;

fn task(job: u32, run: u64, partition: u32, kind: JobKind) -> TaskSpec {
    let id = TaskId {
        job,
        run,
        stage: 0,
        partition,
    };
    TaskSpec::new(id, kind)
}

/// A cluster whose every slot runs a batch task, with more batch tasks queued.
fn full_cluster(executors: u32, placement: Placement) -> Scheduler {
    let mut s = Scheduler::new(SchedulerConfig {
        placement,
        heartbeat_timeout: Duration::from_secs(3600),
        // The loop preempts far faster than real time: keep anti-starvation out of the way.
        max_suspensions: u32::MAX,
        ..SchedulerConfig::default()
    })
    .unwrap();
    for i in 0..executors {
        let id = format!("exec-{i}");
        s.handle(
            Duration::ZERO,
            Event::ExecutorRegistered {
                id,
                cores: CORES,
                memory_limit: 1 << 32,
            },
        );
    }
    let tasks = (0..executors * CORES * 2)
        .map(|p| task(1, 0, p, JobKind::Batch))
        .collect();
    s.handle(Duration::ZERO, Event::TasksSubmitted { tasks });
    s
}

fn suspend_resume_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("suspend_resume_cycle");
    for executors in [100, 1_000, 10_000] {
        let mut s = full_cluster(executors, Placement::Lma);
        let mut run = 0u64;
        let mut now = Duration::ZERO;
        group.bench_with_input(
            BenchmarkId::from_parameter(executors),
            &executors,
            |b, _| {
                b.iter(|| {
                    run += 1;
                    now += Duration::from_micros(10);
                    let stream = task(0, run, 0, JobKind::Stream);
                    let id = stream.id;
                    let cmds = s.handle(
                        now,
                        Event::TasksSubmitted {
                            tasks: vec![stream],
                        },
                    );
                    let Some(Command::Launch {
                        executor,
                        preempt: Some(p),
                        ..
                    }) = cmds.first()
                    else {
                        panic!("expected a preempting launch: {cmds:?}");
                    };
                    let (executor, victim) = (executor.clone(), p.task);
                    let e = executor.clone();
                    s.handle(
                        now,
                        Event::TaskSuspended {
                            id: victim,
                            attempt: 0,
                            executor: e,
                        },
                    );
                    let e = executor.clone();
                    s.handle(
                        now,
                        Event::TaskFinished {
                            id,
                            attempt: 0,
                            executor: e,
                        },
                    );
                    black_box(s.handle(
                        now,
                        Event::TaskResumed {
                            id: victim,
                            attempt: 0,
                            executor,
                        },
                    ));
                })
            },
        );
    }
    group.finish();
}

fn heartbeat(c: &mut Criterion) {
    heartbeat_with(c, "heartbeat", Placement::Lma);
    heartbeat_with(c, "heartbeat_lb", Placement::Lb);
}

fn heartbeat_with(c: &mut Criterion, name: &str, placement: Placement) {
    let mut group = c.benchmark_group(name);
    for executors in [100u32, 1_000, 10_000] {
        let mut s = full_cluster(executors, placement);
        let mut i = 0u32;
        let mut now = Duration::ZERO;
        group.bench_with_input(
            BenchmarkId::from_parameter(executors),
            &executors,
            |b, _| {
                b.iter(|| {
                    i = (i + 1) % executors;
                    now += Duration::from_micros(10);
                    let metrics = ExecutorMetrics {
                        memory_used: u64::from(i) << 20,
                        memory_limit: 1 << 32,
                        spilled_bytes_total: 0,
                        suspended_retained_bytes: 0,
                    };
                    let id = format!("exec-{i}");
                    black_box(s.handle(now, Event::Heartbeat { id, metrics }));
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, suspend_resume_cycle, heartbeat);
criterion_main!(benches);
