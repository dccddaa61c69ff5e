//! Credentials and mutual TLS over real sockets: issued credentials load and authenticate each
//! other; a peer with another CA's certificate, without a certificate, or speaking the other
//! protocol is refused; bad directories are refused at start with the file named.

use super::*;
use crate::accept::Acceptor;
use crate::issue::issue;
use crate::metrics::{Closed, NetMetrics};
use crate::{Credentials, CredsError, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls(app: &str) -> Arc<Tls> {
    Arc::new(Tls::new(issue(app, &[], 1).unwrap().credentials().unwrap()).unwrap())
}

/// An echo server on loopback behind an [`Acceptor`] with `server`'s block-server config.
async fn echo_server(server: &Tls, limits: Limits) -> (SocketAddr, NetMetrics) {
    let metrics = NetMetrics::new(&[], true);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let acc = Acceptor::new(
        "blocks",
        l,
        Some(server.blocks_server()),
        limits,
        metrics.clone(),
    );
    let addr = acc.local_addr().unwrap();
    let _task = acc.spawn(|mut c| {
        tokio::spawn(async move {
            let mut b = [0u8; 5];
            if c.read_exact(&mut b).await.is_ok() {
                let _ = c.write_all(&b).await;
                let _ = c.flush().await;
            }
        });
    });
    std::mem::forget(_task);
    (addr, metrics)
}

async fn echo_through(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
) -> Result<[u8; 5], String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let mut s = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"hello").await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut b = [0u8; 5];
    // TLS 1.3: a refused client certificate surfaces on the first read.
    s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
    Ok(b)
}

#[tokio::test]
async fn members_of_one_app_talk_and_everyone_else_is_refused() {
    let app = tls("app");
    let (addr, metrics) = echo_server(&app, Limits::default()).await;
    assert_eq!(
        &echo_through(addr, app.blocks_client()).await.unwrap(),
        b"hello"
    );

    // A certificate of another app's CA, trusting this app's CA (which is no secret).
    let other = issue("other", &[], 1).unwrap();
    let mixed = Credentials::from_pem(
        app.credentials().ca_pem.clone(),
        other.cert_pem.clone(),
        other.key_pem.clone(),
        None,
        None,
    );
    assert!(
        matches!(mixed, Err(CredsError::Untrusted { .. })),
        "loading refuses it"
    );
    let rogue = client_config(&other.credentials().unwrap(), ALPN_BLOCKS)
        .map(|c| {
            let mut c = (*c).clone();
            c.dangerous()
                .set_certificate_verifier(Arc::new(TrustAnyway));
            Arc::new(c)
        })
        .unwrap();
    assert!(echo_through(addr, rogue).await.is_err());

    // No client certificate at all.
    let mut anon = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(app.credentials()).unwrap())
        .with_no_client_auth();
    anon.alpn_protocols = vec![ALPN_BLOCKS.to_vec()];
    assert!(echo_through(addr, Arc::new(anon)).await.is_err());

    // The right credentials but the gRPC protocol.
    let grpc = client_config(app.credentials(), ALPN_GRPC).unwrap();
    assert!(echo_through(addr, grpc).await.is_err());

    // A plaintext request gets nothing back but a closed connection.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(&[0u8; 24]).await.unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf).await;
    assert!(
        !buf.windows(5).any(|w| w == b"hello"),
        "no application data in plaintext"
    );
    let refused = metrics.closed_count("blocks", Closed::HandshakeFailed);
    assert!(refused >= 4, "{refused} failed handshakes counted");
}

/// The client side of a rogue: accepts the server's certificate (so only the server's check of
/// the client's certificate is tested).
#[derive(Debug)]
struct TrustAnyway;

impl rustls::client::danger::ServerCertVerifier for TrustAnyway {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
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
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test]
async fn a_client_refuses_a_server_of_another_app() {
    let app = tls("app");
    let other = tls("other");
    let (addr, _) = echo_server(&other, Limits::default()).await;
    let e = echo_through(addr, app.blocks_client()).await.unwrap_err();
    assert!(e.contains("certificate"), "{e}");
}

#[tokio::test]
async fn connections_that_never_handshake_are_closed_after_the_handshake_timeout() {
    let app = tls("app");
    let limits = Limits {
        handshake_timeout: std::time::Duration::from_millis(200),
        ..Limits::default()
    };
    let (addr, metrics) = echo_server(&app, limits).await;
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut b = [0u8; 1];
    // EOF (or a reset) once the server gives up; bounded by the test's own generous deadline.
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), idle.read(&mut b))
        .await
        .expect("the server closes an idle unauthenticated connection");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert_eq!(metrics.closed_count("blocks", Closed::HandshakeTimeout), 1);
}

#[test]
fn a_credentials_directory_round_trips_and_bad_ones_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("creds");
    let issued = issue("app", &["driver.example".into(), "10.0.0.1".into()], 30).unwrap();
    issued.write_dir(&d, false).unwrap();
    let loaded = Credentials::load(&d).unwrap();
    assert!(
        loaded
            .token
            .as_ref()
            .unwrap()
            .matches(issued.token.expose())
    );
    assert!(matches!(
        issued.write_dir(&d, false),
        Err(CredsError::Exists { .. })
    ));
    issued.write_dir(&d, true).unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = d.join(crate::creds::KEY_FILE);
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Credentials::load(&d).unwrap_err().to_string();
        assert!(e.contains("tls.key") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    // Another app's certificate next to this CA.
    let other = issue("other", &[], 30).unwrap();
    std::fs::write(d.join(crate::creds::CERT_FILE), &other.cert_pem).unwrap();
    let e = Credentials::load(&d).unwrap_err().to_string();
    assert!(e.contains("tls.crt") && e.contains("ca.crt"), "{e}");

    std::fs::write(d.join(crate::creds::CERT_FILE), "garbage").unwrap();
    let e = Credentials::load(&d).unwrap_err().to_string();
    assert!(e.contains("tls.crt"), "{e}");

    let e = Credentials::load(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn without_credentials_or_insecure_a_process_refuses_to_start() {
    let lo: SocketAddr = "127.0.0.1:7077".parse().unwrap();
    let any: SocketAddr = "0.0.0.0:7077".parse().unwrap();
    let e = Security::from_flags(None, false, &[lo])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--tls-dir") && e.contains("--insecure"), "{e}");
    let e = Security::from_flags(None, false, &[lo, any])
        .unwrap_err()
        .to_string();
    assert!(e.contains("0.0.0.0:7077"), "{e}");
    assert!(!Security::from_flags(None, true, &[any]).unwrap().is_tls());
}
