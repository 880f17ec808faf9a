//! Writer features against the embedded cluster: compression, idempotence under lost responses,
//! and exactly-once delivery across leader moves and a broker outage.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use kafkit::{Compression, Message, Reader, RequiredAcks, Writer, WriterConfig};

fn value_index(m: &Message) -> u64 {
    String::from_utf8_lossy(m.value.as_deref().unwrap())
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_codec_roundtrips_through_the_cluster() {
    let c = cluster().await;
    for (i, (codec, level)) in [
        (Compression::None, None),
        (Compression::Gzip, None),
        (Compression::Gzip, Some(1)),
        (Compression::Snappy, None),
        (Compression::Lz4, None),
        (Compression::Lz4, Some(12)),
        (Compression::Zstd, None),
        (Compression::Zstd, Some(19)),
    ]
    .into_iter()
    .enumerate()
    {
        let topic = format!("codec-{i}");
        c.create_topic(&topic, 1).unwrap();
        let w = Writer::new(WriterConfig {
            compression: codec,
            compression_level: level,
            ..writer_config(&c, &topic)
        })
        .unwrap();
        let msgs: Vec<Message> = (0..200)
            .map(|j| {
                Message::new(
                    format!("k{j}"),
                    format!("{codec:?} payload payload payload-{j}"),
                )
            })
            .collect();
        w.write_messages(msgs).await.unwrap();
        let r = Reader::new(reader_config(&c, &topic, None)).unwrap();
        for j in 0..200 {
            let m = within(10, "read", r.read_message()).await.unwrap();
            assert_eq!(value_index(&m), j, "{codec:?}");
        }
        r.close().await.unwrap();
    }
    c.shutdown().await;
}

async fn write_with_lost_responses(idempotent: bool) -> i64 {
    let c = cluster().await;
    c.create_topic("lost", 1).unwrap();
    let w = Writer::new(WriterConfig {
        idempotent,
        write_timeout: Duration::from_secs(2),
        ..writer_config(&c, "lost")
    })
    .unwrap();
    w.write_messages((0..10).map(|i| Message::value(format!("v-{i}"))).collect())
        .await
        .unwrap();
    // The broker appends the next three Produce requests but the answers never arrive.
    c.control().drop_responses(0, 3, None);
    for i in 10..20 {
        w.write_messages(vec![Message::value(format!("v-{i}"))])
            .await
            .unwrap();
    }
    let end = c.partitions("lost").unwrap()[0].1;
    c.shutdown().await;
    end
}

#[tokio::test]
async fn idempotent_retries_do_not_duplicate() {
    assert_eq!(
        write_with_lost_responses(true).await,
        20,
        "idempotent: exactly 20 records"
    );
    // The same faults without idempotence duplicate (so the test above can fail).
    let without = write_with_lost_responses(false).await;
    assert!(
        without > 20,
        "without idempotence the retries duplicated: {without}"
    );
}

#[tokio::test]
async fn exactly_once_in_order_across_leader_moves_and_a_broker_outage() {
    exactly_once_across_faults(false).await;
}

/// The same with many small batches per partition on the wire at once (max_in_flight 5):
/// retries resend in order behind the failed batch, and the broker's sequence checks drop what
/// had landed.
#[tokio::test]
async fn exactly_once_in_order_with_five_requests_in_flight_per_partition() {
    exactly_once_across_faults(true).await;
}

async fn exactly_once_across_faults(pipelined: bool) {
    let c = cluster().await;
    c.create_topic_with("eos", 3, 3).unwrap();
    let ctl = c.control();
    let w = Writer::new(WriterConfig {
        required_acks: RequiredAcks::All,
        batch_size: if pipelined { 100 } else { 1000 },
        batch_timeout: Duration::from_millis(1),
        max_in_flight: 5,
        // A dropped response costs write_timeout + 5 s before the retry.
        write_timeout: Duration::from_secs(2),
        ..writer_config(&c, "eos")
    })
    .unwrap();
    let total = 100_000u64;
    let chunk = 5_000u64;
    let writes = async {
        for k in 0..total / chunk {
            match k {
                4 => {
                    let l = ctl.leader("eos", 0).unwrap();
                    let to = ctl
                        .isr("eos", 0)
                        .unwrap()
                        .into_iter()
                        .find(|b| *b != l)
                        .unwrap();
                    ctl.move_leader("eos", 0, to).unwrap();
                }
                8 => ctl.broker_down(ctl.leader("eos", 1).unwrap()),
                10 => ctl.drop_responses(0, 2, None),
                14 => (1..=3).for_each(|b| ctl.broker_up(b)),
                _ => {}
            }
            let msgs: Vec<Message> = (k * chunk..(k + 1) * chunk)
                .map(|i| Message::new(format!("key-{}", i % 1000), format!("value-{i}")))
                .collect();
            if pipelined {
                // Queue in slices of 50 so each partition has several requests in flight.
                let mut pending = Vec::new();
                for slice in msgs.chunks(50) {
                    pending.push(w.write_messages_nowait(slice.to_vec()).await.unwrap());
                }
                for d in pending {
                    d.wait().await.unwrap();
                }
            } else {
                w.write_messages(msgs).await.unwrap();
            }
        }
    };
    within(120, "write 100k across faults", writes).await;
    let ends: i64 = c.partitions("eos").unwrap().iter().map(|(_, e)| e).sum();
    assert_eq!(ends, total as i64, "no duplicates, no loss in the logs");
    let r = Reader::new(kafkit::ReaderConfig {
        queue_capacity: 10_000,
        ..reader_config(&c, "eos", Some("g-eos"))
    })
    .unwrap();
    let mut last: HashMap<i32, u64> = HashMap::new();
    let mut count = 0u64;
    let progress = std::sync::atomic::AtomicU64::new(0);
    let reading = async {
        while count < total {
            let m = r.fetch_message().await.unwrap();
            let i = value_index(&m);
            if let Some(prev) = last.insert(m.partition, i) {
                assert!(
                    i > prev,
                    "partition {} out of order: {prev} then {i}",
                    m.partition
                );
            }
            count += 1;
            progress.store(count, std::sync::atomic::Ordering::Relaxed);
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), reading)
        .await
        .is_err()
    {
        panic!(
            "read only {} of {total} in 120 s; assignment {:?}, ends {:?}",
            progress.load(std::sync::atomic::Ordering::Relaxed),
            r.assignment(),
            c.partitions("eos")
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), r.fetch_message())
            .await
            .is_err(),
        "more than {total} records"
    );
    r.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test]
