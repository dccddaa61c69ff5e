//! A job's latency statistics: steady-state and warm-up histograms and a bounded window of the
//! most recent raw points.
//!
//! Warm-up: a sample is warm-up while fewer than [`Warmup::runs`] samples were recorded before
//! it, or while it is less than [`Warmup::duration`] after the job's first sample (settings
//! `stats.warmup_runs`, `stats.warmup_ms`; default: the first second). Warm-up samples go to
//! their own histogram and are reported apart, with their count, so a cold start neither hides
//! in nor inflates the steady-state tail.
//!
//! Service level: a stream job with a latency target (`jobs.<job>.latency_target_ms`) also
//! counts, exactly (not from the histogram's buckets), its steady-state micro-batches committed
//! within the target: its *attainment* is that count over the steady-state count. Warm-up
//! micro-batches are left out of it, as they are of the percentiles. [`Latencies::recent_p99`]
//! reads the recent window for the scheduler's SLO-aware mode: the p99 of the micro-batches
//! committed in the last few seconds, not of the whole run.

use super::{Histogram, Percentiles, Resolution};
use std::collections::VecDeque;
use std::time::Duration;

/// Points the recent-window series keeps (the last ones recorded): 10,000 points of 16 bytes,
/// 160 KB per stream job at most. At a 5 ms interval that is the last 50 s of a run; the
/// histograms cover all of it.
pub const RECENT_POINTS: usize = 10_000;

/// Samples [`Latencies::recent_p99`] reads at most (the newest): bounds its cost per call
/// whatever the window and the interval.
pub const RECENT_WINDOW_CAP: usize = 2_000;

/// Which samples are warm-up (either condition makes one warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warmup {
    /// Samples less than this long after the first one.
    pub duration: Duration,
    /// The first this many samples.
    pub runs: u64,
}

impl Default for Warmup {
    /// The first second.
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(1),
            runs: 0,
        }
    }
}

impl Warmup {
    /// No warm-up: every sample is steady-state.
    pub const NONE: Self = Self {
        duration: Duration::ZERO,
        runs: 0,
    };
}

/// Decides, sample by sample, which are warm-up under a [`Warmup`]: the one rule shared by a
/// job's end-to-end latencies and its per-hop breakdown, so both leave out the same
/// micro-batches.
#[derive(Debug, Clone)]
pub struct WarmupClock {
    warmup: Warmup,
    /// When the first sample was recorded.
    first_at: Option<Duration>,
    /// Samples recorded so far (saturating).
    seen: u64,
}

impl WarmupClock {
    /// No sample seen yet.
    pub fn new(warmup: Warmup) -> Self {
        Self {
            warmup,
            first_at: None,
            seen: 0,
        }
    }

    /// Change the rule (samples already classified stay where they are).
    pub fn set(&mut self, warmup: Warmup) {
        self.warmup = warmup;
    }

    /// Count a sample observed `at`; whether it is warm-up.
    pub fn tick(&mut self, at: Duration) -> bool {
        let first = *self.first_at.get_or_insert(at);
        let warm = self.seen < self.warmup.runs || at.saturating_sub(first) < self.warmup.duration;
        self.seen = self.seen.saturating_add(1);
        warm
    }

    /// Samples counted, warm-up and steady-state.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

/// Latencies of one quantity over a job's life (micro-batch due → committed).
#[derive(Debug, Clone)]
pub struct Latencies {
    clock: WarmupClock,
    /// (warm-up, steady-state), allocated at the first sample: a batch job never records and
    /// holds nothing.
    hists: Option<Box<(Histogram, Histogram)>>,
    /// (seconds since the jobs started, latency ms) of the last [`RECENT_POINTS`] samples.
    recent: VecDeque<(f64, f64)>,
    /// The job's latency target, if it has one.
    target: Option<Duration>,
    /// Steady-state samples at or under `target` (saturating).
    within: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new(Warmup::default())
    }
}

impl Latencies {
    /// Empty, with `warmup` deciding which samples are warm-up.
    pub fn new(warmup: Warmup) -> Self {
        Self {
            clock: WarmupClock::new(warmup),
            hists: None,
            recent: VecDeque::new(),
            target: None,
            within: 0,
        }
    }

    /// Set the latency target attainment is counted against (before the first sample).
    pub fn set_target(&mut self, target: Option<Duration>) {
        self.target = target;
    }

    /// The latency target, if the job has one.
    pub fn target(&self) -> Option<Duration> {
        self.target
    }

    /// Change which samples are warm-up (before the first sample; later ones keep their place).
    pub fn set_warmup(&mut self, warmup: Warmup) {
        self.clock.set(warmup);
    }

