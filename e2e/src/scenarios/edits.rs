//! Scenarios 6, 7, 8: spec edits applied as `docs/kubernetes.md` documents them, suspend and
//! resume, and a spec the schema admits but the operator refuses.

use std::path::Path;

use serde_json::{Value, json};

use super::lifecycle::ensure_running;
use crate::app::{self, App};
use crate::cluster::Cluster;
use crate::error::E2eError;
use crate::wait;

pub(super) fn uids(pods: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = pods
        .iter()
        .map(|p| {
            p["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

fn args(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"][0]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

pub(super) async fn patch<C: Cluster>(a: &App<'_, C>, patch: Value) -> Result<(), E2eError> {
    a.c.kubectl()
        .run(&[
            "patch",
            "sba",
            &a.name,
            "-n",
            &a.ns,
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .await
        .map(|_| ())
}

/// Waits until the app's pods of `role` all satisfy `f` and the app is Running again.
async fn pods_become<C: Cluster>(
    a: &App<'_, C>,
    role: &str,
    what: &str,
    f: impl Fn(&[Value]) -> Result<(), String>,
) -> Result<Vec<Value>, E2eError> {
    let pods = wait::until(&format!("{role} pods: {what}"), app::TIMEOUT, || async {
        let pods = a.pods(role).await.map_err(|e| e.to_string())?;
        if pods.is_empty() {
            return Err("no pods".into());
        }
        f(&pods).map(|()| pods)
    })
    .await?;
    a.wait_running().await?;
    Ok(pods)
}

/// Scenario 6: Spec edits: an `app.config` change restarts the app with the new `--set`; a new image
/// replaces every pod; new `app.args` reach the driver's command line; new pod labels reach
/// the running pods in place (no restart).
pub async fn spec_edits<C: Cluster>(a: &App<'_, C>, root: &Path) -> Result<(), E2eError> {
    ensure_running(a, root).await?;
    let drivers = a.pods("driver").await?;
    patch(
        a,
        json!({"spec": {"app": {"config": {"score.rate": "777"}}}}),
    )
    .await?;
    let old = uids(&drivers);
    pods_become(a, "driver", "new driver with --set score.rate=777", |p| {
        if uids(p) != old && args(&p[0]).iter().any(|x| x == "score.rate=777") {
            Ok(())
        } else {
            Err(format!("args {:?}", args(&p[0])))
        }
    })
    .await?;

    let image = format!("{}-b", a.c.image());
    patch(a, json!({"spec": {"image": image}})).await?;
    for role in ["driver", "executor"] {
        pods_become(a, role, &format!("image {image}"), |pods| {
            let images: Vec<&str> = pods
                .iter()
                .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap_or(""))
                .collect();
            if images.iter().all(|i| *i == image) {
                Ok(())
            } else {
                Err(format!("images {images:?}"))
            }
        })
        .await?;
    }

    patch(
        a,
        json!({"spec": {"app": {"args": ["--e2e-marker", "one"]}}}),
    )
    .await?;
    pods_become(a, "driver", "app args after `--`", |p| {
        let a = args(&p[0]);
        if a.ends_with(&[
            "--".to_string(),
            "--e2e-marker".to_string(),
            "one".to_string(),
        ]) {
            Ok(())
        } else {
            Err(format!("args {a:?}"))
        }
    })
    .await?;

    let before = uids(&a.all_pods().await?);
    patch(a, json!({"spec": {"driver": {"labels": {"e2e/edited": "yes"}}, "executor": {"labels": {"e2e/edited": "yes"}}}}))
        .await?;
    wait::until(
        "the new label on every pod, no pod replaced",
        app::TIMEOUT,
        || async {
            let pods = a.all_pods().await.map_err(|e| e.to_string())?;
            let labelled = pods
                .iter()
                .filter(|p| p["metadata"]["labels"]["e2e/edited"] == "yes")
                .count();
            if uids(&pods) != before {
                return Err(format!(
                    "{}pods were replaced for a label edit",
                    wait::FATAL
                ));
            }
            if labelled == pods.len() {
                Ok(())
            } else {
                Err(format!("{labelled}/{} pods labelled", pods.len()))
            }
        },
    )
    .await
}

/// Scenario 7: `spec.suspend: true` removes every pod (phase Suspended); `false` starts the app again.
pub async fn suspend_resume<C: Cluster>(a: &App<'_, C>, root: &Path) -> Result<(), E2eError> {
    ensure_running(a, root).await?;
    patch(a, json!({"spec": {"suspend": true}})).await?;
    a.wait("phase Suspended", |v| {
        if app::phase(v) == "Suspended" {
            Ok(())
        } else {
            Err(app::summary(v))
        }
    })
    .await?;
    wait::until("no pods while suspended", app::TIMEOUT, || async {
        let n = a.all_pods().await.map_err(|e| e.to_string())?.len();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await?;
    patch(a, json!({"spec": {"suspend": false}})).await?;
    a.wait_running().await.map(|_| ())
}

/// Scenario 8: A spec the CRD schema admits but the operator refuses: an engine setting in
/// `app.config` that has a spec field of its own (`jobs.<job>.interval_ms` belongs in
/// `spec.jobs.<job>.intervalMs`). Phase Invalid, an `InvalidSpec` condition and a Warning
/// Event, both naming the field; no pods.
pub async fn invalid_spec<C: Cluster>(a: &App<'_, C>, root: &Path) -> Result<(), E2eError> {
    a.namespace().await?;
    let field = "spec.app.config[jobs.score.interval_ms]";
    let m = app::manifest(root, "fraud-detection", &a.name, a.c.image(), |v| {
        v["spec"]["app"]["config"] = json!({"jobs.score.interval_ms": "500"});
    })?;
    a.apply(&m).await?;
    a.wait("phase Invalid with InvalidSpec naming the field", |v| {
        let msg = app::condition_obj(v, "InvalidSpec")
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default();
        if app::phase(v) == "Invalid"
            && app::condition(v, "InvalidSpec") == "True"
            && msg.contains(field)
        {
            Ok(())
        } else {
            Err(app::summary(v))
        }
    })
    .await?;
    wait::until("a Warning Event naming the field", app::TIMEOUT, || async {
        let events = a.events().await.map_err(|e| e.to_string())?;
        let hit = events.iter().any(|e| {
            e["type"] == "Warning" && e["note"].as_str().is_some_and(|n| n.contains(field))
        });
        if hit {
            Ok(())
        } else {
            Err(format!(
                "events: {:?}",
                events
                    .iter()
                    .map(|e| e["note"].as_str().unwrap_or(""))
                    .collect::<Vec<_>>()
            ))
        }
    })
    .await?;
    let pods = a.all_pods().await?;
    if !pods.is_empty() {
        return Err(E2eError::Failed(format!(
            "{} pods exist for an invalid spec",
            pods.len()
        )));
    }
    a.c.kubectl()
        .run(&["delete", "sba", &a.name, "-n", &a.ns])
        .await
        .map(|_| ())
}
