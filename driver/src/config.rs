//! Driver configuration: validated library config built from CLI flags and `--set` keys.

use crate::scheduler::{Policy, SchedulerConfig};
use neptune_core::config::{Config, ConfigError};
use std::net::SocketAddr;
use std::time::Duration;

/// Everything the driver needs to run, validated.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Registered app name.
    pub app: String,
    /// gRPC listen address for executors.
    pub listen: SocketAddr,
    /// HTTP listen address (`/metrics`, `/healthz`, `/readyz`, `/status`).
    pub http: SocketAddr,
    /// Executors expected: jobs start when this many registered (or after `start_timeout`), and
    /// `/status` reports `ready` from then on (`/readyz` does not wait for them).
    pub executors: usize,
    /// Task scheduler settings (policy, placement, anti-starvation, ...).
    pub scheduler: SchedulerConfig,
    /// Heartbeat interval executors are told to use.
    pub heartbeat_interval: Duration,
    /// Longest wait for the expected executors before jobs start anyway.
    pub start_timeout: Duration,
    /// `--set` values (also sent to executors so both sides build the same app).
    pub config: Config,
    /// Largest gRPC message the driver sends or accepts (`grpc.max_message_bytes`): bounds
    /// broadcasts, launches and task results.
    pub max_message_bytes: u64,
    /// Times one task may come back because its shuffle input could not be fetched before its
    /// job fails (`driver.max_fetch_failures`).
    pub max_fetch_failures: u32,
}

impl DriverConfig {
    /// Build from flags and `--set` values: reads the `scheduler.*`, `heartbeat.*`, `driver.*`,
    /// `grpc.max_message_bytes` and `shuffle.max_block_bytes` keys.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn new(
        app: String,
        listen: SocketAddr,
        http: SocketAddr,
        executors: usize,
        policy: Policy,
        config: Config,
    ) -> Result<Self, ConfigError> {
        let mut scheduler = SchedulerConfig {
            policy,
            ..SchedulerConfig::default()
        };
        let keys: Vec<(String, String)> = config
            .pairs()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &keys {
            if let Some(sk) = k.strip_prefix("scheduler.") {
                config.raw(k);
                scheduler.set(sk, v).map_err(|e| ConfigError::Invalid {
                    key: k.clone(),
                    value: v.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        let interval = config.get_in("heartbeat.interval_ms", 250u64, 10, 60_000)?;
        let timeout_default = (interval * 8).max(2_000);
        let timeout = config.get_in(
            "heartbeat.timeout_ms",
            timeout_default,
            interval * 2,
            600_000,
        )?;
        scheduler.heartbeat_timeout = Duration::from_millis(timeout);
        let start = config.get_in("driver.start_timeout_ms", 60_000u64, 0, 3_600_000)?;
        let max_message_bytes = config.get_in(
            "grpc.max_message_bytes",
            neptune_proto::DEFAULT_MAX_MESSAGE_BYTES,
            neptune_proto::MIN_MAX_MESSAGE_BYTES,
            neptune_proto::MAX_MAX_MESSAGE_BYTES,
        )?;
        let max_fetch_failures = config.get_in(
            "driver.max_fetch_failures",
            crate::jobs::DEFAULT_MAX_FETCH_FAILURES,
            1,
            1000,
        )?;
        // Read by executors (their fetch cap); checked here so a bad value fails at start.
        config.get_in("shuffle.max_block_bytes", 1u64 << 30, 1 << 20, 1 << 40)?;
        if policy == Policy::Static && scheduler.static_stream_executors >= executors {
            return Err(ConfigError::Invalid {
                key: "scheduler.static_stream_executors".into(),
                value: scheduler.static_stream_executors.to_string(),
                reason: format!(
                    "policy `static` needs fewer stream-only executors than --executors ({executors}), \
                     or batch jobs never run"
                ),
            });
        }
        scheduler.validate().map_err(|e| ConfigError::Invalid {
            key: format!("scheduler.{}", validation_key(&e)),
            value: String::new(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            app,
            listen,
            http,
            executors,
            scheduler,
            heartbeat_interval: Duration::from_millis(interval),
            start_timeout: Duration::from_millis(start),
            config,
            max_message_bytes,
            max_fetch_failures,
        })
    }
}

fn validation_key(e: &crate::scheduler::ConfigError) -> String {
    use crate::scheduler::ConfigError as E;
    match e {
        E::UnknownKey { key } => key.clone(),
        E::InvalidValue { key, .. } | E::OutOfRange { key, .. } => (*key).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<DriverConfig, ConfigError> {
        DriverConfig::new(
            "synthetic".into(),
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            1,
            Policy::Neptune,
            Config::from_args(args).unwrap(),
        )
    }

    #[test]
    fn scheduler_keys_are_applied() {
        let c = cfg(&["scheduler.placement=lb", "scheduler.max_suspensions=3"]).unwrap();
        assert_eq!(c.scheduler.placement.as_str(), "lb");
        assert_eq!(c.scheduler.max_suspensions, 3);
        assert!(c.config.unused_keys().is_empty());
    }

    #[test]
    fn static_policy_must_leave_executors_for_batch() {
        let e = DriverConfig::new(
            "synthetic".into(),
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            1,
            Policy::Static,
            Config::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("scheduler.static_stream_executors"), "{e}");
    }

    #[test]
    fn bad_scheduler_values_name_the_key() {
        let e = cfg(&["scheduler.placement=nearest"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("scheduler.placement"), "{e}");
        let e = cfg(&["scheduler.bogus=1"]).unwrap_err().to_string();
        assert!(e.contains("scheduler.bogus"), "{e}");
        let e = cfg(&["heartbeat.interval_ms=0"]).unwrap_err().to_string();
        assert!(e.contains("heartbeat.interval_ms"), "{e}");
        for bad in [
            "grpc.max_message_bytes=10",
            "grpc.max_message_bytes=99999999999",
            "driver.max_fetch_failures=0",
            "shuffle.max_block_bytes=5",
        ] {
            let key = bad.split('=').next().unwrap();
            let e = cfg(&[bad]).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn limits_have_defaults_and_are_settable() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.max_message_bytes, 256 << 20);
        assert_eq!(c.max_fetch_failures, 4);
        let c = cfg(&[
            "grpc.max_message_bytes=1048576",
            "driver.max_fetch_failures=2",
        ])
        .unwrap();
        assert_eq!((c.max_message_bytes, c.max_fetch_failures), (1 << 20, 2));
    }
}
