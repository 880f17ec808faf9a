//! Using the embedded cluster in your own tests instead of Kafka in Docker: start it on free
//! ports with temporary data, point any client at `cluster.addrs()`, shut it down at the end.
//!
//! Run with `cargo run --example testing_with_embedded`.

use kafkit::{Message, Reader, ReaderConfig, Writer, WriterConfig};
use kafkit_broker::Cluster;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder().brokers(1).start().await?;
    cluster.create_topic("events", 1)?;
    let writer = Writer::new(WriterConfig {
        brokers: cluster.addrs(),
        topic: "events".into(),
        ..Default::default()
    })?;
    writer
        .write_messages(vec![Message::new("user-1", "signed up")])
        .await?;
    let reader = Reader::new(ReaderConfig {
        brokers: cluster.addrs(),
        topic: "events".into(),
        ..Default::default()
    })?;
    let m = reader.read_message().await?;
    assert_eq!(m.value.as_deref(), Some(&b"signed up"[..]));
    println!(
        "the code under test saw: {:?}",
        String::from_utf8_lossy(m.value.as_deref().unwrap_or_default())
    );
    reader.close().await?;
    cluster.shutdown().await;
    Ok(())
}
