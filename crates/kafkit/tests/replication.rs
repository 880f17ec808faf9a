//! Replication, acks and failover on the embedded cluster, driven by its fault injection.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use kafkit::{Message, Reader, RequiredAcks, Writer, WriterConfig};
use kafkit_broker::Cluster;

fn value_index(m: &Message) -> u64 {
    String::from_utf8_lossy(m.value.as_deref().unwrap())
        .strip_prefix("value-")
        .unwrap()
        .parse()
        .unwrap()
}

fn batch(range: std::ops::Range<u64>) -> Vec<Message> {
    range
        .map(|i| Message::new(format!("key-{i}"), format!("value-{i}")))
        .collect()
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    within(20, what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn acks_all_means_every_in_sync_replica_has_the_records() {
    let c = cluster().await;
    c.create_topic_with("rep", 1, 3).unwrap();
    let ctl = c.control();
    assert_eq!(ctl.isr("rep", 0).unwrap().len(), 3);
    let w = Writer::new(WriterConfig {
        required_acks: RequiredAcks::All,
        ..writer_config(&c, "rep")
    })
    .unwrap();
    w.write_messages(batch(0..50)).await.unwrap();
    // Acknowledged with acks=all: every replica already holds all 50.
    let ends = ctl.replica_ends("rep", 0).unwrap();
    assert!(ends.iter().all(|(_, end)| *end == 50), "{ends:?}");
    assert_eq!(ctl.high_watermark("rep", 0), Some(50));
    c.shutdown().await;
}

#[tokio::test]
async fn consumers_see_only_the_high_watermark_and_isr_shrinks_when_followers_lag() {
    let c = Cluster::builder()
        .replica_lag_time_max(Duration::from_millis(600))
        .start()
        .await
        .unwrap();
    c.create_topic_with("lag", 1, 3).unwrap();
    let ctl = c.control();
    let leader = ctl.leader("lag", 0).unwrap();
    let followers: Vec<i32> = ctl
        .isr("lag", 0)
        .unwrap()
        .into_iter()
        .filter(|b| *b != leader)
        .collect();
    for f in &followers {
        ctl.cut_replication(leader, *f);
    }
    // acks=1: the leader has it, the followers do not; consumers must not see it yet.
    let w1 = Writer::new(WriterConfig {
        required_acks: RequiredAcks::One,
        ..writer_config(&c, "lag")
    })
    .unwrap();
    w1.write_messages(batch(0..5)).await.unwrap();
    assert_eq!(ctl.high_watermark("lag", 0), Some(0));
    let r = Reader::new(reader_config(&c, "lag", None)).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), r.fetch_message())
            .await
            .is_err(),
        "read above the HW"
    );
    // The followers fall out of the ISR after replica_lag_time_max; the HW then moves.
    wait_until("ISR shrinks to the leader", || {
        ctl.isr("lag", 0).unwrap() == vec![leader]
    })
    .await;
    assert_eq!(ctl.high_watermark("lag", 0), Some(5));
    let m = within(10, "read after shrink", r.fetch_message())
        .await
        .unwrap();
    assert_eq!(value_index(&m), 0);
    // Healed: the followers catch up and rejoin.
    for f in &followers {
        ctl.heal_replication(leader, *f);
    }
    wait_until("ISR expands", || ctl.isr("lag", 0).unwrap().len() == 3).await;
    assert!(ctl
        .replica_ends("lag", 0)
        .unwrap()
        .iter()
        .all(|(_, e)| *e == 5));
    r.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test]
