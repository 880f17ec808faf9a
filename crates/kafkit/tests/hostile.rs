//! Issue 11 over TCP: requests an attacker (or a buggy client) sends do not take the cluster
//! down, lying batches are refused and lose nothing written after them, and the resource
//! limits hold. Memory-bound tests live in `hostile_memory.rs` (their own process, so the peak
//! RSS they read is theirs).

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafkit::conn::Connection;
use kafkit::{Message, Reader, StartOffset, Writer};
use kafkit_protocol::batch::{encode_records, new_record, seal};
use kafkit_protocol::messages::MetadataRequest;
use kafkit_protocol::records::Compression;
use kafkit_protocol::topic_name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every broker still answers Metadata on a new connection.
async fn all_brokers_answer(c: &kafkit_broker::Cluster) {
    brokers_answer(&c.addrs()).await
}

/// These brokers answer Metadata on a new connection.
async fn brokers_answer(addrs: &[String]) {
    for addr in addrs {
        let conn = within(
            10,
            "connect after attack",
            Connection::connect(addr, conn_config()),
        )
        .await
        .unwrap();
        let (_, md) = within(
            10,
            "metadata after attack",
            conn.send(&MetadataRequest::default()),
        )
        .await
        .unwrap();
        assert_eq!(md.brokers.len(), 3);
    }
}

/// Sends raw bytes and waits for the broker to close the connection (or answer).
async fn send_raw(addr: &str, frame: &[u8]) -> usize {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(frame).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    within(10, "broker closes or answers", s.read(&mut buf))
        .await
        .unwrap_or(0)
}

fn frame(api_key: i16, version: i16, flexible: bool, body: &[u8]) -> Vec<u8> {
    let mut f = BytesMut::new();
    f.put_i16(api_key);
    f.put_i16(version);
    f.put_i32(1);
    f.put_i16(-1); // null client id
    if flexible {
        f.put_u8(0); // header tagged fields
    }
    f.put_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

const HUGE: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];
const HUGE_VARINT: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

#[tokio::test]
async fn hostile_counts_close_only_that_connection() {
    let c = cluster().await;
    let addr = c.addrs()[0].clone();
    // Metadata v1: topics array of 2^31-1 (the 18-byte request).
    let f = frame(3, 1, false, &HUGE);
    assert_eq!(f.len(), 18);
    let mut cases = vec![("Metadata v1", f)];
    // Metadata v12: compact array.
    cases.push(("Metadata v12", frame(3, 12, true, &HUGE_VARINT)));
    // Produce v3: transactional id null, acks, timeout, then topics 2^31-1.
    let mut p = vec![0xff, 0xff, 0, 1, 0, 0, 0x03, 0xe8];
    p.extend_from_slice(&HUGE);
    cases.push(("Produce v3", frame(0, 3, false, &p)));
    // Fetch v11: replica, max wait, min bytes, max bytes, isolation, session id, epoch, topics.
    let mut f11 = vec![0xff; 4];
    f11.extend_from_slice(&[
        0, 0, 0, 100, 0, 0, 0, 1, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
    ]);
    f11.extend_from_slice(&HUGE);
    cases.push(("Fetch v11", frame(1, 11, false, &f11)));
    // ListOffsets v1: replica id, topics.
    let mut l = vec![0xff; 4];
    l.extend_from_slice(&HUGE);
    cases.push(("ListOffsets v1", frame(2, 1, false, &l)));
    for (what, f) in cases {
        let n = send_raw(&addr, &f).await;
        assert_eq!(n, 0, "{what}: connection closed");
        all_brokers_answer(&c).await;
    }
    c.shutdown().await;
}

/// Random mutations of valid requests (the 2,000-request attack killed the cluster 35
/// times): every connection ends, the cluster lives.
#[tokio::test]
async fn mutated_requests_never_kill_the_cluster() {
    let c = cluster().await;
    c.create_topic("mutate", 1).unwrap();
    let addr = c.addrs()[0].clone();
    let mut valid = Vec::new();
    let md = MetadataRequest::default().with_topics(Some(vec![
        kafkit_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(topic_name("mutate"))),
    ]));
    for v in [1, 4, 9, 12] {
        let mut b = BytesMut::new();
        kafkit_protocol::codec::encode_request(&mut b, 1, Some("m"), v, &md).unwrap();
        valid.push(b.to_vec());
    }
    let batch = encode_records(
        &[new_record(0, 1, None, Some(Bytes::from_static(b"v")))],
        Compression::None,
    )
    .unwrap();
    let produce = produce_request("mutate", -1, batch);
    for v in [3, 7, 9] {
        let mut b = BytesMut::new();
        kafkit_protocol::codec::encode_request(&mut b, 1, Some("m"), v, &produce).unwrap();
        valid.push(b.to_vec());
    }
    // A small xorshift: deterministic, no dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..400 {
        let mut f = valid[i % valid.len()].clone();
        for _ in 0..(1 + next() % 4) {
            let at = 4 + (next() as usize) % (f.len() - 4);
            f[at] = match next() % 4 {
                0 => 0xff,
                1 => 0x7f,
                2 => 0,
                _ => next() as u8,
            };
        }
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&f).await.unwrap();
        let mut buf = vec![0u8; 4096];
        // Answered or closed; either way within the timeout.
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    }
    all_brokers_answer(&c).await;
    c.shutdown().await;
}

