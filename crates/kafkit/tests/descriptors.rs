//! Thousands of partition replicas share a bounded set of open files (issue 11: one request
//! auto-creating 2,200 topics once took 19,993 of 20,000 descriptors, and a restart took them
//! again). Its own test binary, so the process's descriptor count is this test's alone.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kafkit::{Balancer, Message, Reader, ReaderConfig, RequiredAcks, StartOffset, Writer};
use kafkit_broker::Cluster;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Samples the descriptor count every 2 ms and keeps the peak until dropped.
struct PeakFds {
    peak: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakFds {
    fn start() -> Self {
        let peak = Arc::new(AtomicUsize::new(open_fds()));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(open_fds(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Self { peak, task }
    }
    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for PeakFds {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const LIMIT: usize = 64;
/// Listeners, connections between our clients and the brokers, the offsets log, runtime
/// internals: what the cluster holds besides segment files.
const SLACK: usize = 60;

async fn start(dir: &std::path::Path) -> Cluster {
    init_logs();
    Cluster::builder()
        .brokers(3)
        .data_dir(dir)
        .configure(|c| c.max_open_files = LIMIT)
        .start()
        .await
        .expect("cluster starts")
}

async fn read_partition(c: &Cluster, topic: &str, partition: i32, n: usize) -> Vec<String> {
    let r = Reader::new(ReaderConfig {
        partition,
        start_offset: StartOffset::First,
        ..reader_config(c, topic, None)
    })
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..n {
        let m = within(20, "read", r.read_message()).await.unwrap();
        got.push(String::from_utf8(m.value.unwrap().to_vec()).unwrap());
    }
    r.close().await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_partition_replicas_hold_a_bounded_number_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let before = open_fds();
    let bound = before + LIMIT + SLACK;

    let c = start(dir.path()).await;
    let peak = PeakFds::start();
    // 3,000 replica logs, each with a segment file.
    c.create_topic_with("many", 1000, 3).unwrap();
    let after_create = open_fds();
    assert!(
        after_create <= bound,
        "{after_create} descriptors after creating 3,000 replicas (started at {before})"
    );

    // A record to every partition, acks=all: every leader and follower segment is written.
    let w = Writer::new(kafkit::WriterConfig {
        balancer: Balancer::RoundRobin,
        required_acks: RequiredAcks::All,
        ..writer_config(&c, "many")
    })
    .unwrap();
    let msgs: Vec<Message> = (0..3000).map(|i| Message::value(format!("r{i}"))).collect();
    within(60, "write", w.write_messages(msgs)).await.unwrap();
    w.close().await.unwrap();
    let ends = c.partitions("many").unwrap();
    assert_eq!(ends.len(), 1000);
    assert!(ends.iter().all(|&(_, end)| end == 3), "{ends:?}");

    // Reads of partitions whose files were closed meanwhile reopen them.
    for p in [0, 499, 999] {
        assert_eq!(read_partition(&c, "many", p, 3).await.len(), 3);
    }
    let during = peak.peak();
    assert!(
        during <= bound,
        "peak of {during} descriptors with 3,000 replicas (started at {before}, budget {LIMIT})"
    );
    eprintln!("descriptors: {before} before, {after_create} after the create, peak {during} while writing and reading");
    drop(peak);
    c.shutdown().await;

    // A restart recovers every log without keeping them open.
    let peak = PeakFds::start();
    let c = start(dir.path()).await;
    let ends = c.partitions("many").unwrap();
    assert!(ends.iter().all(|&(_, end)| end == 3), "{ends:?}");
    let got = read_partition(&c, "many", 777, 3).await;
    assert_eq!(got.len(), 3);
    let during = peak.peak();
    assert!(
        during <= bound,
        "peak of {during} descriptors after a restart with 3,000 replicas (started at {before})"
    );
    eprintln!("descriptors: peak {during} across the restart and a read");
    c.shutdown().await;
}
