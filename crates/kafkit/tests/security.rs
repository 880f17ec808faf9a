//! TLS and SASL end to end over TCP (issue 14): the client against the embedded cluster's
//! secured listeners — every protocol × mechanism writes and reads 1,000 records in a group;
//! mTLS; each failure gives its typed error, within the dial timeout, and writes nothing;
//! secrets stay out of `Debug` and logs.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kafkit::security::{unsecured_jws, OAuthToken, Sasl, SecurityConfig, TlsConfig};
use kafkit::{Admin, Error, Message, Reader, ReaderConfig, SecurityProtocol, Writer, WriterConfig};
use kafkit_broker::auth::{issue_certificate, Security};
use kafkit_broker::Cluster;

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret-7f3a";

async fn secure_cluster(
    dir: &Path,
    protocol: SecurityProtocol,
    f: impl FnOnce(&mut Security),
) -> Cluster {
    init_logs();
    let mut security = Security {
        protocol,
        users: vec![(USER.into(), PASSWORD.into())],
        ..Default::default()
    };
    f(&mut security);
    Cluster::builder()
        .brokers(3)
        .data_dir(dir)
        .security(security)
        .start()
        .await
        .expect("cluster starts")
}

fn mechanisms() -> Vec<Sasl> {
    vec![
        Sasl::plain(USER, PASSWORD),
        Sasl::scram_sha_256(USER, PASSWORD),
        Sasl::scram_sha_512(USER, PASSWORD),
        Sasl::oauthbearer(|| async {
            Ok(OAuthToken {
                value: unsecured_jws(USER, Duration::from_secs(3600)).into(),
                extensions: vec![],
            })
        }),
    ]
}

fn security(c: &Cluster, protocol: SecurityProtocol, sasl: Option<Sasl>) -> SecurityConfig {
    SecurityConfig {
        protocol,
        tls: TlsConfig {
            ca_file: c.tls_ca().map(Path::to_path_buf),
            ..Default::default()
        },
        sasl,
    }
}

/// Writes 1,000 records and reads them back in a group, both with `sec`.
async fn round_trip(c: &Cluster, topic: &str, sec: &SecurityConfig) {
    let w = Writer::new(WriterConfig {
        security: sec.clone(),
        batch_size: 100,
        ..writer_config(c, topic)
    })
    .unwrap();
    for chunk in (0..1000).collect::<Vec<_>>().chunks(250) {
        w.write_messages(
            chunk
                .iter()
                .map(|i| Message::new(format!("k{i}"), format!("v{i}")))
                .collect(),
        )
        .await
        .unwrap_or_else(|e| panic!("{topic}: write: {e}"));
    }
    w.close().await.unwrap();
    let r = Reader::new(ReaderConfig {
        security: sec.clone(),
        max_wait: Duration::from_millis(100),
        ..reader_config(c, topic, Some(&format!("{topic}-group")))
    })
    .unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < 1000 {
        let m = tokio::time::timeout(Duration::from_secs(30), r.read_message())
            .await
            .unwrap_or_else(|_| panic!("{topic}: records in time ({} so far)", seen.len()))
            .unwrap();
        assert!(seen.insert(m.value.clone()), "{topic}: no record twice");
    }
    r.close().await.unwrap();
}

