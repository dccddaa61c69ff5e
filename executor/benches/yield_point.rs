//! Cost of a yield point: a batch-like loop over records doing a small realistic computation per
//! record (bucketed weighted sums, as a scoring or aggregation operator would), with and without
//! `TaskContext::yield_point()` per record. Prints the overhead in percent after criterion's
//! report.
//!
//! The loop runs on the bench thread: the yield point's fast path (nothing requested) is one
//! relaxed atomic load and a branch whether or not the code runs on a coroutine.

use criterion::{Criterion, Throughput};
use neptune_core::ids::JobKind;
use neptune_core::task::TaskContext;
use std::hint::black_box;
use std::time::{Duration, Instant};

const RECORDS: usize = 100_000;

/// A record as an operator sees it after decoding: a key and a value.
#[derive(Clone, Copy)]
struct Record {
    user: u64,
    amount: f64,
}

fn records() -> Vec<Record> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..RECORDS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Record {
                user: x % 10_000,
                amount: (x >> 40) as f64 / 1024.0,
            }
        })
        .collect()
}

/// Per record: bucket the key, weight the value, keep sums and a running maximum.
#[inline(always)]
fn step(state: &mut ([f64; 64], f64), r: &Record) {
    let bucket = (r.user.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize;
    let scored = r.amount * 1.07 + (r.user & 7) as f64;
    state.0[bucket] += scored;
    state.1 = state.1.max(scored);
}

fn without_yield(ctx: &TaskContext, data: &[Record]) -> f64 {
    let mut state = ([0.0; 64], 0.0);
    for r in data {
        ctx.count_record();
        step(&mut state, black_box(r));
    }
    state.0.iter().sum::<f64>() + state.1
}

fn with_yield(ctx: &TaskContext, data: &[Record]) -> f64 {
    let mut state = ([0.0; 64], 0.0);
    for r in data {
        if !ctx.yield_point() {
            break;
        }
        ctx.count_record();
        step(&mut state, black_box(r));
    }
    state.0.iter().sum::<f64>() + state.1
}

fn context() -> TaskContext {
    TaskContext::detached_at(JobKind::Batch, 0, 0)
}

fn bench(c: &mut Criterion, data: &[Record]) {
    let mut group = c.benchmark_group("yield_point");
    group.throughput(Throughput::Elements(RECORDS as u64));
    let ctx = context();
    group.bench_function("per_record_work_without_yield_point", |b| {
        b.iter(|| without_yield(&ctx, black_box(data)))
    });
    group.bench_function("per_record_work_with_yield_point", |b| {
        b.iter(|| with_yield(&ctx, black_box(data)))
    });
    group.finish();
}

/// Median time of `rounds` runs of `f` over the data.
fn median(rounds: usize, mut f: impl FnMut() -> f64) -> Duration {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

fn main() {
    let data = records();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &data);
    c.final_summary();

    let ctx = context();
    // Interleave the two variants so frequency changes hit both alike.
    let (mut base, mut yielding) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        base.push(median(25, || without_yield(&ctx, &data)));
        yielding.push(median(25, || with_yield(&ctx, &data)));
    }
    base.sort();
    yielding.sort();
    let (b, y) = (base[10].as_secs_f64(), yielding[10].as_secs_f64());
    println!(
        "yield point overhead: {:.2} ns/record without, {:.2} ns/record with: {:+.1}%",
        b * 1e9 / RECORDS as f64,
        y * 1e9 / RECORDS as f64,
        (y / b - 1.0) * 100.0
    );
}
