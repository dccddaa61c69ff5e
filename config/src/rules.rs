//! Rules that relate two settings, written once: the driver checks them in Rust and the CRD
//! states the same rules in CEL (the CEL text is built here from the same constants).

use crate::keys::{DRIVER_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS};

/// Smallest heartbeat timeout for a heartbeat interval: two missed heartbeats must not drop a
/// healthy executor.
pub fn heartbeat_timeout_min(interval_ms: u64) -> u64 {
    interval_ms.saturating_mul(2).max(HEARTBEAT_TIMEOUT_MS.min)
}

/// The heartbeat timeout used when none is set.
pub fn heartbeat_timeout_default(interval_ms: u64) -> u64 {
    interval_ms
        .saturating_mul(8)
        .max(2_000)
        .min(HEARTBEAT_TIMEOUT_MS.max)
}

/// Smallest driver-silence timeout of executors for a heartbeat interval: three keep-alives
/// (one per heartbeat) may be late before an executor gives up on its driver.
pub fn driver_timeout_min(interval_ms: u64) -> u64 {
    interval_ms.saturating_mul(3).max(DRIVER_TIMEOUT_MS.min)
}

/// The driver-silence timeout used when none is set: generous (a loaded driver answers late),
/// and longer than the default heartbeat timeout, so in a partition the driver drops the
/// executor (and re-runs its tasks) before the executor gives up.
pub fn driver_timeout_default(interval_ms: u64) -> u64 {
    interval_ms
        .saturating_mul(12)
        .max(5_000)
        .min(DRIVER_TIMEOUT_MS.max)
}

/// The CRD's CEL rule for [`heartbeat_timeout_min`], on `spec.scheduling` (an unset interval is
/// the default interval).
pub fn heartbeat_cel() -> String {
    format!(
        "!has(self.heartbeatTimeoutMs) || self.heartbeatTimeoutMs >= 2 * (has(self.heartbeatIntervalMs) ? self.heartbeatIntervalMs : {})",
        HEARTBEAT_INTERVAL_MS
            .default
            .unwrap_or(HEARTBEAT_INTERVAL_MS.min)
    )
}

/// Message of [`heartbeat_cel`], naming the field as the driver's error does.
pub const HEARTBEAT_CEL_MESSAGE: &str =
    "scheduling.heartbeatTimeoutMs: must be at least twice scheduling.heartbeatIntervalMs";

/// Under the `static` policy at least one executor must be left for batch jobs.
pub fn static_stream_executors_max(executors: u64) -> u64 {
    executors.saturating_sub(1)
}

/// The CRD's CEL rule for [`static_stream_executors_max`], on `spec`.
pub const STATIC_CEL: &str = "self.scheduling.policy != 'static' || self.scheduling.staticStreamExecutors < self.executor.replicas";

/// Message of [`STATIC_CEL`].
pub const STATIC_CEL_MESSAGE: &str = "scheduling.staticStreamExecutors: must be below executor.replicas so batch jobs keep at least one executor";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_defaults_respect_the_minimum() {
        for interval in [
            HEARTBEAT_INTERVAL_MS.min,
            250,
            1_000,
            HEARTBEAT_INTERVAL_MS.max,
        ] {
            let d = heartbeat_timeout_default(interval);
            assert!(d >= heartbeat_timeout_min(interval), "{interval}");
            assert!(d <= HEARTBEAT_TIMEOUT_MS.max);
        }
        assert!(heartbeat_cel().contains(": 250)"));
        for interval in [HEARTBEAT_INTERVAL_MS.min, 250, HEARTBEAT_INTERVAL_MS.max] {
            let d = driver_timeout_default(interval);
            assert!(d >= driver_timeout_min(interval), "{interval}");
            assert!(d > heartbeat_timeout_default(interval) || d == DRIVER_TIMEOUT_MS.max);
        }
    }
}
