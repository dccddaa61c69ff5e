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

#[test]
fn sort_by_key_orders_every_record_by_key_in_one_partition() {
    let (_d, blocks) = store(1);
    let ds = Dataset::from_fn(3, |ctx| {
        let p = u64::from(ctx.partition());
        Box::new((0..1000u64).map(move |i| ((i * 7919 + p * 13) % 501, p)))
    });
    let sorted = ds.sort_by_key();
    assert_eq!(sorted.partitions(), 1);
    let got = run_plan(&sorted.collect(), &blocks);
    assert_eq!(got.len(), 3000, "no record lost or duplicated");
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "sorted by key");
    let mut values: Vec<(u64, u64)> = got;
    values.sort();
    let mut expected: Vec<(u64, u64)> = (0..3u64)
        .flat_map(|p| (0..1000u64).map(move |i| ((i * 7919 + p * 13) % 501, p)))
        .collect();
    expected.sort();
    assert_eq!(values, expected);
}
