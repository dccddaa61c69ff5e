//! Per-hop latency attribution of stream micro-batches: where a micro-batch's time went between
//! its due time and its commit, and the per-job statistics of each hop.
//!
//! # The path and its clocks
//! Driver and executors may run on different hosts, so their clocks are never compared. The
//! driver timestamps its own points on its monotonic clock — due, run planned (the job manager
//! began the run), the task submitted to the scheduler, its launch sent, its final update
//! received by the driver's gRPC session, the run committed by the event loop. The executor
//! measures its hops as *durations* on its own monotonic clock and carries them in the task's
//! `Succeeded` update (`TaskTiming`): launch received → core granted → the task's coroutine runs
//! → first record → finished. What is left of the driver's launch-sent → update-received
//! interval once the executor's hops are taken out is the network and queueing share (both
//! directions of the wire, the driver's outbox and the executor's session loop): a difference of
//! two durations, each on one clock, so no clock skew enters it.
//!
//! # Which task
//! A micro-batch is attributed to its *critical task*: the one whose success completed the run's
//! last stage (it finished last, so the commit waited for it). Its stage's submission time
//! splits the time before it into `trigger` (due → run planned), `upstream` (run planned → this
//! stage's tasks submitted: earlier stages of a multi-stage run; zero for one stage) and
//! `schedule` (submitted → launch sent). The hops are consecutive, so they sum to the
//! micro-batch's end-to-end latency exactly (when the executor reported its hops).
//!
//! # Untrusted values
//! The executor's durations come from the wire. Each is bounded by what is left of the driver's
//! own launch-sent → update-received interval after the hops before it, so bogus values (say
//! `u64::MAX` ns) saturate there: they cannot make a hop longer than the driver saw, and the
//! network share is then zero, never negative. An executor that predates `TaskTiming` sends
//! none: its executor hops and the network share are unknown and not recorded.

use super::{Histogram, Percentiles, Resolution, Warmup, WarmupClock};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One hop of a stream micro-batch's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hop {
    /// Due → the job manager began the run (the event loop's timer firing late, work ahead of
    /// it on the loop).
    Trigger,
    /// Run began → the critical task's stage was submitted (earlier stages).
    Upstream,
    /// Submitted → launch sent (waiting for a slot, the scheduler's decision).
    Schedule,
    /// Launch sent → update received, less the executor's hops: both directions on the wire and
    /// the queues at either end.
    Network,
    /// Launch received by the executor → core granted (waiting for a free core or for a
    /// preempted batch task to park).
    CoreWait,
    /// Core granted → the task's coroutine runs (may's queue on that worker).
    CoreStart,
    /// Coroutine runs → first record (setup, shuffle fetch, receiver cut).
    FirstRecord,
    /// First record → finished.
    Process,
    /// Update received by the driver → run committed (the event loop's queue and work).
    Commit,
}

/// Number of hops.
pub const HOPS: usize = 9;

impl Hop {
    /// Every hop, in path order.
    pub const ALL: [Hop; HOPS] = [
        Hop::Trigger,
        Hop::Upstream,
        Hop::Schedule,
        Hop::Network,
        Hop::CoreWait,
        Hop::CoreStart,
        Hop::FirstRecord,
        Hop::Process,
        Hop::Commit,
    ];

    /// Name in reports and the `hop` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Hop::Trigger => "trigger",
            Hop::Upstream => "upstream",
            Hop::Schedule => "schedule",
            Hop::Network => "network",
            Hop::CoreWait => "core_wait",
            Hop::CoreStart => "core_start",
            Hop::FirstRecord => "first_record",
            Hop::Process => "process",
            Hop::Commit => "commit",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The driver's points on one micro-batch's critical path, as times on its own clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverMarks {
    /// The micro-batch was due.
    pub due: Duration,
    /// The job manager began the run.
    pub planned: Duration,
    /// The critical task's stage was submitted to the scheduler.
    pub submitted: Duration,
    /// Its (successful attempt's) launch was sent.
    pub launched: Duration,
    /// Its `Succeeded` update was received by the driver's session.
    pub received: Duration,
    /// The run was committed.
    pub committed: Duration,
}

/// The executor's hops of the critical task, as it reported them (untrusted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecutorHops {
    /// Launch received → core granted.
    pub core_wait: Duration,
    /// Core granted → coroutine runs.
    pub core_start: Duration,
    /// Coroutine runs → first record.
    pub first_record: Duration,
    /// First record → finished.
    pub process: Duration,
}

impl From<&neptune_proto::TaskTiming> for ExecutorHops {
    fn from(t: &neptune_proto::TaskTiming) -> Self {
        Self {
            core_wait: Duration::from_nanos(t.queued_ns),
            core_start: Duration::from_nanos(t.start_ns),
            first_record: Duration::from_nanos(t.first_record_ns),
            process: Duration::from_nanos(t.process_ns),
        }
    }
}

