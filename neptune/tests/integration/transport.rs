//! A rogue process on the same machine against a running app — `neptune local`, and a standalone
//! driver with two executors sharing credentials made by `neptune certs`: plain gRPC, TLS with
//! another CA's certificate, TLS without a certificate, and forged block fetches in plaintext or
//! with a stranger's certificate are all refused; the app's word counts stay exact (a shuffle
//! between the two executors runs over mutual TLS meanwhile); `/status` shows no config value and
//! `/admin/config` needs the admin token. The standalone run also plays the rogue *with* the
//! app's credentials, to show the same probes do get through when they should.

use crate::common;

use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ALPN_BLOCKS: &[u8] = neptune_net::tls::ALPN_BLOCKS;

/// Accepts any server certificate: the rogue wants to test the *server's* check of clients.
#[derive(Debug)]
struct TrustAnything;

impl rustls::client::danger::ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rogue's TLS client: `identity` = (cert PEM, key PEM) or none; trusts any server.
fn rogue_tls(identity: Option<(&str, &str)>, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(TrustAnything));
    let mut c = match identity {
        Some((cert, key)) => b
            .with_client_auth_cert(
                rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(c)
}

/// What a rogue's gRPC call got: `Ok(code)` if the driver's service answered at all (any gRPC
/// status from the server), `Err` if the connection was refused before that.
fn grpc_probe(addr: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<tonic::Code, String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        // `http` even for TLS: the hand-made connector below does the TLS itself.
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30));
        let channel = match tls {
            None => ep.connect().await.map_err(|e| e.to_string())?,
            Some(cfg) => {
                // A hand-made TLS connector, so the rogue can offer any certificate (or none).
                let connector = tower::service_fn(move |uri: http::Uri| {
                    let cfg = cfg.clone();
                    async move {
                        let host = uri.authority().unwrap().as_str().to_string();
                        let tcp = tokio::net::TcpStream::connect(host).await?;
                        let name = rustls::pki_types::ServerName::try_from("rogue.example")
                            .unwrap()
                            .to_owned();
                        let tls = tokio_rustls::TlsConnector::from(cfg)
                            .connect(name, tcp)
                            .await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                    }
                });
                ep.connect_with_connector(connector)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| e.to_string())?;
        // An empty registration: the driver would refuse it (0 cores) if it ever read it.
        let path = http::uri::PathAndQuery::from_static("/neptune.Driver/Register");
        let r = grpc
            .unary::<(), (), _>(
                tonic::Request::new(()),
                path,
                tonic_prost::ProstCodec::default(),
            )
            .await;
        // Codes only a gRPC handler gives count as "answered"; transport failures (a refused
        // handshake surfaces as Unavailable, Unknown, Internal or Cancelled) do not.
        use tonic::Code as C;
        match r {
            Ok(_) => Ok(C::Ok),
            Err(s)
                if matches!(
                    s.code(),
                    C::InvalidArgument
                        | C::FailedPrecondition
                        | C::Unimplemented
                        | C::NotFound
                        | C::AlreadyExists
                        | C::PermissionDenied
                        | C::Unauthenticated
                        | C::OutOfRange
                ) =>
            {
                Ok(s.code())
            }
            Err(s) => Err(format!("{s}")),
        }
    })
}

/// Ask block server `addr` for a block, optionally over TLS; the raw reply.
fn block_probe(addr: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // job 0, run 0, stage 0, map 0, reduce 0
    let req = [0u8; 24];
    let mut reply = Vec::new();
    match tls {
        None => {
            tcp.write_all(&req).unwrap();
            let _ = tcp.read_to_end(&mut reply);
        }
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from("rogue.example").unwrap();
            let mut conn = rustls::ClientConnection::new(cfg, name.to_owned()).unwrap();
            let mut s = rustls::Stream::new(&mut conn, &mut tcp);
            if s.write_all(&req).and_then(|()| s.flush()).is_ok() {
                let mut head = [0u8; 9];
                if s.read_exact(&mut head).is_ok() {
                    reply.extend_from_slice(&head);
                }
            }
        }
    }
    reply
}

/// A block reply's header: status 0 (found) or 1 (missing) and a length.
fn is_block_reply(r: &[u8]) -> bool {
    r.len() >= 9 && r[0] <= 1
}

