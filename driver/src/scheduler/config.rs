//! Task-scheduler configuration: policy, placement and limits, with `Default` and validation.
//!
//! Config flows one way: [`SchedulerConfig::from_config`] reads the `scheduler.*` and
//! `heartbeat.timeout_ms` keys through their descriptors in `neptune_config::keys` (the one place
//! that defines each key's default and range), and [`Scheduler::new`](super::Scheduler::new)
//! validates a config built by hand against the same ranges. Every error names the offending key.

use neptune_config::keys::{
    FAIR_WEIGHT_BATCH, FAIR_WEIGHT_STREAM, HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS,
    LAUNCH_ACK_TIMEOUT_MS, MAX_SUSPENSIONS, MAX_TASK_FAILURES, METRICS_WINDOW, PLACEMENT, POLICY,
    QUANTUM_MS, SEED, SLO_AWARE, SLO_LEAD_US, SLO_WINDOW_MS, STATIC_STREAM_EXECUTORS,
};
use neptune_config::{Config, ConfigError, UInt, rules};
use serde::Serialize;
use std::time::Duration;

pub use neptune_config::{Placement, Policy};

/// How a policy preempts a batch task for a stream task, if it does.
pub(super) fn preemption(policy: Policy) -> Option<super::PreemptHow> {
    match policy {
        Policy::Neptune => Some(super::PreemptHow::Suspend),
        Policy::Kill => Some(super::PreemptHow::Kill),
        Policy::Fifo | Policy::Fair | Policy::Static => None,
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

/// Configuration of the task scheduler. Each field's key, default and range are those of its
/// setting in `neptune_config::keys`; `Default` is every setting's default (`neptune` + `lma`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchedulerConfig {
    /// `scheduler.policy`.
    pub policy: Policy,
    /// `scheduler.placement`.
    pub placement: Placement,
    /// `scheduler.max_suspensions`: a task preempted more often than this runs unpreemptible for
    /// `quantum` each time it starts running again.
    pub max_suspensions: u32,
    /// `scheduler.quantum_ms`: the anti-starvation protection period.
    pub quantum: Duration,
    /// `scheduler.fair_weights.stream`, `scheduler.fair_weights.batch`.
    pub fair_weights: FairWeights,
    /// `scheduler.static_stream_executors`: stream-only executors under `static`.
    pub static_stream_executors: usize,
    /// `heartbeat.timeout_ms`: an executor silent for longer is dropped.
    pub heartbeat_timeout: Duration,
    /// `scheduler.metrics_window`: heartbeats in the LMA sliding window.
    pub metrics_window: usize,
    /// `scheduler.max_task_failures`: the failure that reaches this count abandons the task.
    pub max_task_failures: u32,
    /// `scheduler.seed`: seed of the `random` placement.
    pub seed: u64,
    /// `driver.launch_ack_timeout_ms`: a launch unacknowledged this long is re-queued and its
    /// executor marked suspect.
    pub launch_ack_timeout: Duration,
    /// `scheduler.slo_aware`: the SLO-aware mode of `neptune` and `kill` (see the module docs).
    pub slo_aware: bool,
    /// `scheduler.slo_window_ms`: its recent window.
    pub slo_window: Duration,
    /// `scheduler.slo_lead_us`: the margin of acting ahead of a micro-batch (zero: it does
    /// not act ahead).
    pub slo_lead: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        // Every default lies in its range (`defaults_are_valid` tests it), so this cannot fail.
        Self::from_config(&Config::default()).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

fn u32_of(v: u64) -> u32 {
    // Every u32 setting's range ends below u32::MAX (checked by a test), so this never saturates.
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl SchedulerConfig {
    /// Reads every scheduler key, and the heartbeat timeout (whose range and default depend on
    /// `heartbeat.interval_ms`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn from_config(cfg: &Config) -> Result<Self, ConfigError> {
        let interval = HEARTBEAT_INTERVAL_MS.get(cfg)?;
        let timeout = match HEARTBEAT_TIMEOUT_MS.get_opt(cfg)? {
            None => rules::heartbeat_timeout_default(interval),
            Some(t) if t < rules::heartbeat_timeout_min(interval) => {
                return Err(ConfigError::Invalid {
                    key: HEARTBEAT_TIMEOUT_MS.meta.key.into(),
                    value: t.to_string(),
                    reason: format!(
                        "must be at least twice heartbeat.interval_ms ({interval}), or healthy executors get dropped"
                    ),
                });
            }
            Some(t) => t,
        };
        let c = SchedulerConfig {
            policy: POLICY.get(cfg)?,
            placement: PLACEMENT.get(cfg)?,
            max_suspensions: u32_of(MAX_SUSPENSIONS.get(cfg)?),
            quantum: Duration::from_millis(QUANTUM_MS.get(cfg)?),
            fair_weights: FairWeights {
                stream: u32_of(FAIR_WEIGHT_STREAM.get(cfg)?),
                batch: u32_of(FAIR_WEIGHT_BATCH.get(cfg)?),
            },
            static_stream_executors: usize_of(STATIC_STREAM_EXECUTORS.get(cfg)?),
            heartbeat_timeout: Duration::from_millis(timeout),
            metrics_window: usize_of(METRICS_WINDOW.get(cfg)?),
            max_task_failures: u32_of(MAX_TASK_FAILURES.get(cfg)?),
            seed: SEED.get(cfg)?,
            launch_ack_timeout: Duration::from_millis(LAUNCH_ACK_TIMEOUT_MS.get(cfg)?),
            slo_aware: SLO_AWARE.get(cfg)?,
            slo_window: Duration::from_millis(SLO_WINDOW_MS.get(cfg)?),
            slo_lead: Duration::from_micros(SLO_LEAD_US.get(cfg)?),
        };
        c.validate()?;
        Ok(c)
    }

    /// Sets one key from its string form (`scheduler.quantum_ms`, ...), checking its range: how
    /// a running driver applies a live change. Keys not under `scheduler.` are refused.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key; [`ConfigError::Unknown`] for other keys.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let u = |s: &UInt| s.parse_as(key, value);
        match key {
            k if k == POLICY.meta.key => self.policy = POLICY.parse_as(key, value)?,
            k if k == PLACEMENT.meta.key => self.placement = PLACEMENT.parse_as(key, value)?,
            k if k == MAX_SUSPENSIONS.meta.key => {
                self.max_suspensions = u32_of(u(&MAX_SUSPENSIONS)?)
            }
            k if k == QUANTUM_MS.meta.key => self.quantum = Duration::from_millis(u(&QUANTUM_MS)?),
            k if k == FAIR_WEIGHT_STREAM.meta.key => {
                self.fair_weights.stream = u32_of(u(&FAIR_WEIGHT_STREAM)?)
            }
            k if k == FAIR_WEIGHT_BATCH.meta.key => {
                self.fair_weights.batch = u32_of(u(&FAIR_WEIGHT_BATCH)?)
            }
            k if k == STATIC_STREAM_EXECUTORS.meta.key => {
                self.static_stream_executors = usize_of(u(&STATIC_STREAM_EXECUTORS)?)
            }
            k if k == METRICS_WINDOW.meta.key => {
                self.metrics_window = usize_of(u(&METRICS_WINDOW)?)
            }
            k if k == MAX_TASK_FAILURES.meta.key => {
                self.max_task_failures = u32_of(u(&MAX_TASK_FAILURES)?)
            }
            k if k == SEED.meta.key => self.seed = u(&SEED)?,
            _ => {
                return Err(ConfigError::Unknown(vec![neptune_config::UnknownKey {
                    key: key.to_string(),
                    suggestion: None,
                }]));
            }
        }
        Ok(())
    }

    /// Checks every value against its setting's range (for configs built by hand: tests, the
    /// simulator, benches).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first key out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |s: &UInt, v: u64| s.check_as(s.meta.key, v).map(|_| ());
        check(&MAX_SUSPENSIONS, u64::from(self.max_suspensions))?;
        check(&QUANTUM_MS, self.quantum.as_millis() as u64)?;
        check(&FAIR_WEIGHT_STREAM, u64::from(self.fair_weights.stream))?;
        check(&FAIR_WEIGHT_BATCH, u64::from(self.fair_weights.batch))?;
        check(
            &STATIC_STREAM_EXECUTORS,
            self.static_stream_executors as u64,
        )?;
        check(&METRICS_WINDOW, self.metrics_window as u64)?;
        check(&MAX_TASK_FAILURES, u64::from(self.max_task_failures))?;
        check(&SLO_WINDOW_MS, self.slo_window.as_millis() as u64)?;
        check(&SLO_LEAD_US, self.slo_lead.as_micros() as u64)?;
        // The heartbeat timeout's range (which depends on the interval) is the setting's, checked
        // by `from_config`; configs built by hand (the simulator, tests) may switch timeouts off
        // with a long one, but never to zero, which would drop every executor at once.
        if self.launch_ack_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                key: LAUNCH_ACK_TIMEOUT_MS.meta.key.into(),
                value: "0".into(),
                reason: "must be positive".into(),
            });
        }
        if self.heartbeat_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                key: HEARTBEAT_TIMEOUT_MS.meta.key.into(),
                value: "0".into(),
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let d = SchedulerConfig::default();
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(
            (d.policy, d.placement, d.max_suspensions),
            (Policy::Neptune, Placement::Lma, 8)
        );
    }

    #[test]
    fn integer_settings_fit_their_fields() {
        for s in [
            &MAX_SUSPENSIONS,
            &FAIR_WEIGHT_STREAM,
            &FAIR_WEIGHT_BATCH,
            &MAX_TASK_FAILURES,
        ] {
            assert!(s.max < u64::from(u32::MAX), "{}", s.meta.key);
        }
    }
}
