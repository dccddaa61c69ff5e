//! Range partitioning pieces on their own: sample sizes, the reservoir, boundary picking and
//! the partitioner's ordering guarantee.

use super::*;

#[test]
fn sample_size_follows_the_reduce_partitions_and_splits_over_the_inputs() {
    assert_eq!(sample_size(4, 1), 240);
    assert_eq!(sample_size(4, 3), 80);
    assert_eq!(
        sample_size(1, 1000),
        1,
        "at least one key per input partition"
    );
    assert_eq!(sample_size(0, 0), 60, "zero counts are treated as one");
    assert_eq!(sample_size(u32::MAX, 1), MAX_SAMPLE as usize);
}

#[test]
fn the_reservoir_is_bounded_deterministic_and_weighted() {
    let sample = |seed| {
        let mut r = Reservoir::new(50, seed);
        for k in 0..10_000u64 {
            r.offer(&k);
        }
        (r.weight(), r.into_keys())
    };
    let (w, a) = sample(7);
    assert_eq!(a.len(), 50);
    assert!((w - 200.0).abs() < 1e-9, "{w}");
    assert_eq!(a, sample(7).1, "same seed, same sample");
    assert_ne!(a, sample(8).1, "another seed, another sample");
    assert!(a.iter().any(|&k| k >= 5000), "later keys are sampled too");

    let mut small = Reservoir::new(50, 1);
    for k in 0..10u64 {
        small.offer(&k);
    }
    assert_eq!(small.weight(), 1.0);
    assert_eq!(small.into_keys(), (0..10).collect::<Vec<_>>());
    assert_eq!(Reservoir::<u64>::new(5, 1).weight(), 0.0);
}

#[test]
fn boundaries_are_weighted_quantiles() {
    let keys = (0..100u64).map(|k| (k, 1.0));
    assert_eq!(boundaries(keys, 100.0, 4), vec![24, 49, 74]);
    // The same keys, but the upper half weighs three times as much.
    let keys = (0..100u64).map(|k| (k, if k < 50 { 1.0 } else { 3.0 }));
    assert_eq!(boundaries(keys, 200.0, 4), vec![49, 66, 83]);
}

#[test]
fn a_heavy_key_repeats_as_a_boundary_and_no_input_gives_none() {
    let keys = [(1u64, 1.0), (5, 8.0), (9, 1.0)].into_iter();
    assert_eq!(boundaries(keys, 10.0, 5), vec![5, 5, 5, 5]);
    let keys = [(3u64, 1.0)].into_iter();
    assert_eq!(boundaries(keys, 1.0, 3), vec![3, 3]);
    assert!(boundaries(std::iter::empty::<(u64, f64)>(), 0.0, 3).is_empty());
    assert!(boundaries([(1u64, 1.0)].into_iter(), 1.0, 1).is_empty());
}

/// Partition every key of `keys` (in turn) and check partition `i`'s keys are all `<=` those of
/// partition `i + 1`; returns how many keys each partition got.
fn check_order(bounds: Vec<u64>, keys: &[u64]) -> Vec<usize> {
    let mut ranges = RangePartitioner::new(bounds, 0);
    let n = ranges.partitions() as usize;
    let mut parts: Vec<Vec<u64>> = vec![Vec::new(); n];
    for &k in keys {
        parts[ranges.partition(&k) as usize].push(k);
    }
    let nonempty: Vec<&Vec<u64>> = parts.iter().filter(|p| !p.is_empty()).collect();
    for w in nonempty.windows(2) {
        let max = w[0].iter().max().unwrap();
        let min = w[1].iter().min().unwrap();
        assert!(max <= min, "{max} in an earlier partition than {min}");
    }
    parts.iter().map(Vec::len).collect()
}

#[test]
fn keys_go_to_their_range_in_order() {
    let keys: Vec<u64> = (0..100).collect();
    assert_eq!(check_order(vec![24, 49, 74], &keys), vec![25, 25, 25, 25]);
    assert_eq!(check_order(vec![], &keys), vec![100]);
    let mut ranges = RangePartitioner::new(vec![24, 49, 74], 0);
    for _ in 0..3 {
        assert_eq!(
            ranges.partition(&49),
            1,
            "a key equal to one boundary stays together"
        );
    }
}

#[test]
fn a_key_repeated_as_a_boundary_is_dealt_over_its_partitions_in_order() {
    // Key 5 is boundaries 1..=3, so it may go to partitions 1..=4; 1 and 4 share it with others.
    let mut keys = vec![0u64, 3, 9, 5, 7];
    keys.extend(std::iter::repeat_n(5, 400));
    let sizes = check_order(vec![2, 5, 5, 5, 8], &keys);
    assert_eq!(sizes.iter().sum::<usize>(), keys.len());
    assert_eq!(sizes[0], 1, "0 alone");
    assert_eq!(sizes[5], 1, "9 alone");
    for (p, &n) in sizes.iter().enumerate().take(5).skip(1) {
        assert!(n >= 100, "partition {p} got its share of key 5: {sizes:?}");
    }
}

#[test]
fn every_key_of_one_value_spreads_over_every_partition_when_it_is_every_boundary() {
    let sizes = check_order(vec![7, 7, 7], &[7; 1000]);
    assert_eq!(sizes, vec![250, 250, 250, 250]);
}
