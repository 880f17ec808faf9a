//! Embedded-cluster benchmark (issue 3): how long `Cluster::start` takes until every broker
//! answers, and single-producer throughput of 100-byte records with acks=1 on RF=1 topics and
//! acks=-1 on RF=3 topics. Not a test: it prints numbers for docs/BENCHMARKS.md.
//!
//! `cargo bench -p kafkit-cli --bench broker_throughput [-- RECORDS]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafkit::conn::{ConnConfig, Connection};
use kafkit::{Balancer, Message, RequiredAcks, Writer, WriterConfig};
use kafkit_broker::Cluster;

async fn start_until_ready() -> (Duration, Cluster) {
    let t = Instant::now();
    let c = Cluster::builder()
        .brokers(3)
        .start()
        .await
        .expect("cluster");
    for addr in c.addrs() {
        let cfg = ConnConfig {
            client_id: "bench".into(),
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            ..Default::default()
        };
        Connection::connect(&addr, cfg)
            .await
            .expect("broker answers ApiVersions");
    }
    (t.elapsed(), c)
}

async fn produce(records: usize, acks: RequiredAcks, rf: i16) -> f64 {
    let c = Cluster::builder()
        .brokers(3)
        .start()
        .await
        .expect("cluster");
    c.create_topic_with("bench", 3, rf).expect("topic");
    let w = Writer::new(WriterConfig {
        brokers: c.addrs(),
        topic: "bench".into(),
        balancer: Balancer::RoundRobin,
        required_acks: acks,
        batch_size: 10_000,
        batch_bytes: 1_000_000,
        ..Default::default()
    })
    .expect("writer");
    let payload = Bytes::from(vec![b'x'; 100]);
    let chunk: Vec<Message> = (0..100_000)
        .map(|_| Message {
            value: Some(payload.clone()),
            ..Default::default()
        })
        .collect();
    w.write_messages(chunk[..1000].to_vec())
        .await
        .expect("warm-up");
    let t = Instant::now();
    let mut done = 0;
    while done < records {
        let n = chunk.len().min(records - done);
        w.write_messages(chunk[..n].to_vec()).await.expect("write");
        done += n;
    }
    let secs = t.elapsed().as_secs_f64();
    let written: i64 = c
        .partitions("bench")
        .expect("topic")
        .iter()
        .map(|(_, hw)| hw)
        .sum();
    assert_eq!(
        written as usize,
        records + 1000,
        "every record acknowledged is in the log"
    );
    w.close().await.expect("close");
    c.shutdown().await;
    records as f64 / secs
}

fn main() {
    let records: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut starts = Vec::new();
        for _ in 0..5 {
            let (d, c) = start_until_ready().await;
            starts.push(d);
            c.shutdown().await;
        }
        starts.sort();
        println!("Cluster::start until 3 brokers answer ApiVersions: median {:?} (of 5; min {:?}, max {:?})", starts[2], starts[0], starts[4]);
        for (acks, rf, label) in [(RequiredAcks::One, 1, "acks=1, RF=1"), (RequiredAcks::All, 3, "acks=-1, RF=3")] {
            let rate = produce(records, acks, rf).await;
            println!("single producer, {records} x 100 B, {label}: {rate:.0} records/s ({:.1} MB/s)", rate * 100.0 / 1e6);
        }
    });
}
