//! Shared helpers of the twin's tests: start a twin, run the real kubectl against it, find the
//! repository's files, poll for a condition with a generous deadline.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use neptune_twin::{Twin, TwinConfig};

/// Generous: the machine running the tests may be heavily loaded.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A twin on a free port.
pub async fn twin() -> Twin {
    Twin::start(TwinConfig::default())
        .await
        .expect("twin starts")
}

/// `.tools/bin/<name>` as installed by `scripts/k8s-tools.sh` (`NEPTUNE_TOOLS_DIR` honoured).
pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("NEPTUNE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools"));
    let path = dir.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/k8s-tools.sh` (make test runs it through scripts/install-test-tools.sh)",
        path.display()
    );
    path
}

/// Runs kubectl with the twin's kubeconfig and its own HOME under `dir` (no discovery cache
/// leaks between tests). Blocks: call it from `spawn_blocking`.
pub fn kubectl_at(kubeconfig: &Path, dir: &Path, args: &[&str]) -> Output {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(tool("kubectl"))
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", &home)
        .args(args)
        .current_dir(root())
        .output()
        .expect("kubectl runs")
}

/// Polls `check` until it returns `Some`, or panics after [`DEADLINE`] naming `what`.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The CRD manifest as JSON.
pub fn crd() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("crds/streambatchapp.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Installs the StreamBatchApp CRD and a namespace, in-process.
pub fn install_crd(twin: &Twin, namespace: &str) {
    twin.apply(crd(), "test").expect("CRD applies");
    twin.apply(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        "test",
    )
    .expect("namespace");
}
