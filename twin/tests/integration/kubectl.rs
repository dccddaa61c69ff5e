//! The real kubectl (1.35, from `.tools/bin`) against the twin: server-side apply of the CRD and
//! the fraud-detection example, `get` with printer columns, `scale`, `patch --type=merge`, a bad
//! spec refused with its field named, `describe`, `explain`, `delete`, and a request without the
//! token refused.

use crate::common;

#[tokio::test]
async fn kubectl_drives_a_stream_batch_app_through_its_life() {
    let twin = common::twin().await;
    let tw = &twin;
    // kubectl blocks; run it on the blocking pool so the twin keeps serving.
    let run = |args: Vec<&'static str>| {
        let kc = tw.kubeconfig().to_path_buf();
        let dir = tw.dir().to_path_buf();
        async move {
            tokio::task::spawn_blocking(move || common::kubectl_at(&kc, &dir, &args))
                .await
                .unwrap()
        }
    };
    let ok = |out: std::process::Output, what: &str| {
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(
        run(vec![
            "apply",
            "--server-side",
            "-f",
            "crds/streambatchapp.yaml",
        ])
        .await,
        "apply CRD",
    );
    // Sent as protobuf by kubectl 1.35.
    ok(
        run(vec!["create", "namespace", "streaming"]).await,
        "create namespace",
    );
    let applied = ok(
        run(vec![
            "apply",
            "--server-side",
            "-n",
            "streaming",
            "-f",
            "examples/k8s/fraud-detection.yaml",
        ])
        .await,
        "apply app",
    );
    assert!(
        applied.contains("streambatchapp.neptune.dev/fraud-detection serverside-applied"),
        "{applied}"
    );

    let table = ok(run(vec!["get", "sba", "-n", "streaming"]).await, "get sba");
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PHASE",
            "POLICY",
            "READY",
            "DESIRED",
            "STREAM-P99",
            "SLO",
            "AGE"
        ],
        "{table}"
    );
    // No operator runs: PHASE, READY, STREAM-P99 and SLO are empty.
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["fraud-detection", "neptune", "2"], "{table}");

    ok(
        run(vec![
            "scale",
            "sba/fraud-detection",
            "-n",
            "streaming",
            "--replicas=4",
        ])
        .await,
        "scale",
    );
    let app = tw
        .get(
            "neptune.dev/v1alpha1",
            "StreamBatchApp",
            "streaming",
            "fraud-detection",
        )
        .unwrap();
    assert_eq!(app["spec"]["executor"]["replicas"], 4);
    assert_eq!(
        app["metadata"]["generation"], 2,
        "a spec change bumps the generation"
    );

    ok(
        run(vec![
            "patch",
            "sba",
            "fraud-detection",
            "-n",
            "streaming",
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":true}}"#,
        ])
        .await,
        "patch",
    );
    let app = tw
        .get(
            "neptune.dev/v1alpha1",
            "StreamBatchApp",
            "streaming",
            "fraud-detection",
        )
        .unwrap();
    assert_eq!(app["spec"]["suspend"], true);

    // A bad spec: kubectl prints the field and the rule.
    let bad = run(vec![
        "patch",
        "sba",
        "fraud-detection",
        "-n",
        "streaming",
        "--type=merge",
        "-p",
        r#"{"spec":{"executor":{"cores":0}}}"#,
    ])
    .await;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("spec.executor.cores") && err.contains("greater than or equal to 1"),
        "{err}"
    );

    let described = ok(
        run(vec![
            "describe",
            "sba",
            "fraud-detection",
            "-n",
            "streaming",
        ])
        .await,
        "describe",
    );
    assert!(
        described.contains("fraud-detection") && described.contains("Replicas"),
        "{described}"
    );
    let explained = ok(run(vec!["explain", "sba.spec.scheduling"]).await, "explain");
    assert!(explained.contains("policy"), "{explained}");

    let pods = ok(run(vec!["get", "pods", "-A"]).await, "get pods");
    assert!(pods.is_empty() || pods.contains("NAME"), "{pods}");

    ok(
        run(vec!["delete", "sba", "fraud-detection", "-n", "streaming"]).await,
        "delete",
    );
    assert!(
        tw.get(
            "neptune.dev/v1alpha1",
            "StreamBatchApp",
            "streaming",
            "fraud-detection"
        )
        .is_none()
    );
    let gone = run(vec!["get", "sba", "fraud-detection", "-n", "streaming"]).await;
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
}

#[tokio::test]
async fn requests_without_the_token_are_unauthorized() {
    let twin = common::twin().await;
    let run = |args: &'static [&'static str]| {
        let (kc, dir) = (twin.kubeconfig().to_path_buf(), twin.dir().to_path_buf());
        tokio::task::spawn_blocking(move || common::kubectl_at(&kc, &dir, args))
    };
    let out = run(&["--token=wrong", "get", "namespaces"]).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // kubectl's wording for a 401.
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "{err}"
    );
    let ns = run(&["get", "namespaces", "-o", "name"]).await.unwrap();
    let names = String::from_utf8_lossy(&ns.stdout);
    assert!(
        names.contains("namespace/default") && names.contains("namespace/kube-system"),
        "{names}"
    );
}

#[tokio::test]
async fn kubectl_logs_reads_what_the_kubelet_captured() {
    let twin = common::twin().await;
    twin.apply(
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "neptune:dev"}]}}),
        "test",
    )
    .unwrap();
    // The kubelet's side of the contract: container output at Twin::log_path.
    let path = twin.log_path("default", "p", "main", false);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "first\nsecond\nthird\n").unwrap();
    let run = |args: &'static [&'static str]| {
        let (kc, dir) = (twin.kubeconfig().to_path_buf(), twin.dir().to_path_buf());
        tokio::task::spawn_blocking(move || common::kubectl_at(&kc, &dir, args))
    };
    let all = run(&["logs", "p"]).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&all.stdout),
        "first\nsecond\nthird\n",
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let tail = run(&["logs", "p", "--tail=1"]).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&tail.stdout), "third\n");
    let prev = run(&["logs", "p", "--previous"]).await.unwrap();
    assert!(!prev.status.success(), "no previous container yet");
}
