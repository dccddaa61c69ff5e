//! Stress test of the task runtime: at least 100,000 suspend/resume cycles of long batch tasks on
//! two cores, with stream tasks squeezed in while a batch task is parked or handed the core of
//! the batch task being parked for them (`launch_after`), resumes racing parks,
//! kills of parked tasks and batch tasks finishing as suspends arrive. Every batch result must
//! equal an undisturbed run. A watchdog fails the run if nothing progresses for 30 s.
//!
//! CI runs it in the `ci` profile (optimised, debug assertions on) with the full 100,000 cycles;
//! a plain debug build (`cargo test` in the dev profile) runs a tenth of them.

use neptune_core::ids::{JobKind, TaskId};
use neptune_core::state::Broadcasts;
use neptune_core::task::TaskContext;
use neptune_executor::runtime::{RuntimeError, RuntimeEvent, TaskBody, TaskOutcome, TaskRuntime};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// `debug_assertions` cannot tell the dev profile from the optimised `ci` profile (which keeps
/// assertions on), so the build script exports the optimisation level (see executor/build.rs).
const CYCLES: u64 = if OPTIMISED { 100_000 } else { 10_000 };
const OPTIMISED: bool = !matches!(env!("NEPTUNE_OPT_LEVEL").as_bytes(), b"0");
const BATCH_RECORDS: u64 = if OPTIMISED { 5_000_000 } else { 500_000 };
const STREAM_RECORDS: u64 = 2_000;
const STALL: Duration = Duration::from_secs(30);

fn compute(ctx: &TaskContext, records: u64) -> Result<u64, String> {
    let mut acc = 0u64;
    for i in 0..records {
        if !ctx.yield_point() {
            return Err("stopped by kill".into());
        }
        ctx.count_record();
        acc = (acc ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(7);
    }
    Ok(acc)
}

fn count_to(records: u64) -> TaskBody {
    Box::new(move |ctx| compute(ctx, records).map(|acc| acc.to_le_bytes().to_vec()))
}

fn undisturbed(records: u64) -> TaskOutcome {
    let ctx = TaskContext::detached_at(JobKind::Batch, 0, 0);
    TaskOutcome::Succeeded(compute(&ctx, records).unwrap().to_le_bytes().to_vec())
}

/// Fails the process (and so the test) if `progress` stops moving for [`STALL`].
fn watchdog(progress: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let (mut seen, mut since) = (progress.load(Ordering::Relaxed), Instant::now());
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = progress.load(Ordering::Relaxed);
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() > STALL {
                eprintln!("watchdog: no progress for {STALL:?} at step {now}; the runtime hangs");
                std::process::exit(101);
            }
        }
    });
}

struct Driver {
    rt: TaskRuntime,
    events: UnboundedReceiver<RuntimeEvent>,
    stash: VecDeque<RuntimeEvent>,
    waiter: tokio::runtime::Runtime,
    progress: Arc<AtomicU64>,
    suspend_latencies: Latencies,
    resume_latencies: Latencies,
}

impl Driver {
    /// The next event about `id` (other tasks' events are kept for later).
    fn next_of(&mut self, id: TaskId) -> RuntimeEvent {
        if let Some(i) = self.stash.iter().position(|e| e.id() == id) {
            return self.stash.remove(i).unwrap();
        }
        loop {
            let events = &mut self.events;
            let next = self
                .waiter
                .block_on(async { tokio::time::timeout(STALL, events.recv()).await });
            let event = match next {
                Ok(Some(event)) => event,
                Ok(None) => panic!("event channel closed"),
                Err(_) => panic!("no event for {id} in {STALL:?}: {:#?}", self.rt.snapshot()),
            };
            self.progress.fetch_add(1, Ordering::Relaxed);
            match &event {
                RuntimeEvent::Suspended { latency, .. } => self.suspend_latencies.record(*latency),
                RuntimeEvent::Resumed { latency, .. } => self.resume_latencies.record(*latency),
                RuntimeEvent::Finished { .. } => {}
            }
            if event.id() == id {
                return event;
            }
            self.stash.push_back(event);
        }
    }
}

/// One of the two long batch tasks, relaunched (next run) whenever it finishes.
struct BatchSlot {
    id: TaskId,
    attempt: u32,
}

