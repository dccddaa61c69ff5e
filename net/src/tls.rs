//! Mutual TLS between an app's processes, and the choice of whether to use it ([`Security`]).
//!
//! Every cluster connection — executor → driver gRPC, executor → executor block fetches — is TLS
//! 1.3 where both sides present the app's member certificate and each refuses a peer whose
//! certificate does not chain to the app's CA (rustls' webpki verifiers; nothing hand-written).
//! Clients check the server's certificate against the fixed name [`SERVER_NAME`], whatever
//! address they dialled (see [`crate::issue`] for why). ALPN keeps the two protocols apart: the
//! gRPC server only speaks `h2`, the block server only [`ALPN_BLOCKS`], so a connection meant
//! for one can never be served by the other.

use crate::creds::Credentials;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The name every member certificate carries and every client checks.
pub const SERVER_NAME: &str = "member.neptune.internal";
/// ALPN of the driver's gRPC server (HTTP/2).
pub const ALPN_GRPC: &[u8] = b"h2";
/// ALPN of the executors' block servers.
pub const ALPN_BLOCKS: &[u8] = b"neptune-blocks/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Make ring the process's rustls provider (tonic's TLS configs use the process default). Safe
/// to call more than once.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn roots(creds: &Credentials) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for c in &creds.ca {
        roots
            .add(c.clone())
            .map_err(|e| format!("the CA certificate is not usable as a trust anchor: {e}"))?;
    }
    Ok(Arc::new(roots))
}

/// Check that the member certificate chains to the CA, is valid now, carries [`SERVER_NAME`],
/// may serve as both server and client, and belongs to the key.
pub(crate) fn check_member(creds: &Credentials) -> Result<(), String> {
    let roots = roots(creds)?;
    let (end, rest) = creds.chain.split_first().ok_or("no certificate")?;
    let now = UnixTime::now();
    let server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(SERVER_NAME).map_err(|e| e.to_string())?;
    server
        .verify_server_cert(end, rest, &name, &[], now)
        .map_err(|e| format!("as a server: {e}"))?;
    let client = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| e.to_string())?;
    client
        .verify_client_cert(end, rest, now)
        .map_err(|e| format!("as a client: {e}"))?;
    // Building a server config checks that the key matches the certificate.
    server_config(creds, ALPN_BLOCKS).map(|_| ())
}

fn server_config(creds: &Credentials, alpn: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(creds)?, provider())
        .build()
        .map_err(|e| e.to_string())?;
    let mut c = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(creds.chain.clone(), creds.key.clone_key())
        .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
    c.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(c))
}

fn client_config(creds: &Credentials, alpn: &[u8]) -> Result<Arc<ClientConfig>, String> {
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(creds)?)
        .with_client_auth_cert(creds.chain.clone(), creds.key.clone_key())
        .map_err(|e| e.to_string())?;
    c.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(c))
}

/// An app's credentials with every TLS configuration built from them (once, at start).
pub struct Tls {
    creds: Credentials,
    grpc_server: Arc<ServerConfig>,
    blocks_server: Arc<ServerConfig>,
    blocks_client: Arc<ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("creds", &self.creds).finish()
    }
}

impl Tls {
    /// Build the configurations.
    ///
    /// # Errors
    /// When the credentials cannot make a configuration (already checked at load, so rare).
    pub fn new(creds: Credentials) -> Result<Self, String> {
        install_provider();
        Ok(Self {
            grpc_server: server_config(&creds, ALPN_GRPC)?,
            blocks_server: server_config(&creds, ALPN_BLOCKS)?,
            blocks_client: client_config(&creds, ALPN_BLOCKS)?,
            creds,
        })
    }

    /// The credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// Server side of the driver's gRPC port.
    pub fn grpc_server(&self) -> Arc<ServerConfig> {
        self.grpc_server.clone()
    }

    /// Server side of a block server.
    pub fn blocks_server(&self) -> Arc<ServerConfig> {
        self.blocks_server.clone()
    }

    /// Client side of block fetches (shared, so TLS sessions are resumed across fetches).
    pub fn blocks_client(&self) -> Arc<ClientConfig> {
        self.blocks_client.clone()
    }

