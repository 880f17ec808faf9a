//! Consumer groups under churn, cooperative rebalancing, and one test per kafka-go failure
//! mode the Reader must not have (issue 5).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kafkit::{
    Balancer, GroupBalancer, Message, OffsetOutOfRange, Reader, ReaderConfig, Writer, WriterConfig,
};

fn index(m: &Message) -> usize {
    let v = m.value.as_deref().unwrap();
    std::str::from_utf8(v).unwrap()[2..].parse().unwrap()
}

async fn write_range(w: &Writer, range: std::ops::Range<usize>) {
    let msgs = range
        .map(|i| Message::new(format!("k{i}"), format!("v-{i}")))
        .collect();
    w.write_messages(msgs).await.unwrap();
}

/// How a member processes: commits as read_message does (periodic commit of what it moved
/// past), or fetches and commits every `n` messages itself.
#[derive(Clone, Copy)]
enum Mode {
    ReadMessage,
    FetchCommitEvery(usize),
}

struct Member {
    reader: Arc<Reader>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn member(
    cfg: ReaderConfig,
    mode: Mode,
    counts: Arc<Mutex<Vec<u32>>>,
    seen: Arc<AtomicU64>,
) -> Member {
    let reader = Arc::new(Reader::new(cfg).unwrap());
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let r = reader.clone();
    let task = tokio::spawn(async move {
        let mut uncommitted = Vec::new();
        loop {
            let next = tokio::select! {
                m = async {
                    match mode {
                        Mode::ReadMessage => r.read_message().await,
                        Mode::FetchCommitEvery(_) => r.fetch_message().await,
                    }
                } => m,
                _ = stopped.changed() => return,
            };
            let Ok(m) = next else { return };
            counts.lock().unwrap()[index(&m)] += 1;
            seen.fetch_add(1, Ordering::Relaxed);
            if let Mode::FetchCommitEvery(n) = mode {
                uncommitted.push(m);
                if uncommitted.len() >= n {
                    let _ = r.commit_messages(&uncommitted).await;
                    uncommitted.clear();
                }
            }
        }
    });
    Member { reader, stop, task }
}

impl Member {
    /// Stops processing and closes (commits what it processed, leaves the group).
    async fn close(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        within(15, "close", self.reader.close()).await.unwrap();
    }
}

async fn wait_for(seen: &AtomicU64, at_least: u64, what: &str) {
    within(60, what, async {
        while seen.load(Ordering::Relaxed) < at_least {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_readers_with_joins_a_leave_and_a_crash_read_every_record() {
    let c = cluster().await;
    c.create_topic_with("churn", 6, 3).unwrap();
    let total = 100_000usize;
    let counts = Arc::new(Mutex::new(vec![0u32; total]));
    let seen = Arc::new(AtomicU64::new(0));
    let w = Arc::new(
        Writer::new(WriterConfig {
            balancer: Balancer::RoundRobin,
            batch_size: 1000,
            ..writer_config(&c, "churn")
        })
        .unwrap(),
    );
    // The writer runs alongside: 100 slices of 1,000 records, one every 20 ms.
    let writing = {
        let w = w.clone();
        tokio::spawn(async move {
            for k in 0..100 {
                write_range(&w, k * 1000..(k + 1) * 1000).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let cfg = |id: &str| ReaderConfig {
        client_id: id.into(),
        queue_capacity: 1000,
        commit_interval: Duration::from_millis(100),
        ..reader_config(&c, "churn", Some("churn-group"))
    };
    let a = member(cfg("a"), Mode::ReadMessage, counts.clone(), seen.clone());
    wait_for(&seen, 15_000, "a reads 15k").await;
    let b = member(cfg("b"), Mode::ReadMessage, counts.clone(), seen.clone());
    wait_for(&seen, 30_000, "30k").await;
    // c commits itself, every 200 records: a rebalance that takes partitions from it, or its
    // crash, hands at most its last 199 records to another member again.
    let crash_window = 200;
    let cm = member(
        cfg("c"),
        Mode::FetchCommitEvery(crash_window),
        counts.clone(),
        seen.clone(),
    );
    wait_for(&seen, 50_000, "50k").await;
    b.close().await; // graceful leave
    wait_for(&seen, 70_000, "70k").await;
    // c "crashes": it stops without committing what it processed since its last commit, and
    // its partitions move on.
    let _ = cm.stop.send(true);
    let _ = cm.task.await;
    within(15, "c closes", cm.reader.close()).await.unwrap();
    writing.await.unwrap();
    within(90, "every record read", async {
        loop {
            if counts.lock().unwrap().iter().all(|n| *n > 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    a.close().await;
    let counts = counts.lock().unwrap().clone();
    let missing = counts.iter().filter(|n| **n == 0).count();
    let duplicates: u32 = counts.iter().map(|n| n.saturating_sub(1)).sum();
    eprintln!(
        "100,000 records: {missing} missing, {duplicates} duplicates (crash window {crash_window})"
    );
    assert_eq!(missing, 0);
    // Duplicates: c's uncommitted window at the two rebalances that took partitions from it
    // (b leaving, its crash), plus at most the message each read_message member had in hand at
    // each rebalance.
    assert!(
        duplicates as usize <= 2 * crash_window + 20,
        "{duplicates} duplicates"
    );
    c.shutdown().await;
}

/// Arrival times per partition, for pause measurements.
type Arrivals = Arc<Mutex<HashMap<i32, Vec<Instant>>>>;

fn timed_member(
    cfg: ReaderConfig,
    arrivals: Arrivals,
) -> (Arc<Reader>, tokio::task::JoinHandle<()>) {
    let r = Arc::new(Reader::new(cfg).unwrap());
    let rr = r.clone();
    let t = tokio::spawn(async move {
        while let Ok(m) = rr.read_message().await {
            arrivals
                .lock()
                .unwrap()
                .entry(m.partition)
                .or_default()
                .push(Instant::now());
        }
    });
    (r, t)
}

/// (longest pause of a partition the first member kept, longest pause of the writer itself in
/// the same window, the kept partitions).
async fn longest_pause_of_kept_partitions(
    balancer: GroupBalancer,
) -> (Duration, Duration, BTreeMap<i32, i64>) {
    let c = cluster().await;
    c.create_topic_with("coop", 6, 1).unwrap();
    let w = Arc::new(
        Writer::new(WriterConfig {
            balancer: Balancer::RoundRobin,
            ..writer_config(&c, "coop")
        })
        .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written: Arc<Mutex<Vec<Instant>>> = Default::default();
    let writing = {
        let (w, stop, written) = (w.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                write_range(&w, i..i + 6).await; // one record per partition
                written.lock().unwrap().push(Instant::now());
                i += 6;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let heartbeat = Duration::from_millis(500);
    let cfg = |id: &str| ReaderConfig {
        client_id: id.into(),
        group_balancers: vec![balancer],
        heartbeat_interval: heartbeat,
        ..reader_config(&c, "coop", Some("coop-group"))
    };
    let a_arrivals: Arrivals = Default::default();
    let (a, a_task) = timed_member(cfg("a"), a_arrivals.clone());
    within(20, "a owns all", async {
        while a.assignment().len() < 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let joined_at = Instant::now();
    let (b, b_task) = timed_member(cfg("b"), Default::default());
    within(20, "b gets partitions", async {
        while b.assignment().len() < 3 || a.assignment().len() > 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kept = a.assignment();
    let pause = {
        let arrivals = a_arrivals.lock().unwrap();
        kept.keys()
            .map(|p| {
                let times: Vec<Instant> = arrivals[p]
                    .iter()
                    .copied()
                    .filter(|t| *t >= joined_at)
                    .collect();
                let mut longest = times.first().map_or(Duration::MAX, |t| *t - joined_at);
                for pair in times.windows(2) {
                    longest = longest.max(pair[1] - pair[0]);
                }
                longest
            })
            .max()
            .unwrap()
    };
    let ended = Instant::now();
    // The writer's own hiccups in the same window (a loaded machine stalls everything).
    let writer_pause = {
        let w = written.lock().unwrap();
        let times: Vec<Instant> = w
            .iter()
            .copied()
            .filter(|t| *t >= joined_at && *t <= ended)
            .collect();
        times
            .windows(2)
            .map(|p| p[1] - p[0])
            .max()
            .unwrap_or_default()
    };
    stop.store(true, Ordering::Relaxed);
    writing.await.unwrap();
    for (r, t) in [(a, a_task), (b, b_task)] {
        within(15, "close", r.close()).await.unwrap();
        t.abort();
    }
    c.shutdown().await;
    (pause, writer_pause, kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_keeps_partitions_flowing_while_a_member_joins() {
    let (pause, writer_pause, kept) =
        longest_pause_of_kept_partitions(GroupBalancer::CooperativeSticky).await;
    let (eager_pause, _, _) = longest_pause_of_kept_partitions(GroupBalancer::Range).await;
    eprintln!(
        "longest pause of a kept partition: cooperative {pause:?} (writer's own longest gap {writer_pause:?}), eager range {eager_pause:?}"
    );
    assert_eq!(kept.len(), 3);
    // No pause longer than one heartbeat beyond what the writer itself paused.
    assert!(
        pause < Duration::from_millis(500) + writer_pause,
        "a partition that kept its owner paused {pause:?} (heartbeat 500 ms, writer gap {writer_pause:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_but_uncommitted_messages_are_delivered_again_kafka_go_764() {
    let c = cluster().await;
    c.create_topic("t764", 1).unwrap();
    let w = Writer::new(writer_config(&c, "t764")).unwrap();
    write_range(&w, 0..10).await;
    let r = Reader::new(reader_config(&c, "t764", Some("g764"))).unwrap();
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(within(20, "fetch", r.fetch_message()).await.unwrap());
    }
    r.commit_messages(&got[..5]).await.unwrap();
    r.close().await.unwrap();
    let r = Reader::new(reader_config(&c, "t764", Some("g764"))).unwrap();
    let m = within(20, "fetch again", r.fetch_message()).await.unwrap();
    assert_eq!(index(&m), 5, "the first uncommitted message comes back");
    r.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_of_a_revoked_partition_after_a_rebalance_kafka_go_1398() {
    let c = cluster().await;
    c.create_topic("t1398", 4).unwrap();
    let w = Writer::new(WriterConfig {
        balancer: Balancer::RoundRobin,
        ..writer_config(&c, "t1398")
    })
    .unwrap();
    write_range(&w, 0..4000).await;
    // a prefetches a lot and reads nothing while b joins and takes half.
    let a = Reader::new(ReaderConfig {
        queue_capacity: 2000,
        ..reader_config(&c, "t1398", Some("g1398"))
    })
    .unwrap();
    let first = within(20, "a reads", a.fetch_message()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // the queue fills
    let b = Reader::new(reader_config(&c, "t1398", Some("g1398"))).unwrap();
    within(20, "rebalance", async {
        loop {
            let (x, y) = (a.assignment(), b.assignment());
            if x.len() == 2 && y.len() == 2 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(10), b.fetch_message()).await;
        }
    })
    .await;
    let mine = a.assignment();
    assert!(mine.contains_key(&first.partition) || mine.len() == 2);
    for _ in 0..200 {
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), a.fetch_message()).await
        else {
            break;
        };
        assert!(
            a.assignment().contains_key(&m.partition),
            "message of revoked partition {} delivered after the rebalance (assignment {:?})",
            m.partition,
            a.assignment()
        );
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_message_commits_only_after_the_application_moves_on_kafka_go_1276() {
    let c = cluster().await;
    c.create_topic("t1276", 1).unwrap();
    let w = Writer::new(writer_config(&c, "t1276")).unwrap();
    write_range(&w, 0..3).await;
    let r = Reader::new(reader_config(&c, "t1276", Some("g1276"))).unwrap();
    let m0 = within(20, "read", r.read_message()).await.unwrap();
    assert_eq!(m0.offset, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.committed_offset("g1276", "t1276", 0),
        None,
        "nothing committed while the application holds message 0"
    );
    let m1 = within(20, "read", r.read_message()).await.unwrap();
    assert_eq!(m1.offset, 1);
    assert_eq!(c.committed_offset("g1276", "t1276", 0), Some(1));
    r.close().await.unwrap();
    assert_eq!(
        c.committed_offset("g1276", "t1276", 0),
        Some(2),
        "close commits the last one"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_returns_promptly_during_a_rebalance_kafka_go_1248() {
    let c = cluster().await;
    c.create_topic("t1248", 2).unwrap();
    // a heartbeats rarely, so the rebalance b starts stays open for seconds.
    let a = Reader::new(ReaderConfig {
        heartbeat_interval: Duration::from_secs(5),
        session_timeout: Duration::from_secs(20),
        rebalance_timeout: Duration::from_secs(20),
        ..reader_config(&c, "t1248", Some("g1248"))
    })
    .unwrap();
    within(20, "a joins", async {
        while a.assignment().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let b = Reader::new(ReaderConfig {
        rebalance_timeout: Duration::from_secs(20),
        session_timeout: Duration::from_secs(20),
        ..reader_config(&c, "t1248", Some("g1248"))
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // b waits in JoinGroup
    let t = Instant::now();
    b.close().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "close took {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    a.close().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "close took {:?}",
        t.elapsed()
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_survives_every_broker_restarting_kafka_go_387() {
    let c = cluster().await;
    c.create_topic_with("t387", 2, 3).unwrap();
    let w = Writer::new(writer_config(&c, "t387")).unwrap();
    write_range(&w, 0..10).await;
    let r = Reader::new(reader_config(&c, "t387", Some("g387"))).unwrap();
    for _ in 0..10 {
        within(20, "read before", r.read_message()).await.unwrap();
    }
    let ctl = c.control();
    for b in 1..=3 {
        ctl.broker_down(b);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for b in 1..=3 {
        ctl.broker_up(b);
    }
    write_range(&w, 10..20).await;
    let mut got: Vec<usize> = Vec::new();
    while got.len() < 10 {
        let m = within(30, "read after restart", r.read_message())
            .await
            .unwrap();
        if index(&m) >= 10 {
            got.push(index(&m));
        }
    }
    got.sort();
    assert_eq!(got, (10..20).collect::<Vec<_>>());
    r.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarting_gets_its_partitions_back_without_a_rebalance_kafka_go_493() {
    let c = cluster().await;
    c.create_topic("t493", 4).unwrap();
    let cfg = |instance: &str| ReaderConfig {
        group_instance_id: Some(instance.into()),
        ..reader_config(&c, "t493", Some("g493"))
    };
    let a = Reader::new(cfg("a")).unwrap();
    let b = Reader::new(cfg("b")).unwrap();
    within(20, "split", async {
        while a.assignment().len() + b.assignment().len() < 4
            || a.assignment().is_empty()
            || b.assignment().is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = a.assignment().keys().copied().collect::<Vec<_>>();
    let b_rebalances = b.stats().rebalances;
    a.close().await.unwrap(); // a static member does not leave
    let a2 = Reader::new(cfg("a")).unwrap();
    within(20, "a back", async {
        while a2.assignment().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(a2.assignment().keys().copied().collect::<Vec<_>>(), before);
    assert_eq!(b.stats().rebalances, b_rebalances, "b saw no rebalance");
    a2.close().await.unwrap();
    b.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_out_of_range_policy_error_surfaces() {
    let c = cluster().await;
    c.create_topic("toor", 1).unwrap();
    let w = Writer::new(writer_config(&c, "toor")).unwrap();
    write_range(&w, 0..5).await;
    let r = Reader::new(ReaderConfig {
        offset_out_of_range: OffsetOutOfRange::Error,
        ..reader_config(&c, "toor", None)
    })
    .unwrap();
    r.set_offset(100).unwrap();
    let e = within(20, "error", r.fetch_message()).await.unwrap_err();
    assert_eq!(e.kafka_code(), Some(1), "{e}");
    // A seek to a valid offset resumes.
    r.set_offset(3).unwrap();
    let m = within(20, "read", r.fetch_message()).await.unwrap();
    assert_eq!(m.offset, 3);
    r.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundrobin_is_chosen_when_every_member_offers_it_and_stream_reads() {
    use futures_util::StreamExt;
    let c = cluster().await;
    c.create_topic("trr", 4).unwrap();
    let w = Writer::new(WriterConfig {
        balancer: Balancer::RoundRobin,
        ..writer_config(&c, "trr")
    })
    .unwrap();
    write_range(&w, 0..40).await;
    let a = Reader::new(ReaderConfig {
        group_balancers: vec![GroupBalancer::RoundRobin, GroupBalancer::Range],
        ..reader_config(&c, "trr", Some("grr"))
    })
    .unwrap();
    let b = Reader::new(ReaderConfig {
        group_balancers: vec![GroupBalancer::RoundRobin],
        ..reader_config(&c, "trr", Some("grr"))
    })
    .unwrap();
    within(20, "split", async {
        while a.assignment().len() != 2 || b.assignment().len() != 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Round robin deals partitions out in turn: each member gets 0/2 or 1/3.
    let pa: Vec<i32> = a.assignment().keys().copied().collect();
    assert!(pa == vec![0, 2] || pa == vec![1, 3], "{pa:?}");
    let got: Vec<_> = within(20, "stream", a.stream().take(20).collect::<Vec<_>>()).await;
    assert_eq!(got.len(), 20);
    assert!(got
        .iter()
        .all(|m| m.as_ref().is_ok_and(|m| pa.contains(&m.partition))));
    a.close().await.unwrap();
    b.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_picks_up_partitions_added_to_its_topic() {
    let c = cluster().await;
    c.create_topic("grow", 2).unwrap();
    let r = Reader::new(ReaderConfig {
        partition_watch_interval: Duration::from_millis(200),
        ..reader_config(&c, "grow", Some("ggrow"))
    })
    .unwrap();
    within(20, "assigned", async {
        while r.assignment().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    kafkit::Admin::new(c.addrs())
        .unwrap()
        .create_partitions("grow", 4)
        .await
        .unwrap();
    within(20, "the new partitions are assigned", async {
        while r.assignment().len() < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let w = Writer::new(WriterConfig {
        balancer: Balancer::RoundRobin,
        ..writer_config(&c, "grow")
    })
    .unwrap();
    write_range(&w, 0..40).await;
    let mut parts = std::collections::BTreeSet::new();
    for _ in 0..40 {
        parts.insert(
            within(20, "read", r.read_message())
                .await
                .unwrap()
                .partition,
        );
    }
    assert_eq!(
        parts.len(),
        4,
        "records from all four partitions: {parts:?}"
    );
    r.close().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_reads_several_topics() {
    let c = cluster().await;
    c.create_topic("orders", 2).unwrap();
    c.create_topic("payments", 3).unwrap();
    for (topic, n) in [("orders", 0..50), ("payments", 50..120)] {
        let w = Writer::new(WriterConfig {
            balancer: Balancer::RoundRobin,
            ..writer_config(&c, topic)
        })
        .unwrap();
        write_range(&w, n).await;
    }
    let cfg = || ReaderConfig {
        topic: String::new(),
        group_topics: vec!["orders".into(), "payments".into()],
        ..reader_config(&c, "unused", Some("gmulti"))
    };
    let a = Reader::new(cfg()).unwrap();
    let b = Reader::new(cfg()).unwrap();
    within(20, "both topics split", async {
        while a.assignments().len() + b.assignments().len() < 5
            || a.assignments().is_empty()
            || b.assignments().is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Range per topic: orders 1+1, payments 2+1.
    let topics_of = |r: &Reader| {
        r.assignments()
            .keys()
            .map(|(t, _)| t.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(topics_of(&a).len(), 2, "{:?}", a.assignments());
    assert_eq!(topics_of(&b).len(), 2, "{:?}", b.assignments());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let read = |r: Reader, seen: Arc<Mutex<Vec<(String, usize)>>>| async move {
        while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), r.read_message()).await {
            assert!(r
                .assignments()
                .contains_key(&(m.topic.clone(), m.partition)));
            seen.lock().unwrap().push((m.topic.clone(), index(&m)));
        }
        r.close().await.unwrap();
    };
    let (ra, rb) = tokio::join!(read(a, seen.clone()), read(b, seen.clone()));
    let _ = (ra, rb);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(_, i)| *i);
    assert_eq!(seen.len(), 120, "every record once");
    for (t, i) in &seen {
        assert_eq!(t, if *i < 50 { "orders" } else { "payments" });
    }
    assert_eq!(c.committed_offset("gmulti", "payments", 0), Some(24));
    let bad = kafkit::Reader::new(ReaderConfig {
        group_id: None,
        ..cfg()
    })
    .unwrap_err();
    assert!(
        matches!(
            bad,
            kafkit::Error::Config {
                field: "group_topics",
                ..
            }
        ),
        "{bad}"
    );
    let bad = kafkit::Reader::new(ReaderConfig {
        topic: "orders".into(),
        ..cfg()
    })
    .unwrap_err();
    assert!(
        matches!(
            bad,
            kafkit::Error::Config {
                field: "group_topics",
                ..
            }
        ),
        "{bad}"
    );
    c.shutdown().await;
}
