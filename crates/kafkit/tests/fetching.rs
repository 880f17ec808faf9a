//! The reader's fetching at scale (issue 13): one fetch loop and connection per broker,
//! incremental fetch sessions, memory bounded by `max_buffered_bytes` rather than by the
//! partition count.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use kafkit::{Message, Reader, ReaderConfig, Writer, WriterConfig};

async fn write(c: &kafkit_broker::Cluster, topic: &str, n: usize, value_len: usize) {
    let w = Writer::new(WriterConfig {
        brokers: c.addrs(),
        topic: topic.into(),
        // Batches below max_partition_bytes: no batch is returned whole past a limit (KIP-74).
        batch_size: (100_000 / (value_len + 20)).clamp(1, 1000),
        ..Default::default()
    })
    .unwrap();
    let value = "x".repeat(value_len);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let msgs = chunk
            .iter()
            .map(|i| Message::new(format!("k{i}"), format!("{i}:{value}")))
            .collect();
        w.write_messages(msgs).await.unwrap();
    }
    w.close().await.unwrap();
}

/// 60 partitions over 3 brokers, read by one group member while each broker allows at most 5
/// connections from this address: the old one-connection-per-partition reader could not even
/// start; now every record arrives once, in order per partition, and the brokers hold fetch
/// sessions for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fetch_connection_per_broker_reads_many_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let c = kafkit_broker::Cluster::builder()
        .brokers(3)
        .data_dir(dir.path())
        .configure(|cfg| cfg.max_connections_per_ip = 5)
        .start()
        .await
        .unwrap();
    c.create_topic_with("wide", 60, 1).unwrap();
    write(&c, "wide", 6000, 10).await;
    let r = Reader::new(ReaderConfig {
        group_id: Some("wide-group".into()),
        max_wait: Duration::from_millis(500),
        ..reader_config(&c, "wide", None)
    })
    .unwrap();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < 6000 {
        let m = tokio::time::timeout_at(deadline.into(), r.fetch_message())
            .await
            .expect("all 6000 records within 60 s")
            .unwrap();
        let want = next.entry(m.partition).or_insert(0);
        assert_eq!(m.offset, *want, "partition {} in order", m.partition);
        *want += 1;
        seen += 1;
    }
    assert_eq!(next.len(), 60);
    assert!(c.fetch_sessions() >= 1, "the reader fetches in sessions");
    let stats = r.stats();
    assert!(
        stats.fetches < 6000 / 2,
        "{} fetches for 60 partitions: one request carries many",
        stats.fetches
    );
    r.close().await.unwrap();
    c.shutdown().await;
}

/// A slow application: with 20 MiB waiting over 20 partitions led by 3 brokers, the reader
/// holds at most `max_buffered_bytes`: every broker's fetch reserves its `max_bytes` from the
/// budget first. (A record batch larger than the limits is still returned whole, KIP-74, so
/// the true bound is the budget plus one batch per broker; these batches are ~100 KB.)
/// Everything is read once the application goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_bytes_stay_within_the_budget_whatever_the_partition_count() {
    let c = cluster().await;
    c.create_topic_with("deep", 20, 1).unwrap();
    write(&c, "deep", 2000, 10 * 1024).await;
    let budget = 2 << 20;
    let max_bytes = 1 << 20;
    let r = Reader::new(ReaderConfig {
        group_id: Some("deep-group".into()),
        max_buffered_bytes: budget,
        max_partition_bytes: 256 << 10,
        max_bytes,
        max_wait: Duration::from_millis(200),
        ..reader_config(&c, "deep", None)
    })
    .unwrap();
    r.fetch_message().await.unwrap();
    let mut peak = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(r.stats().buffered_bytes);
    }
    assert!(peak > 0, "the reader prefetches");
    assert!(
        peak <= budget as u64,
        "buffered {peak} bytes with a budget of {budget}"
    );
    let mut count = 1;
    while count < 2000 {
        tokio::time::timeout(Duration::from_secs(30), r.fetch_message())
            .await
            .expect("the rest arrives")
            .unwrap();
        count += 1;
    }
    r.close().await.unwrap();
    c.shutdown().await;
}
