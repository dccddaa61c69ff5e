//! The chart's Grafana dashboard and alerting rules, read without a Prometheus: every query parses
//! as PromQL (promql-parser), selects only metrics Neptune exports (`neptune_core::metric_names`)
//! and uses only labels that exist on them — Neptune's own (`neptune_job`, never Prometheus'
//! `job`) or the ones the chart's monitors add — and the dashboard has the panels users need.
//! neptune/tests/integration/prometheus.rs runs the same queries against a real Prometheus.

use neptune_core::metric_names::{JOB_LABEL, LABELS, is_known_series};
use promql_parser::parser::{self, Expr, LabelModifier};
use serde_json::Value;

/// Labels Prometheus adds to the apps' series when the chart's PodMonitor scrapes them (pod
/// target labels included), and `le` of histogram buckets.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "neptune_dev_app",
    "neptune_dev_role",
    "le",
];

fn chart_file(rel: &str) -> String {
    let path = format!(
        "{}/../charts/neptune-operator/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&chart_file("dashboards/neptune.json")).expect("dashboard JSON parses")
}

fn panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(panels(p));
    }
    out
}

/// What an expression selects and which labels it names.
#[derive(Default, Debug)]
struct Uses {
    metrics: Vec<String>,
    labels: Vec<String>,
}

impl Uses {
    fn of(promql: &str) -> Self {
        let e = parser::parse(promql).unwrap_or_else(|e| panic!("`{promql}` is not PromQL: {e}"));
        let mut u = Self::default();
        u.walk(&e);
        u
    }

    fn grouping(&mut self, m: Option<&LabelModifier>) {
        if let Some(m) = m {
            self.labels.extend(m.labels().labels.iter().cloned());
        }
    }

    fn walk(&mut self, e: &Expr) {
        match e {
            Expr::Aggregate(a) => {
                self.grouping(a.modifier.as_ref());
                self.walk(&a.expr);
                if let Some(p) = &a.param {
                    self.walk(p);
                }
            }
            Expr::Binary(b) => {
                if let Some(m) = &b.modifier {
                    self.grouping(m.matching.as_ref());
                    if let Some(l) = m.card.labels() {
                        self.labels.extend(l.labels.iter().cloned());
                    }
                }
                self.walk(&b.lhs);
                self.walk(&b.rhs);
            }
            Expr::Unary(u) => self.walk(&u.expr),
            Expr::Paren(p) => self.walk(&p.expr),
            Expr::Subquery(s) => self.walk(&s.expr),
            Expr::VectorSelector(v) => self.selector(v),
            Expr::MatrixSelector(m) => self.selector(&m.vs),
            Expr::Call(c) => c.args.args.iter().for_each(|a| self.walk(a)),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }

    fn selector(&mut self, v: &parser::VectorSelector) {
        self.metrics.extend(v.name.clone());
        self.labels
            .extend(v.matchers.matchers.iter().map(|m| m.name.clone()));
    }
}

/// The dashboard's queries with Grafana's variables replaced by valid PromQL, each with where it
/// comes from; `label_values(selector, label)` variable queries yield their selector and label.
fn dashboard_queries() -> Vec<(String, String, Vec<String>)> {
    let d = dashboard();
    let grafana = |q: &str| {
        q.replace("$__rate_interval", "5m")
            .replace("$namespace", ".*")
            .replace("$app", ".*")
    };
    let mut out = Vec::new();
    for p in panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let legend = t["legendFormat"].as_str().unwrap_or_default();
            let legend_labels = legend
                .split("{{")
                .skip(1)
                .filter_map(|s| s.split_once("}}").map(|(l, _)| l.trim().to_string()))
                .collect();
            out.push((
                format!("panel {:?} {}", p["title"], t["refId"]),
                grafana(t["expr"].as_str().unwrap()),
                legend_labels,
            ));
        }
    }
    for var in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            let (selector, label) = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|r| r.rsplit_once(','))
                .unwrap_or_else(|| panic!("variable query {q}: expected label_values(sel, label)"));
            out.push((
                format!("variable {}", var["name"]),
                grafana(selector),
                vec![label.trim().to_string()],
            ));
        }
    }
    out
}

fn known_label(l: &str) -> bool {
    LABELS.contains(&l) || TARGET_LABELS.contains(&l)
}

