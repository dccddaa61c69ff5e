//! `shuffle`: a two-stage batch job — generated `(key, 1)` records summed per key with
//! `reduce_by_key` — or, with `shuffle.op=sort`, generated `(key, random value)` records sorted
//! with the range-partitioned `sort_by_key_into`; plus an optional CPU-bound stream job that
//! preempts it. The workload for shuffle throughput, spill, sort and recovery tests.
//!
//! Keys: see the settings below (`neptune config --app shuffle`, `docs/config.md`), and the
//! per-job keys `jobs.{sum,sort,input,stream}.*`. The batch jobs run once unless
//! `jobs.<name>.runs` says otherwise. Their results — a [`KeyDigest`] for `sum`, a [`SortDigest`]
//! for `sort` — are the same for any placement, suspension or recovery of their tasks.

use super::StreamLoad;
use super::synthetic::burn;
use neptune_core::config::{Choice, ChoiceError, Flag, Meta, UInt};
use neptune_core::source::generate;
use neptune_core::{Action, App, Dataset};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Summary of a per-key sum: distinct keys, total of the sums, and a checksum over (key, sum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyDigest {
    /// Distinct keys.
    pub keys: u64,
    /// Sum of all values.
    pub total: u64,
    /// Wrapping sum of `mix(key) * sum`.
    pub checksum: u64,
}

/// What the batch job does with the generated records (config key `shuffle.op`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString, strum::VariantNames,
)]
#[strum(serialize_all = "lowercase", parse_err_ty = ChoiceError, parse_err_fn = op_err)]
pub enum Op {
    /// Sum the values of each key (`reduce_by_key`).
    Sum,
    /// Sort the records by key into range partitions (`sort_by_key_into`).
    Sort,
}

fn op_err(s: &str) -> ChoiceError {
    ChoiceError::of::<Op>(s)
}

/// Seed of the generated records.
pub static SEED: UInt = UInt::new(
    Meta::new("seed", "Seed of the generated records."),
    0,
    u64::MAX,
)
.default(42);
/// The batch operation.
pub static OP: Choice<Op> = Choice::new(
    Meta::new(
        "shuffle.op",
        "`sum`: job `sum` adds the values per key; `sort`: job `sort` range-sorts the records, and job `input` digests the unsorted records for checking it.",
    ),
    Op::Sum,
);
/// Total records.
pub static RECORDS: UInt = UInt::new(
    Meta::new("shuffle.records", "Generated records in total."),
    1,
    u64::MAX,
)
.default(1_000_000);
/// Distinct keys.
pub static KEYS: UInt = UInt::new(
    Meta::new(
        "shuffle.keys",
        "Distinct keys the records' keys are drawn from.",
    ),
    1,
    u64::MAX,
)
.default(100_000);
/// Map tasks.
pub static MAPS: UInt = UInt::new(Meta::new("shuffle.maps", "Map tasks."), 1, 100_000).default(4);
/// Reduce partitions.
pub static REDUCES: UInt = UInt::new(
    Meta::new("shuffle.reduces", "Reduce partitions."),
    1,
    100_000,
)
.default(4);
/// Cost per record.
pub static COST: UInt = UInt::new(
    Meta::new(
        "shuffle.cost",
        "Mixing rounds per record before the shuffle and per key after it.",
    ),
    0,
    1_000_000,
)
.default(0);
/// Join self-check.
pub static JOIN: Flag = Flag::new(
    Meta::new(
        "shuffle.join",
        "`sum` only: sum the records on two sides, each with its own map stages, and join the sides by key (a self-check whose result equals the plain sum's).",
    ),
    false,
);
/// Stream tasks (no stream job by default).
pub static STREAM_TASKS: UInt = UInt::new(
    Meta::new(
        "stream.tasks",
        "Tasks per micro-batch of the preempting stream job (0: no stream job).",
    ),
    0,
    100_000,
)
.default(0);

/// Summary of a sort's output, partition by partition in order: enough to check that it is a
/// total order of exactly the input's records.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SortDigest {
    /// Records.
    pub records: u64,
    /// Wrapping sum of a mix of every (key, value): the same for any order of the records.
    pub checksum: u64,
    /// Whether every partition is sorted by key and no key of a partition exceeds a key of a
    /// later one.
    pub ordered: bool,
    /// Records per partition.
    pub partitions: Vec<u64>,
}

/// One partition's part of a [`SortDigest`].
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct RangeSummary {
    records: u64,
    checksum: u64,
    unsorted: bool,
    first: u64,
    last: u64,
}

fn sort_digest(ds: &Dataset<(u64, u64)>) -> Action<SortDigest> {
    ds.action(
        |_, it| {
            it.fold(RangeSummary::default(), |mut s, (k, v)| {
                if s.records == 0 {
                    s.first = k;
                } else if k < s.last {
                    s.unsorted = true;
                }
                s.last = k;
                s.records += 1;
                s.checksum = s.checksum.wrapping_add(burn(burn(k, 1) ^ v, 1));
                s
            })
        },
        |parts| {
            let nonempty: Vec<&RangeSummary> = parts.iter().filter(|s| s.records > 0).collect();
            SortDigest {
                records: parts.iter().map(|s| s.records).sum(),
                checksum: parts.iter().fold(0u64, |a, s| a.wrapping_add(s.checksum)),
                ordered: parts.iter().all(|s| !s.unsorted)
                    && nonempty.windows(2).all(|w| w[0].last <= w[1].first),
                partitions: parts.iter().map(|s| s.records).collect(),
            }
        },
    )
}

