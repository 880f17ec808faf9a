//! The tutorial's program ("Implementing a Kafka Producer and Consumer In Go") in Rust: a
//! producer writes `this is message{i}` with key `{i}` every second, a consumer in group
//! `my-group` prints what it receives. Against the brokers in `KAFKA_BROKERS`, or an embedded
//! 3-broker cluster when it is not set. `kafkit demo` is the same program with every knob.
//!
//! Run with `cargo run --example seed_demo`.

use std::time::Duration;

use kafkit::{Message, Reader, ReaderConfig, Writer, WriterConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (cluster, brokers) = match std::env::var("KAFKA_BROKERS") {
        Ok(b) => (None, b.split(',').map(str::to_owned).collect()),
        Err(_) => {
            let c = kafkit_broker::Cluster::builder().brokers(3).start().await?;
            let addrs = c.addrs();
            (Some(c), addrs)
        }
    };
    let topic = "message-log".to_string();
    let writer = Writer::new(WriterConfig {
        brokers: brokers.clone(),
        topic: topic.clone(),
        ..Default::default()
    })?;
    let reader = Reader::new(ReaderConfig {
        brokers,
        topic,
        group_id: Some("my-group".into()),
        ..Default::default()
    })?;
    let produce = async {
        for i in 0..5 {
            writer
                .write_messages(vec![Message::new(
                    i.to_string(),
                    format!("this is message{i}"),
                )])
                .await?;
            println!("writes: {i}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok::<(), kafkit::Error>(())
    };
    let consume = async {
        for _ in 0..5 {
            let msg = reader.read_message().await?;
            println!(
                "received:  {}",
                String::from_utf8_lossy(msg.value.as_deref().unwrap_or_default())
            );
        }
        Ok::<(), kafkit::Error>(())
    };
    tokio::try_join!(produce, consume)?;
    reader.close().await?;
    writer.close().await?;
    if let Some(c) = cluster {
        c.shutdown().await;
    }
    Ok(())
}
