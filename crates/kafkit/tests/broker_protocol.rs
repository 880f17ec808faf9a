//! The embedded broker at the protocol level: Fetch long-poll semantics, max_bytes, and bad
//! input (malformed frames, unknown APIs) closing only the offending connection.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kafkit::conn::{ConnConfig, Connection};
use kafkit::{Message, Writer};
use kafkit_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafkit_protocol::messages::{BrokerId, FetchRequest, MetadataRequest};
use kafkit_protocol::topic_name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn conn_config() -> ConnConfig {
    ConnConfig {
        client_id: "test".into(),
        dial_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn fetch(
    topic: &str,
    offset: i64,
    min_bytes: i32,
    max_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])])
}

fn records_len(resp: &kafkit_protocol::messages::FetchResponse) -> usize {
    resp.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |r| r.len())
}

#[tokio::test]
async fn fetch_waits_max_wait_when_min_bytes_not_reached() {
    let c = cluster().await;
    c.create_topic("poll", 1).unwrap();
    let conn = leader_conn(&c, "poll", 0).await;
    let w = Writer::new(writer_config(&c, "poll")).unwrap();
    w.write_messages(vec![Message::value("small")])
        .await
        .unwrap();

    // One small record is there, but min_bytes asks for far more: the answer comes after max_wait.
    let t = Instant::now();
    let (_, resp) = conn
        .send(&fetch("poll", 0, 100_000, 1_000_000, 600))
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(590),
        "answered after {took:?}, before max_wait"
    );
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert!(
        records_len(&resp) > 0,
        "what is available is returned at max_wait"
    );

    // Waiting at the log end: the answer comes as soon as enough bytes arrive, long before max_wait.
    let end = c.partitions("poll").unwrap()[0].1;
    let writer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.write_messages(vec![Message::value("x".repeat(200))])
            .await
            .unwrap();
    };
    let req = fetch("poll", end, 100, 1_000_000, 10_000);
    let t = Instant::now();
    let (r, ()) = tokio::join!(conn.send(&req), writer);
    let took = t.elapsed();
    let (_, resp) = r.unwrap();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    assert!(records_len(&resp) >= 200);
    c.shutdown().await;
}

#[tokio::test]
async fn fetch_respects_max_bytes_but_returns_one_oversized_batch() {
    let c = cluster().await;
    c.create_topic("limits", 1).unwrap();
    let w = Writer::new(writer_config(&c, "limits")).unwrap();
    for i in 0..3 {
        w.write_messages(vec![Message::value(format!("{i}").repeat(500))])
            .await
            .unwrap();
    }
    let conn = leader_conn(&c, "limits", 0).await;
    let (_, all) = conn
        .send(&fetch("limits", 0, 1, 1_000_000, 0))
        .await
        .unwrap();
    let total = records_len(&all);
    let one = total / 3;
    assert!(total > 1500 && total % 3 == 0, "{total}");
    let (_, two) = conn
        .send(&fetch("limits", 0, 1, (one * 2 + one / 2) as i32, 0))
        .await
        .unwrap();
    assert_eq!(
        records_len(&two),
        one * 2,
        "whole batches only, within max_bytes"
    );
    let (_, tiny) = conn.send(&fetch("limits", 0, 1, 10, 0)).await.unwrap();
    assert_eq!(
        records_len(&tiny),
        one,
        "a batch bigger than max_bytes still comes back alone"
    );
    // Out of range.
    let (_, oor) = conn.send(&fetch("limits", 99, 1, 1000, 0)).await.unwrap();
    assert_eq!(oor.responses[0].partitions[0].error_code, 1);
    c.shutdown().await;
}

