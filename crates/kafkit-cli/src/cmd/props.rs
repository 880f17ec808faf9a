//! Client properties with librdkafka's and the Java client's names, as kcat takes them:
//! `-X key=value` (repeatable) and `-F FILE` (a properties file: `key=value` lines, `#` and
//! `!` comments, as a Java `client.properties` or a kcat config has). `-F` is read first, then
//! each `-X` in order; a later value wins. Unknown properties are an error naming them;
//! properties of the other side (`acks` for a consumer) are accepted and not used, as
//! librdkafka does.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use kafkit::security::{unsecured_jws, OAuthToken, Sasl, SecurityConfig, TlsConfig};
use kafkit::{ReaderConfig, SecurityProtocol, WriterConfig};

/// Every property understood, with what it sets.
const KNOWN: &[(&str, &str)] = &[
    ("bootstrap.servers", "brokers, when -b is not given"),
    ("metadata.broker.list", "librdkafka's bootstrap.servers"),
    ("client.id", "client id"),
    (
        "security.protocol",
        "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
    ),
    (
        "sasl.mechanism",
        "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER",
    ),
    ("sasl.mechanisms", "librdkafka's sasl.mechanism"),
    ("sasl.username", "SASL user (PLAIN, SCRAM)"),
    ("sasl.password", "SASL password (PLAIN, SCRAM)"),
    (
        "sasl.jaas.config",
        "the Java client's: username=\"...\" password=\"...\" are read from it",
    ),
    (
        "enable.sasl.oauthbearer.unsecure.jwt",
        "true: make unsecured tokens (development only)",
    ),
    (
        "sasl.oauthbearer.config",
        "principal=NAME [lifeSeconds=N] for unsecured tokens",
    ),
    (
        "ssl.ca.location",
        "CA certificates (PEM) to verify brokers with",
    ),
    ("ssl.certificate.location", "client certificate (PEM)"),
    ("ssl.key.location", "client certificate's key (PEM)"),
    (
        "ssl.endpoint.identification.algorithm",
        "https (default) or none",
    ),
    ("acks", "producer: 0, 1, -1/all"),
    ("request.required.acks", "librdkafka's acks"),
    ("linger.ms", "producer: batch_timeout"),
    ("queue.buffering.max.ms", "librdkafka's linger.ms"),
    ("batch.num.messages", "producer: batch_size"),
    ("batch.size", "producer: batch_bytes"),
    (
        "compression.type",
        "producer: none, gzip, snappy, lz4, zstd",
    ),
    ("compression.codec", "librdkafka's compression.type"),
    ("enable.idempotence", "producer: true/false"),
    ("retries", "producer: attempts after the first"),
    ("retry.backoff.ms", "producer: retry_backoff"),
    ("request.timeout.ms", "producer: write_timeout"),
    (
        "max.in.flight.requests.per.connection",
        "producer: max_in_flight",
    ),
    (
        "max.in.flight",
        "librdkafka's max.in.flight.requests.per.connection",
    ),
    ("fetch.min.bytes", "consumer: min_bytes"),
    ("fetch.wait.max.ms", "consumer: max_wait"),
    ("fetch.max.wait.ms", "the Java client's fetch.wait.max.ms"),
    ("fetch.max.bytes", "consumer: max_bytes"),
    ("max.partition.fetch.bytes", "consumer: max_partition_bytes"),
    ("session.timeout.ms", "consumer: session_timeout"),
    ("heartbeat.interval.ms", "consumer: heartbeat_interval"),
    ("max.poll.interval.ms", "consumer: rebalance_timeout"),
    ("group.instance.id", "consumer: static membership"),
    (
        "isolation.level",
        "consumer: read_uncommitted, read_committed",
    ),
    ("socket.connection.setup.timeout.ms", "dial_timeout"),
];

/// Parsed properties.
#[derive(Debug, Default, Clone)]
pub struct Props(BTreeMap<String, String>);