async fn buffer_memory_bounds_what_waits_when_the_broker_is_slow() {
    let c = cluster().await;
    c.create_topic_with("slow", 1, 1).unwrap();
    c.control().delay(Some(0), None, Duration::from_millis(100));
    let limit = 64 * 1024;
    let w = std::sync::Arc::new(
        Writer::new(WriterConfig {
            buffer_memory: limit,
            batch_bytes: 16 * 1024,
            batch_timeout: Duration::from_millis(10),
            ..writer_config(&c, "slow")
        })
        .unwrap(),
    );
    let sampler = {
        let w = w.clone();
        tokio::spawn(async move {
            let mut max = 0;
            for _ in 0..400 {
                max = max.max(w.stats().buffered_bytes);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            max
        })
    };
    let t = std::time::Instant::now();
    for k in 0..50 {
        // Returns once the messages are queued; waits while buffer_memory is full.
        w.write_messages_nowait(
            (0..10)
                .map(|i| Message::value(format!("{:01000}", k * 10 + i)))
                .collect(),
        )
        .await
        .map(drop) // fire and forget: close() below waits for everything
        .unwrap();
    }
    let queued_after = t.elapsed();
    w.close().await.unwrap();
    let max = sampler.await.unwrap();
    assert!(max <= limit as u64, "buffered {max} bytes, limit {limit}");
    assert!(max > 0);
    // 500 KB through a 64 KiB buffer and a broker answering every 100 ms: the writes had to wait.
    assert!(
        queued_after > Duration::from_millis(300),
        "queued 500 KB in {queued_after:?}"
    );
    assert_eq!(c.partitions("slow").unwrap()[0].1, 500);
    let s = w.stats();
    assert_eq!((s.messages, s.errors), (500, 0));
    assert!(
        s.writes >= 1 && s.batch_max <= 500 && s.latency_max >= Duration::from_millis(100),
        "{s:?}"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn stats_count_retries() {
    let c = cluster().await;
    c.create_topic("stats", 1).unwrap();
    let w = Writer::new(writer_config(&c, "stats")).unwrap();
    c.control().inject_error(0, 6, 2, None);
    w.write_messages((0..5).map(|i| Message::value(format!("v-{i}"))).collect())
        .await
        .unwrap();
    let s = w.stats();
    assert_eq!(
        (s.messages, s.writes, s.retries, s.errors),
        (5, 1, 2, 0),
        "{s:?}"
    );
    assert_eq!(
        s.bytes,
        (0..5).map(|i| format!("v-{i}").len() as u64).sum::<u64>()
    );
    c.shutdown().await;
}

#[tokio::test]
async fn nowait_reports_each_write_when_awaited() {
    let c = cluster().await;
    c.create_topic("later", 1).unwrap();
    let w = Writer::new(WriterConfig {
        batch_timeout: Duration::from_millis(20),
        ..writer_config(&c, "later")
    })
    .unwrap();
    let ok = w
        .write_messages_nowait((0..20).map(|i| Message::value(format!("v-{i}"))).collect())
        .await
        .unwrap();
    ok.wait().await.unwrap();
    assert_eq!(c.partitions("later").unwrap()[0].1, 20);
    // A fatal error reaches the delivery, listing every message of the write.
    c.control().inject_error(0, 10, 1, None);
    let bad = w
        .write_messages_nowait((0..3).map(|i| Message::value(format!("x-{i}"))).collect())
        .await
        .unwrap();
    match bad.wait().await {
        Err(kafkit::Error::WriteFailed { total: 3, failed }) => {
            assert_eq!(
                failed
                    .iter()
                    .flat_map(|(i, _)| i.clone())
                    .collect::<Vec<_>>(),
                vec![0, 1, 2]
            );
            assert_eq!(failed[0].1.kafka_code(), Some(10));
        }
        other => panic!("expected WriteFailed, got {other:?}"),
    }
    c.shutdown().await;
}

#[tokio::test]
async fn sticky_balancer_fills_one_partition_per_batch() {
    let c = cluster().await;
    c.create_topic("sticky", 3).unwrap();
    let w = Writer::new(WriterConfig {
        balancer: kafkit::Balancer::Sticky,
        batch_size: 10,
        batch_timeout: Duration::from_secs(60),
        ..writer_config(&c, "sticky")
    })
    .unwrap();
    // 25 unkeyed records: 10 to one partition, the next 10 to the next, 5 to the third;
    // a keyed record goes where murmur2 says.
    w.write_messages((0..25).map(|i| Message::value(format!("v-{i}"))).collect())
        .await
        .unwrap();
    let admin = kafkit::Admin::new(c.addrs()).unwrap();
    let mut ends: Vec<i64> = admin
        .list_offsets("sticky", -1)
        .await
        .unwrap()
        .into_values()
        .collect();
    ends.sort();
    assert_eq!(ends, vec![5, 10, 10]);
    w.write_messages(vec![Message::new("21", "keyed")])
        .await
        .unwrap();
    let after = admin.list_offsets("sticky", -1).await.unwrap();
    let murmur = ((-973932308i32 as u32 & 0x7fff_ffff) % 3) as i32;
    let before = [(0, 10), (1, 10), (2, 5)];
    assert_eq!(after[&murmur], before[murmur as usize].1 + 1, "{after:?}");
    w.close().await.unwrap();
    c.shutdown().await;
}
