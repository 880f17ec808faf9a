//! The walking skeleton's end-to-end tests, over TCP against the embedded cluster.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::*;
use kafkit::{Message, Reader, RequiredAcks, StartOffset, Writer};

fn value_index(m: &Message) -> u64 {
    let v = String::from_utf8(m.value.clone().unwrap().to_vec()).unwrap();
    v.strip_prefix("value-").unwrap().parse().unwrap()
}

#[tokio::test]
async fn thousand_keyed_messages_read_once_in_partition_order() {
    let c = cluster().await;
    c.create_topic("keyed", 3).unwrap();
    let w = Writer::new(kafkit::WriterConfig {
        required_acks: RequiredAcks::All,
        ..writer_config(&c, "keyed")
    })
    .unwrap();
    for chunk in 0..10u64 {
        let msgs = (chunk * 100..(chunk + 1) * 100)
            .map(|i| Message::new(format!("key-{}", i % 37), format!("value-{i}")))
            .collect();
        within(20, "write", w.write_messages(msgs)).await.unwrap();
    }
    // Every partition got a share, and the broker's logs hold exactly 1000 records.
    let parts = c.partitions("keyed").unwrap();
    assert_eq!(parts.iter().map(|(_, end)| end).sum::<i64>(), 1000);
    assert!(parts.iter().all(|(_, end)| *end > 0), "{parts:?}");

    let r = Reader::new(reader_config(&c, "keyed", Some("g-keyed"))).unwrap();
    let mut seen = BTreeSet::new();
    let mut last_in_partition: HashMap<i32, (i64, u64)> = HashMap::new();
    let mut partition_of_key: HashMap<String, i32> = HashMap::new();
    for _ in 0..1000 {
        let m = within(20, "read", r.read_message()).await.unwrap();
        let i = value_index(&m);
        assert!(seen.insert(i), "message {i} delivered twice");
        if let Some((off, prev)) = last_in_partition.insert(m.partition, (m.offset, i)) {
            assert!(
                m.offset > off && i > prev,
                "out of order in partition {}: {prev}@{off} then {i}@{}",
                m.partition,
                m.offset
            );
        }
        let key = String::from_utf8(m.key.clone().unwrap().to_vec()).unwrap();
        let p = *partition_of_key.entry(key.clone()).or_insert(m.partition);
        assert_eq!(p, m.partition, "key {key} in two partitions");
        let expected = (kafkit::writer::balancer::murmur2(key.as_bytes()) & 0x7fff_ffff) % 3;
        assert_eq!(m.partition, expected, "key {key} not where murmur2 puts it");
    }
    assert_eq!(seen.len(), 1000);
    // Nothing more arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(800), r.fetch_message())
            .await
            .is_err()
    );
    within(15, "close", r.close()).await.unwrap();
    // close() committed the last message: committed offsets cover every partition's end.
    for (p, (_, end)) in c.partitions("keyed").unwrap().iter().enumerate() {
        assert_eq!(c.committed_offset("g-keyed", "keyed", p as i32), Some(*end));
    }
    w.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test]
