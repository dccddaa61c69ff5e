//! The scenario list, shared by every back end, and the runner.
//!
//! Scenarios come in groups: a group's scenarios run in order on one app in its own namespace
//! (e.g. apply → micro-batches → scale → delete), groups run in parallel. The node-loss group
//! gets a cluster of its own where the back end can make one (a twin), since losing a node
//! would disturb the others; on kind it runs after the rest. A scenario that fails does not
//! stop its group: the next one checks its own preconditions and says what it found.

mod edits;
mod finite;
mod lifecycle;
mod scheduling;
mod start;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::app::App;
use crate::cluster::Cluster;
use crate::error::E2eError;

/// Every scenario, in report order: (group, name).
pub const SCENARIOS: &[(&str, &str)] = &[
    ("fraud", "install-and-apply"),
    ("fraud", "micro-batches"),
    ("fraud", "scale-executors"),
    ("restarts", "executor-killed"),
    ("restarts", "driver-killed"),
    ("edits", "spec-edits"),
    ("edits", "suspend-resume"),
    ("invalid", "invalid-spec"),
    ("node-lost", "node-lost"),
    ("ttl", "ttl-after-finish"),
    ("fraud", "delete"),
    ("wordcount", "wordcount-example"),
    ("edits", "live-scheduling"),
];

/// Groups in start order (`node-lost` needs its own cluster).
const GROUPS: &[&str] = &[
    "fraud",
    "restarts",
    "edits",
    "invalid",
    "ttl",
    "wordcount",
    "node-lost",
];

/// One scenario's result.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// What failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Figures scenarios measure (`apply_to_running_s`, ...).
pub type Measurements = std::collections::BTreeMap<String, f64>;

/// What scenarios need besides the cluster.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Repository root (examples).
    pub root: PathBuf,
    /// Where failure diagnostics are written.
    pub diagnostics: PathBuf,
}

/// Runs the selected scenarios (`only`: names or groups, empty = all; minus `skip`, names of
/// known failures) on `main`, with
/// `isolated` making a separate cluster for the node-loss group when the back end can.
pub async fn run_all<C, F, Fut>(
    main: &C,
    isolated: F,
    ctx: &Ctx,
    only: &[String],
    skip: &[String],
    parallel: usize,
) -> (Vec<ScenarioResult>, Measurements)
where
    C: Cluster,
    F: Fn() -> Option<Fut>,
    Fut: Future<Output = Result<C, E2eError>>,
{
    let wanted = |g: &str, n: &str| {
        (only.is_empty() || only.iter().any(|o| o == g || o == n)) && !skip.iter().any(|s| s == n)
    };
    let groups: Vec<&str> = GROUPS
        .iter()
        .copied()
        .filter(|g| SCENARIOS.iter().any(|(sg, n)| sg == g && wanted(sg, n)))
        .collect();
    let (node_lost, rest): (Vec<&str>, Vec<&str>) =
        groups.into_iter().partition(|g| *g == "node-lost");
    let mut results = Vec::new();
    let mut measurements = Measurements::new();
    let mut stream = futures::stream::iter(rest.iter().map(|g| group(main, g, ctx, &wanted)))
        .buffer_unordered(parallel.max(1));
    while let Some((r, m)) = stream.next().await {
        results.extend(r);
        measurements.extend(m);
    }
    drop(stream);
    for g in node_lost {
        match isolated() {
            Some(make) => match make.await {
                Ok(own) => {
                    let (r, m) = group(&own, g, ctx, &wanted).await;
                    results.extend(r);
                    measurements.extend(m);
                }
                Err(e) => results.extend(
                    SCENARIOS
                        .iter()
                        .filter(|(sg, n)| *sg == g && wanted(sg, n))
                        .map(|(_, n)| ScenarioResult {
                            name: (*n).to_string(),
                            passed: false,
                            seconds: 0.0,
                            error: Some(format!("its own cluster did not start: {e}")),
                        }),
                ),
            },
            None => {
                let (r, m) = group(main, g, ctx, &wanted).await;
                results.extend(r);
                measurements.extend(m);
            }
        }
    }
    let order = |n: &str| {
        SCENARIOS
            .iter()
            .position(|(_, s)| *s == n)
            .unwrap_or(usize::MAX)
    };
    results.sort_by_key(|r| order(&r.name));
    (results, measurements)
}

/// One group's scenarios in order, on one app in namespace `e2e-<group>`.
async fn group<C: Cluster>(
    c: &C,
    g: &str,
    ctx: &Ctx,
    wanted: &impl Fn(&str, &str) -> bool,
) -> (Vec<ScenarioResult>, Measurements) {
    let ns = format!("e2e-{g}");
    let app = App::new(c, &ns, app_name(g));
    let mut results = Vec::new();
    let mut m = Measurements::new();
    for (_, name) in SCENARIOS.iter().filter(|(sg, n)| *sg == g && wanted(sg, n)) {
        let start = Instant::now();
        eprintln!("[e2e {}] {name}: start", c.backend());
        let r = run_one(name, &app, ctx, &mut m).await;
        let seconds = start.elapsed().as_secs_f64();
        let error = match r {
            Ok(()) => None,
            Err(e) => {
                let diag = app.diagnose().await;
                let file = ctx.diagnostics.join(format!("{name}.txt"));
                let _ = std::fs::create_dir_all(&ctx.diagnostics);
                let _ = std::fs::write(&file, format!("{e}\n\n{diag}"));
                eprintln!(
                    "[e2e {}] {name}: FAILED: {e} (diagnostics: {})",
                    c.backend(),
                    file.display()
                );
                Some(e.to_string())
            }
        };
        eprintln!(
            "[e2e {}] {name}: {} in {seconds:.1} s",
            c.backend(),
            if error.is_none() { "passed" } else { "failed" }
        );
        results.push(ScenarioResult {
            name: (*name).to_string(),
            passed: error.is_none(),
            seconds,
            error,
        });
    }
    (results, m)
}

/// The app a group works on.
fn app_name(group: &str) -> &'static str {
    match group {
        "wordcount" => "wordcount",
        "ttl" => "finite",
        "invalid" => "refused",
        _ => "fraud-detection",
    }
}

async fn run_one<C: Cluster>(
    name: &str,
    app: &App<'_, C>,
    ctx: &Ctx,
    m: &mut Measurements,
) -> Result<(), E2eError> {
    let root: &Path = &ctx.root;
    match name {
        "install-and-apply" => start::install_and_apply(app, root, m).await,
        "micro-batches" => start::micro_batches(app).await,
        "scale-executors" => lifecycle::scale(app).await,
        "executor-killed" => lifecycle::executor_killed(app, root).await,
        "driver-killed" => lifecycle::driver_killed(app, root).await,
        "spec-edits" => edits::spec_edits(app, root).await,
        "suspend-resume" => edits::suspend_resume(app, root).await,
        "live-scheduling" => scheduling::live_scheduling(app, root, m).await,
        "invalid-spec" => edits::invalid_spec(app, root).await,
        "node-lost" => lifecycle::node_lost(app, root).await,
        "ttl-after-finish" => finite::ttl_after_finish(app, root).await,
        "delete" => finite::delete(app).await,
        "wordcount-example" => finite::wordcount(app, root).await,
        other => Err(E2eError::Failed(format!("unknown scenario {other}"))),
    }
}
