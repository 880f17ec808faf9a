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

/// Reads `n` records, checking each partition's offsets follow on from `next`.
async fn read_in_order(r: &Reader, next: &mut BTreeMap<i32, i64>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for _ in 0..n {
        let m = tokio::time::timeout_at(deadline.into(), r.fetch_message())
            .await
            .expect("every record in time")
            .unwrap();
        let want = next.entry(m.partition).or_insert(0);
        assert_eq!(m.offset, *want, "partition {} in order, once", m.partition);
        *want += 1;
    }
}

/// 1,000 partitions over 3 brokers, read by one group member while each broker allows at most
/// 4 connections from this address (metadata, fetch, coordinator, commit): the old
/// one-connection-per-partition reader could not start. Every record arrives once, in order
/// per partition. In steady state the fetch sessions carry no partition without news (counted
/// on the brokers); when the brokers forget every session (FETCH_SESSION_ID_NOT_FOUND), the
/// reader starts new ones and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fetch_connection_per_broker_reads_many_partitions_in_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let c = kafkit_broker::Cluster::builder()
        .brokers(3)
        .data_dir(dir.path())
        .configure(|cfg| cfg.max_connections_per_ip = 4)
        .start()
        .await
        .unwrap();
    c.create_topic_with("wide", 1000, 1).unwrap();
    write(&c, "wide", 5000, 10).await;
    // The writer's connections are gone before the reader starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = Reader::new(ReaderConfig {
        group_id: Some("wide-group".into()),
        max_wait: Duration::from_millis(100),
        ..reader_config(&c, "wide", None)
    })
    .unwrap();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    read_in_order(&r, &mut next, 5000).await;
    assert!(next.len() > 950, "records from {} partitions", next.len());
    let stats = r.stats();
    assert!(
        stats.fetches < 1000,
        "{} fetch requests for 1,000 partitions: each carries many",
        stats.fetches
    );
    // Steady state, nothing new: requests go on, carrying no partitions.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = c.control().fetch_session_stats();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = c.control().fetch_session_stats();
    assert!(
        after.0 > before.0 + 3,
        "incremental fetches: {before:?} -> {after:?}"
    );
    assert_eq!(after.1, before.1, "no partition without news is sent again");
    // The brokers forget every session; more records still arrive once each.
    c.control().drop_fetch_sessions();
    write(&c, "wide", 2000, 10).await;
    read_in_order(&r, &mut next, 2000).await;
    assert!(c.fetch_sessions() >= 1, "new sessions");
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

/// Several tasks reading one reader at once (the per-message path takes a plain lock for one
/// message; waiting for the next batch takes the channel's): every record is handed out
/// exactly once, and within a partition in offset order per task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_each_get_distinct_records() {
    let c = cluster().await;
    c.create_topic_with("shared-reader", 6, 1).unwrap();
    write(&c, "shared-reader", 6000, 10).await;
    let r = std::sync::Arc::new(
        Reader::new(ReaderConfig {
            group_id: Some("shared-reader-group".into()),
            max_wait: Duration::from_millis(100),
            ..reader_config(&c, "shared-reader", None)
        })
        .unwrap(),
    );
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..1500 {
                    let m = tokio::time::timeout(Duration::from_secs(60), r.fetch_message())
                        .await
                        .expect("a record in time")
                        .unwrap();
                    got.push((m.partition, m.offset));
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for &(p, o) in &got {
            let prev = last.insert(p, o);
            assert!(
                prev.is_none_or(|prev| prev < o),
                "partition {p} in order per task"
            );
        }
        all.extend(got);
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "no record handed out twice");
    assert_eq!(n, 6000);
    assert_eq!(r.lag().len(), 6, "a lag for every partition");
    assert!(
        r.lag().values().all(|&l| l == 0),
        "positions follow what was handed out: {:?}",
        r.lag()
    );
    r.close().await.unwrap();
    c.shutdown().await;
}
