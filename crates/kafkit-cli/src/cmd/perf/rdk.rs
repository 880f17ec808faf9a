//! librdkafka's side of `perf compare` (through the `rdkafka` crate): the same workloads with
//! equivalent settings. librdkafka's calls block, so each run goes on a blocking thread and the
//! tokio workers (which may be running the embedded cluster) stay free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kafkit::{Compression, RequiredAcks};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::report::{Recorder, Report};
use super::ProducerOpts;

struct Ctx {
    rec: Recorder,
    errors: Arc<AtomicU64>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, sent: Box<Instant>) {
        match r {
            Ok(_) => self.rec.record(sent.elapsed(), 1),
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn codec(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// The producer settings that match kafkit's `WriterConfig` for the same options.
pub fn producer_config(brokers: &[String], p: &ProducerOpts) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in crate::cmd::global().props.librdkafka_security() {
        c.set(k, v);
    }
    c.set("bootstrap.servers", brokers.join(","))
        .set(
            "acks",
            match p.acks {
                RequiredAcks::None => "0",
                RequiredAcks::One => "1",
                RequiredAcks::All => "all",
            },
        )
        .set("linger.ms", format!("{}", p.linger.as_secs_f64() * 1000.0))
        .set("batch.num.messages", p.batch_size.to_string())
        .set("batch.size", p.batch_bytes.to_string())
        .set("compression.codec", codec(p.compression))
        .set(
            "enable.idempotence",
            (p.acks == RequiredAcks::All && !p.no_idempotence).to_string(),
        )
        .set(
            "queue.buffering.max.kbytes",
            (p.buffer_memory / 1024).max(1).to_string(),
        )
        .set("queue.buffering.max.messages", "1000000")
        .set("client.id", "librdkafka-perf")
        .set(
            "max.in.flight.requests.per.connection",
            p.max_in_flight.to_string(),
        );
    if let Some(level) = p.compression_level {
        c.set("compression.level", level.to_string());
    }
    c
}

/// Sends `records` values of `size` bytes (at `rate`/s unless -1); latency per record from
/// `send` to its delivery report.
pub async fn produce(
    brokers: Vec<String>,
    topic: String,
    p: ProducerOpts,
    records: u64,
    rate: i64,
) -> anyhow::Result<Report> {
    tokio::task::spawn_blocking(move || produce_blocking(&brokers, &topic, &p, records, rate))
        .await?
}

fn produce_blocking(
    brokers: &[String],
    topic: &str,
    p: &ProducerOpts,
    records: u64,
    rate: i64,
) -> anyhow::Result<Report> {
    let value = super::load::payload(p.record_size);
    let rec = Recorder::new(Instant::now());
    let errors = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Ctx> = producer_config(brokers, p)
        .create_with_context(Ctx {
            rec: rec.clone(),
            errors: errors.clone(),
        })
        .context("librdkafka producer")?;
    // Warm up (metadata, connections, producer id) outside the measurement.
    send(&producer, topic, &value)?;
    producer.flush(Duration::from_secs(30))?;
    let start = Instant::now();
    rec.reset(start);
    for i in 0..records {
        if rate > 0 {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        send(&producer, topic, &value)?;
    }
    producer.flush(Duration::from_secs(120))?;
    let elapsed = start.elapsed();
    let (hist, timeline) = rec.finish();
    let errors = errors.load(Ordering::Relaxed);
    Ok(Report {
        client: "librdkafka".into(),
        workload: "produce".into(),
        records: records - errors,
        bytes: (records - errors) * p.record_size as u64,
        errors,
        elapsed,
        latency: (p.acks != RequiredAcks::None).then_some(hist),
        timeline,
        first_record: None,
        joined: None,
        peak_rss: None,
    })
}

fn send(producer: &ThreadedProducer<Ctx>, topic: &str, value: &[u8]) -> anyhow::Result<()> {
    let mut record =
        BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(topic, Box::new(Instant::now()))
            .payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Reads `records` records as a new group from the beginning. `tuned`: as librdkafka's docs
/// advise for a large backlog — `fetch.queue.backoff.ms=1` (default 1,000: the fetcher backs
/// off that long whenever its local queue is full) and a deeper prefetch queue
/// (`queued.min.messages=1000000`, `queued.max.messages.kbytes=262144`).
pub async fn consume(
    brokers: Vec<String>,
    topic: String,
    records: u64,
    tuned: bool,
) -> anyhow::Result<Report> {
    tokio::task::spawn_blocking(move || consume_blocking(&brokers, &topic, records, tuned)).await?
}

fn consume_blocking(
    brokers: &[String],
    topic: &str,
    records: u64,
    tuned: bool,
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let mut config = ClientConfig::new();
    for (k, v) in crate::cmd::global().props.librdkafka_security() {
        config.set(k, v);
    }
    if tuned {
        config
            .set("fetch.queue.backoff.ms", "1")
            .set("queued.min.messages", "1000000")
            .set("queued.max.messages.kbytes", "262144");
    }
    let consumer: BaseConsumer = config
        .set("bootstrap.servers", brokers.join(","))
        .set(
            "group.id",
            format!("librdkafka-perf-{}", super::load::uuid_ish()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "500")
        .set("session.timeout.ms", "10000")
        .set("client.id", "librdkafka-perf")
        .create()
        .context("librdkafka consumer")?;
    consumer.subscribe(&[topic])?;
    let (mut n, mut bytes, mut first) = (0u64, 0u64, None);
    // The clock is read only while idle (no clock read per record, as on kafkit's side).
    let mut idle: Option<Instant> = None;
    let mut joined = None;
    while n < records {
        if joined.is_none() && consumer.assignment().is_ok_and(|a| a.count() > 0) {
            joined = Some(start.elapsed());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(|| start.elapsed());
                bytes += m.payload_len() as u64 + m.key().map_or(0, |k| k.len() as u64);
                n += 1;
                idle = None;
            }
            Some(Err(e)) => anyhow::bail!("librdkafka consumer: {e}"),
            None => anyhow::ensure!(
                idle.get_or_insert_with(Instant::now).elapsed() < Duration::from_secs(30),
                "librdkafka consumer: no record for 30 s"
            ),
        }
    }
    let elapsed = start.elapsed();
    consumer.unsubscribe();
    Ok(Report {
        client: "librdkafka".into(),
        workload: "consume".into(),
        records: n,
        bytes,
        errors: 0,
        elapsed,
        latency: None,
        timeline: Vec::new(),
        first_record: first,
        joined,
        peak_rss: None,
    })
}
