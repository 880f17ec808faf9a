//! `kafkit demo`: the tutorial's program. A producer writes `this is message{i}` with key `{i}`
//! every `--interval`; a consumer in group `my-group` prints what it receives.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kafkit::{Message, Reader, ReaderConfig, RequiredAcks, StartOffset, Writer, WriterConfig};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Start {
    /// Earliest available message.
    First,
    /// Only messages written after joining.
    Last,
}

/// Options of `kafkit demo` (the tutorial's knobs).
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Topic.
    #[arg(long, default_value = "message-log")]
    pub topic: String,
    /// Consumer group.
    #[arg(long, default_value = "my-group")]
    pub group: String,
    /// Time between writes.
    #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
    pub interval: Duration,
    /// Stop after this many messages (default: run until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
    /// Writer: messages per batch.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Writer: longest a batch waits to fill (synchronous writes never wait for it).
    #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
    pub batch_timeout: Duration,
    /// Writer: required acks, 0, 1 or -1 (all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub acks: i16,
    /// Reader: bytes the broker waits for before answering a fetch.
    #[arg(long, default_value_t = 1)]
    pub min_bytes: usize,
    /// Reader: most bytes per fetch.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_bytes: usize,
    /// Reader: longest a fetch waits for min-bytes.
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    pub max_wait: Duration,
    /// Reader: where a new group starts.
    #[arg(long, value_enum, default_value = "first")]
    pub start_offset: Start,
    /// Embedded cluster: data directory (default: <user data dir>/kafkit/demo).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Embedded cluster: port of the first broker.
    #[arg(long, default_value_t = 9093)]
    pub port_base: u16,
}

pub async fn run(a: DemoArgs) -> anyhow::Result<()> {
    let acks = RequiredAcks::from_i16(a.acks)?;
    let (cluster, brokers) = if super::global().brokers.is_empty() {
        let dir = a
            .data_dir
            .clone()
            .unwrap_or_else(|| super::default_data_dir("demo"));
        let c = kafkit_broker::Cluster::builder()
            .brokers(3)
            .port_base(a.port_base)
            .data_dir(&dir)
            .start()
            .await
            .with_context(|| {
                format!("starting the embedded cluster (data in {})", dir.display())
            })?;
        c.ensure_topic(&a.topic, 3)?;
        eprintln!(
            "embedded cluster on {} (data in {})",
            c.bootstrap(),
            dir.display()
        );
        let addrs = c.addrs();
        (Some(c), addrs)
    } else {
        (None, super::global().brokers.clone())
    };
    let mut writer_config = WriterConfig {
        brokers: brokers.clone(),
        topic: a.topic.clone(),
        batch_size: a.batch_size,
        batch_timeout: a.batch_timeout,
        required_acks: acks,
        ..Default::default()
    };
    let mut reader_config = ReaderConfig {
        brokers,
        topic: a.topic.clone(),
        group_id: Some(a.group.clone()),
        min_bytes: a.min_bytes,
        max_bytes: a.max_bytes,
        max_wait: a.max_wait,
        start_offset: match a.start_offset {
            Start::First => StartOffset::First,
            Start::Last => StartOffset::Last,
        },
        ..Default::default()
    };
    // -X/-F properties (security for an existing cluster, client knobs) win over the flags.
    if cluster.is_none() {
        super::apply_writer(&mut writer_config)?;
        super::apply_reader(&mut reader_config)?;
    }
    let writer = Writer::new(writer_config)?;
    let reader = Reader::new(reader_config)?;

    let count = a.count;
    let interval = a.interval;
    let produce = async {
        // Start writing once the consumer holds its partitions, so `--start-offset last` sees
        // every message this run writes (bounded wait: the group may give this member nothing).
        let joined = tokio::time::Instant::now() + Duration::from_secs(30);
        while reader.assignment().is_empty() && tokio::time::Instant::now() < joined {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut i: u64 = 0;
        while count.is_none_or(|c| i < c) {
            writer
                .write_messages(vec![Message::new(
                    i.to_string(),
                    format!("this is message{i}"),
                )])
                .await
                .with_context(|| format!("could not write message {i}"))?;
            println!("writes: {i}");
            i += 1;
            tokio::time::sleep(interval).await;
        }
        anyhow::Ok(())
    };
    let consume = async {
        let mut n: u64 = 0;
        while count.is_none_or(|c| n < c) {
            let msg = reader
                .read_message()
                .await
                .context("could not read message")?;
            println!(
                "received:  {}",
                String::from_utf8_lossy(msg.value.as_deref().unwrap_or_default())
            );
            n += 1;
        }
        anyhow::Ok(())
    };
    let outcome = tokio::select! {
        r = async { tokio::try_join!(produce, consume) } => r.map(|_| ()),
        _ = super::shutdown_signal() => { eprintln!("stopping..."); Ok(()) }
    };
    reader.close().await?;
    writer.close().await?;
    if let Some(c) = cluster {
        c.shutdown().await;
    }
    outcome
}