#[tokio::test]
async fn requests_to_a_non_leader_are_refused() {
    let c = cluster().await;
    c.create_topic("leaders", 1).unwrap();
    let leader = c.partitions("leaders").unwrap()[0].0;
    let other = &c.addrs()[(leader % 3) as usize];
    let conn = Connection::connect(other, conn_config()).await.unwrap();
    let (_, resp) = conn.send(&fetch("leaders", 0, 1, 1000, 0)).await.unwrap();
    assert_eq!(
        resp.responses[0].partitions[0].error_code, 6,
        "NOT_LEADER_OR_FOLLOWER"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_close_only_that_connection() {
    let c = cluster().await;
    let addr = c.addrs()[0].clone();
    // An absurd frame size.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(&i32::MAX.to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = within(5, "close after oversized frame", s.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0, "connection closed");
    // An unknown API key.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut frame = vec![0, 0, 0, 10];
    frame.extend_from_slice(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    s.write_all(&frame).await.unwrap();
    let n = within(5, "close after unknown api", s.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
    // Garbage body for a known API (Metadata v9).
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut frame = vec![0, 0, 0, 12];
    frame.extend_from_slice(&[0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
    s.write_all(&frame).await.unwrap();
    let n = within(5, "close after garbage", s.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The broker still serves everyone else.
    let conn = Connection::connect(&addr, conn_config()).await.unwrap();
    let (_, md) = conn.send(&MetadataRequest::default()).await.unwrap();
    assert_eq!(md.brokers.len(), 3);
    c.shutdown().await;
}

#[tokio::test]
async fn limits_answer_with_the_protocols_error_codes() {
    let c = kafkit_broker::Cluster::builder()
        .message_max_bytes(2_000)
        .auto_create_topics(false)
        .start()
        .await
        .unwrap();
    c.create_topic("limited", 1).unwrap();
    // A batch above message_max_bytes: MESSAGE_TOO_LARGE (10), not retried, nothing stored.
    let w = Writer::new(kafkit::WriterConfig {
        batch_bytes: 1 << 20,
        ..writer_config(&c, "limited")
    })
    .unwrap();
    let err = w
        .write_messages(vec![Message::value("x".repeat(5_000))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MessageTooLarge"), "{err}");
    assert_eq!(c.partitions("limited").unwrap()[0].1, 0);
    // Unknown topic with auto-creation off: UNKNOWN_TOPIC_OR_PARTITION (3).
    let conn = leader_conn(&c, "limited", 0).await;
    let (_, resp) = conn.send(&fetch("nope", 0, 1, 1000, 0)).await.unwrap();
    assert_eq!(resp.responses[0].partitions[0].error_code, 3);
    let md = MetadataRequest::default()
        .with_topics(Some(vec![
            kafkit_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(topic_name("nope"))),
        ]))
        .with_allow_auto_topic_creation(true);
    let (_, md) = conn.send(&md).await.unwrap();
    assert_eq!(
        md.topics[0].error_code, 3,
        "auto-creation is off on this cluster"
    );
    // ApiVersions at a version we do not know: a v0 answer with UNSUPPORTED_VERSION (35) and our ranges.
    let mut s = tokio::net::TcpStream::connect(&c.addrs()[0]).await.unwrap();
    let mut frame = vec![0, 0, 0, 10];
    frame.extend_from_slice(&[0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff]);
    s.write_all(&frame).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = within(5, "ApiVersions answer", s.read(&mut buf))
        .await
        .unwrap();
    assert!(n >= 12, "got {n} bytes");
    assert_eq!(
        i32::from_be_bytes(buf[4..8].try_into().unwrap()),
        7,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(buf[8..10].try_into().unwrap()),
        35,
        "UNSUPPORTED_VERSION"
    );
    c.shutdown().await;
}

/// `capture_dir`: requests and responses land as fuzz-seed files (api key, version, frame)
/// that decode back to what was sent and answered.
#[tokio::test]
async fn capture_keeps_frames_that_decode() {
    use kafkit_protocol::messages::{ApiKey, RequestKind, ResponseHeader, ResponseKind};
    use kafkit_protocol::protocol::Decodable;
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().to_owned();
    let c = cluster_with(|cfg| cfg.capture_dir = Some(cap)).await;
    c.create_topic("captured", 1).unwrap();
    let w = Writer::new(writer_config(&c, "captured")).unwrap();
    w.write_messages(vec![Message::value("seed")])
        .await
        .unwrap();
    w.close().await.unwrap();
    let read = |sub: &str, prefix: &str| -> Vec<Vec<u8>> {
        std::fs::read_dir(dir.path().join(sub))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| std::fs::read(e.path()).unwrap())
            .collect()
    };
    let produced = read("request_decoding", "Produce-v");
    assert!(!produced.is_empty());
    for data in &produced {
        let version = i16::from_be_bytes([data[2], data[3]]);
        let frame = bytes::Bytes::copy_from_slice(&data[4..]);
        let (_, body) =
            kafkit_protocol::codec::decode_request(frame, ApiKey::Produce, version).unwrap();
        let RequestKind::Produce(req) = body else {
            panic!("not a Produce request")
        };
        assert_eq!(req.topic_data[0].name.0.as_str(), "captured");
    }
    let answers = read("response_decoding", "Produce-v");
    assert_eq!(answers.len(), produced.len());
    for data in &answers {
        let version = i16::from_be_bytes([data[2], data[3]]);
        let mut frame = bytes::Bytes::copy_from_slice(&data[4..]);
        ResponseHeader::decode(&mut frame, ApiKey::Produce.response_header_version(version))
            .unwrap();
        let ResponseKind::Produce(resp) =
            ResponseKind::decode(ApiKey::Produce, &mut frame, version).unwrap()
        else {
            panic!("not a Produce response")
        };
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
    assert!(!read("request_decoding", "Metadata-v").is_empty());
    c.shutdown().await;
}

/// ListOffsets by time finds the first *record* at or after the time (not the first batch that
/// holds one), answers -1 when there is none (also on an empty partition), and
/// MAX_TIMESTAMP (-3) finds the record with the largest timestamp (librdkafka's 0054 and 0081).
#[tokio::test]
async fn list_offsets_by_time_and_max_timestamp() {
    use kafkit_protocol::batch::{encode_records, new_record};
    use kafkit_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafkit_protocol::messages::{ListOffsetsRequest, ProduceRequest};
    use kafkit_protocol::records::Compression;

    let c = cluster().await;
    c.create_topic_with("times", 2, 3).unwrap();
    let conn = leader_conn(&c, "times", 0).await;
    // Offsets 0-1 in one batch (times 1000, 2000), then 2 (3000), then 3 (2500).
    for recs in [vec![(0, 1000), (1, 2000)], vec![(0, 3000)], vec![(0, 2500)]] {
        let recs: Vec<_> = recs
            .into_iter()
            .map(|(o, t)| new_record(o, t, None, Some(bytes::Bytes::from("v"))))
            .collect();
        let batch = encode_records(&recs, Compression::Gzip).unwrap();
        let req: ProduceRequest = produce_request("times", -1, batch);
        let (_, resp) = conn.send(&req).await.unwrap();
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
    let ask = |partition: i32, timestamp: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name("times"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])])
    };
    let mut answers = Vec::new();
    for (p, ts) in [
        (0, 0),
        (0, 1500),
        (0, 2001),
        (0, 2600),
        (0, 999_999_999_999),
        (0, -3),
        (0, -2),
        (0, -1),
    ] {
        let (_, resp) = conn.send(&ask(p, ts)).await.unwrap();
        let r = &resp.topics[0].partitions[0];
        assert_eq!(r.error_code, 0);
        answers.push((ts, r.offset, r.timestamp));
    }
    assert_eq!(
        answers,
        vec![
            (0, 0, 1000),
            (1500, 1, 2000),
            (2001, 2, 3000),
            (2600, 2, 3000),
            (999_999_999_999, -1, -1),
            (-3, 2, 3000),
            (-2, 0, -1),
            (-1, 4, -1),
        ]
    );
    // An empty partition has no record at or after any time, and none with a largest one.
    let conn1 = leader_conn(&c, "times", 1).await;
    for ts in [1234, -3] {
        let (_, resp) = conn1.send(&ask(1, ts)).await.unwrap();
        assert_eq!(resp.topics[0].partitions[0].offset, -1, "timestamp {ts}");
    }
    c.shutdown().await;
}

/// An offset commit outside group management (generation -1, no member id — what admin tools
/// send) is refused with UNKNOWN_MEMBER_ID while the group has members, as Kafka's coordinator
/// does (librdkafka's 0081 AlterConsumerGroupOffsets), and accepted once it is empty.
#[tokio::test]
async fn admin_commits_on_an_active_group_get_unknown_member_id() {
    let c = cluster().await;
    c.create_topic_with("active", 1, 3).unwrap();
    let w = Writer::new(writer_config(&c, "active")).unwrap();
    w.write_messages(vec![Message::value("x")]).await.unwrap();
    let r = kafkit::Reader::new(reader_config(&c, "active", Some("g-active"))).unwrap();
    within(20, "join and read", r.read_message()).await.unwrap();
    let admin = kafkit::Admin::new(c.addrs()).unwrap();
    let at = std::collections::BTreeMap::from([(0, 0)]);
    let e = admin
        .commit_group_offsets("g-active", "active", &at)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UnknownMemberId"), "{e}");
    r.close().await.unwrap();
    within(20, "commit once empty", async {
        while admin
            .commit_group_offsets("g-active", "active", &at)
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(c.committed_offset("g-active", "active", 0), Some(0));
    c.shutdown().await;
}

/// CreateTopics checks topic configs as Kafka does: an unknown name or a bad value is
/// INVALID_CONFIG (40) and nothing is created; known, valid ones are accepted.
#[tokio::test]
async fn create_topics_refuses_unknown_or_invalid_configs() {
    use kafkit_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafkit_protocol::messages::CreateTopicsRequest;
    use kafkit_protocol::str_bytes;
    let c = cluster().await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let create = |name: &str, configs: &[(&str, &str)]| {
        CreateTopicsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(str_bytes(k))
                                .with_value(Some(str_bytes(v)))
                        })
                        .collect(),
                )])
    };
    for (name, configs) in [
        ("unknown-config", &[("no.such.config", "1")][..]),
        ("bad-value", &[("retention.ms", "soon")][..]),
        ("bad-policy", &[("cleanup.policy", "forever")][..]),
    ] {
        let (_, resp) = conn.send(&create(name, configs)).await.unwrap();
        assert_eq!(resp.topics[0].error_code, 40, "{name}");
        assert!(c.partitions(name).is_none(), "{name} was created");
    }
    let ok = [("retention.ms", "3600000"), ("cleanup.policy", "delete")];
    let (_, resp) = conn.send(&create("good-configs", &ok)).await.unwrap();
    assert_eq!(resp.topics[0].error_code, 0);
    assert!(c.partitions("good-configs").is_some());
    c.shutdown().await;
}

/// Transactions are not implemented: a transactional InitProducerId gets
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), fatal for librdkafka and Java (not
/// INVALID_REQUEST, which librdkafka retried forever: 0129 hung).
#[tokio::test]
async fn transactional_producers_are_refused_with_a_fatal_error() {
    use kafkit_protocol::messages::{InitProducerIdRequest, TransactionalId};
    let c = cluster().await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(kafkit_protocol::str_bytes("tx"))))
        .with_transaction_timeout_ms(60_000);
    let (_, resp) = conn.send(&req).await.unwrap();
    assert_eq!(resp.error_code, 53);
    // Idempotent (non-transactional) producers still get an id.
    let (_, resp) = conn.send(&InitProducerIdRequest::default()).await.unwrap();
    assert_eq!(resp.error_code, 0);
    assert!(resp.producer_id.0 >= 0);
    c.shutdown().await;
}

