//! The engine's one statistics type: fixed-size latency histograms (HdrHistogram, 3 significant
//! digits) and the percentiles they report, for `/status`, `neptune local --report`, the bench and
//! the simulator.
//!
//! Why histograms: the driver records a latency per micro-batch for as long as a stream job runs
//! (at a 5 ms interval, 720,000 an hour). Keeping every sample (as the driver once did) grows
//! without bound and makes every status tick copy and sort them all. A [`Histogram`] is
//! allocated once at its full size (its value range is fixed, auto-resize is off) and recording
//! into it never allocates, so memory is constant whatever the run length; percentiles are read
//! with one pass over its buckets, never by sorting samples. The price is precision: a reported
//! percentile is the upper end of its bucket, within 0.1 % of the true sample value (3
//! significant digits). Mean and maximum are exact (kept beside the buckets).
//!
//! [`Latencies`] adds what the latency reports need on top: warm-up samples (a job's first
//! micro-batches: JIT-less but cold caches, connections being opened, executors still
//! registering) recorded apart so they do not skew steady-state percentiles, and a bounded
//! window of the most recent raw points for plots. [`HopLatencies`] (`hops.rs`) attributes each
//! stream micro-batch's latency to the hops of its path and keeps a histogram per hop.

mod hops;
#[cfg(test)]
mod hops_tests;
mod latencies;
#[cfg(test)]
mod tests;

pub use hops::{
    Breakdown, DriverMarks, ExecutorHops, HOPS, Hop, HopLatencies, HopSummary, attribute,
};
pub use latencies::{Latencies, RECENT_POINTS, RECENT_WINDOW_CAP, Warmup, WarmupClock};

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Significant decimal digits a [`Histogram`] keeps: values are exact to within 0.1 %.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Largest latency a [`Histogram`] tells apart; longer ones are recorded as this (and reported
/// as a maximum of at least this). One hour: far beyond any micro-batch or suspension a healthy
/// job sees.
pub const MAX_TRACKED: Duration = Duration::from_secs(3600);

/// Count, percentiles, maximum and mean of one histogram, in the unit its field name says
/// (`latency_ms`: milliseconds; `suspend_latency_us`: microseconds). All zero when empty.
///
/// The JSON field names `p50`, `p95`, `p99` and `max` are the ones consumers (the operator's
/// status reader, the bench) have always parsed; `count`, `p99_9` and `mean` were added beside
/// them. Deserializing accepts documents without the new fields.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Maximum (exact).
    pub max: f64,
    /// Arithmetic mean (exact).
    pub mean: f64,
}

/// How finely a [`Histogram`] records: its integer unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Microseconds: micro-batch latencies (milliseconds and up).
    Micros,
    /// Nanoseconds: executor-measured suspend latencies (a few microseconds).
    Nanos,
}

impl Resolution {
    fn nanos(self) -> u64 {
        match self {
            Self::Micros => 1_000,
            Self::Nanos => 1,
        }
    }
}

/// A fixed-size latency histogram. Memory is allocated once, in [`Histogram::new`]
/// ([`Histogram::heap_bytes`] tells how much) and never grows.
#[derive(Debug, Clone)]
pub struct Histogram {
    h: hdrhistogram::Histogram<u64>,
    resolution: Resolution,
    /// Exact largest value recorded (the buckets only know it to 3 digits), in `resolution`.
    max: u64,
    /// Exact sum of the values recorded, in `resolution` (u128: 2^64 samples of an hour in
    /// nanoseconds fit).
    sum: u128,
}

impl Histogram {
    /// An empty histogram recording at `resolution`, from one unit to [`MAX_TRACKED`].
    pub fn new(resolution: Resolution) -> Self {
        let high = u64::try_from(MAX_TRACKED.as_nanos()).expect("an hour of ns fits u64")
            / resolution.nanos();
        let h = hdrhistogram::Histogram::new_with_bounds(1, high, SIGNIFICANT_DIGITS)
            .expect("constant bounds are valid");
        Self {
            h,
            resolution,
            max: 0,
            sum: 0,
        }
    }

    /// Record one latency. Past [`MAX_TRACKED`] it is recorded as [`MAX_TRACKED`]; counts
    /// saturate rather than wrap.
    pub fn record(&mut self, latency: Duration) {
        let v = u64::try_from(latency.as_nanos() / u128::from(self.resolution.nanos()))
            .unwrap_or(u64::MAX)
            .min(self.h.high());
        self.h.saturating_record(v);
        self.max = self.max.max(v);
        self.sum = self.sum.saturating_add(u128::from(v));
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.h.len()
    }

    /// Whether none were recorded.
    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    /// Summary in units of `unit` (e.g. `Duration::from_millis(1)` for milliseconds), read in
    /// one pass over the buckets.
    pub fn percentiles(&self, unit: Duration) -> Percentiles {
        let n = self.h.len();
        if n == 0 {
            return Percentiles::default();
        }
        // Units of `resolution` per output unit (ms from µs: 1000).
        let per = unit.as_nanos() as f64 / self.resolution.nanos() as f64;
        let mut q = self
            .h
            .value_at_quantiles([0.50, 0.95, 0.99, 0.999])
            // A bucket's upper end may pass the exact maximum: never report more than it.
            .map(|v| v.min(self.max) as f64 / per);
        let mut next = || q.next().unwrap_or_default();
        Percentiles {
            count: n,
            p50: next(),
            p95: next(),
            p99: next(),
            p99_9: next(),
            max: self.max as f64 / per,
            mean: self.sum as f64 / n as f64 / per,
        }
    }

    /// Bytes this histogram holds on the heap (its bucket counts); constant from creation on.
    pub fn heap_bytes(&self) -> usize {
        self.h.distinct_values() * std::mem::size_of::<u64>()
    }
}
