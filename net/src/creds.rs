//! An app's credentials directory, as every process of the app reads it: `ca.crt` (the app's CA
//! certificate), `tls.crt` and `tls.key` (the member certificate and its key, presented on every
//! cluster connection, server and client side alike), and optionally `token` (the admin bearer
//! token). The names are those of a Kubernetes `kubernetes.io/tls` Secret with a CA, so a Secret
//! mounted as a volume is a credentials directory as it is.
//!
//! Loading checks everything a connection would otherwise discover late and obscurely: the key
//! file is not readable by other users, the PEM parses, the key belongs to the certificate, and
//! the certificate chains to the CA, is valid now and may be used as both server and client.

use crate::token::AdminToken;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// The app CA's certificate.
pub const CA_FILE: &str = "ca.crt";
/// The member certificate (PEM; the chain up to, not including, the CA).
pub const CERT_FILE: &str = "tls.crt";
/// The member certificate's private key (PEM, PKCS#8).
pub const KEY_FILE: &str = "tls.key";
/// The admin bearer token (optional; without it admin endpoints are disabled).
pub const TOKEN_FILE: &str = "token";

/// What is wrong with a credentials directory.
#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file that would be overwritten exists.
    #[error("{} already exists (pass --force to replace the credentials)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file's content is not what it should be.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A secret file other users can read.
    #[error(
        "{} is readable by other users (mode {mode:03o}): run `chmod 600 {}` (on Kubernetes, mount \
         the Secret with defaultMode 0400 or 0440)",
        path.display(), path.display()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The member certificate is not usable with this CA.
    #[error("{} is not a valid member certificate of the CA in {}: {reason}", cert.display(), ca.display())]
    Untrusted {
        /// `tls.crt`.
        cert: PathBuf,
        /// `ca.crt`.
        ca: PathBuf,
        /// Why (wrong CA, expired, wrong name or usage, key mismatch).
        reason: String,
    },
    /// Generating new credentials failed.
    #[error("cannot generate credentials: {0}")]
    Generate(String),
}

/// An app's credentials, parsed and checked.
pub struct Credentials {
    /// Where they were read from (for messages), if from a directory.
    pub dir: Option<PathBuf>,
    pub(crate) ca: Vec<CertificateDer<'static>>,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    /// The admin token, if the directory has one.
    pub token: Option<AdminToken>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or the token.
        f.debug_struct("Credentials")
            .field("dir", &self.dir)
            .field("certificates", &self.chain.len())
            .field("token", &self.token.is_some())
            .finish()
    }
}

impl Credentials {
    /// Read and check the credentials in `dir`.
    ///
    /// # Errors
    /// [`CredsError`] naming the file at fault and what to do about it.
    pub fn load(dir: &Path) -> Result<Self, CredsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| CredsError::Read { path, source })
        };
        let key_path = dir.join(KEY_FILE);
        check_private(&key_path)?;
        let (ca_pem, cert_pem, key_pem) = (read(CA_FILE)?, read(CERT_FILE)?, read(KEY_FILE)?);
        let token_path = dir.join(TOKEN_FILE);
        let token = match std::fs::read_to_string(&token_path) {
            Ok(text) => {
                check_private(&token_path)?;
                Some(
                    AdminToken::parse(&text).map_err(|reason| CredsError::Invalid {
                        path: token_path,
                        reason,
                    })?,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(CredsError::Read {
                    path: token_path,
                    source,
                });
            }
        };
        Self::from_pem(ca_pem, cert_pem, key_pem, token, Some(dir))
    }

    /// Credentials from PEM text (as [`crate::issue`] makes them); `dir` names the files in
    /// error messages.
    ///
    /// # Errors
    /// [`CredsError`] when a PEM does not parse or the certificate does not fit the CA and key.
    pub fn from_pem(
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
        token: Option<AdminToken>,
        dir: Option<&Path>,
    ) -> Result<Self, CredsError> {
        let at = |name: &str| dir.map_or_else(|| PathBuf::from(name), |d| d.join(name));
        let certs = |pem: &str, name: &str| {
            let v = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CredsError::Invalid {
                    path: at(name),
                    reason: format!("not PEM certificates: {e}"),
                })?;
            if v.is_empty() {
                return Err(CredsError::Invalid {
                    path: at(name),
                    reason: "no certificate in the file".into(),
                });
            }
            Ok(v)
        };
        let ca = certs(&ca_pem, CA_FILE)?;
        let chain = certs(&cert_pem, CERT_FILE)?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| CredsError::Invalid {
                path: at(KEY_FILE),
                reason: format!("not a PEM private key: {e}"),
            })?;
        let creds = Self {
            dir: dir.map(Path::to_path_buf),
            ca,
            chain,
            key,
            ca_pem,
            cert_pem,
            key_pem,
            token,
        };
        crate::tls::check_member(&creds).map_err(|reason| CredsError::Untrusted {
            cert: at(CERT_FILE),
            ca: at(CA_FILE),
            reason,
        })?;
        Ok(creds)
    }
}

/// Refuse a secret file that other users may read (like ssh does with its keys).
fn check_private(path: &Path) -> Result<(), CredsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| CredsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(CredsError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
