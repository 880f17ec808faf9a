//! The listeners' security (issue 14): TLS (rustls) and SASL (PLAIN, SCRAM-SHA-256/512,
//! OAUTHBEARER with unsecured JWS tokens, as Kafka's `OAuthBearerUnsecuredValidatorCallbackHandler`).
//!
//! * [`Security`] is what a cluster is configured with: Kafka's `security.protocol` for every
//!   listener, a certificate (given as PEM files, or self-signed: a CA is made once and kept in
//!   `<data_dir>/tls/`, so clients trust `<data_dir>/tls/ca.pem` across restarts), optionally a
//!   CA whose client certificates are required (mTLS, Kafka's `ssl.client.auth=required`), and
//!   users with passwords.
//! * Passwords are never stored: each user gets SCRAM-SHA-256 and SCRAM-SHA-512 credentials
//!   (salt, iterations, StoredKey, ServerKey) in the cluster's SCRAM store, the one
//!   `AlterUserScramCredentials` writes; PLAIN checks a password against those keys.
//! * [`SaslSession`] is one connection's exchange, sans-io: bytes in, bytes out.
//!
//! Authorization is not enforced (ACLs are stored, see `acl`): an authenticated principal may do
//! anything, as with Kafka's default `allow.everyone.if.no.acl.found` without an authorizer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kafkit_protocol::sasl::{
    self, parse_oauth_client_message, parse_plain_message, parse_scram_client_first,
    validate_unsecured_jws, ScramMechanism, ScramServer, SecurityProtocol,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::scram::ScramStore;

/// Where a TLS listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Made at start, signed by a CA kept in `<data_dir>/tls/` (made once), valid for
    /// `localhost`, `127.0.0.1` and the cluster's host.
    SelfSigned,
    /// PEM files: the certificate chain and its private key.
    Files {
        /// Certificate chain (leaf first).
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// The security of the cluster's listeners (all brokers alike).
#[derive(Clone, Default)]
pub struct Security {
    /// `security.protocol` of every listener (default PLAINTEXT).
    pub protocol: SecurityProtocol,
    /// The listeners' certificate, for SSL and SASL_SSL (default: self-signed).
    pub tls: Option<TlsSource>,
    /// PEM file of CAs whose client certificates are required (`ssl.client.auth=required`);
    /// `None`: no client certificate is asked for.
    pub tls_client_ca: Option<PathBuf>,
    /// Users and their passwords, stored as SCRAM credentials at start (never kept).
    pub users: Vec<(String, String)>,
    /// Enabled mechanisms (`sasl.enabled.mechanisms`); empty means all four.
    pub mechanisms: Vec<String>,
    /// Kafka's `connections.max.reauth.ms`: a SASL session's lifetime, told to the client in
    /// SaslAuthenticate; a connection that goes on past it without re-authenticating is
    /// closed. `None` (Kafka's default 0): sessions do not expire.
    pub max_reauth: Option<Duration>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<String> = self
            .users
            .iter()
            .map(|(u, _)| format!("{u}:[redacted]"))
            .collect();
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .field("tls_client_ca", &self.tls_client_ca)
            .field("users", &users)
            .field("mechanisms", &self.mechanisms)
            .field("max_reauth", &self.max_reauth)
            .finish()
    }
}

impl Security {
    /// The enabled mechanisms.
    pub fn enabled_mechanisms(&self) -> Vec<String> {
        if self.mechanisms.is_empty() {
            sasl::MECHANISMS.iter().map(|m| m.to_string()).collect()
        } else {
            self.mechanisms.clone()
        }
    }

    /// Checks names and combinations; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        for m in &self.mechanisms {
            if !sasl::MECHANISMS.contains(&m.as_str()) {
                return Err(format!(
                    "sasl mechanisms: {m:?} is not one of {}",
                    sasl::MECHANISMS.join(", ")
                ));
            }
        }
        for (u, p) in &self.users {
            if u.is_empty() || p.is_empty() || u.contains(',') || u.contains('\0') {
                return Err(format!(
                    "sasl users: {u:?} needs a name without ',' and a non-empty password"
                ));
            }
        }
        if self.tls_client_ca.is_some() && !self.protocol.tls() {
            return Err(format!(
                "tls client CA: client certificates need SSL or SASL_SSL (security protocol is {})",
                self.protocol
            ));
        }
        Ok(())
    }
}

/// What a listener needs at run time.
#[derive(Clone)]
pub struct ListenerSecurity {
    /// The protocol.
    pub protocol: SecurityProtocol,
    /// The TLS acceptor (SSL, SASL_SSL).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Enabled SASL mechanisms.
    pub mechanisms: Arc<Vec<String>>,
    /// Session lifetime (see [`Security::max_reauth`]).
    pub max_reauth: Option<Duration>,
}

