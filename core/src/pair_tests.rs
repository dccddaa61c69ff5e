//! Key-based operators evaluated in-process: every stage of the plan runs in order against a
//! [`LocalBlocks`] store, as executors would run them against theirs.

use crate::action::Action;
use crate::dataset::Dataset;
use crate::ids::{JobKind, TaskId};
use crate::shuffle::{LocalBlocks, MapLoc, ShuffleRead};
use crate::task::TaskContext;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Run every stage of `action`'s plan in-process and merge the last stage's results.
pub(crate) fn run_plan<R: 'static>(action: &Action<R>, blocks: &Arc<LocalBlocks>) -> R {
    let stages = action.stages();
    let mut last = Vec::new();
    for (s, stage) in stages.iter().enumerate() {
        let reads: Vec<ShuffleRead> = stage
            .reads
            .iter()
            .map(|&r| ShuffleRead {
                stage: r,
                maps: (0..stages[r as usize].partitions)
                    .map(|_| MapLoc {
                        executor: "local".into(),
                        addr: String::new(),
                        max_block: u64::MAX,
                    })
                    .collect(),
            })
            .collect();
        last = (0..stage.partitions)
            .map(|p| {
                let ctx = TaskContext::detached(
                    TaskId {
                        job: 0,
                        run: 0,
                        stage: s as u32,
                        partition: p,
                    },
                    JobKind::Batch,
                );
                ctx.set_shuffle(blocks.clone(), reads.clone());
                (stage.run_task)(&ctx).unwrap_or_else(|e| panic!("stage {s} task {p}: {e}"))
            })
            .collect();
    }
    (action.merge_fn())(last).unwrap()
}

fn words() -> Dataset<String> {
    let text = [
        "the quick brown fox",
        "jumps over the lazy dog",
        "the dog barks",
    ];
    Dataset::from_fn(3, move |ctx| {
        Box::new(
            text[ctx.partition() as usize]
                .split(' ')
                .map(str::to_string)
                .collect::<Vec<_>>()
                .into_iter(),
        )
    })
}

fn store(budget: u64) -> (tempfile::TempDir, Arc<LocalBlocks>) {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(LocalBlocks::new(dir.path(), budget));
    (dir, b)
}

#[test]
fn reduce_by_key_counts_words_across_partitions() {
    let (_d, blocks) = store(1 << 20);
    let counts = words().map(|w| (w, 1u64)).reduce_by_key(2, |a, b| a + b);
    assert_eq!(counts.lineage().len(), 1, "one map stage before the reduce");
    let got: BTreeMap<String, u64> = run_plan(&counts.collect(), &blocks).into_iter().collect();
    assert_eq!(got["the"], 3);
    assert_eq!(got["dog"], 2);
    assert_eq!(got["fox"], 1);
    assert_eq!(got.values().sum::<u64>(), 12);
}

#[test]
fn aggregation_beyond_the_budget_spills_and_gives_the_same_result() {
    let (_d, blocks) = store(1);
    let ds = Dataset::from_fn(2, |ctx| {
        let base = u64::from(ctx.partition()) * 5000;
        Box::new((base..base + 10_000).map(|x| (x % 7000, 1u64)))
    });
    let got: BTreeMap<u64, u64> = run_plan(&ds.reduce_by_key(3, |a, b| a + b).collect(), &blocks)
        .into_iter()
        .collect();
    assert_eq!(got.len(), 7000);
    assert_eq!(got.values().sum::<u64>(), 20_000);
    assert!(blocks.spilled() > 0, "a tiny budget must spill");
}

#[test]
fn group_by_key_distinct_and_chained_shuffles_compose() {
    let (_d, blocks) = store(1 << 20);
    let grouped = words()
        .map(|w| (w.len(), w))
        .distinct(2)
        .group_by_key(2)
        .map(|(len, mut ws)| {
            ws.sort();
            (len, ws)
        });
    assert_eq!(grouped.lineage().len(), 2);
    let got: BTreeMap<usize, Vec<String>> =
        run_plan(&grouped.collect(), &blocks).into_iter().collect();
    assert_eq!(got[&3], vec!["dog", "fox", "the"]);
    assert_eq!(got[&5], vec!["barks", "brown", "jumps", "quick"]);
}

