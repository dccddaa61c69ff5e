//! Making an app's credentials: a fresh CA for the app and one member certificate it signs, which
//! every process of the app (driver and executors) presents, plus an admin token.
//!
//! Identity: one app-wide member certificate, not one per process. Executor pods come and go
//! under new names and IPs; a per-process certificate would need a CA key kept alive to sign for
//! each newcomer (a signing service, or the CA key in the operator), while an app-wide one is
//! made once when the app starts and mounted into every pod from one Secret. Authorisation is
//! "holds a certificate of this app's CA": the CA is fresh per app (and per restart), signs
//! exactly one certificate, and its key is discarded once it has (nothing writes it to disk).
//! Peers are reached by IP (block servers) or Service DNS name (the driver), neither known when
//! the certificate is made, so clients check the fixed name [`crate::tls::SERVER_NAME`] instead;
//! `extra_names` add DNS names or IPs for other tools (e.g. `grpcurl` against the driver).

use crate::creds::{CA_FILE, CERT_FILE, Credentials, CredsError, KEY_FILE, TOKEN_FILE};
use crate::tls::SERVER_NAME;
use crate::token::AdminToken;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// Default certificate lifetime, days. Long on purpose: a streaming app may run for months, and
/// its credentials are rotated by restarting it (a new CA), not by expiry; an expired member
/// certificate would stop replacement executors from joining a running app.
pub const DEFAULT_DAYS: u32 = 3650;

/// Freshly made credentials, as PEM text.
pub struct Issued {
    /// The CA's certificate.
    pub ca_pem: String,
    /// The member certificate.
    pub cert_pem: String,
    /// The member key (PKCS#8).
    pub key_pem: String,
    /// The admin token.
    pub token: AdminToken,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issued { .. }")
    }
}

/// Make a CA for `app` and a member certificate valid for `days`, with `extra_names` (DNS names
/// or IP addresses) besides [`SERVER_NAME`].
///
/// # Errors
/// [`CredsError::Generate`] for a name that is neither a DNS name nor an IP, or a crypto failure.
pub fn issue(app: &str, extra_names: &[String], days: u32) -> Result<Issued, CredsError> {
    let g = |e: rcgen::Error| CredsError::Generate(e.to_string());
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks of other machines that run slightly behind.
    let not_before = now - time::Duration::hours(1);
    let not_after = now + time::Duration::days(i64::from(days.max(1)));

    let ca_key = KeyPair::generate().map_err(g)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name(&format!("neptune app CA {app}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key).map_err(g)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut names = vec![SERVER_NAME.to_string()];
    names.extend(extra_names.iter().cloned());
    let mut member = CertificateParams::new(names).map_err(g)?;
    member.distinguished_name = name(&format!("neptune app {app}"));
    member.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    member.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    member.not_before = not_before;
    member.not_after = not_after;
    member.use_authority_key_identifier_extension = true;
    let member_key = KeyPair::generate().map_err(g)?;
    let member_cert = member.signed_by(&member_key, &issuer).map_err(g)?;
    Ok(Issued {
        ca_pem: ca_cert.pem(),
        cert_pem: member_cert.pem(),
        key_pem: member_key.serialize_pem(),
        token: AdminToken::generate(),
    })
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "neptune");
    dn.push(DnType::CommonName, cn);
    dn
}

impl Issued {
    /// These credentials, checked, without touching the disk.
    ///
    /// # Errors
    /// Only if the issued certificate were inconsistent (a bug).
    pub fn credentials(&self) -> Result<Credentials, CredsError> {
        Credentials::from_pem(
            self.ca_pem.clone(),
            self.cert_pem.clone(),
            self.key_pem.clone(),
            Some(self.token.clone()),
            None,
        )
    }

    /// Write the credentials into `dir` (created with mode 0700 if missing): certificates 0644,
    /// key and token 0600. Refuses to replace existing files unless `force`.
    ///
    /// # Errors
    /// [`CredsError::Exists`] or [`CredsError::Write`] naming the file.
    pub fn write_dir(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>, CredsError> {
        let files: [(&str, &str, u32); 4] = [
            (CA_FILE, &self.ca_pem, 0o644),
            (CERT_FILE, &self.cert_pem, 0o644),
            (KEY_FILE, &self.key_pem, 0o600),
            (TOKEN_FILE, self.token.expose(), 0o600),
        ];
        if !force && let Some((name, _, _)) = files.iter().find(|(n, _, _)| dir.join(n).exists()) {
            return Err(CredsError::Exists {
                path: dir.join(name),
            });
        }
        create_private_dir(dir)?;
        let mut written = Vec::new();
        for (name, text, mode) in files {
            let path = dir.join(name);
            write_file(&path, text, mode).map_err(|source| CredsError::Write {
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
        Ok(written)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), CredsError> {
    let w = |source| CredsError::Write {
        path: dir.to_path_buf(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(w)
}

/// Write `text` to `path` with permission bits `mode`, replacing it: written to a temp file
/// created with those bits (so a key is never readable by others, not even briefly) and renamed.
fn write_file(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".neptune-creds-")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