impl std::fmt::Debug for ListenerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSecurity")
            .field("protocol", &self.protocol)
            .field("mechanisms", &self.mechanisms)
            .finish()
    }
}

impl ListenerSecurity {
    /// Plain TCP, no authentication.
    pub fn plaintext() -> Self {
        Self {
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            mechanisms: Arc::new(Vec::new()),
            max_reauth: None,
        }
    }
}

fn io_err(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

/// Parameters of the self-signed CA with `key`. The subject names the key (CRC-32C of the
/// public key: stable across restarts and toolchains), so a CA remade from its saved key
/// issues certificates the saved `ca.pem` verifies, and two clusters' CAs differ by name (a
/// client trusting the wrong one is told "unknown issuer", not "bad signature").
fn ca_params(key: &rcgen::KeyPair) -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!(
            "kafkit embedded cluster CA {:08x}",
            crc32c::crc32c(key.public_key_raw())
        ),
    );
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 1, 1);
    Ok(p)
}

/// The self-signed CA in `dir` (made on first use): `(ca.pem path, certificate, key)`.
fn self_signed_ca(dir: &Path) -> std::io::Result<(PathBuf, rcgen::Certificate, rcgen::KeyPair)> {
    std::fs::create_dir_all(dir)?;
    let ca_pem = dir.join("ca.pem");
    let ca_key_pem = dir.join("ca-key.pem");
    let key = if ca_pem.exists() && ca_key_pem.exists() {
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(&ca_key_pem)?).map_err(io_err)?
    } else {
        rcgen::KeyPair::generate().map_err(io_err)?
    };
    let cert = ca_params(&key)
        .and_then(|p| p.self_signed(&key))
        .map_err(io_err)?;
    if !(ca_pem.exists() && ca_key_pem.exists()) {
        write_private(&ca_key_pem, &key.serialize_pem())?;
        std::fs::write(&ca_pem, cert.pem())?;
    }
    Ok((ca_pem, cert, key))
}

/// Writes a secret file readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

