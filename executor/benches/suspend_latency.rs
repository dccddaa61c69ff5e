//! Latency of suspension on the real runtime (2 cores): suspend request → task parked and core
//! free (`Suspended` received by the caller), and the full round trip suspend → parked → resume
//! → running again (`Resumed` received). One long batch task runs a per-record loop with a yield
//! point per record; the other core is free for the caller, as for an executor's RPC threads.
//! After criterion's report, prints p50/p99 of the runtime-measured latencies and of the round
//! trip as the caller sees it.

use criterion::Criterion;
use neptune_core::ids::{JobKind, TaskId};
use neptune_core::state::Broadcasts;
use neptune_executor::runtime::{RuntimeEvent, TaskBody, TaskRuntime};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

const BATCH: TaskId = TaskId {
    job: 1,
    run: 0,
    stage: 0,
    partition: 0,
};

fn batch_forever() -> TaskBody {
    Box::new(|ctx| {
        let mut acc = 0u64;
        let mut i = 0u64;
        while ctx.yield_point() {
            ctx.count_record();
            acc = (acc ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(7);
            i += 1;
        }
        Ok(black_box(acc).to_le_bytes().to_vec())
    })
}

struct Bench {
    rt: TaskRuntime,
    events: UnboundedReceiver<RuntimeEvent>,
}

impl Bench {
    fn new() -> Self {
        let (tx, events) = unbounded_channel();
        let rt = TaskRuntime::new(2, Arc::new(Broadcasts::default()), tx);
        rt.launch(BATCH, 0, JobKind::Batch, batch_forever())
            .unwrap();
        Self { rt, events }
    }

    /// Suspend; returns (runtime-measured latency, caller-observed time to `Suspended`).
    fn suspend(&mut self) -> (Duration, Duration) {
        let t = Instant::now();
        self.rt.suspend(BATCH, t).unwrap();
        match self.events.blocking_recv() {
            Some(RuntimeEvent::Suspended { latency, .. }) => (latency, t.elapsed()),
            other => panic!("expected Suspended, got {other:?}"),
        }
    }

    /// Resume; returns the runtime-measured latency.
    fn resume(&mut self) -> Duration {
        self.rt.resume(BATCH, Instant::now()).unwrap();
        match self.events.blocking_recv() {
            Some(RuntimeEvent::Resumed { latency, .. }) => latency,
            other => panic!("expected Resumed, got {other:?}"),
        }
    }
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[(v.len() - 1) * p / 100]
}

fn main() {
    let mut b = Bench::new();
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("suspension");
    group.bench_function("suspend_to_parked", |bencher| {
        bencher.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += b.suspend().1;
                b.resume();
            }
            total
        })
    });
    group.bench_function("suspend_resume_round_trip", |bencher| {
        bencher.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                b.suspend();
                b.resume();
            }
            t.elapsed()
        })
    });
    group.finish();
    c.final_summary();

    const CYCLES: usize = 20_000;
    let (mut parked, mut seen, mut resumed, mut round) = (vec![], vec![], vec![], vec![]);
    for _ in 0..CYCLES {
        let t = Instant::now();
        let (latency, observed) = b.suspend();
        resumed.push(b.resume());
        round.push(t.elapsed());
        parked.push(latency);
        seen.push(observed);
    }
    println!("over {CYCLES} cycles (p50 / p99):");
    println!(
        "  suspend -> parked (runtime)      {:?} / {:?}",
        pct(&mut parked, 50),
        pct(&mut parked, 99)
    );
    println!(
        "  suspend -> Suspended received    {:?} / {:?}",
        pct(&mut seen, 50),
        pct(&mut seen, 99)
    );
    println!(
        "  resume -> running (runtime)      {:?} / {:?}",
        pct(&mut resumed, 50),
        pct(&mut resumed, 99)
    );
    println!(
        "  suspend -> resume -> Resumed rcv {:?} / {:?}",
        pct(&mut round, 50),
        pct(&mut round, 99)
    );
    b.rt.kill(BATCH).unwrap();
}
