//! The twin kubelet against the twin API: real processes on their own loopback IPs, with the
//! environment, volumes, hosts file, termination messages, restarts and images a real kubelet
//! gives them.

use crate::kubelet_common;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, PostParams};
use kubelet_common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gets_its_ip_env_volumes_hosts_and_exit_status() {
    let env = start().await;
    let ns = "t1";
    env.pods(ns).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cfg"}, "data": {"greeting": "hello", "app.conf": "k=v"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "me"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "selector": {"app": "env"},
                 "ports": [{"port": 80}]}
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let script = r#"
        echo "ip=$POD_IP name=$POD_NAME greeting=$GREETING listen=$LISTEN host=$(hostname)"
        echo "conf=$(cat /etc/cfg/app.conf)"
        touch /etc/cfg/x 2>/dev/null && echo "cfg writable" || echo "cfg read-only"
        echo scratch > /scratch/f && echo "scratch=$(cat /scratch/f)"
        touch /rootfs-write 2>/dev/null && echo "root writable" || echo "root read-only"
        for i in $(seq 1 100); do grep -q 'me.t1.svc.cluster.local' /etc/hosts && break; sleep 0.1; done
        grep 'me.t1.svc.cluster.local' /etc/hosts
        echo "bye from $POD_NAME" > /dev/termination-log
        exit 3
    "#;
    let mut pod = sh_pod("env", script);
    pod["metadata"]["labels"] = json!({"app": "env"});
    pod["spec"]["containers"][0]["env"] = json!([
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "LISTEN", "value": "$(POD_IP):7077"},
    ]);
    pod["spec"]["containers"][0]["securityContext"] = json!({"readOnlyRootFilesystem": true});
    pod["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true},
        {"name": "scratch", "mountPath": "/scratch"},
    ]);
    pod["spec"]["volumes"] = json!([
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "scratch", "emptyDir": {}},
    ]);
    env.create(ns, pod).await;
    let p = env
        .wait_pod(ns, "env", "Failed", |p| phase(p) == "Failed")
        .await;
    let status = p.status.clone().unwrap();
    let ip = status.pod_ip.clone().unwrap();
    assert!(
        ip.starts_with("127.0.") && !ip.starts_with("127.0.0."),
        "{ip}"
    );
    assert!(status.host_ip.unwrap().starts_with("127.0."));
    let term = container(&p).state.unwrap().terminated.unwrap();
    assert_eq!(term.exit_code, 3);
    assert_eq!(term.reason.as_deref(), Some("Error"));
    assert_eq!(term.message.as_deref(), Some("bye from env\n"));
    let log = env.wait_log(ns, "env", "svc.cluster.local").await;
    assert!(
        log.contains(&format!(
            "ip={ip} name=env greeting=hello listen={ip}:7077 host=env"
        )),
        "{log}"
    );
    assert!(log.contains("conf=k=v"), "{log}");
    assert!(log.contains("cfg read-only"), "{log}");
    assert!(log.contains("scratch=scratch"), "{log}");
    assert!(log.contains("root read-only"), "{log}");
    assert!(
        log.contains(&format!("{ip}\tme me.t1 me.t1.svc me.t1.svc.cluster.local")),
        "{log}"
    );
    assert!(
        !std::path::Path::new("/rootfs-write").exists(),
        "writes stay in the pod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_restarts_with_back_off_and_keeps_the_last_state() {
    let env = start().await;
    let ns = "t2";
    // First run fails (no marker in the emptyDir yet), the second succeeds.
    let script =
        "if [ -f /data/ran ]; then echo second; exit 0; fi; touch /data/ran; echo first; exit 7";
    let mut pod = sh_pod("flaky", script);
    pod["spec"]["restartPolicy"] = json!("OnFailure");
    pod["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "d", "mountPath": "/data"}]);
    pod["spec"]["volumes"] = json!([{"name": "d", "emptyDir": {}}]);
    env.pods(ns).await;
    env.create(ns, pod).await;
    let p = env
        .wait_pod(ns, "flaky", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    let c = container(&p);
    assert_eq!(c.restart_count, 1);
    let last = c.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (7, Some("Error")));
    assert_eq!(env.logs(ns, "flaky").await, "second\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_images_back_off_and_missing_config_waits_with_a_reason() {
    let env = start().await;
    let ns = "t3";
    env.pods(ns).await;
    let mut pod = sh_pod("pull", "true");
    pod["spec"]["containers"][0]["image"] = json!("nope/missing:1");
    env.create(ns, pod).await;
    env.wait_pod(ns, "pull", "ErrImagePull", |p| {
        waiting_reason(p) == "ErrImagePull"
    })
    .await;
    let p = env
        .wait_pod(ns, "pull", "ImagePullBackOff", |p| {
            waiting_reason(p) == "ImagePullBackOff"
        })
        .await;
    assert_eq!(phase(&p), "Pending");

    let mut pod = sh_pod("cfg", "echo $X");
    pod["spec"]["containers"][0]["env"] =
        json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]);
    env.create(ns, pod).await;
    let p = env
        .wait_pod(ns, "cfg", "CreateContainerConfigError", |p| {
            waiting_reason(p) == "CreateContainerConfigError"
        })
        .await;
    let msg = container(&p)
        .state
        .unwrap()
        .waiting
        .unwrap()
        .message
        .unwrap();
    assert_eq!(msg, "configmap \"absent\" not found");
    // Creating the ConfigMap lets it start.
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "absent"}, "data": {"k": "now"}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    env.wait_pod(ns, "cfg", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    assert_eq!(env.logs(ns, "cfg").await, "now\n");

    let mut pod = sh_pod("mount", "true");
    pod["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "c", "mountPath": "/c"}]);
    pod["spec"]["volumes"] = json!([{"name": "c", "secret": {"secretName": "gone"}}]);
    env.create(ns, pod).await;
    let p = env
        .wait_pod(ns, "mount", "ContainerCreating", |p| {
            container(p)
                .state
                .and_then(|s| s.waiting)
                .and_then(|w| w.message)
                .is_some_and(|m| m.contains("secret \"gone\" not found"))
        })
        .await;
    assert_eq!(waiting_reason(&p), "ContainerCreating");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_no_node_fits_stay_pending_unschedulable() {
    let env = start().await;
    let ns = "t4";
    env.pods(ns).await;
    let mut pod = sh_pod("picky", "true");
    pod["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    env.create(ns, pod).await;
    let p = env
        .wait_pod(ns, "picky", "Unschedulable", |p| {
            condition(p, "PodScheduled")
                .is_some_and(|c| c.reason.as_deref() == Some("Unschedulable"))
        })
        .await;
    let c = condition(&p, "PodScheduled").unwrap();
    assert_eq!(c.status, "False");
    assert_eq!(
        c.message.as_deref(),
        Some("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")
    );
    assert_eq!(phase(&p), "Pending");
    assert!(p.spec.unwrap().node_name.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_deletion_signals_waits_and_confirms() {
    let env = start().await;
    let ns = "t5";
    env.pods(ns).await;
    let script = "trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.1; done";
    env.create(ns, sh_pod("graceful", script)).await;
    env.wait_pod(ns, "graceful", "Running", |p| phase(p) == "Running")
        .await;
    env.wait_log(ns, "graceful", "up").await;
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client.clone(), ns);
    api.delete("graceful", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone(ns, "graceful").await;
    assert_eq!(env.kubelet.live_containers(), 0, "nothing left running");

    // A process ignoring SIGTERM is killed when the grace period ends.
    let script = "trap '' TERM; echo up; while true; do sleep 0.1; done";
    let mut pod = sh_pod("stubborn", script);
    pod["spec"]["terminationGracePeriodSeconds"] = json!(1);
    env.create(ns, pod).await;
    env.wait_pod(ns, "stubborn", "Running", |p| phase(p) == "Running")
        .await;
    env.wait_log(ns, "stubborn", "up").await;
    api.delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone(ns, "stubborn").await;
    assert_eq!(env.kubelet.live_containers(), 0);
}
