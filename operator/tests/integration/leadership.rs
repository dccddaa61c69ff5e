//! Operator upgrade: a replica that does not hold the leader lease (the old one still leads) is
//! Ready as soon as it serves and has reached the API, and says it does not lead in
//! `neptune_operator_leader`; it reconciles nothing meanwhile. Runs the real `run_with` against
//! a mocked apiserver whose Lease is held by another replica.

use std::time::{Duration, Instant};

use futures::FutureExt;
use http::{Request, Response};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::client::Body;
use neptune_operator::config::LeaderConfig;
use neptune_operator::controller::run_with;
use neptune_operator::{Config, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn held_by_other() -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("neptune-operator".into()),
            namespace: Some("ops".into()),
            resource_version: Some("7".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("old-replica".into()),
            lease_duration_seconds: Some(3600),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..LeaseSpec::default()
        }),
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Some((code, body))
}

#[tokio::test]
async fn a_replica_waiting_for_the_lease_is_ready_and_reports_it_does_not_lead() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let others = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let uri = request.uri().to_string();
            seen.push(format!("{} {uri}", request.method()));
            let (code, body) =
                if uri.contains("/leases/neptune-operator") && request.method() == "GET" {
                    (200, serde_json::to_vec(&held_by_other()).unwrap())
                } else {
                    (
                        404,
                        br#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}"#
                            .to_vec(),
                    )
                };
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(body))
                    .unwrap(),
            );
        }
        seen
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        namespaces: Vec::new(),
        http: addr,
        leader: Some(LeaderConfig {
            lease_name: "neptune-operator".into(),
            namespace: "ops".into(),
            duration_seconds: 15,
        }),
        identity: "new-replica".into(),
        settings: Settings::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    }
    .boxed()
    .shared();
    let operator = tokio::spawn(run_with(config, client, listener, shutdown));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, body)) = get(addr, "/readyz").await {
            assert_eq!(body, "ready");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never Ready while another replica leads"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, metrics) = get(addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("neptune_operator_leader 0"), "{metrics}");
    stop.send(()).unwrap();
    operator.await.unwrap().unwrap();
    let seen = others.await.unwrap();
    assert!(
        seen.iter().all(|r| r.contains("/leases/")),
        "a replica that does not lead touches nothing but the lease: {seen:?}"
    );
}
