//! `kafkit chaos`: the crash-and-fault harness (issue 12).
//!
//! Runs `kafkit cluster --control` as a child process (so `kill -9` is real), an idempotent
//! acks=all producer (kafkit's `Writer`; with `--librdkafka` also librdkafka's, through the
//! `rdkafka` crate) and a consumer group member (kafkit's `Reader`, committing what it has
//! processed) while each round applies one fault drawn from a seeded schedule: `kill -9` of the
//! cluster and a restart, a broker down and up, a leader move, cut replication, a full disk,
//! EIO on a broker's writes or syncs. Then it heals everything, kills and restarts the
//! cluster once more, reads every partition back and checks the invariants Jepsen's Kafka
//! analyses use:
//!
//! * **lost**: acknowledged records missing from the log;
//! * **duplicated**: records in the log more than once (idempotence);
//! * **gaps**: offsets not contiguous from 0 in a partition;
//! * **reordered**: a producer's records out of its order within a partition;
//! * **divergent**: the consumer saw, at some offset, a record the log does not hold there
//!   (a consumed record later lost or replaced);
//! * **poll-skips**: the consumer moved past offsets it never delivered;
//! * **committed beyond consumed**: a committed offset past what the consumer delivered;
//! * **unconsumed**: records the consumer never delivered although it ran to the end.
//!
//! Redeliveries (the consumer going back after a rebalance or a lost commit) are at-least-once
//! behaviour, counted but not failures. One line gives the verdict and the counts; the exit
//! status is non-zero on any violation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use kafkit::{
    Admin, Balancer, Message, Reader, ReaderConfig, RequiredAcks, StartOffset, Writer, WriterConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

/// Options of `kafkit chaos`.
#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Rounds; each applies one fault and heals it.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Length of a round.
    #[arg(long, default_value = "3s", value_parser = super::parse_duration)]
    pub round: Duration,
    /// Records per second from each producer.
    #[arg(long, default_value_t = 400)]
    pub rate: u32,
    /// Faults drawn from, comma-separated: kill, down, move, cut, disk-full, disk-eio,
    /// sync-eio.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill,down,move,cut,disk-full,disk-eio,sync-eio"
    )]
    pub faults: Vec<String>,
    /// Seed of the fault schedule (default: from the clock; printed with the verdict).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also run librdkafka's idempotent producer (through the `rdkafka` crate; needs a build
    /// with `--features rdkafka`).
    #[arg(long)]
    pub librdkafka: bool,
    /// Keep the cluster's data directory and log (printed) instead of deleting them.
    #[arg(long)]
    pub keep: bool,
}

const FAULTS: [&str; 7] = [
    "kill",
    "down",
    "move",
    "cut",
    "disk-full",
    "disk-eio",
    "sync-eio",
];
const PARTITIONS: i32 = 3;
const GROUP: &str = "chaos";

/// xorshift64*: a seeded schedule without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn broker(&mut self) -> i32 {
        1 + self.below(3) as i32
    }
}

/// The cluster process, its control channel and its ports (kept across restarts).
struct ClusterProc {
    exe: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    bootstrap: String,
}

