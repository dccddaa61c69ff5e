//! `shuffle`: a two-stage batch job — generated `(key, 1)` records summed per key with
//! `reduce_by_key` — plus an optional CPU-bound stream job that preempts it. The workload for
//! shuffle throughput, spill and recovery tests.
//!
//! Keys: `seed`, `shuffle.records` (total), `shuffle.keys` (distinct keys drawn from),
//! `shuffle.maps` (map tasks), `shuffle.reduces` (reduce partitions), `shuffle.cost` (rounds of
//! the mixing function per record before the shuffle and per key after it; 0 default),
//! `shuffle.join` (`true`: sum the records on two sides, each with its own map stages, and join
//! the sides by key — a self-check whose result equals the plain sum's; `false` default),
//! `stream.tasks` (0: no
//! stream job), `stream.rate`, `stream.cost`; per-job keys `jobs.{sum,stream}.*`. The batch job
//! runs once unless `jobs.sum.runs` says otherwise. Its result is a [`KeyDigest`], the same for
//! any placement, suspension or recovery of its tasks.

use super::cfg;
use super::synthetic::burn;
use neptune_core::source::{generate, records_per_micro_batch};
use neptune_core::{Action, App, Dataset};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
/// A message naming the config key with a bad value.
pub fn build(app: &mut App) -> Result<(), String> {
    let c = app.config();
    let seed: u64 = cfg(c.get("seed", 42))?;
    let records: u64 = cfg(c.get_in("shuffle.records", 1_000_000, 1, u64::MAX))?;
    let keys: u64 = cfg(c.get_in("shuffle.keys", 100_000, 1, u64::MAX))?;
    let maps: u32 = cfg(c.get_in("shuffle.maps", 4, 1, 100_000))?;
    let reduces: u32 = cfg(c.get_in("shuffle.reduces", 4, 1, 100_000))?;
    let cost: u32 = cfg(c.get_in("shuffle.cost", 0, 0, 1_000_000))?;
    let join: bool = cfg(c.get("shuffle.join", false))?;
    let stream_tasks: u32 = cfg(c.get_in("stream.tasks", 0, 0, 100_000))?;
    let stream_rate: u64 = cfg(c.get_in("stream.rate", 20_000, 1, u64::MAX))?;
    let stream_cost: u32 = cfg(c.get_in("stream.cost", 20, 0, 1_000_000))?;
    let interval_ms: u64 = cfg(c.get_in("jobs.stream.interval_ms", 200, 1, 3_600_000))?;

    let per_map = records.div_ceil(u64::from(maps));
    let pairs = generate(
        maps,
        seed,
        move |_, p| per_map.min(records.saturating_sub(u64::from(p) * per_map)),
        move |rng, _, _| (rng.random_range(0..keys), 1u64),
    )
    .map(move |(k, v)| {
        std::hint::black_box(burn(k, cost));
        (k, v)
    });
    let sums = pairs.reduce_by_key(reduces, |a, b| a + b);
    let sums = if join {
        // Both sides sum the same records in map stages of their own, which run concurrently;
        // a key whose sides disagree sums to 0, so the digest shows any difference.
        let other = pairs.reduce_by_key(reduces, |a, b| a + b);
        sums.join(&other, reduces)
            .map(|(k, (l, r))| (k, if l == r { l } else { 0 }))
    } else {
        sums
    };
    app.batch("sum", digest(&sums, cost)).runs(Some(1));

    if stream_tasks > 0 {
        let per_batch = records_per_micro_batch(
            stream_rate,
            Duration::from_millis(interval_ms),
            stream_tasks,
        );
        let ds = generate(
            stream_tasks,
            seed ^ 0x5EED,
            move |_, _| per_batch,
            |rng, _, _| rng.random::<u64>(),
        )
        .map(move |x| burn(x, stream_cost));
        app.stream("stream", ds.count())
            .interval(Duration::from_millis(interval_ms));
    }
    Ok(())
}
