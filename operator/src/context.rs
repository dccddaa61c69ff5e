//! Everything a reconcile needs, passed explicitly: API client, event reporter, metrics,
//! driver-status source, the clock and the planner's settings.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::config::Settings;
use crate::driver_status::DriverStatusSource;
use crate::metrics::Metrics;

/// Shared reconcile context.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Kubernetes Events about apps.
    pub recorder: Recorder,
    /// Operator metrics.
    pub metrics: Metrics,
    /// Reads drivers' `/status`.
    pub driver_status: Arc<dyn DriverStatusSource>,
    /// The clock (fixed in tests).
    pub now: fn() -> Timestamp,
    /// Operator-wide settings for the lifecycle planner.
    pub settings: Settings,
}

impl Context {
    /// A context with the real clock.
    pub fn new(
        client: Client,
        reporter: Reporter,
        metrics: Metrics,
        driver_status: Arc<dyn DriverStatusSource>,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            driver_status,
            now: Timestamp::now,
            settings: Settings::default(),
        }
    }
}
