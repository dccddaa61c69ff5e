//! The enumerated settings (scheduling policy, placement, job kind): one definition each, shared
//! by the CLI, the driver, the apps, reports and the CRD (`JsonSchema` gives the CRD its `enum`).
//!
//! `strum` derives the string forms; parsing errors list the accepted names.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoStaticStr, VariantNames};

/// A value that is not one of an enumerated setting's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{value}` (expected one of: {})", .expected.join(", "))]
pub struct ChoiceError {
    /// The value as given.
    pub value: String,
    /// The accepted names.
    pub expected: &'static [&'static str],
}

impl ChoiceError {
    /// `value` is not one of `E`'s names (for `strum`'s `parse_err_fn`).
    pub fn of<E: VariantNames>(value: &str) -> Self {
        Self {
            value: value.to_string(),
            expected: E::VARIANTS,
        }
    }
}

fn policy_err(s: &str) -> ChoiceError {
    ChoiceError::of::<Policy>(s)
}

fn placement_err(s: &str) -> ChoiceError {
    ChoiceError::of::<Placement>(s)
}

fn job_kind_err(s: &str) -> ChoiceError {
    ChoiceError::of::<JobKind>(s)
}

/// Which scheduling policy the driver's task scheduler runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    EnumString,
    AsRefStr,
    IntoStaticStr,
    VariantNames,
    EnumIter,
)]
#[serde(rename_all = "lowercase")]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = ChoiceError,
    parse_err_fn = policy_err
)]
pub enum Policy {
    /// Stream tasks first; at a full cluster a stream task suspends a batch task (the default).
    #[default]
    Neptune,
    /// One queue in submission order; never preempts.
    Fifo,
    /// Weighted stream/batch pools; the pool furthest below its share goes next; never preempts.
    Fair,
    /// Like `neptune`, but preempts by killing the batch task (its work is lost and re-run).
    Kill,
    /// Some executors run only stream tasks, the others only batch tasks.
    Static,
}

/// How executors are ordered when a stream task is placed (and so where batch tasks pause).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    EnumString,
    AsRefStr,
    IntoStaticStr,
    VariantNames,
    EnumIter,
)]
#[serde(rename_all = "lowercase")]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = ChoiceError,
    parse_err_fn = placement_err
)]
pub enum Placement {
    /// Locality- and memory-aware: locality, then memory pressure, then task balance.
    #[default]
    Lma,
    /// Load balance: fewest tasks first.
    Lb,
    /// Uniformly random (seeded).
    Random,
}

/// Whether a job is latency-sensitive (`stream`) or latency-tolerant (`batch`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    EnumString,
    AsRefStr,
    IntoStaticStr,
    VariantNames,
    EnumIter,
)]
#[serde(rename_all = "lowercase")]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = ChoiceError,
    parse_err_fn = job_kind_err
)]
pub enum JobKind {
    /// Latency-sensitive micro-batches that may preempt batch tasks.
    Stream,
    /// Latency-tolerant; takes free slots and may be suspended.
    Batch,
}

macro_rules! as_str {
    ($($t:ty),*) => {$(
        impl $t {
            /// The name used in config, CLI, metrics labels and reports.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    )*};
}
as_str!(Policy, Placement, JobKind);

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn names_round_trip_and_match_serde() {
        for p in Policy::iter() {
            assert_eq!(p.as_str().parse::<Policy>().unwrap(), p);
            assert_eq!(
                serde_json::to_string(&p).unwrap_or_default(),
                format!("\"{}\"", p.as_str())
            );
        }
        for p in Placement::iter() {
            assert_eq!(p.to_string().parse::<Placement>().unwrap(), p);
        }
        for k in JobKind::iter() {
            assert_eq!(k.as_str().parse::<JobKind>().unwrap(), k);
        }
    }

    #[test]
    fn unknown_names_list_the_accepted_ones() {
        let e = "lifo".parse::<Policy>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown value `lifo` (expected one of: neptune, fifo, fair, kill, static)"
        );
        assert!(
            "nearest"
                .parse::<Placement>()
                .unwrap_err()
                .to_string()
                .contains("lma, lb, random")
        );
    }
}
