//! Fault injection on the embedded cluster: a writer and a reader keep working while the
//! partition leader's broker goes down, a leader moves, and produce requests fail.
//!
//! Run with `cargo run --example fault_injection` (add `RUST_LOG=kafkit=info` to watch).

use std::time::Duration;

use kafkit::{Message, Reader, ReaderConfig, Writer, WriterConfig};
use kafkit_broker::Cluster;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Three brokers on free ports, temporary data, topic replicated on all three.
    let cluster = Cluster::builder().brokers(3).start().await?;
    cluster.create_topic_with("orders", 1, 3)?;
    let control = cluster.control();

    let writer = Writer::new(WriterConfig {
        brokers: cluster.addrs(),
        topic: "orders".into(),
        ..Default::default()
    })?;
    let reader = Reader::new(ReaderConfig {
        brokers: cluster.addrs(),
        topic: "orders".into(),
        group_id: Some("billing".into()),
        max_wait: Duration::from_millis(200),
        ..Default::default()
    })?;

    writer
        .write_messages(
            (0..10)
                .map(|i| Message::new(format!("order-{i}"), "created"))
                .collect(),
        )
        .await?;

    // 1. The leader's broker goes down: a follower from the ISR takes over.
    let leader = control.leader("orders", 0).expect("partition exists");
    control.broker_down(leader);
    println!(
        "broker {leader} down; new leader {:?}, ISR {:?}",
        control.leader("orders", 0),
        control.isr("orders", 0)
    );
    writer
        .write_messages(
            (10..20)
                .map(|i| Message::new(format!("order-{i}"), "created"))
                .collect(),
        )
        .await?;

    // 2. It comes back, truncates to the high watermark, catches up and rejoins the ISR.
    control.broker_up(leader);
    // 3. Move the leader back by hand.
    tokio::time::sleep(Duration::from_millis(100)).await;
    control.move_leader("orders", 0, leader)?;
    // 4. The next two produce requests fail with NOT_LEADER_OR_FOLLOWER (6): the writer retries.
    control.inject_error(0, 6, 2, None);
    writer
        .write_messages(
            (20..30)
                .map(|i| Message::new(format!("order-{i}"), "created"))
                .collect(),
        )
        .await?;

    for _ in 0..30 {
        let m = reader.read_message().await?;
        println!(
            "read {} at offset {}",
            String::from_utf8_lossy(m.key.as_deref().unwrap_or_default()),
            m.offset
        );
    }
    println!("ISR at the end: {:?}", control.isr("orders", 0));
    reader.close().await?;
    writer.close().await?;
    cluster.shutdown().await;
    Ok(())
}
