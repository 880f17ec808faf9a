//! Disk faults over TCP (issue 12), with the embedded cluster on a `FaultyStorage`: a full disk
//! mid-batch, EIO on the leader's disk, a failed fsync, failed offset commits, deleting a
//! topic on a full disk. In every case: nothing is acknowledged while writes fail, the client
//! gets KAFKA_STORAGE_ERROR at once (not a timeout), and every record acknowledged before and
//! after is read back — before and after a restart — at contiguous offsets.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kafkit::{Admin, Message, Reader, ReaderConfig, StartOffset, Writer};
use kafkit_broker::log::{LogConfig, SyncPolicy};
use kafkit_broker::storage::{Fault, FaultRule, FaultyStorage, Op};
use kafkit_broker::Cluster;
use kafkit_protocol::batch::{encode_records, new_record};
use kafkit_protocol::records::Compression;

use kafkit_protocol::codes::KAFKA_STORAGE_ERROR as STORAGE_ERROR;
use kafkit_protocol::codes::NOT_LEADER_OR_FOLLOWER as NOT_LEADER;

async fn start(dir: &std::path::Path, disk: &FaultyStorage, sync: SyncPolicy) -> Cluster {
    init_logs();
    Cluster::builder()
        .brokers(3)
        .data_dir(dir)
        .storage(disk.clone())
        .log_config(LogConfig {
            sync,
            ..LogConfig::default()
        })
        .replica_lag_time_max(Duration::from_secs(2))
        .start()
        .await
        .expect("cluster starts")
}

/// A batch of `n` records of 200 bytes.
fn batch(n: usize, tag: &str) -> Bytes {
    let recs: Vec<_> = (0..n)
        .map(|i| {
            new_record(
                i as i64,
                1_700_000_000_000,
                None,
                Some(Bytes::from(format!("{tag}-{i:0>196}"))),
            )
        })
        .collect();
    encode_records(&recs, Compression::None).unwrap()
}

