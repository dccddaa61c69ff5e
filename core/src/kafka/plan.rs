//! Planning one micro-batch of a Kafka source: offset ranges per topic partition, split and
//! dealt over the source's task slots. Pure functions; the driver logs their output in the
//! checkpoint before any task runs, so a re-run (a retried task, a restarted driver) reads the
//! same records.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Offsets by topic partition.
pub type PartitionOffsets = BTreeMap<i32, i64>;

/// Records `[from, until)` of one topic partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OffsetRange {
    /// Topic partition.
    pub partition: i32,
    /// First offset read.
    pub from: i64,
    /// First offset not read.
    pub until: i64,
}

impl OffsetRange {
    /// Offsets covered (records, when the partition has no gaps).
    pub fn len(&self) -> u64 {
        self.until.saturating_sub(self.from).max(0) as u64
    }

    /// Whether the range covers nothing.
    pub fn is_empty(&self) -> bool {
        self.until <= self.from
    }
}

/// The ranges one task of a micro-batch reads.
pub type SlotPlan = Vec<OffsetRange>;

/// Where a source without committed offsets starts (Spark's `startingOffsets`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StartingOffsets {
    /// The earliest offset still kept.
    #[default]
    Earliest,
    /// The latest offset when the first micro-batch is planned (only newer records are read).
    Latest,
    /// Per partition (`-2`: earliest, `-1`: latest); partitions not named start at earliest.
    Offsets(BTreeMap<i32, i64>),
}

impl std::str::FromStr for StartingOffsets {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "earliest" => return Ok(Self::Earliest),
            "latest" => return Ok(Self::Latest),
            _ => {}
        }
        let v: serde_json::Value = serde_json::from_str(s).map_err(|_| {
            "expected `earliest`, `latest` or JSON {\"<partition>\": <offset>}".to_string()
        })?;
        let obj = v.as_object().ok_or("expected a JSON object")?;
        // Spark's form nests the offsets under the topic name: accept one topic.
        let obj = match obj.values().next() {
            Some(serde_json::Value::Object(inner)) if obj.len() == 1 => inner,
            _ => obj,
        };
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let p: i32 = k
                .parse()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| format!("`{k}` is not a partition number"))?;
            let o = v
                .as_i64()
                .filter(|o| *o >= -2)
                .ok_or_else(|| format!("offset of partition {p} must be an integer >= -2"))?;
            out.insert(p, o);
        }
        Ok(Self::Offsets(out))
    }
}

/// What the broker holds of one partition: `[earliest, latest)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Available {
    /// Earliest offset still kept.
    pub earliest: i64,
    /// Next offset to be written (the high watermark).
    pub latest: i64,
}

/// Offsets a source starts from, per partition, without committed offsets.
pub fn start_offsets(
    starting: &StartingOffsets,
    avail: &BTreeMap<i32, Available>,
) -> PartitionOffsets {
    avail
        .iter()
        .map(|(&p, a)| {
            let o = match starting {
                StartingOffsets::Earliest => a.earliest,
                StartingOffsets::Latest => a.latest,
                StartingOffsets::Offsets(m) => match m.get(&p).copied() {
                    Some(-1) => a.latest,
                    Some(o) if o >= 0 => o,
                    _ => a.earliest,
                },
            };
            (p, o)
        })
        .collect()
}

/// One micro-batch of one source.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchPlan {
    /// The range read per partition (`until` is where the next micro-batch starts).
    pub ranges: BTreeMap<i32, OffsetRange>,
    /// The ranges each task slot reads.
    pub slots: Vec<SlotPlan>,
    /// Records deleted before they were read, skipped (only with `fail_on_data_loss=false`).
    pub lost: u64,
    /// The job's shared state the micro-batch's tasks read, logged with the plan (see
    /// [`super::checkpoint`]; absent in files of older versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<super::checkpoint::SavedState>,
}

impl BatchPlan {
    /// Where the next micro-batch starts, per partition.
    pub fn ends(&self) -> PartitionOffsets {
        self.ranges.iter().map(|(&p, r)| (p, r.until)).collect()
    }

    /// Records (offsets) planned.
    pub fn records(&self) -> u64 {
        self.ranges.values().map(OffsetRange::len).sum()
    }
}

/// Ranges shorter than this are not split just to fill idle task slots.
const MIN_SPLIT: u64 = 1024;

