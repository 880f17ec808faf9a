#![allow(dead_code)]

use std::time::Duration;

use kafkit::{ReaderConfig, WriterConfig};
use kafkit_broker::Cluster;

/// Logs to stderr when `RUST_LOG` is set (e.g. `RUST_LOG=kafkit=debug cargo test`).
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

pub async fn cluster() -> Cluster {
    init_logs();
    Cluster::builder()
        .brokers(3)
        .start()
        .await
        .expect("cluster starts")
}

/// A 3-broker cluster with some settings changed (limits, timeouts, ...).
pub async fn cluster_with(f: impl FnOnce(&mut kafkit_broker::ClusterConfig)) -> Cluster {
    init_logs();
    Cluster::builder()
        .brokers(3)
        .configure(f)
        .start()
        .await
        .expect("cluster starts")
}

/// A connection config for raw-protocol tests.
pub fn conn_config() -> kafkit::conn::ConnConfig {
    kafkit::conn::ConnConfig {
        client_id: "kafkit-test".into(),
        dial_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

/// A Produce request carrying `records` for partition 0 of `topic`.
pub fn produce_request(
    topic: &str,
    acks: i16,
    records: bytes::Bytes,
) -> kafkit_protocol::messages::ProduceRequest {
    use kafkit_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    kafkit_protocol::messages::ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(kafkit_protocol::topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

pub fn writer_config(c: &Cluster, topic: &str) -> WriterConfig {
    WriterConfig {
        brokers: c.addrs(),
        topic: topic.into(),
        ..Default::default()
    }
}

pub fn reader_config(c: &Cluster, topic: &str, group: Option<&str>) -> ReaderConfig {
    ReaderConfig {
        brokers: c.addrs(),
        topic: topic.into(),
        group_id: group.map(Into::into),
        max_wait: Duration::from_millis(500),
        heartbeat_interval: Duration::from_millis(300),
        session_timeout: Duration::from_secs(6),
        rebalance_timeout: Duration::from_secs(6),
        ..Default::default()
    }
}

/// Runs `f` with a timeout so a hang fails the test instead of stalling CI.
pub async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s: {what}"))
}

/// A 3-broker cluster keeping its data in `dir` (start it again on the same `dir` to restart).
pub async fn cluster_in(dir: &std::path::Path) -> Cluster {
    init_logs();
    Cluster::builder()
        .brokers(3)
        .data_dir(dir)
        .start()
        .await
        .expect("cluster starts")
}

/// A connection to the leader of `topic`/`partition`.
pub async fn leader_conn(c: &Cluster, topic: &str, partition: i32) -> kafkit::conn::Connection {
    let leader = c
        .control()
        .leader(topic, partition)
        .expect("partition exists");
    kafkit::conn::Connection::connect(&c.addrs()[(leader - 1) as usize], conn_config())
        .await
        .expect("connect to the leader")
}

/// Metadata of one topic, from the first broker.
pub async fn topic_metadata(
    c: &Cluster,
    topic: &str,
) -> kafkit_protocol::messages::metadata_response::MetadataResponseTopic {
    use kafkit_protocol::messages::metadata_request::MetadataRequestTopic;
    let conn = kafkit::conn::Connection::connect(&c.addrs()[0], conn_config())
        .await
        .expect("connect");
    let req = kafkit_protocol::messages::MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(kafkit_protocol::topic_name(topic))),
    ]));
    let (_, md) = conn.send(&req).await.expect("metadata");
    md.topics.into_iter().next().expect("the topic asked for")
}
