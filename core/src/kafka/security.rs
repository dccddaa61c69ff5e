//! Credentials of the Kafka client: TLS (rustls with the workspace's `ring` provider) and SASL
//! (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), from the `kafka.security.protocol`, `kafka.ssl.*` and
//! `kafka.sasl.*` keys — Kafka's own names (`security.protocol=sasl_ssl`, …).
//!
//! A secret is never a config value (config values are logged, listed by `neptune config` and
//! stored in the CR): the SASL password comes from a file (`kafka.sasl.password_file`, e.g. a
//! mounted Kubernetes Secret) or an environment variable named by `kafka.sasl.password_env`; a
//! TLS client key comes from a file. [`Security`] holds only where they are; they are read when a
//! client connects ([`Security::client_parts`]) and once when the config is read, so a missing
//! file, an unset variable or a file without a certificate fails the app at start naming the key.
//!
//! Without `kafka.ssl.ca_file`, TLS trusts the system's CA certificates (as Kafka's clients
//! trust the JVM's); the runtime image carries Debian's bundle.

use neptune_config::{Choice, ChoiceError, Config, ConfigError, Meta, Text};
use rskafka::client::SaslConfig as SaslSetup;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the client talks to the brokers (Kafka's `security.protocol`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    strum::Display,
    strum::EnumString,
    strum::VariantNames,
)]
#[strum(
    serialize_all = "snake_case",
    ascii_case_insensitive,
    parse_err_ty = ChoiceError,
    parse_err_fn = protocol_err
)]
pub enum Protocol {
    /// Plain TCP, no authentication.
    #[default]
    Plaintext,
    /// TLS, no SASL (a client certificate when `kafka.ssl.certificate_file` is set).
    Ssl,
    /// SASL over plain TCP (the password crosses the network in the clear with PLAIN).
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

fn protocol_err(s: &str) -> ChoiceError {
    ChoiceError::of::<Protocol>(s)
}

impl Protocol {
    /// Whether the connection is TLS.
    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether the client authenticates with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// The SASL mechanism (Kafka's `sasl.mechanism`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::EnumString, strum::VariantNames,
)]
#[strum(ascii_case_insensitive, parse_err_ty = ChoiceError, parse_err_fn = mechanism_err)]
pub enum Mechanism {
    /// Username and password as they are (only over TLS unless the network is trusted).
    #[strum(serialize = "PLAIN")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[strum(serialize = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    #[strum(serialize = "SCRAM-SHA-512")]
    ScramSha512,
}

fn mechanism_err(s: &str) -> ChoiceError {
    ChoiceError::of::<Mechanism>(s)
}

/// `kafka.security.protocol`.
pub static PROTOCOL: Choice<Protocol> = Choice::new(
    Meta::new(
        "kafka.security.protocol",
        "How the Kafka client (source and sink) talks to the brokers, as Kafka's `security.protocol`: `plaintext`, `ssl` (TLS), `sasl_plaintext` or `sasl_ssl` (SASL over TLS).",
    ),
    Protocol::Plaintext,
);
/// `kafka.sasl.mechanism`.
pub static MECHANISM: Choice<Mechanism> = Choice::new(
    Meta::new(
        "kafka.sasl.mechanism",
        "SASL mechanism with `kafka.security.protocol=sasl_*`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (required there).",
    )
    .default_doc("none (required with SASL)"),
    Mechanism::Plain,
);
/// `kafka.sasl.username`.
pub static USERNAME: Text = Text::new(Meta::new(
    "kafka.sasl.username",
    "SASL username (with `kafka.security.protocol=sasl_*`).",
));
/// `kafka.sasl.password_file`.
pub static PASSWORD_FILE: Text = Text::new(Meta::new(
    "kafka.sasl.password_file",
    "File holding the SASL password (one line; a final line break is not part of it), e.g. a mounted Secret. The password itself is never a config value.",
));
/// `kafka.sasl.password_env`.
pub static PASSWORD_ENV: Text = Text::new(Meta::new(
    "kafka.sasl.password_env",
    "Name of the environment variable holding the SASL password (instead of `kafka.sasl.password_file`).",
));
/// `kafka.ssl.ca_file`.
pub static CA_FILE: Text = Text::new(Meta::new(
    "kafka.ssl.ca_file",
    "PEM file of the CA certificate(s) the brokers' certificates must chain to (with `kafka.security.protocol=ssl` or `sasl_ssl`; unset: the system's CA certificates).",
));
/// `kafka.ssl.certificate_file`.
pub static CERTIFICATE_FILE: Text = Text::new(Meta::new(
    "kafka.ssl.certificate_file",
    "PEM file of the client certificate chain for brokers that require TLS client authentication (with `kafka.ssl.key_file`).",
));
/// `kafka.ssl.key_file`.
pub static KEY_FILE: Text = Text::new(Meta::new(
    "kafka.ssl.key_file",
    "PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1, not encrypted).",
));

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretSource {
    /// A file (its content without a final line break).
    File(PathBuf),
    /// An environment variable (by name).
    Env(String),
}

