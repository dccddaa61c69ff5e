//! Scenarios 10, 11, 12: an app that finishes and is deleted after its TTL, deleting an app
//! leaves nothing behind, and `examples/k8s/wordcount.yaml` works as shipped.

use std::path::Path;

use serde_json::json;

use crate::app::{self, App};
use crate::cluster::Cluster;
use crate::error::E2eError;
use crate::wait;

/// Waits until no pod or Service of the app is left (Events may stay).
async fn nothing_left<C: Cluster>(a: &App<'_, C>) -> Result<(), E2eError> {
    wait::until(
        "no pod or Service of the app left",
        app::TIMEOUT,
        || async {
            let sel = format!("neptune.dev/app={}", a.name);
            let left =
                a.c.kubectl()
                    .list(&a.ns, "pods,services", Some(&sel))
                    .await
                    .map_err(|e| e.to_string())?;
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "left: {:?}",
                    left.iter()
                        .map(|o| format!(
                            "{}/{}",
                            o["kind"].as_str().unwrap_or(""),
                            o["metadata"]["name"].as_str().unwrap_or("")
                        ))
                        .collect::<Vec<_>>()
                ))
            }
        },
    )
    .await
}

/// Scenario 10: A finite app (the built-in `shuffle`: a reduce over generated records, then the driver
/// exits 0) with `ttlSecondsAfterFinished: 5`: phase Succeeded, then the app and its children
/// are deleted.
pub async fn ttl_after_finish<C: Cluster>(a: &App<'_, C>, root: &Path) -> Result<(), E2eError> {
    a.namespace().await?;
    let m = app::manifest(root, "wordcount", &a.name, a.c.image(), |v| {
        v["spec"]["app"] = json!({"name": "shuffle", "config": {"shuffle.records": "20000", "shuffle.keys": "100"}});
        v["spec"]["ttlSecondsAfterFinished"] = 5.into();
        // shuffle generates its input: no ConfigMap volume.
        for role in ["driver", "executor"] {
            if let Some(r) = v["spec"][role].as_object_mut() {
                r.remove("podTemplate");
            }
        }
    })?;
    a.apply(&m).await?;
    a.wait("phase Succeeded", |v| match app::phase(v) {
        "Succeeded" => Ok(()),
        "Failed" | "Invalid" => Err(format!(
            "{}finished badly: {}",
            wait::FATAL,
            app::summary(v)
        )),
        _ => Err(app::summary(v)),
    })
    .await?;
    wait::until("the app deleted after its TTL", app::TIMEOUT, || async {
        match a.get().await {
            Ok(None) => Ok(()),
            Ok(Some(v)) => Err(app::summary(&v)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await?;
    nothing_left(a).await
}

/// Scenario 11: `kubectl delete sba`: every pod and Service of the app goes.
pub async fn delete<C: Cluster>(a: &App<'_, C>) -> Result<(), E2eError> {
    if a.get().await?.is_none() {
        return Err(E2eError::Failed(
            "precondition: the app does not exist".into(),
        ));
    }
    a.c.kubectl()
        .run(&[
            "delete",
            "sba",
            &a.name,
            "-n",
            &a.ns,
            "--wait=true",
            "--timeout=120s",
        ])
        .await?;
    nothing_left(a).await
}

/// Scenario 12: `examples/k8s/wordcount.yaml` as shipped (only the image swapped): it reads its input
/// (the ConfigMap mounted through the pod templates), finishes, phase Succeeded, and the
/// driver's `kubectl logs` say its jobs finished.
pub async fn wordcount<C: Cluster>(a: &App<'_, C>, root: &Path) -> Result<(), E2eError> {
    a.namespace().await?;
    let path = root.join("examples/k8s/wordcount.yaml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| E2eError::Parse(format!("{}: {e}", path.display())))?;
    // The example may hold more than the app (e.g. a ConfigMap with its input): apply it all.
    let text = text.replace("image: neptune:dev", &format!("image: {}", a.c.image()));
    a.c.kubectl().apply(&a.ns, &text).await?;
    a.wait("phase Succeeded", |v| match app::phase(v) {
        "Succeeded" => Ok(()),
        "Failed" | "Invalid" => Err(format!(
            "{}finished badly: {}",
            wait::FATAL,
            app::summary(v)
        )),
        _ => Err(app::summary(v)),
    })
    .await?;
    // The app is built only when `input` matches files (else the driver exits non-zero,
    // naming the pattern), and the executors read them through the mount: Succeeded says the
    // input arrived. The driver's log, read as a user would, says how it ended.
    let log =
        a.c.kubectl()
            .run(&["logs", &a.driver_pod(), "-n", &a.ns])
            .await?;
    if !(log.contains("driver finished") && log.contains("Finished")) {
        return Err(E2eError::Failed(format!(
            "Succeeded, but the driver's log does not say it finished its jobs:\n{log}"
        )));
    }
    Ok(())
}
