//! Source timestamps of the records a task read (Kafka: each record's timestamp, by default its
//! produce time), summarised as oldest, newest, count and mean, so the driver can report how long
//! records took from their source to the commit of the micro-batch that read them
//! (`source_to_commit_ms` in `/status`). Milliseconds since the Unix epoch, as Kafka keeps them.
//!
//! A summary merges exactly for oldest, newest and count; the mean merges weighted by count. The
//! wire carries the mean, not the sum: a sum of epoch milliseconds over 10^7 records overflows an
//! `i64`, and no counter the wire can move may wrap.

/// The source timestamps of a set of records; never empty (`count` ≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimes {
    /// Oldest timestamp, ms since the Unix epoch.
    min_ms: i64,
    /// Newest timestamp.
    max_ms: i64,
    /// Records (saturating).
    count: u64,
    /// Sum of the timestamps (i128: 2^64 records of any i64 timestamp fit).
    sum_ms: i128,
}

impl EventTimes {
    /// One record's timestamp.
    pub fn one(ms: i64) -> Self {
        Self {
            min_ms: ms,
            max_ms: ms,
            count: 1,
            sum_ms: i128::from(ms),
        }
    }

    /// Add one record's timestamp to `times` (which may be empty).
    pub fn note(times: &mut Option<Self>, ms: i64) {
        Self::add(times, Self::one(ms));
    }

    /// Add the set `more` to `times` (which may be empty).
    pub fn add(times: &mut Option<Self>, more: Self) {
        *times = Some(times.map_or(more, |t| t.merged(&more)));
    }

    /// Both sets together.
    pub fn merged(&self, other: &Self) -> Self {
        Self {
            min_ms: self.min_ms.min(other.min_ms),
            max_ms: self.max_ms.max(other.max_ms),
            count: self.count.saturating_add(other.count),
            sum_ms: self.sum_ms.saturating_add(other.sum_ms),
        }
    }

    /// A summary received from the wire: `count` records, `mean_ms` their mean.
    ///
    /// # Errors
    /// When it cannot describe any set of records (no records, the mean outside oldest..newest).
    pub fn from_parts(min_ms: i64, max_ms: i64, count: u64, mean_ms: i64) -> Result<Self, String> {
        if count == 0 {
            return Err("source timestamps of no records".into());
        }
        if !(min_ms <= mean_ms && mean_ms <= max_ms) {
            return Err(format!(
                "source timestamps out of order: oldest {min_ms}, mean {mean_ms}, newest {max_ms}"
            ));
        }
        Ok(Self {
            min_ms,
            max_ms,
            count,
            sum_ms: i128::from(mean_ms) * i128::from(count),
        })
    }

    /// Oldest timestamp, ms since the Unix epoch.
    pub fn min_ms(&self) -> i64 {
        self.min_ms
    }

    /// Newest timestamp.
    pub fn max_ms(&self) -> i64 {
        self.max_ms
    }

    /// Records summarised.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean timestamp (rounded towards zero), within oldest..newest.
    pub fn mean_ms(&self) -> i64 {
        let mean = self.sum_ms / i128::from(self.count.max(1));
        i64::try_from(mean)
            .unwrap_or(self.max_ms)
            .clamp(self.min_ms, self.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::EventTimes;

    #[test]
    fn notes_merge_into_oldest_newest_count_and_mean() {
        let mut t = None;
        for ms in [1_700_000_000_300, 1_700_000_000_100, 1_700_000_000_200] {
            EventTimes::note(&mut t, ms);
        }
        let t = t.unwrap();
        assert_eq!(
            (t.min_ms(), t.max_ms(), t.count()),
            (1_700_000_000_100, 1_700_000_000_300, 3)
        );
        assert_eq!(t.mean_ms(), 1_700_000_000_200);
        let u = EventTimes::one(1_700_000_000_600);
        let m = t.merged(&u);
        assert_eq!(
            (m.min_ms(), m.max_ms(), m.count()),
            (1_700_000_000_100, 1_700_000_000_600, 4)
        );
        assert_eq!(m.mean_ms(), 1_700_000_000_300, "weighted by count");
    }

    #[test]
    fn sums_of_many_epoch_timestamps_do_not_wrap() {
        let ms = 1_700_000_000_000i64;
        let big = EventTimes::from_parts(ms, ms, u64::MAX, ms).unwrap();
        let m = big.merged(&big);
        assert_eq!(m.count(), u64::MAX, "saturates");
        assert_eq!(m.mean_ms(), ms, "stays within oldest..newest");
    }

    #[test]
    fn a_summary_from_the_wire_is_checked() {
        assert!(EventTimes::from_parts(1, 3, 0, 2).is_err(), "no records");
        let e = EventTimes::from_parts(5, 3, 1, 4).unwrap_err();
        assert!(e.contains("out of order"), "{e}");
        assert!(
            EventTimes::from_parts(1, 3, 2, 9).is_err(),
            "mean past the newest"
        );
        let t = EventTimes::from_parts(i64::MIN, i64::MAX, 2, 0).unwrap();
        assert_eq!(t.mean_ms(), 0);
    }
}
