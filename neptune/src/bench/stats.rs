//! The bench's statistics over a handful of figures: medians over repetitions, the sample-count
//! gate that keeps a percentile from being reported when it would only be the maximum, and the
//! percentile-bootstrap confidence interval of a median over repetitions.
//!
//! Latency percentiles themselves come from the driver's histograms (`neptune_driver::stats`);
//! what is here works on one figure per run (a few to a few dozen values), where sorting is exact
//! and cheap.

use rand::{Rng as _, SeedableRng as _};

/// Seed of the bootstrap's RNG: fixed, so the same runs give the same intervals.
pub const BOOTSTRAP_SEED: u64 = 0x006e_6570_7475_6e65; // "neptune"

/// Bootstrap resamples: enough that the 2.5 % and 97.5 % points move by less than the
/// figures' own precision from one seed to another.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// Confidence level of the reported intervals.
pub const CONFIDENCE: f64 = 0.95;

/// Fewest repetitions an interval is computed from: with one or two, every resample's median is
/// one of the two values or their mean, and the "interval" says nothing about the spread.
pub const MIN_REPS_FOR_INTERVAL: usize = 3;

/// Median (mean of the middle two for an even count); 0 for none.
///
/// Of a handful of per-repetition figures, not of a latency stream: sorting a few values is
/// exact where a histogram would round them to 3 digits.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Fewest samples for which quantile `q` is not simply the maximum: the histogram reports the
/// value of rank `ceil(q * n)`, below the largest (rank `n`) only when `n >= 1 / (1 - q)`. So
/// p99 needs 100 samples and p99.9 needs 1,000.
pub fn min_samples(q: f64) -> u64 {
    if q >= 1.0 {
        return u64::MAX;
    }
    let n = 1.0 / (1.0 - q);
    // 1 / (1 - 0.999) is 1000.0000000000009 in floating point: an integer within rounding
    // error is that integer, not the next one.
    if (n - n.round()).abs() < 1e-6 {
        n.round() as u64
    } else {
        n.ceil() as u64
    }
}

/// `value`, the `q` quantile of `count` samples, or `None` when there are too few samples for it
/// to be more than the maximum under another name.
pub fn gated(value: f64, count: u64, q: f64) -> Option<f64> {
    (count >= min_samples(q)).then_some(value)
}

/// The percentile-bootstrap confidence interval (at [`CONFIDENCE`]) of the median of `values`:
/// resample the values with replacement [`BOOTSTRAP_RESAMPLES`] times with a ChaCha RNG seeded
/// with `seed`, take each resample's median, and report the 2.5 % and 97.5 % points of those.
/// `None` with fewer than [`MIN_REPS_FOR_INTERVAL`] values.
///
/// The resampling unit is the repetition: its figure (a paired ratio) already holds the
/// within-run noise, and repetitions are what is independent (each ran its configurations back
/// to back, in rotated order).
pub fn bootstrap_median_ci(values: &[f64], seed: u64) -> Option<(f64, f64)> {
    let n = values.len();
    if n < MIN_REPS_FOR_INTERVAL {
        return None;
    }
    // ChaCha8 rather than `StdRng`: its stream is fixed by its specification, so the intervals
    // stay the same across `rand` versions.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut medians = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let mut sample = vec![0.0; n];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        for s in &mut sample {
            *s = values[rng.random_range(0..n)];
        }
        medians.push(median(sample.clone()));
    }
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let last = BOOTSTRAP_RESAMPLES - 1;
    let lo = ((tail * BOOTSTRAP_RESAMPLES as f64).floor() as usize).min(last);
    let hi = (((1.0 - tail) * BOOTSTRAP_RESAMPLES as f64).ceil() as usize)
        .saturating_sub(1)
        .min(last);
    Some((medians[lo], medians[hi]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_needs_enough_samples_not_to_be_the_maximum() {
        assert_eq!(min_samples(0.5), 2);
        assert_eq!(min_samples(0.95), 20);
        assert_eq!(min_samples(0.99), 100);
        assert_eq!(min_samples(0.999), 1000);
        assert_eq!(
            gated(12.0, 99, 0.99),
            None,
            "p99 of 99 samples is their max"
        );
        assert_eq!(gated(12.0, 100, 0.99), Some(12.0));
        assert_eq!(gated(30.0, 350, 0.999), None);
        assert_eq!(gated(30.0, 1000, 0.999), Some(30.0));
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn the_bootstrap_interval_of_known_data() {
        // Resamples of three distinct values: the median is the smallest with probability
        // 7/27 (two or three draws of it), far above 2.5 %, so the interval is the full range.
        assert_eq!(
            bootstrap_median_ci(&[1.0, 2.0, 3.0], BOOTSTRAP_SEED),
            Some((1.0, 3.0))
        );
        // No spread, no width.
        assert_eq!(
            bootstrap_median_ci(&[2.5; 5], BOOTSTRAP_SEED),
            Some((2.5, 2.5))
        );
        // Twenty repetitions, one wild: the median's interval stays among the ordinary ones.
        // For 1..=19 and 1000 the 2.5 % and 97.5 % points of the resampled median are 6.5 and
        // 14.5 (an independent simulation of 100,000 resamples; the binomial law of the 10th
        // and 11th order statistics agrees): 10,000 resamples land within a half-step.
        let mut v: Vec<f64> = (1..=19).map(f64::from).collect();
        v.push(1000.0);
        let (lo, hi) = bootstrap_median_ci(&v, BOOTSTRAP_SEED).unwrap();
        assert!(
            (6.0..=7.0).contains(&lo) && (14.0..=15.0).contains(&hi),
            "{lo} {hi}"
        );
        assert!(lo <= median(v.clone()) && median(v.clone()) <= hi);
    }

    #[test]
    fn the_bootstrap_is_reproducible_and_needs_three_repetitions() {
        let v = [0.9, 1.1, 1.0, 1.3, 0.95];
        assert_eq!(
            bootstrap_median_ci(&v, BOOTSTRAP_SEED),
            bootstrap_median_ci(&v, BOOTSTRAP_SEED)
        );
        assert_eq!(bootstrap_median_ci(&[1.0, 2.0], BOOTSTRAP_SEED), None);
        assert_eq!(bootstrap_median_ci(&[], BOOTSTRAP_SEED), None);
    }
}
