//! A `StreamBatchApp` under test: its manifest (an example from `examples/k8s/` with the
//! cluster's image), and what scenarios read about it through kubectl (phase, conditions,
//! pods, Events) and over HTTP (the driver's `/metrics`).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::error::E2eError;
use crate::wait;

/// How long an app gets to reach a state (generous: a loaded CI machine starts slowly).
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// Labels of every pod of app `name` with `role` (`driver` or `executor`).
pub fn selector(name: &str, role: &str) -> String {
    format!("neptune.dev/app={name},neptune.dev/role={role}")
}

/// `examples/k8s/<example>.yaml` named `name`, on `image`, edited by `edit`, as JSON.
///
/// # Errors
/// When the example cannot be read or parsed.
pub fn manifest(
    root: &Path,
    example: &str,
    name: &str,
    image: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<Value, E2eError> {
    let path = root.join("examples/k8s").join(format!("{example}.yaml"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| E2eError::Parse(format!("{}: {e}", path.display())))?;
    // An example may hold more than the app (wordcount has its input ConfigMap): take the app.
    let mut v = serde_yaml::Deserializer::from_str(&text)
        .map(Value::deserialize)
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| E2eError::Parse(format!("{}: {e}", path.display())))?
        .into_iter()
        .find(|d| d["kind"] == "StreamBatchApp")
        .ok_or_else(|| E2eError::Parse(format!("{}: no StreamBatchApp", path.display())))?;
    v["metadata"]["name"] = Value::String(name.into());
    v["spec"]["image"] = Value::String(image.into());
    edit(&mut v);
    Ok(v)
}

/// A lighter fraud-detection for scenarios that do not measure it: one core per executor and
/// a small training set, so several apps share a CI machine.
pub fn lighten(v: &mut Value) {
    v["spec"]["executor"]["cores"] = 1.into();
    v["spec"]["app"]["config"] =
        serde_json::json!({"history.records": "20000", "history.partitions": "2"});
}

/// An app in a namespace of a cluster.
#[derive(Debug)]
pub struct App<'a, C: Cluster> {
    /// The cluster.
    pub c: &'a C,
    /// Its namespace.
    pub ns: String,
    /// Its name.
    pub name: String,
}

impl<'a, C: Cluster> App<'a, C> {
    /// An app `name` in `ns`.
    pub fn new(c: &'a C, ns: &str, name: &str) -> Self {
        Self {
            c,
            ns: ns.into(),
            name: name.into(),
        }
    }

