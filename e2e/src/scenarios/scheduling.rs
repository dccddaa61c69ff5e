//! Scenario 13: live scheduling changes (`docs/kubernetes.md` "Live scheduling changes"). Editing
//! `spec.scheduling.policy`/`quantumMs` of a running app reaches the running driver without a
//! restart; switching to `static` is not live and restarts the driver.

use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use super::Measurements;
use super::edits::{patch, uids};
use super::lifecycle::ensure_running;
use crate::app::{self, App};
use crate::cluster::Cluster;
use crate::error::E2eError;
use crate::wait;

/// The driver's `/status` as JSON.
async fn driver_status<C: Cluster>(a: &App<'_, C>) -> Result<Value, String> {
    let text =
        a.c.http_get(&a.ns, &a.driver_pod(), 4040, "/status")
            .await
            .map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("driver /status is not JSON: {e}"))
}

fn attempts(v: &Value) -> i64 {
    v["status"]["attempts"].as_i64().unwrap_or(0)
}

/// Patches `spec.scheduling` with `edit` and waits until `status.scheduling` and the driver's
/// `/status` both show `policy` (and `quantum_ms` when given), with every pod and
/// `status.attempts` unchanged. Seconds from the patch to `status.scheduling` showing it.
async fn apply_live<C: Cluster>(
    a: &App<'_, C>,
    edit: Value,
    policy: &str,
    quantum_ms: Option<u64>,
) -> Result<f64, E2eError> {
    let before = a.wait_running().await?;
    let tries = attempts(&before);
    let pods = uids(&a.all_pods().await?);
    let start = Instant::now();
    patch(a, json!({"spec": {"scheduling": edit}})).await?;
    let seconds = a
        .wait(
            &format!("status.scheduling policy {policy}, quantumMs {quantum_ms:?}"),
            |v| {
                let s = &v["status"]["scheduling"];
                let ok = s["policy"] == policy
                    && quantum_ms.is_none_or(|q| s["quantumMs"].as_u64() == Some(q));
                if attempts(v) != tries {
                    Err(format!(
                        "{}status.attempts went from {tries} to {} for a live change",
                        wait::FATAL,
                        attempts(v)
                    ))
                } else if ok {
                    Ok(start.elapsed().as_secs_f64())
                } else {
                    Err(format!("status.scheduling {s}; {}", app::summary(v)))
                }
            },
        )
        .await?;
    wait::until(
        &format!("the driver's /status says policy {policy}"),
        app::TIMEOUT,
        || async {
            let st = driver_status(a).await?;
            let ok = st["policy"] == policy
                && quantum_ms.is_none_or(|q| st["quantum_ms"].as_u64() == Some(q));
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "policy {} quantum_ms {}",
                    st["policy"], st["quantum_ms"]
                ))
            }
        },
    )
    .await?;
    let now = uids(&a.all_pods().await?);
    if now != pods {
        return Err(E2eError::Failed(format!(
            "pods were replaced for a live scheduling change: {pods:?} -> {now:?}"
        )));
    }
    let after = a.wait_running().await?;
    if attempts(&after) != tries {
        return Err(E2eError::Failed(format!(
            "status.attempts went from {tries} to {} for a live change",
            attempts(&after)
        )));
    }
    Ok(seconds)
}

/// Scenario 13: `policy: fifo, quantumMs: 500` applied live (status, driver `/status`, no pod
/// replaced, attempts unchanged, a `SchedulingChanged` Event), back to `neptune` live too, then
/// `static` (not live) restarts the driver: attempts + 1.
pub async fn live_scheduling<C: Cluster>(
    a: &App<'_, C>,
    root: &Path,
    m: &mut Measurements,
) -> Result<(), E2eError> {
    ensure_running(a, root).await?;
    let s = apply_live(
        a,
        json!({"policy": "fifo", "quantumMs": 500}),
        "fifo",
        Some(500),
    )
    .await?;
    m.insert("apply_live_scheduling_s".into(), s);
    wait::until("a SchedulingChanged Event", app::TIMEOUT, || async {
        let events = a.events().await.map_err(|e| e.to_string())?;
        if events.iter().any(|e| e["reason"] == "SchedulingChanged") {
            Ok(())
        } else {
            Err(format!(
                "event reasons: {:?}",
                events
                    .iter()
                    .map(|e| e["reason"].as_str().unwrap_or(""))
                    .collect::<Vec<_>>()
            ))
        }
    })
    .await?;
    apply_live(a, json!({"policy": "neptune"}), "neptune", Some(500)).await?;

    let before = a.wait_running().await?;
    let tries = attempts(&before);
    let driver = uids(&a.pods("driver").await?);
    patch(
        a,
        json!({"spec": {"scheduling": {"policy": "static", "staticStreamExecutors": 1}}}),
    )
    .await?;
    a.wait("a new attempt for the switch to static", |v| {
        if attempts(v) == tries + 1 {
            Ok(())
        } else {
            Err(format!("attempts {}; {}", attempts(v), app::summary(v)))
        }
    })
    .await?;
    wait::until(
        "a new driver pod reporting policy static",
        app::TIMEOUT,
        || async {
            let pods = a.pods("driver").await.map_err(|e| e.to_string())?;
            if pods.is_empty() || uids(&pods) == driver {
                return Err("the old driver pod".into());
            }
            let st = driver_status(a).await?;
            if st["policy"] == "static" {
                Ok(())
            } else {
                Err(format!("policy {}", st["policy"]))
            }
        },
    )
    .await?;
    let after = a.wait_running().await?;
    if attempts(&after) != tries + 1 {
        return Err(E2eError::Failed(format!(
            "status.attempts went from {tries} to {}; one restart should count once",
            attempts(&after)
        )));
    }
    Ok(())
}
