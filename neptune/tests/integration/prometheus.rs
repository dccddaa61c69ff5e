//! A real Prometheus (the Debian `prometheus` server, scripts/install-test-tools.sh) scrapes a
//! local cluster and evaluates the chart's alerting rules; every query of the chart's Grafana
//! dashboard and every alert expression must then return data.
//!
//! The cluster runs `wordcount` with every kind of work the dashboard shows: the batch job `count`
//! repeats epoch after epoch over generated text (`jobs.count.runs=0`) on 1-core executors, so the
//! stream job `socket` suspends its tasks; `socket` reads lines this test serves over TCP through a
//! receiver, including lines the receiver must drop (not UTF-8, over its limit). Prometheus scrapes
//! the driver and both executors (their HTTP addresses come from the driver's `/status`) on
//! loopback, with static labels standing for what the chart's PodMonitor adds on Kubernetes
//! (`namespace`, `pod`, `neptune_dev_app`, `neptune_dev_role`), into a temporary storage dir.
//!
//! Dashboard variables are resolved as Grafana does: each variable's `label_values(metric, label)`
//! goes to the label-values API (so the variable queries are checked too) and its value replaces
//! `$var`; `$__rate_interval` becomes 30s. An alert expression `A <cmp> B` is evaluated as
//! `A <cmp> bool B`: one 0/1 sample per pair of series the comparison matches, so it returns data
//! whenever the comparison has something to compare, whatever the threshold. Conditions are also
//! created for real: a 1 ms latency target, dropped lines and a SIGKILLed executor must each make
//! their alert active. Queries over the operator's metrics need a running operator: `make twin`
//! checks them (e2e/src/prometheus.rs); here they are listed, not skipped silently. So are the
//! Kafka panels' queries, which need a broker: tests/integration/kafka/ checks their series (`make kafka`).

use crate::common;

use common::*;
use promql_parser::parser::{self, Expr};
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const NAMESPACE: &str = "neptune-test";
const APP: &str = "wordcount";
const RATE_INTERVAL: &str = "30s";
/// Generous: a loaded 2-core machine delays scrapes, rule evaluations and micro-batches.
const PATIENCE: Duration = Duration::from_secs(180);