async fn matrix(protocol: SecurityProtocol) {
    let dir = tempfile::tempdir().unwrap();
    let c = secure_cluster(dir.path(), protocol, |_| {}).await;
    if protocol.tls() {
        let ca = c.tls_ca().expect("a self-signed CA");
        assert!(ca.starts_with(dir.path()) && ca.ends_with("tls/ca.pem"));
    }
    let cases: Vec<Option<Sasl>> = if protocol.sasl() {
        mechanisms().into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    for sasl in cases {
        let name = sasl.as_ref().map_or("none", |s| s.mechanism());
        let topic = format!("{}-{}", protocol, name).to_lowercase();
        round_trip(&c, &topic, &security(&c, protocol, sasl)).await;
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_round_trip() {
    matrix(SecurityProtocol::Plaintext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_round_trip() {
    matrix(SecurityProtocol::Ssl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plaintext_round_trip_with_every_mechanism() {
    matrix(SecurityProtocol::SaslPlaintext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_round_trip_with_every_mechanism() {
    matrix(SecurityProtocol::SaslSsl).await;
}

/// Records in `topic` over the whole cluster (read with the embedded cluster's own view).
fn records_in(c: &Cluster, topic: &str) -> i64 {
    c.partitions(topic)
        .map_or(0, |ps| ps.iter().map(|(_, end)| end).sum())
}

/// A write that must fail: returns its error, after checking it came within the dial timeout
/// and wrote nothing.
async fn failed_write(c: &Cluster, topic: &str, sec: SecurityConfig) -> Error {
    let started = Instant::now();
    let w = Writer::new(WriterConfig {
        security: sec,
        dial_timeout: Duration::from_secs(3),
        write_timeout: Duration::from_secs(3),
        ..writer_config(c, topic)
    })
    .unwrap();
    let e = w
        .write_messages(vec![Message::value("must not land")])
        .await
        .expect_err("the write fails");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{topic}: failed within the timeouts, not a hang ({:?}): {e}",
        started.elapsed()
    );
    let _ = w.close().await;
    eprintln!("{topic}: {e}");
    assert_eq!(records_in(c, topic), 0, "{topic}: nothing written");
    e
}

/// The first cause of a failed write (a `WriteFailed` wraps each message's error).
fn cause(e: &Error) -> &Error {
    match e {
        Error::WriteFailed { failed, .. } => cause(&failed[0].1),
        e => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_failures_are_typed_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = secure_cluster(dir.path(), SecurityProtocol::SaslPlaintext, |s| {
        s.mechanisms = vec!["PLAIN".into(), "SCRAM-SHA-512".into(), "OAUTHBEARER".into()];
    })
    .await;
    c.create_topic("guarded", 3).unwrap();
    let p = SecurityProtocol::SaslPlaintext;
    // Wrong passwords: SASL_AUTHENTICATION_FAILED with the broker's message.
    for sasl in [
        Sasl::plain(USER, "wrong"),
        Sasl::scram_sha_512(USER, "wrong"),
        Sasl::scram_sha_512("mallory", PASSWORD),
    ] {
        let mech = sasl.mechanism();
        let e = failed_write(&c, "guarded", security(&c, p, Some(sasl))).await;
        let e = cause(&e);
        assert_eq!(e.kafka_code(), Some(58), "{mech}: {e}");
        assert!(
            e.to_string().contains("Authentication failed"),
            "{mech}: {e}"
        );
    }
    // An expired token.
    let e = failed_write(
        &c,
        "guarded",
        security(
            &c,
            p,
            Some(Sasl::oauthbearer(|| async {
                let t = unsecured_jws(USER, Duration::ZERO);
                Ok(OAuthToken {
                    value: t.into(),
                    extensions: vec![],
                })
            })),
        ),
    )
    .await;
    assert_eq!(cause(&e).kafka_code(), Some(58), "{e}");
    assert!(e.to_string().contains("expired"), "{e}");
    // A mechanism the broker does not enable: UNSUPPORTED_SASL_MECHANISM naming what it has.
    let e = failed_write(
        &c,
        "guarded",
        security(&c, p, Some(Sasl::scram_sha_256(USER, PASSWORD))),
    )
    .await;
    let e = cause(&e);
    assert_eq!(e.kafka_code(), Some(33), "{e}");
    assert!(
        e.to_string().contains("PLAIN, SCRAM-SHA-512, OAUTHBEARER"),
        "{e}"
    );
    // No SASL at all: the broker closes the connection at the first request other than
    // ApiVersions, as Kafka does; the write fails instead of hanging.
    let e = failed_write(&c, "guarded", SecurityConfig::default()).await;
    assert!(!matches!(cause(&e), Error::Kafka { .. }), "{e}");
    // The right password still works after all that.
    round_trip(
        &c,
        "guarded",
        &security(&c, p, Some(Sasl::plain(USER, PASSWORD))),
    )
    .await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_typed_and_come_within_the_dial_timeout() {
    let tls_dir = tempfile::tempdir().unwrap();
    let tls = secure_cluster(tls_dir.path(), SecurityProtocol::Ssl, |_| {}).await;
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = secure_cluster(plain_dir.path(), SecurityProtocol::Plaintext, |_| {}).await;
    tls.create_topic("t", 1).unwrap();
    plain.create_topic("t", 1).unwrap();

    // TLS to a plaintext listener.
    let e = failed_write(&plain, "t", security(&tls, SecurityProtocol::Ssl, None)).await;
    assert!(matches!(cause(&e), Error::Tls { .. }), "{e}");
    assert!(e.to_string().contains("is it a TLS listener"), "{e}");

    // Plaintext to a TLS listener.
    let e = failed_write(&tls, "t", SecurityConfig::default()).await;
    assert!(e.to_string().contains("TLS listener"), "{e}");

    // A CA that did not sign the broker's certificate.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = issue_certificate(other.path(), &["x".into()]).unwrap();
    let mut sec = security(&tls, SecurityProtocol::Ssl, None);
    sec.tls.ca_file = Some(other_ca);
    let e = failed_write(&tls, "t", sec).await;
    assert!(matches!(cause(&e), Error::Tls { .. }), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");

    // A certificate for another host name: refused, unless hostname verification is off.
    let named_dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) =
        issue_certificate(&named_dir.path().join("ca"), &["other.example".into()]).unwrap();
    let cert_path = named_dir.path().join("cert.pem");
    let key_path = named_dir.path().join("key.pem");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let named = secure_cluster(&named_dir.path().join("data"), SecurityProtocol::Ssl, |s| {
        s.tls = Some(kafkit_broker::auth::TlsSource::Files {
            cert: cert_path.clone(),
            key: key_path.clone(),
        });
    })
    .await;
    assert!(named.tls_ca().is_none(), "given files: no self-signed CA");
    named.create_topic("t", 1).unwrap();
    let mut sec = SecurityConfig {
        protocol: SecurityProtocol::Ssl,
        tls: TlsConfig {
            ca_file: Some(ca),
            ..Default::default()
        },
        sasl: None,
    };
    let e = failed_write(&named, "t", sec.clone()).await;
    assert!(matches!(cause(&e), Error::Tls { .. }), "{e}");
    assert!(e.to_string().contains("not valid for name"), "{e}");
    sec.tls.verify_hostname = false;
    round_trip(&named, "t", &sec).await;

    named.shutdown().await;
    plain.shutdown().await;

    // A restart on the same data directory keeps the CA: a client holding the first start's
    // ca.pem still connects.
    let ca_before = std::fs::read(tls.tls_ca().unwrap()).unwrap();
    let sec = security(&tls, SecurityProtocol::Ssl, None);
    tls.shutdown().await;
    let tls = secure_cluster(tls_dir.path(), SecurityProtocol::Ssl, |_| {}).await;
    assert_eq!(std::fs::read(tls.tls_ca().unwrap()).unwrap(), ca_before);
    round_trip(&tls, "after-restart", &sec).await;
    tls.shutdown().await;
}

/// Mutual TLS: the listeners require a certificate signed by the client CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_needs_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (client_ca, cert, key) =
        issue_certificate(&dir.path().join("client-ca"), &["app".into()]).unwrap();
    let cert_path: PathBuf = dir.path().join("client.pem");
    let key_path: PathBuf = dir.path().join("client-key.pem");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let c = secure_cluster(&dir.path().join("data"), SecurityProtocol::Ssl, |s| {
        s.tls_client_ca = Some(client_ca.clone());
    })
    .await;
    c.create_topic("mtls", 2).unwrap();
    // Without a certificate: refused, within the timeouts, nothing written.
    let e = failed_write(&c, "mtls", security(&c, SecurityProtocol::Ssl, None)).await;
    assert!(
        e.to_string().to_lowercase().contains("certificate"),
        "the broker's refusal names the certificate: {e}"
    );
    // With one: works.
    let mut sec = security(&c, SecurityProtocol::Ssl, None);
    sec.tls.cert_file = Some(cert_path);
    sec.tls.key_file = Some(key_path);
    round_trip(&c, "mtls", &sec).await;
    c.shutdown().await;
}

/// A session lifetime (KIP-368, `connections.max.reauth.ms`): the broker closes a connection
/// that goes on past it; the client retires its connections before that and authenticates
/// afresh, so a reader and writer working across several lifetimes see no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_renewed_before_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let c = secure_cluster(dir.path(), SecurityProtocol::SaslPlaintext, |s| {
        s.max_reauth = Some(Duration::from_millis(1500));
    })
    .await;
    c.create_topic("renewed", 2).unwrap();
    let sec = security(
        &c,
        SecurityProtocol::SaslPlaintext,
        Some(Sasl::scram_sha_256(USER, PASSWORD)),
    );
    let w = Writer::new(WriterConfig {
        security: sec.clone(),
        ..writer_config(&c, "renewed")
    })
    .unwrap();
    let r = Reader::new(ReaderConfig {
        security: sec.clone(),
        max_wait: Duration::from_millis(100),
        ..reader_config(&c, "renewed", Some("renewed-group"))
    })
    .unwrap();
    let admin = Admin::with_security(c.addrs(), sec).unwrap();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(5) {
        w.write_messages(vec![Message::value(format!("{n}"))])
            .await
            .unwrap_or_else(|e| panic!("write {n}: {e}"));
        let m = tokio::time::timeout(Duration::from_secs(10), r.read_message())
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(m.value.as_deref(), Some(format!("{n}").as_bytes()));
        admin.list_topics().await.unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(n > 10);
    w.close().await.unwrap();
    r.close().await.unwrap();
    c.shutdown().await;
}

/// A `MakeWriter` collecting formatted log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Passwords and tokens appear neither in `Debug` of the configs nor in trace-level logs of
/// both client and broker, successful or failed authentication alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_debug_output_and_logs() {
    let token = unsecured_jws(USER, Duration::from_secs(600));
    let secret_token = token.clone();
    let sasls = vec![
        Sasl::plain(USER, PASSWORD),
        Sasl::scram_sha_512(USER, PASSWORD),
        Sasl::plain(USER, "wrong-password-123"),
        Sasl::oauthbearer(move || {
            let t = secret_token.clone();
            async move {
                Ok(OAuthToken {
                    value: t.into(),
                    extensions: vec![],
                })
            }
        }),
    ];
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    // Global (a thread-scoped subscriber misses events under parallel tests: tracing caches
    // callsite interest process-wide), so the other tests' logs are checked too. With RUST_LOG
    // set, `init_logs` may have installed one first: then only `Debug` is checked.
    let capturing = tracing::subscriber::set_global_default(subscriber).is_ok();
    let dir = tempfile::tempdir().unwrap();
    let c = secure_cluster(dir.path(), SecurityProtocol::SaslSsl, |_| {}).await;
    c.create_topic("quiet", 1).unwrap();
    for sasl in sasls {
        let sec = security(&c, SecurityProtocol::SaslSsl, Some(sasl));
        let cfg = WriterConfig {
            security: sec.clone(),
            dial_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(3),
            ..writer_config(&c, "quiet")
        };
        let debug = format!("{cfg:?} {sec:?}");
        assert!(!debug.contains(PASSWORD) && !debug.contains("wrong-password-123"));
        assert!(
            debug.contains("[redacted]") || debug.contains("OAuthBearer { provider: .. }"),
            "{debug}"
        );
        let w = Writer::new(cfg).unwrap();
        let _ = w.write_messages(vec![Message::value("x")]).await;
        let _ = w.close().await;
    }
    let debug = format!(
        "{:?}",
        Security {
            users: vec![(USER.into(), PASSWORD.into())],
            ..Default::default()
        }
    );
    assert!(!debug.contains(PASSWORD), "{debug}");
    c.shutdown().await;
    if !capturing {
        return;
    }
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(logs.contains("authenticated"), "logs were captured");
    for secret in [PASSWORD, "wrong-password-123", token.as_str()] {
        assert!(!logs.contains(secret), "a secret in the logs");
    }
}

/// Before authentication a SASL listener serves ApiVersions and the SASL exchange only:
/// another request closes the connection (as Kafka does), and so does a frame over
/// `sasl.server.max.receive.size` (512 KiB); the broker goes on serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_get_nothing_but_the_handshake() {
    use kafkit::conn::Connection;
    use kafkit_protocol::messages::MetadataRequest;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let c = secure_cluster(dir.path(), SecurityProtocol::SaslPlaintext, |_| {}).await;
    let addr = c.addrs()[0].clone();
    // ApiVersions is answered (Connection::connect negotiates), Metadata closes.
    let conn = Connection::connect(&addr, conn_config()).await.unwrap();
    let e = conn
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ConnectionLost { .. }), "{e}");
    // A 600 KB frame before authentication: closed before it is read.
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(&600_000i32.to_be_bytes()).await.unwrap();
    let _ = raw.write_all(&[0u8; 1024]).await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing answered, connection closed");
    // Everyone else is served.
    round_trip(
        &c,
        "still-served",
        &security(
            &c,
            SecurityProtocol::SaslPlaintext,
            Some(Sasl::plain(USER, PASSWORD)),
        ),
    )
    .await;
    c.shutdown().await;
}

/// SaslHandshake v0 (clients before KIP-152): the exchange's tokens travel as bare frames —
/// PLAIN's one message, answered with an empty frame — and then requests are served. A wrong
/// password closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_handshake_v0_carries_bare_tokens() {
    use bytes::{Bytes, BytesMut};
    use kafkit_protocol::codec;
    use kafkit_protocol::messages::{MetadataRequest, SaslHandshakeRequest};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn frame(s: &mut tokio::net::TcpStream) -> Option<Bytes> {
        let mut size = [0u8; 4];
        s.read_exact(&mut size).await.ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }
    let dir = tempfile::tempdir().unwrap();
    let c = secure_cluster(dir.path(), SecurityProtocol::SaslPlaintext, |_| {}).await;
    for (password, ok) in [(PASSWORD, true), ("wrong", false)] {
        let mut s = tokio::net::TcpStream::connect(&c.addrs()[0]).await.unwrap();
        let mut out = BytesMut::new();
        let hs =
            SaslHandshakeRequest::default().with_mechanism(kafkit_protocol::str_bytes("PLAIN"));
        codec::encode_request(&mut out, 1, Some("old"), 0, &hs).unwrap();
        s.write_all(&out).await.unwrap();
        let (_, resp) =
            codec::decode_response::<SaslHandshakeRequest>(frame(&mut s).await.unwrap(), 0)
                .unwrap();
        assert_eq!(resp.error_code, 0);
        assert!(resp.mechanisms.iter().any(|m| m.as_str() == "PLAIN"));
        let token = kafkit_protocol::sasl::plain_message(USER, password);
        s.write_all(&(token.len() as i32).to_be_bytes())
            .await
            .unwrap();
        s.write_all(&token).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), frame(&mut s))
            .await
            .unwrap();
        if !ok {
            assert!(answer.is_none(), "a wrong password closes the connection");
            continue;
        }
        assert_eq!(answer.unwrap().len(), 0, "an empty token answers PLAIN");
        let mut out = BytesMut::new();
        codec::encode_request(&mut out, 2, Some("old"), 1, &MetadataRequest::default()).unwrap();
        s.write_all(&out).await.unwrap();
        let (id, md) =
            codec::decode_response::<MetadataRequest>(frame(&mut s).await.unwrap(), 1).unwrap();
        assert_eq!(
            (id, md.brokers.len()),
            (2, 3),
            "served after authenticating"
        );
    }
    c.shutdown().await;
}
