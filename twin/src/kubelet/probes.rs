//! Startup, readiness and liveness probes with the kubelet's semantics: `initialDelaySeconds`
//! from the container's start, `periodSeconds` (10), `timeoutSeconds` (1), `successThreshold`
//! (1; readiness may ask for more), `failureThreshold` (3); readiness and liveness start only
//! once the startup probe succeeded; a container without a readiness probe is ready once
//! started. Actions: `httpGet` (HTTP, 200–399 is success, `httpHeaders`, named ports),
//! `tcpSocket` (a connect), `exec` (the command inside the container's namespaces and root
//! through `nsenter`, exit 0 is success). HTTPS and gRPC probes fail with a message saying the
//! twin does not run them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::mpsc;

/// What a container's probes found so far.
#[derive(Debug, Default)]
pub struct ProbeState {
    /// The startup probe succeeded (or there is none).
    pub started: AtomicBool,
    /// The readiness probe's current verdict.
    pub ready: AtomicBool,
}

/// A probe result the worker must act on or report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeEvent {
    /// Readiness or startup changed (the status must be rewritten).
    Changed,
    /// A probe failed once (an `Unhealthy` Event: "Readiness probe failed: ...").
    Failed { kind: &'static str, message: String },
    /// Liveness or startup reached its failure threshold: the container must be restarted.
    Kill { kind: &'static str, message: String },
}

/// Where a probe runs: the pod IP, and the container's main pid and user for `exec`.
#[derive(Clone, Debug)]
pub struct Target {
    /// Pod IP.
    pub ip: String,
    /// Main process (for `exec` probes).
    pub pid: i32,
    /// uid/gid for `exec` probes.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
}

/// Runs the container's probes until the task is aborted (when the container stops).
pub async fn run(
    container: Container,
    target: Target,
    state: Arc<ProbeState>,
    events: mpsc::UnboundedSender<ProbeEvent>,
) {
    let started_at = tokio::time::Instant::now();
    if let Some(p) = &container.startup_probe {
        let mut counter = Counter::default();
        tokio::time::sleep_until(started_at + secs(p.initial_delay_seconds, 0)).await;
        loop {
            let r = probe(p, &container, &target).await;
            match counter.record(r, 1, threshold(p.failure_threshold, 3)) {
                Verdict::Pass => break,
                Verdict::FailedOnce(message) => {
                    let _ = events.send(ProbeEvent::Failed {
                        kind: "Startup",
                        message,
                    });
                }
                Verdict::Fail(message) => {
                    let _ = events.send(ProbeEvent::Kill {
                        kind: "Startup",
                        message,
                    });
                    return;
                }
                Verdict::Pending => {}
            }
            tokio::time::sleep(secs(p.period_seconds, 10)).await;
        }
    }
    state.started.store(true, Ordering::SeqCst);
    if container.readiness_probe.is_none() {
        state.ready.store(true, Ordering::SeqCst);
    }
    let _ = events.send(ProbeEvent::Changed);
    let readiness = async {
        let Some(p) = &container.readiness_probe else {
            return std::future::pending::<()>().await;
        };
        let mut counter = Counter::default();
        tokio::time::sleep_until(started_at + secs(p.initial_delay_seconds, 0)).await;
        loop {
            let r = probe(p, &container, &target).await;
            let verdict = counter.record(
                r,
                threshold(p.success_threshold, 1),
                threshold(p.failure_threshold, 3),
            );
            let ready = match verdict {
                Verdict::Pass => Some(true),
                Verdict::Fail(message) => {
                    let _ = events.send(ProbeEvent::Failed {
                        kind: "Readiness",
                        message,
                    });
                    Some(false)
                }
                Verdict::FailedOnce(message) => {
                    let _ = events.send(ProbeEvent::Failed {
                        kind: "Readiness",
                        message,
                    });
                    None
                }
                Verdict::Pending => None,
            };
            if let Some(ready) = ready
                && state.ready.swap(ready, Ordering::SeqCst) != ready
            {
                let _ = events.send(ProbeEvent::Changed);
            }
            tokio::time::sleep(secs(p.period_seconds, 10)).await;
        }
    };
    let liveness = async {
        let Some(p) = &container.liveness_probe else {
            return std::future::pending::<()>().await;
        };
        let mut counter = Counter::default();
        tokio::time::sleep_until(started_at + secs(p.initial_delay_seconds, 0)).await;
        loop {
            let r = probe(p, &container, &target).await;
            match counter.record(r, 1, threshold(p.failure_threshold, 3)) {
                Verdict::Fail(message) => {
                    let _ = events.send(ProbeEvent::Kill {
                        kind: "Liveness",
                        message,
                    });
                    return std::future::pending::<()>().await;
                }
                Verdict::FailedOnce(message) => {
                    let _ = events.send(ProbeEvent::Failed {
                        kind: "Liveness",
                        message,
                    });
                }
                Verdict::Pass | Verdict::Pending => {}
            }
            tokio::time::sleep(secs(p.period_seconds, 10)).await;
        }
    };
    tokio::join!(readiness, liveness);
}

fn secs(v: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
}

fn threshold(v: Option<i32>, default: u32) -> u32 {
    v.and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// Consecutive successes/failures against the thresholds.
#[derive(Debug, Default)]
struct Counter {
    successes: u32,
    failures: u32,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Success threshold reached.
    Pass,
    /// Failure threshold reached (message of the last failure).
    Fail(String),
    /// A failure below the threshold.
    FailedOnce(String),
    /// A success below the threshold.
    Pending,
}

impl Counter {
    fn record(
        &mut self,
        r: Result<(), String>,
        success_threshold: u32,
        failure_threshold: u32,
    ) -> Verdict {
        match r {
            Ok(()) => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if self.successes >= success_threshold {
                    Verdict::Pass
                } else {
                    Verdict::Pending
                }
            }
            Err(m) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.failures >= failure_threshold {
                    Verdict::Fail(m)
                } else {
                    Verdict::FailedOnce(m)
                }
            }
        }
    }
}

