//! Task-scheduler configuration: policy, placement and limits, with `Default` and validation.
//!
//! Config flows one way: the CLI/env layer fills a [`SchedulerConfig`] (directly or
//! through [`SchedulerConfig::set`] for `--set k=v`), and [`Scheduler::new`](super::Scheduler::new)
//! validates it. Every error names the offending key or value.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which scheduling policy the task scheduler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Stream task sets first, batch FIFO; a stream task at a full cluster suspends a batch task.
    #[default]
    Neptune,
    /// One queue in submission order; never preempts.
    Fifo,
    /// Weighted stream/batch pools; the pool furthest below its weighted share goes next; never preempts.
    Fair,
    /// Like `Neptune`, but preempts by killing the batch task (its work is lost and it is re-queued).
    Kill,
    /// The first `static_stream_executors` executors run only stream tasks, the others only batch.
    Static,
}

/// How executors are ordered when a task is placed (and, for stream tasks, where batch tasks are
/// preempted). See the [module docs](super) for the exact LMA ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Locality- and memory-aware: locality, then memory pressure, then task balance.
    #[default]
    Lma,
    /// Load balance: fewest tasks first (no locality, no memory).
    Lb,
    /// Uniformly random among candidates, from the seeded RNG.
    Random,
}

/// A policy or placement name that is not one we know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {expected})")]
pub struct ParseNameError {
    /// `"policy"` or `"placement"`.
    pub what: &'static str,
    /// The value as given.
    pub value: String,
    /// The accepted names, comma-separated.
    pub expected: &'static str,
}

impl Policy {
    /// Lower-case name used in config, CLI and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Neptune => "neptune",
            Policy::Fifo => "fifo",
            Policy::Fair => "fair",
            Policy::Kill => "kill",
            Policy::Static => "static",
        }
    }

    /// Whether a stream task may preempt a batch task under this policy, and how.
    pub(super) fn preemption(self) -> Option<super::PreemptHow> {
        match self {
            Policy::Neptune => Some(super::PreemptHow::Suspend),
            Policy::Kill => Some(super::PreemptHow::Kill),
            Policy::Fifo | Policy::Fair | Policy::Static => None,
        }
    }
}

impl Placement {
    /// Lower-case name used in config, CLI and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Lma => "lma",
            Placement::Lb => "lb",
            Placement::Random => "random",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Policy {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "neptune" => Ok(Policy::Neptune),
            "fifo" => Ok(Policy::Fifo),
            "fair" => Ok(Policy::Fair),
            "kill" => Ok(Policy::Kill),
            "static" => Ok(Policy::Static),
            _ => Err(ParseNameError {
                what: "policy",
                value: s.to_owned(),
                expected: "neptune, fifo, fair, kill, static",
            }),
        }
    }
}

impl FromStr for Placement {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lma" => Ok(Placement::Lma),
            "lb" => Ok(Placement::Lb),
            "random" => Ok(Placement::Random),
            _ => Err(ParseNameError {
                what: "placement",
                value: s.to_owned(),
                expected: "lma, lb, random",
            }),
        }
    }
}

/// Pool weights of the `fair` policy: a pool's share of the running tasks is proportional to its
/// weight. Both must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FairWeights {
    /// Weight of the stream pool.
    pub stream: u32,
    /// Weight of the batch pool.
    pub batch: u32,
}