/// Asked for authorized operations, the cluster reports what Kafka without an authorizer
/// reports: every operation the resource supports (librdkafka's 0081 checks these).
#[tokio::test]
async fn authorized_operations_are_all_allowed() {
    use kafkit_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafkit_protocol::messages::{DescribeClusterRequest, DescribeGroupsRequest, GroupId};
    let c = cluster().await;
    c.create_topic("ops", 1).unwrap();
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("ops")))
        ]))
        .with_include_topic_authorized_operations(true);
    let (_, md) = conn.send(&req).await.unwrap();
    // READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS
    assert_eq!(md.topics[0].topic_authorized_operations, 3576);
    let (_, dc) = conn
        .send(&DescribeClusterRequest::default().with_include_cluster_authorized_operations(true))
        .await
        .unwrap();
    assert_eq!(dc.cluster_authorized_operations, 8096);
    let (_, dg) = conn
        .send(
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(kafkit_protocol::str_bytes("g"))])
                .with_include_authorized_operations(true),
        )
        .await
        .unwrap();
    assert_eq!(dg.groups[0].authorized_operations, 328);
    c.shutdown().await;
}

/// ListGroups v5 (KIP-848's type filter): every group here is "classic".
#[tokio::test]
async fn list_groups_v5_filters_by_type() {
    use kafkit_protocol::messages::ListGroupsRequest;
    use kafkit_protocol::str_bytes;
    let c = cluster().await;
    c.create_topic_with("typed", 1, 3).unwrap();
    let admin = kafkit::Admin::new(c.addrs()).unwrap();
    admin
        .commit_group_offsets(
            "g-typed",
            "typed",
            &std::collections::BTreeMap::from([(0, 0)]),
        )
        .await
        .unwrap();
    let mut found = Vec::new();
    for addr in c.addrs() {
        let conn = Connection::connect(&addr, conn_config()).await.unwrap();
        for filter in [vec![], vec!["classic"], vec!["consumer"]] {
            let req = ListGroupsRequest::default()
                .with_types_filter(filter.iter().map(|t| str_bytes(t)).collect());
            let (_, resp) = conn.send(&req).await.unwrap();
            for g in resp.groups {
                found.push((
                    filter.clone(),
                    g.group_id.0.to_string(),
                    g.group_type.to_string(),
                ));
            }
        }
    }
    found.sort();
    assert_eq!(
        found,
        vec![
            (vec![], "g-typed".to_string(), "classic".to_string()),
            (
                vec!["classic"],
                "g-typed".to_string(),
                "classic".to_string()
            ),
        ]
    );
    c.shutdown().await;
}