#[test]
fn every_dashboard_query_parses_and_uses_only_exported_metrics_and_labels() {
    let mut seen = 0;
    for (what, expr, extra_labels) in dashboard_queries() {
        let u = Uses::of(&expr);
        assert!(!u.metrics.is_empty(), "{what}: selects no metric: {expr}");
        for m in &u.metrics {
            assert!(
                is_known_series(m),
                "{what} queries `{m}`, which no Neptune process exports"
            );
            seen += 1;
        }
        for l in u.labels.iter().chain(&extra_labels) {
            assert!(
                known_label(l),
                "{what} uses label `{l}`, which Neptune's series do not have (the Neptune job is \
                 `{JOB_LABEL}`): {expr}"
            );
        }
    }
    assert!(
        seen >= 25,
        "expected the dashboard to query many series, saw {seen}"
    );
}

#[test]
fn per_job_panels_group_by_the_neptune_job_label() {
    for (what, expr, legend) in dashboard_queries() {
        let u = Uses::of(&expr);
        let per_job = u.metrics.iter().any(|m| {
            m.starts_with("neptune_driver_stream_latency")
                || m.starts_with("neptune_driver_job_")
                || m.starts_with("neptune_driver_batch_")
        });
        if per_job {
            assert!(
                u.labels.iter().any(|l| l == JOB_LABEL) && legend.iter().any(|l| l == JOB_LABEL),
                "{what}: a per-job query should group and label by {JOB_LABEL}: {expr}"
            );
        }
    }
}

#[test]
fn dashboard_has_the_panels_users_need() {
    let d = dashboard();
    let titles: Vec<&str> = panels(&d)
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for want in [
        "Stream latency p99 per job",
        "Stream SLO attainment per job",
        "SLO guard per stream job",
        "Batch throughput per job",
        "Running tasks per executor",
        "Suspended tasks per executor",
        "Suspension rate",
        "Suspend latency",
        "Executor memory",
        "Receiver lines per source",
        "Receiver dropped lines",
        "Receiver buffered bytes",
        "Receiver connection",
        "Kafka lag per partition",
        "Apps by phase",
    ] {
        assert!(titles.contains(&want), "missing panel {want}: {titles:?}");
    }
    let ids: Vec<i64> = panels(&d)
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "panel ids must be unique");
    // Every receiver and Kafka metric Neptune exports is on the dashboard.
    let queried: Vec<String> = dashboard_queries()
        .iter()
        .flat_map(|(_, e, _)| Uses::of(e).metrics)
        .collect();
    for m in neptune_core::metric_names::ALL.iter().filter(|m| {
        m.starts_with("neptune_executor_receiver_") || m.starts_with("neptune_driver_kafka_")
    }) {
        assert!(
            queried.iter().any(|q| q == m),
            "no panel shows the metric {m}"
        );
    }
}

#[test]
fn alert_rules_use_only_exported_metrics_and_labels() {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&chart_file("rules/neptune.rules.yaml")).expect("rules parse");
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alerting rules only");
            let u = Uses::of(rule["expr"].as_str().unwrap());
            let operator = u.metrics.iter().all(|m| m.starts_with("neptune_operator_"));
            for m in &u.metrics {
                assert!(is_known_series(m), "alert {name} queries unknown `{m}`");
            }
            for l in &u.labels {
                // `job` here is Prometheus' scrape job, naming the operator's installation.
                let ok = known_label(l) || (operator && l == "job");
                assert!(ok, "alert {name} uses label `{l}` that its series lack");
            }
            for key in ["summary", "description"] {
                assert!(
                    rule["annotations"][key]
                        .as_str()
                        .is_some_and(|s| !s.is_empty()),
                    "alert {name} lacks annotation {key}"
                );
            }
            assert!(
                rule["labels"]["severity"].as_str().is_some(),
                "alert {name} has no severity"
            );
            alerts.push(name.to_string());
        }
    }
    for want in [
        "NeptuneStreamLatencyOverTarget",
        "NeptuneStreamSloAttainmentLow",
        "NeptuneExecutorLost",
        "NeptuneAppFailed",
        "NeptuneOperatorReconcileErrors",
    ] {
        assert!(alerts.iter().any(|a| a == want), "missing alert {want}");
    }
}
