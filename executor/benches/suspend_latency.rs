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

/// Latencies, in ns to 3 significant digits (`hdrhistogram`, as the driver's statistics).
struct Latencies(hdrhistogram::Histogram<u64>);

impl Latencies {
    fn new() -> Self {
        Self(hdrhistogram::Histogram::new(3).expect("3 significant digits"))
    }

    fn push(&mut self, d: Duration) {
        self.0
            .saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The `p`-th percentile.
    fn pct(&self, p: f64) -> Duration {
        Duration::from_nanos(self.0.value_at_quantile(p / 100.0))
    }
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
    let [mut parked, mut seen, mut resumed, mut round] = std::array::from_fn(|_| Latencies::new());
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
        parked.pct(50.0),
        parked.pct(99.0)
    );
    println!(
        "  suspend -> Suspended received    {:?} / {:?}",
        seen.pct(50.0),
        seen.pct(99.0)
    );
    println!(
        "  resume -> running (runtime)      {:?} / {:?}",
        resumed.pct(50.0),
        resumed.pct(99.0)
    );
    println!(
        "  suspend -> resume -> Resumed rcv {:?} / {:?}",
        round.pct(50.0),
        round.pct(99.0)
    );
    b.rt.kill(BATCH).unwrap();
}
