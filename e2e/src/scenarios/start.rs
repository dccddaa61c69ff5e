//! Scenarios 1–2: the fraud-detection example as shipped reaches Running, and its stream
//! micro-batches keep completing.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Measurements;
use crate::app::{self, App};
use crate::cluster::Cluster;
use crate::error::E2eError;
use crate::wait;

/// Scenario 1: `kubectl apply --server-side` of `examples/k8s/fraud-detection.yaml` (only the image
/// swapped for the cluster's); phase Running with DriverReady and ExecutorsReady; measures
/// `apply_to_running_s` and `apply_to_first_microbatch_s` (the first stream micro-batch on
/// the driver's `/metrics`); the app's NetworkPolicy exists and admits only its pods to the
/// cluster ports. The operator was installed by the runner.
pub async fn install_and_apply<C: Cluster>(
    a: &App<'_, C>,
    root: &Path,
    m: &mut Measurements,
) -> Result<(), E2eError> {
    a.namespace().await?;
    let manifest = app::manifest(root, "fraud-detection", &a.name, a.c.image(), |_| {})?;
    let t0 = Instant::now();
    a.apply(&manifest).await?;
    a.wait_running().await?;
    m.insert("apply_to_running_s".into(), t0.elapsed().as_secs_f64());
    let first = wait::until(
        "the first stream micro-batch on the driver's /metrics",
        app::TIMEOUT,
        || async {
            match a.stream_runs().await {
                Ok(n) if n > 0 => Ok(n),
                Ok(n) => Err(format!("{n} micro-batches")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    m.insert(
        "apply_to_first_microbatch_s".into(),
        t0.elapsed().as_secs_f64(),
    );
    eprintln!("[e2e] first micro-batch seen ({first} so far)");
    // The app's NetworkPolicy: its pods, and only they, on the cluster ports.
    let policy = format!("{}-neptune", a.name);
    let np =
        a.c.kubectl()
            .get(&a.ns, "networkpolicy", &policy)
            .await?
            .ok_or_else(|| E2eError::Failed(format!("no NetworkPolicy {policy}")))?;
    let selected = &np["spec"]["podSelector"]["matchLabels"]["neptune.dev/app"];
    let from =
        &np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["neptune.dev/app"];
    if selected.as_str() != Some(a.name.as_str()) || from != selected {
        return Err(E2eError::Failed(format!(
            "NetworkPolicy {policy} does not limit the app's cluster ports to its pods: {np}"
        )));
    }
    // The printer columns work: `kubectl get sba` shows the phase.
    let table =
        a.c.kubectl()
            .run(&["get", "sba", &a.name, "-n", &a.ns])
            .await?;
    if !(table.contains("PHASE") && table.contains("Running")) {
        return Err(E2eError::Failed(format!(
            "kubectl get sba does not show the phase:\n{table}"
        )));
    }
    Ok(())
}

/// Scenario 2: Micro-batches keep completing: the stream job's run counter grows by at least three.
pub async fn micro_batches<C: Cluster>(a: &App<'_, C>) -> Result<(), E2eError> {
    a.wait_running().await?;
    let before = wait::until(
        "the driver's /metrics",
        Duration::from_secs(120),
        || async { a.stream_runs().await.map_err(|e| e.to_string()) },
    )
    .await?;
    wait::until(
        &format!("stream micro-batches past {before} + 3"),
        app::TIMEOUT,
        || async {
            match a.stream_runs().await {
                Ok(n) if n >= before + 3 => Ok(n),
                Ok(n) => Err(format!("{n} micro-batches")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .map(|_| ())
}