/// Configuration of the task scheduler. `Default` is `neptune` + `lma` with the values below.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchedulerConfig {
    /// Key `policy` (default `neptune`).
    pub policy: Policy,
    /// Key `placement` (default `lma`).
    pub placement: Placement,
    /// Key `max_suspensions` (default 8): a task preempted more often than this runs unpreemptible
    /// for `quantum` each time it starts running again.
    pub max_suspensions: u32,
    /// Key `quantum_ms` (default 1000 ms): the anti-starvation protection period.
    pub quantum: Duration,
    /// Keys `fair_weights.stream`, `fair_weights.batch` (default 1 and 1).
    pub fair_weights: FairWeights,
    /// Key `static_stream_executors` (default 1): stream-only executors under `static`.
    pub static_stream_executors: usize,
    /// Key `heartbeat_timeout_ms` (default 5000 ms): an executor silent for longer is dropped.
    pub heartbeat_timeout: Duration,
    /// Key `metrics_window` (default 10): heartbeats in the LMA sliding window.
    pub metrics_window: usize,
    /// Key `max_task_failures` (default 4): the failure that reaches this count abandons the task.
    pub max_task_failures: u32,
    /// Key `seed` (default 0): seed of the `random` placement.
    pub seed: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            policy: Policy::Neptune,
            placement: Placement::Lma,
            max_suspensions: 8,
            quantum: Duration::from_millis(1000),
            fair_weights: FairWeights {
                stream: 1,
                batch: 1,
            },
            static_stream_executors: 1,
            heartbeat_timeout: Duration::from_millis(5000),
            metrics_window: 10,
            max_task_failures: 4,
            seed: 0,
        }
    }
}

/// A configuration key or value the scheduler cannot use. Each variant names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `set` was given a key the scheduler does not have.
    #[error("unknown scheduler config key `{key}`")]
    UnknownKey {
        /// The key as given.
        key: String,
    },
    /// The value of `key` does not parse.
    #[error("invalid value `{value}` for scheduler config key `{key}`: {reason}")]
    InvalidValue {
        /// The key being set.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The value of `key` parses but is outside its valid range.
    #[error("scheduler config key `{key}` {requirement}")]
    OutOfRange {
        /// The offending key.
        key: &'static str,
        /// The rule it breaks, e.g. "must be at least 1".
        requirement: &'static str,
    },
}

fn parse<T: FromStr>(key: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::InvalidValue {
            key,
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

impl SchedulerConfig {
    /// Sets one key from its string form (`--set scheduler.KEY=VALUE` after the prefix is
    /// stripped). Durations are whole milliseconds. Does not validate ranges: call
    /// [`validate`](Self::validate) once all keys are set.
    ///
    /// # Errors
    /// [`ConfigError::UnknownKey`] or [`ConfigError::InvalidValue`], naming the key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "policy" => self.policy = parse("policy", value)?,
            "placement" => self.placement = parse("placement", value)?,
            "max_suspensions" => self.max_suspensions = parse("max_suspensions", value)?,
            "quantum_ms" => self.quantum = Duration::from_millis(parse("quantum_ms", value)?),
            "fair_weights.stream" => {
                self.fair_weights.stream = parse("fair_weights.stream", value)?
            }
            "fair_weights.batch" => self.fair_weights.batch = parse("fair_weights.batch", value)?,
            "static_stream_executors" => {
                self.static_stream_executors = parse("static_stream_executors", value)?
            }
            "heartbeat_timeout_ms" => {
                self.heartbeat_timeout =
                    Duration::from_millis(parse("heartbeat_timeout_ms", value)?)
            }
            "metrics_window" => self.metrics_window = parse("metrics_window", value)?,
            "max_task_failures" => self.max_task_failures = parse("max_task_failures", value)?,
            "seed" => self.seed = parse("seed", value)?,
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Checks every range rule.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] naming the first key that breaks its rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rule = |ok: bool, key, requirement| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange { key, requirement })
            }
        };
        rule(
            self.fair_weights.stream >= 1,
            "fair_weights.stream",
            "must be at least 1",
        )?;
        rule(
            self.fair_weights.batch >= 1,
            "fair_weights.batch",
            "must be at least 1",
        )?;
        rule(
            self.policy != Policy::Static || self.static_stream_executors >= 1,
            "static_stream_executors",
            "must be at least 1 under policy `static`",
        )?;
        rule(
            !self.heartbeat_timeout.is_zero(),
            "heartbeat_timeout_ms",
            "must be positive",
        )?;
        rule(
            self.metrics_window >= 1,
            "metrics_window",
            "must be at least 1",
        )?;
        rule(
            self.max_task_failures >= 1,
            "max_task_failures",
            "must be at least 1",
        )?;
        Ok(())
    }
}
