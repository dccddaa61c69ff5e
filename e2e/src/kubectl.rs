//! The real `kubectl`, run as a process against one cluster (a kubeconfig and/or a context):
//! the scenarios talk to the cluster only through it, the cluster's API and HTTP to pods.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::error::E2eError;

/// How to reach one cluster with kubectl.
#[derive(Clone, Debug)]
pub struct Kubectl {
    /// The binary (`.tools/bin/kubectl` from `scripts/k8s-tools.sh`).
    pub bin: PathBuf,
    /// `--kubeconfig`, if not the default.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`, if not the current one.
    pub context: Option<String>,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        if let Some(k) = &self.kubeconfig {
            c.arg("--kubeconfig").arg(k);
        }
        if let Some(ctx) = &self.context {
            c.arg("--context").arg(ctx);
        }
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs `kubectl ARGS`; its stdout, or an error with its stderr.
    ///
    /// # Errors
    /// [`E2eError::Kubectl`] when it exits non-zero or cannot be run.
    pub async fn run(&self, args: &[&str]) -> Result<String, E2eError> {
        self.run_stdin(args, None).await
    }

    /// Runs `kubectl ARGS` with `stdin` fed to it (`apply -f -`).
    ///
    /// # Errors
    /// [`E2eError::Kubectl`] when it exits non-zero or cannot be run.
    pub async fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String, E2eError> {
        let mut cmd = self.command(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let fail = |stderr: String| E2eError::Kubectl {
            args: args.join(" "),
            stderr,
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", self.bin.display())))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .await
                .map_err(|e| fail(format!("writing stdin: {e}")))?;
        }
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            child.wait_with_output(),
        )
        .await
        .map_err(|_| fail("timed out after 120 s".into()))?
        .map_err(|e| fail(e.to_string()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(fail(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    /// `kubectl get KIND NAME -n NS -o json`, or `None` when it does not exist.
    ///
    /// # Errors
    /// Other kubectl failures, or output that is not JSON.
    pub async fn get(&self, ns: &str, kind: &str, name: &str) -> Result<Option<Value>, E2eError> {
        match self.run(&["get", kind, name, "-n", ns, "-o", "json"]).await {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|e| E2eError::Parse(format!("kubectl get {kind} {name}: {e}"))),
            Err(E2eError::Kubectl { stderr, .. })
                if stderr.contains("NotFound") || stderr.contains("not found") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `kubectl get KIND -n NS [-l SELECTOR] -o json`'s items.
    ///
    /// # Errors
    /// kubectl failures or output that is not JSON.
    pub async fn list(
        &self,
        ns: &str,
        kind: &str,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, E2eError> {
        let mut args = vec!["get", kind, "-n", ns, "-o", "json"];
        if let Some(s) = selector {
            args.extend(["-l", s]);
        }
        let out = self.run(&args).await?;
        let v: Value = serde_json::from_str(&out)
            .map_err(|e| E2eError::Parse(format!("kubectl get {kind}: {e}")))?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// `kubectl apply --server-side -n NS -f -` of `yaml`.
    ///
    /// # Errors
    /// kubectl failures (e.g. the API refusing the object).
    pub async fn apply(&self, ns: &str, yaml: &str) -> Result<String, E2eError> {
        self.run_stdin(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-n",
                ns,
                "-f",
                "-",
            ],
            Some(yaml),
        )
        .await
    }
}
