//! The operator's Prometheus metrics: reconciles, errors by category, reconcile duration, apps
//! by phase, watch errors, leadership. Names come from `neptune_core::metric_names`.

use std::collections::HashMap;

use neptune_core::metric_names as names;
use neptune_crds::v1alpha1::AppPhase;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Operator metrics, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles run.
    pub reconciles: IntCounter,
    /// Reconcile errors by category.
    pub errors: IntCounterVec,
    /// Reconcile duration.
    pub duration: HistogramVec,
    /// Apps by phase.
    pub apps: IntGaugeVec,
    /// Controller watch errors.
    pub watch_errors: IntCounter,
    /// 1 while this replica leads.
    pub leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounter::new(names::OPERATOR_RECONCILES, "Reconciliations run")
            .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                names::OPERATOR_RECONCILE_ERRORS,
                "Reconcile errors by category",
            ),
            &["category"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                names::OPERATOR_RECONCILE_DURATION,
                "Reconcile duration in seconds",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &[],
        )
        .expect("valid metric");
        let apps = IntGaugeVec::new(
            Opts::new(names::OPERATOR_APPS, "StreamBatchApps by phase"),
            &["phase"],
        )
        .expect("valid metric");
        let watch_errors = IntCounter::new(
            names::OPERATOR_WATCH_ERRORS,
            "Errors listing or watching StreamBatchApps, Pods or Services",
        )
        .expect("valid metric");
        let leader = IntGauge::new(
            names::OPERATOR_LEADER,
            "1 while this replica holds the leader lease",
        )
        .expect("valid metric");
        for m in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(apps.clone()),
            Box::new(watch_errors.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(m).expect("metric registered once");
        }
        for category in crate::error::CATEGORIES {
            errors.with_label_values(&[category]).inc_by(0);
        }
        Self {
            registry,
            reconciles,
            errors,
            duration,
            apps,
            watch_errors,
            leader,
        }
    }

    /// Sets the apps-by-phase gauge from the phases of every app (phases with no app report 0).
    pub fn set_phases(&self, phases: impl IntoIterator<Item = Option<AppPhase>>) {
        let mut counts: HashMap<&'static str, i64> =
            AppPhase::ALL.iter().map(|p| (p.as_str(), 0)).collect();
        counts.insert("Unknown", 0);
        for p in phases {
            *counts
                .entry(p.map_or("Unknown", AppPhase::as_str))
                .or_default() += 1;
        }
        for (phase, n) in counts {
            self.apps.with_label_values(&[phase]).set(n);
        }
    }

    /// Text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
