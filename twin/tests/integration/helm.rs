//! The real Helm v4 (from `.tools/bin`) installs the operator's chart onto the twin: the CRD from
//! the chart's `crds/`, RBAC, the ServiceAccount, Service and Deployment, with the release kept in
//! a Secret; the twin's workload controller turns the Deployment into a ReplicaSet and a pod
//! (Pending: no kubelet here). Uninstalling removes them again.

use crate::common;

use std::process::{Command, Output};

fn helm(twin: &neptune_twin::Twin, args: &[&str]) -> Output {
    let home = twin.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(common::tool("helm"))
        .env("KUBECONFIG", twin.kubeconfig())
        .env("HOME", &home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap()
}

fn controlled_by<'a>(obj: &'a serde_json::Value, kind: &str) -> Option<&'a str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["controller"] == true)?["uid"]
        .as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_the_operator_chart_and_uninstalls_it() {
    let twin = common::twin().await;
    // block_in_place: Helm blocks this worker while the other keeps the twin serving.
    let install = tokio::task::block_in_place(|| {
        helm(
            &twin,
            &[
                "install",
                "neptune-operator",
                "charts/neptune-operator",
                "--namespace",
                "neptune-system",
                "--create-namespace",
            ],
        )
    });
    assert!(
        install.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    assert!(
        twin.state()
            .resources
            .lookup("neptune.dev", "v1alpha1", "streambatchapps")
            .is_some(),
        "the chart's CRD is served"
    );
    let secrets = twin.list("v1", "Secret", Some("neptune-system"));
    assert!(
        secrets
            .iter()
            .any(|s| s["metadata"]["labels"]["owner"] == "helm"),
        "release storage: {secrets:?}"
    );
    let deploy = common::eventually("the operator's Deployment", || {
        twin.list("apps/v1", "Deployment", Some("neptune-system"))
            .into_iter()
            .next()
    })
    .await;
    let deploy_uid = deploy["metadata"]["uid"].as_str().unwrap().to_string();
    let rs = common::eventually("its ReplicaSet", || {
        twin.list("apps/v1", "ReplicaSet", Some("neptune-system"))
            .into_iter()
            .find(|rs| controlled_by(rs, "Deployment") == Some(deploy_uid.as_str()))
    })
    .await;
    let rs_uid = rs["metadata"]["uid"].as_str().unwrap().to_string();
    let pod = common::eventually("the operator pod", || {
        twin.list("v1", "Pod", Some("neptune-system"))
            .into_iter()
            .find(|p| controlled_by(p, "ReplicaSet") == Some(rs_uid.as_str()))
    })
    .await;
    assert_eq!(
        pod["spec"]["serviceAccountName"],
        deploy["spec"]["template"]["spec"]["serviceAccountName"]
    );

    let uninstall = tokio::task::block_in_place(|| {
        helm(
            &twin,
            &[
                "uninstall",
                "neptune-operator",
                "--namespace",
                "neptune-system",
            ],
        )
    });
    assert!(
        uninstall.status.success(),
        "helm uninstall: {}",
        String::from_utf8_lossy(&uninstall.stderr)
    );
    common::eventually("the Deployment's pods gone", || {
        (twin
            .list("apps/v1", "Deployment", Some("neptune-system"))
            .is_empty()
            && twin.list("v1", "Pod", Some("neptune-system")).is_empty())
        .then_some(())
    })
    .await;
}
