//! Crash recovery through the embedded cluster's simulated crash, per sync policy.

mod common;

use common::*;
use kafkit::{Message, Reader, Writer};
use kafkit_broker::log::{LogConfig, SyncPolicy};
use kafkit_broker::Cluster;

async fn crash_after_writes(sync: SyncPolicy) -> (i64, Option<i64>) {
    let dir = tempfile::tempdir().unwrap();
    let log = LogConfig {
        sync,
        ..LogConfig::default()
    };
    let c = Cluster::builder()
        .data_dir(dir.path())
        .log_config(log.clone())
        .start()
        .await
        .unwrap();
    c.create_topic_with("crash", 1, 3).unwrap();
    let w = Writer::new(writer_config(&c, "crash")).unwrap();
    w.write_messages((0..10).map(|i| Message::value(format!("v{i}"))).collect())
        .await
        .unwrap();
    let r = Reader::new(reader_config(&c, "crash", Some("g-crash"))).unwrap();
    for _ in 0..10 {
        within(20, "read", r.read_message()).await.unwrap();
    }
    r.close().await.unwrap();
    c.crash().await;
    let c = Cluster::builder()
        .data_dir(dir.path())
        .log_config(log)
        .start()
        .await
        .unwrap();
    let end = c.partitions("crash").unwrap()[0].1;
    let committed = c.committed_offset("g-crash", "crash", 0);
    c.shutdown().await;
    (end, committed)
}

#[tokio::test]
async fn a_crash_keeps_what_was_synced() {
    // fsync on every write: every acknowledged record survives.
    let (end, committed) = crash_after_writes(SyncPolicy::EveryWrite).await;
    assert_eq!(end, 10);
    assert_eq!(
        committed,
        Some(10),
        "commits are fsynced before they are acknowledged"
    );
    // Never syncing: the crash takes the records; the committed offsets (always fsynced) stay.
    let (end, committed) = crash_after_writes(SyncPolicy::Never).await;
    assert_eq!(end, 0, "unsynced records are gone after the crash");
    assert_eq!(committed, Some(10));
}
