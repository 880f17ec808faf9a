//! The SASL exchanges Kafka carries in `SaslAuthenticate` (KIP-152), both sides, sans-io: each
//! function turns the peer's bytes into ours, nothing here touches a socket or a clock.
//!
//! * PLAIN (RFC 4616): one message, `authzid NUL user NUL password`.
//! * SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677, Kafka's KIP-84): client-first,
//!   server-first, client-final (with the proof), server-final (with the server's signature,
//!   which the client checks: the server must know the password's keys too).
//! * OAUTHBEARER (RFC 7628, KIP-255): one message carrying a bearer token; see
//!   [`oauth_client_message`] and [`parse_oauth_client_message`].
//!
//! Hand-written on `hmac`/`sha2`/`pbkdf2`/`base64`: the SASL crates on crates.io are either
//! GSASL bindings (C) or client-only; the broker side needs the server half with stored keys.

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use std::time::Duration;

/// A failed exchange: what the peer sent did not parse, or did not prove what it must.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SaslError(pub String);

fn err(s: impl Into<String>) -> SaslError {
    SaslError(s.into())
}

/// How a listener or a client talks: Kafka's `security.protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum SecurityProtocol {
    /// Plain TCP, no authentication.
    #[default]
    Plaintext,
    /// TLS, no SASL (a client certificate may identify the client).
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// TLS on the wire.
    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// SASL before any other request.
    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = String;

    /// Case-insensitive, as librdkafka and the Java client read it.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err(format!(
                "unknown security protocol {s:?} (expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
            )),
        }
    }
}

/// The SASL mechanisms kafkit speaks, by their SASL names.
pub const MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// A SCRAM mechanism, with Kafka's codes (KIP-554).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (1)
    Sha256,
    /// SCRAM-SHA-512 (2)
    Sha512,
}

impl ScramMechanism {
    /// From Kafka's code; `None` for UNKNOWN (0) or anything else.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// From the SASL mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// `HMAC(key, data)` with this mechanism's hash.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Self::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            Self::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }

    /// `(StoredKey, ServerKey)` of a salted password: what a server keeps.
    pub fn keys(self, salted: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let client_key = self.hmac(salted, b"Client Key");
        (self.hash(&client_key), self.hmac(salted, b"Server Key"))
    }
}

/// Kafka's lowest accepted iteration count (`ScramMechanism.minIterations`): a client refuses
/// a server-first message asking for fewer.
pub const SCRAM_MIN_ITERATIONS: u32 = 4096;
/// The highest (Kafka's `ScramFormatter` bound); also the client's refusal limit, so a
/// hostile server cannot make it spin.
pub const SCRAM_MAX_ITERATIONS: u32 = 16384;

/// Equal in time independent of where they differ (for keys and signatures).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 5802 `saslname`: `=` and `,` escaped.
fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn unescape_name(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=3D") => out.push('='),
            Some("=2C") => out.push(','),
            _ => return Err(err("invalid escape in SCRAM user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `key=value` attributes of a SCRAM message, in order.
fn attributes(msg: &str) -> Vec<(char, &str)> {
    msg.split(',')
        .filter_map(|a| {
            let mut c = a.chars();
            let k = c.next()?;
            // After the key and '=' (a key may be any character: slice past its UTF-8 length).
            (c.next() == Some('=')).then(|| (k, &a[k.len_utf8() + 1..]))
        })
        .collect()
}

fn attr<'a>(attrs: &[(char, &'a str)], key: char) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The client's side of a SCRAM exchange.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// Set once the server-first message was answered: the AuthMessage and the ServerKey.
    expected: Option<(String, Vec<u8>)>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl ScramClient {
    /// `nonce`: printable random characters without `,` (the caller brings the randomness).
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str, nonce: &str) -> Self {
        Self {
            mechanism,
            password: password.to_owned(),
            client_first_bare: format!("n={},r={nonce}", escape_name(user)),
            nonce: nonce.to_owned(),
            expected: None,
        }
    }

    /// The client-first message.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answers the server-first message with the client-final one (carrying the proof).
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| err("server-first message is not UTF-8"))?;
        let attrs = attributes(server_first);
        if let Some(e) = attr(&attrs, 'e') {
            return Err(err(format!("server error: {e}")));
        }
        let nonce = attr(&attrs, 'r').ok_or_else(|| err("server-first message without r="))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(err("server nonce does not extend the client's"));
        }
        let salt = B64
            .decode(attr(&attrs, 's').ok_or_else(|| err("server-first message without s="))?)
            .map_err(|_| err("server salt is not base64"))?;
        let iterations: u32 = attr(&attrs, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| err("server-first message without a valid i="))?;
        if !(SCRAM_MIN_ITERATIONS..=SCRAM_MAX_ITERATIONS).contains(&iterations) {
            return Err(err(format!(
                "server asks for {iterations} iterations (accepted: {SCRAM_MIN_ITERATIONS}-{SCRAM_MAX_ITERATIONS})"
            )));
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.expected = Some((auth_message, m.hmac(&salted, b"Server Key")));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server proved it holds the password's keys.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let (auth_message, server_key) = self
            .expected
            .as_ref()
            .ok_or_else(|| err("server-final message before server-first"))?;
        let text = std::str::from_utf8(server_final)
            .map_err(|_| err("server-final message is not UTF-8"))?;
        let attrs = attributes(text);
        if let Some(e) = attr(&attrs, 'e') {
            return Err(err(format!("server error: {e}")));
        }
        let v = B64
            .decode(attr(&attrs, 'v').ok_or_else(|| err("server-final message without v="))?)
            .map_err(|_| err("server signature is not base64"))?;
        let expected = self.mechanism.hmac(server_key, auth_message.as_bytes());
        if !same(&v, &expected) {
            return Err(err(
                "the server's signature is wrong (it does not know the password)",
            ));
        }
        Ok(())
    }
}