#[test]
fn join_pairs_values_of_keys_on_both_sides() {
    let (_d, blocks) = store(1 << 20);
    let counts = words().map(|w| (w, 1u64)).reduce_by_key(2, |a, b| a + b);
    let lengths = words().map(|w| (w.clone(), w.len() as u32)).distinct(3);
    let joined = counts.join(&lengths, 2);
    assert_eq!(
        joined.lineage().len(),
        4,
        "two map stages per side's lineage"
    );
    let got: BTreeMap<String, (u64, u32)> =
        run_plan(&joined.collect(), &blocks).into_iter().collect();
    assert_eq!(got["the"], (3, 3));
    assert_eq!(got["jumps"], (1, 5));
    assert_eq!(got.len(), 9);
}

/// Run `ds`'s plan and return its partitions' records, in partition order.
fn partitions_of<T>(ds: &Dataset<T>, blocks: &Arc<LocalBlocks>) -> Vec<Vec<T>>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    run_plan(
        &ds.action(|_, it| it.collect::<Vec<T>>(), |parts| parts),
        blocks,
    )
}

/// Assert `parts` is a total order by key (each partition sorted, and no key of a partition
/// greater than a key of a later one) holding exactly the records of `expected`.
fn assert_sorted_exactly<K, V>(parts: &[Vec<(K, V)>], mut expected: Vec<(K, V)>)
where
    K: Ord + Clone + std::fmt::Debug,
    V: Ord + Clone + std::fmt::Debug,
{
    let all: Vec<(K, V)> = parts.concat();
    if let Some(w) = all.windows(2).find(|w| w[0].0 > w[1].0) {
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        panic!("{:?} before {:?}; partition sizes {sizes:?}", w[0], w[1]);
    }
    let mut got = all;
    got.sort();
    expected.sort();
    assert_eq!(got.len(), expected.len(), "no record lost or duplicated");
    assert_eq!(got, expected);
}

/// Partitions holding at least one record of `key`.
fn partitions_holding<K: PartialEq, V>(parts: &[Vec<(K, V)>], key: &K) -> usize {
    parts
        .iter()
        .filter(|p| p.iter().any(|(k, _)| k == key))
        .count()
}

/// A dataset of `(key, value)` pairs and the records it holds.
type Keyed = (Dataset<(u64, u64)>, Vec<(u64, u64)>);

/// `n` records per partition over `partitions` partitions, record `i` of partition `p` being
/// `(key(p, i), p * n + i)` (values unique, so the multiset check sees every record).
fn keyed(partitions: u32, n: u64, key: fn(u64, u64) -> u64) -> Keyed {
    let ds = Dataset::from_fn(partitions, move |ctx| {
        let p = u64::from(ctx.partition());
        Box::new((0..n).map(move |i| (key(p, i), p * n + i)))
    });
    let all = (0..u64::from(partitions))
        .flat_map(|p| (0..n).map(move |i| (key(p, i), p * n + i)))
        .collect();
    (ds, all)
}

#[test]
fn sort_by_key_range_partitions_into_sorted_partitions_in_total_order() {
    let (_d, blocks) = store(1);
    let (ds, all) = keyed(3, 4000, |p, i| (i * 7919 + p * 13) % 5003);
    let sorted = ds.sort_by_key_into(4);
    assert_eq!(sorted.partitions(), 4);
    assert_eq!(
        sorted.lineage().len(),
        3,
        "sample, boundaries and partitioning map stages"
    );
    let parts = partitions_of(&sorted, &blocks);
    assert_eq!(parts.len(), 4);
    assert_sorted_exactly(&parts, all);
    for (i, p) in parts.iter().enumerate() {
        assert!(
            p.len() > 1500 && p.len() < 4500,
            "partition {i} holds {} of 12000 records: ranges follow the sample",
            p.len()
        );
    }
    assert!(
        blocks.spilled() > 0,
        "a tiny budget makes the reduce sort spill"
    );
}

