//! `neptune-e2e`: runs the end-to-end scenarios on the cluster twin (`neptune-e2e twin`, what
//! `make twin` runs) or on an existing kind cluster (`neptune-e2e kind`, what `e2e/run.sh`
//! runs), writes the JSON report and exits non-zero when a scenario failed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use neptune_e2e::cluster::Cluster;
use neptune_e2e::kind::{KindCluster, KindOptions};
use neptune_e2e::kubectl::Kubectl;
use neptune_e2e::prometheus::Prometheus;
use neptune_e2e::report::Report;
use neptune_e2e::scenarios::{self, Ctx};
use neptune_e2e::twin::{TwinCluster, TwinOptions};

#[derive(Debug, Parser)]
#[command(
    name = "neptune-e2e",
    about = "Neptune's end-to-end scenarios on the cluster twin or kind"
)]
struct Cli {
    #[command(subcommand)]
    backend: Backend,
}

#[derive(Debug, Subcommand)]
enum Backend {
    /// On the cluster twin, started here.
    Twin(TwinArgs),
    /// On an existing kind cluster.
    Kind(KindArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Repository root (examples, CRD, chart).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// kubectl to use.
    #[arg(long, default_value = ".tools/bin/kubectl")]
    kubectl: PathBuf,
    /// Where the JSON report goes.
    #[arg(long)]
    report: PathBuf,
    /// Only these scenarios or groups (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Scenarios left out as known failures (comma-separated names; printed, never silent).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Scenario groups run at once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    parallel: u16,
}

#[derive(Debug, Args)]
struct TwinArgs {
    #[command(flatten)]
    common: Common,
    /// Directory with the built `neptune`, `neptune-operator` and `neptune-pod-init`.
    #[arg(long, default_value = "target/ci")]
    bin_dir: PathBuf,
    /// Twins' state, logs and kubeconfigs (kept when a scenario fails).
    #[arg(long, default_value = "target/twin-e2e")]
    work_dir: PathBuf,
    /// Image apps run (any `neptune:*` is the built binaries).
    #[arg(long, default_value = "neptune:dev")]
    image: String,
    /// Nodes of the main twin.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=50))]
    nodes: u16,
}

#[derive(Debug, Args)]
struct KindArgs {
    #[command(flatten)]
    common: Common,
    /// kubectl context of the cluster.
    #[arg(long, default_value = "kind-neptune-e2e")]
    context: String,
    /// The image loaded into the cluster (also loaded as `<image>-b` for the image edit).
    #[arg(long, default_value = "neptune:e2e")]
    image: String,
    /// helm to use.
    #[arg(long, default_value = ".tools/bin/helm")]
    helm: PathBuf,
    /// Namespace of the operator.
    #[arg(long, default_value = "neptune-system")]
    operator_namespace: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ok = match cli.backend {
        Backend::Twin(a) => {
            let root = std::fs::canonicalize(&a.common.root)?;
            let abs = |p: &PathBuf| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    root.join(p)
                }
            };
            let opts = TwinOptions {
                bin_dir: abs(&a.bin_dir),
                kubectl: abs(&a.common.kubectl),
                crd: root.join("crds/streambatchapp.yaml"),
                nodes: usize::from(a.nodes),
                work_dir: abs(&a.work_dir),
                image: a.image.clone(),
            };
            let main = TwinCluster::start("main", opts.clone()).await?;
            let isolated = || {
                let opts = TwinOptions {
                    nodes: 3,
                    ..opts.clone()
                };
                Some(async move {
                    let c = TwinCluster::start("node-lost", opts).await?;
                    c.install_operator().await?;
                    Ok(c)
                })
            };
            let ok = run(&main, isolated, &a.common, &root).await?;
            if ok {
                main.remove_files();
            } else {
                eprintln!("twin state and logs kept in {}", opts.work_dir.display());
            }
            ok
        }
        Backend::Kind(a) => {
            let root = std::fs::canonicalize(&a.common.root)?;
            let abs = |p: &PathBuf| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    root.join(p)
                }
            };
            let cluster = KindCluster::new(KindOptions {
                kubectl: Kubectl {
                    bin: abs(&a.common.kubectl),
                    kubeconfig: None,
                    context: Some(a.context.clone()),
                },
                helm: abs(&a.helm),
                chart: root.join("charts/neptune-operator"),
                image: a.image.clone(),
                operator_namespace: a.operator_namespace.clone(),
            });
            run(
                &cluster,
                || None::<std::future::Ready<Result<KindCluster, _>>>,
                &a.common,
                &root,
            )
            .await?
        }
    };
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn run<C, F, Fut>(
    c: &C,
    isolated: F,
    common: &Common,
    root: &std::path::Path,
) -> anyhow::Result<bool>
where
    C: Cluster,
    F: Fn() -> Option<Fut>,
    Fut: std::future::Future<Output = Result<C, neptune_e2e::error::E2eError>>,
{
    let start = Instant::now();
    let report_path = if common.report.is_absolute() {
        common.report.clone()
    } else {
        root.join(&common.report)
    };
    let ctx = Ctx {
        root: root.to_path_buf(),
        diagnostics: report_path.with_extension("d"),
    };
    let _ = std::fs::remove_dir_all(&ctx.diagnostics);
    let skip: Vec<String> = common
        .skip
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    if let Some(bad) = skip
        .iter()
        .find(|s| !scenarios::SCENARIOS.iter().any(|(_, n)| n == s))
    {
        anyhow::bail!("--skip: no scenario named {bad:?}");
    }
    if !skip.is_empty() {
        eprintln!(
            "[e2e {}] left out as known failures: {}",
            c.backend(),
            skip.join(", ")
        );
    }
    eprintln!("[e2e {}] installing the operator", c.backend());
    let t = Instant::now();
    let install = c.install_operator().await;
    let install_s = t.elapsed().as_secs_f64();
    let (results, m) = match install {
        Ok(()) => {
            // Prometheus scrapes the operator for the whole run (the twin's operator runs here;
            // on kind the chart's ServiceMonitor is for the cluster's own Prometheus). Only a
            // full run reconciles enough to give every operator query data.
            let prom_dir = report_path.with_extension("prometheus");
            let mut prom = match c.operator_metrics().filter(|_| common.only.is_empty()) {
                Some(target) => Some(Prometheus::start(root, &prom_dir, &target).await),
                None => None,
            };
            let (mut results, m) = scenarios::run_all(
                c,
                isolated,
                &ctx,
                &common.only,
                &skip,
                usize::from(common.parallel),
            )
            .await;
            if let Some(p) = prom.as_mut() {
                let t = Instant::now();
                let outcome = match p {
                    Ok(p) => p
                        .check_operator_queries(root, Duration::from_secs(120))
                        .await
                        .map_err(|e| format!("{e}\n{}", p.log())),
                    Err(e) => Err(e.to_string()),
                };
                eprintln!("[e2e {}] operator-metrics: {outcome:?}", c.backend());
                results.push(scenarios::ScenarioResult {
                    name: "operator-metrics".into(),
                    passed: outcome.is_ok(),
                    seconds: t.elapsed().as_secs_f64(),
                    error: outcome.err(),
                });
            }
            drop(prom);
            let _ = std::fs::remove_dir_all(&prom_dir);
            (results, m)
        }
        Err(e) => {
            eprintln!(
                "[e2e {}] operator install failed: {e}\n{}",
                c.backend(),
                c.operator_logs().await
            );
            let failed = scenarios::SCENARIOS
                .iter()
                .filter(|(_, n)| !skip.iter().any(|s| s == n))
                .map(|(_, n)| scenarios::ScenarioResult {
                    name: (*n).to_string(),
                    passed: false,
                    seconds: 0.0,
                    error: Some(format!("operator install failed: {e}")),
                })
                .collect();
            (failed, Default::default())
        }
    };
    let report = Report::new(
        c.backend(),
        results,
        &m,
        Some(install_s),
        start.elapsed().as_secs_f64(),
    );
    report.write(&report_path)?;
    eprint!("{}", report.table());
    eprintln!("report: {}", report_path.display());
    Ok(report.passed == report.total)
}
