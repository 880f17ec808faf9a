//! kafkit's side of the load tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use kafkit::{Balancer, Message, Reader, ReaderConfig, RequiredAcks, Writer, WriterConfig};

use super::report::{peak_rss, Recorder, Report};
use super::{E2eOpts, ProduceOpts, ProducerOpts, Progress};

/// A payload of `size` bytes that compresses about as well as text does.
pub fn payload(size: usize) -> Bytes {
    let text = b"kafkit perf record: the quick brown fox jumps over the lazy dog 0123456789 ";
    Bytes::from(text.iter().copied().cycle().take(size).collect::<Vec<u8>>())
}

pub fn writer_config(brokers: &[String], topic: &str, p: &ProducerOpts) -> WriterConfig {
    WriterConfig {
        security: crate::cmd::security(),
        brokers: brokers.to_vec(),
        topic: topic.into(),
        // Sticky, as librdkafka's default partitioner for unkeyed records.
        balancer: Balancer::Sticky,
        batch_size: p.batch_size,
        batch_bytes: p.batch_bytes,
        batch_timeout: p.linger,
        required_acks: p.acks,
        compression: p.compression,
        idempotent: !p.no_idempotence,
        compression_level: p.compression_level,
        max_in_flight: p.max_in_flight,
        buffer_memory: p.buffer_memory,
        client_id: "kafkit-perf".into(),
        ..Default::default()
    }
}

/// Where kafkit's side of a load runs (`--client-runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ClientRuntime {
    /// Its own thread with a single-threaded tokio runtime: the client's tasks (sender,
    /// request builder, connections, the application loop) hand work to each other without
    /// waking another thread.
    #[default]
    CurrentThread,
    /// The command's multi-threaded runtime (one worker per core): a hand-off between tasks may
    /// wake an idle worker, which costs from tens of microseconds to milliseconds on a VM.
    MultiThread,
}

/// Runs `f` where `rt` says and returns its result.
async fn on_runtime<T, F, Fut>(rt: ClientRuntime, f: F) -> anyhow::Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match rt {
        ClientRuntime::MultiThread => f().await,
        ClientRuntime::CurrentThread => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("kafkit-client".into())
                .spawn(move || {
                    let r = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(anyhow::Error::from)
                        .and_then(|rt| rt.block_on(f()));
                    let _ = tx.send(r);
                })
                .context("starting the client thread")?;
            rx.await.context("the client thread stopped")?
        }
    }
}

/// Sends `num_records` (at `throughput`/s unless -1) and records each acknowledgement's latency
/// from the moment the record was handed to the writer.
pub async fn produce(
    rt: ClientRuntime,
    brokers: &[String],
    topic: &str,
    o: &ProduceOpts,
    quiet: bool,
) -> anyhow::Result<Report> {
    let (brokers, topic, o) = (brokers.to_vec(), topic.to_owned(), o.clone());
    on_runtime(rt, move || async move {
        produce_here(&brokers, &topic, &o, quiet).await
    })
    .await
}