async fn not_enough_replicas_is_reported() {
    let c = Cluster::builder()
        .min_insync_replicas(2)
        .start()
        .await
        .unwrap();
    c.create_topic_with("isr", 1, 3).unwrap();
    let ctl = c.control();
    let leader = ctl.leader("isr", 0).unwrap();
    for b in ctl.isr("isr", 0).unwrap() {
        if b != leader {
            ctl.broker_down(b);
        }
    }
    let w = Writer::new(WriterConfig {
        max_attempts: 2,
        ..writer_config(&c, "isr")
    })
    .unwrap();
    let err = within(20, "write", w.write_messages(batch(0..1)))
        .await
        .unwrap_err();
    let code = match &err {
        kafkit::Error::WriteFailed { failed, .. } => failed[0].1.kafka_code(),
        other => other.kafka_code(),
    };
    assert_eq!(code, Some(19), "NOT_ENOUGH_REPLICAS expected, got {err}");
    // acks=1 does not need the followers.
    let w1 = Writer::new(WriterConfig {
        required_acks: RequiredAcks::One,
        ..writer_config(&c, "isr")
    })
    .unwrap();
    w1.write_messages(batch(0..1)).await.unwrap();
    c.shutdown().await;
}

#[tokio::test]
async fn writes_and_reads_survive_leader_loss_and_the_broker_rejoins() {
    let c = cluster().await;
    c.create_topic_with("failover", 3, 3).unwrap();
    let ctl = c.control();
    let w = Writer::new(writer_config(&c, "failover")).unwrap();
    let r = Reader::new(reader_config(&c, "failover", Some("g-failover"))).unwrap();
    let victim = ctl.leader("failover", 0).unwrap();
    let total = 2000u64;
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let writes = async {
        for chunk in 0..20 {
            if chunk == 5 {
                ctl.broker_down(victim);
            }
            if chunk == 12 {
                ctl.broker_up(victim);
            }
            w.write_messages(batch(chunk * 100..(chunk + 1) * 100))
                .await
                .unwrap();
        }
    };
    let reads = async {
        while seen.len() < total as usize {
            let m = r.read_message().await.unwrap();
            *seen.entry(value_index(&m)).or_default() += 1;
        }
    };
    within(60, "write and read 2000 across a failover", async {
        tokio::join!(writes, reads)
    })
    .await;
    assert_eq!(seen.len(), total as usize, "every record read");
    let dups: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("failover: {total} records, {dups} delivered more than once");
    assert_ne!(ctl.leader("failover", 0), Some(-1));
    wait_until("victim back in every ISR", || {
        (0..3).all(|p| ctl.isr("failover", p).unwrap().contains(&victim))
    })
    .await;
    for p in 0..3 {
        let hw = ctl.high_watermark("failover", p).unwrap();
        assert!(ctl
            .replica_ends("failover", p)
            .unwrap()
            .iter()
            .all(|(_, e)| *e == hw));
    }
    r.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test]
async fn moved_leader_and_injected_errors_are_retried() {
    let c = cluster().await;
    c.create_topic_with("moves", 1, 3).unwrap();
    let ctl = c.control();
    let w = Writer::new(writer_config(&c, "moves")).unwrap();
    w.write_messages(batch(0..10)).await.unwrap();
    let leader = ctl.leader("moves", 0).unwrap();
    let to = ctl
        .isr("moves", 0)
        .unwrap()
        .into_iter()
        .find(|b| *b != leader)
        .unwrap();
    ctl.move_leader("moves", 0, to).unwrap();
    assert_eq!(ctl.leader("moves", 0), Some(to));
    w.write_messages(batch(10..20)).await.unwrap();
    // Retriable: NOT_LEADER_OR_FOLLOWER three times, then success.
    ctl.inject_error(0, 6, 3, None);
    w.write_messages(batch(20..30)).await.unwrap();
    // Not retriable: MESSAGE_TOO_LARGE fails at once.
    ctl.inject_error(0, 10, 1, None);
    let t = std::time::Instant::now();
    let err = w.write_messages(batch(30..31)).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(err.to_string().contains("MessageTooLarge"), "{err}");
    assert_eq!(c.partitions("moves").unwrap()[0].1, 30);
    // A reader follows the moved leader too.
    let r = Reader::new(reader_config(&c, "moves", None)).unwrap();
    for i in 0..30 {
        assert_eq!(
            value_index(&within(10, "read", r.read_message()).await.unwrap()),
            i
        );
    }
    r.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test]