/// What a SCRAM server checks against: salt, iterations and the two keys (never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// The credential of a salted password.
    pub fn from_salted(
        mechanism: ScramMechanism,
        salt: &[u8],
        iterations: i32,
        salted: &[u8],
    ) -> Self {
        let (stored_key, server_key) = mechanism.keys(salted);
        Self {
            salt: salt.to_vec(),
            iterations,
            stored_key,
            server_key,
        }
    }

    /// Whether `password` gives this credential's StoredKey (PLAIN checked against SCRAM keys).
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &str) -> bool {
        let Ok(iterations) = u32::try_from(self.iterations) else {
            return false;
        };
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, iterations);
        same(&mechanism.keys(&salted).0, &self.stored_key)
    }
}

/// The client-first message's user name and nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramClientFirst {
    /// The user.
    pub user: String,
    /// `n=...,r=...` as sent (part of the AuthMessage).
    bare: String,
    nonce: String,
}

/// Parses a client-first message (`n,,n=user,r=nonce`; channel binding is refused).
pub fn parse_scram_client_first(msg: &[u8]) -> Result<ScramClientFirst, SaslError> {
    let msg = std::str::from_utf8(msg).map_err(|_| err("client-first message is not UTF-8"))?;
    let (gs2, bare) = if let Some(rest) = msg.strip_prefix("n,") {
        let end = rest
            .find(',')
            .ok_or_else(|| err("client-first message without a GS2 header"))?;
        (&rest[..end], &rest[end + 1..])
    } else if msg.starts_with("y,") || msg.starts_with("p=") {
        return Err(err("channel binding is not supported"));
    } else {
        return Err(err("client-first message without a GS2 header"));
    };
    let _authzid = gs2;
    let attrs = attributes(bare);
    if attr(&attrs, 'm').is_some() {
        return Err(err("mandatory SCRAM extensions are not supported"));
    }
    let user = unescape_name(attr(&attrs, 'n').ok_or_else(|| err("client-first without n="))?)?;
    let nonce = attr(&attrs, 'r').ok_or_else(|| err("client-first without r="))?;
    if nonce.is_empty() || nonce.contains(',') {
        return Err(err("invalid client nonce"));
    }
    Ok(ScramClientFirst {
        user,
        bare: bare.to_owned(),
        nonce: nonce.to_owned(),
    })
}

