//! Driver configuration: validated library config built from CLI flags and `--set` keys.

use crate::scheduler::{Policy, SchedulerConfig};
use neptune_config::keys::{
    DRIVER_TIMEOUT_MS, GRPC_MAX_MESSAGE_BYTES, HEARTBEAT_INTERVAL_MS, MAX_BLOCK_BYTES,
    MAX_FETCH_FAILURES, NO_EXECUTORS_TIMEOUT_MS, POLICY, REJOIN_ATTEMPTS, START_TIMEOUT_MS,
    STATS_WARMUP_MS, STATS_WARMUP_RUNS, WORKER_NICE,
};
use neptune_config::rules;
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
    /// Driver silence after which executors end their session (`heartbeat.driver_timeout_ms`;
    /// sent in the welcome).
    pub driver_timeout: Duration,
    /// Time with jobs to run and no executor registered after which the app fails
    /// (`driver.no_executors_timeout_ms`).
    pub no_executors_timeout: Duration,
    /// Which micro-batch latencies are warm-up (`stats.warmup_ms`, `stats.warmup_runs`).
    pub warmup: crate::stats::Warmup,
}

impl DriverConfig {
    /// Build from flags and `--set` values: reads the `scheduler.*`, `heartbeat.*`, `driver.*`,
    /// `grpc.max_message_bytes` and `shuffle.max_block_bytes` keys. `policy` is the `--policy`
    /// flag if given; `--set scheduler.policy` must agree with it.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key (or flag) at fault.
    pub fn new(
        app: String,
        listen: SocketAddr,
        http: SocketAddr,
        executors: usize,
        policy: Option<Policy>,
        config: Config,
    ) -> Result<Self, ConfigError> {
        let mut scheduler = SchedulerConfig::from_config(&config)?;
        match (policy, POLICY.get_opt(&config)?) {
            (Some(flag), Some(set)) if flag != set => {
                return Err(ConfigError::Invalid {
                    key: POLICY.meta.key.into(),
                    value: set.to_string(),
                    reason: format!("disagrees with --policy {flag}; give one of them"),
                });
            }
            (Some(flag), _) => scheduler.policy = flag,
            (None, _) => {}
        }
        let max_message_bytes = GRPC_MAX_MESSAGE_BYTES.get(&config)?;
        let max_fetch_failures = u32::try_from(MAX_FETCH_FAILURES.get(&config)?)
            .expect("range of driver.max_fetch_failures fits u32");
        let warmup = crate::stats::Warmup {
            duration: Duration::from_millis(STATS_WARMUP_MS.get(&config)?),
            runs: STATS_WARMUP_RUNS.get(&config)?,
        };
        // Read by executors (their fetch cap, their rejoin budget, their workers' priority);
        // checked here so a bad value fails at start.
        MAX_BLOCK_BYTES.get(&config)?;
        REJOIN_ATTEMPTS.get(&config)?;
        WORKER_NICE.get(&config)?;
        let interval = HEARTBEAT_INTERVAL_MS.get(&config)?;
        let driver_timeout = match DRIVER_TIMEOUT_MS.get_opt(&config)? {
            None => rules::driver_timeout_default(interval),
            Some(t) if t < rules::driver_timeout_min(interval) => {
                return Err(ConfigError::Invalid {
                    key: DRIVER_TIMEOUT_MS.meta.key.into(),
                    value: t.to_string(),
                    reason: format!(
                        "must be at least 3 × heartbeat.interval_ms ({interval}), or executors \
                         leave a healthy driver"
                    ),
                });
            }
            Some(t) => t,
        };
        let max_static = rules::static_stream_executors_max(executors as u64);
        if scheduler.policy == Policy::Static
            && scheduler.static_stream_executors as u64 > max_static
        {
            return Err(ConfigError::Invalid {
                key: "scheduler.static_stream_executors".into(),
                value: scheduler.static_stream_executors.to_string(),
                reason: format!(
                    "policy `static` needs fewer stream-only executors than --executors ({executors}), \
                     or batch jobs never run"
                ),
            });
        }
        Ok(Self {
            app,
            listen,
            http,
            executors,
            scheduler,
            heartbeat_interval: Duration::from_millis(interval),
            driver_timeout: Duration::from_millis(driver_timeout),
            no_executors_timeout: Duration::from_millis(NO_EXECUTORS_TIMEOUT_MS.get(&config)?),
            start_timeout: Duration::from_millis(START_TIMEOUT_MS.get(&config)?),
            config,
            max_message_bytes,
            max_fetch_failures,
            warmup,
        })
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
            Some(Policy::Neptune),
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
            Some(Policy::Static),
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
        let c = cfg(&["scheduler.bogus=1", "scheduler.quantm_ms=5"]).unwrap();
        let e = c.config.check_all_used().unwrap_err().to_string();
        assert!(e.contains("`scheduler.bogus`"), "{e}");
        assert!(e.contains("did you mean `scheduler.quantum_ms`"), "{e}");
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

    #[test]
    fn the_limits_settings_match_the_protocol_constants() {
        use neptune_config::Describe;
        let (min, max) = GRPC_MAX_MESSAGE_BYTES.bounds().unwrap();
        assert_eq!(
            (min as u64, max as u64),
            (
                neptune_proto::MIN_MAX_MESSAGE_BYTES,
                neptune_proto::MAX_MAX_MESSAGE_BYTES
            )
        );
        let c = cfg(&[]).unwrap();
        assert_eq!(
            c.max_message_bytes,
            neptune_proto::DEFAULT_MAX_MESSAGE_BYTES
        );
        assert_eq!(
            c.max_fetch_failures,
            crate::jobs::DEFAULT_MAX_FETCH_FAILURES
        );
    }

    #[test]
    fn warmup_defaults_to_the_first_second_and_is_settable() {
        use crate::stats::Warmup;
        assert_eq!(cfg(&[]).unwrap().warmup, Warmup::default());
        let c = cfg(&["stats.warmup_ms=0", "stats.warmup_runs=50"]).unwrap();
        assert_eq!(
            c.warmup,
            Warmup {
                duration: Duration::ZERO,
                runs: 50
            }
        );
        c.config.check_all_used().unwrap();
        let e = cfg(&["stats.warmup_ms=-1"]).unwrap_err().to_string();
        assert!(e.contains("stats.warmup_ms"), "{e}");
    }

    #[test]
    fn heartbeat_timeout_must_be_twice_the_interval() {
        let e = cfg(&["heartbeat.interval_ms=1000", "heartbeat.timeout_ms=1500"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("heartbeat.timeout_ms") && e.contains("twice"),
            "{e}"
        );
    }

    #[test]
    fn driver_timeout_has_a_derived_default_and_a_floor() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.driver_timeout, Duration::from_secs(5));
        assert_eq!(c.no_executors_timeout, Duration::from_secs(300));
        let c = cfg(&["heartbeat.interval_ms=1000"]).unwrap();
        assert_eq!(c.driver_timeout, Duration::from_secs(12));
        let e = cfg(&[
            "heartbeat.interval_ms=1000",
            "heartbeat.driver_timeout_ms=2500",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("heartbeat.driver_timeout_ms") && e.contains("3 ×"),
            "{e}"
        );
        let e = cfg(&["executor.rejoin_attempts=101"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("executor.rejoin_attempts"), "{e}");
    }

    #[test]
    fn the_old_duplicate_heartbeat_key_is_unknown() {
        // `scheduler.heartbeat_timeout_ms` was accepted and then overwritten by the default of
        // `heartbeat.timeout_ms`; there is one key now.
        let c = cfg(&["scheduler.heartbeat_timeout_ms=9000"]).unwrap();
        let e = c.config.check_all_used().unwrap_err().to_string();
        assert!(e.contains("scheduler.heartbeat_timeout_ms"), "{e}");
    }

    #[test]
    fn policy_given_by_set_counts_for_the_static_check() {
        // The static-policy check used to read only the --policy flag.
        let e = DriverConfig::new(
            "synthetic".into(),
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            1,
            None,
            Config::from_args(&["scheduler.policy=static"]).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("scheduler.static_stream_executors"), "{e}");
        let e = cfg(&["scheduler.policy=fifo"]).unwrap_err().to_string();
        assert!(e.contains("disagrees with --policy"), "{e}");
    }
}