impl BatchSlot {
    fn launch(&self, rt: &TaskRuntime) {
        rt.launch(
            self.id,
            self.attempt,
            JobKind::Batch,
            count_to(BATCH_RECORDS),
        )
        .unwrap();
    }

    fn next_run(&mut self, rt: &TaskRuntime) {
        self.id.run += 1;
        self.attempt = 0;
        self.launch(rt);
    }
}

/// Suspend or resume latencies in nanoseconds (HdrHistogram, 3 significant digits, up to a
/// minute; longer ones count as a minute): percentiles without keeping or sorting the samples.
struct Latencies(hdrhistogram::Histogram<u64>);

impl Latencies {
    fn new() -> Self {
        Self(hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"))
    }

    fn record(&mut self, d: Duration) {
        self.0.saturating_record(
            u64::try_from(d.as_nanos())
                .unwrap_or(u64::MAX)
                .min(self.0.high()),
        );
    }

    fn percentile(&self, p: f64) -> Duration {
        Duration::from_nanos(self.0.value_at_percentile(p))
    }
}

#[derive(Default)]
struct Tally {
    cycles: u64,
    finished: u64,
    kills: u64,
    races: u64,
    streams: u64,
    handoffs: u64,
}

impl Driver {
    /// Suspend `slot`'s running task and wait until it parked (true) or finished intact (false,
    /// and it is relaunched as the next run, running).
    fn park(&mut self, slot: &mut BatchSlot, tally: &mut Tally) -> bool {
        self.request_park(slot);
        self.await_park(slot, tally)
    }

    fn request_park(&self, slot: &BatchSlot) {
        let id = slot.id;
        match self.rt.suspend(id, Instant::now()) {
            Ok(()) => {}
            Err(RuntimeError::UnknownTask { .. }) => {} // finished; its event is on the way
            Err(e) => panic!("suspend of {id} refused: {e}"),
        }
    }

    /// The second half of [`park`](Self::park): wait for the outcome of the suspend request.
    fn await_park(&mut self, slot: &mut BatchSlot, tally: &mut Tally) -> bool {
        let id = slot.id;
        match self.next_of(id) {
            RuntimeEvent::Suspended { .. } => true,
            RuntimeEvent::Finished {
                outcome, records, ..
            } => {
                assert_eq!(
                    outcome,
                    undisturbed(BATCH_RECORDS),
                    "{id}: differs from undisturbed"
                );
                assert_eq!(records, BATCH_RECORDS);
                tally.finished += 1;
                slot.next_run(&self.rt);
                false
            }
            other => panic!("expected {id} to park, got {other:?}"),
        }
    }

    fn resume(&mut self, slot: &BatchSlot, tally: &mut Tally) {
        self.rt.resume(slot.id, Instant::now()).unwrap();
        match self.next_of(slot.id) {
            RuntimeEvent::Resumed { .. } => tally.cycles += 1,
            other => panic!("expected {} to resume, got {other:?}", slot.id),
        }
    }

    fn run_stream(&mut self, sid: TaskId, tally: &mut Tally) {
        let RuntimeEvent::Finished { outcome, .. } = self.next_of(sid) else {
            panic!("a stream task only finishes")
        };
        assert_eq!(outcome, undisturbed(STREAM_RECORDS));
        tally.streams += 1;
    }

