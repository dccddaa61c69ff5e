//! Tests of the statistics type: known distributions, warm-up separation, bounded memory.

use super::*;
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn close(a: f64, b: f64) -> bool {
    // 3 significant digits: within 0.1 % (plus rounding of the unit conversion).
    (a - b).abs() <= b.abs() * 1e-3 + 1e-9
}

#[test]
fn uniform_distribution_reports_nearest_rank_percentiles() {
    let mut h = Histogram::new(Resolution::Micros);
    for i in 1..=1000u64 {
        h.record(Duration::from_millis(i));
    }
    let p = h.percentiles(MS);
    assert_eq!(p.count, 1000);
    for (got, want) in [
        (p.p50, 500.0),
        (p.p95, 950.0),
        (p.p99, 990.0),
        (p.p99_9, 999.0),
        (p.max, 1000.0),
        (p.mean, 500.5),
    ] {
        assert!(close(got, want), "{got} vs {want} in {p:?}");
    }
    assert_eq!(p.max, 1000.0, "the maximum is exact");
    assert_eq!(p.mean, 500.5, "the mean is exact");
    assert_eq!(
        Histogram::new(Resolution::Micros).percentiles(MS),
        Percentiles::default()
    );
}

#[test]
fn a_skewed_distribution_puts_the_tail_in_the_high_percentiles() {
    // 98.95 % at 2 ms, 1 % at 40 ms, 0.05 % at 900 ms.
    let mut h = Histogram::new(Resolution::Micros);
    for i in 0..100_000u32 {
        let ms = match i % 2000 {
            0 => 900,
            1..=20 => 40,
            _ => 2,
        };
        h.record(Duration::from_millis(ms));
    }
    let p = h.percentiles(MS);
    assert!(close(p.p50, 2.0) && close(p.p95, 2.0), "{p:?}");
    assert!(close(p.p99, 40.0) && close(p.p99_9, 40.0), "{p:?}");
    assert_eq!(p.max, 900.0);
}

#[test]
fn units_convert_and_huge_values_saturate() {
    let mut h = Histogram::new(Resolution::Nanos);
    h.record(Duration::from_nanos(3_500));
    let us = h.percentiles(Duration::from_micros(1));
    assert!(close(us.p50, 3.5), "{us:?}");
    let mut h = Histogram::new(Resolution::Micros);
    h.record(Duration::from_secs(10 * 3600));
    assert_eq!(h.percentiles(Duration::from_secs(1)).max, 3600.0);
    assert_eq!(h.len(), 1);
}

#[test]
fn warmup_samples_are_kept_apart_by_time() {
    let mut l = Latencies::new(Warmup::default());
    // First sample at t = 5 s; the next second is warm-up with slow (100 ms) batches.
    for i in 0..200u64 {
        let at = Duration::from_secs(5) + Duration::from_millis(i * 5);
        l.record(at, Duration::from_millis(100));
    }
    for i in 200..1200u64 {
        let at = Duration::from_secs(5) + Duration::from_millis(i * 5);
        l.record(at, Duration::from_millis(3));
    }
    let (warm, steady) = (l.warmup_ms(), l.steady_ms());
    assert_eq!((warm.count, steady.count), (200, 1000));
    assert!(close(warm.p50, 100.0), "{warm:?}");
    assert_eq!(
        steady.max, 3.0,
        "no warm-up sample leaks into the steady state"
    );
    assert_eq!(l.len(), 1200);
}

#[test]
fn warmup_by_count_and_none() {
    let mut l = Latencies::new(Warmup {
        duration: Duration::ZERO,
        runs: 10,
    });
    for i in 0..30u64 {
        l.record(Duration::from_secs(i), Duration::from_millis(i + 1));
    }
    assert_eq!((l.warmup_ms().count, l.steady_ms().count), (10, 20));
    assert_eq!(l.warmup_ms().max, 10.0);
    let mut l = Latencies::new(Warmup::NONE);
    l.record(Duration::ZERO, MS);
    assert_eq!((l.warmup_ms().count, l.steady_ms().count), (0, 1));
}

