//! A real Prometheus (Debian's `prometheus` server, installed by scripts/install-test-tools.sh)
//! scrapes the operator for the whole twin run and evaluates the chart's alerting rules; at the
//! end every query of the chart's Grafana dashboard and every alert expression over the
//! operator's metrics (`neptune_operator_*`) must return data. The apps' own queries are checked
//! the same way against a local cluster by `neptune/tests/integration/prometheus.rs`; this is the part that
//! needs a running operator reconciling real apps.
//!
//! The scrape job is named as the chart's ServiceMonitor makes Prometheus name it
//! (`serviceMonitor/<ns>/<name>/0`) and carries the `namespace` label it adds.
//! `$__rate_interval` becomes 30s (scrapes every second). An alert expression `A <cmp> B` is
//! evaluated as `A <cmp> bool B`, which returns data whenever there is something to compare,
//! whatever the threshold (the twin's apps do not fail, nor the operator's reconciles).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use promql_parser::parser::{self, Expr};
use serde_json::Value;

use crate::error::E2eError;
use crate::http;

/// What `$__rate_interval` stands for.
const RATE_INTERVAL: &str = "30s";

fn fail(what: &str) -> impl Fn(String) -> E2eError + '_ {
    move |e| E2eError::Failed(format!("prometheus: {what}: {e}"))
}

/// A Prometheus server on loopback scraping one target; killed on drop.
pub struct Prometheus {
    child: tokio::process::Child,
    addr: String,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `dir` scraping `target` (`host:port`) every second with the chart's
    /// rules, and waits until it is ready.
    ///
    /// # Errors
    /// The binary is missing, or it does not become ready within a minute.
    pub async fn start(root: &Path, dir: &Path, target: &str) -> Result<Self, E2eError> {
        std::fs::create_dir_all(dir).map_err(|e| fail("work dir")(e.to_string()))?;
        let rules = root.join("charts/neptune-operator/rules/neptune.rules.yaml");
        let config = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}']\n\
             scrape_configs:\n\
             - job_name: serviceMonitor/neptune-system/neptune-operator/0\n  \
             static_configs: [{{targets: ['{target}'], labels: {{namespace: neptune-system}}}}]\n",
            rules.display()
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(|e| fail("config")(e.to_string()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| fail("free port")(e.to_string()))?;
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("prometheus.log"))
            .map_err(|e| fail("log")(e.to_string()))?;
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                fail("starting `prometheus`")(format!(
                    "{e} (make tools installs it: scripts/install-test-tools.sh)"
                ))
            })?;
        let p = Self {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        let ready = format!("http://{}/-/ready", p.addr);
        crate::wait::until("Prometheus ready", Duration::from_secs(60), || async {
            http::get(&ready)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await?;
        Ok(p)
    }

    /// Prometheus' log (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", promql)
            .finish();
        let body = http::get(&format!("http://{}/api/v1/query?{q}", self.addr))
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if v["status"] != "success" {
            return Err(body);
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Every operator query of the dashboard and the rules returns data (waiting up to
    /// `patience` for each: rates need two scrapes in their window). Returns how many.
    ///
    /// # Errors
    /// The first query with no data, naming it; or fewer queries than the chart has.
    pub async fn check_operator_queries(
        &mut self,
        root: &Path,
        patience: Duration,
    ) -> Result<usize, E2eError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(fail("server")(format!(
                "exited ({status}):\n{}",
                self.log()
            )));
        }
        let queries = operator_queries(root)?;
        // The dashboard's four operator panels and the two operator alerts, at least.
        if queries.len() < 6 {
            return Err(fail("chart")(format!(
                "expected the operator's panels and alerts, found {queries:?}"
            )));
        }
        for (what, expr) in &queries {
            let samples = crate::wait::until(what, patience, || async {
                match self.query(expr).await {
                    Ok(s) if !s.is_empty() => Ok(s),
                    Ok(_) => Err(format!("`{expr}` returned no data")),
                    Err(e) => Err(e),
                }
            })
            .await?;
            eprintln!(
                "[e2e] prometheus ok: {what}: {} series, e.g. {}",
                samples.len(),
                samples[0]
            );
        }
        Ok(queries.len())
    }
}

/// Metric names an expression selects.
fn selected(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::Aggregate(a) => {
            selected(&a.expr, out);
            if let Some(p) = &a.param {
                selected(p, out);
            }
        }
        Expr::Unary(u) => selected(&u.expr, out),
        Expr::Binary(b) => {
            selected(&b.lhs, out);
            selected(&b.rhs, out);
        }
        Expr::Paren(p) => selected(&p.expr, out),
        Expr::Subquery(s) => selected(&s.expr, out),
        Expr::VectorSelector(v) => out.extend(v.name.clone()),
        Expr::MatrixSelector(m) => out.extend(m.vs.name.clone()),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selected(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn parse(what: &str, promql: &str) -> Result<Expr, E2eError> {
    parser::parse(promql).map_err(|e| fail(what)(format!("`{promql}` does not parse: {e}")))
}

fn over_operator(expr: &Expr) -> bool {
    let mut names = Vec::new();
    selected(expr, &mut names);
    names.iter().any(|n| n.starts_with("neptune_operator_"))
}

/// (what, PromQL) of every dashboard panel query and alert over the operator's metrics, with
/// `$__rate_interval` resolved and comparisons turned into `bool` comparisons.
///
/// # Errors
/// The chart's files are missing or do not parse.
pub fn operator_queries(root: &Path) -> Result<Vec<(String, String)>, E2eError> {
    let chart = root.join("charts/neptune-operator");
    let read =
        |rel: &str| std::fs::read_to_string(chart.join(rel)).map_err(|e| fail(rel)(e.to_string()));
    let dashboard: Value = serde_json::from_str(&read("dashboards/neptune.json")?)
        .map_err(|e| fail("dashboard")(e.to_string()))?;
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            let Some(expr) = t["expr"].as_str() else {
                continue;
            };
            let expr = expr.replace("$__rate_interval", RATE_INTERVAL);
            let what = format!("panel {} {}", p["title"], t["refId"]);
            if over_operator(&parse(&what, &expr)?) {
                out.push((what, expr));
            }
        }
    }
    let rules: serde_yaml::Value = serde_yaml::from_str(&read("rules/neptune.rules.yaml")?)
        .map_err(|e| fail("rules")(e.to_string()))?;
    for rule in rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().into_iter().flatten())
    {
        let (Some(name), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str()) else {
            continue;
        };
        let what = format!("alert {name}");
        let parsed = parse(&what, expr)?;
        if !over_operator(&parsed) {
            continue;
        }
        let as_bool = match parsed {
            Expr::Binary(mut b) if b.op.is_comparison_operator() => {
                b.modifier = Some(b.modifier.take().unwrap_or_default().with_return_bool(true));
                Expr::Binary(b).to_string()
            }
            other => other.to_string(),
        };
        out.push((what, as_bool));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_charts_operator_queries_are_found_and_alerts_become_bool() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let q = operator_queries(&root).unwrap();
        assert!(q.len() >= 6, "{q:?}");
        let failed = q
            .iter()
            .find(|(w, _)| w == "alert NeptuneAppFailed")
            .expect("the NeptuneAppFailed alert");
        assert!(failed.1.contains("> bool 0"), "{}", failed.1);
        assert!(q.iter().all(|(_, e)| !e.contains('$')), "{q:?}");
    }
}
