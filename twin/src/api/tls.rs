//! The twin's credentials: a fresh CA (rcgen), a serving certificate for `127.0.0.1`,
//! `localhost` and the in-cluster `kubernetes.default.svc` names, a random bearer token, the
//! kubeconfig that `kubectl --kubeconfig`, `helm` and `KUBECONFIG` users read, and the
//! service-account files a kubelet mounts so a pod reaches the API the in-cluster way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why credentials could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation.
    #[error("generating certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the key or certificate.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// PEM parsing.
    #[error("reading PEM: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    /// Writing a file.
    #[error("writing {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// The CA, serving certificate and token of one twin.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// CA certificate (PEM); clients trust it.
    pub ca_pem: String,
    /// Serving certificate (PEM), signed by the CA.
    pub cert_pem: String,
    /// Serving key (PEM).
    pub key_pem: String,
    /// Bearer token every request must carry.
    pub token: String,
}

/// Names the serving certificate is valid for.
const SANS: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

impl Credentials {
    /// A new CA, serving certificate and 32-byte random token.
    ///
    /// # Errors
    /// [`TlsError::Rcgen`] if key generation fails.
    pub fn generate() -> Result<Self, TlsError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "neptune-twin-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let sans: Vec<String> = SANS.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "neptune-twin-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let token: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..32)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect()
        };
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            token,
        })
    }

    /// rustls server configuration offering HTTP/2 and HTTP/1.1 (kubectl prefers h2).
    ///
    /// # Errors
    /// [`TlsError`] if the PEM does not parse.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The kubeconfig for `server` (`https://127.0.0.1:PORT`), context `twin`, namespace
    /// `default`.
    pub fn kubeconfig(&self, server: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "# Written by the neptune cluster twin; valid while the twin runs.\n\
             apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: twin\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: twin-admin\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: twin\n  context:\n    cluster: twin\n    user: twin-admin\n    namespace: default\n\
             current-context: twin\n",
            token = self.token
        )
    }

    /// Writes `token`, `ca.crt` and `namespace` into `dir` as a pod's
    /// `/var/run/secrets/kubernetes.io/serviceaccount` holds them.
    ///
    /// # Errors
    /// [`TlsError::Write`] if a file cannot be written.
    pub fn write_service_account(&self, dir: &Path, namespace: &str) -> Result<(), TlsError> {
        let write = |name: &str, data: &str| {
            let path = dir.join(name);
            std::fs::write(&path, data).map_err(|source| TlsError::Write { path, source })
        };
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        write("token", &self.token)?;
        write("ca.crt", &self.ca_pem)?;
        write("namespace", namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_make_a_server_config_and_a_kubeconfig_with_the_token() {
        let c = Credentials::generate().unwrap();
        c.server_config().unwrap();
        let kc = c.kubeconfig("https://127.0.0.1:1");
        assert!(kc.contains(&c.token));
        assert!(kc.starts_with("# "));
        let dir = tempfile::tempdir().unwrap();
        c.write_service_account(dir.path(), "apps").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("namespace")).unwrap(),
            "apps"
        );
    }
}