fn digest(ds: &Dataset<(u64, u64)>, cost: u32) -> Action<KeyDigest> {
    ds.action(
        move |_, it| {
            it.fold(KeyDigest::default(), |d, (k, v)| KeyDigest {
                keys: d.keys + 1,
                total: d.total + v,
                checksum: d
                    .checksum
                    .wrapping_add(burn(k, 1).wrapping_mul(v) ^ (burn(k, cost) & 1)),
            })
        },
        |parts| {
            parts
                .into_iter()
                .fold(KeyDigest::default(), |a, b| KeyDigest {
                    keys: a.keys + b.keys,
                    total: a.total + b.total,
                    checksum: a.checksum.wrapping_add(b.checksum),
                })
        },
    )
}

/// Build the shuffle app.
///
/// # Errors
/// [`neptune_core::Error::Config`] naming the config key with a bad value.
pub fn build(app: &mut App) -> neptune_core::Result<()> {
    let c = app.config();
    let seed = SEED.get(c)?;
    let op = OP.get(c)?;
    let records = RECORDS.get(c)?;
    let keys = KEYS.get(c)?;
    let maps = MAPS.get(c)? as u32;
    let reduces = REDUCES.get(c)? as u32;
    let cost = COST.get(c)? as u32;
    let join = JOIN.get(c)?;
    if join && op == Op::Sort {
        return Err("config key `shuffle.join` applies to `shuffle.op=sum` only".into());
    }
    let stream = StreamLoad::read(c, &STREAM_TASKS)?;

    let per_map = records.div_ceil(u64::from(maps));
    let pairs = generate(
        maps,
        seed,
        move |_, p| per_map.min(records.saturating_sub(u64::from(p) * per_map)),
        move |rng, _, _| {
            let k = rng.random_range(0..keys);
            match op {
                Op::Sum => (k, 1u64),
                Op::Sort => (k, rng.random::<u64>()),
            }
        },
    )
    .map(move |(k, v)| {
        std::hint::black_box(burn(k, cost));
        (k, v)
    });
    match op {
        Op::Sum => {
            let sums = pairs.reduce_by_key(reduces, |a, b| a + b);
            let sums = if join {
                // Both sides sum the same records in map stages of their own, which run
                // concurrently; a key whose sides disagree sums to 0, so the digest shows any
                // difference.
                let other = pairs.reduce_by_key(reduces, |a, b| a + b);
                sums.join(&other, reduces)
                    .map(|(k, (l, r))| (k, if l == r { l } else { 0 }))
            } else {
                sums
            };
            app.batch("sum", digest(&sums, cost)).runs(Some(1));
        }
        Op::Sort => {
            let sorted = pairs.sort_by_key_into(reduces);
            app.batch("sort", sort_digest(&sorted)).runs(Some(1));
            app.batch("input", sort_digest(&pairs)).runs(Some(1));
        }
    }

    if let Some(ds) = stream.records(seed) {
        app.stream("stream", ds.count()).interval(stream.interval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use neptune_core::app::build_app;
    use neptune_core::config::Config;
    use std::sync::Arc;

    fn build(sets: &[&str]) -> Result<App, String> {
        let cfg = Config::from_args(sets).unwrap();
        build_app(crate::apps::BUILTIN, "shuffle", Arc::new(cfg)).map_err(|e| e.to_string())
    }

    #[test]
    fn an_unknown_shuffle_op_is_refused_naming_the_key() {
        let e = build(&["shuffle.op=shuffle"]).unwrap_err();
        assert!(
            e.contains("`shuffle.op`") && e.contains("one of: sum, sort"),
            "{e}"
        );
    }

    #[test]
    fn sort_mode_plans_a_range_partitioned_sort_and_an_input_digest() {
        let app = build(&["shuffle.op=sort", "shuffle.maps=3", "shuffle.reduces=5"]).unwrap();
        let names: Vec<&str> = app.jobs().iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["sort", "input"]);
        let sort = &app.jobs()[0].stages;
        let shape: Vec<(u32, Option<u32>)> =
            sort.iter().map(|s| (s.partitions, s.shuffle_out)).collect();
        assert_eq!(
            shape,
            [(3, Some(1)), (1, Some(1)), (3, Some(5)), (5, None)],
            "sample, boundaries, partition, sorted reduce"
        );
        assert_eq!(app.jobs()[1].stages.len(), 1);
    }

    fn summary(records: u64, first: u64, last: u64, unsorted: bool) -> Vec<u8> {
        let s = RangeSummary {
            records,
            checksum: records,
            unsorted,
            first,
            last,
        };
        postcard::to_stdvec(&s).unwrap()
    }

    #[test]
    fn the_sort_digest_is_ordered_only_for_sorted_partitions_in_key_order() {
        let pairs = Dataset::from_fn(1, |_| Box::new(std::iter::empty::<(u64, u64)>()));
        let merge = sort_digest(&pairs).merge_fn();
        let d = merge(vec![
            summary(2, 1, 3, false),
            summary(0, 0, 0, false),
            summary(4, 3, 9, false),
        ])
        .unwrap();
        assert_eq!(d.records, 6);
        assert_eq!(d.partitions, [2, 0, 4]);
        assert!(
            d.ordered,
            "an equal key may end one range and start the next"
        );
        let overlap = merge(vec![summary(2, 1, 5, false), summary(4, 4, 9, false)]).unwrap();
        assert!(!overlap.ordered);
        let unsorted = merge(vec![summary(2, 1, 3, true), summary(4, 4, 9, false)]).unwrap();
        assert!(!unsorted.ordered);
    }
}
