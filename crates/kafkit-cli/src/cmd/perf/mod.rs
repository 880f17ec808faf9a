//! `kafkit perf produce|consume|e2e|compare`: load tests with percentiles, progress, JSON and
//! SVG plots; `compare` runs the same workloads with librdkafka (cargo feature `rdkafka`).

pub mod compare;
pub mod load;
#[cfg(feature = "rdkafka")]
pub mod rdk;
pub mod report;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use kafkit::{Compression, RequiredAcks};

use report::Report;

/// Options of `kafkit perf`.
#[derive(Args, Debug)]
pub struct PerfArgs {
    #[command(subcommand)]
    pub action: Action,
}

/// Which load test.
#[derive(Subcommand, Debug)]
pub enum Action {
    /// Producer throughput and acknowledgement latency (kafka-producer-perf-test).
    Produce(ProduceOpts),
    /// Consumer throughput and time to first record (kafka-consumer-perf-test).
    Consume(ConsumeOpts),
    /// End-to-end latency, write to read, at a fixed rate.
    E2e(E2eOpts),
    /// The same workloads with kafkit and librdkafka, side by side (needs `--features rdkafka`).
    Compare(compare::CompareOpts),
}

/// Where to run: `-b` for an existing cluster, otherwise an embedded one.
#[derive(Args, Debug, Clone)]
pub struct TargetOpts {
    /// Topic (created when missing).
    #[arg(short, long)]
    pub topic: Option<String>,
    /// Partitions of a created topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor of a created topic (-1: the cluster's default).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub replication_factor: i16,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write a latency histogram and timeline to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Where kafkit's client runs: its own thread with a single-threaded tokio runtime, or the
    /// command's multi-threaded runtime (see docs/BENCHMARKS.md for what each costs).
    #[arg(long, value_enum, default_value_t = load::ClientRuntime::CurrentThread)]
    pub client_runtime: load::ClientRuntime,
}

/// Producer settings shared by `produce`, `e2e` and `compare`.
#[derive(Args, Debug, Clone)]
pub struct ProducerOpts {
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Required acks: 0, 1, -1/all.
    #[arg(long, default_value = "1", value_parser = crate::cmd::parse_acks, allow_hyphen_values = true)]
    pub acks: RequiredAcks,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none", value_parser = crate::cmd::parse_compression)]
    pub compression: Compression,
    /// Most records per batch (librdkafka batch.num.messages).
    #[arg(long, default_value_t = 10_000)]
    pub batch_size: usize,
    /// Most bytes per batch (librdkafka batch.size).
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_bytes: usize,
    /// Linger (kafkit batch_timeout, librdkafka linger.ms).
    #[arg(long, default_value = "5ms", value_parser = crate::cmd::parse_duration)]
    pub linger: Duration,
    /// Turn idempotence off (it is on by default with acks=all).
    #[arg(long)]
    pub no_idempotence: bool,
    /// Compression level (gzip 0-9, lz4 0-16, zstd 1-22; default: the codec's).
    #[arg(long)]
    pub compression_level: Option<i32>,
    /// Bytes the writer may buffer (kafkit buffer_memory, librdkafka
    /// queue.buffering.max.kbytes).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub buffer_memory: usize,
    /// Produce requests in flight per broker and partition.
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
}

/// Options of `perf produce`.
#[derive(Args, Debug, Clone)]
pub struct ProduceOpts {
    #[command(flatten)]
    pub target: TargetOpts,
    #[command(flatten)]
    pub producer: ProducerOpts,
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub num_records: u64,
    /// Records per second (-1: as fast as possible).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub throughput: i64,
}

/// Options of `perf consume`.
#[derive(Args, Debug, Clone)]
pub struct ConsumeOpts {
    #[command(flatten)]
    pub target: TargetOpts,
    /// Records to consume (the topic is filled first when it holds fewer).
    #[arg(long, default_value_t = 1_000_000)]
    pub num_records: u64,
    /// Bytes per record when filling the topic.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Which consumer reads: kafkit, or librdkafka tuned for a backlog or at its defaults
    /// (those two need `--features rdkafka`). Run each in its own process to compare memory.
    #[arg(long, value_enum, default_value_t = ConsumeClient::Kafkit)]
    pub client: ConsumeClient,
    /// kafkit's `max_buffered_bytes` (default: the Reader's, 16 MiB).
    #[arg(long)]
    pub max_buffered_bytes: Option<usize>,
    /// kafkit's `max_bytes` per fetch response (default: the Reader's, 1 MB).
    #[arg(long)]
    pub max_bytes: Option<usize>,
}

/// The consumer `perf consume` measures.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeClient {
    /// kafkit's Reader.
    Kafkit,
    /// librdkafka (`rdkafka` crate) with `fetch.queue.backoff.ms=1` and larger queues.
    Librdkafka,
    /// librdkafka at its defaults.
    LibrdkafkaDefaults,
}

/// Options of `perf e2e`.
#[derive(Args, Debug, Clone)]
pub struct E2eOpts {
    #[command(flatten)]
    pub target: TargetOpts,
    #[command(flatten)]
    pub producer: ProducerOpts,
    /// Records to send.
    #[arg(long, default_value_t = 10_000)]
    pub num_records: u64,
    /// Records per second.
    #[arg(long, default_value_t = 1000)]
    pub throughput: u64,
}