/// CreateTopics with a manual replica assignment: the topic gets exactly those replicas (the
/// first of each list leads), keeps them across a restart and can grow; bad assignments are
/// INVALID_REPLICA_ASSIGNMENT (39), or INVALID_REQUEST (42) with counts set as well.
#[tokio::test]
async fn create_topics_with_a_manual_assignment() {
    use kafkit_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    use kafkit_protocol::messages::CreateTopicsRequest;
    let dir = tempfile::tempdir().unwrap();
    let c = cluster_in(dir.path()).await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let create = |name: &str, parts: i32, rf: i16, a: &[&[i32]]| {
        CreateTopicsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(parts)
                .with_replication_factor(rf)
                .with_assignments(
                    a.iter()
                        .enumerate()
                        .map(|(i, b)| {
                            CreatableReplicaAssignment::default()
                                .with_partition_index(i as i32)
                                .with_broker_ids(b.iter().map(|x| BrokerId(*x)).collect())
                        })
                        .collect(),
                )])
    };
    let wanted: &[&[i32]] = &[&[2, 3], &[3, 1], &[1, 2], &[2, 1], &[3, 2]];
    for (name, parts, rf, a, code) in [
        ("dup-broker", -1, -1, &[&[1, 1][..]][..], 39),
        ("unknown-broker", -1, -1, &[&[1, 9][..]][..], 39),
        ("uneven", -1, -1, &[&[1, 2][..], &[3][..]][..], 39),
        ("counts-too", 2, -1, &[&[1, 2][..], &[2, 3][..]][..], 42),
        ("manual", -1, -1, wanted, 0),
    ] {
        let (_, resp) = conn.send(&create(name, parts, rf, a)).await.unwrap();
        assert_eq!(resp.topics[0].error_code, code, "{name}");
    }
    async fn replicas(c: &kafkit_broker::Cluster) -> Vec<(i32, Vec<i32>)> {
        let md = topic_metadata(c, "manual").await;
        let mut v: Vec<_> = md
            .partitions
            .iter()
            .map(|p| {
                (
                    p.leader_id.0,
                    p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                )
            })
            .collect();
        v.truncate(5);
        v
    }
    let expect: Vec<(i32, Vec<i32>)> = wanted.iter().map(|a| (a[0], a.to_vec())).collect();
    assert_eq!(replicas(&c).await, expect);
    c.shutdown().await;
    let c = cluster_in(dir.path()).await;
    assert_eq!(replicas(&c).await, expect, "kept across a restart");
    let admin = kafkit::Admin::new(c.addrs()).unwrap();
    admin.create_partitions("manual", 8).await.unwrap();
    assert_eq!(c.partitions("manual").unwrap().len(), 8);
    assert_eq!(replicas(&c).await, expect);
    c.shutdown().await;
}