/// Every probe a rogue without the app's credentials can make; all must be refused.
fn rogue_is_refused(grpc: &str, blocks: &[String]) {
    let stranger = neptune_net::issue::issue("rogue", &[], 1).unwrap();
    let stranger_id = Some((stranger.cert_pem.as_str(), stranger.key_pem.as_str()));
    let r = grpc_probe(grpc, None);
    assert!(r.is_err(), "plain gRPC reached the driver: {r:?}");
    let r = grpc_probe(grpc, Some(rogue_tls(None, b"h2")));
    assert!(
        r.is_err(),
        "TLS without a certificate reached the driver: {r:?}"
    );
    let r = grpc_probe(grpc, Some(rogue_tls(stranger_id, b"h2")));
    assert!(
        r.is_err(),
        "another CA's certificate reached the driver: {r:?}"
    );
    for b in blocks {
        let r = block_probe(b, None);
        assert!(
            !is_block_reply(&r),
            "plaintext fetch answered by {b}: {r:?}"
        );
        let r = block_probe(b, Some(rogue_tls(None, ALPN_BLOCKS)));
        assert!(r.is_empty(), "fetch without a certificate answered by {b}");
        let r = block_probe(b, Some(rogue_tls(stranger_id, ALPN_BLOCKS)));
        assert!(
            r.is_empty(),
            "fetch with a stranger's certificate answered by {b}"
        );
    }
}

/// Words `f<i>.txt` files hold, dropped atomically into `watched`.
fn drop_files(watched: &Path, expected: &mut BTreeMap<String, u64>) {
    for f in 0..4u64 {
        let mut text = String::new();
        for line in 0..300u64 {
            text += &format!("w{} f{f} common\n", (f * 13 + line) % 23);
        }
        for w in text.split_whitespace() {
            *expected.entry(w.to_string()).or_default() += 1;
        }
        let tmp = watched.join(format!(".f{f}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, watched.join(format!("f{f}.txt"))).unwrap();
    }
}

/// The wordcount stream job's `--set`s over `watched`, writing to `out`.
fn wordcount_sets(watched: &Path, out: &Path) -> Vec<String> {
    vec![
        format!("stream.dir={}", watched.display()),
        format!("stream.output={}", out.display()),
        "stream.partitions=2".into(),
        "jobs.watch.interval_ms=100".into(),
    ]
}

/// The executors' block addresses once both registered, per `/status`.
fn block_addrs(http: &str) -> Vec<String> {
    wait_for(
        Duration::from_secs(120),
        "two executors and a micro-batch",
        || {
            let st = status(http)?;
            let blocks: Vec<String> = st["executors"]
                .as_array()?
                .iter()
                .filter_map(|e| e["blocks"].as_str().map(String::from))
                .collect();
            (blocks.len() == 2 && job_runs(http, "watch")? >= 1).then_some(blocks)
        },
    )
}

/// The checks after the attacks: files counted exactly, still two executors, nothing secret in
/// `/status`.
fn app_unharmed(http: &str, watched: &Path, out: &Path) {
    let mut expected = BTreeMap::new();
    drop_files(watched, &mut expected);
    wait_for(Duration::from_secs(180), "every file counted", || {
        (word_totals(out).0 == expected).then_some(())
    });
    let (code, body) = http_get(http, "/status").unwrap();
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["transport"], "mtls");
    let ids: Vec<&str> = st["executors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["exec-0", "exec-1"], "no rogue registered");
    let secret = watched.to_str().unwrap();
    assert!(!body.contains(secret), "/status shows a config value");
    assert_eq!(http_get(http, "/admin/config").unwrap().0, 401);
}

#[test]
fn a_rogue_local_process_cannot_join_or_read_a_neptune_local_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (watched, out) = (dir.path().join("watched"), dir.path().join("out"));
    let http = format!("127.0.0.1:{}", free_port());
    let sets = wordcount_sets(&watched, &out);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut child = local_on("wordcount", 2, &report_path(&dir, "r"), &sets, &http)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // `neptune local` kills its executors when it ends (SIGTERM) or its pipe closes.
    let mut guard = Procs(vec![child]);
    let grpc = Arc::new(Mutex::new(None));
    let g = grpc.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some((_, a)) = line.split_once("grpc https://") {
                *g.lock().unwrap() = Some(a.trim().to_string());
            }
            eprintln!("{line}");
        }
    });
    let grpc = wait_for(Duration::from_secs(60), "the driver's gRPC address", || {
        grpc.lock().unwrap().clone()
    });
    let blocks = block_addrs(&http);
    rogue_is_refused(&grpc, &blocks);
    app_unharmed(&http, &watched, &out);
    terminate(guard.0.remove(0));
}