/// The server's side of a SCRAM exchange, after the client-first message.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    credential: ScramCredential,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Answers `first` with the server-first message; `server_nonce` is random printable
    /// characters without `,` (the caller brings the randomness).
    pub fn new(
        mechanism: ScramMechanism,
        first: &ScramClientFirst,
        credential: ScramCredential,
        server_nonce: &str,
    ) -> (Self, Vec<u8>) {
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let out = server_first.clone().into_bytes();
        (
            Self {
                mechanism,
                credential,
                client_first_bare: first.bare.clone(),
                server_first,
                nonce,
            },
            out,
        )
    }

    /// Checks the client-final message's proof; on success returns the server-final message.
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, SaslError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| err("client-final message is not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| err("client-final message without a proof"))?;
        let attrs = attributes(without_proof);
        if attr(&attrs, 'c') != Some("biws") {
            return Err(err("unexpected channel binding in client-final message"));
        }
        // Kafka's ScramSaslServer checks that the nonce *ends with* the server's (not that it
        // equals it), and librdkafka relies on that: it sends its own nonce again in front of
        // the server's (which already starts with it). The AuthMessage is built from what the
        // client sent, so both sides still sign the same bytes.
        if !attr(&attrs, 'r').is_some_and(|r| r.ends_with(self.nonce.as_str())) {
            return Err(err("nonce mismatch"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| err("client proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let m = self.mechanism;
        let signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(err("authentication failed"));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        if !same(&m.hash(&client_key), &self.credential.stored_key) {
            return Err(err("authentication failed"));
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// The PLAIN message (no authorization id).
pub fn plain_message(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// `(user, password)` of a PLAIN message. An authorization id other than empty or the user
/// is refused, as Kafka's `PlainSaslServer` does.
pub fn parse_plain_message(msg: &[u8]) -> Result<(String, String), SaslError> {
    let text = std::str::from_utf8(msg).map_err(|_| err("PLAIN message is not UTF-8"))?;
    let parts: Vec<&str> = text.split('\0').collect();
    let [authzid, user, password] = parts[..] else {
        return Err(err(
            "invalid PLAIN message: expected authzid NUL user NUL password",
        ));
    };
    if user.is_empty() || password.is_empty() {
        return Err(err("PLAIN: user name and password must not be empty"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(err("PLAIN: authorization id must be empty or the user"));
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// The OAUTHBEARER client's initial response (RFC 7628 §3.1): `n,,^Aauth=Bearer TOKEN^A`,
/// then each SASL extension as `key=value^A` (KIP-342), then `^A`.
pub fn oauth_client_message(token: &str, extensions: &[(String, String)]) -> Vec<u8> {
    let mut s = format!("n,,\x01auth=Bearer {token}\x01");
    for (k, v) in extensions {
        s.push_str(&format!("{k}={v}\x01"));
    }
    s.push('\x01');
    s.into_bytes()
}

/// The token and the extensions of an OAUTHBEARER initial response.
pub fn parse_oauth_client_message(
    msg: &[u8],
) -> Result<(String, Vec<(String, String)>), SaslError> {
    let text = std::str::from_utf8(msg).map_err(|_| err("OAUTHBEARER message is not UTF-8"))?;
    let rest = text
        .strip_prefix("n,")
        .and_then(|r| r.split_once(',').map(|(_, r)| r))
        .ok_or_else(|| err("OAUTHBEARER message without a GS2 header"))?;
    let body = rest
        .strip_prefix('\x01')
        .and_then(|r| r.strip_suffix("\x01\x01"))
        .ok_or_else(|| err("OAUTHBEARER message not framed by ^A"))?;
    let mut token = None;
    let mut extensions = Vec::new();
    for kv in body.split('\x01') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| err("OAUTHBEARER key without a value"))?;
        if k == "auth" {
            let t = v
                .strip_prefix("Bearer ")
                .ok_or_else(|| err("OAUTHBEARER auth is not a Bearer token"))?;
            token = Some(t.trim().to_owned());
        } else {
            extensions.push((k.to_owned(), v.to_owned()));
        }
    }
    let token = token.ok_or_else(|| err("OAUTHBEARER message without auth="))?;
    Ok((token, extensions))
}

/// Checks an unsecured JWS (RFC 7515 with `"alg":"none"`, an empty signature), as Kafka's
/// `OAuthBearerUnsecuredValidatorCallbackHandler`: a `sub` claim (the principal) and an `exp`
/// in the future are required. Returns the subject and the time left.
pub fn validate_unsecured_jws(
    token: &str,
    now: std::time::SystemTime,
) -> Result<(String, Duration), String> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS (header.payload.signature)".into());
    };
    if !sig.is_empty() {
        return Err("a signed token: only unsecured tokens (alg none) are accepted".into());
    }
    let json = |part: &str, what: &str| -> Result<serde_json::Value, String> {
        let raw = URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| format!("{what} is not base64url"))?;
        serde_json::from_slice(&raw).map_err(|_| format!("{what} is not JSON"))
    };
    let header = json(header, "header")?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("none") {
        return Err("header alg must be \"none\"".into());
    }
    let claims = json(payload, "payload")?;
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .ok_or("no sub claim")?;
    let exp = claims
        .get("exp")
        .and_then(|e| e.as_f64())
        .ok_or("no exp claim")?;
    let now_s = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if exp <= now_s {
        return Err("the token has expired".into());
    }
    Ok((
        sub.to_owned(),
        Duration::from_secs_f64((exp - now_s).min(1e9)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example exchange, both halves: the client produces its proof and accepts
    /// the server's signature; the server (holding only the keys) accepts the proof and
    /// produces that same signature.
    #[test]
    fn scram_sha_256_follows_rfc_7677() {
        let m = ScramMechanism::Sha256;
        let mut c = ScramClient::new(m, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = c.client_final(server_first).unwrap();
        assert_eq!(
            client_final,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_final = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        c.verify_server_final(server_final).unwrap();
        assert!(c.verify_server_final(b"v=AAAA").is_err());

        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let (stored_key, server_key) = m.keys(&salted);
        let cred = ScramCredential {
            salt,
            iterations: 4096,
            stored_key,
            server_key,
        };
        let first = parse_scram_client_first(&c.client_first()).unwrap();
        assert_eq!(first.user, "user");
        let (s, out) = ScramServer::new(m, &first, cred, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        assert_eq!(out, server_first);
        assert_eq!(s.finish(&client_final).unwrap(), server_final);
    }

    #[test]
    fn scram_refuses_a_wrong_password_and_a_forged_server() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let salt = b"0123456789abcdef".to_vec();
            let (stored_key, server_key) = m.keys(&m.salted_password(b"right", &salt, 4096));
            let cred = ScramCredential {
                salt,
                iterations: 4096,
                stored_key,
                server_key,
            };
            // Wrong password: the server refuses the proof.
            let mut c = ScramClient::new(m, "a=b,c", "wrong", "cnonce");
            let first = parse_scram_client_first(&c.client_first()).unwrap();
            assert_eq!(first.user, "a=b,c", "names are escaped and unescaped");
            let (s, sf) = ScramServer::new(m, &first, cred.clone(), "snonce");
            let cf = c.client_final(&sf).unwrap();
            assert!(s.finish(&cf).is_err());
            // Right password: both sides agree.
            let mut c = ScramClient::new(m, "u", "right", "cnonce");
            let first = parse_scram_client_first(&c.client_first()).unwrap();
            let (s, sf) = ScramServer::new(m, &first, cred.clone(), "snonce");
            let cf = c.client_final(&sf).unwrap();
            let fin = s.finish(&cf).unwrap();
            c.verify_server_final(&fin).unwrap();
            // A server that does not extend the nonce, or asks for too many iterations.
            let mut c = ScramClient::new(m, "u", "right", "cnonce");
            assert!(c.client_final(b"r=cnonce,s=AAAA,i=4096").is_err());
            assert!(c.client_final(b"r=other1,s=AAAA,i=4096").is_err());
            assert!(c.client_final(b"r=cnonceX,s=AAAA,i=100000000").is_err());
            assert!(c.client_final(b"r=cnonceX,s=AAAA,i=10").is_err());
        }
    }

    #[test]
    fn plain_and_oauthbearer_messages_round_trip_and_reject_garbage() {
        assert_eq!(
            parse_plain_message(&plain_message("alice", "s3cret")).unwrap(),
            ("alice".into(), "s3cret".into())
        );
        assert!(parse_plain_message(b"alice\0alice").is_err());
        assert!(parse_plain_message(b"bob\0alice\0pw").is_err());
        assert!(parse_plain_message(b"\0alice\0").is_err());
        let ext = vec![("traceId".to_owned(), "123".to_owned())];
        let msg = oauth_client_message("eyJ.e30.", &ext);
        assert_eq!(msg, b"n,,\x01auth=Bearer eyJ.e30.\x01traceId=123\x01\x01");
        assert_eq!(
            parse_oauth_client_message(&msg).unwrap(),
            ("eyJ.e30.".into(), ext)
        );
        assert!(parse_oauth_client_message(b"n,,\x01auth=Basic x\x01\x01").is_err());
        assert!(parse_oauth_client_message(b"garbage").is_err());
        assert!(parse_scram_client_first(b"y,,n=u,r=x").is_err());
        assert!(parse_scram_client_first(b"n,,n=u=ZZ,r=x").is_err());
        assert!(parse_scram_client_first(&[0xff, 0xfe]).is_err());
        // A multi-byte attribute key (found by fuzzing: the value was sliced at byte 2).
        assert!(parse_scram_client_first("n,,é=x,r=y".as_bytes()).is_err());
        let mut c = ScramClient::new(ScramMechanism::Sha256, "u", "p", "n");
        assert!(c.client_final("é=1,r=nX".as_bytes()).is_err());
    }

    fn jws(claims: &str) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn unsecured_tokens_need_a_subject_and_a_future_expiry() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (sub, left) =
            validate_unsecured_jws(&jws(r#"{"sub":"alice","exp":1000060}"#), now).unwrap();
        assert_eq!((sub.as_str(), left.as_secs()), ("alice", 60));
        for (token, why) in [
            (jws(r#"{"sub":"alice","exp":999999}"#), "expired"),
            (jws(r#"{"exp":1000060}"#), "sub"),
            (jws(r#"{"sub":"alice"}"#), "exp"),
            ("a.b".to_owned(), "compact"),
            (
                format!("{}sig", jws(r#"{"sub":"a","exp":1000060}"#)),
                "signed",
            ),
            (
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
                    URL_SAFE_NO_PAD.encode(r#"{"sub":"a","exp":1000060}"#)
                ),
                "alg",
            ),
        ] {
            let e = validate_unsecured_jws(&token, now).unwrap_err();
            assert!(e.contains(why), "{token}: {e}");
        }
    }
}