/// One micro-batch's hops, by [`Hop`] index; `None`: unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breakdown(pub [Option<Duration>; HOPS]);

impl Breakdown {
    /// Hop `hop`, if known.
    pub fn get(&self, hop: Hop) -> Option<Duration> {
        self.0[hop.index()]
    }

    /// Sum of the known hops.
    pub fn known_total(&self) -> Duration {
        self.0.iter().flatten().sum()
    }
}

/// Attribute a micro-batch's time to its hops. Driver points out of order count as zero-length
/// hops (each point is taken as at least the one before); the executor's hops are bounded as the
/// module docs say.
pub fn attribute(m: &DriverMarks, exec: Option<&ExecutorHops>) -> Breakdown {
    let planned = m.planned.max(m.due);
    let submitted = m.submitted.max(planned);
    let launched = m.launched.max(submitted);
    let received = m.received.max(launched);
    let committed = m.committed.max(received);
    let mut hops = [None; HOPS];
    let mut set = |h: Hop, d: Duration| hops[h.index()] = Some(d);
    set(Hop::Trigger, planned - m.due);
    set(Hop::Upstream, submitted - planned);
    set(Hop::Schedule, launched - submitted);
    set(Hop::Commit, committed - received);
    if let Some(e) = exec {
        // The executor's interval lies inside the driver's launch-sent → update-received one.
        let mut left = received - launched;
        let mut take = |h: Hop, d: Duration| {
            let d = d.min(left);
            left -= d;
            set(h, d);
        };
        take(Hop::CoreWait, e.core_wait);
        take(Hop::CoreStart, e.core_start);
        take(Hop::FirstRecord, e.first_record);
        take(Hop::Process, e.process);
        set(Hop::Network, left);
    }
    Breakdown(hops)
}

/// One hop's statistics in a report: its name beside its steady-state percentiles.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HopSummary {
    /// Hop name ([`Hop::as_str`]).
    pub hop: String,
    /// Steady-state percentiles, milliseconds (warm-up micro-batches left out, as for the
    /// end-to-end latency).
    #[serde(flatten)]
    pub ms: Percentiles,
}

/// A stream job's per-hop statistics: one histogram per hop for the steady state and one for
/// the warm-up, allocated at the first micro-batch (a batch job holds nothing). Warm-up is
/// decided as for the job's end-to-end latency (same settings, same micro-batches).
#[derive(Debug, Clone)]
pub struct HopLatencies {
    clock: WarmupClock,
    /// (warm-up, steady-state) per hop.
    hists: Option<Box<[(Histogram, Histogram); HOPS]>>,
}

impl Default for HopLatencies {
    fn default() -> Self {
        Self::new(Warmup::default())
    }
}

impl HopLatencies {
    /// Empty, with `warmup` deciding which micro-batches are warm-up.
    pub fn new(warmup: Warmup) -> Self {
        Self {
            clock: WarmupClock::new(warmup),
            hists: None,
        }
    }

    /// Change which micro-batches are warm-up (before the first one).
    pub fn set_warmup(&mut self, warmup: Warmup) {
        self.clock.set(warmup);
    }

    /// Record micro-batch hops `b`, committed `at` (time since the jobs started). Unknown hops
    /// are left out of their histogram.
    pub fn record(&mut self, at: Duration, b: &Breakdown) {
        let hists = self.hists.get_or_insert_with(|| {
            Box::new(std::array::from_fn(|_| {
                (
                    Histogram::new(Resolution::Micros),
                    Histogram::new(Resolution::Micros),
                )
            }))
        });
        let warm = self.clock.tick(at);
        for (pair, hop) in hists.iter_mut().zip(b.0) {
            if let Some(d) = hop {
                if warm { &mut pair.0 } else { &mut pair.1 }.record(d);
            }
        }
    }

    /// Micro-batches recorded (warm-up and steady-state).
    pub fn len(&self) -> u64 {
        self.clock.seen()
    }

    /// Whether none was recorded.
    pub fn is_empty(&self) -> bool {
        self.clock.seen() == 0
    }

    /// Steady-state percentiles of every hop in path order, milliseconds; empty before the
    /// first micro-batch.
    pub fn steady_ms(&self) -> Vec<HopSummary> {
        let Some(h) = &self.hists else {
            return Vec::new();
        };
        Hop::ALL
            .iter()
            .zip(h.iter())
            .map(|(hop, pair)| HopSummary {
                hop: hop.as_str().to_string(),
                ms: pair.1.percentiles(Duration::from_millis(1)),
            })
            .collect()
    }

    /// Bytes held on the heap: nothing before the first micro-batch, a constant after.
    pub fn heap_bytes(&self) -> usize {
        self.hists.as_ref().map_or(0, |h| {
            h.iter().map(|(w, s)| w.heap_bytes() + s.heap_bytes()).sum()
        })
    }
}