impl Props {
    /// Reads `-F file` (if any), then the `-X` pairs.
    pub fn load(file: Option<&Path>, pairs: &[String]) -> anyhow::Result<Self> {
        let mut map = BTreeMap::new();
        if let Some(f) = file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("-F {}: cannot read", f.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                let (k, v) = split(line).with_context(|| {
                    format!("-F {} line {}: expected key=value", f.display(), n + 1)
                })?;
                map.insert(k, v);
            }
        }
        for p in pairs {
            let (k, v) = split(p).with_context(|| format!("-X {p:?}: expected key=value"))?;
            map.insert(k, v);
        }
        for k in map.keys() {
            if !KNOWN.iter().any(|(name, _)| name == k) {
                bail!(
                    "unknown property {k:?} (known: {})",
                    KNOWN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok(Self(map))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn first(&self, keys: &[&str]) -> Option<(&'static str, &str)> {
        keys.iter().find_map(|k| {
            let name = KNOWN.iter().find(|(n, _)| n == k).map(|(n, _)| *n)?;
            self.get(k).map(|v| (name, v))
        })
    }

    fn num<T: std::str::FromStr>(&self, keys: &[&str]) -> anyhow::Result<Option<T>> {
        match self.first(keys) {
            None => Ok(None),
            Some((k, v)) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| anyhow!("property {k}: {v:?} is not a number")),
        }
    }

    fn ms(&self, keys: &[&str]) -> anyhow::Result<Option<Duration>> {
        Ok(self.num::<u64>(keys)?.map(Duration::from_millis))
    }

    fn flag(&self, keys: &[&str]) -> anyhow::Result<Option<bool>> {
        match self.first(keys) {
            None => Ok(None),
            Some((k, v)) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => bail!("property {k}: {v:?} is not true or false"),
            },
        }
    }

    /// `bootstrap.servers` when `-b` gave none.
    pub fn brokers(&self, given: &[String]) -> Vec<String> {
        if !given.is_empty() {
            return given.to_vec();
        }
        self.first(&["bootstrap.servers", "metadata.broker.list"])
            .map(|(_, v)| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// TLS and SASL settings.
    pub fn security(&self) -> anyhow::Result<SecurityConfig> {
        let protocol: SecurityProtocol = match self.get("security.protocol") {
            None => SecurityProtocol::Plaintext,
            Some(p) => p
                .parse()
                .map_err(|e: String| anyhow!("property security.protocol: {e}"))?,
        };
        let mut tls = TlsConfig {
            ca_file: self.get("ssl.ca.location").map(Into::into),
            cert_file: self.get("ssl.certificate.location").map(Into::into),
            key_file: self.get("ssl.key.location").map(Into::into),
            ..Default::default()
        };
        match self.get("ssl.endpoint.identification.algorithm") {
            None | Some("https") => {}
            Some("none") | Some("") => tls.verify_hostname = false,
            Some(v) => bail!(
                "property ssl.endpoint.identification.algorithm: {v:?} (expected https or none)"
            ),
        }
        let (jaas_user, jaas_password) = self
            .get("sasl.jaas.config")
            .map(|j| (jaas_value(j, "username"), jaas_value(j, "password")))
            .unwrap_or_default();
        let username = self.get("sasl.username").map(str::to_owned).or(jaas_user);
        let password = self
            .get("sasl.password")
            .map(str::to_owned)
            .or(jaas_password);
        let mechanism = self
            .first(&["sasl.mechanism", "sasl.mechanisms"])
            .map(|(_, m)| m.to_ascii_uppercase());
        let sasl = if protocol.sasl() {
            let mechanism = mechanism.unwrap_or_else(|| "PLAIN".into()); // Kafka's default
            let creds = || -> anyhow::Result<(String, String)> {
                Ok((
                    username
                        .clone()
                        .context(format!("SASL {mechanism} needs sasl.username"))?,
                    password
                        .clone()
                        .context(format!("SASL {mechanism} needs sasl.password"))?,
                ))
            };
            Some(match mechanism.as_str() {
                "PLAIN" => {
                    let (u, p) = creds()?;
                    Sasl::plain(u, p)
                }
                "SCRAM-SHA-256" => {
                    let (u, p) = creds()?;
                    Sasl::scram_sha_256(u, p)
                }
                "SCRAM-SHA-512" => {
                    let (u, p) = creds()?;
                    Sasl::scram_sha_512(u, p)
                }
                "OAUTHBEARER" => {
                    if self.flag(&["enable.sasl.oauthbearer.unsecure.jwt"])? != Some(true) {
                        bail!("SASL OAUTHBEARER from the command line needs enable.sasl.oauthbearer.unsecure.jwt=true and sasl.oauthbearer.config=principal=NAME (unsecured tokens; applications plug their identity provider into kafkit::security::Sasl::oauthbearer)");
                    }
                    let config = self.get("sasl.oauthbearer.config").unwrap_or("");
                    let principal = oauth_value(config, "principal")
                        .context("property sasl.oauthbearer.config: needs principal=NAME")?;
                    let life = oauth_value(config, "lifeSeconds")
                        .map(|s| s.parse::<u64>())
                        .transpose()
                        .map_err(|_| anyhow!("property sasl.oauthbearer.config: lifeSeconds is not a number"))?
                        .unwrap_or(3600);
                    Sasl::oauthbearer(move || {
                        let token = unsecured_jws(&principal, Duration::from_secs(life));
                        async move {
                            Ok(OAuthToken {
                                value: token.into(),
                                extensions: vec![],
                            })
                        }
                    })
                }
                m => bail!("property sasl.mechanism: {m:?} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER"),
            })
        } else {
            None
        };
        let sec = SecurityConfig {
            protocol,
            tls,
            sasl,
        };
        sec.validate()?;
        Ok(sec)
    }

    /// Applies the producer properties (security: [`Props::security`], computed once).
    pub fn apply_writer(&self, w: &mut WriterConfig) -> anyhow::Result<()> {
        if let Some((_, v)) = self.first(&["acks", "request.required.acks"]) {
            w.required_acks = super::parse_acks(v).map_err(|e| anyhow!("property acks: {e}"))?;
        }
        if let Some(d) = self.ms(&["linger.ms", "queue.buffering.max.ms"])? {
            w.batch_timeout = d;
        }
        if let Some(n) = self.num(&["batch.num.messages"])? {
            w.batch_size = n;
        }
        if let Some(n) = self.num(&["batch.size"])? {
            w.batch_bytes = n;
        }
        if let Some((_, v)) = self.first(&["compression.type", "compression.codec"]) {
            w.compression = super::parse_compression(v)
                .map_err(|e| anyhow!("property compression.type: {e}"))?;
        }
        if let Some(b) = self.flag(&["enable.idempotence"])? {
            w.idempotent = b;
        }
        if let Some(n) = self.num::<u32>(&["retries"])? {
            w.max_attempts = n.saturating_add(1);
        }
        if let Some(d) = self.ms(&["retry.backoff.ms"])? {
            w.retry_backoff = d;
        }
        if let Some(d) = self.ms(&["request.timeout.ms"])? {
            w.write_timeout = d;
        }
        if let Some(n) = self.num(&["max.in.flight.requests.per.connection", "max.in.flight"])? {
            w.max_in_flight = n;
        }
        if let Some(d) = self.ms(&["socket.connection.setup.timeout.ms"])? {
            w.dial_timeout = d;
        }
        if let Some(id) = self.get("client.id") {
            w.client_id = id.to_owned();
        }
        Ok(())
    }

    /// Applies the consumer properties (security: [`Props::security`], computed once).
    pub fn apply_reader(&self, r: &mut ReaderConfig) -> anyhow::Result<()> {
        if let Some(n) = self.num(&["fetch.min.bytes"])? {
            r.min_bytes = n;
        }
        if let Some(d) = self.ms(&["fetch.wait.max.ms", "fetch.max.wait.ms"])? {
            r.max_wait = d;
        }
        if let Some(n) = self.num(&["fetch.max.bytes"])? {
            r.max_bytes = n;
        }
        if let Some(n) = self.num(&["max.partition.fetch.bytes"])? {
            r.max_partition_bytes = n;
        }
        if let Some(d) = self.ms(&["session.timeout.ms"])? {
            r.session_timeout = d;
        }
        if let Some(d) = self.ms(&["heartbeat.interval.ms"])? {
            r.heartbeat_interval = d;
        }
        if let Some(d) = self.ms(&["max.poll.interval.ms"])? {
            r.rebalance_timeout = d;
        }
        if let Some(id) = self.get("group.instance.id") {
            r.group_instance_id = Some(id.to_owned());
        }
        if let Some(v) = self.get("isolation.level") {
            r.isolation_level = match v {
                "read_uncommitted" => kafkit::IsolationLevel::ReadUncommitted,
                "read_committed" => kafkit::IsolationLevel::ReadCommitted,
                _ => bail!(
                    "property isolation.level: {v:?} (expected read_uncommitted or read_committed)"
                ),
            };
        }
        if let Some(d) = self.ms(&["socket.connection.setup.timeout.ms"])? {
            r.dial_timeout = d;
        }
        if let Some(id) = self.get("client.id") {
            r.client_id = id.to_owned();
        }
        Ok(())
    }

    /// The security properties in librdkafka's names, for the `perf` rows that run librdkafka
    /// against the same cluster (a Java file's `sasl.jaas.config` credentials included).
    #[cfg_attr(not(feature = "rdkafka"), allow(dead_code))]
    pub fn librdkafka_security(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(k, _)| {
                (k.starts_with("security.")
                    || k.starts_with("sasl.")
                    || k.starts_with("ssl.")
                    || k.starts_with("enable.sasl."))
                    && k.as_str() != "sasl.jaas.config"
            })
            .map(|(k, v)| {
                let k = if k == "sasl.mechanism" {
                    "sasl.mechanisms"
                } else {
                    k.as_str()
                };
                (k.to_owned(), v.clone())
            })
            .collect();
        if let Some(j) = self.get("sasl.jaas.config") {
            for (name, key) in [("username", "sasl.username"), ("password", "sasl.password")] {
                if let (Some(v), None) = (jaas_value(j, name), self.get(key)) {
                    out.push((key.to_owned(), v));
                }
            }
        }
        out
    }
}

/// `key=value` (also `key = value` and `key: value`, as Java properties files allow).
fn split(line: &str) -> Option<(String, String)> {
    let i = line.find(['=', ':'])?;
    let (k, v) = (line[..i].trim(), line[i + 1..].trim());
    (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
}

/// `name="value"` (or unquoted) from a JAAS line.
fn jaas_value(jaas: &str, name: &str) -> Option<String> {
    let mut rest = jaas;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
        let after = rest[i + name.len()..].trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start();
                return Some(if let Some(q) = v.strip_prefix('"') {
                    q.split('"').next().unwrap_or("").to_owned()
                } else {
                    v.split([' ', ';']).next().unwrap_or("").to_owned()
                });
            }
        }
        rest = &rest[i + name.len()..];
    }
    None
}