/// A certificate for `names` signed by the self-signed CA in `dir`, as PEM `(cert, key)`; the
/// CA's PEM path comes first. Used for the listeners, and by tests for client certificates.
pub fn issue_certificate(
    dir: &Path,
    names: &[String],
) -> std::io::Result<(PathBuf, String, String)> {
    let (ca_path, ca, ca_key) = self_signed_ca(dir)?;
    let key = rcgen::KeyPair::generate().map_err(io_err)?;
    let mut p = rcgen::CertificateParams::new(names.to_vec()).map_err(io_err)?;
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = p.signed_by(&key, &ca, &ca_key).map_err(io_err)?;
    Ok((ca_path, cert.pem(), key.serialize_pem()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the listeners' runtime security: TLS acceptor, SCRAM credentials for the users.
/// Returns it with the path of the CA clients should trust when it was self-signed.
pub fn setup(
    security: &Security,
    data_dir: &Path,
    host: &str,
    scram: &ScramStore,
) -> std::io::Result<(ListenerSecurity, Option<PathBuf>)> {
    security
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    for (user, password) in &security.users {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            scram
                .set_password(user, m, password, sasl::SCRAM_MIN_ITERATIONS as i32)
                .map_err(|(code, msg)| {
                    io_err(format!("storing the credential of {user}: {code} {msg:?}"))
                })?;
        }
    }
    let mut ca_out = None;
    let tls = if security.protocol.tls() {
        let (certs, key) = match security.tls.clone().unwrap_or(TlsSource::SelfSigned) {
            TlsSource::SelfSigned => {
                let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
                if !names.iter().any(|n| n == host) {
                    names.push(host.to_owned());
                }
                let (ca, cert, key) = issue_certificate(&data_dir.join("tls"), &names)?;
                ca_out = Some(ca);
                let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(io_err)?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(io_err)?;
                (certs, key)
            }
            TlsSource::Files { cert, key } => {
                let certs = CertificateDer::pem_file_iter(&cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| io_err(format!("tls cert {}: {e}", cert.display())))?;
                if certs.is_empty() {
                    return Err(io_err(format!(
                        "tls cert {}: no certificate in the file",
                        cert.display()
                    )));
                }
                let key = PrivateKeyDer::from_pem_file(&key)
                    .map_err(|e| io_err(format!("tls key {}: {e}", key.display())))?;
                (certs, key)
            }
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(io_err)?;
        let builder = match &security.tls_client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca)
                    .map_err(|e| io_err(format!("tls client CA {}: {e}", ca.display())))?
                {
                    roots
                        .add(c.map_err(io_err)?)
                        .map_err(|e| io_err(format!("tls client CA {}: {e}", ca.display())))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .map_err(io_err)?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(certs, key).map_err(io_err)?;
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    } else {
        None
    };
    Ok((
        ListenerSecurity {
            protocol: security.protocol,
            tls,
            mechanisms: Arc::new(security.enabled_mechanisms()),
            max_reauth: security.max_reauth,
        },
        ca_out,
    ))
}

/// One step of an exchange.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as `principal`; send these bytes (possibly empty).
    Done {
        /// `User:name`.
        principal: String,
        /// The last server message.
        response: Vec<u8>,
        /// When the credential itself expires (an OAUTHBEARER token), from now.
        expires_in: Option<Duration>,
    },
    /// Refused, with the message for SaslAuthenticate's `error_message`.
    Failed(String),
}

enum Stage {
    Plain,
    ScramFirst(ScramMechanism),
    ScramFinal { server: ScramServer, user: String },
    OAuth,
    Finished,
}

/// One connection's SASL exchange, after SaslHandshake chose the mechanism.
pub struct SaslSession {
    stage: Stage,
}

impl SaslSession {
    /// `None` when `mechanism` is not enabled.
    pub fn start(mechanism: &str, enabled: &[String]) -> Option<Self> {
        if !enabled.iter().any(|m| m == mechanism) {
            return None;
        }
        let stage = match mechanism {
            "PLAIN" => Stage::Plain,
            "OAUTHBEARER" => Stage::OAuth,
            m => Stage::ScramFirst(ScramMechanism::from_name(m)?),
        };
        Some(Self { stage })
    }

    /// A session that refuses every further message (what is left after a failure).
    pub fn finished() -> Self {
        Self {
            stage: Stage::Finished,
        }
    }

    /// True when the next step may run PBKDF2 (PLAIN): run it off the runtime's threads.
    pub fn is_costly(&self) -> bool {
        matches!(self.stage, Stage::Plain)
    }

    /// Takes the client's next message.
    pub fn step(&mut self, msg: &[u8], scram: &ScramStore) -> Step {
        match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::Plain => {
                let (user, password) = match parse_plain_message(msg) {
                    Ok(x) => x,
                    Err(e) => return Step::Failed(e.0),
                };
                if check_password(scram, &user, &password) {
                    Step::Done {
                        principal: format!("User:{user}"),
                        response: Vec::new(),
                        expires_in: None,
                    }
                } else {
                    Step::Failed("Authentication failed: Invalid username or password".into())
                }
            }
            Stage::ScramFirst(m) => {
                let first = match parse_scram_client_first(msg) {
                    Ok(f) => f,
                    Err(e) => return Step::Failed(e.0),
                };
                let Some(cred) = scram.get(&first.user, m) else {
                    return Step::Failed(format!(
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                        m.name()
                    ));
                };
                let nonce = uuid::Uuid::new_v4().simple().to_string();
                let (server, out) = ScramServer::new(m, &first, cred, &nonce);
                self.stage = Stage::ScramFinal {
                    server,
                    user: first.user,
                };
                Step::Continue(out)
            }
            Stage::ScramFinal { server, user } => match server.finish(msg) {
                Ok(out) => Step::Done {
                    principal: format!("User:{user}"),
                    response: out,
                    expires_in: None,
                },
                Err(e) => {
                    tracing::debug!(target: "kafkit::broker", user = %user, reason = %e, "SCRAM client-final refused");
                    Step::Failed(
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM"
                            .into(),
                    )
                }
            },
            Stage::OAuth => {
                let (token, _extensions) = match parse_oauth_client_message(msg) {
                    Ok(x) => x,
                    Err(e) => return Step::Failed(e.0),
                };
                match validate_unsecured_jws(&token, std::time::SystemTime::now()) {
                    Ok((sub, expires_in)) => Step::Done {
                        principal: format!("User:{sub}"),
                        response: Vec::new(),
                        expires_in: Some(expires_in),
                    },
                    Err(e) => Step::Failed(format!("invalid_token: {e}")),
                }
            }
            Stage::Finished => Step::Failed("authentication already finished".into()),
        }
    }
}

/// PLAIN against the stored SCRAM keys: the password is salted as the stored credential was
/// and must give the same StoredKey.
fn check_password(scram: &ScramStore, user: &str, password: &str) -> bool {
    [ScramMechanism::Sha512, ScramMechanism::Sha256]
        .into_iter()
        .find_map(|m| scram.get(user, m).map(|c| c.matches_password(m, password)))
        .unwrap_or(false)
}