#[test]
fn sort_by_key_spreads_a_heavy_key_over_several_partitions_and_stays_ordered() {
    let (_d, blocks) = store(1 << 20);
    let (ds, all) = keyed(4, 3000, |p, i| {
        if i % 10 == 0 {
            (i * 31 + p) % 1000
        } else {
            500
        }
    });
    let parts = partitions_of(&ds.sort_by_key_into(5), &blocks);
    assert_sorted_exactly(&parts, all);
    assert!(
        partitions_holding(&parts, &500) >= 3,
        "the key holding 90% of the records spans partitions: {:?}",
        parts.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let largest = parts.iter().map(Vec::len).max().unwrap();
    assert!(
        largest < 12_000 / 2,
        "no partition holds most records: {largest}"
    );
}

#[test]
fn sort_by_key_of_a_single_key_fills_every_partition() {
    let (_d, blocks) = store(1 << 20);
    let (ds, all) = keyed(2, 500, |_, _| 42);
    let parts = partitions_of(&ds.sort_by_key_into(4), &blocks);
    assert_sorted_exactly(&parts, all);
    assert!(
        parts.iter().all(|p| !p.is_empty()),
        "one key, dealt over all"
    );
}

#[test]
fn sort_by_key_into_more_partitions_than_keys_is_ordered_and_complete() {
    let (_d, blocks) = store(1 << 20);
    let (ds, all) = keyed(3, 200, |p, i| (p + i) % 3);
    let parts = partitions_of(&ds.sort_by_key_into(10), &blocks);
    assert_eq!(parts.len(), 10);
    assert_sorted_exactly(&parts, all);
}

#[test]
fn sort_by_key_of_an_empty_input_gives_empty_partitions() {
    let (_d, blocks) = store(1 << 20);
    let (ds, all) = keyed(3, 0, |_, i| i);
    assert!(all.is_empty());
    let parts = partitions_of(&ds.sort_by_key_into(4), &blocks);
    assert_eq!(parts, vec![Vec::new(); 4]);
}

#[test]
fn sort_by_key_defaults_to_the_input_partitions_and_one_partition_skips_sampling() {
    let (_d, blocks) = store(1);
    let (ds, all) = keyed(3, 1000, |p, i| (i * 7919 + p * 13) % 501);
    assert_eq!(ds.sort_by_key().partitions(), 3);
    let single = ds.sort_by_key_into(0);
    assert_eq!(single.partitions(), 1, "clamped to one");
    assert_eq!(single.lineage().len(), 1, "no sample or boundaries stage");
    let parts = partitions_of(&single, &blocks);
    assert_sorted_exactly(&parts, all);
}

#[test]
fn sort_by_key_after_a_shuffle_reads_its_input_and_its_boundaries() {
    let (_d, blocks) = store(1 << 20);
    let by_count = words()
        .map(|w| (w, 1u64))
        .reduce_by_key(2, |a, b| a + b)
        .map(|(w, n)| (n, w));
    let sorted = by_count.sort_by_key_into(3);
    assert_eq!(
        sorted.lineage().len(),
        4,
        "the reduce's map stage, then the sort's"
    );
    let parts = partitions_of(&sorted, &blocks);
    let expected: Vec<(u64, String)> = [
        (1, "barks"),
        (1, "brown"),
        (1, "fox"),
        (1, "jumps"),
        (1, "lazy"),
        (1, "over"),
        (1, "quick"),
        (2, "dog"),
        (3, "the"),
    ]
    .into_iter()
    .map(|(n, w)| (n, w.to_string()))
    .collect();
    assert_sorted_exactly(&parts, expected);
}

#[test]
fn sort_by_key_gives_the_same_partitions_when_recomputed() {
    let (ds, _) = keyed(3, 2000, |p, i| (i * 104_729 + p) % 777);
    let sorted = ds.sort_by_key_into(4);
    let (_d1, first) = store(1);
    let (_d2, second) = store(1 << 20);
    assert_eq!(
        partitions_of(&sorted, &first),
        partitions_of(&sorted, &second),
        "same sample, boundaries and order whatever the budget"
    );
}
