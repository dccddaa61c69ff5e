//! The Grafana dashboard in the chart parses, has the panels users need, and queries only metrics
//! Neptune exports (`neptune_core::metric_names`).

use neptune_core::metric_names::is_known_series;
use serde_json::Value;

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/neptune-operator/dashboards/neptune.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard JSON parses")
}

fn panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(panels(p));
    }
    out
}

/// Every `neptune_*` identifier in a PromQL expression.
fn series(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("neptune_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |e| start + e);
        let name = &expr[start..end];
        // `neptune_dev_app` is the pod label Prometheus copies from `neptune.dev/app`.
        if boundary && name != "neptune_dev_app" {
            out.push(name.to_string());
        }
        i = end;
    }
    out
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let d = dashboard();
    let mut seen = 0;
    let mut exprs: Vec<String> = panels(&d)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    for var in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    for expr in &exprs {
        for s in series(expr) {
            assert!(
                is_known_series(&s),
                "the dashboard queries `{s}`, which no Neptune process exports"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 20,
        "expected the dashboard to query many series, saw {seen}"
    );
}

#[test]
fn dashboard_has_the_panels_the_issue_lists() {
    let d = dashboard();
    let titles: Vec<&str> = panels(&d)
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for want in [
        "Stream latency p99 per job",
        "Batch throughput per job",
        "Running tasks per executor",
        "Suspended tasks per executor",
        "Suspension rate",
        "Suspend latency",
        "Executor memory",
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
}

#[test]
fn series_extraction_sees_histogram_suffixes() {
    assert_eq!(
        series(
            "histogram_quantile(0.99, rate(neptune_driver_stream_latency_seconds_bucket{neptune_dev_app=\"x\"}[5m]))"
        ),
        ["neptune_driver_stream_latency_seconds_bucket"]
    );
}