impl SecretSource {
    /// The secret, read now.
    ///
    /// # Errors
    /// A message naming the key and the file or variable.
    pub fn read(&self) -> Result<String, String> {
        let s = match self {
            Self::File(p) => {
                let raw = std::fs::read_to_string(p).map_err(|e| {
                    format!(
                        "config key `{}`: cannot read `{}`: {e}",
                        PASSWORD_FILE.meta.key,
                        p.display()
                    )
                })?;
                let line = raw.strip_suffix('\n').unwrap_or(&raw);
                line.strip_suffix('\r').unwrap_or(line).to_string()
            }
            Self::Env(name) => std::env::var(name).map_err(|e| {
                format!(
                    "config key `{}`: environment variable `{name}`: {e}",
                    PASSWORD_ENV.meta.key
                )
            })?,
        };
        if s.is_empty() {
            return Err(match self {
                Self::File(p) => format!(
                    "config key `{}`: `{}` is empty",
                    PASSWORD_FILE.meta.key,
                    p.display()
                ),
                Self::Env(name) => format!(
                    "config key `{}`: environment variable `{name}` is empty",
                    PASSWORD_ENV.meta.key
                ),
            });
        }
        Ok(s)
    }
}

/// SASL settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sasl {
    /// Mechanism.
    pub mechanism: Mechanism,
    /// Username.
    pub username: String,
    /// Where the password is.
    pub password: SecretSource,
}

/// TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Tls {
    /// CA certificates (PEM); `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM), for TLS client authentication.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The client's credentials: where they are, never the secrets themselves (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Security {
    /// TLS, if the protocol uses it.
    pub tls: Option<Tls>,
    /// SASL, if the protocol uses it.
    pub sasl: Option<Sasl>,
}

/// Brokers and credentials: what a client is made from (and cached by).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    /// Comma-separated `host:port` list.
    pub bootstrap: String,
    /// Credentials.
    pub security: Security,
}

impl Connection {
    /// Plaintext brokers, no credentials.
    pub fn plaintext(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            security: Security::default(),
        }
    }

    /// The bootstrap brokers, one `host:port` each.
    pub fn brokers(&self) -> Vec<String> {
        self.bootstrap
            .split(',')
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .collect()
    }
}

/// What a client is built with: the TLS configuration and the SASL set-up, if any.
pub type ClientParts = (Option<Arc<rustls::ClientConfig>>, Option<SaslSetup>);

