//! Scenarios 3, 4, 5 and 9: scaling, a killed executor, a killed driver, a lost node.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::app::{self, App, selector};
use crate::cluster::Cluster;
use crate::error::E2eError;
use crate::wait;

/// Applies a light fraud-detection if the group has no app yet, and waits for Running.
pub async fn ensure_running<C: Cluster>(a: &App<'_, C>, root: &Path) -> Result<Value, E2eError> {
    if a.get().await?.is_none() {
        a.namespace().await?;
        a.apply(&app::manifest(
            root,
            "fraud-detection",
            &a.name,
            a.c.image(),
            app::lighten,
        )?)
        .await?;
    }
    a.wait_running().await
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn uid(p: &Value) -> String {
    p["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn name(p: &Value) -> String {
    p["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until exactly `n` executor pods exist (none terminating), all Ready, and the app
/// counts `n` ready executors.
async fn executors_settle<C: Cluster>(a: &App<'_, C>, n: usize) -> Result<Vec<Value>, E2eError> {
    wait::until(&format!("{n} ready executor pods and status.executors.ready = {n}"), app::TIMEOUT, || async {
        let all = a.c.kubectl().list(&a.ns, "pods", Some(&selector(&a.name, "executor"))).await.map_err(|e| e.to_string())?;
        let live: Vec<Value> = all.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).cloned().collect();
        let ready_n = live.iter().filter(|p| ready(p)).count();
        let status_ready = a.get().await.ok().flatten().and_then(|v| v["status"]["executors"]["ready"].as_u64()).unwrap_or(0);
        if all.len() == n && ready_n == n && status_ready == n as u64 {
            Ok(live)
        } else {
            Err(format!(
                "{} executor pods ({} terminating), {ready_n} ready, status.executors.ready = {status_ready}",
                all.len(),
                all.len() - live.len()
            ))
        }
    })
    .await
}

/// Scenario 3: `kubectl scale sba/NAME --replicas=3`, then `1`: executor pods follow, the highest
/// ordinals go first.
pub async fn scale<C: Cluster>(a: &App<'_, C>) -> Result<(), E2eError> {
    a.wait_running().await?;
    let k = a.c.kubectl();
    let target = format!("sba/{}", a.name);
    k.run(&["scale", &target, "-n", &a.ns, "--replicas=3"])
        .await?;
    executors_settle(a, 3).await?;
    k.run(&["scale", &target, "-n", &a.ns, "--replicas=1"])
        .await?;
    let left = executors_settle(a, 1).await?;
    let want = format!("{}-executor-0", a.name);
    if name(&left[0]) != want {
        return Err(E2eError::Failed(format!(
            "scale-down kept {} instead of {want}",
            name(&left[0])
        )));
    }
    a.wait_running().await.map(|_| ())
}

/// Scenario 4: An executor's process is killed: the pod fails, the operator replaces it (one executor
/// failure counted) and the app stays Running.
pub async fn executor_killed<C: Cluster>(a: &App<'_, C>, root: &Path) -> Result<(), E2eError> {
    let before = ensure_running(a, root).await?;
    let failures = before["status"]["executorFailures"].as_i64().unwrap_or(0);
    let pod = format!("{}-executor-0", a.name);
    let old =
        a.c.kubectl()
            .get(&a.ns, "pod", &pod)
            .await?
            .map(|p| uid(&p))
            .ok_or_else(|| E2eError::Failed(format!("no pod {pod}")))?;
    a.c.kill_container(&a.ns, &pod, "executor").await?;
    wait::until(
        &format!("{pod} replaced and Ready"),
        app::TIMEOUT,
        || async {
            match a.c.kubectl().get(&a.ns, "pod", &pod).await {
                Ok(Some(p)) if uid(&p) != old && ready(&p) => Ok(()),
                Ok(Some(p)) => Err(format!(
                    "uid {} (old {old}), phase {}, ready {}",
                    uid(&p),
                    p["status"]["phase"].as_str().unwrap_or(""),
                    ready(&p)
                )),
                Ok(None) => Err("no pod".into()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    let after = a.wait_running().await?;
    let now = after["status"]["executorFailures"].as_i64().unwrap_or(0);
    if now != failures + 1 {
        return Err(E2eError::Failed(format!(
            "status.executorFailures went from {failures} to {now}; one crash should count once"
        )));
    }
    Ok(())
}

/// Scenario 5: The driver's process is killed: phase Restarting (restartPolicy OnFailure, back-off),
/// a new driver, Running again, and the attempt counted exactly once.
pub async fn driver_killed<C: Cluster>(a: &App<'_, C>, root: &Path) -> Result<(), E2eError> {
    let before = ensure_running(a, root).await?;
    let attempts = before["status"]["attempts"].as_i64().unwrap_or(0);
    let failures = before["status"]["driverFailures"].as_i64().unwrap_or(0);
    let pod = a.driver_pod();
    let old =
        a.c.kubectl()
            .get(&a.ns, "pod", &pod)
            .await?
            .map(|p| uid(&p))
            .ok_or_else(|| E2eError::Failed(format!("no pod {pod}")))?;
    a.c.kill_container(&a.ns, &pod, "driver").await?;
    a.wait("phase Restarting after the driver's crash", |v| {
        if app::phase(v) == "Restarting" {
            Ok(())
        } else {
            Err(app::summary(v))
        }
    })
    .await?;
    wait::until("a new driver pod", app::TIMEOUT, || async {
        match a.c.kubectl().get(&a.ns, "pod", &pod).await {
            Ok(Some(p)) if uid(&p) != old => Ok(()),
            Ok(_) => Err("still the old driver (or none)".into()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await?;
    a.wait_running().await?;
    // Micro-batches flow again before the count is checked, so a late double count shows.
    let runs = wait::until("the new driver's /metrics", app::TIMEOUT, || async {
        a.stream_runs().await.map_err(|e| e.to_string())
    })
    .await?;
    wait::until(
        "micro-batches from the new driver",
        app::TIMEOUT,
        || async {
            match a.stream_runs().await {
                Ok(n) if n > runs => Ok(()),
                Ok(n) => Err(format!("{n} micro-batches")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    let after = a.get().await?.unwrap_or_default();
    let now = after["status"]["attempts"].as_i64().unwrap_or(0);
    if now != attempts + 1 {
        return Err(E2eError::Failed(format!(
            "status.attempts went from {attempts} to {now}; one crash should count once"
        )));
    }
    // A SIGKILLed driver (exit 137, not a disruption) is a failure against maxRetries, once.
    let now_failures = after["status"]["driverFailures"].as_i64().unwrap_or(0);
    if now_failures != failures + 1 {
        return Err(E2eError::Failed(format!(
            "status.driverFailures went from {failures} to {now_failures}; one crash should count once"
        )));
    }
    Ok(())
}

/// Scenario 9: A node is lost with app pods on it. They are deleted (as taint-based eviction would);
/// nobody can confirm those deletions, so the operator must force-remove them after a grace
/// and replace them on the remaining nodes.
pub async fn node_lost<C: Cluster>(a: &App<'_, C>, root: &Path) -> Result<(), E2eError> {
    ensure_running(a, root).await?;
    let pods = a.all_pods().await?;
    let node_of = |p: &Value| {
        p["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let driver_node = pods
        .iter()
        .find(|p| name(p) == a.driver_pod())
        .map(node_of)
        .unwrap_or_default();
    // An executor's node, preferably not the driver's.
    let executors: Vec<&Value> = pods
        .iter()
        .filter(|p| name(p).contains("-executor-"))
        .collect();
    let node = executors
        .iter()
        .map(|p| node_of(p))
        .find(|n| *n != driver_node)
        .or_else(|| executors.first().map(|p| node_of(p)))
        .ok_or_else(|| E2eError::Failed("no executor pod".into()))?;
    let victims: Vec<Value> = pods
        .iter()
        .filter(|p| node_of(p) == node)
        .cloned()
        .collect();
    let gone: HashSet<String> = victims.iter().map(uid).collect();
    eprintln!(
        "[e2e] losing node {node} with {:?}",
        victims.iter().map(name).collect::<Vec<_>>()
    );
    a.c.lose_node(&node).await?;
    for p in &victims {
        a.c.kubectl()
            .run(&["delete", "pod", &name(p), "-n", &a.ns, "--wait=false"])
            .await?;
    }
    wait::until(
        &format!("node {node} not Ready"),
        Duration::from_secs(180),
        || async {
            let n =
                a.c.kubectl()
                    .run(&[
                        "get",
                        "node",
                        &node,
                        "-o",
                        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                    ])
                    .await
                    .map_err(|e| e.to_string())?;
            if n.trim() == "True" {
                Err("Ready".into())
            } else {
                Ok(())
            }
        },
    )
    .await?;
    wait::until("the lost node's pods removed and replaced on other nodes", app::TIMEOUT, || async {
        let now = a.all_pods().await.map_err(|e| e.to_string())?;
        let stuck: Vec<String> = now.iter().filter(|p| gone.contains(&uid(p))).map(name).collect();
        let replaced = victims.iter().all(|v| {
            now.iter()
                .any(|p| name(p) == name(v) && !gone.contains(&uid(p)) && node_of(p) != node && ready(p))
        });
        if stuck.is_empty() && replaced {
            Ok(())
        } else {
            Err(format!("still there (Terminating): {stuck:?}; all replaced and Ready elsewhere: {replaced}"))
        }
    })
    .await?;
    a.wait_running().await.map(|_| ())
}