/// `name=value` from librdkafka's space-separated `sasl.oauthbearer.config`.
fn oauth_value(config: &str, name: &str) -> Option<String> {
    config
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_pairs_are_read_in_order_and_unknown_names_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client.properties");
        std::fs::write(
            &f,
            "# a Java client's file\nbootstrap.servers=a:1,b:2\nsecurity.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"s3cr=t\";\n\
             acks = 1\n",
        )
        .unwrap();
        let p = Props::load(Some(&f), &["acks=all".into(), "linger.ms=7".into()]).unwrap();
        assert_eq!(p.brokers(&[]), vec!["a:1", "b:2"]);
        assert_eq!(p.brokers(&["c:3".into()]), vec!["c:3"]);
        let sec = p.security().unwrap();
        assert_eq!(sec.protocol, SecurityProtocol::SaslSsl);
        match sec.sasl.unwrap() {
            Sasl::Scram {
                username, password, ..
            } => {
                assert_eq!((username.as_str(), password.expose()), ("alice", "s3cr=t"))
            }
            other => panic!("{other:?}"),
        }
        let mut w = WriterConfig::default();
        p.apply_writer(&mut w).unwrap();
        assert_eq!(
            w.required_acks,
            kafkit::RequiredAcks::All,
            "-X wins over -F"
        );
        assert_eq!(w.batch_timeout, Duration::from_millis(7));

        let e = Props::load(None, &["sasl.pasword=x".into()]).unwrap_err();
        assert!(
            e.to_string().contains("unknown property \"sasl.pasword\""),
            "{e}"
        );
        let e = Props::load(None, &["novalue".into()]).unwrap_err();
        assert!(e.to_string().contains("expected key=value"), "{e}");
        let p = Props::load(
            None,
            &[
                "security.protocol=SASL_PLAINTEXT".into(),
                "sasl.username=u".into(),
            ],
        )
        .unwrap();
        let e = p.security().unwrap_err();
        assert!(e.to_string().contains("sasl.password"), "{e}");
        let p = Props::load(None, &["fetch.min.bytes=lots".into()]).unwrap();
        let e = p.apply_reader(&mut ReaderConfig::default()).unwrap_err();
        assert!(e.to_string().contains("fetch.min.bytes"), "{e}");
    }
}
