//! The twin kubelet's probes, memory limits and node loss, against the twin API.

use crate::kubelet_common;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams};
use kubelet_common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_an_http_probe_and_liveness_restarts() {
    let env = start().await;
    let ns = "p1";
    env.pods(ns).await;
    // An HTTP server on the pod IP that answers 200 once /tmp/ready exists.
    let server = r#"
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = os.path.exists('/tmp/ready') if self.path == '/ready' else True
        self.send_response(200 if ok else 503); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()
"#;
    let script = format!("(sleep 1; touch /tmp/ready) & exec /usr/bin/python3 -c \"{server}\"");
    let mut pod = sh_pod("web", &script);
    pod["spec"]["restartPolicy"] = json!("Always");
    let c = &mut pod["spec"]["containers"][0];
    c["env"] =
        json!([{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]);
    c["ports"] = json!([{"name": "http", "containerPort": 8080}]);
    c["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1});
    c["livenessProbe"] = json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2});
    env.create(ns, pod).await;
    let p = env
        .wait_pod(ns, "web", "Ready", |p| {
            condition(p, "Ready").is_some_and(|c| c.status == "True")
        })
        .await;
    assert!(container(&p).ready);
    assert_eq!(condition(&p, "ContainersReady").unwrap().status, "True");

    // Liveness: a stopped server times out its HTTP probe; the container is restarted (SIGTERM
    // stays pending on a stopped process, so it is SIGKILLed when the grace period ends).
    let pid = env
        .kubelet
        .container_pid(ns, "web", "main")
        .expect("running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .ok();
    let p = env
        .wait_pod(ns, "web", "restarted", |p| container(p).restart_count >= 1)
        .await;
    let last = container(&p).last_state.unwrap().terminated.unwrap();
    assert_eq!(
        last.exit_code, 137,
        "SIGKILLed after the grace period: {last:?}"
    );
    env.wait_pod(ns, "web", "Ready again", |p| {
        condition(p, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_over_the_limit_is_oom_killed() {
    let env = start().await;
    let ns = "p2";
    env.pods(ns).await;
    let hog = "/usr/bin/python3 -c \"import time; x = bytearray(200 << 20); x[::4096] = b'1' * len(x[::4096]); time.sleep(60)\"";
    let mut pod = sh_pod("hog", hog);
    pod["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "64Mi"}});
    env.create(ns, pod).await;
    let p = env
        .wait_pod(ns, "hog", "Failed", |p| phase(p) == "Failed")
        .await;
    let t = container(&p).state.unwrap().terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));

    // The test hook: a well-behaved process, OOM-killed on demand.
    env.create(ns, sh_pod("victim", "echo up; sleep 60")).await;
    env.wait_pod(ns, "victim", "Running", |p| phase(p) == "Running")
        .await;
    env.kubelet.oom_kill(ns, "victim", "main").unwrap();
    let p = env
        .wait_pod(ns, "victim", "Failed", |p| phase(p) == "Failed")
        .await;
    let t = container(&p).state.unwrap().terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_goes_unknown_and_its_deleted_pods_stay_until_force_deleted() {
    let env = start().await;
    let ns = "p3";
    env.pods(ns).await;
    let mut pod = sh_pod("stuck", "echo up; sleep 600");
    pod["spec"]["nodeName"] = json!("twin-node-1");
    pod["spec"]["terminationGracePeriodSeconds"] = json!(1);
    env.create(ns, pod).await;
    env.wait_pod(ns, "stuck", "Running", |p| phase(p) == "Running")
        .await;
    let pid = env.kubelet.container_pid(ns, "stuck", "main").unwrap();

    env.kubelet.stop_node("twin-node-1").unwrap();
    let nodes: Api<Node> = Api::all(env.client.clone());
    let start = tokio::time::Instant::now();
    loop {
        let n = nodes.get("twin-node-1").await.unwrap();
        let ready = n
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        let tainted = n
            .spec
            .unwrap()
            .taints
            .unwrap_or_default()
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unreachable");
        if ready.status == "Unknown" && tainted {
            assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
            break;
        }
        assert!(start.elapsed() < DEADLINE, "node never went Unknown");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the node's processes died with it"
    );
    // The node controller evicts (a graceful delete) and nobody confirms it.
    let p = env
        .wait_pod(ns, "stuck", "Terminating", |p| {
            p.metadata.deletion_timestamp.is_some()
        })
        .await;
    assert_eq!(condition(&p, "Ready").unwrap().status, "False");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let api: Api<Pod> = Api::namespaced(env.client.clone(), ns);
    assert!(
        api.get("stuck").await.is_ok(),
        "stays Terminating past its grace"
    );
    api.delete(
        "stuck",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    env.wait_gone(ns, "stuck").await;

    // New pods avoid the unreachable node.
    env.create(ns, sh_pod("after", "true")).await;
    let p = env
        .wait_pod(ns, "after", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("twin-node-0"));
}
