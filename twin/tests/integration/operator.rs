//! The real `neptune-operator` binary (its `main`, its kube client over HTTPS from a kubeconfig,
//! leader election through a Lease) against the twin: it reconciles an applied app into the
//! driver Service and driver pod (owned by the app), records status and Events, and deleting
//! the app takes the children with it (the twin's garbage collector). Pods stay Pending: no
//! kubelet runs here.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command};

use serde_json::Value;

/// Kills the operator when the test ends, however it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/<profile>/neptune-operator`, built with the profile these tests were built with if
/// it is not there yet (`cargo test --workspace` builds it already).
fn operator_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = profile_dir.join("neptune-operator");
    if !bin.exists() {
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev".to_string(),
            other => other.to_string(),
        };
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--profile",
                &profile,
                "-p",
                "neptune-operator",
                "--bin",
                "neptune-operator",
            ])
            .current_dir(common::root())
            .status()
            .unwrap();
        assert!(status.success(), "building neptune-operator");
    }
    bin
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["uid"] == uid && r["controller"] == true)
}

#[tokio::test]
async fn the_operator_reconciles_an_app_into_its_driver_and_cleans_up() {
    let twin = common::twin().await;
    common::install_crd(&twin, "streaming");
    let log = std::fs::File::create(twin.dir().join("operator.log")).unwrap();
    let _operator = Operator(
        Command::new(operator_bin())
            .env("KUBECONFIG", twin.kubeconfig())
            .env("NEPTUNE_OPERATOR_HTTP", "127.0.0.1:0")
            .env("NEPTUNE_LEADER_ELECTION", "true")
            .env("POD_NAMESPACE", "default")
            .env("POD_NAME", "operator-0")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let logs = || std::fs::read_to_string(twin.dir().join("operator.log")).unwrap_or_default();

    let lease = common::eventually("the operator's Lease", || {
        twin.get(
            "coordination.k8s.io/v1",
            "Lease",
            "default",
            "neptune-operator",
        )
    })
    .await;
    assert_eq!(lease["spec"]["holderIdentity"], "operator-0", "{lease}");

    let text =
        std::fs::read_to_string(common::root().join("examples/k8s/fraud-detection.yaml")).unwrap();
    let mut app: Value = serde_yaml::from_str(&text).unwrap();
    app["metadata"]["namespace"] = "streaming".into();
    let app = twin.apply(app, "kubectl").unwrap();
    let uid = app["metadata"]["uid"].as_str().unwrap().to_string();

    let svc = common::eventually("the driver Service", || {
        twin.get("v1", "Service", "streaming", "fraud-detection-driver")
    })
    .await;
    assert!(owned_by(&svc, &uid), "{svc}");
    let driver = common::eventually("the driver pod", || {
        twin.list("v1", "Pod", Some("streaming"))
            .into_iter()
            .find(|p| p["metadata"]["labels"]["neptune.dev/role"] == "driver")
    })
    .await;
    assert!(owned_by(&driver, &uid), "{driver}");
    assert_eq!(
        driver["status"]["phase"], "Pending",
        "no kubelet: the pod waits"
    );
    assert!(
        driver["metadata"]["managedFields"][0]["manager"] == "neptune-operator",
        "server-side applied by the operator: {}",
        driver["metadata"]["managedFields"]
    );

    let status = common::eventually("the app's status", || {
        let a = twin.get(
            "neptune.dev/v1alpha1",
            "StreamBatchApp",
            "streaming",
            "fraud-detection",
        )?;
        a["status"]["phase"].is_string().then_some(a)
    })
    .await;
    assert_eq!(
        status["metadata"]["generation"], 1,
        "status writes do not bump the generation"
    );
    let _events = common::eventually("an Event about the app", || {
        twin.list("v1", "Event", Some("streaming"))
            .into_iter()
            .find(|e| e["involvedObject"]["name"] == "fraud-detection")
    })
    .await;

    // Deleting the app deletes its children (ownerReferences, background cascade).
    let apps = twin
        .state()
        .resources
        .lookup("neptune.dev", "v1alpha1", "streambatchapps")
        .unwrap();
    neptune_twin::api::ops::delete(
        twin.state(),
        &apps,
        "streaming",
        "fraud-detection",
        &Default::default(),
    )
    .unwrap();
    common::eventually("the app's children gone", || {
        (twin.list("v1", "Pod", Some("streaming")).is_empty()
            && twin
                .get("v1", "Service", "streaming", "fraud-detection-driver")
                .is_none())
        .then_some(())
    })
    .await;
    assert!(!logs().contains("panicked"), "{}", logs());
}