    /// Suspend and at once resume `slot`'s task, usually before it parked.
    fn race(&mut self, slot: &mut BatchSlot, tally: &mut Tally) {
        let id = slot.id;
        if self.rt.suspend(id, Instant::now()).is_ok() {
            match self.rt.resume(id, Instant::now()) {
                Ok(()) | Err(RuntimeError::UnknownTask { .. }) => {} // it just finished
                Err(e) => panic!("resume of {id} refused: {e}"),
            }
        }
        loop {
            match self.next_of(id) {
                RuntimeEvent::Suspended { .. } => continue, // it had committed to parking
                RuntimeEvent::Resumed { .. } => break,
                RuntimeEvent::Finished { outcome, .. } => {
                    assert_eq!(outcome, undisturbed(BATCH_RECORDS));
                    tally.finished += 1;
                    slot.next_run(&self.rt);
                    return;
                }
            }
        }
        tally.races += 1;
        tally.cycles += 1;
    }
}

#[test]
fn runtime_survives_a_hundred_thousand_suspend_resume_cycles_with_results_intact() {
    let (tx, events) = unbounded_channel();
    let rt = TaskRuntime::new(2, Arc::new(Broadcasts::default()), tx);
    let progress = Arc::new(AtomicU64::new(0));
    watchdog(progress.clone());
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut d = Driver {
        rt: rt.clone(),
        events,
        stash: VecDeque::new(),
        waiter,
        progress,
        suspend_latencies: Latencies::new(),
        resume_latencies: Latencies::new(),
    };
    let mut tally = Tally::default();
    // Two long batch tasks take turns: `run` runs, `parked` is suspended. Swapping them is one
    // suspend and one resume; one core stays free for stream tasks most of the time, as when the
    // driver has made room for a stream job.
    let batch = |p| BatchSlot {
        id: TaskId {
            job: 1,
            run: 0,
            stage: 0,
            partition: p,
        },
        attempt: 0,
    };
    let (mut run, mut parked) = (batch(0), batch(1));
    run.launch(&rt);
    parked.launch(&rt);
    while !d.park(&mut parked, &mut tally) {}
    let started = Instant::now();
    let mut step = 0u64;

    while tally.cycles < CYCLES {
        step += 1;
        if step.is_multiple_of(101) {
            d.race(&mut run, &mut tally);
            continue;
        }
        if step % 64 == 32 {
            // The driver's "launch S, suspending X to make room" with every core busy, as the
            // executor carries it out: suspend X, then launch S onto X's core, which it gets
            // the moment X parks (or ends).
            d.resume(&parked, &mut tally);
            let sid = TaskId {
                job: 2,
                run: step,
                stage: 0,
                partition: 0,
            };
            d.request_park(&run);
            let body = count_to(STREAM_RECORDS);
            rt.launch_after(run.id, sid, 0, JobKind::Stream, body, Instant::now())
                .unwrap();
            if d.await_park(&mut run, &mut tally) {
                std::mem::swap(&mut run, &mut parked);
            } else {
                // `run` finished instead and its core went to S; park the other one.
                while !d.park(&mut parked, &mut tally) {}
            }
            d.run_stream(sid, &mut tally);
            tally.handoffs += 1;
            continue;
        }
        if !d.park(&mut run, &mut tally) {
            continue; // finished intact; relaunched and running again
        }
        if step.is_multiple_of(997) {
            rt.kill(run.id).unwrap();
            let RuntimeEvent::Finished { outcome, .. } = d.next_of(run.id) else {
                panic!("a killed task only finishes")
            };
            assert_eq!(outcome, TaskOutcome::Killed);
            tally.kills += 1;
            run.attempt += 1;
            run.launch(&rt);
            continue;
        }
        if step % 16 == 3 {
            // A stream task on a core freed by suspension.
            let sid = TaskId {
                job: 2,
                run: step,
                stage: 0,
                partition: 1,
            };
            rt.launch(sid, 0, JobKind::Stream, count_to(STREAM_RECORDS))
                .unwrap();
            d.run_stream(sid, &mut tally);
        }
        d.resume(&parked, &mut tally);
        std::mem::swap(&mut run, &mut parked);
    }

    let elapsed = started.elapsed();
    for s in [&run, &parked] {
        rt.kill(s.id).unwrap();
    }
    for s in [&run, &parked] {
        let RuntimeEvent::Finished { outcome, .. } = d.next_of(s.id) else {
            panic!("must finish")
        };
        assert!(outcome == TaskOutcome::Killed || outcome == undisturbed(BATCH_RECORDS));
    }
    assert!(rt.snapshot().tasks.is_empty(), "nothing is left behind");
    let t = &tally;
    println!(
        "{} suspend/resume cycles in {elapsed:.1?}: {} batch tasks finished intact, {} killed \
         while parked, {} resume-before-park races, {} stream tasks ({} waiting for a core); \
         suspend latency p50 {:?} p99 {:?}; resume latency p50 {:?} p99 {:?}",
        t.cycles,
        t.finished,
        t.kills,
        t.races,
        t.streams,
        t.handoffs,
        d.suspend_latencies.percentile(50.0),
        d.suspend_latencies.percentile(99.0),
        d.resume_latencies.percentile(50.0),
        d.resume_latencies.percentile(99.0),
    );
    assert!(t.cycles >= CYCLES);
}