/// Plan a micro-batch: from `next` (where the previous one ended; partitions missing from it
/// start at their earliest offset) up to what `avail` holds, at most `cap` records in all
/// (shared by the partitions in proportion to their backlog), each range split into pieces of
/// at most `max_per_task` and dealt over `slots` task slots.
///
/// # Errors
/// With `fail_on_data_loss`, a message naming the partition whose records were deleted before
/// they were read (or whose log restarted below the committed offset).
pub fn plan_batch(
    next: &PartitionOffsets,
    avail: &BTreeMap<i32, Available>,
    cap: Option<u64>,
    max_per_task: u64,
    slots: u32,
    fail_on_data_loss: bool,
) -> Result<BatchPlan, String> {
    let mut lost = 0u64;
    let mut starts = BTreeMap::new();
    for (&p, a) in avail {
        let from = next.get(&p).copied().unwrap_or(a.earliest);
        let from = if from < a.earliest {
            if fail_on_data_loss {
                return Err(format!(
                    "records {from}..{} of partition {p} were deleted (retention) before they \
                     were read; set kafka.fail_on_data_loss=false to skip them",
                    a.earliest
                ));
            }
            lost += (a.earliest - from) as u64;
            a.earliest
        } else if from > a.latest {
            if fail_on_data_loss {
                return Err(format!(
                    "partition {p} ends at offset {} but the committed offset is {from}: the \
                     topic was recreated or truncated; set kafka.fail_on_data_loss=false to \
                     restart it from its earliest offset",
                    a.latest
                ));
            }
            a.earliest
        } else {
            from
        };
        starts.insert(p, (from, a.latest));
    }
    let backlog: u64 = starts.values().map(|(f, l)| (l - f).max(0) as u64).sum();
    let mut take: BTreeMap<i32, u64> = starts
        .iter()
        .map(|(&p, (f, l))| (p, (l - f).max(0) as u64))
        .collect();
    if let Some(cap) = cap.filter(|c| *c < backlog) {
        let mut given = 0u64;
        for t in take.values_mut() {
            *t = (u128::from(*t) * u128::from(cap) / u128::from(backlog)) as u64;
            given += *t;
        }
        // Hand out what rounding left, one record per partition that still has more.
        let mut left = cap - given;
        while left > 0 {
            let mut moved = false;
            for (p, t) in &mut take {
                let (f, l) = starts[p];
                if left > 0 && (*t as i64) < l - f {
                    *t += 1;
                    left -= 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }
    let ranges: BTreeMap<i32, OffsetRange> = starts
        .iter()
        .map(|(&p, &(from, _))| {
            (
                p,
                OffsetRange {
                    partition: p,
                    from,
                    until: from + take[&p] as i64,
                },
            )
        })
        .collect();
    let slots = deal(&ranges, max_per_task.max(1), slots.max(1));
    Ok(BatchPlan {
        ranges,
        slots,
        lost,
        state: Vec::new(),
    })
}

/// Split the ranges into pieces of at most `max` (and further, while slots would stay idle and
/// a piece is long enough), then deal them over `slots`: the longest first, each to the least
/// loaded slot (ties: the lowest). Deterministic.
fn deal(ranges: &BTreeMap<i32, OffsetRange>, max: u64, slots: u32) -> Vec<SlotPlan> {
    let mut pieces: Vec<OffsetRange> = Vec::new();
    for r in ranges.values().filter(|r| !r.is_empty()) {
        let n = r.len().div_ceil(max);
        pieces.extend(split(r, n));
    }
    while (pieces.len() as u32) < slots {
        let Some((i, longest)) = pieces
            .iter()
            .enumerate()
            .max_by_key(|(i, r)| (r.len(), std::cmp::Reverse(*i)))
            .map(|(i, r)| (i, *r))
        else {
            break;
        };
        if longest.len() < 2 * MIN_SPLIT {
            break;
        }
        let halves = split(&longest, 2);
        pieces.splice(i..=i, halves);
    }
    pieces.sort_by_key(|r| (std::cmp::Reverse(r.len()), r.partition, r.from));
    let mut out: Vec<SlotPlan> = vec![Vec::new(); slots as usize];
    let mut load = vec![0u64; slots as usize];
    for r in pieces {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .expect("at least one slot");
        load[i] += r.len();
        out[i].push(r);
    }
    for s in &mut out {
        s.sort_by_key(|r| (r.partition, r.from));
    }
    out
}

/// `r` cut into `n` contiguous pieces of nearly equal length.
fn split(r: &OffsetRange, n: u64) -> Vec<OffsetRange> {
    let n = n.max(1);
    let len = r.len();
    let mut out = Vec::with_capacity(n as usize);
    let mut from = r.from;
    for i in 0..n {
        let size = len / n + u64::from(i < len % n);
        out.push(OffsetRange {
            partition: r.partition,
            from,
            until: from + size as i64,
        });
        from += size as i64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avail(parts: &[(i32, i64, i64)]) -> BTreeMap<i32, Available> {
        parts
            .iter()
            .map(|&(p, earliest, latest)| (p, Available { earliest, latest }))
            .collect()
    }

    fn covered(plan: &BatchPlan) -> BTreeMap<i32, Vec<(i64, i64)>> {
        let mut m: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
        for r in plan.slots.iter().flatten() {
            m.entry(r.partition).or_default().push((r.from, r.until));
        }
        for v in m.values_mut() {
            v.sort();
        }
        m
    }

    #[test]
    fn starting_offsets_parse_like_spark() {
        assert_eq!("earliest".parse(), Ok(StartingOffsets::Earliest));
        assert_eq!("latest".parse(), Ok(StartingOffsets::Latest));
        let want = StartingOffsets::Offsets([(0, 23), (1, -2)].into());
        assert_eq!(r#"{"0":23,"1":-2}"#.parse(), Ok(want.clone()));
        assert_eq!(r#"{"events":{"0":23,"1":-2}}"#.parse(), Ok(want));
        for bad in ["soon", r#"{"x":1}"#, r#"{"0":-3}"#, "[1]"] {
            assert!(bad.parse::<StartingOffsets>().is_err(), "{bad}");
        }
        let a = avail(&[(0, 5, 50), (1, 0, 9), (2, 3, 7)]);
        let s = StartingOffsets::Offsets([(0, 20), (1, -1)].into());
        assert_eq!(start_offsets(&s, &a), [(0, 20), (1, 9), (2, 3)].into());
        assert_eq!(
            start_offsets(&StartingOffsets::Latest, &a),
            [(0, 50), (1, 9), (2, 7)].into()
        );
    }

    #[test]
    fn each_offset_is_planned_exactly_once_across_batches() {
        let a = avail(&[(0, 0, 10_000), (1, 0, 37), (2, 0, 0)]);
        let mut next = PartitionOffsets::new();
        let mut seen: BTreeMap<i32, i64> = BTreeMap::new();
        for _ in 0..100 {
            let plan = plan_batch(&next, &a, Some(999), 300, 3, true).unwrap();
            assert!(plan.records() <= 999);
            for (p, ranges) in covered(&plan) {
                for (from, until) in ranges {
                    let at = seen.entry(p).or_insert(0);
                    assert_eq!(*at, from, "contiguous, no overlap, no gap");
                    *at = until;
                }
            }
            next = plan.ends();
        }
        assert_eq!(seen.get(&0), Some(&10_000));
        assert_eq!(seen.get(&1), Some(&37));
    }

    #[test]
    fn a_cap_is_shared_by_backlog_and_long_ranges_are_split_over_slots() {
        let a = avail(&[(0, 0, 9_000), (1, 0, 1_000)]);
        let plan = plan_batch(&PartitionOffsets::new(), &a, Some(5_000), 1_000, 8, true).unwrap();
        assert_eq!(plan.ranges[&0].len(), 4_500);
        assert_eq!(plan.ranges[&1].len(), 500);
        // 5 pieces of partition 0, one of partition 1; pieces this short are not split further.
        assert_eq!(
            plan.slots.iter().filter(|s| !s.is_empty()).count(),
            6,
            "{plan:?}"
        );
        let big = avail(&[(0, 0, 100_000)]);
        let plan = plan_batch(&PartitionOffsets::new(), &big, None, 1_000_000, 4, true).unwrap();
        assert!(
            plan.slots.iter().all(|s| s.len() == 1),
            "a backlog fills idle slots: {plan:?}"
        );
        assert!(plan.slots.iter().flatten().all(|r| r.len() == 25_000));
        // Small backlogs keep one task per partition.
        let small = avail(&[(0, 0, 10), (1, 0, 20)]);
        let plan = plan_batch(&PartitionOffsets::new(), &small, None, 1_000, 4, true).unwrap();
        assert_eq!(plan.slots.iter().filter(|s| !s.is_empty()).count(), 2);
    }

    #[test]
    fn deleted_records_fail_the_plan_or_are_skipped_and_counted() {
        let a = avail(&[(0, 100, 150)]);
        let next: PartitionOffsets = [(0, 40)].into();
        let e = plan_batch(&next, &a, None, 10, 1, true).unwrap_err();
        assert!(e.contains("partition 0") && e.contains("40..100"), "{e}");
        let plan = plan_batch(&next, &a, None, 1_000, 1, false).unwrap();
        assert_eq!(plan.lost, 60);
        assert_eq!(
            plan.ranges[&0],
            OffsetRange {
                partition: 0,
                from: 100,
                until: 150
            }
        );
        let truncated: PartitionOffsets = [(0, 500)].into();
        assert!(
            plan_batch(&truncated, &a, None, 10, 1, true)
                .unwrap_err()
                .contains("recreated")
        );
    }
}
