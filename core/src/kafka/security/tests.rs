//! The credential keys' validation, and the client's TLS against a real rustls listener on
//! loopback with certificates made here: the right CA is trusted, another CA's server
//! certificate is refused naming the reason, a client certificate is presented when configured.
//! (The listener speaks no Kafka: after the handshake it hangs up, which the client reports as a
//! broker error of another kind.)

use super::*;
use crate::kafka::{KafkaError, io};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::net::SocketAddr;

fn cfg(pairs: &[(&str, &str)]) -> Config {
    let mut c = Config::default();
    for (k, v) in pairs {
        c.set(k, v);
    }
    c
}

fn err(pairs: &[(&str, &str)]) -> String {
    Security::from_config(&cfg(pairs)).unwrap_err().to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn protocols_and_mechanisms_parse_as_kafka_names_them() {
    for (raw, p) in [
        ("plaintext", Protocol::Plaintext),
        ("SSL", Protocol::Ssl),
        ("SASL_PLAINTEXT", Protocol::SaslPlaintext),
        ("sasl_ssl", Protocol::SaslSsl),
    ] {
        assert_eq!(raw.parse::<Protocol>().unwrap(), p);
    }
    for (raw, m) in [
        ("PLAIN", Mechanism::Plain),
        ("scram-sha-256", Mechanism::ScramSha256),
        ("SCRAM-SHA-512", Mechanism::ScramSha512),
    ] {
        assert_eq!(raw.parse::<Mechanism>().unwrap(), m);
    }
    let e = err(&[("kafka.security.protocol", "tls")]);
    assert!(
        e.contains("kafka.security.protocol") && e.contains("sasl_ssl"),
        "{e}"
    );
    let e = err(&[
        ("kafka.security.protocol", "sasl_ssl"),
        ("kafka.sasl.mechanism", "GSSAPI"),
    ]);
    assert!(
        e.contains("kafka.sasl.mechanism") && e.contains("SCRAM-SHA-512"),
        "{e}"
    );
}

#[test]
fn without_keys_the_client_is_plaintext() {
    let s = Security::from_config(&cfg(&[])).unwrap();
    assert_eq!(s, Security::default());
    assert_eq!(s.protocol(), Protocol::Plaintext);
    let (tls, sasl) = s.client_parts().unwrap();
    assert!(tls.is_none() && sasl.is_none());
}

#[test]
fn sasl_settings_are_checked_against_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let pw = write(dir.path(), "pw", "s3cret\n");
    // SASL keys without a SASL protocol, TLS keys without TLS.
    let e = err(&[("kafka.sasl.username", "u")]);
    assert!(
        e.contains("kafka.sasl.username") && e.contains("plaintext"),
        "{e}"
    );
    let e = err(&[
        ("kafka.security.protocol", "sasl_plaintext"),
        ("kafka.sasl.mechanism", "PLAIN"),
        ("kafka.sasl.username", "u"),
        ("kafka.sasl.password_file", &pw),
        ("kafka.ssl.ca_file", &pw),
    ]);
    assert!(e.contains("kafka.ssl.ca_file") && e.contains("TLS"), "{e}");
    // What SASL needs.
    let base = [("kafka.security.protocol", "sasl_plaintext")];
    let e = err(&base);
    assert!(e.contains("kafka.sasl.mechanism"), "{e}");
    let e = err(&[base[0], ("kafka.sasl.mechanism", "PLAIN")]);
    assert!(e.contains("kafka.sasl.username"), "{e}");
    let e = err(&[
        base[0],
        ("kafka.sasl.mechanism", "PLAIN"),
        ("kafka.sasl.username", "u"),
    ]);
    assert!(e.contains("kafka.sasl.password_file") && e.contains("kafka.sasl.password_env"));
    let e = err(&[
        base[0],
        ("kafka.sasl.mechanism", "PLAIN"),
        ("kafka.sasl.username", "u"),
        ("kafka.sasl.password_file", &pw),
        ("kafka.sasl.password_env", "PW"),
    ]);
    assert!(e.contains("not both"), "{e}");
    // The password itself as a value is refused, and not echoed.
    let e = err(&[
        base[0],
        ("kafka.sasl.mechanism", "PLAIN"),
        ("kafka.sasl.username", "u"),
        ("kafka.sasl.password", "hunter2"),
    ]);
    assert!(
        e.contains("never a config value") && !e.contains("hunter2"),
        "{e}"
    );
    // A file that is not there, or empty.
    let missing = dir.path().join("nope").display().to_string();
    let e = err(&[
        base[0],
        ("kafka.sasl.mechanism", "PLAIN"),
        ("kafka.sasl.username", "u"),
        ("kafka.sasl.password_file", &missing),
    ]);
    assert!(
        e.contains("kafka.sasl.password_file") && e.contains(&missing),
        "{e}"
    );
    let empty = write(dir.path(), "empty", "\n");
    let e = err(&[
        base[0],
        ("kafka.sasl.mechanism", "PLAIN"),
        ("kafka.sasl.username", "u"),
        ("kafka.sasl.password_file", &empty),
    ]);
    assert!(e.contains("is empty"), "{e}");
    // A good one: the final line break is not part of the password.
    let s = Security::from_config(&cfg(&[
        base[0],
        ("kafka.sasl.mechanism", "scram-sha-256"),
        ("kafka.sasl.username", "alice"),
        ("kafka.sasl.password_file", &pw),
    ]))
    .unwrap();
    assert_eq!(s.protocol(), Protocol::SaslPlaintext);
    let sasl = s.sasl.as_ref().unwrap();
    assert_eq!(sasl.mechanism, Mechanism::ScramSha256);
    assert_eq!(sasl.password.read().unwrap(), "s3cret");
    assert!(
        !format!("{s:?}").contains("s3cret"),
        "Debug shows no secret"
    );
    match s.client_parts().unwrap().1.unwrap() {
        rskafka::client::SaslConfig::ScramSha256(c) => {
            assert_eq!(
                (c.username.as_str(), c.password.as_str()),
                ("alice", "s3cret")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_password_from_the_environment() {
    // A variable no other test sets, and that this process's environment will not have.
    let name = "NEPTUNE_TEST_KAFKA_PASSWORD_UNSET_7f3a";
    let keys = |var: &'static str| {
        cfg(&[
            ("kafka.security.protocol", "sasl_plaintext"),
            ("kafka.sasl.mechanism", "SCRAM-SHA-512"),
            ("kafka.sasl.username", "u"),
            ("kafka.sasl.password_env", var),
        ])
    };
    let e = Security::from_config(&keys(name)).unwrap_err().to_string();
    assert!(
        e.contains("kafka.sasl.password_env") && e.contains(name),
        "{e}"
    );
    // PATH is set in every test environment: it stands for a variable that is.
    let s = Security::from_config(&keys("PATH")).unwrap();
    assert_eq!(
        s.sasl.unwrap().password,
        SecretSource::Env("PATH".to_string())
    );
}

#[test]
fn tls_files_are_read_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = write(dir.path(), "ca.txt", "not a certificate\n");
    let e = err(&[
        ("kafka.security.protocol", "ssl"),
        ("kafka.ssl.ca_file", &not_pem),
    ]);
    assert!(
        e.contains("kafka.ssl.ca_file") && e.contains("no PEM certificate"),
        "{e}"
    );
    let ca = Ca::new("test CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let e = err(&[
        ("kafka.security.protocol", "ssl"),
        ("kafka.ssl.ca_file", &ca_file),
        ("kafka.ssl.certificate_file", &ca_file),
    ]);
    assert!(e.contains("kafka.ssl.key_file"), "{e}");
    let e = err(&[
        ("kafka.security.protocol", "ssl"),
        ("kafka.ssl.ca_file", &ca_file),
        ("kafka.ssl.certificate_file", &ca_file),
        ("kafka.ssl.key_file", &not_pem),
    ]);
    assert!(
        e.contains("kafka.ssl.key_file") && e.contains("no usable private key"),
        "{e}"
    );
    let s = Security::from_config(&cfg(&[
        ("kafka.security.protocol", "SSL"),
        ("kafka.ssl.ca_file", &ca_file),
    ]))
    .unwrap();
    assert_eq!(s.protocol(), Protocol::Ssl);
    assert!(s.client_parts().unwrap().0.is_some());
}

/// A CA made for the test, and certificates it signs.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A CA named `name` (two CAs of one name would tell apart only by their signatures).
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = p.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A certificate for `names` (DNS names or IPs) and `usage`, and its key, as PEM.
    fn sign(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn server_config(cert: &(String, String), client_ca: Option<&Ca>) -> Arc<rustls::ServerConfig> {
    let chain = CertificateDer::pem_slice_iter(cert.0.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_ca {
        None => b.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        }
    };
    Arc::new(b.with_single_cert(chain, key).unwrap())
}

/// A TLS listener on loopback (on the Kafka I/O runtime): it completes handshakes and hangs up.
/// The receiver gets each handshake's outcome on the server side.
fn listener(
    config: Arc<rustls::ServerConfig>,
) -> (SocketAddr, std::sync::mpsc::Receiver<Result<(), String>>) {
    let l = io::block_on(async { tokio::net::TcpListener::bind("127.0.0.1:0").await }).unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    io::runtime().spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        while let Ok((tcp, _)) = l.accept().await {
            let got = acceptor
                .accept(tcp)
                .await
                .map(drop)
                .map_err(|e| e.to_string());
            if tx.send(got).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

fn connect(addr: SocketAddr, security: Security) -> KafkaError {
    let conn = Connection {
        bootstrap: addr.to_string(),
        security,
    };
    match io::block_on(async move { io::client(&conn).await.map(drop) }) {
        Ok(()) => panic!("a listener that hangs up is no Kafka broker"),
        Err(e) => e,
    }
}

/// The server-side outcomes of the handshakes the client made with `security` to a fresh
/// listener (`config`), and the client's error.
fn attempt(
    config: &Arc<rustls::ServerConfig>,
    security: Security,
) -> (Vec<Result<(), String>>, String) {
    let (addr, rx) = listener(config.clone());
    let e = connect(addr, security).to_string();
    // The listener reports each handshake as it ends, before it hangs up: the client's error
    // comes after the report of its last attempt.
    (rx.try_iter().collect(), e)
}

#[test]
fn tls_trusts_the_configured_ca_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (Ca::new("brokers' CA"), Ca::new("another CA"));
    let server = server_config(
        &ca.sign(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth),
        None,
    );
    let tls = |ca: &Ca, name: &str| Security {
        tls: Some(Tls {
            ca_file: Some(write(dir.path(), name, &ca.pem).into()),
            client: None,
        }),
        sasl: None,
    };

    // The right CA: the handshake completes (then the listener, no broker, hangs up).
    let (seen, e) = attempt(&server, tls(&ca, "ca.pem"));
    assert!(
        seen.iter().any(Result::is_ok),
        "handshakes: {seen:?}; client: {e}"
    );
    assert!(!e.contains("certificate"), "{e}");

    // Another CA: every handshake fails, and the client says why.
    let (seen, e) = attempt(&server, tls(&other, "other.pem"));
    assert!(
        !seen.is_empty() && seen.iter().all(Result::is_err),
        "{seen:?}"
    );
    assert!(
        e.contains("invalid peer certificate") && e.contains("UnknownIssuer"),
        "{e}"
    );
    assert!(
        e.contains("kafka.ssl.ca_file"),
        "the error points at the key: {e}"
    );

    // The right CA, but a certificate for another host.
    let elsewhere = server_config(
        &ca.sign(&["kafka.example"], ExtendedKeyUsagePurpose::ServerAuth),
        None,
    );
    let (seen, e) = attempt(&elsewhere, tls(&ca, "ca.pem"));
    assert!(
        !seen.is_empty() && seen.iter().all(Result::is_err),
        "{seen:?}"
    );
    assert!(e.contains("invalid peer certificate"), "{e}");
}

#[test]
fn tls_presents_the_client_certificate_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let server = server_config(
        &ca.sign(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth),
        Some(&ca),
    );
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let (cert, key) = ca.sign(&["client.example"], ExtendedKeyUsagePurpose::ClientAuth);
    let with_cert = Security::from_config(&cfg(&[
        ("kafka.security.protocol", "ssl"),
        ("kafka.ssl.ca_file", &ca_file),
        (
            "kafka.ssl.certificate_file",
            &write(dir.path(), "c.pem", &cert),
        ),
        ("kafka.ssl.key_file", &write(dir.path(), "k.pem", &key)),
    ]))
    .unwrap();
    let (seen, e) = attempt(&server, with_cert);
    assert!(
        seen.iter().any(Result::is_ok),
        "handshakes: {seen:?}; client: {e}"
    );

    // Without one, the server refuses the client.
    let without = Security::from_config(&cfg(&[
        ("kafka.security.protocol", "ssl"),
        ("kafka.ssl.ca_file", &ca_file),
    ]))
    .unwrap();
    let (seen, e) = attempt(&server, without);
    assert!(
        !seen.is_empty() && seen.iter().all(Result::is_err),
        "{seen:?}; client: {e}"
    );
}