async fn produce_here(
    brokers: &[String],
    topic: &str,
    o: &ProduceOpts,
    quiet: bool,
) -> anyhow::Result<Report> {
    let w = Arc::new(Writer::new(writer_config(brokers, topic, &o.producer))?);
    let value = payload(o.producer.record_size);
    // Warm up: metadata, connections and the producer id, outside the measurement.
    w.write_messages(vec![Message::value(value.clone())])
        .await
        .context("first write")?;
    let start = Instant::now();
    let rec = Recorder::new(start);
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("produce".into(), o.num_records, done.clone(), quiet);
    // Unlimited: hand records over in chunks (as an application writing slices does);
    // rate-limited: one record at its scheduled time.
    let chunk = if o.throughput > 0 { 1 } else { 100 };
    let mut sent = 0u64;
    let mut waiters = tokio::task::JoinSet::new();
    while sent < o.num_records {
        let n = chunk.min(o.num_records - sent);
        if o.throughput > 0 {
            let due = start + Duration::from_secs_f64(sent as f64 / o.throughput as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let msgs: Vec<Message> = (0..n).map(|_| Message::value(value.clone())).collect();
        let queued = Instant::now();
        let d = w.write_messages_nowait(msgs).await?;
        let (rec, errors, done) = (rec.clone(), errors.clone(), done.clone());
        waiters.spawn(async move {
            match d.wait().await {
                Ok(()) => rec.record(queued.elapsed(), n),
                Err(kafkit::Error::WriteFailed { failed, .. }) => {
                    let bad: u64 = failed.iter().map(|(i, _)| i.len() as u64).sum();
                    errors.fetch_add(bad, Ordering::Relaxed);
                    rec.record(queued.elapsed(), n - bad);
                }
                Err(_) => {
                    errors.fetch_add(n, Ordering::Relaxed);
                }
            }
            done.fetch_add(n, Ordering::Relaxed);
        });
        // Reap finished waiters so their memory does not pile up.
        while waiters.try_join_next().is_some() {}
        sent += n;
    }
    while waiters.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    progress.finish().await;
    w.close().await?;
    let (hist, timeline) = rec.finish();
    let errors = errors.load(Ordering::Relaxed);
    let records = o.num_records - errors;
    Ok(Report {
        client: "kafkit".into(),
        workload: "produce".into(),
        records,
        bytes: records * o.producer.record_size as u64,
        errors,
        elapsed,
        latency: (o.producer.acks != RequiredAcks::None).then_some(hist),
        timeline,
        first_record: None,
        joined: None,
        peak_rss: peak_rss(),
    })
}

/// Makes sure `topic` holds at least `records` records.
pub async fn fill(
    brokers: &[String],
    topic: &str,
    records: u64,
    size: usize,
) -> anyhow::Result<()> {
    let admin = kafkit::Admin::with_security(brokers.to_vec(), crate::cmd::security())?;
    let have: i64 = admin.list_offsets(topic, -1).await?.values().sum::<i64>()
        - admin.list_offsets(topic, -2).await?.values().sum::<i64>();
    let missing = records.saturating_sub(have.max(0) as u64);
    if missing == 0 {
        return Ok(());
    }
    eprintln!("filling {topic} with {missing} records of {size} bytes");
    let w = Writer::new(WriterConfig {
        security: crate::cmd::security(),
        brokers: brokers.to_vec(),
        topic: topic.into(),
        balancer: Balancer::RoundRobin,
        batch_size: 10_000,
        required_acks: RequiredAcks::One,
        batch_timeout: Duration::from_millis(5),
        ..Default::default()
    })?;
    let value = payload(size);
    let mut left = missing;
    let mut pending = Vec::new();
    while left > 0 {
        let n = left.min(1000);
        pending.push(
            w.write_messages_nowait((0..n).map(|_| Message::value(value.clone())).collect())
                .await?,
        );
        left -= n;
    }
    for d in pending {
        d.wait().await?;
    }
    w.close().await?;
    Ok(())
}

/// Reads `records` records as a new group from the beginning (nothing committed).
pub async fn consume(
    rt: ClientRuntime,
    brokers: &[String],
    topic: &str,
    records: u64,
    quiet: bool,
    tuning: (Option<usize>, Option<usize>),
) -> anyhow::Result<Report> {
    let (brokers, topic) = (brokers.to_vec(), topic.to_owned());
    on_runtime(rt, move || async move {
        consume_here(&brokers, &topic, records, quiet, tuning).await
    })
    .await
}

async fn consume_here(
    brokers: &[String],
    topic: &str,
    records: u64,
    quiet: bool,
    (max_buffered_bytes, max_bytes): (Option<usize>, Option<usize>),
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let defaults = ReaderConfig::default();
    let r = Reader::new(ReaderConfig {
        security: crate::cmd::security(),
        max_buffered_bytes: max_buffered_bytes.unwrap_or(defaults.max_buffered_bytes),
        max_bytes: max_bytes.unwrap_or(defaults.max_bytes),
        brokers: brokers.to_vec(),
        topic: topic.into(),
        group_id: Some(format!("kafkit-perf-{}", uuid_ish())),
        max_wait: Duration::from_millis(500),
        heartbeat_interval: Duration::from_secs(1),
        session_timeout: Duration::from_secs(10),
        client_id: "kafkit-perf".into(),
        ..Default::default()
    })?;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("consume".into(), records, done.clone(), quiet);
    let mut first = None;
    let mut joined = None;
    let mut bytes = 0u64;
    let mut n = 0u64;
    while joined.is_none() {
        if !r.assignment().is_empty() {
            joined = Some(start.elapsed());
        } else {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "no partitions after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // No timer per record (a `timeout` around each read costs a clock read and a timer
    // registration, which at a million records a second is harness, not client): a watchdog
    // fails the run when the count has not moved for 30 s.
    let read = async {
        while n < records {
            let m = r.fetch_message().await?;
            first.get_or_insert_with(|| start.elapsed());
            bytes += m.size() as u64;
            n += 1;
            if n % 1024 == 0 {
                done.store(n, Ordering::Relaxed);
            }
        }
        anyhow::Ok(())
    };
    tokio::select! {
        res = read => res?,
        _ = stalled(&done, Duration::from_secs(30)) => anyhow::bail!("no record for 30 s"),
    }
    let elapsed = start.elapsed();
    progress.finish().await;
    r.close().await?;
    Ok(Report {
        client: "kafkit".into(),
        workload: "consume".into(),
        records: n,
        bytes,
        errors: 0,
        elapsed,
        latency: None,
        timeline: Vec::new(),
        first_record: first,
        joined,
        peak_rss: peak_rss(),
    })
}

/// Returns when `count` has not moved for `limit` (checked every second).
pub async fn stalled(count: &AtomicU64, limit: Duration) {
    let (mut last, mut since) = (count.load(Ordering::Relaxed), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= limit {
            return;
        }
    }
}

/// A process-unique suffix for group names.
pub fn uuid_ish() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{t}", std::process::id())
}

/// Writes at a fixed rate and measures, in the same process, the time from handing a record to
/// the writer until `read_message` returns it. The send time travels in the record's value.
pub async fn e2e(
    rt: ClientRuntime,
    brokers: &[String],
    topic: &str,
    o: &E2eOpts,
    quiet: bool,
) -> anyhow::Result<Report> {
    let (brokers, topic, o) = (brokers.to_vec(), topic.to_owned(), o.clone());
    on_runtime(rt, move || async move {
        e2e_here(&brokers, &topic, &o, quiet).await
    })
    .await
}

async fn e2e_here(
    brokers: &[String],
    topic: &str,
    o: &E2eOpts,
    quiet: bool,
) -> anyhow::Result<Report> {
    let base = Instant::now();
    let r = Arc::new(Reader::new(ReaderConfig {
        security: crate::cmd::security(),
        brokers: brokers.to_vec(),
        topic: topic.into(),
        group_id: Some(format!("kafkit-e2e-{}", uuid_ish())),
        start_offset: kafkit::StartOffset::Last,
        min_bytes: 1,
        max_wait: Duration::from_millis(500),
        heartbeat_interval: Duration::from_secs(1),
        session_timeout: Duration::from_secs(10),
        queue_capacity: 10_000,
        ..Default::default()
    })?);
    let partitions = kafkit::Admin::with_security(brokers.to_vec(), crate::cmd::security())?
        .describe_topic(topic)
        .await?
        .len();
    let joined = Instant::now();
    while r.assignment().len() < partitions {
        anyhow::ensure!(
            joined.elapsed() < Duration::from_secs(30),
            "reader not assigned after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The fetchers have asked for their start offsets once the lag is known.
    while r.lag().len() < partitions && joined.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut p = o.producer.clone();
    p.linger = p.linger.min(Duration::from_millis(1));
    let w = Writer::new(writer_config(brokers, topic, &p))?;
    w.write_messages(vec![Message::value(stamp(
        base,
        o.producer.record_size,
        true,
    ))])
    .await?;
    let start = Instant::now();
    let rec = Recorder::new(start);
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("e2e".into(), o.num_records, done.clone(), quiet);
    let reader = {
        let (r, rec, done) = (r.clone(), rec.clone(), done.clone());
        let total = o.num_records;
        tokio::spawn(async move {
            let mut n = 0;
            while n < total {
                let m = match tokio::time::timeout(Duration::from_secs(30), r.fetch_message()).await
                {
                    Ok(Ok(m)) => m,
                    _ => break,
                };
                let v = m.value.unwrap_or_default();
                if v.len() < 9 || v[8] == 1 {
                    continue; // the warm-up record
                }
                let sent = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
                let now = base.elapsed().as_nanos() as u64;
                rec.record(Duration::from_nanos(now.saturating_sub(sent)), 1);
                n += 1;
                done.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..o.num_records {
        let due = start + Duration::from_secs_f64(i as f64 / o.throughput.max(1) as f64);
        tokio::time::sleep_until(due.into()).await;
        let d = w
            .write_messages_nowait(vec![Message::value(stamp(
                base,
                o.producer.record_size,
                false,
            ))])
            .await?;
        pending.spawn(d.wait());
        while pending.try_join_next().is_some() {}
    }
    let mut errors = 0;
    while let Some(r) = pending.join_next().await {
        if !matches!(r, Ok(Ok(()))) {
            errors += 1;
        }
    }
    let received = reader.await.unwrap_or(0);
    let elapsed = start.elapsed();
    progress.finish().await;
    w.close().await?;
    r.close().await?;
    let (hist, timeline) = rec.finish();
    Ok(Report {
        client: "kafkit".into(),
        workload: "e2e".into(),
        records: received,
        bytes: received * o.producer.record_size as u64,
        errors: errors + o.num_records.saturating_sub(received),
        elapsed,
        latency: Some(hist),
        timeline,
        first_record: None,
        joined: None,
        peak_rss: peak_rss(),
    })
}

/// A value of `size` (at least 9) bytes: nanoseconds since `base`, a warm-up flag, padding.
pub fn stamp(base: Instant, size: usize, warmup: bool) -> Bytes {
    let mut v = Vec::with_capacity(size.max(9));
    v.extend_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
    v.push(warmup as u8);
    v.resize(size.max(9), b'.');
    Bytes::from(v)
}
