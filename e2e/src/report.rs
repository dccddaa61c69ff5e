//! `target/twin-report.json` (or the kind run's report): per scenario `{name, passed,
//! seconds}`, the fraud-detection start figures, and the run's totals.

use std::path::Path;

use serde::Serialize;

use crate::scenarios::{Measurements, ScenarioResult};

/// The report written after a run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `twin` or `kind`.
    pub backend: String,
    /// Every scenario run.
    pub scenarios: Vec<ScenarioResult>,
    /// `kubectl apply` of fraud-detection to phase Running with both Ready conditions.
    pub apply_to_running_s: Option<f64>,
    /// `kubectl apply` of fraud-detection to its first stream micro-batch on `/metrics`.
    pub apply_to_first_microbatch_s: Option<f64>,
    /// `kubectl patch` of a running fraud-detection's `spec.scheduling` (policy fifo,
    /// quantumMs 500) to `status.scheduling` showing it in force, with no pod restarted.
    pub apply_live_scheduling_s: Option<f64>,
    /// Installing the operator (twin: CRD + the operator process; kind: `helm install`).
    pub install_operator_s: Option<f64>,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
    /// Scenarios passed / run.
    pub passed: usize,
    /// See `passed`.
    pub total: usize,
}

impl Report {
    /// Builds the report.
    pub fn new(
        backend: &str,
        scenarios: Vec<ScenarioResult>,
        m: &Measurements,
        install: Option<f64>,
        total_seconds: f64,
    ) -> Self {
        Self {
            backend: backend.into(),
            passed: scenarios.iter().filter(|s| s.passed).count(),
            total: scenarios.len(),
            scenarios,
            apply_to_running_s: m.get("apply_to_running_s").copied(),
            apply_to_first_microbatch_s: m.get("apply_to_first_microbatch_s").copied(),
            apply_live_scheduling_s: m.get("apply_live_scheduling_s").copied(),
            install_operator_s: install,
            total_seconds,
        }
    }

    /// Writes it as pretty JSON.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")
    }

    /// A table for the terminal.
    pub fn table(&self) -> String {
        let mut out = format!("{:<22} {:>6} {:>9}\n", "scenario", "result", "seconds");
        for s in &self.scenarios {
            out.push_str(&format!(
                "{:<22} {:>6} {:>9.1}\n",
                s.name,
                if s.passed { "pass" } else { "FAIL" },
                s.seconds
            ));
        }
        let fmt = |v: Option<f64>| v.map(|v| format!("{v:.1} s")).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{}/{} passed in {:.0} s; apply->Running {}, apply->first micro-batch {}, live scheduling {}, operator install {}\n",
            self.passed,
            self.total,
            self.total_seconds,
            fmt(self.apply_to_running_s),
            fmt(self.apply_to_first_microbatch_s),
            fmt(self.apply_live_scheduling_s),
            fmt(self.install_operator_s)
        ));
        out
    }
}
