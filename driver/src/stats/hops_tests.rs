//! Tests of the per-hop latency attribution: the arithmetic, its bounds, and the per-job
//! statistics.

use super::*;
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn marks() -> DriverMarks {
    DriverMarks {
        due: ms(100),
        planned: ms(101),
        submitted: ms(103),
        launched: ms(104),
        received: ms(124),
        committed: ms(126),
    }
}

fn exec(core_wait: u64, core_start: u64, first: u64, process: u64) -> ExecutorHops {
    ExecutorHops {
        core_wait: ms(core_wait),
        core_start: ms(core_start),
        first_record: ms(first),
        process: ms(process),
    }
}

#[test]
fn hops_are_consecutive_and_sum_to_the_end_to_end_latency() {
    let b = attribute(&marks(), Some(&exec(5, 1, 2, 9)));
    let got: Vec<_> = Hop::ALL.iter().map(|h| b.get(*h).unwrap()).collect();
    // trigger, upstream, schedule, network, core_wait, core_start, first_record, process, commit
    let want = [1, 2, 1, 3, 5, 1, 2, 9, 2].map(ms);
    assert_eq!(got, want);
    assert_eq!(b.known_total(), ms(26), "= committed - due");
}

#[test]
fn the_network_share_is_free_of_clock_skew() {
    // The executor's clock is far ahead of (or behind) the driver's: only durations cross the
    // wire, so the derivation is the same whatever the offset. Same executor hops, driver
    // points shifted by an hour: the same breakdown.
    let e = exec(5, 1, 2, 9);
    let mut shifted = marks();
    for t in [
        &mut shifted.due,
        &mut shifted.planned,
        &mut shifted.submitted,
        &mut shifted.launched,
        &mut shifted.received,
        &mut shifted.committed,
    ] {
        *t += Duration::from_secs(3600);
    }
    assert_eq!(attribute(&marks(), Some(&e)), attribute(&shifted, Some(&e)));
    // network = (received - launched) - executor total = 20 - 17.
    assert_eq!(attribute(&marks(), Some(&e)).get(Hop::Network), Some(ms(3)));
}

#[test]
fn bogus_executor_values_saturate_at_what_the_driver_saw() {
    let max = Duration::from_nanos(u64::MAX);
    let bogus = ExecutorHops {
        core_wait: ms(15),
        core_start: max,
        first_record: max,
        process: max,
    };
    let b = attribute(&marks(), Some(&bogus));
    assert_eq!(b.get(Hop::CoreWait), Some(ms(15)));
    assert_eq!(
        b.get(Hop::CoreStart),
        Some(ms(5)),
        "what was left of the 20 ms"
    );
    assert_eq!(b.get(Hop::FirstRecord), Some(Duration::ZERO));
    assert_eq!(b.get(Hop::Process), Some(Duration::ZERO));
    assert_eq!(b.get(Hop::Network), Some(Duration::ZERO), "never negative");
    assert_eq!(b.known_total(), ms(26), "still the end-to-end latency");
    // From the wire: u64::MAX nanoseconds convert without overflow.
    let wire = neptune_proto::TaskTiming {
        queued_ns: u64::MAX,
        start_ns: u64::MAX,
        first_record_ns: u64::MAX,
        process_ns: u64::MAX,
    };
    let b = attribute(&marks(), Some(&ExecutorHops::from(&wire)));
    assert_eq!(b.get(Hop::CoreWait), Some(ms(20)));
    assert_eq!(b.known_total(), ms(26));
}

#[test]
fn driver_points_out_of_order_count_as_zero_length_hops() {
    let m = DriverMarks {
        due: ms(10),
        planned: ms(5), // before due: a zero trigger
        submitted: ms(12),
        launched: ms(11), // before its submission
        received: ms(20),
        committed: ms(19), // before the update
    };
    let b = attribute(&m, Some(&exec(1, 1, 1, 1)));
    assert_eq!(b.get(Hop::Trigger), Some(Duration::ZERO));
    assert_eq!(b.get(Hop::Schedule), Some(Duration::ZERO));
    assert_eq!(b.get(Hop::Commit), Some(Duration::ZERO));
    assert_eq!(b.known_total(), ms(10), "due 10 → update 20");
}

#[test]
fn an_old_executor_leaves_its_hops_and_the_network_unknown() {
    let b = attribute(&marks(), None);
    for h in [
        Hop::Network,
        Hop::CoreWait,
        Hop::CoreStart,
        Hop::FirstRecord,
        Hop::Process,
    ] {
        assert_eq!(b.get(h), None, "{h:?}");
    }
    assert_eq!(b.get(Hop::Trigger), Some(ms(1)));
    assert_eq!(b.get(Hop::Commit), Some(ms(2)));
    let mut l = HopLatencies::new(Warmup::NONE);
    l.record(ms(1), &b);
    let s = l.steady_ms();
    let by = |name: &str| s.iter().find(|h| h.hop == name).unwrap().ms.count;
    assert_eq!(
        (by("trigger"), by("network")),
        (1, 0),
        "unknown hops are not recorded"
    );
}

#[test]
fn per_job_hop_statistics_keep_warm_up_apart_in_constant_memory() {
    let mut l = HopLatencies::new(Warmup {
        duration: Duration::ZERO,
        runs: 2,
    });
    assert!(l.is_empty());
    assert_eq!(l.heap_bytes(), 0);
    assert!(l.steady_ms().is_empty());
    let slow = attribute(&marks(), Some(&exec(15, 1, 2, 1)));
    let fast = attribute(&marks(), Some(&exec(1, 1, 2, 1)));
    l.record(ms(0), &slow);
    let bytes = l.heap_bytes();
    assert!(bytes > 0);
    l.record(ms(1), &slow);
    for i in 0..100 {
        l.record(ms(2 + i), &fast);
    }
    assert_eq!(l.len(), 102);
    assert_eq!(l.heap_bytes(), bytes, "recording never allocates");
    let s = l.steady_ms();
    let names: Vec<_> = s.iter().map(|h| h.hop.as_str()).collect();
    assert_eq!(names, Hop::ALL.map(Hop::as_str), "path order");
    let wait = &s[Hop::CoreWait as usize].ms;
    assert_eq!(
        wait.count, 100,
        "the two warm-up micro-batches are left out"
    );
    assert!((wait.max - 1.0).abs() < 0.01, "{wait:?}");
    let json = serde_json::to_value(&s[0]).unwrap();
    assert_eq!(json["hop"], "trigger");
    assert!(
        json["p99"].is_number(),
        "percentiles sit beside the name: {json}"
    );
}