/// AlterConfigs and IncrementalAlterConfigs on a topic: checked like CreateTopics, shown by
/// DescribeConfigs as TOPIC_CONFIG, applied (`max.message.bytes` here), kept across a
/// restart; broker configs cannot be changed (INVALID_REQUEST).
#[tokio::test]
async fn topic_configs_can_be_altered_and_are_applied() {
    use kafkit_protocol::messages::alter_configs_request::{
        AlterConfigsResource, AlterableConfig as Plain,
    };
    use kafkit_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafkit_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource as IncResource, AlterableConfig,
    };
    use kafkit_protocol::messages::{
        AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
    };
    use kafkit_protocol::str_bytes;

    let dir = tempfile::tempdir().unwrap();
    let c = cluster_in(dir.path()).await;
    c.create_topic_with("conf", 1, 3).unwrap();
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let inc = |ops: &[(&str, i8, &str)], validate_only: bool| {
        IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![IncResource::default()
                .with_resource_type(2)
                .with_resource_name(str_bytes("conf"))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(str_bytes(k))
                                .with_config_operation(*op)
                                .with_value(Some(str_bytes(v)))
                        })
                        .collect(),
                )])
    };
    let replace = |resource_type: i8, name: &str, configs: &[(&str, &str)]| {
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(name))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        Plain::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(v)))
                    })
                    .collect(),
            )])
    };
    async fn described(conn: &Connection) -> Vec<(String, String, i8)> {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(kafkit_protocol::str_bytes("conf"))
                .with_configuration_keys(None),
        ]);
        let (_, resp) = conn.send(&req).await.unwrap();
        resp.results[0]
            .configs
            .iter()
            .filter(|c| c.config_source == 1)
            .map(|c| {
                (
                    c.name.to_string(),
                    c.value.as_ref().unwrap().to_string(),
                    c.config_source,
                )
            })
            .collect()
    }
    let code = |resp: &kafkit_protocol::messages::IncrementalAlterConfigsResponse| {
        resp.responses[0].error_code
    };
    // validate_only changes nothing.
    let (_, r) = conn
        .send(&inc(&[("max.message.bytes", 0, "500")], true))
        .await
        .unwrap();
    assert_eq!(code(&r), 0);
    assert_eq!(described(&conn).await, vec![]);
    let (_, r) = conn
        .send(&inc(
            &[
                ("max.message.bytes", 0, "500"),
                ("retention.ms", 0, "3600000"),
            ],
            false,
        ))
        .await
        .unwrap();
    assert_eq!(code(&r), 0);
    assert_eq!(
        described(&conn).await,
        vec![
            ("max.message.bytes".into(), "500".into(), 1),
            ("retention.ms".into(), "3600000".into(), 1)
        ]
    );
    // Applied: a batch over 500 bytes is too large now.
    let lconn = leader_conn(&c, "conf", 0).await;
    let big = kafkit_protocol::batch::encode_records(
        // Keyed: the topic turns compacted below, and compacted topics need keys.
        &[kafkit_protocol::batch::new_record(
            0,
            1,
            Some(bytes::Bytes::from("k")),
            Some(bytes::Bytes::from(vec![b'x'; 800])),
        )],
        kafkit_protocol::records::Compression::None,
    )
    .unwrap();
    let produce = |b: bytes::Bytes| produce_request("conf", -1, b);
    let (_, resp) = lconn.send(&produce(big.clone())).await.unwrap();
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 10);
    // Lists: APPEND and SUBTRACT.
    let (_, r) = conn
        .send(&inc(
            &[
                ("cleanup.policy", 2, "compact"),
                ("cleanup.policy", 3, "delete"),
                ("max.message.bytes", 1, ""),
            ],
            false,
        ))
        .await
        .unwrap();
    assert_eq!(code(&r), 0);
    let (_, resp) = lconn.send(&produce(big)).await.unwrap();
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    // Bad names or values change nothing.
    for bad in [("no.such.config", "1"), ("retention.ms", "soon")] {
        let (_, r) = conn.send(&replace(2, "conf", &[bad])).await.unwrap();
        assert_eq!(r.responses[0].error_code, 40, "{bad:?}");
    }
    let want = vec![
        ("cleanup.policy".to_string(), "compact".to_string(), 1),
        ("retention.ms".into(), "3600000".into(), 1),
    ];
    assert_eq!(described(&conn).await, want);
    // Static broker configs cannot be changed; unknown brokers do not exist.
    let (_, r) = conn
        .send(&replace(4, "1", &[("log.dirs", "/elsewhere")]))
        .await
        .unwrap();
    assert_eq!(r.responses[0].error_code, 40);
    let (_, r) = conn
        .send(&replace(4, "99", &[("min.insync.replicas", "2")]))
        .await
        .unwrap();
    assert_eq!(r.responses[0].error_code, 42);
    c.shutdown().await;
    let c = cluster_in(dir.path()).await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    assert_eq!(described(&conn).await, want, "kept across a restart");
    // AlterConfigs replaces the whole set.
    let (_, r) = conn
        .send(&replace(2, "conf", &[("min.insync.replicas", "2")]))
        .await
        .unwrap();
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        described(&conn).await,
        vec![("min.insync.replicas".into(), "2".into(), 1)]
    );
    c.shutdown().await;
}

/// CreatePartitions with explicit replicas for the new partitions (librdkafka's 0081).
#[tokio::test]
async fn create_partitions_with_assignments() {
    use kafkit_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    use kafkit_protocol::messages::CreatePartitionsRequest;
    let dir = tempfile::tempdir().unwrap();
    let c = cluster_in(dir.path()).await;
    c.create_topic_with("grow", 1, 2).unwrap();
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let grow = |count: i32, a: &[&[i32]]| {
        CreatePartitionsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name("grow"))
                .with_count(count)
                .with_assignments(Some(
                    a.iter()
                        .map(|r| {
                            CreatePartitionsAssignment::default()
                                .with_broker_ids(r.iter().map(|b| BrokerId(*b)).collect())
                        })
                        .collect(),
                ))])
    };
    for bad in [
        &[&[3, 1][..]][..],
        &[&[3][..], &[1][..]][..],
        &[&[3, 3][..], &[1, 2][..]][..],
    ] {
        let (_, r) = conn.send(&grow(3, bad)).await.unwrap();
        assert_eq!(r.results[0].error_code, 39, "{bad:?}");
    }
    let (_, r) = conn.send(&grow(3, &[&[3, 1], &[1, 2]])).await.unwrap();
    assert_eq!(r.results[0].error_code, 0);
    async fn replicas(c: &kafkit_broker::Cluster) -> Vec<Vec<i32>> {
        let mut parts = topic_metadata(c, "grow").await.partitions;
        parts.sort_by_key(|p| p.partition_index);
        parts
            .iter()
            .skip(1)
            .map(|p| p.replica_nodes.iter().map(|b| b.0).collect())
            .collect()
    }
    assert_eq!(replicas(&c).await, vec![vec![3, 1], vec![1, 2]]);
    c.shutdown().await;
    let c = cluster_in(dir.path()).await;
    assert_eq!(replicas(&c).await, vec![vec![3, 1], vec![1, 2]], "kept");
    c.shutdown().await;
}