    /// Creates the namespace (fine if it exists).
    ///
    /// # Errors
    /// kubectl failures.
    pub async fn namespace(&self) -> Result<(), E2eError> {
        let yaml = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n",
            self.ns
        );
        self.c.kubectl().apply(&self.ns, &yaml).await.map(|_| ())
    }

    /// Server-side applies `manifest`.
    ///
    /// # Errors
    /// kubectl failures (e.g. the API refusing the object).
    pub async fn apply(&self, manifest: &Value) -> Result<(), E2eError> {
        let yaml = serde_yaml::to_string(manifest).map_err(|e| E2eError::Parse(e.to_string()))?;
        self.c.kubectl().apply(&self.ns, &yaml).await.map(|_| ())
    }

    /// The app object, if it exists.
    ///
    /// # Errors
    /// kubectl failures.
    pub async fn get(&self) -> Result<Option<Value>, E2eError> {
        self.c.kubectl().get(&self.ns, "sba", &self.name).await
    }

    /// Polls the app until `f` accepts it (`Err` = not yet, with what was seen).
    ///
    /// # Errors
    /// [`E2eError::Timeout`].
    pub async fn wait<T>(
        &self,
        what: &str,
        f: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<T, E2eError> {
        let what = format!("{}/{}: {what}", self.ns, self.name);
        wait::until(&what, TIMEOUT, || async {
            match self.get().await {
                Ok(Some(v)) => f(&v),
                Ok(None) => Err("the app does not exist".into()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// Waits for phase Running with `DriverReady` and `ExecutorsReady` True.
    ///
    /// # Errors
    /// [`E2eError::Timeout`] with the last status seen.
    pub async fn wait_running(&self) -> Result<Value, E2eError> {
        self.wait("Running with DriverReady and ExecutorsReady", |v| {
            let ok = phase(v) == "Running"
                && condition(v, "DriverReady") == "True"
                && condition(v, "ExecutorsReady") == "True";
            if ok {
                Ok(v.clone())
            } else if matches!(phase(v), "Failed" | "Invalid" | "Succeeded") {
                Err(format!("{}{}", wait::FATAL, summary(v)))
            } else {
                Err(summary(v))
            }
        })
        .await
    }

    /// Pods of `role` that are not being deleted.
    ///
    /// # Errors
    /// kubectl failures.
    pub async fn pods(&self, role: &str) -> Result<Vec<Value>, E2eError> {
        let all = self
            .c
            .kubectl()
            .list(&self.ns, "pods", Some(&selector(&self.name, role)))
            .await?;
        Ok(all
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect())
    }

    /// Every pod of the app, terminating ones included.
    ///
    /// # Errors
    /// kubectl failures.
    pub async fn all_pods(&self) -> Result<Vec<Value>, E2eError> {
        self.c
            .kubectl()
            .list(
                &self.ns,
                "pods",
                Some(&format!("neptune.dev/app={}", self.name)),
            )
            .await
    }

    /// The driver pod's name.
    pub fn driver_pod(&self) -> String {
        format!("{}-driver", self.name)
    }

    /// Stream micro-batches committed so far, from the driver's `/metrics`.
    ///
    /// # Errors
    /// HTTP failures or a driver without the metric.
    pub async fn stream_runs(&self) -> Result<u64, E2eError> {
        let text = self
            .c
            .http_get(&self.ns, &self.driver_pod(), 4040, "/metrics")
            .await?;
        stream_runs(&text).ok_or_else(|| {
            E2eError::Failed("no neptune_driver_job_runs_total for a stream job on /metrics".into())
        })
    }

    /// Events about the app (`events.k8s.io`, as the operator writes them).
    ///
    /// # Errors
    /// kubectl failures.
    pub async fn events(&self) -> Result<Vec<Value>, E2eError> {
        let all = self
            .c
            .kubectl()
            .list(&self.ns, "events.events.k8s.io", None)
            .await?;
        Ok(all
            .into_iter()
            .filter(|e| e["regarding"]["name"].as_str() == Some(self.name.as_str()))
            .collect())
    }

    /// The app, its pods, Events and the operator's log, for a failure report.
    pub async fn diagnose(&self) -> String {
        let k = self.c.kubectl();
        let mut out = String::new();
        for args in [
            vec!["get", "sba", &self.name, "-n", &self.ns, "-o", "yaml"],
            vec!["get", "pods,svc", "-n", &self.ns, "-o", "wide"],
            vec!["get", "events", "-n", &self.ns],
        ] {
            out.push_str(&format!("$ kubectl {}\n", args.join(" ")));
            out.push_str(&k.run(&args).await.unwrap_or_else(|e| e.to_string()));
            out.push('\n');
        }
        out.push_str("--- operator log (tail)\n");
        out.push_str(&self.c.operator_logs().await);
        out
    }
}

/// Sum of `neptune_driver_job_runs_total` over stream jobs (whatever the job label is called).
pub fn stream_runs(metrics: &str) -> Option<u64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in metrics.lines() {
        if line.starts_with("neptune_driver_job_runs_total{")
            && line.contains("kind=\"stream\"")
            && let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
        {
            sum += v;
            found = true;
        }
    }
    found.then_some(sum as u64)
}

/// `status.phase`.
pub fn phase(v: &Value) -> &str {
    v["status"]["phase"].as_str().unwrap_or("")
}

/// A condition's status (`True`/`False`/`Unknown`, or empty when absent).
pub fn condition<'v>(v: &'v Value, type_: &str) -> &'v str {
    condition_obj(v, type_)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
}

/// A condition.
pub fn condition_obj<'v>(v: &'v Value, type_: &str) -> Option<&'v Value> {
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(type_))
}

/// Phase, conditions and message in one line (for timeouts).
pub fn summary(v: &Value) -> String {
    let conds: Vec<String> = v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} ({})",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    format!(
        "phase={:?} conditions=[{}] message={:?}",
        phase(v),
        conds.join(", "),
        v["status"]["message"].as_str().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_runs_sum_over_stream_jobs_only() {
        let m = "# HELP x\nneptune_driver_job_runs_total{job=\"score\",kind=\"stream\"} 12\n\
                 neptune_driver_job_runs_total{job=\"train\",kind=\"batch\"} 3\n\
                 neptune_driver_job_runs_total{kind=\"stream\",neptune_job=\"b\"} 1\n";
        assert_eq!(stream_runs(m), Some(13));
        assert_eq!(stream_runs("other 1\n"), None);
    }

    #[test]
    fn manifests_come_from_the_examples_with_the_clusters_image() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let v = manifest(&root, "fraud-detection", "fd", "neptune:e2e", lighten).unwrap();
        assert_eq!(v["metadata"]["name"], "fd");
        assert_eq!(v["spec"]["image"], "neptune:e2e");
        assert_eq!(v["spec"]["app"]["name"], "fraud-detection");
        assert_eq!(v["spec"]["executor"]["cores"], 1);
    }
}