fn one_record() -> Vec<u8> {
    encode_records(
        &[new_record(
            0,
            1_700_000_000_000,
            None,
            Some(Bytes::from_static(b"liar")),
        )],
        Compression::None,
    )
    .unwrap()
    .to_vec()
}

/// The lying batches (valid CRCs): each refused with the protocol's code, nothing
/// stored, and the good record written afterwards is read by our Reader.
#[tokio::test]
async fn lying_batches_are_refused_and_lose_nothing_after_them() {
    let c = cluster().await;
    c.create_topic("liars", 1).unwrap();
    let leader = c.partitions("liars").unwrap()[0].0;
    let conn = Connection::connect(&c.addrs()[(leader - 1) as usize], conn_config())
        .await
        .unwrap();
    let mut cases: Vec<(&str, Vec<u8>, i16)> = Vec::new();
    let mut b = one_record();
    b[57..61].copy_from_slice(&1000i32.to_be_bytes());
    b[23..27].copy_from_slice(&999i32.to_be_bytes());
    seal(&mut b);
    cases.push(("count 1,000 with one record", b, 2));
    let mut b = one_record();
    b[61] = 0xd0;
    b.insert(62, 0x0f);
    seal(&mut b);
    cases.push(("record length 1,000 for 10 bytes", b, 2));
    let mut b = one_record();
    for x in &mut b[61..] {
        *x = 0xfe;
    }
    seal(&mut b);
    cases.push(("garbage records", b, 2));
    let mut b = one_record();
    b[57..61].copy_from_slice(&0i32.to_be_bytes());
    seal(&mut b);
    cases.push(("count 0 with one record", b, 87));
    let mut b = one_record();
    b[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
    seal(&mut b);
    cases.push(("last offset delta 2^31-1", b, 87));
    for (what, batch, code) in cases {
        let (_, resp) = conn
            .send(&produce_request("liars", -1, Bytes::from(batch)))
            .await
            .unwrap();
        let got = resp.responses[0].partition_responses[0].error_code;
        assert_eq!(got, code, "{what}");
    }
    assert_eq!(c.partitions("liars").unwrap()[0].1, 0, "nothing stored");

    let w = Writer::new(writer_config(&c, "liars")).unwrap();
    w.write_messages(vec![Message::value("good")])
        .await
        .unwrap();
    let r = Reader::new(kafkit::ReaderConfig {
        start_offset: StartOffset::First,
        partition: 0,
        ..reader_config(&c, "liars", None)
    })
    .unwrap();
    let m = within(10, "the good record", r.read_message())
        .await
        .unwrap();
    assert_eq!(m.value.as_deref(), Some(&b"good"[..]));
    assert_eq!(m.offset, 0);
    assert_eq!(c.partitions("liars").unwrap()[0].1, 1);
    r.close().await.unwrap();
    c.shutdown().await;
}

/// Idle connections are closed after `connections.max.idle.ms`, half-sent requests after the
/// request read timeout, and connections over `max.connections` are refused at once — so
/// holding connections no longer shuts a broker out.
#[tokio::test]
async fn idle_half_sent_and_excess_connections_are_closed() {
    let c = cluster_with(|cfg| {
        cfg.connections_max_idle = Duration::from_millis(800);
        cfg.request_read_timeout = Duration::from_millis(800);
        cfg.max_connections = 20;
    })
    .await;
    let addr = c.addrs()[0].clone();
    let mut buf = [0u8; 16];

    // Idle.
    let t = Instant::now();
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let n = within(5, "idle close", idle.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );

    // Half-sent: a frame header announcing 1,000 bytes, then 10 of them, then silence —
    // trickled so the idle timer never fires.
    let t = Instant::now();
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(&1000i32.to_be_bytes()).await.unwrap();
    let closed = within(5, "half-sent close", async {
        loop {
            if half.write_all(&[0]).await.is_err() {
                return;
            }
            tokio::select! {
                r = half.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    closed.await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // Over the cap: 20 held, the 21st refused at once (closed, no hang), others still served
    // elsewhere, and once the held ones idle out the broker serves again.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let n = within(5, "refused", extra.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "refused at once: {:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    all_brokers_answer(&c).await;
    drop(held);
    c.shutdown().await;
}

/// `max.connections.per.ip`: the connection over the quota is closed at once; a connection
/// given back makes room for the next; other brokers are unaffected.
#[tokio::test]
async fn connections_per_ip_are_capped() {
    let c = cluster_with(|cfg| cfg.max_connections_per_ip = 5).await;
    let addr = c.addrs()[0].clone();
    let mut buf = [0u8; 16];
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            Connection::connect(&addr, conn_config())
                .await
                .expect("under the quota"),
        );
    }
    let refused = |mut s: TcpStream| async move {
        let n = within(5, "refused", s.read(&mut buf)).await.unwrap_or(0);
        n == 0
    };
    let t = Instant::now();
    assert!(refused(TcpStream::connect(&addr).await.unwrap()).await);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // The held connections still work; the other brokers serve this address.
    for conn in &held {
        conn.send(&MetadataRequest::default()).await.unwrap();
    }
    brokers_answer(&c.addrs()[1..]).await;
    // One given back: room for one more.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = Connection::connect(&addr, conn_config()).await.unwrap();
    again.send(&MetadataRequest::default()).await.unwrap();
    drop(held);
    c.shutdown().await;
}

/// One Metadata request naming 2,500 new topics creates no more than the auto-creation budget;
/// the rest are answered LEADER_NOT_AVAILABLE (retriable), and the cluster keeps serving.
#[tokio::test]
async fn auto_creation_is_rate_limited() {
    let c = cluster_with(|cfg| cfg.auto_create_partitions_per_sec = 30).await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let topics = (0..2_500)
        .map(|i| {
            kafkit_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(topic_name(&format!("spam-{i}"))))
        })
        .collect();
    let md = MetadataRequest::default()
        .with_topics(Some(topics))
        .with_allow_auto_topic_creation(true);
    let t = Instant::now();
    let (_, resp) = conn.send(&md).await.unwrap();
    // 30 partitions / 3 per topic up front, plus what the bucket refilled while the request
    // was served (a loaded CI machine takes a while to create 10 topics).
    let refill = (t.elapsed().as_secs_f64() * 10.0).ceil() as usize;
    let created = resp.topics.iter().filter(|t| t.error_code == 0).count();
    let refused = resp.topics.iter().filter(|t| t.error_code == 5).count();
    assert!(
        (10..=10 + refill).contains(&created),
        "created {created}, refill allowance {refill}"
    );
    assert_eq!(created + refused, 2_500);
    let dirs = std::fs::read_dir(c.data_dir()).unwrap().count();
    assert!(dirs < 100, "{dirs} entries in the data dir");
    // A later request creates more as the budget refills.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, again) = conn.send(&md).await.unwrap();
    let now = again.topics.iter().filter(|t| t.error_code == 0).count();
    assert!(now > created && now < 40 + refill, "{now}");
    all_brokers_answer(&c).await;
    c.shutdown().await;
}

/// CreateTopics with validate_only creates nothing on disk, and a failed create leaves nothing.
#[tokio::test]
async fn create_topics_leaves_nothing_behind_when_it_does_not_create() {
    use kafkit_protocol::messages::create_topics_request::CreatableTopic;
    use kafkit_protocol::messages::CreateTopicsRequest;
    let c = cluster().await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let entries = |c: &kafkit_broker::Cluster| walk(&c.data_dir());
    let before = entries(&c);
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_validate_only(true)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("dry-run"))
            .with_num_partitions(2_000)
            .with_replication_factor(3)]);
    let (_, resp) = conn.send(&req).await.unwrap();
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(entries(&c), before, "validate_only created files");
    assert!(c.partitions("dry-run").is_none());
    // Too many partitions: refused, nothing left behind.
    let req = req
        .with_validate_only(false)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("too-big"))
            .with_num_partitions(100_000)
            .with_replication_factor(3)]);
    let (_, resp) = conn.send(&req).await.unwrap();
    assert_ne!(resp.topics[0].error_code, 0);
    assert_eq!(entries(&c), before, "a failed create left files");

    // A create that fails part-way on disk (partition 7's directory cannot be made: a file
    // is in its place on every broker) undoes partitions 0-6 and reports a storage error.
    for b in 1..=3 {
        let broker_dir = c.data_dir().join(format!("broker-{b}"));
        std::fs::create_dir_all(&broker_dir).unwrap();
        std::fs::write(broker_dir.join("halfway-7"), b"in the way").unwrap();
    }
    let before = entries(&c);
    let req = req.with_topics(vec![CreatableTopic::default()
        .with_name(topic_name("halfway"))
        .with_num_partitions(20)
        .with_replication_factor(3)]);
    let (_, resp) = conn.send(&req).await.unwrap();
    assert_eq!(
        resp.topics[0].error_code,
        kafkit_protocol::ResponseError::KafkaStorageError.code()
    );
    assert_eq!(
        entries(&c),
        before,
        "a create that failed part-way left files"
    );
    assert!(c.partitions("halfway").is_none());
    // With the obstacle gone the same create succeeds.
    for b in 1..=3 {
        std::fs::remove_file(c.data_dir().join(format!("broker-{b}/halfway-7"))).unwrap();
    }
    let (_, resp) = conn.send(&req).await.unwrap();
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(c.partitions("halfway").unwrap().len(), 20);
    c.shutdown().await;
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        1 + walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