impl ClusterProc {
    async fn start(exe: &Path, dir: &Path) -> anyhow::Result<Self> {
        // Restarts must come back on the same ports: pick a base, retry if it is taken.
        let mut last = None;
        for attempt in 0..10u64 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() as u64);
            let port = 20_000 + ((nanos / 7 + attempt * 7919) % 40_000) as u16;
            match Self::spawn(exe, dir, port).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried"))
    }

    async fn spawn(exe: &Path, dir: &Path, port: u16) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("cluster.log"))?;
        let mut child = Command::new(exe)
            .args(["-v", "cluster", "--control", "--port-base"])
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting kafkit cluster")?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let bootstrap = loop {
            match tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await {
                Ok(Ok(Some(line))) => {
                    if let Some(b) = line.strip_prefix("bootstrap:") {
                        break b.trim().to_owned();
                    }
                }
                _ => bail!(
                    "the cluster did not start on port {port}; see {}",
                    dir.join("cluster.log").display()
                ),
            }
        };
        Ok(Self {
            exe: exe.to_owned(),
            dir: dir.to_owned(),
            port,
            child,
            stdin,
            stdout,
            bootstrap,
        })
    }

    async fn control(&mut self, command: &str) -> anyhow::Result<String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        let answer = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .context("control answer timed out")??
            .context("the cluster closed its output")?;
        match answer.strip_prefix("ok") {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => bail!("{command}: {answer}"),
        }
    }

    async fn kill9_and_restart(&mut self, down_for: Duration) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        tokio::time::sleep(down_for).await;
        let (exe, dir, port) = (self.exe.clone(), self.dir.clone(), self.port);
        // The ports may linger a moment after the kill.
        let mut tries = 0;
        *self = loop {
            match Self::spawn(&exe, &dir, port).await {
                Ok(c) => break c,
                Err(e) if tries < 20 => {
                    tries += 1;
                    tracing::debug!(error = %e, "restart failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the cluster did not stop")??;
        if !status.success() {
            bail!("the cluster exited with {status}");
        }
        Ok(())
    }
}

/// What a producer knows about its records.
#[derive(Default)]
struct Ledger {
    acked: Vec<String>,
    /// Sent, but the outcome is unknown (the write failed or timed out): may or may not be in
    /// the log, and may not be there twice.
    unknown: Vec<String>,
}

fn key_of(seq: u64) -> String {
    format!("k{}", seq % 32)
}

async fn produce_kafkit(
    brokers: Vec<String>,
    topic: String,
    rate: u32,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Ledger> {
    let w = Writer::new(WriterConfig {
        brokers,
        topic,
        balancer: Balancer::Hash,
        batch_timeout: Duration::from_millis(5),
        required_acks: RequiredAcks::All,
        idempotent: true,
        max_attempts: 30,
        write_timeout: Duration::from_secs(30),
        ..Default::default()
    })?;
    let per_tick = (rate / 50).max(1) as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut ledger = Ledger::default();
    let mut seq = 0u64;
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let values: Vec<String> = (seq..seq + per_tick)
            .map(|s| format!("kafkit-{s}"))
            .collect();
        let msgs = (seq..seq + per_tick)
            .zip(&values)
            .map(|(s, v)| Message::new(key_of(s), v.clone()))
            .collect();
        seq += per_tick;
        match w.write_messages(msgs).await {
            Ok(()) => ledger.acked.extend(values),
            Err(e) => {
                tracing::warn!(error = %e, "kafkit write failed");
                ledger.unknown.extend(values);
            }
        }
    }
    w.close().await?;
    Ok(ledger)
}

#[cfg(feature = "rdkafka")]
fn produce_librdkafka(
    bootstrap: String,
    topic: String,
    rate: u32,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Ledger> {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{
        BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
    };
    use rdkafka::ClientContext;

    struct Ctx(Arc<Mutex<Ledger>>);
    impl ClientContext for Ctx {}
    impl ProducerContext for Ctx {
        type DeliveryOpaque = Box<String>;
        fn delivery(&self, r: &DeliveryResult<'_>, value: Box<String>) {
            let mut l = self.0.lock().expect("ledger");
            match r {
                Ok(_) => l.acked.push(*value),
                Err((e, m)) => {
                    use rdkafka::message::Message as _;
                    tracing::warn!(error = %e, partition = m.partition(), value = %value, "librdkafka delivery failed");
                    l.unknown.push(*value);
                }
            }
        }
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    // librdkafka's own debug contexts (e.g. "eos,msg,broker"), logged at debug level under
    // the `librdkafka` target.
    if let Ok(debug) = std::env::var("KAFKIT_CHAOS_LIBRDKAFKA_DEBUG") {
        config.set("debug", debug);
    }
    let p: ThreadedProducer<Ctx> = config.create_with_context(Ctx(ledger.clone()))?;
    let per_tick = (rate / 50).max(1) as u64;
    let mut seq = 0u64;
    while !*stop.borrow() {
        std::thread::sleep(Duration::from_millis(20));
        for s in seq..seq + per_tick {
            let key = key_of(s);
            let value = format!("rdk-{s}");
            let mut record = BaseRecord::with_opaque_to(&topic, Box::new(value.clone()))
                .key(&key)
                .payload(&value);
            loop {
                match p.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        // Queue full: wait for deliveries.
                        std::thread::sleep(Duration::from_millis(5));
                        record = r;
                    }
                }
            }
        }
        seq += per_tick;
    }
    p.flush(Duration::from_secs(90))?;
    drop(p);
    let l = std::mem::take(&mut *ledger.lock().expect("ledger"));
    Ok(l)
}

/// Every record the group member delivered, per partition, in delivery order.
type Deliveries = BTreeMap<(String, i32), Vec<(i64, String)>>;

async fn consume(
    brokers: Vec<String>,
    topics: Vec<String>,
    seen: Arc<Mutex<Deliveries>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let r = Reader::new(ReaderConfig {
        brokers,
        group_topics: topics,
        group_id: Some(GROUP.into()),
        start_offset: StartOffset::First,
        max_wait: Duration::from_millis(300),
        heartbeat_interval: Duration::from_millis(300),
        session_timeout: Duration::from_secs(6),
        rebalance_timeout: Duration::from_secs(6),
        dial_timeout: Duration::from_secs(2),
        ..Default::default()
    })?;
    loop {
        let m = tokio::select! {
            m = r.read_message() => m,
            _ = stop.changed() => break,
        };
        match m {
            Ok(m) => {
                let value =
                    String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned();
                seen.lock()
                    .expect("deliveries")
                    .entry((m.topic.clone(), m.partition))
                    .or_default()
                    .push((m.offset, value));
            }
            Err(e) => {
                tracing::info!(error = %e, "read failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Commits what was delivered last (read_message commits the previous one when asked for
    // the next; close commits the rest).
    r.close().await?;
    Ok(())
}

/// Reads partition `p` of `topic` from offset 0 to `end`.
async fn read_partition(
    brokers: &[String],
    topic: &str,
    p: i32,
    end: i64,
) -> anyhow::Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    if end <= 0 {
        return Ok(out);
    }
    let r = Reader::new(ReaderConfig {
        brokers: brokers.to_vec(),
        topic: topic.into(),
        partition: p,
        start_offset: StartOffset::First,
        max_wait: Duration::from_millis(200),
        ..Default::default()
    })?;
    while out.last().is_none_or(|(o, _)| o + 1 < end) {
        let m = tokio::time::timeout(Duration::from_secs(30), r.fetch_message())
            .await
            .with_context(|| format!("reading {topic}/{p} back timed out at {:?}", out.last()))??;
        out.push((
            m.offset,
            String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned(),
        ));
    }
    r.close().await?;
    Ok(out)
}

/// The counts of the verdict.
#[derive(Debug, Default)]
struct Verdict {
    acked: usize,
    unknown: usize,
    unknown_stored: usize,
    lost: usize,
    duplicated: usize,
    gaps: usize,
    reordered: usize,
    divergent: usize,
    poll_skips: usize,
    committed_beyond: usize,
    unconsumed: usize,
    redelivered: usize,
    delivered: usize,
}

impl Verdict {
    fn violations(&self) -> usize {
        self.lost
            + self.duplicated
            + self.gaps
            + self.reordered
            + self.divergent
            + self.poll_skips
            + self.committed_beyond
            + self.unconsumed
    }
}

/// Checks the log (`log`: every partition read back), the producers' ledgers, the
/// deliveries and the committed offsets.
fn check(
    log: &BTreeMap<(String, i32), Vec<(i64, String)>>,
    ledgers: &[&Ledger],
    seen: &Deliveries,
    committed: &BTreeMap<(String, i32), i64>,
) -> Verdict {
    let mut v = Verdict::default();
    let mut count: HashMap<&str, usize> = HashMap::new();
    let mut at: HashMap<(&str, i32, i64), &str> = HashMap::new();
    for ((topic, p), records) in log {
        for (i, (offset, value)) in records.iter().enumerate() {
            if *offset != i as i64 {
                v.gaps += 1;
            }
            *count.entry(value).or_default() += 1;
            at.insert((topic, *p, *offset), value);
        }
        // Each producer's sequence numbers must rise with the offset.
        let mut last: HashMap<&str, u64> = HashMap::new();
        for (_, value) in records {
            if let Some((who, seq)) = value.rsplit_once('-') {
                if let Ok(seq) = seq.parse::<u64>() {
                    if last.get(who).is_some_and(|&prev| seq <= prev) {
                        v.reordered += 1;
                    }
                    last.insert(who, seq);
                }
            }
        }
    }
    v.duplicated = count.values().map(|&n| n.saturating_sub(1)).sum();
    for l in ledgers {
        v.acked += l.acked.len();
        v.unknown += l.unknown.len();
        v.lost += l
            .acked
            .iter()
            .filter(|x| !count.contains_key(x.as_str()))
            .count();
        v.unknown_stored += l
            .unknown
            .iter()
            .filter(|x| count.contains_key(x.as_str()))
            .count();
    }
    for ((topic, p), deliveries) in seen {
        // The highest offset delivered so far: a jump past it skips; going back (after a
        // rebalance or a lost commit) is a redelivery, allowed.
        let mut last = -1i64;
        let mut delivered: HashSet<i64> = HashSet::new();
        for (offset, value) in deliveries {
            v.delivered += 1;
            if at.get(&(topic.as_str(), *p, *offset)) != Some(&value.as_str()) {
                v.divergent += 1;
            }
            if delivered.contains(offset) {
                v.redelivered += 1;
            }
            if *offset > last + 1 {
                // Offsets in between exist (the log is contiguous from 0) but were skipped.
                v.poll_skips += (*offset - last - 1) as usize;
            }
            last = last.max(*offset);
            delivered.insert(*offset);
        }
        let max = deliveries.iter().map(|(o, _)| *o).max().unwrap_or(-1);
        if let Some(&c) = committed.get(&(topic.clone(), *p)) {
            if c > max + 1 {
                v.committed_beyond += 1;
            }
        }
        let end = log.get(&(topic.clone(), *p)).map_or(0, |r| r.len());
        v.unconsumed += (0..end as i64).filter(|o| !delivered.contains(o)).count();
    }
    for ((topic, p), records) in log {
        if !seen.contains_key(&(topic.clone(), *p)) {
            v.unconsumed += records.len();
        }
    }
    v
}

pub async fn run(a: ChaosArgs) -> anyhow::Result<()> {
    for f in &a.faults {
        if !FAULTS.contains(&f.as_str()) {
            bail!("unknown fault {f:?}; known: {}", FAULTS.join(", "));
        }
    }
    if a.faults.is_empty() {
        bail!("no faults to apply");
    }
    if a.librdkafka && !cfg!(feature = "rdkafka") {
        bail!("--librdkafka needs a build with `--features rdkafka`");
    }
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    let mut rng = Rng(seed);
    let tmp = tempfile::Builder::new().prefix("kafkit-chaos-").tempdir()?;
    let dir = tmp.path().to_owned();
    let exe = std::env::current_exe()?;
    let mut cluster = ClusterProc::start(&exe, &dir).await?;
    let brokers: Vec<String> = cluster.bootstrap.split(',').map(str::to_owned).collect();
    let admin = Admin::new(brokers.clone())?;
    let mut topics = vec!["chaos-kafkit".to_owned()];
    if a.librdkafka {
        topics.push("chaos-librdkafka".to_owned());
    }
    for t in &topics {
        admin.create_topic(t, PARTITIONS, 3).await?;
    }
    eprintln!(
        "chaos: {} rounds of {:?}, seed {seed}, cluster at {} (data in {})",
        a.rounds,
        a.round,
        cluster.bootstrap,
        dir.display()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let seen = Arc::new(Mutex::new(Deliveries::new()));
    let consumer = tokio::spawn(consume(
        brokers.clone(),
        topics.clone(),
        seen.clone(),
        stop_rx.clone(),
    ));
    let kafkit_producer = tokio::spawn(produce_kafkit(
        brokers.clone(),
        topics[0].clone(),
        a.rate,
        stop_rx.clone(),
    ));
    #[cfg(feature = "rdkafka")]
    let rdk_producer = a.librdkafka.then(|| {
        let (b, t, rx) = (
            cluster.bootstrap.clone(),
            topics[1].clone(),
            stop_rx.clone(),
        );
        let rate = a.rate;
        tokio::task::spawn_blocking(move || produce_librdkafka(b, t, rate, rx))
    });

    let mut applied: BTreeMap<&str, usize> = BTreeMap::new();
    let quarter = a.round / 4;
    for round in 0..a.rounds {
        tokio::time::sleep(quarter).await;
        let fault = a.faults[rng.below(a.faults.len() as u64) as usize].as_str();
        let fault = FAULTS.iter().find(|f| **f == fault).expect("checked");
        let b = rng.broker();
        let heal: Vec<String> = match *fault {
            "kill" => {
                cluster
                    .kill9_and_restart(quarter.min(Duration::from_millis(500)))
                    .await?;
                vec![]
            }
            "down" => {
                cluster.control(&format!("down {b}")).await?;
                vec![format!("up {b}")]
            }
            "move" => {
                let t = &topics[rng.below(topics.len() as u64) as usize];
                let p = rng.below(PARTITIONS as u64);
                // Moving to the current leader is refused; that round then has no fault.
                let _ = cluster.control(&format!("move {t} {p} {b}")).await;
                vec![]
            }
            "cut" => {
                let other = 1 + (b % 3);
                cluster.control(&format!("cut {b} {other}")).await?;
                vec![format!("heal {b} {other}")]
            }
            "disk-full" => {
                cluster.control("disk full").await?;
                vec!["disk clear".into()]
            }
            "disk-eio" => {
                cluster
                    .control(&format!("disk fail append eio 50 broker-{b}/"))
                    .await?;
                vec!["disk clear".into()]
            }
            "sync-eio" => {
                cluster
                    .control(&format!("disk fail sync eio 3 broker-{b}/"))
                    .await?;
                vec!["disk clear".into()]
            }
            _ => unreachable!("checked against FAULTS"),
        };
        *applied.entry(fault).or_default() += 1;
        tracing::info!(round, fault, broker = b, "fault applied");
        eprintln!("chaos: round {}: {fault} (broker {b})", round + 1);
        tokio::time::sleep(quarter * 2).await;
        for h in heal {
            cluster.control(&h).await?;
        }
        tokio::time::sleep(quarter).await;
    }

    // Stop writing, crash once more, and let the consumer run to the end.
    stop_tx.send(true)?;
    let _ = stop_tx;
    let kafkit_ledger = kafkit_producer.await??;
    #[cfg(feature = "rdkafka")]
    let rdk_ledger = match rdk_producer {
        Some(h) => Some(h.await??),
        None => None,
    };
    #[cfg(not(feature = "rdkafka"))]
    let rdk_ledger: Option<Ledger> = None;
    cluster
        .kill9_and_restart(Duration::from_millis(200))
        .await?;
    let mut ends = BTreeMap::new();
    for t in &topics {
        for (p, end) in admin.list_offsets(t, -1).await? {
            ends.insert((t.clone(), p), end);
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let consumer_tail = tokio::spawn(consume(
        brokers.clone(),
        topics.clone(),
        seen.clone(),
        stop_rx,
    ));
    consumer.abort();
    let _ = consumer.await;
    let caught_up = |seen: &Deliveries| {
        ends.iter().all(|(tp, end)| {
            seen.get(tp)
                .and_then(|d| d.iter().map(|(o, _)| *o).max())
                .map_or(*end == 0, |m| m + 1 >= *end)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !caught_up(&seen.lock().expect("deliveries")) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true)?;
    consumer_tail.await??;

    let mut log = BTreeMap::new();
    for ((t, p), end) in &ends {
        log.insert(
            (t.clone(), *p),
            read_partition(&brokers, t, *p, *end).await?,
        );
    }
    let mut committed = BTreeMap::new();
    for o in admin.group_offsets(GROUP, None).await? {
        if o.committed >= 0 {
            committed.insert((o.topic, o.partition), o.committed);
        }
    }
    let mut ledgers = vec![&kafkit_ledger];
    if let Some(l) = &rdk_ledger {
        ledgers.push(l);
    }
    let v = check(
        &log,
        &ledgers,
        &seen.lock().expect("deliveries"),
        &committed,
    );
    cluster.stop().await?;

    let faults = applied
        .iter()
        .map(|(f, n)| format!("{f} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let by_producer = if let Some(l) = &rdk_ledger {
        format!(
            " (kafkit {}, librdkafka {})",
            kafkit_ledger.acked.len(),
            l.acked.len()
        )
    } else {
        String::new()
    };
    let verdict = if v.violations() == 0 { "PASS" } else { "FAIL" };
    println!(
        "chaos: {verdict} — {} rounds ({faults}), {} acknowledged{by_producer}, {} unknown ({} stored); lost {}, duplicated {}, gaps {}, reordered {}, divergent {}, poll-skips {}, committed beyond consumed {}, unconsumed {}; {} delivered, {} redelivered (seed {seed})",
        a.rounds,
        v.acked,
        v.unknown,
        v.unknown_stored,
        v.lost,
        v.duplicated,
        v.gaps,
        v.reordered,
        v.divergent,
        v.poll_skips,
        v.committed_beyond,
        v.unconsumed,
        v.delivered,
        v.redelivered,
    );
    if a.keep || v.violations() > 0 {
        let kept = tmp.keep();
        eprintln!("chaos: data and cluster log kept in {}", kept.display());
    }
    if v.violations() > 0 {
        bail!("{} invariant violations", v.violations());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(parts: &[(&str, i32, &[&str])]) -> BTreeMap<(String, i32), Vec<(i64, String)>> {
        parts
            .iter()
            .map(|(t, p, vals)| {
                (
                    (t.to_string(), *p),
                    vals.iter()
                        .enumerate()
                        .map(|(i, v)| (i as i64, v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_checker_finds_each_violation() {
        let ledger = Ledger {
            acked: vec!["w-0".into(), "w-1".into(), "w-2".into(), "w-3".into()],
            unknown: vec!["w-4".into()],
        };
        let clean = log_of(&[("t", 0, &["w-0", "w-1", "w-2", "w-3", "w-4"])]);
        let seen: Deliveries = clean.clone();
        let committed = BTreeMap::from([(("t".to_string(), 0), 5)]);
        let v = check(&clean, &[&ledger], &seen, &committed);
        assert_eq!(v.violations(), 0, "{v:?}");
        assert_eq!(v.unknown_stored, 1);

        // Lost, duplicated and reordered.
        let bad = log_of(&[("t", 0, &["w-0", "w-2", "w-1", "w-2"])]);
        let v = check(&bad, &[&ledger], &Deliveries::new(), &BTreeMap::new());
        assert_eq!((v.lost, v.duplicated, v.reordered), (1, 1, 1), "{v:?}");
        assert_eq!(v.unconsumed, 4);

        // Divergent, skipped, committed too far.
        let seen: Deliveries = BTreeMap::from([(
            ("t".to_string(), 0),
            vec![(0, "w-0".to_string()), (2, "other".to_string())],
        )]);
        let committed = BTreeMap::from([(("t".to_string(), 0), 4)]);
        let v = check(&clean, &[&ledger], &seen, &committed);
        assert_eq!(
            (v.divergent, v.poll_skips, v.committed_beyond, v.unconsumed),
            (1, 1, 1, 3),
            "{v:?}"
        );
    }
}