fn conflict(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn path_of(key: &Text, raw: Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    match raw {
        Some(v) if v.trim().is_empty() => Err(conflict(key.meta.key, &v, "an empty path")),
        Some(v) => Ok(Some(PathBuf::from(v))),
        None => Ok(None),
    }
}

impl Security {
    /// The credentials the keys of `cfg` describe, checked: the keys agree with the protocol,
    /// and the files and variables they name can be read now.
    ///
    /// # Errors
    /// A config error naming the key at fault.
    pub fn from_config(cfg: &Config) -> crate::error::Result<Self> {
        // Every key is read before any is found wrong, so `neptune config` lists them all.
        let protocol = PROTOCOL.get(cfg)?;
        let mechanism = MECHANISM.get_opt(cfg)?;
        let username = USERNAME.get_opt(cfg)?;
        let password_file = path_of(&PASSWORD_FILE, PASSWORD_FILE.get_opt(cfg)?)?;
        let password_env = PASSWORD_ENV.get_opt(cfg)?;
        let ca_file = path_of(&CA_FILE, CA_FILE.get_opt(cfg)?)?;
        let cert_file = path_of(&CERTIFICATE_FILE, CERTIFICATE_FILE.get_opt(cfg)?)?;
        let key_file = path_of(&KEY_FILE, KEY_FILE.get_opt(cfg)?)?;
        if let Some((k, _)) = cfg.pairs().find(|(k, _)| {
            matches!(
                k.as_str(),
                "kafka.sasl.password" | "kafka.ssl.key_password" | "kafka.password"
            )
        }) {
            return Err(ConfigError::Invalid {
                key: k.clone(),
                value: "…".into(),
                reason: format!(
                    "a secret is never a config value: name a file (`{}`) or an environment \
                     variable (`{}`) instead",
                    PASSWORD_FILE.meta.key, PASSWORD_ENV.meta.key
                ),
            }
            .into());
        }
        let p = protocol.to_string();
        let set_sasl = [
            (MECHANISM.meta.key, mechanism.is_some()),
            (USERNAME.meta.key, username.is_some()),
            (PASSWORD_FILE.meta.key, password_file.is_some()),
            (PASSWORD_ENV.meta.key, password_env.is_some()),
        ];
        let set_tls = [
            (CA_FILE.meta.key, ca_file.is_some()),
            (CERTIFICATE_FILE.meta.key, cert_file.is_some()),
            (KEY_FILE.meta.key, key_file.is_some()),
        ];
        if !protocol.sasl()
            && let Some((k, _)) = set_sasl.iter().find(|(_, set)| *set)
        {
            return Err(conflict(
                PROTOCOL.meta.key,
                &p,
                format!(
                    "`{k}` is set but `{p}` does not use SASL (`sasl_plaintext` or `sasl_ssl` do)"
                ),
            )
            .into());
        }
        if !protocol.tls()
            && let Some((k, _)) = set_tls.iter().find(|(_, set)| *set)
        {
            return Err(conflict(
                PROTOCOL.meta.key,
                &p,
                format!("`{k}` is set but `{p}` does not use TLS (`ssl` or `sasl_ssl` do)"),
            )
            .into());
        }
        let sasl = if protocol.sasl() {
            let Some(mechanism) = mechanism else {
                return Err(format!(
                    "`{}={p}`: set `{}` ({})",
                    PROTOCOL.meta.key,
                    MECHANISM.meta.key,
                    <Mechanism as strum::VariantNames>::VARIANTS.join(", ")
                )
                .into());
            };
            let username = match username {
                Some(u) if !u.trim().is_empty() => u,
                _ => {
                    return Err(format!(
                        "`{}={p}`: set `{}`",
                        PROTOCOL.meta.key, USERNAME.meta.key
                    )
                    .into());
                }
            };
            let password = match (password_file, password_env) {
                (Some(f), None) => SecretSource::File(f),
                (None, Some(e)) if !e.trim().is_empty() => SecretSource::Env(e.trim().to_string()),
                (None, Some(e)) => {
                    return Err(conflict(PASSWORD_ENV.meta.key, &e, "an empty name").into());
                }
                (None, None) => {
                    return Err(format!(
                        "`{}={p}`: set `{}` or `{}` (the password is never a config value)",
                        PROTOCOL.meta.key, PASSWORD_FILE.meta.key, PASSWORD_ENV.meta.key
                    )
                    .into());
                }
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "set one of `{}` and `{}`, not both",
                        PASSWORD_FILE.meta.key, PASSWORD_ENV.meta.key
                    )
                    .into());
                }
            };
            Some(Sasl {
                mechanism,
                username,
                password,
            })
        } else {
            None
        };
        let tls = if protocol.tls() {
            let client = match (cert_file, key_file) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                (c, _) => {
                    let (set, unset) = if c.is_some() {
                        (CERTIFICATE_FILE.meta.key, KEY_FILE.meta.key)
                    } else {
                        (KEY_FILE.meta.key, CERTIFICATE_FILE.meta.key)
                    };
                    return Err(format!("`{set}` is set: set `{unset}` too").into());
                }
            };
            Some(Tls { ca_file, client })
        } else {
            None
        };
        let security = Self { tls, sasl };
        security.client_parts().map_err(crate::error::Error::user)?;
        Ok(security)
    }

    /// The protocol these settings amount to.
    pub fn protocol(&self) -> Protocol {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => Protocol::Plaintext,
            (true, false) => Protocol::Ssl,
            (false, true) => Protocol::SaslPlaintext,
            (true, true) => Protocol::SaslSsl,
        }
    }

    /// The TLS configuration and SASL set-up of a client, with the files and variables read now.
    ///
    /// # Errors
    /// A message naming the key whose file or variable cannot be read or holds no usable
    /// certificate or key.
    pub fn client_parts(&self) -> Result<ClientParts, String> {
        let tls = self.tls.as_ref().map(tls_config).transpose()?;
        let sasl = self
            .sasl
            .as_ref()
            .map(|s| -> Result<SaslSetup, String> {
                let creds =
                    rskafka::client::Credentials::new(s.username.clone(), s.password.read()?);
                Ok(match s.mechanism {
                    Mechanism::Plain => SaslSetup::Plain(creds),
                    Mechanism::ScramSha256 => SaslSetup::ScramSha256(creds),
                    Mechanism::ScramSha512 => SaslSetup::ScramSha512(creds),
                })
            })
            .transpose()?;
        Ok((tls, sasl))
    }
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let at = |e: &dyn std::fmt::Display| {
        format!("config key `{key}`: cannot read `{}`: {e}", path.display())
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| at(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(&e))?;
    if certs.is_empty() {
        return Err(format!(
            "config key `{key}`: `{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A rustls client configuration (TLS 1.2 and 1.3, `ring`) trusting `t`'s CA file or the
/// system's CA certificates, with `t`'s client certificate if any.
fn tls_config(t: &Tls) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &t.ca_file {
        Some(path) => {
            for c in read_certs(CA_FILE.meta.key, path)? {
                roots.add(c).map_err(|e| {
                    format!(
                        "config key `{}`: a certificate of `{}` is not usable as a trust anchor: {e}",
                        CA_FILE.meta.key,
                        path.display()
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(format!(
                    "TLS to the Kafka brokers: no system CA certificates found ({}); set `{}`",
                    found
                        .errors
                        .first()
                        .map_or_else(|| "none installed".to_string(), ToString::to_string),
                    CA_FILE.meta.key
                ));
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS to the Kafka brokers: {e}"))?
    .with_root_certificates(roots);
    let config = match &t.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs(CERTIFICATE_FILE.meta.key, cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "config key `{}`: no usable private key in `{}`: {e}",
                    KEY_FILE.meta.key,
                    key.display()
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "config keys `{}` and `{}`: {e}",
                    CERTIFICATE_FILE.meta.key, KEY_FILE.meta.key
                )
            })?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