#[test]
fn a_million_samples_do_not_grow_memory() {
    let mut l = Latencies::new(Warmup::NONE);
    assert_eq!(l.heap_bytes(), 0, "nothing before the first sample");
    let mut h = Histogram::new(Resolution::Nanos);
    let before_h = h.heap_bytes();
    l.record(Duration::ZERO, MS);
    let before = l.heap_bytes();
    let mut x = 12345u64;
    for i in 0..1_000_000u64 {
        // A spread of values (xorshift), so every bucket range is touched.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let d = Duration::from_micros(x % 5_000_000);
        l.record(Duration::from_micros(i * 5000), d);
        h.record(d);
    }
    assert_eq!(l.heap_bytes(), before, "recording never allocates");
    assert_eq!(h.heap_bytes(), before_h);
    assert_eq!(l.recent_len(), RECENT_POINTS);
    assert_eq!(l.steady_ms().count, 1_000_001);
    // Constant and small: two histograms and the window, well under a megabyte.
    assert!(before < 1 << 20, "{before} bytes");
    let recent = l.recent();
    assert_eq!(recent.len(), RECENT_POINTS);
    assert!(recent.windows(2).all(|w| w[0].0 < w[1].0), "oldest first");
    assert_eq!(recent[RECENT_POINTS - 1].0, 999_999.0 * 0.005);
}

#[test]
fn percentiles_accept_older_documents() {
    let p: Percentiles =
        serde_json::from_str(r#"{"p50":3.0,"p95":8.0,"p99":12.5,"max":20.0}"#).unwrap();
    assert_eq!((p.p99, p.count, p.p99_9), (12.5, 0, 0.0));
    let v = serde_json::to_value(p).unwrap();
    for k in ["count", "p50", "p95", "p99", "p99_9", "max", "mean"] {
        assert!(v.get(k).is_some(), "{k} in {v}");
    }
}

#[test]
fn slo_attainment_counts_steady_micro_batches_within_the_target() {
    let mut l = Latencies::new(Warmup {
        duration: Duration::ZERO,
        runs: 10,
    });
    l.set_target(Some(50 * MS));
    assert_eq!(l.slo_within(), Some(0));
    assert_eq!(
        l.slo_attainment(),
        None,
        "nothing to attain before a sample"
    );
    // Warm-up: 10 slow micro-batches, left out.
    for i in 0..10u32 {
        l.record(i * 10 * MS, 500 * MS);
    }
    assert_eq!(l.slo_attainment(), None, "warm-up samples do not count");
    // Steady state: 990 at 20 ms, 5 exactly at the target (within), 5 just over it.
    for i in 0..1000u32 {
        let latency = match i {
            0..5 => 50 * MS,
            5..10 => 50 * MS + Duration::from_micros(1),
            _ => 20 * MS,
        };
        l.record(Duration::from_secs(1) + i * 10 * MS, latency);
    }
    assert_eq!(l.steady_len(), 1000);
    assert_eq!(l.slo_within(), Some(995), "at the target is within it");
    assert_eq!(l.slo_attainment(), Some(0.995));

    let mut none = Latencies::new(Warmup::NONE);
    none.record(Duration::ZERO, 10 * MS);
    assert_eq!(
        (none.target(), none.slo_within(), none.slo_attainment()),
        (None, None, None),
        "a job without a target has no attainment at all (not 0, not 100 %)"
    );
}

#[test]
fn recent_p99_reads_only_the_window() {
    let mut l = Latencies::new(Warmup::NONE);
    assert_eq!(
        l.recent_p99(Duration::from_secs(1), Duration::from_secs(1)),
        None
    );
    // 0-10 s: slow (100 ms); 10-20 s: 2 ms with one 30 ms micro-batch in every 100.
    for i in 0..1000u32 {
        l.record(i * 10 * MS, 100 * MS);
    }
    for i in 0..1000u32 {
        let latency = if i % 100 == 99 { 30 * MS } else { 2 * MS };
        l.record(Duration::from_secs(10) + i * 10 * MS, latency);
    }
    let now = Duration::from_secs(20);
    let p99 = |window| l.recent_p99(now, window).unwrap();
    // The last 5 s: 500 samples, 5 at 30 ms: the 495th is 2 ms, the 496th 30 ms.
    assert_eq!(p99(Duration::from_secs(5)), 2 * MS);
    // The last 15 s include the slow ones.
    assert_eq!(p99(Duration::from_secs(15)), 100 * MS);
    // A window with nothing in it.
    assert_eq!(
        l.recent_p99(Duration::from_secs(60), Duration::from_secs(5)),
        None
    );
}