fn chart_file(rel: &str) -> String {
    let path = format!(
        "{}/../charts/neptune-operator/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A Prometheus server on loopback, killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (address, labels) every second and evaluating
    /// `rules` every second; returns once it is ready.
    fn start(targets: &[(String, Vec<(&str, String)>)], rules: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut static_configs = String::new();
        for (addr, labels) in targets {
            static_configs += &format!("      - targets: ['{addr}']\n        labels:\n");
            for (k, v) in labels {
                static_configs += &format!("          {k}: '{v}'\n");
            }
        }
        // The scrape job is named as the Prometheus Operator names a PodMonitor's: Prometheus'
        // own `job` label, which Neptune's `neptune_job` no longer collides with.
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{}']\n\
             scrape_configs:\n  - job_name: 'neptune-system/neptune-operator-apps'\n    \
             static_configs:\n{static_configs}",
            rules.display()
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, &config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the prometheus server is installed (scripts/install-test-tools.sh)");
        let p = Self { child, addr, dir };
        wait_for(Duration::from_secs(60), "Prometheus to be ready", || {
            (http_get(&p.addr, "/-/ready").ok()?.0 == 200).then_some(())
        });
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{api}?{params}`; the `data` of a successful answer, else the error.
    fn api(&self, api: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let (code, body) = http_get(&self.addr, &format!("/api/v1/{api}?{query}"))
            .map_err(|e| format!("GET /api/v1/{api}: {e}"))?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if code != 200 || v["status"] != "success" {
            return Err(format!("{api} {params:?}: HTTP {code}: {body}"));
        }
        Ok(v["data"].clone())
    }

    /// Instant query; the result vector.
    fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", promql)])?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Polls `promql` until it returns a sample with a finite value; the samples, or a panic
    /// naming the query and what it last returned.
    fn until_data(&self, what: &str, promql: &str) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let last = self.query(promql);
            if let Ok(samples) = &last
                && samples.iter().any(|s| sample_value(s).is_finite())
            {
                return samples.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no data from `{promql}` within {PATIENCE:?}; last answer: {last:?}\n\
                 Prometheus log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Polls until alert `name` is pending or firing; its state.
    fn until_alert(&self, name: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let alerts = self.api("alerts", &[]).unwrap_or_default();
            if let Some(a) = alerts["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["labels"]["alertname"] == name)
            {
                return a["state"].as_str().unwrap_or_default().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "alert {name} never became active; alerts: {alerts}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The local cluster, killed if the test fails before stopping it cleanly.
struct Cluster(Option<Child>);

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sample_value(s: &Value) -> f64 {
    s["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Every metric name an expression selects.
fn selected_metrics(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Aggregate(a) => {
            selected_metrics(&a.expr, out);
            if let Some(p) = &a.param {
                selected_metrics(p, out);
            }
        }
        Expr::Unary(u) => selected_metrics(&u.expr, out),
        Expr::Binary(b) => {
            selected_metrics(&b.lhs, out);
            selected_metrics(&b.rhs, out);
        }
        Expr::Paren(p) => selected_metrics(&p.expr, out),
        Expr::Subquery(s) => selected_metrics(&s.expr, out),
        Expr::VectorSelector(v) => out.extend(v.name.clone()),
        Expr::MatrixSelector(m) => out.extend(m.vs.name.clone()),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selected_metrics(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn needs_operator(promql: &str) -> bool {
    selects_prefix(promql, "neptune_operator_")
}

/// Whether `promql` selects a Kafka source's series (or the source → commit latency only Kafka
/// jobs have): they need a broker, which `make test` does
/// not have (tests/integration/kafka/ checks them under `make kafka`).
fn needs_kafka(promql: &str) -> bool {
    selects_prefix(promql, "neptune_driver_kafka_")
        || selects_prefix(
            promql,
            neptune_core::metric_names::DRIVER_STREAM_SOURCE_TO_COMMIT,
        )
}

fn selects_prefix(promql: &str, prefix: &str) -> bool {
    let expr = parser::parse(promql).unwrap_or_else(|e| panic!("`{promql}` does not parse: {e}"));
    let mut names = Vec::new();
    selected_metrics(&expr, &mut names);
    names.iter().any(|n| n.starts_with(prefix))
}

/// `A <cmp> B` as `A <cmp> bool B` (see the module doc); other expressions unchanged.
fn comparison_as_bool(promql: &str) -> String {
    match parser::parse(promql).unwrap_or_else(|e| panic!("`{promql}` does not parse: {e}")) {
        Expr::Binary(mut b) if b.op.is_comparison_operator() => {
            b.modifier = Some(b.modifier.take().unwrap_or_default().with_return_bool(true));
            Expr::Binary(b).to_string()
        }
        other => other.to_string(),
    }
}

/// Serves text lines to whoever connects (the app's receiver, again after it moves), a few lines
/// every 20 ms; every 50th line is not UTF-8 and each connection gets one line over the
/// receiver's limit. Stops when `stop` is set, or after ten minutes whatever happens.
fn serve_lines(listener: TcpListener, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).unwrap();
    let end = Instant::now() + Duration::from_secs(600);
    let mut n = 0u64;
    'accept: while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let Ok((mut conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        conn.set_nonblocking(false).unwrap();
        let mut too_long = vec![b'x'; neptune_core::source_socket::MAX_LINE + 1];
        too_long.push(b'\n');
        if conn.write_all(&too_long).is_err() {
            continue;
        }
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            let mut chunk = Vec::new();
            for _ in 0..5 {
                n += 1;
                if n.is_multiple_of(50) {
                    chunk.extend_from_slice(b"\xff\xfe not utf-8\n");
                } else {
                    writeln!(chunk, "alpha beta w{} line{n}", n % 7).unwrap();
                }
            }
            if conn.write_all(&chunk).is_err() {
                continue 'accept; // the receiver's executor went away: wait for the next one
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Text files for the batch job: enough words that its tasks are running when micro-batches come.
fn write_input(dir: &Path) {
    for f in 0..4 {
        let mut text = String::new();
        for l in 0..40_000u64 {
            text += &format!("the quick w{} fox{} jumps over w{}\n", l % 97, f, l % 13);
        }
        std::fs::write(dir.join(format!("part-{f}.txt")), text).unwrap();
    }
}

#[test]
fn prometheus_scraping_a_local_cluster_answers_every_dashboard_query_and_alert() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    write_input(&input);
    let lines = TcpListener::bind("127.0.0.1:0").unwrap();
    let lines_addr = lines.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || serve_lines(lines, stop))
    };

    let http = format!("127.0.0.1:{}", free_port());
    let sets = [
        format!("input={}", input.display()),
        "jobs.count.runs=0".to_string(),
        "partitions=2".to_string(),
        format!("stream.socket={lines_addr}"),
        "jobs.socket.interval_ms=200".to_string(),
        // Below any micro-batch's latency: the latency alert's condition holds.
        "jobs.socket.latency_target_ms=1".to_string(),
    ];
    let mut cmd = neptune();
    cmd.args([
        "local",
        "--app",
        APP,
        "--executors",
        "2",
        "--cores",
        "1",
        "--quiet",
    ])
    .args(["--http", &http, "--duration", "600s"]);
    for s in &sets {
        cmd.args(["--set", s]);
    }
    let (cluster, pids) = spawn_with_executor_pids(cmd);
    let mut cluster = Cluster(Some(cluster));

    // The driver's and executors' HTTP addresses, once both executors registered.
    let executors: Vec<(String, String)> =
        wait_for(Duration::from_secs(120), "two executors registered", || {
            let s = status(&http)?;
            let e: Vec<(String, String)> = s["executors"]
                .as_array()?
                .iter()
                .filter_map(|e| Some((e["id"].as_str()?.into(), e["http"].as_str()?.into())))
                .collect();
            (e.len() == 2).then_some(e)
        });
    let labels = |role: &str, pod: String| {
        vec![
            ("namespace", NAMESPACE.to_string()),
            ("neptune_dev_app", APP.to_string()),
            ("neptune_dev_role", role.to_string()),
            ("pod", pod),
        ]
    };
    let mut targets = vec![(http.clone(), labels("driver", format!("{APP}-driver")))];
    for (id, addr) in &executors {
        targets.push((addr.clone(), labels("executor", format!("{APP}-{id}"))));
    }
    let rules_path = dir.path().join("neptune.rules.yaml");
    std::fs::write(&rules_path, chart_file("rules/neptune.rules.yaml")).unwrap();
    let prom = Prometheus::start(&targets, &rules_path);

    // Every target is scraped.
    prom.until_data("targets up", "count(up == 1) == 3");

    let dashboard: Value = serde_json::from_str(&chart_file("dashboards/neptune.json")).unwrap();
    let mut left_to_operator_test = Vec::new();
    let mut left_to_kafka_test = Vec::new();

    // Variables: `label_values(metric{...}, label)` through the label-values API, in order (a
    // later variable's query may use an earlier one).
    let mut vars: Vec<(String, String)> = vec![("$__rate_interval".into(), RATE_INTERVAL.into())];
    let substitute = |q: &str, vars: &[(String, String)]| {
        vars.iter()
            .fold(q.to_string(), |q, (k, v)| q.replace(k.as_str(), v))
    };
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(q) = var["query"]["query"].as_str() else {
            continue; // the data source picker
        };
        let name = var["name"].as_str().unwrap();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: expected label_values(...), got {q}"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let selector = substitute(selector.trim(), &vars);
        let deadline = Instant::now() + PATIENCE;
        let values = loop {
            let v = prom
                .api(
                    &format!("label/{}/values", label.trim()),
                    &[("match[]", &selector)],
                )
                .unwrap();
            let values: Vec<String> = serde_json::from_value(v).unwrap();
            if !values.is_empty() {
                break values;
            }
            assert!(Instant::now() < deadline, "variable {name}: no values");
            std::thread::sleep(Duration::from_millis(500));
        };
        let want = match name {
            "namespace" => NAMESPACE,
            "app" => APP,
            other => panic!("unexpected dashboard variable {other}"),
        };
        assert_eq!(values, [want], "variable {name} from {q}");
        eprintln!("variable ${name} = {values:?} (from {q})");
        vars.push((format!("${name}"), want.to_string()));
    }

    // Every panel's every query.
    let mut checked = 0;
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = substitute(t["expr"].as_str().unwrap(), &vars);
            let what = format!("panel {:?} {}", p["title"], t["refId"]);
            assert!(!expr.contains('$'), "{what}: unresolved variable in {expr}");
            if needs_operator(&expr) {
                left_to_operator_test.push(format!("{what}: {expr}"));
                continue;
            }
            if needs_kafka(&expr) {
                left_to_kafka_test.push(format!("{what}: {expr}"));
                continue;
            }
            let samples = prom.until_data(&what, &expr);
            eprintln!("ok: {what}: {} series, e.g. {}", samples.len(), samples[0]);
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "expected many dashboard queries, checked {checked}"
    );

    // Every rule evaluates without error in Prometheus.
    let rules_doc: serde_yaml::Value =
        serde_yaml::from_str(&chart_file("rules/neptune.rules.yaml")).unwrap();
    wait_for(PATIENCE, "every rule evaluated healthy", || {
        let groups = prom.api("rules", &[]).ok()?;
        let rules: Vec<&Value> = groups["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        for r in &rules {
            assert_ne!(
                r["health"], "err",
                "rule {} fails: {}",
                r["name"], r["lastError"]
            );
        }
        (!rules.is_empty() && rules.iter().all(|r| r["health"] == "ok")).then_some(())
    });

    // Every alert expression, as a `bool` comparison.
    let mut alerts = 0;
    for group in rules_doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().expect("only alerting rules");
            let expr = rule["expr"].as_str().unwrap();
            if needs_operator(expr) {
                left_to_operator_test.push(format!("alert {name}: {}", expr.trim()));
                continue;
            }
            let as_bool = comparison_as_bool(expr);
            let samples = prom.until_data(&format!("alert {name}"), &as_bool);
            eprintln!("ok: alert {name}: `{as_bool}` -> {samples:?}");
            alerts += 1;
        }
    }
    assert!(alerts >= 4, "expected the app alerts, checked {alerts}");

    // Conditions created for real.
    for name in [
        "NeptuneStreamLatencyOverTarget",
        "NeptuneStreamSloAttainmentLow",
        "NeptuneReceiverDroppingLines",
    ] {
        eprintln!("ok: alert {name} is {}", prom.until_alert(name));
    }
    let (victim, _) = &executors[0];
    let pid = *pids.lock().unwrap().get(victim).expect("executor pid");
    sigkill(pid);
    eprintln!(
        "ok: alert NeptuneExecutorLost is {} after SIGKILL of {victim}",
        prom.until_alert("NeptuneExecutorLost")
    );

    eprintln!(
        "left to a test with a running operator:\n  {}",
        left_to_operator_test.join("\n  ")
    );
    eprintln!(
        "left to tests/integration/kafka/ (`make kafka`):\n  {}",
        left_to_kafka_test.join("\n  ")
    );
    assert!(
        left_to_kafka_test.len() >= 3,
        "the Kafka panels: {left_to_kafka_test:?}"
    );
    let operator_queries = left_to_operator_test.len();
    assert!(
        operator_queries >= 5,
        "the operator's panels and alerts: {left_to_operator_test:?}"
    );

    stop.store(true, Ordering::Relaxed);
    terminate(cluster.0.take().expect("still running"));
    server.join().unwrap();
    drop(prom);
}