/// A compacted topic refuses records without a key, naming them in `record_errors` (Kafka's
/// LogValidator; librdkafka's 0011 attributes the error per message from it).
#[tokio::test]
async fn compacted_topics_refuse_records_without_keys() {
    use kafkit_protocol::batch::{encode_records, new_record};
    use kafkit_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafkit_protocol::messages::CreateTopicsRequest;
    use kafkit_protocol::records::Compression;
    use kafkit_protocol::str_bytes;
    let c = cluster().await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("compacted"))
            .with_num_partitions(1)
            .with_replication_factor(3)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(str_bytes("cleanup.policy"))
                .with_value(Some(str_bytes("compact")))])]);
    let (_, resp) = conn.send(&req).await.unwrap();
    assert_eq!(resp.topics[0].error_code, 0);
    let lconn = leader_conn(&c, "compacted", 0).await;
    for codec in [Compression::None, Compression::Gzip] {
        let recs: Vec<_> = (0..5)
            .map(|i| {
                let key = (i % 2 == 0).then(|| bytes::Bytes::from(format!("k{i}")));
                new_record(i, 1, key, Some(bytes::Bytes::from("v")))
            })
            .collect();
        let batch = encode_records(&recs, codec).unwrap();
        let (_, resp) = lconn
            .send(&produce_request("compacted", -1, batch))
            .await
            .unwrap();
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 87);
        let idx: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(idx, vec![1, 3]);
    }
    assert_eq!(c.control().high_watermark("compacted", 0), Some(0));
    let keyed = encode_records(
        &[new_record(
            0,
            1,
            Some(bytes::Bytes::from("k")),
            Some(bytes::Bytes::from("v")),
        )],
        Compression::None,
    )
    .unwrap();
    let (_, resp) = lconn
        .send(&produce_request("compacted", -1, keyed))
        .await
        .unwrap();
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    c.shutdown().await;
}

/// CreateAcls, DescribeAcls and DeleteAcls with Kafka's rules: bad bindings refused one by
/// one (INVALID_REQUEST), LITERAL/PREFIXED/MATCH filters, ACLs kept across a restart.
#[tokio::test]
async fn acls_are_created_described_and_deleted() {
    use kafkit_protocol::messages::create_acls_request::AclCreation;
    use kafkit_protocol::messages::delete_acls_request::DeleteAclsFilter;
    use kafkit_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
    use kafkit_protocol::str_bytes;

    const TOPIC: i8 = 2;
    const GROUP: i8 = 3;
    const ANY: i8 = 1;
    const MATCH: i8 = 2;
    const LITERAL: i8 = 3;
    const PREFIXED: i8 = 4;
    const READ: i8 = 3;
    const WRITE: i8 = 4;
    const ALLOW: i8 = 3;
    let create = |rt: i8, name: &str, pt: i8, principal: &str, op: i8| {
        AclCreation::default()
            .with_resource_type(rt)
            .with_resource_name(str_bytes(name))
            .with_resource_pattern_type(pt)
            .with_principal(str_bytes(principal))
            .with_host(str_bytes("*"))
            .with_operation(op)
            .with_permission_type(ALLOW)
    };
    async fn describe(conn: &Connection, rt: i8, name: Option<&str>, pt: i8) -> Vec<String> {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(rt)
            .with_resource_name_filter(name.map(kafkit_protocol::str_bytes))
            .with_pattern_type_filter(pt)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1);
        let (_, resp) = conn.send(&req).await.unwrap();
        assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
        resp.resources
            .iter()
            .flat_map(|r| {
                r.acls.iter().map(move |a| {
                    format!(
                        "{}:{}:{} {} {}",
                        r.resource_type, r.pattern_type, r.resource_name, a.principal, a.operation
                    )
                })
            })
            .collect()
    }

    let dir = tempfile::tempdir().unwrap();
    let c = cluster_in(dir.path()).await;
    let conn = Connection::connect(&c.addrs()[1], conn_config())
        .await
        .unwrap();
    let (_, resp) = conn
        .send(&CreateAclsRequest::default().with_creations(vec![
            create(TOPIC, "orders", LITERAL, "User:alice", READ),
            create(TOPIC, "ord", PREFIXED, "User:bob", WRITE),
            create(GROUP, "g", LITERAL, "User:alice", READ),
            create(TOPIC, "x", MATCH, "User:alice", READ),
            create(TOPIC, "x", LITERAL, "alice", READ),
        ]))
        .await
        .unwrap();
    let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, 0, 0, 42, 42]);
    assert!(resp.results[4]
        .error_message
        .as_ref()
        .unwrap()
        .contains("principal"));

    assert_eq!(
        describe(&conn, TOPIC, Some("orders"), MATCH).await,
        vec!["2:4:ord User:bob 4", "2:3:orders User:alice 3"]
    );
    assert_eq!(describe(&conn, ANY, None, ANY).await.len(), 3, "everything");
    assert_eq!(
        describe(&conn, TOPIC, Some("ord"), PREFIXED).await,
        vec!["2:4:ord User:bob 4"]
    );
    let (_, bad) = conn
        .send(&DescribeAclsRequest::default().with_resource_type_filter(0))
        .await
        .unwrap();
    assert_eq!(bad.error_code, 42, "an UNKNOWN filter is refused");

    c.shutdown().await;
    let c = cluster_in(dir.path()).await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    assert_eq!(describe(&conn, ANY, None, ANY).await.len(), 3, "restart");
    let (_, resp) = conn
        .send(&DeleteAclsRequest::default().with_filters(vec![
            DeleteAclsFilter::default()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(str_bytes("orders")))
                .with_pattern_type_filter(MATCH)
                .with_principal_filter(Some(str_bytes("User:alice")))
                .with_host_filter(None)
                .with_operation(ANY)
                .with_permission_type(ANY),
            DeleteAclsFilter::default().with_resource_type_filter(0),
        ]))
        .await
        .unwrap();
    assert_eq!(resp.filter_results[0].error_code, 0);
    assert_eq!(resp.filter_results[0].matching_acls.len(), 1);
    assert_eq!(
        &*resp.filter_results[0].matching_acls[0].resource_name,
        "orders"
    );
    assert_eq!(resp.filter_results[1].error_code, 42);
    assert_eq!(
        describe(&conn, ANY, None, ANY).await,
        vec!["2:4:ord User:bob 4", "3:3:g User:alice 3"]
    );
    c.shutdown().await;
}