/// A cluster to run against, embedded or not.
///
/// The embedded cluster runs on its own tokio runtime and threads, so the client under test
/// (kafkit's tasks on the command's runtime, or librdkafka's threads) is measured as a separate
/// process would see it: a broker busy with a request never delays the client's own tasks.
pub struct Target {
    pub brokers: Vec<String>,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    pub async fn open(brokers: &[String]) -> anyhow::Result<Self> {
        if !brokers.is_empty() {
            return Ok(Self {
                brokers: brokers.to_vec(),
                stop: None,
                _dir: None,
            });
        }
        let dir = tempfile::tempdir().context("temporary directory")?;
        let path = dir.path().to_owned();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-cluster".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("broker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("broker runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let cluster = match kafkit_broker::Cluster::builder()
                        .brokers(3)
                        .data_dir(&path)
                        .start()
                        .await
                    {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow::Error::new(e)));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok((cluster.bootstrap(), cluster.addrs())));
                    let _ = stop_rx.await;
                    cluster.shutdown().await;
                });
            })
            .context("starting the cluster thread")?;
        let (bootstrap, addrs) = ready_rx
            .await
            .context("the cluster thread stopped")?
            .context("starting the embedded cluster")?;
        eprintln!(
            "embedded 3-broker cluster at {bootstrap} (data in {})",
            dir.path().display()
        );
        Ok(Self {
            brokers: addrs,
            stop: Some((stop_tx, thread)),
            _dir: Some(dir),
        })
    }

    /// Creates `topic` unless it exists.
    pub async fn topic(&self, topic: &str, partitions: i32, rf: i16) -> anyhow::Result<()> {
        let admin = kafkit::Admin::with_security(self.brokers.clone(), crate::cmd::security())?;
        if admin.describe_topic(topic).await.is_ok() {
            return Ok(());
        }
        admin
            .create_topic(topic, partitions, rf)
            .await
            .with_context(|| format!("creating {topic}"))?;
        // Wait until every partition has a leader.
        for _ in 0..100 {
            if let Ok(ps) = admin.describe_topic(topic).await {
                if ps.len() == partitions as usize && ps.iter().all(|p| p.leader >= 0) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("topic {topic} has no leaders after 5 s")
    }

    pub async fn shutdown(mut self) {
        if let Some((stop, thread)) = self.stop.take() {
            let _ = stop.send(());
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Progress on stderr: a bar on a terminal, a line per second otherwise.
pub struct Progress {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(label: String, total: u64, done: Arc<AtomicU64>, quiet: bool) -> Self {
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            if quiet {
                let _ = rx.changed().await;
                return;
            }
            let started = std::time::Instant::now();
            if std::io::stderr().is_terminal() {
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                bar.set_message(label);
                loop {
                    bar.set_position(done.load(Ordering::Relaxed));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = rx.changed() => break,
                    }
                }
                bar.finish_and_clear();
            } else {
                let mut last = 0;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = rx.changed() => break,
                    }
                    let n = done.load(Ordering::Relaxed);
                    eprintln!(
                        "{label}: {n}/{total} records, {} records/s in the last second, {:.0} s",
                        n - last,
                        started.elapsed().as_secs_f64()
                    );
                    last = n;
                }
            }
        });
        Self { stop, task }
    }

    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Prints a report (line or JSON) and writes its plot.
pub fn emit(r: &Report, target: &TargetOpts) -> anyhow::Result<()> {
    if target.json {
        println!("{}", r.json());
    } else {
        println!("{}", r.line());
    }
    if let Some(p) = &target.plot {
        std::fs::write(p, r.svg()).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("plot written to {}", p.display());
    }
    Ok(())
}

pub async fn run(a: PerfArgs) -> anyhow::Result<()> {
    match a.action {
        Action::Produce(o) => {
            let t = Target::open(&crate::cmd::global().brokers).await?;
            let topic = o.target.topic.clone().unwrap_or("kafkit-perf".into());
            t.topic(&topic, o.target.partitions, o.target.replication_factor)
                .await?;
            let r = load::produce(
                o.target.client_runtime,
                &t.brokers,
                &topic,
                &o,
                o.target.json,
            )
            .await?;
            emit(&r, &o.target)?;
            t.shutdown().await;
            if r.errors > 0 {
                anyhow::bail!("{} records failed", r.errors);
            }
        }
        Action::Consume(o) => {
            let t = Target::open(&crate::cmd::global().brokers).await?;
            let topic = o.target.topic.clone().unwrap_or("kafkit-perf".into());
            t.topic(&topic, o.target.partitions, o.target.replication_factor)
                .await?;
            load::fill(&t.brokers, &topic, o.num_records, o.record_size).await?;
            let r = match o.client {
                ConsumeClient::Kafkit => {
                    load::consume(
                        o.target.client_runtime,
                        &t.brokers,
                        &topic,
                        o.num_records,
                        o.target.json,
                        (o.max_buffered_bytes, o.max_bytes),
                    )
                    .await?
                }
                #[cfg(feature = "rdkafka")]
                c => {
                    let tuned = c == ConsumeClient::Librdkafka;
                    rdk::consume(t.brokers.clone(), topic.clone(), o.num_records, tuned).await?
                }
                #[cfg(not(feature = "rdkafka"))]
                _ => anyhow::bail!(
                    "this kafkit was built without librdkafka; build with --features kafkit-cli/rdkafka"
                ),
            };
            emit(&r, &o.target)?;
            t.shutdown().await;
        }
        Action::E2e(o) => {
            let t = Target::open(&crate::cmd::global().brokers).await?;
            let topic = o
                .target
                .topic
                .clone()
                .unwrap_or(format!("kafkit-e2e-{}", std::process::id()));
            t.topic(&topic, o.target.partitions, o.target.replication_factor)
                .await?;
            let r = load::e2e(
                o.target.client_runtime,
                &t.brokers,
                &topic,
                &o,
                o.target.json,
            )
            .await?;
            emit(&r, &o.target)?;
            t.shutdown().await;
        }
        Action::Compare(o) => compare::run(o).await?,
    }
    Ok(())
}