/// One probe attempt.
async fn probe(p: &Probe, c: &Container, t: &Target) -> Result<(), String> {
    let timeout = secs(p.timeout_seconds, 1).max(Duration::from_secs(1));
    if let Some(h) = &p.http_get {
        let port = port(&h.port, c)?;
        let host = h.host.clone().unwrap_or_else(|| t.ip.clone());
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("http://{host}:{port}{path}");
        if h.scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
        {
            return Err(format!(
                "Get \"{url}\": HTTPS probes are not supported by the cluster twin"
            ));
        }
        let headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return match tokio::time::timeout(timeout, http_get(&host, port, &path, &headers)).await {
            Err(_) => Err(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
            Ok(Err(e)) => Err(format!("Get \"{url}\": {e}")),
            Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
            Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
        };
    }
    if let Some(s) = &p.tcp_socket {
        let port = port(&s.port, c)?;
        let host = s.host.clone().unwrap_or_else(|| t.ip.clone());
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: connect: {e}")),
            Ok(Ok(_)) => Ok(()),
        };
    }
    if let Some(e) = &p.exec {
        let cmd = e.command.clone().unwrap_or_default();
        if cmd.is_empty() {
            return Err("exec probe without a command".into());
        }
        let mut nsenter = tokio::process::Command::new("nsenter");
        nsenter
            .args(["-t", &t.pid.to_string(), "-m", "-u", "-r", "-w"])
            .args(["-S", &t.uid.to_string(), "-G", &t.gid.to_string(), "--"])
            .args(&cmd)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        return match tokio::time::timeout(timeout, nsenter.output()).await {
            Err(_) => Err(format!("command {cmd:?} timed out")),
            Ok(Err(e)) => Err(format!("exec {cmd:?}: {e}")),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(format!(
                "command {cmd:?} exited with {}: {}",
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).trim()
            )),
        };
    }
    if p.grpc.is_some() {
        return Err("gRPC probes are not supported by the cluster twin".into());
    }
    Err("probe has no action".into())
}

/// A probe port: a number or the name of one of the container's ports.
fn port(p: &IntOrString, c: &Container) -> Result<u16, String> {
    let n = match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => c
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .map(|cp| cp.container_port)
                .ok_or_else(|| format!("port {name:?} not found in container {}", c.name))?,
        },
    };
    u16::try_from(n).map_err(|_| format!("invalid port {n}"))
}

/// `GET path` over HTTP/1.1; the status code.
async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String> {
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let mut req = http::Request::get(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::USER_AGENT, "kube-probe/twin")
        .header(http::header::ACCEPT, "*/*");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string());
    conn.abort();
    Ok(resp?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_count_consecutive_results() {
        let mut c = Counter::default();
        assert_eq!(
            c.record(Err("a".into()), 1, 3),
            Verdict::FailedOnce("a".into())
        );
        assert_eq!(
            c.record(Err("b".into()), 1, 3),
            Verdict::FailedOnce("b".into())
        );
        assert_eq!(
            c.record(Ok(()), 2, 3),
            Verdict::Pending,
            "success resets failures"
        );
        assert_eq!(c.record(Ok(()), 2, 3), Verdict::Pass);
        for _ in 0..2 {
            c.record(Err("x".into()), 1, 3);
        }
        assert_eq!(
            c.record(Err("last".into()), 1, 3),
            Verdict::Fail("last".into())
        );
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_real_listener() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let code = if req.starts_with("GET /ok ") {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    };
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                });
            }
        });
        let c = Container {
            name: "c".into(),
            ports: Some(vec![k8s_openapi::api::core::v1::ContainerPort {
                name: Some("http".into()),
                container_port: i32::from(port),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let t = Target {
            ip: "127.0.0.1".into(),
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let http = |path: &str| Probe {
            http_get: Some(k8s_openapi::api::core::v1::HTTPGetAction {
                path: Some(path.into()),
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(probe(&http("/ok"), &c, &t).await, Ok(()));
        assert_eq!(
            probe(&http("/bad"), &c, &t).await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
        let tcp = |port: i32| Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: IntOrString::Int(port),
                host: None,
            }),
            ..Default::default()
        };
        assert_eq!(probe(&tcp(i32::from(port)), &c, &t).await, Ok(()));
        // Port 1 on loopback: nothing listens there.
        let err = probe(&tcp(1), &c, &t).await.unwrap_err();
        assert!(err.starts_with("dial tcp 127.0.0.1:1: connect:"), "{err}");
        let named = Probe {
            http_get: Some(k8s_openapi::api::core::v1::HTTPGetAction {
                port: IntOrString::String("nope".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(
            probe(&named, &c, &t)
                .await
                .unwrap_err()
                .contains("\"nope\" not found")
        );
    }
}