/// Dynamic broker configs (AlterConfigs on BROKER resources): the cluster-wide default and a
/// per-broker value of a topic setting apply to topics without their own override, show in
/// DescribeConfigs with Kafka's names and sources, and are kept across a restart.
#[tokio::test]
async fn dynamic_broker_configs_apply_to_topics_without_overrides() {
    use kafkit_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafkit_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafkit_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
    use kafkit_protocol::str_bytes;

    let set = |broker: &str, name: &str, op: i8, value: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(str_bytes(broker))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(str_bytes(name))
                    .with_config_operation(op)
                    .with_value(Some(str_bytes(value)))]),
        ])
    };
    async fn described(conn: &Connection, rt: i8, name: &str, key: &str) -> (String, i8) {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(rt)
                .with_resource_name(kafkit_protocol::str_bytes(name))
                .with_configuration_keys(None),
        ]);
        let (_, resp) = conn.send(&req).await.unwrap();
        let c = resp.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .unwrap_or_else(|| panic!("{key} not described for {name}"));
        (c.value.as_ref().unwrap().to_string(), c.config_source)
    }
    let record = |n: usize| {
        kafkit_protocol::batch::encode_records(
            &[kafkit_protocol::batch::new_record(
                0,
                1,
                None,
                Some(bytes::Bytes::from(vec![b'x'; n])),
            )],
            kafkit_protocol::records::Compression::None,
        )
        .unwrap()
    };

    let dir = tempfile::tempdir().unwrap();
    let c = cluster_in(dir.path()).await;
    c.create_topic_with("plain", 1, 3).unwrap();
    c.create_topic_with("own", 1, 3).unwrap();
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let code =
        |r: &kafkit_protocol::messages::IncrementalAlterConfigsResponse| r.responses[0].error_code;
    let (_, r) = conn
        .send(&set("", "message.max.bytes", 0, "500"))
        .await
        .unwrap();
    assert_eq!(code(&r), 0);
    let (_, r) = conn
        .send(&set("", "message.max.bytes", 0, "small"))
        .await
        .unwrap();
    assert_eq!(code(&r), 40, "a bad value");
    let topic_own = kafkit_protocol::messages::incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(str_bytes("own"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(str_bytes("max.message.bytes"))
            .with_config_operation(0)
            .with_value(Some(str_bytes("100000")))]);
    let (_, r) = conn
        .send(&IncrementalAlterConfigsRequest::default().with_resources(vec![topic_own]))
        .await
        .unwrap();
    assert_eq!(code(&r), 0);
    for (topic, want) in [("plain", 10), ("own", 0)] {
        let lconn = leader_conn(&c, topic, 0).await;
        let (_, resp) = lconn
            .send(&produce_request(topic, -1, record(800)))
            .await
            .unwrap();
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code, want,
            "{topic}"
        );
    }
    assert_eq!(
        described(&conn, 2, "plain", "max.message.bytes").await,
        ("500".into(), 3)
    );
    assert_eq!(
        described(&conn, 4, "1", "message.max.bytes").await,
        ("500".into(), 3)
    );
    // A per-broker value beats the default: the leader's counts.
    let leader = c.partitions("plain").unwrap()[0].0;
    let (_, r) = conn
        .send(&set(
            &leader.to_string(),
            "log.cleanup.policy",
            2,
            "compact",
        ))
        .await
        .unwrap();
    assert_eq!(code(&r), 0);
    assert_eq!(
        described(&conn, 4, &leader.to_string(), "log.cleanup.policy").await,
        ("delete,compact".into(), 2)
    );
    let lconn = leader_conn(&c, "plain", 0).await;
    let (_, resp) = lconn
        .send(&produce_request("plain", -1, record(10)))
        .await
        .unwrap();
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 87,
        "compacted by the broker default: keyless records are INVALID_RECORD"
    );

    c.shutdown().await;
    let c = cluster_in(dir.path()).await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    assert_eq!(
        described(&conn, 4, "", "message.max.bytes").await,
        ("500".into(), 3),
        "kept across a restart"
    );
    let (_, r) = conn
        .send(&set(&leader.to_string(), "log.cleanup.policy", 1, ""))
        .await
        .unwrap();
    assert_eq!(code(&r), 0);
    let (_, r) = conn
        .send(&set("", "message.max.bytes", 1, ""))
        .await
        .unwrap();
    assert_eq!(code(&r), 0);
    let lconn = leader_conn(&c, "plain", 0).await;
    let (_, resp) = lconn
        .send(&produce_request("plain", -1, record(800)))
        .await
        .unwrap();
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    c.shutdown().await;
}

/// AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554): upserts and deletes
/// with Kafka's per-user errors, iteration counts described (never the keys), kept across a
/// restart.
#[tokio::test]
async fn scram_credentials_are_altered_and_described() {
    use kafkit_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafkit_protocol::messages::describe_user_scram_credentials_request::UserName;
    use kafkit_protocol::messages::{
        AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
    };
    use kafkit_protocol::str_bytes;

    let upsert = |user: &str, mechanism: i8, iterations: i32| {
        ScramCredentialUpsertion::default()
            .with_name(str_bytes(user))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(bytes::Bytes::from_static(b"0123456789abcdef"))
            .with_salted_password(bytes::Bytes::from(vec![7u8; 32]))
    };
    async fn describe(
        conn: &Connection,
        users: Option<&[&str]>,
    ) -> Vec<(String, i16, Vec<(i8, i32)>)> {
        let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
            u.iter()
                .map(|n| UserName::default().with_name(kafkit_protocol::str_bytes(n)))
                .collect()
        }));
        let (_, resp) = conn.send(&req).await.unwrap();
        resp.results
            .iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.error_code,
                    r.credential_infos
                        .iter()
                        .map(|c| (c.mechanism, c.iterations))
                        .collect(),
                )
            })
            .collect()
    }

    let dir = tempfile::tempdir().unwrap();
    let c = cluster_in(dir.path()).await;
    let conn = Connection::connect(&c.addrs()[2], conn_config())
        .await
        .unwrap();
    assert_eq!(
        describe(&conn, Some(&["alice"])).await,
        vec![("alice".into(), 91, vec![])],
        "RESOURCE_NOT_FOUND"
    );
    let (_, resp) = conn
        .send(
            &AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                upsert("alice", 1, 10000),
                upsert("bob", 1, 1000),
                upsert("carol", 3, 8192),
            ]),
        )
        .await
        .unwrap();
    let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, 93, 33]);
    let (_, resp) = conn
        .send(
            &AlterUserScramCredentialsRequest::default()
                .with_upsertions(vec![upsert("alice", 2, 4096)]),
        )
        .await
        .unwrap();
    assert_eq!(resp.results[0].error_code, 0);
    c.shutdown().await;

    let c = cluster_in(dir.path()).await;
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    assert_eq!(
        describe(&conn, None).await,
        vec![("alice".into(), 0, vec![(1, 10000), (2, 4096)])]
    );
    let (_, resp) = conn
        .send(
            &AlterUserScramCredentialsRequest::default().with_deletions(vec![
                ScramCredentialDeletion::default()
                    .with_name(str_bytes("alice"))
                    .with_mechanism(1),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(resp.results[0].error_code, 0);
    assert_eq!(
        describe(&conn, Some(&["alice"])).await,
        vec![("alice".into(), 0, vec![(2, 4096)])]
    );
    c.shutdown().await;
}

/// Incremental fetch sessions (KIP-227) over TCP: a full fetch opens a session, later
/// requests carry only changed partitions and get only partitions with news, forgotten
/// partitions stay out, wrong epochs and unknown sessions are refused (71, 70), and a leader
/// epoch newer than the partition's is UNKNOWN_LEADER_EPOCH.
#[tokio::test]
async fn fetch_sessions_send_only_what_changed() {
    use kafkit_protocol::messages::fetch_request::ForgottenTopic;
    let c = kafkit_broker::Cluster::builder()
        .brokers(1)
        .start()
        .await
        .unwrap();
    c.create_topic("sess", 3).unwrap();
    let conn = Connection::connect(&c.addrs()[0], conn_config())
        .await
        .unwrap();
    let produce = |p: i32, n: usize| {
        let mut req = produce_request(
            "sess",
            -1,
            kafkit_protocol::batch::encode_records(
                &(0..n)
                    .map(|i| {
                        kafkit_protocol::batch::new_record(
                            i as i64,
                            1,
                            None,
                            Some(bytes::Bytes::from("v")),
                        )
                    })
                    .collect::<Vec<_>>(),
                kafkit_protocol::records::Compression::None,
            )
            .unwrap(),
        );
        req.topic_data[0].partition_data[0].index = p;
        req
    };
    let (_, r) = conn.send(&produce(0, 5)).await.unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let request = |id: i32, epoch: i32, parts: &[(i32, i64)]| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_id(id)
            .with_session_epoch(epoch)
            .with_topics(if parts.is_empty() {
                vec![]
            } else {
                vec![FetchTopic::default()
                    .with_topic(topic_name("sess"))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|&(p, o)| {
                                FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(o)
                                    .with_partition_max_bytes(1 << 20)
                            })
                            .collect(),
                    )]
            })
    };
    let answered = |r: &kafkit_protocol::messages::FetchResponse| -> Vec<(i32, usize)> {
        r.responses
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.records.as_ref().map_or(0, |b| b.len())))
            })
            .collect()
    };
    // Full fetch: a session, every partition answered.
    let (_, r) = conn
        .send(&request(0, 0, &[(0, 0), (1, 0), (2, 0)]))
        .await
        .unwrap();
    let id = r.session_id;
    assert!(id > 0 && r.error_code == 0);
    let got = answered(&r);
    assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(got[0].1 > 0 && got[1].1 == 0);
    // Partition 0 moves on; nothing new anywhere: an empty answer.
    let (_, r) = conn.send(&request(id, 1, &[(0, 5)])).await.unwrap();
    assert_eq!((r.error_code, r.session_id), (0, id));
    assert_eq!(answered(&r), vec![]);
    // Records on partition 2 only: only partition 2, without being asked again.
    conn.send(&produce(2, 3)).await.unwrap();
    let (_, r) = conn.send(&request(id, 2, &[])).await.unwrap();
    let got = answered(&r);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 2);
    assert!(got[0].1 > 0);
    // Forget partition 1; news on it is not sent.
    let mut req = request(id, 3, &[(2, 3)]);
    req.forgotten_topics_data = vec![ForgottenTopic::default()
        .with_topic(topic_name("sess"))
        .with_partitions(vec![1])];
    let (_, r) = conn.send(&req).await.unwrap();
    assert_eq!(answered(&r), vec![]);
    conn.send(&produce(1, 2)).await.unwrap();
    let (_, r) = conn.send(&request(id, 4, &[])).await.unwrap();
    assert_eq!(answered(&r), vec![]);
    // Refusals.
    let (_, r) = conn.send(&request(id, 9, &[])).await.unwrap();
    assert_eq!(r.error_code, 71, "INVALID_FETCH_SESSION_EPOCH");
    let (_, r) = conn.send(&request(id + 1000, 1, &[])).await.unwrap();
    assert_eq!(r.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
    // A sessionless fetch (id 0, epoch -1) still works, with a leader epoch from the future.
    let mut req = request(0, -1, &[(0, 0)]);
    req.topics[0].partitions[0].current_leader_epoch = 1_000_000;
    let (_, r) = conn.send(&req).await.unwrap();
    assert_eq!(r.session_id, 0);
    assert_eq!(r.responses[0].partitions[0].error_code, 75);
    c.shutdown().await;
}