    /// Client side of the executor's gRPC channel to the driver; the handshake must finish
    /// within `handshake_timeout`.
    pub fn grpc_client(
        &self,
        handshake_timeout: std::time::Duration,
    ) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .timeout(handshake_timeout)
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.creds.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &self.creds.cert_pem,
                &self.creds.key_pem,
            ))
            .domain_name(SERVER_NAME)
    }
}

/// Whether cluster connections use mutual TLS or nothing.
#[derive(Clone, Debug)]
pub enum Security {
    /// Mutual TLS with the app's credentials.
    Mtls(Arc<Tls>),
    /// Plaintext, no peer authentication (`--insecure`, for debugging).
    Insecure,
}

/// Why a process will not start with the transport security it was given.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// Neither credentials nor `--insecure`.
    #[error(
        "no TLS credentials: pass --tls-dir DIR (or NEPTUNE_TLS_DIR) with {ca}, {cert} and {key} \
         (make them with `neptune certs --out DIR`), or --insecure to run without authentication \
         or encryption (debugging only){where_}",
        ca = crate::creds::CA_FILE, cert = crate::creds::CERT_FILE, key = crate::creds::KEY_FILE,
        where_ = non_loopback_note(.exposed)
    )]
    NoCredentials {
        /// The first non-loopback address among those the process would use, if any.
        exposed: Option<String>,
    },
    /// The credentials directory is unusable.
    #[error("--tls-dir {}: {source}", dir.display())]
    Credentials {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        source: crate::creds::CredsError,
    },
    /// The configurations could not be built.
    #[error("--tls-dir {}: {reason}", dir.display())]
    Config {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn non_loopback_note(exposed: &Option<String>) -> String {
    exposed
        .as_ref()
        .map(|a| format!("; {a} is reachable from other machines"))
        .unwrap_or_default()
}

impl Security {
    /// From the `--tls-dir` and `--insecure` flags. `addrs` are the addresses the process will
    /// listen on or connect to; they only make the error more telling. Without credentials the
    /// process refuses to start, on loopback too: other local users are not trusted either.
    ///
    /// # Errors
    /// [`SecurityError`] saying what to pass.
    pub fn from_flags(
        tls_dir: Option<&std::path::Path>,
        insecure: bool,
        addrs: &[SocketAddr],
    ) -> Result<Self, SecurityError> {
        match (tls_dir, insecure) {
            (Some(dir), _) => {
                let creds =
                    Credentials::load(dir).map_err(|source| SecurityError::Credentials {
                        dir: dir.to_path_buf(),
                        source,
                    })?;
                let tls = Tls::new(creds).map_err(|reason| SecurityError::Config {
                    dir: dir.to_path_buf(),
                    reason,
                })?;
                Ok(Self::Mtls(Arc::new(tls)))
            }
            (None, true) => {
                let exposed = addrs.iter().find(|a| !a.ip().is_loopback());
                tracing::warn!(
                    exposed = ?exposed,
                    "--insecure: cluster traffic is NOT authenticated or encrypted; any process \
                     that reaches these ports can join the app, read its config and data, and \
                     fetch its shuffle blocks. Use only for debugging."
                );
                Ok(Self::Insecure)
            }
            (None, false) => Err(SecurityError::NoCredentials {
                exposed: addrs
                    .iter()
                    .find(|a| !a.ip().is_loopback())
                    .map(ToString::to_string),
            }),
        }
    }

    /// Whether connections use mutual TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Mtls(_))
    }

    /// The URL scheme of the driver's gRPC endpoint under this security.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// `"mtls"` or `"insecure"` (for `/status` and logs).
    pub fn mode(&self) -> &'static str {
        if self.is_tls() { "mtls" } else { "insecure" }
    }

    /// The admin token, if any.
    pub fn admin_token(&self) -> Option<Arc<crate::AdminToken>> {
        match self {
            Self::Mtls(t) => t.credentials().token.clone().map(Arc::new),
            Self::Insecure => None,
        }
    }
}

#[cfg(test)]
mod tests;