fn spawn_quiet(mut cmd: std::process::Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Kills the processes it holds when dropped, so a failing assertion leaves no cluster behind.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &mut self.0 {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

#[test]
fn a_rogue_cannot_join_or_read_a_standalone_cluster_and_the_apps_credentials_can() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    let mut certs = neptune();
    certs
        .args(["certs", "--app", "wordcount", "--out"])
        .arg(&creds);
    let out = run_with_timeout(certs, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (watched, out) = (dir.path().join("watched"), dir.path().join("out"));
    let (grpc, http) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut driver = neptune();
    driver
        .args(["driver", "--app", "wordcount", "--executors", "2"])
        .args(["--listen", &grpc, "--http", &http, "--tls-dir"])
        .arg(&creds);
    for s in wordcount_sets(&watched, &out) {
        driver.args(["--set", &s]);
    }
    let mut procs = Procs(vec![spawn_quiet(driver)]);
    for i in 0..2 {
        let mut e = neptune();
        e.args(["executor", "--driver", &format!("https://{grpc}")])
            .args(["--cores", "2", "--memory", "512Mi", "--http", "127.0.0.1:0"])
            .args(["--block-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--id", &format!("exec-{i}"), "--tls-dir"])
            .arg(&creds);
        procs.0.push(spawn_quiet(e));
    }
    let blocks = block_addrs(&http);
    rogue_is_refused(&grpc, &blocks);

    // The same probes with the app's own credentials get through: the refusals above are the
    // credentials' doing, not a broken probe.
    let read = |f: &str| std::fs::read_to_string(creds.join(f)).unwrap();
    let (cert, key) = (read("tls.crt"), read("tls.key"));
    let member = Some((cert.as_str(), key.as_str()));
    let code = grpc_probe(&grpc, Some(rogue_tls(member, b"h2"))).expect("a member reaches gRPC");
    assert_ne!(code, tonic::Code::Ok, "an empty registration is refused");
    for b in &blocks {
        let r = block_probe(b, Some(rogue_tls(member, ALPN_BLOCKS)));
        assert!(is_block_reply(&r), "{b} answers a member: {r:?}");
    }

    app_unharmed(&http, &watched, &out);
    let token = read("token");
    let mut s = TcpStream::connect(&http).unwrap();
    write!(
        s,
        "GET /admin/config HTTP/1.0\r\nAuthorization: Bearer {}\r\n\r\n",
        token.trim()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    assert!(reply.contains(watched.to_str().unwrap()), "{reply}");

    // Live scheduling: the admin token changes the running scheduler; nothing else does.
    let post = |auth: Option<&str>, body: &str| {
        let mut s = TcpStream::connect(&http).unwrap();
        let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(
            s,
            "POST /admin/scheduling HTTP/1.0\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply
    };
    let change = r#"{"scheduler.policy":"fifo","scheduler.quantum_ms":250}"#;
    let r = post(None, change);
    assert!(r.starts_with("HTTP/1.0 401"), "{r}");
    let r = post(Some(token.trim()), r#"{"scheduler.policy":"static"}"#);
    assert!(
        r.starts_with("HTTP/1.0 400") && r.contains("restart"),
        "{r}"
    );
    let r = post(Some(token.trim()), r#"{"heartbeat.interval_ms":100}"#);
    assert!(
        r.starts_with("HTTP/1.0 400") && r.contains("heartbeat.interval_ms"),
        "{r}"
    );
    let r = post(Some(token.trim()), change);
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    assert!(
        r.contains(r#""policy":"fifo""#) && r.contains(r#""quantum_ms":250"#),
        "{r}"
    );
    let st: serde_json::Value =
        serde_json::from_str(&http_get(&http, "/status").unwrap().1).unwrap();
    assert_eq!(
        (st["policy"].as_str(), st["quantum_ms"].as_u64()),
        (Some("fifo"), Some(250))
    );

    let term = std::process::Command::new("kill")
        .args(["-TERM", &procs.0[0].id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    for p in &mut procs.0 {
        assert!(
            wait_with_timeout_status(p),
            "a process did not stop cleanly"
        );
    }
}

/// Wait up to a minute for `p` to exit; whether it exited successfully.
fn wait_with_timeout_status(p: &mut Child) -> bool {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = p.try_wait().unwrap() {
            return s.success();
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = p.kill();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