    /// Record `latency`, observed `at` (time since the jobs started).
    pub fn record(&mut self, at: Duration, latency: Duration) {
        if self.clock.seen() == 0 {
            // The whole window at once, exactly: it never reallocates (or overshoots) later.
            self.recent.reserve_exact(RECENT_POINTS);
        }
        let (warm_h, steady_h) = &mut **self.hists.get_or_insert_with(|| {
            Box::new((
                Histogram::new(Resolution::Micros),
                Histogram::new(Resolution::Micros),
            ))
        });
        if self.clock.tick(at) {
            warm_h.record(latency);
        } else {
            steady_h.record(latency);
            if self.target.is_some_and(|t| latency <= t) {
                self.within = self.within.saturating_add(1);
            }
        }
        if self.recent.len() == RECENT_POINTS {
            self.recent.pop_front();
        }
        self.recent
            .push_back((at.as_secs_f64(), latency.as_secs_f64() * 1000.0));
    }

    /// Steady-state percentiles (warm-up excluded), milliseconds.
    pub fn steady_ms(&self) -> Percentiles {
        self.hists.as_ref().map_or_else(Percentiles::default, |h| {
            h.1.percentiles(Duration::from_millis(1))
        })
    }

    /// Warm-up percentiles, milliseconds.
    pub fn warmup_ms(&self) -> Percentiles {
        self.hists.as_ref().map_or_else(Percentiles::default, |h| {
            h.0.percentiles(Duration::from_millis(1))
        })
    }

    /// Steady-state samples recorded (O(1), unlike [`Self::steady_ms`]).
    pub fn steady_len(&self) -> u64 {
        self.hists.as_ref().map_or(0, |h| h.1.len())
    }

    /// Steady-state samples within the target; `None` for a job without one.
    pub fn slo_within(&self) -> Option<u64> {
        self.target.map(|_| self.within)
    }

    /// Fraction (0 to 1) of the steady-state samples within the target; `None` for a job
    /// without a target, or before its first steady-state sample (nothing to attain yet).
    pub fn slo_attainment(&self) -> Option<f64> {
        let n = self.steady_len();
        (self.target.is_some() && n > 0).then(|| self.within as f64 / n as f64)
    }

    /// The 99th percentile (nearest rank) of the samples recorded in the `window` up to `now`
    /// (time since the jobs started, as given to [`Self::record`]), at most the last
    /// [`RECENT_WINDOW_CAP`] of them; `None` when there is none. Warm-up samples count: the
    /// scheduler reacts to what micro-batches see now. Cost: O(samples in the window).
    pub fn recent_p99(&self, now: Duration, window: Duration) -> Option<Duration> {
        let from = now.saturating_sub(window).as_secs_f64();
        let mut ms: Vec<f64> = self
            .recent
            .iter()
            .rev()
            .take(RECENT_WINDOW_CAP)
            .take_while(|(at, _)| *at >= from)
            .map(|(_, l)| *l)
            .collect();
        if ms.is_empty() {
            return None;
        }
        // Nearest rank: the smallest value with at least 99 % of the samples at or under it.
        let rank = (ms.len() * 99).div_ceil(100).max(1) - 1;
        let (_, p99, _) = ms.select_nth_unstable_by(rank, f64::total_cmp);
        // Back from ms without float rounding of the seconds (2 ms stays exactly 2 ms).
        Some(Duration::from_nanos((*p99 * 1e6).round() as u64))
    }

    /// Samples recorded, warm-up and steady-state.
    pub fn len(&self) -> u64 {
        self.clock.seen()
    }

    /// Whether none were recorded.
    pub fn is_empty(&self) -> bool {
        self.clock.seen() == 0
    }

    /// The recent window, oldest first: (seconds since the jobs started, latency ms) of the
    /// last [`RECENT_POINTS`] samples.
    pub fn recent(&self) -> Vec<(f64, f64)> {
        self.recent.iter().copied().collect()
    }

    /// Points the recent window holds now (at most [`RECENT_POINTS`]).
    pub fn recent_len(&self) -> usize {
        self.recent.len()
    }

    /// Bytes held on the heap: nothing before the first sample; from it on, both histograms
    /// and the recent window at its full capacity, a constant.
    pub fn heap_bytes(&self) -> usize {
        self.hists
            .as_ref()
            .map_or(0, |h| h.0.heap_bytes() + h.1.heap_bytes())
            + self.recent.capacity() * std::mem::size_of::<(f64, f64)>()
    }
}