async fn group_survives_losing_its_coordinator() {
    let c = cluster().await;
    c.create_topic_with("coord", 3, 3).unwrap();
    let ctl = c.control();
    let w = Writer::new(writer_config(&c, "coord")).unwrap();
    w.write_messages(batch(0..30)).await.unwrap();
    let r = Reader::new(reader_config(&c, "coord", Some("g-coord"))).unwrap();
    let mut seen = BTreeMap::new();
    for _ in 0..10 {
        *seen
            .entry(value_index(
                &within(20, "read", r.read_message()).await.unwrap(),
            ))
            .or_insert(0) += 1;
    }
    // Take down every broker but one, one at a time, keeping one up: the coordinator moves.
    let addrs = c.addrs();
    assert_eq!(addrs.len(), 3);
    ctl.broker_down(1);
    ctl.broker_down(2);
    w.write_messages(batch(30..40)).await.unwrap();
    while seen.len() < 40 {
        *seen
            .entry(value_index(
                &within(30, "read after coordinator loss", r.read_message())
                    .await
                    .unwrap(),
            ))
            .or_insert(0) += 1;
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
    r.close().await.unwrap();
    c.shutdown().await;
}

/// Leader epochs never go back across restarts (librdkafka ignores metadata whose leader epoch
/// is older than one it has seen, KIP-320, and then produces to a former leader forever —
/// found by `kafkit chaos`).
/// Elections during a full disk cannot save their epoch; a restart must still start above
/// them, or librdkafka takes the new metadata for stale and keeps producing to the former
/// leader (found by `kafkit chaos --librdkafka`: disk-full, move, kill; 2,000 messages timed
/// out on NOT_LEADER_OR_FOLLOWER).
#[tokio::test]
async fn leader_epochs_never_go_back_after_elections_that_could_not_be_saved() {
    use kafkit_broker::storage::{Fault, FaultRule, FaultyStorage, Op};
    async fn epoch(c: &kafkit_broker::Cluster) -> i32 {
        topic_metadata(c, "unsaved").await.partitions[0].leader_epoch
    }
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyStorage::new();
    let start = |disk: &FaultyStorage| {
        Cluster::builder()
            .brokers(3)
            .data_dir(dir.path())
            .storage(disk.clone())
            .start()
    };
    let c = start(&disk).await.unwrap();
    c.create_topic_with("unsaved", 1, 3).unwrap();
    disk.inject(FaultRule::always(Op::WriteAtomic, Fault::NoSpace).on("leader-epoch"));
    for _ in 0..5 {
        let l = c.control().leader("unsaved", 0).unwrap();
        c.control().move_leader("unsaved", 0, l % 3 + 1).unwrap();
    }
    let seen = epoch(&c).await;
    assert!(disk.faults_applied() >= 5, "the epochs were not saved");
    c.crash().await;
    disk.clear();
    let c = start(&disk).await.unwrap();
    let after = epoch(&c).await;
    assert!(
        after > seen,
        "epoch {after} after the restart, {seen} handed out before"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn leader_epochs_never_go_back_across_restarts() {
    async fn epoch(c: &kafkit_broker::Cluster) -> i32 {
        topic_metadata(c, "epochs").await.partitions[0].leader_epoch
    }
    let dir = tempfile::tempdir().unwrap();
    let c = cluster_in(dir.path()).await;
    c.create_topic_with("epochs", 1, 3).unwrap();
    let e0 = epoch(&c).await;
    // Two leadership changes and no writes: nothing stamps these epochs on a batch.
    for _ in 0..2 {
        let l = c.control().leader("epochs", 0).unwrap();
        c.control().move_leader("epochs", 0, l % 3 + 1).unwrap();
    }
    let e1 = epoch(&c).await;
    assert_eq!(e1, e0 + 2);
    c.crash().await;
    let c = cluster_in(dir.path()).await;
    let e2 = epoch(&c).await;
    assert!(e2 > e1, "epoch {e2} after a restart, {e1} before");
    c.shutdown().await;
    let c = cluster_in(dir.path()).await;
    assert!(epoch(&c).await >= e2);
    c.shutdown().await;
}
