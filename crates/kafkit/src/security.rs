//! Security shared by [`crate::Writer`], [`crate::Reader`] and [`crate::Admin`]: TLS
//! (rustls, no OpenSSL) and SASL (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER), configured with
//! Kafka's `security.protocol` names.
//!
//! ```no_run
//! # async fn f() -> kafkit::Result<()> {
//! use kafkit::security::{Sasl, SecurityConfig, SecurityProtocol, TlsConfig};
//! let security = SecurityConfig {
//!     protocol: SecurityProtocol::SaslSsl,
//!     tls: TlsConfig { ca_file: Some("ca.pem".into()), ..Default::default() },
//!     sasl: Some(Sasl::scram_sha_512("alice", "alice-secret")),
//! };
//! let w = kafkit::Writer::new(kafkit::WriterConfig {
//!     brokers: vec!["broker:9093".into()],
//!     topic: "t".into(),
//!     security,
//!     ..Default::default()
//! })?;
//! # Ok(()) }
//! ```
//!
//! * TLS verifies the broker's certificate against the system's roots (or `ca_file`) and its
//!   name (SNI and hostname verification on by default), and can present a client certificate
//!   (mTLS).
//! * SASL runs on every new connection after `ApiVersions`: `SaslHandshake` v1, then
//!   `SaslAuthenticate` (KIP-152). When the broker gives the session a lifetime (KIP-368,
//!   `connections.max.reauth.ms`), the connection is retired before it ends and a fresh,
//!   freshly authenticated one takes its place (re-authentication by reconnecting; requests in
//!   flight finish on the old one).
//! * Secrets (passwords, tokens) print as `[redacted]` in `Debug` and never reach the logs.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
pub use kafkit_protocol::sasl::{ScramMechanism, SecurityProtocol};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::error::{Error, Result};

/// A secret string: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// TLS settings (librdkafka's `ssl.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificates (PEM) to verify brokers with (`ssl.ca.location`); `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mTLS (`ssl.certificate.location`).
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM) (`ssl.key.location`).
    pub key_file: Option<PathBuf>,
    /// Check that the certificate names the broker's host (`ssl.endpoint.identification.algorithm`
    /// `https`, the default; `false` is `none`: the chain is still verified).
    pub verify_hostname: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            cert_file: None,
            key_file: None,
            verify_hostname: true,
        }
    }
}

/// An OAUTHBEARER token, as a [`TokenProvider`] returns it.
#[derive(Debug, Clone, Default)]
pub struct OAuthToken {
    /// The bearer token (compact JWS / JWT).
    pub value: Secret,
    /// SASL extensions sent with it (KIP-342), e.g. Confluent Cloud's `logicalCluster`.
    pub extensions: Vec<(String, String)>,
}

/// What a [`TokenProvider`] returns.
pub type TokenFuture =
    Pin<Box<dyn Future<Output = std::result::Result<OAuthToken, String>> + Send>>;

/// Supplies OAUTHBEARER tokens (the client's identity provider). Asked on every new
/// connection; cache in the provider if fetching is costly.
pub trait TokenProvider: Send + Sync {
    /// A token valid now.
    fn token(&self) -> TokenFuture;
}

impl<F, Fut> TokenProvider for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = std::result::Result<OAuthToken, String>> + Send + 'static,
{
    fn token(&self) -> TokenFuture {
        Box::pin(self())
    }
}

/// An unsecured JWS (`"alg":"none"`, no signature) for `subject`, valid for `lifetime`: what
/// Kafka's `OAuthBearerUnsecuredLoginCallbackHandler` (and librdkafka's
/// `enable.sasl.oauthbearer.unsecure.jwt`) make, for brokers with the unsecured validator —
/// tests and development only.
pub fn unsecured_jws(subject: &str, lifetime: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let claims = serde_json::json!({
        "sub": subject,
        "iat": now.floor(),
        "exp": (now + lifetime.as_secs_f64()).floor(),
    });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A SASL mechanism with its credentials.
#[derive(Clone)]
pub enum Sasl {
    /// PLAIN (RFC 4616): the password travels to the broker (use it over TLS).
    Plain {
        /// `sasl.username`
        username: String,
        /// `sasl.password`
        password: Secret,
    },
    /// SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802/7677): the password never travels, and the
    /// broker proves it knows the credential too.
    Scram {
        /// Which hash.
        mechanism: ScramMechanism,
        /// `sasl.username`
        username: String,
        /// `sasl.password`
        password: Secret,
    },
    /// OAUTHBEARER (RFC 7628, KIP-255) with tokens from a provider.
    OAuthBearer {
        /// Where tokens come from.
        provider: Arc<dyn TokenProvider>,
    },
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sasl::Plain { username, password } => f
                .debug_struct("Plain")
                .field("username", username)
                .field("password", password)
                .finish(),
            Sasl::Scram {
                mechanism,
                username,
                password,
            } => f
                .debug_struct("Scram")
                .field("mechanism", mechanism)
                .field("username", username)
                .field("password", password)
                .finish(),
            Sasl::OAuthBearer { .. } => f.write_str("OAuthBearer { provider: .. }"),
        }
    }
}