/// Produces one batch to partition 0 on its leader with acks=-1: (error code, time taken).
/// Produces to partition 0's leader: (error code, how long the answer took). A failed append
/// has the replication pass move leadership to a healthy replica, on a blocking thread, so the
/// leader looked up may have just lost it: NOT_LEADER_OR_FOLLOWER is retried at the new one.
async fn produce_raw(c: &Cluster, topic: &str, records: Bytes) -> (i16, Duration) {
    for _ in 0..50 {
        let conn = leader_conn(c, topic, 0).await;
        let t = Instant::now();
        let (_, resp) = conn
            .send(&produce_request(topic, -1, records.clone()))
            .await
            .unwrap();
        let code = resp.responses[0].partition_responses[0].error_code;
        if code != NOT_LEADER {
            return (code, t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("leadership of {topic}/0 kept moving");
}

async fn write(c: &Cluster, topic: &str, values: impl Iterator<Item = String>) {
    let w = Writer::new(writer_config(c, topic)).unwrap();
    within(
        60,
        "acknowledged write",
        w.write_messages(values.map(Message::value).collect()),
    )
    .await
    .unwrap();
    w.close().await.unwrap();
}

/// Every record of partition 0 as (offset, value), until the high watermark.
async fn read_all(c: &Cluster, topic: &str) -> Vec<(i64, String)> {
    let end = c.control().high_watermark(topic, 0).unwrap();
    let r = Reader::new(ReaderConfig {
        start_offset: StartOffset::First,
        ..reader_config(c, topic, None)
    })
    .unwrap();
    let mut got = Vec::new();
    while got.last().is_none_or(|(o, _)| o + 1 < end) {
        let m = within(20, "read back", r.read_message()).await.unwrap();
        got.push((
            m.offset,
            String::from_utf8(m.value.unwrap().to_vec()).unwrap(),
        ));
    }
    r.close().await.unwrap();
    got
}

/// The acknowledged values, in order, at offsets 0, 1, 2, ...
fn assert_exactly(got: &[(i64, String)], want: &[String]) {
    let offsets: Vec<i64> = got.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..want.len() as i64).collect::<Vec<_>>());
    let values: Vec<&String> = got.iter().map(|(_, v)| v).collect();
    assert_eq!(values, want.iter().collect::<Vec<_>>());
}

async fn wait_isr(c: &Cluster, topic: &str, n: usize) {
    within(30, "ISR back to full", async {
        while c.control().isr(topic, 0).unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

#[tokio::test]
async fn a_full_disk_mid_batch_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyStorage::new();
    let c = start(
        dir.path(),
        &disk,
        SyncPolicy::Interval(Duration::from_secs(1)),
    )
    .await;
    c.create_topic_with("full", 1, 3).unwrap();
    write(&c, "full", values("before", 20).into_iter()).await;

    // Room for a third of the next batch on the whole (shared) disk: every replica's write
    // tears, and every one is cut back.
    let b = batch(10, "refused");
    disk.set_capacity(Some(disk.used() + b.len() as u64 / 3));
    for _ in 0..3 {
        let (code, took) = produce_raw(&c, "full", b.clone()).await;
        assert_eq!(code, STORAGE_ERROR);
        assert!(took < Duration::from_secs(2), "answered in {took:?}");
    }
    // kafkit's Writer retries the storage error, and when it gives up says which it was.
    let w = Writer::new(kafkit::WriterConfig {
        max_attempts: 3,
        retry_backoff: Duration::from_millis(10),
        ..writer_config(&c, "full")
    })
    .unwrap();
    let t = Instant::now();
    let big = "x".repeat(4000); // more than the room left
    let e = within(
        10,
        "refused write",
        w.write_messages(vec![Message::value(big)]),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("KafkaStorageError") || e.to_string().contains("(56)"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    drop(w);
    assert_eq!(c.control().high_watermark("full", 0), Some(20));
    assert!(c
        .control()
        .replica_ends("full", 0)
        .unwrap()
        .iter()
        .all(|&(_, end)| end == 20));

    disk.set_capacity(None);
    write(&c, "full", values("after", 20).into_iter()).await;
    wait_isr(&c, "full", 3).await;
    let want = [values("before", 20), values("after", 20)].concat();
    assert_exactly(&read_all(&c, "full").await, &want);
    c.shutdown().await;

    let c = start(dir.path(), &FaultyStorage::new(), SyncPolicy::Never).await;
    assert_exactly(&read_all(&c, "full").await, &want);
    c.shutdown().await;
}

#[tokio::test]
async fn eio_on_the_leaders_disk_moves_leadership_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyStorage::new();
    let c = start(
        dir.path(),
        &disk,
        SyncPolicy::Interval(Duration::from_secs(1)),
    )
    .await;
    c.create_topic_with("eio", 1, 3).unwrap();
    write(&c, "eio", values("before", 20).into_iter()).await;
    let leader = c.control().leader("eio", 0).unwrap();
    disk.inject(FaultRule::always(Op::Append, Fault::Io).on(format!("broker-{leader}/")));

    let (code, took) = produce_raw(&c, "eio", batch(5, "refused")).await;
    assert_eq!(code, STORAGE_ERROR);
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    // A healthy in-sync replica takes over, and the failed one is out of the ISR.
    within(10, "leadership moves", async {
        while c.control().leader("eio", 0) == Some(leader) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(!c.control().isr("eio", 0).unwrap().contains(&leader));
    write(&c, "eio", values("after", 20).into_iter()).await;

    disk.clear();
    wait_isr(&c, "eio", 3).await;
    let want = [values("before", 20), values("after", 20)].concat();
    assert_exactly(&read_all(&c, "eio").await, &want);
    c.shutdown().await;
    let c = start(dir.path(), &FaultyStorage::new(), SyncPolicy::Never).await;
    assert_exactly(&read_all(&c, "eio").await, &want);
    c.shutdown().await;
}

#[tokio::test]
async fn a_failed_fsync_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyStorage::new();
    let c = start(dir.path(), &disk, SyncPolicy::EveryWrite).await;
    c.create_topic_with("fsync", 1, 1).unwrap();
    write(&c, "fsync", values("before", 10).into_iter()).await;
    disk.inject(FaultRule::times(Op::Sync, Fault::Io, 1).on("fsync-0"));
    let (code, _) = produce_raw(&c, "fsync", batch(5, "refused")).await;
    assert_eq!(code, STORAGE_ERROR);
    write(&c, "fsync", values("after", 10).into_iter()).await;
    let want = [values("before", 10), values("after", 10)].concat();
    assert_exactly(&read_all(&c, "fsync").await, &want);
    // A machine crash keeps what every-write sync acknowledged.
    c.crash().await;
    let c = start(dir.path(), &FaultyStorage::new(), SyncPolicy::EveryWrite).await;
    assert_exactly(&read_all(&c, "fsync").await, &want);
    c.shutdown().await;
}

#[tokio::test]
async fn failed_offset_commits_are_refused_and_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyStorage::new();
    let c = start(dir.path(), &disk, SyncPolicy::Never).await;
    c.create_topic_with("commits", 1, 1).unwrap();
    let admin = Admin::new(c.addrs()).unwrap();
    let at = |o| BTreeMap::from([(0, o)]);
    admin
        .commit_group_offsets("g", "commits", &at(5))
        .await
        .unwrap();
    for fault in [Fault::NoSpace, Fault::Io, Fault::Short(3)] {
        disk.inject(FaultRule::times(Op::Append, fault, 1).on("offsets.log"));
        if fault == Fault::Short(3) {
            disk.inject(FaultRule::times(Op::Append, Fault::NoSpace, 1).on("offsets.log"));
        }
        let e = admin
            .commit_group_offsets("g", "commits", &at(9))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("NOT_COORDINATOR") || e.to_string().contains("16"),
            "{e}"
        );
        assert_eq!(c.committed_offset("g", "commits", 0), Some(5));
    }
    disk.inject(FaultRule::times(Op::Sync, Fault::Io, 1).on("offsets.log"));
    assert!(admin
        .commit_group_offsets("g", "commits", &at(9))
        .await
        .is_err());
    assert_eq!(c.committed_offset("g", "commits", 0), Some(5));
    admin
        .commit_group_offsets("g", "commits", &at(7))
        .await
        .unwrap();
    c.shutdown().await;
    let c = start(dir.path(), &FaultyStorage::new(), SyncPolicy::Never).await;
    assert_eq!(c.committed_offset("g", "commits", 0), Some(7));
    c.shutdown().await;
}

#[tokio::test]
async fn a_topic_can_be_deleted_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyStorage::new();
    let c = start(dir.path(), &disk, SyncPolicy::Never).await;
    c.create_topic_with("big", 1, 3).unwrap();
    c.create_topic_with("keep", 1, 3).unwrap();
    write(&c, "big", (0..300).map(|i| format!("{i:0>500}"))).await;
    write(&c, "keep", values("before", 5).into_iter()).await;
    disk.set_capacity(Some(disk.used()));
    let (code, _) = produce_raw(&c, "keep", batch(3, "refused")).await;
    assert_eq!(code, STORAGE_ERROR);

    let admin = Admin::new(c.addrs()).unwrap();
    within(10, "delete on a full disk", admin.delete_topic("big"))
        .await
        .unwrap();
    assert!(c.partitions("big").is_none());
    // The space the topic held is free: writes succeed without the capacity changing.
    write(&c, "keep", values("after", 5).into_iter()).await;
    wait_isr(&c, "keep", 3).await;
    let want = [values("before", 5), values("after", 5)].concat();
    assert_exactly(&read_all(&c, "keep").await, &want);
    c.shutdown().await;
    let c = start(dir.path(), &FaultyStorage::new(), SyncPolicy::Never).await;
    assert!(c.partitions("big").is_none(), "the deletion was saved");
    assert_exactly(&read_all(&c, "keep").await, &want);
    c.shutdown().await;
}

#[tokio::test]
async fn delete_records_frees_a_full_disk() {
    use kafkit_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafkit_protocol::messages::DeleteRecordsRequest;
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyStorage::new();
    init_logs();
    let c = Cluster::builder()
        .brokers(3)
        .data_dir(dir.path())
        .storage(disk.clone())
        .log_config(LogConfig {
            segment_bytes: 8 * 1024,
            sync: SyncPolicy::Never,
            ..LogConfig::default()
        })
        .start()
        .await
        .unwrap();
    c.create_topic_with("trim", 1, 3).unwrap();
    write(&c, "trim", (0..200).map(|i| format!("{i:0>300}"))).await;
    disk.set_capacity(Some(disk.used()));
    assert_eq!(
        produce_raw(&c, "trim", batch(3, "refused")).await.0,
        STORAGE_ERROR
    );

    let used = disk.used();
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(kafkit_protocol::topic_name("trim"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(150)])]);
    // As in `produce_raw`: leadership may be moving away from the replica that failed.
    let mut resp = None;
    for _ in 0..50 {
        let conn = leader_conn(&c, "trim", 0).await;
        let (_, r) = within(10, "delete records", conn.send(&req)).await.unwrap();
        if r.topics[0].partitions[0].error_code != NOT_LEADER {
            resp = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = resp.expect("a leader answered");
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (0, 150));
    assert!(disk.used() < used, "whole segments below 150 were deleted");
    // The space is back: a write succeeds with the capacity unchanged.
    write(&c, "trim", values("after", 3).into_iter()).await;
    c.shutdown().await;
    let c = start(dir.path(), &FaultyStorage::new(), SyncPolicy::Never).await;
    let r = Reader::new(ReaderConfig {
        start_offset: StartOffset::First,
        ..reader_config(&c, "trim", None)
    })
    .unwrap();
    let first = within(20, "read", r.read_message()).await.unwrap();
    assert_eq!(first.offset, 150, "the new log start was saved");
    r.close().await.unwrap();
    c.shutdown().await;
}