async fn group_resumes_from_committed_and_last_sees_only_new() {
    let c = cluster().await;
    c.create_topic("resume", 3).unwrap();
    let w = Writer::new(writer_config(&c, "resume")).unwrap();
    let msgs = (0..10)
        .map(|i| Message::new(format!("k{i}"), format!("value-{i}")))
        .collect();
    w.write_messages(msgs).await.unwrap();

    let a = Reader::new(reader_config(&c, "resume", Some("g-resume"))).unwrap();
    let mut first = BTreeSet::new();
    for _ in 0..5 {
        first.insert(value_index(
            &within(20, "read a", a.read_message()).await.unwrap(),
        ));
    }
    within(15, "close a", a.close()).await.unwrap();

    let b = Reader::new(reader_config(&c, "resume", Some("g-resume"))).unwrap();
    let mut second = BTreeSet::new();
    for _ in 0..5 {
        second.insert(value_index(
            &within(20, "read b", b.read_message()).await.unwrap(),
        ));
    }
    assert!(
        first.is_disjoint(&second),
        "redelivered: {:?}",
        first.intersection(&second).collect::<Vec<_>>()
    );
    let all: BTreeSet<u64> = first.union(&second).copied().collect();
    assert_eq!(all, (0..10).collect());
    assert!(
        tokio::time::timeout(Duration::from_millis(800), b.fetch_message())
            .await
            .is_err()
    );
    within(15, "close b", b.close()).await.unwrap();

    // A new group starting at Last sees only what is written after it joined.
    let l = Reader::new(kafkit::ReaderConfig {
        start_offset: StartOffset::Last,
        ..reader_config(&c, "resume", Some("g-last"))
    })
    .unwrap();
    within(20, "assignment", async {
        while l.assignment().len() < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        l.assignment().values().sum::<i64>(),
        10,
        "Last starts at the log end"
    );
    let msgs = (10..13)
        .map(|i| Message::new(format!("k{i}"), format!("value-{i}")))
        .collect();
    w.write_messages(msgs).await.unwrap();
    let mut got = BTreeSet::new();
    for _ in 0..3 {
        got.insert(value_index(
            &within(20, "read last", l.read_message()).await.unwrap(),
        ));
    }
    assert_eq!(got, BTreeSet::from([10, 11, 12]));
    within(15, "close l", l.close()).await.unwrap();
    c.shutdown().await;
}

#[tokio::test]
async fn records_and_offsets_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = kafkit_broker::Cluster::builder()
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    c.create_topic("durable", 3).unwrap();
    let w = Writer::new(writer_config(&c, "durable")).unwrap();
    w.write_messages(
        (0..20)
            .map(|i| Message::new(format!("k{i}"), format!("value-{i}")))
            .collect(),
    )
    .await
    .unwrap();
    let r = Reader::new(reader_config(&c, "durable", Some("g-durable"))).unwrap();
    let mut first = BTreeSet::new();
    for _ in 0..8 {
        first.insert(value_index(
            &within(20, "read", r.read_message()).await.unwrap(),
        ));
    }
    within(15, "close", r.close()).await.unwrap();
    w.close().await.unwrap();
    let ends_before = c.partitions("durable").unwrap();
    c.shutdown().await;

    let c = kafkit_broker::Cluster::builder()
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    assert_eq!(
        c.partitions("durable").unwrap(),
        ends_before,
        "logs reopened with the same ends"
    );
    let r = Reader::new(reader_config(&c, "durable", Some("g-durable"))).unwrap();
    let mut rest = BTreeSet::new();
    for _ in 0..12 {
        rest.insert(value_index(
            &within(20, "read after restart", r.read_message())
                .await
                .unwrap(),
        ));
    }
    assert!(first.is_disjoint(&rest));
    assert_eq!(first.union(&rest).count(), 20);
    within(15, "close", r.close()).await.unwrap();
    c.shutdown().await;
}

#[tokio::test]
async fn reader_without_group_reads_one_partition() {
    let c = cluster().await;
    c.create_topic("single", 2).unwrap();
    let w = Writer::new(kafkit::WriterConfig {
        balancer: kafkit::Balancer::RoundRobin,
        ..writer_config(&c, "single")
    })
    .unwrap();
    w.write_messages(
        (0..6)
            .map(|i| Message::value(format!("value-{i}")))
            .collect(),
    )
    .await
    .unwrap();
    let r = Reader::new(kafkit::ReaderConfig {
        partition: 1,
        ..reader_config(&c, "single", None)
    })
    .unwrap();
    let mut got = BTreeMap::new();
    for _ in 0..3 {
        let m = within(20, "read", r.read_message()).await.unwrap();
        assert_eq!(m.partition, 1);
        got.insert(m.offset, value_index(&m));
    }
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    r.close().await.unwrap();
    c.shutdown().await;
}

/// kafka-go #326/#1180: a synchronous write must not wait out `batch_timeout` for a batch that
/// cannot fill. 20 one-message writes with a 5 s batch_timeout finish far below one timeout.
#[tokio::test]
async fn sync_write_does_not_wait_for_batch_timeout() {
    let c = cluster().await;
    c.create_topic("linger", 3).unwrap();
    let w = Writer::new(kafkit::WriterConfig {
        batch_timeout: Duration::from_secs(5),
        ..writer_config(&c, "linger")
    })
    .unwrap();
    w.write_messages(vec![Message::value("warm-up")])
        .await
        .unwrap();
    let t = std::time::Instant::now();
    for i in 0..20 {
        w.write_messages(vec![Message::new(format!("k{i}"), "v")])
            .await
            .unwrap();
    }
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "20 synchronous writes took {took:?}"
    );
    eprintln!("20 synchronous one-message writes (acks=all): {took:?}");
    c.shutdown().await;
}