impl Sasl {
    /// PLAIN.
    pub fn plain(username: impl Into<String>, password: impl Into<String>) -> Self {
        Sasl::Plain {
            username: username.into(),
            password: Secret(password.into()),
        }
    }

    /// SCRAM-SHA-256.
    pub fn scram_sha_256(username: impl Into<String>, password: impl Into<String>) -> Self {
        Sasl::Scram {
            mechanism: ScramMechanism::Sha256,
            username: username.into(),
            password: Secret(password.into()),
        }
    }

    /// SCRAM-SHA-512.
    pub fn scram_sha_512(username: impl Into<String>, password: impl Into<String>) -> Self {
        Sasl::Scram {
            mechanism: ScramMechanism::Sha512,
            username: username.into(),
            password: Secret(password.into()),
        }
    }

    /// OAUTHBEARER with a token provider.
    pub fn oauthbearer(provider: impl TokenProvider + 'static) -> Self {
        Sasl::OAuthBearer {
            provider: Arc::new(provider),
        }
    }

    /// The SASL mechanism name.
    pub fn mechanism(&self) -> &'static str {
        match self {
            Sasl::Plain { .. } => "PLAIN",
            Sasl::Scram { mechanism, .. } => mechanism.name(),
            Sasl::OAuthBearer { .. } => "OAUTHBEARER",
        }
    }
}

/// How to reach the brokers: protocol, TLS and SASL settings.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// `security.protocol` (default PLAINTEXT).
    pub protocol: SecurityProtocol,
    /// TLS settings (used with SSL and SASL_SSL).
    pub tls: TlsConfig,
    /// SASL mechanism and credentials (needed with SASL_PLAINTEXT and SASL_SSL).
    pub sasl: Option<Sasl>,
}

impl SecurityConfig {
    /// Checks the combination; the error names the field.
    pub fn validate(&self) -> Result<()> {
        match (self.protocol.sasl(), &self.sasl) {
            (true, None) => {
                return Err(Error::config(
                    "security.sasl",
                    format!(
                        "security.protocol {} needs a SASL mechanism and credentials",
                        self.protocol
                    ),
                ))
            }
            (false, Some(s)) => {
                return Err(Error::config(
                    "security.sasl",
                    format!(
                        "{} is set but security.protocol is {} (use SASL_PLAINTEXT or SASL_SSL)",
                        s.mechanism(),
                        self.protocol
                    ),
                ))
            }
            _ => {}
        }
        if let Some(
            Sasl::Plain { username, password }
            | Sasl::Scram {
                username, password, ..
            },
        ) = &self.sasl
        {
            if username.is_empty() {
                return Err(Error::config("security.sasl.username", "must not be empty"));
            }
            if password.0.is_empty() {
                return Err(Error::config("security.sasl.password", "must not be empty"));
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(Error::config(
                "security.tls.key_file",
                "a client certificate (ssl.certificate.location) and its key (ssl.key.location) go together",
            ));
        }
        Ok(())
    }
}

/// A [`SecurityConfig`] with its TLS client configuration built once (loading the system's
/// roots is not done per connection).
#[derive(Default)]
pub struct Security {
    /// The settings.
    pub config: SecurityConfig,
    tls: OnceLock<std::result::Result<tokio_rustls::TlsConnector, String>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

impl From<SecurityConfig> for Security {
    fn from(config: SecurityConfig) -> Self {
        Self {
            config,
            tls: OnceLock::new(),
        }
    }
}

impl Security {
    /// The TLS connector (built on first use).
    pub(crate) fn connector(&self) -> Result<tokio_rustls::TlsConnector> {
        self.tls
            .get_or_init(|| build_connector(&self.config.tls))
            .clone()
            .map_err(|reason| Error::config("security.tls", reason))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_connector(cfg: &TlsConfig) -> std::result::Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| format!("ssl.ca.location {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "ssl.ca.location {}: no certificate in the file",
                    path.display()
                ));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("ssl.ca.location {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c); // an unparsable system certificate is skipped, as rustls advises
            }
            if roots.is_empty() {
                return Err(
                    "no system CA certificates found; give ssl.ca.location (tls.ca_file)".into(),
                );
            }
        }
    }
    let roots = Arc::new(roots);
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if cfg.verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| e.to_string())?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
    };
    let config = match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| format!("ssl.certificate.location {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("ssl.key.location {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Verifies the chain and the signatures but not the name (`ssl.endpoint.identification.algorithm=none`).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The name the broker's certificate must carry: the host part of `addr` (`host:port`,
/// `[v6]:port`).
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| Error::Connect {
        addr: addr.to_owned(),
        reason: format!("not a valid TLS server name: {e}"),
    })
}
