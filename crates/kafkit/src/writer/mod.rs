//! The producer.
//!
//! `write_messages` picks a partition for every message (the balancer), hands each partition's
//! messages to that partition's sender task, and waits until they are acknowledged.
//!
//! Batching: a sender task per partition gathers what is queued for its partition (up to
//! `batch_size` messages / `batch_bytes`) into one Produce request, so concurrent writers share
//! batches. A synchronous write is sent at once: its caller is blocked, so waiting
//! `batch_timeout` for a batch that cannot fill would only add latency (kafka-go #326/#1180).
//! `batch_timeout` (linger) applies to writes queued with [`Writer::write_messages_nowait`] and
//! is measured from the moment a batch's first write was queued, as librdkafka's `linger.ms`.
//!
//! Up to `max_in_flight` requests per partition (and per broker) are on the wire at once; the
//! answers are taken in order. When one fails with a retriable error (NOT_LEADER_OR_FOLLOWER,
//! LEADER_NOT_AVAILABLE, timeouts, lost connections), the writer waits for the answers to
//! everything sent after it, keeps what succeeded, refreshes metadata and, after a backoff,
//! resends the rest in the original order, up to `max_attempts` per batch.
//!
//! Idempotence (default with acks=all): the writer gets a producer id (InitProducerId) and
//! numbers each partition's records; a retry resends the same numbered batch, which the broker
//! recognises and does not append twice. If a broker reports a sequence gap
//! (OUT_OF_ORDER_SEQUENCE_NUMBER) or forgot the producer (UNKNOWN_PRODUCER_ID), the writer bumps
//! its epoch (KIP-360), restarts that numbering and retries.

pub mod balancer;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafkit_protocol::batch::{encode_records_level, new_record};
use kafkit_protocol::codes;
use kafkit_protocol::indexmap::IndexMap;
use kafkit_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProducerId};
use kafkit_protocol::produce::{encode_produce_request, ProducePartition};
use kafkit_protocol::records::{Compression, Record};
use kafkit_protocol::str_bytes;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::ClusterClient;
use crate::config::{RequiredAcks, WriterConfig};
use crate::conn::ConnConfig;
use crate::error::{Error, Result};
use crate::Message;
use balancer::{Partitioner, StickyLimits};

struct Item {
    messages: Vec<Message>,
    /// Estimated encoded size of the messages (payload plus record overhead).
    bytes: usize,
    /// Key + value + header bytes.
    payload: usize,
    /// When the write was queued: linger is measured from the first item of a batch.
    queued_at: tokio::time::Instant,
    sync: bool,
    done: Option<oneshot::Sender<Result<i64, Arc<Error>>>>,
    /// This item's share of `buffer_memory`, released when the item completes.
    _memory: tokio::sync::OwnedSemaphorePermit,
}

/// What a queued message costs beyond its key, value and headers (the `Message` itself and its
/// share of the bookkeeping), charged against `buffer_memory` so the bound is on real memory.
const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>() + 32;

/// A generous estimate of a record's encoding beyond its key, value and headers (length,
/// attributes, deltas, header count as varints), used to keep batches within `batch_bytes`.
const RECORD_OVERHEAD: usize = 32;

/// Where a partition's share of a write learns its outcome: message indexes and the channel.
type PendingWrite = (Vec<usize>, oneshot::Receiver<Result<i64, Arc<Error>>>);

/// The outcome of queued messages (see [`Writer::write_messages_nowait`]).
#[must_use = "await `wait()` to learn whether the messages were written, or drop it on purpose"]
pub struct Delivery {
    total: usize,
    waits: Vec<PendingWrite>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("total", &self.total)
            .finish()
    }
}

impl Delivery {
    /// Waits until every message is acknowledged or failed; [`Error::WriteFailed`] lists the
    /// failed messages by their index in the write.
    pub async fn wait(self) -> Result<()> {
        let mut failed = Vec::new();
        for (idx, rx) in self.waits {
            if let Err(e) = rx.await.unwrap_or_else(|_| Err(Arc::new(Error::Closed))) {
                failed.push((idx, e));
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        failed.sort_by_key(|(i, _)| i.first().copied());
        Err(Error::WriteFailed {
            total: self.total,
            failed,
        })
    }
}

/// Producer id and epoch of an idempotent writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProducerIdentity {
    id: i64,
    epoch: i16,
}

/// Counters behind [`Writer::stats`].
#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    batch_max: AtomicU64,
    latency_total_us: AtomicU64,
    latency_max_us: AtomicU64,
}

/// What a writer has done so far (kafka-go's `Writer.Stats()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Produce requests answered successfully.
    pub writes: u64,
    /// Messages acknowledged.
    pub messages: u64,
    /// Key + value + header bytes acknowledged.
    pub bytes: u64,
    /// Produce requests that failed for good.
    pub errors: u64,
    /// Attempts retried after a retriable error.
    pub retries: u64,
    /// Messages per produce request: average and largest.
    pub batch_avg: u64,
    /// Largest batch.
    pub batch_max: u64,
    /// Time from taking a batch to its acknowledgement: average and largest.
    pub latency_avg: Duration,
    /// Largest latency.
    pub latency_max: Duration,
    /// Bytes waiting in the writer now (bounded by `buffer_memory`).
    pub buffered_bytes: u64,
}

struct Shared {
    config: WriterConfig,
    counters: Counters,
    memory: Arc<tokio::sync::Semaphore>,
    client: ClusterClient,
    partitioner: Partitioner,
    /// `None` until first needed; stays `None` when idempotence is off.
    producer: tokio::sync::Mutex<Option<ProducerIdentity>>,
    /// Produce requests in flight per broker address, at most `max_in_flight`.
    broker_slots: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Request builders per broker address (see `broker_task`).
    broker_senders: Mutex<HashMap<String, mpsc::Sender<Entry>>>,
    /// Itself, for starting request builders that must not keep the writer alive.
    me: std::sync::Weak<Shared>,
}

impl Shared {
    fn broker_sender(&self, addr: &str) -> mpsc::Sender<Entry> {
        self.broker_senders
            .lock()
            .expect("senders lock")
            .entry(addr.to_owned())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(1024);
                tokio::spawn(broker_task(self.me.clone(), addr.to_owned(), rx));
                tx
            })
            .clone()
    }

    fn broker_slot(&self, addr: &str) -> Arc<tokio::sync::Semaphore> {
        self.broker_slots
            .lock()
            .expect("slots lock")
            .entry(addr.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.config.max_in_flight)))
            .clone()
    }

    fn idempotent(&self) -> bool {
        self.config.idempotent && self.config.required_acks == RequiredAcks::All
    }

    /// The producer identity, asking a broker for one the first time. `bump_from` asks for the
    /// next epoch of that identity (after a sequence error).
    async fn producer(
        &self,
        bump_from: Option<ProducerIdentity>,
    ) -> Result<Option<ProducerIdentity>> {
        if !self.idempotent() {
            return Ok(None);
        }
        let mut current = self.producer.lock().await;
        if let (Some(cur), Some(old)) = (*current, bump_from) {
            if cur != old {
                return Ok(Some(cur)); // someone else already bumped it
            }
        } else if current.is_some() {
            return Ok(*current);
        }
        let conn = self.client.any_conn().await?;
        if matches!(
            conn.version_for::<InitProducerIdRequest>(),
            Err(Error::UnsupportedApi { .. })
        ) {
            tracing::warn!(target: "kafkit::writer", broker = conn.addr(), "broker has no InitProducerId: writing without idempotence");
            return Ok(None);
        }
        let mut req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        if let Some(old) = bump_from {
            if conn.version_for::<InitProducerIdRequest>()? >= 3 {
                req.producer_id = ProducerId(old.id);
                req.producer_epoch = old.epoch;
            }
        }
        let (_, resp) = conn.send(&req).await?;
        if resp.error_code != 0 {
            return Err(Error::kafka(resp.error_code, "InitProducerId"));
        }
        let id = ProducerIdentity {
            id: resp.producer_id.0,
            epoch: resp.producer_epoch,
        };
        tracing::info!(target: "kafkit::writer", producer_id = id.id, epoch = id.epoch, "idempotent producer ready");
        *current = Some(id);
        Ok(Some(id))
    }
}

/// Per-partition numbering of an idempotent writer's records.
#[derive(Debug, Default)]
struct Sequence {
    identity: Option<ProducerIdentity>,
    next: i32,
}

/// Writes messages to a topic (the tutorial's `kafka.Writer`).
///
/// ```no_run
/// # async fn f() -> kafkit::Result<()> {
/// use kafkit::{Message, Writer, WriterConfig};
/// let w = Writer::new(WriterConfig {
///     brokers: vec!["localhost:9093".into()],
///     topic: "message-log".into(),
///     ..Default::default()
/// })?;
/// w.write_messages(vec![Message::new("0", "this is message0")]).await?;
/// w.close().await?;
/// # Ok(()) }
/// ```
pub struct Writer {
    shared: Arc<Shared>,
    senders: Mutex<HashMap<i32, mpsc::Sender<Item>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("topic", &self.shared.config.topic)
            .finish()
    }
}

fn now_ms(t: Option<SystemTime>) -> i64 {
    t.unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Writer {
    /// Validates the config and creates the writer. Brokers are contacted on first write.
    pub fn new(config: WriterConfig) -> Result<Self> {
        config.validate()?;
        let client = ClusterClient::new(
            config.brokers.clone(),
            ConnConfig {
                client_id: config.client_id.clone(),
                dial_timeout: config.dial_timeout,
                security: Arc::new(config.security.clone().into()),
                request_timeout: config.write_timeout + Duration::from_secs(5),
            },
            config.allow_auto_topic_creation,
        );
        let partitioner =
            Partitioner::new(config.balancer.clone()).with_sticky_limits(StickyLimits {
                records: config.batch_size,
                bytes: config.batch_bytes,
                time: config.batch_timeout * 2,
            });
        let memory = Arc::new(tokio::sync::Semaphore::new(config.buffer_memory));
        Ok(Self {
            shared: Arc::new_cyclic(|me| Shared {
                me: me.clone(),
                broker_senders: Mutex::new(HashMap::new()),
                config,
                client,
                partitioner,
                producer: tokio::sync::Mutex::new(None),
                counters: Counters::default(),
                memory,
                broker_slots: Mutex::new(HashMap::new()),
            }),
            senders: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn sender(&self, partition: i32) -> mpsc::Sender<Item> {
        let mut senders = self.senders.lock().expect("senders lock");
        senders
            .entry(partition)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(1024);
                let shared = self.shared.clone();
                let h = tokio::spawn(partition_task(shared, partition, rx));
                self.tasks.lock().expect("tasks lock").push(h);
                tx
            })
            .clone()
    }

    async fn enqueue(&self, mut messages: Vec<Message>, sync: bool) -> Result<Vec<PendingWrite>> {
        let topic = &self.shared.config.topic;
        // The partition count, retrying what a retry can fix (a lost metadata answer, a leader
        // election) as produce requests do; when no broker can be reached at all the write
        // fails at once with that error.
        let mut attempt = 1;
        let mut backoff = self.shared.config.retry_backoff;
        let meta = loop {
            match self.shared.client.topic(topic).await {
                Ok(m) => break m,
                Err(e)
                    if e.is_retriable()
                        && !matches!(
                            e,
                            Error::NoBrokerReachable { .. } | Error::Connect { .. }
                        )
                        && attempt < self.shared.config.max_attempts =>
                {
                    tracing::debug!(target: "kafkit::writer", topic = %topic, attempt, error = %e, "metadata failed; retrying");
                    attempt += 1;
                    self.shared.client.invalidate(topic);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.shared.config.retry_backoff_max);
                }
                Err(e) => return Err(e),
            }
        };
        let n = meta.leaders.len();
        let mut by_partition: Vec<(Vec<usize>, Vec<Message>)> = Vec::new();
        by_partition.resize_with(n, Default::default);
        for (i, mut m) in messages.drain(..).enumerate() {
            let p = self.shared.partitioner.partition(&m, n);
            m.partition = p as i32;
            let e = &mut by_partition[p];
            e.0.push(i);
            e.1.push(m);
        }
        let mut waits = Vec::new();
        // Each partition's share is cut into pieces that fit one record batch (batch_size,
        // batch_bytes): Kafka takes exactly one batch per partition in a Produce request, so a
        // batch is the unit that is sent, retried and acknowledged.
        let cfg = &self.shared.config;
        let mut pieces: Vec<(i32, Vec<usize>, Vec<Message>)> = Vec::new();
        for (p, (idx, msgs)) in by_partition.into_iter().enumerate() {
            let (mut ci, mut cm, mut bytes) = (Vec::new(), Vec::new(), 0usize);
            for (i, m) in idx.into_iter().zip(msgs) {
                let size = m.size() + RECORD_OVERHEAD;
                if !cm.is_empty() && (cm.len() >= cfg.batch_size || bytes + size > cfg.batch_bytes)
                {
                    pieces.push((p as i32, std::mem::take(&mut ci), std::mem::take(&mut cm)));
                    bytes = 0;
                }
                bytes += size;
                ci.push(i);
                cm.push(m);
            }
            if !cm.is_empty() {
                pieces.push((p as i32, ci, cm));
            }
        }
        for (p, idx, msgs) in pieces {
            let (tx, rx) = oneshot::channel();
            // Wait for room in buffer_memory (a single write larger than all of it takes all of it).
            let size = msgs
                .iter()
                .map(|m| (m.size() + MESSAGE_OVERHEAD) as u64)
                .sum::<u64>()
                .clamp(1, self.shared.config.buffer_memory as u64);
            let memory = self
                .shared
                .memory
                .clone()
                .acquire_many_owned(size as u32)
                .await
                .map_err(|_| Error::Closed)?;
            let bytes = msgs.iter().map(|m| m.size() + RECORD_OVERHEAD).sum();
            let payload = msgs.iter().map(|m| m.size()).sum();
            self.sender(p)
                .send(Item {
                    messages: msgs,
                    bytes,
                    payload,
                    queued_at: tokio::time::Instant::now(),
                    sync,
                    done: Some(tx),
                    _memory: memory,
                })
                .await
                .map_err(|_| Error::Closed)?;
            waits.push((idx, rx));
        }
        Ok(waits)
    }

    /// Writes messages and returns once every one is acknowledged as `required_acks` says.
    /// If some fail, [`Error::WriteFailed`] lists which (by index) and why.
    pub async fn write_messages(&self, messages: Vec<Message>) -> Result<()> {
        self.queue(messages, true).await?.wait().await
    }

    /// Queues messages and returns as soon as they are queued (waiting only for room in
    /// `buffer_memory`); they are sent when a batch fills or `batch_timeout` passes. The
    /// returned [`Delivery`] reports, when awaited, which messages failed; dropping it is fine
    /// (fire and forget).
    pub async fn write_messages_nowait(&self, messages: Vec<Message>) -> Result<Delivery> {
        self.queue(messages, false).await
    }

    async fn queue(&self, messages: Vec<Message>, sync: bool) -> Result<Delivery> {
        let total = messages.len();
        for m in &messages {
            if m.size() + 64 > self.shared.config.batch_bytes {
                return Err(Error::MessageTooLarge {
                    size: m.size(),
                    limit: self.shared.config.batch_bytes,
                });
            }
        }
        let waits = if total == 0 {
            Vec::new()
        } else {
            self.enqueue(messages, sync).await?
        };
        Ok(Delivery { total, waits })
    }

    /// Counters and distributions of what this writer has done.
    pub fn stats(&self) -> WriterStats {
        let c = &self.shared.counters;
        let writes = c.writes.load(Ordering::Relaxed);
        let messages = c.messages.load(Ordering::Relaxed);
        WriterStats {
            writes,
            messages,
            bytes: c.bytes.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            batch_avg: messages.checked_div(writes).unwrap_or(0),
            batch_max: c.batch_max.load(Ordering::Relaxed),
            latency_avg: Duration::from_micros(
                c.latency_total_us
                    .load(Ordering::Relaxed)
                    .checked_div(writes)
                    .unwrap_or(0),
            ),
            latency_max: Duration::from_micros(c.latency_max_us.load(Ordering::Relaxed)),
            buffered_bytes: (self.shared.config.buffer_memory
                - self.shared.memory.available_permits()) as u64,
        }
    }

    /// Sends what is queued, waits for it, and stops the sender tasks.
    pub async fn close(&self) -> Result<()> {
        self.senders.lock().expect("senders lock").clear();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// One produce request's worth of items, with its numbering and retry state.
struct Batch {
    /// The writes in this batch: their messages until encoded, then only their reply channels
    /// and buffer_memory permits.
    items: Vec<Item>,
    n: usize,
    /// Key + value + header bytes of the messages.
    bytes: usize,
    /// The encoded record batches once sent the first time, and the (identity, first sequence)
    /// they carry. Retries resend these bytes; after an epoch change they are restamped, not
    /// encoded again.
    encoded: Option<(Bytes, Option<ProducerIdentity>, i32)>,
    /// Identity and first sequence the records were numbered with (idempotence).
    identity: Option<ProducerIdentity>,
    first_seq: i32,
    numbered: bool,
    attempts: u32,
    backoff: Duration,
    not_before: Option<tokio::time::Instant>,
    started: Option<std::time::Instant>,
}

impl Batch {
    fn new(items: Vec<Item>, n: usize, backoff: Duration) -> Self {
        Self {
            bytes: items.iter().map(|i| i.payload).sum(),
            encoded: None,
            items,
            n,
            identity: None,
            first_seq: 0,
            numbered: false,
            attempts: 0,
            backoff,
            not_before: None,
            started: None,
        }
    }
}

/// The answer to a sent batch: base offset, or why it failed.
type ReplyHandle = oneshot::Receiver<Result<i64>>;

fn answered(r: Result<i64>) -> ReplyHandle {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(r);
    rx
}

/// A partition's encoded batch handed to its leader's request builder.
struct Entry {
    partition: i32,
    records: Bytes,
    reply: oneshot::Sender<Result<i64>>,
}

/// Largest produce request the builder makes by merging partitions (one partition's batch may
/// be larger on its own).
const MERGE_LIMIT: usize = 8 * 1024 * 1024;

/// One broker's request builder: batches of different partitions ready at the same moment go
/// out as one Produce request (as librdkafka and the Java client do), so the broker handles them
/// with one request — and, with acks=all, one wait for its followers. At most `max_in_flight`
/// requests per broker are unanswered. Holds the writer weakly: it ends when the writer does.
async fn broker_task(weak: std::sync::Weak<Shared>, addr: String, mut rx: mpsc::Receiver<Entry>) {
    let mut carry: Option<Entry> = None;
    loop {
        let first = match carry.take() {
            Some(e) => e,
            None => match rx.recv().await {
                Some(e) => e,
                None => return,
            },
        };
        let mut size = first.records.len();
        let mut entries = vec![first];
        while size < MERGE_LIMIT {
            match rx.try_recv() {
                // One entry per partition per request; the next batch of a partition waits
                // for the next request (order within a partition is kept).
                Ok(e) if entries.iter().any(|x| x.partition == e.partition) => {
                    carry = Some(e);
                    break;
                }
                Ok(e) => {
                    size += e.records.len();
                    entries.push(e);
                }
                Err(_) => break,
            }
        }
        let Some(shared) = weak.upgrade() else {
            for e in entries {
                let _ = e.reply.send(Err(Error::Closed));
            }
            return;
        };
        let cfg = &shared.config;
        let fail = |entries: Vec<Entry>, e: Error| {
            for x in entries {
                let _ = x.reply.send(Err(e.clone()));
            }
        };
        let permit = match shared.broker_slot(&addr).acquire_owned().await {
            Ok(p) => p,
            Err(_) => {
                fail(entries, Error::Closed);
                continue;
            }
        };
        let conn = match shared.client.conn(&addr).await {
            Ok(c) => c,
            Err(e) => {
                fail(entries, e);
                continue;
            }
        };
        // The request is written as segments that share the record batches (no copy into a
        // request buffer; see `kafkit_protocol::produce`).
        let parts: Vec<ProducePartition> = entries
            .iter()
            .map(|e| ProducePartition {
                index: e.partition,
                records: e.records.clone(),
            })
            .collect();
        let acks = cfg.required_acks.as_i16();
        let timeout_ms = cfg.write_timeout.as_millis() as i32;
        let submitted = conn
            .submit_encoded::<ProduceRequest>(
                cfg.write_timeout + Duration::from_secs(5),
                cfg.required_acks != RequiredAcks::None,
                |id, version, client_id| {
                    Ok(encode_produce_request(
                        id,
                        Some(client_id),
                        version,
                        acks,
                        timeout_ms,
                        &cfg.topic,
                        &parts,
                    )?)
                },
            )
            .await;
        drop(parts);
        let reply = match submitted {
            Ok(Some(r)) => r,
            // acks=0: no answer comes; written is all there is to know.
            Ok(None) => {
                entries.into_iter().for_each(|e| {
                    let _ = e.reply.send(Ok(-1));
                });
                continue;
            }
            Err(e) => {
                fail(entries, e);
                continue;
            }
        };
        let topic = cfg.topic.clone();
        drop(shared);
        tokio::spawn(async move {
            let _permit = permit;
            let resp = match reply.wait().await {
                Ok(r) => r,
                Err(e) => {
                    for x in entries {
                        let _ = x.reply.send(Err(e.clone()));
                    }
                    return;
                }
            };
            let mut results: HashMap<i32, (i16, i64)> = HashMap::new();
            for t in &resp.responses {
                for p in &t.partition_responses {
                    results.insert(p.index, (p.error_code, p.base_offset));
                }
            }
            for x in entries {
                let r = match results.get(&x.partition) {
                    Some((0, base)) => Ok(*base),
                    Some((code, _)) => Err(Error::kafka(
                        *code,
                        format!("produce to {topic}/{}", x.partition),
                    )),
                    None => Err(Error::kafka(
                        -1,
                        format!(
                            "no answer for {topic}/{} in the produce response",
                            x.partition
                        ),
                    )),
                };
                let _ = x.reply.send(r);
            }
        });
    }
}

fn wrap_seq(seq: i32, n: usize) -> i32 {
    ((seq as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

/// One partition's sender: forms batches (linger measured from each batch's first record),
/// keeps up to `max_in_flight` requests on the wire, and retries failed ones in order.
async fn partition_task(shared: Arc<Shared>, partition: i32, mut rx: mpsc::Receiver<Item>) {
    let cfg = &shared.config;
    let mut seq = Sequence::default();
    let mut forming: Vec<Item> = Vec::new();
    let (mut forming_n, mut forming_bytes) = (0usize, 0usize);
    // An item that did not fit the forming batch: it starts the next one.
    let mut carry: Option<Item> = None;
    let mut deadline = tokio::time::Instant::now();
    let mut queue: VecDeque<Batch> = VecDeque::new();
    let mut inflight: VecDeque<Batch> = VecDeque::new();
    let mut replies: VecDeque<ReplyHandle> = VecDeque::new();
    let mut closed = false;
    loop {
        let now = tokio::time::Instant::now();
        if !forming.is_empty()
            && (closed
                || forming_n >= cfg.batch_size
                || forming_bytes >= cfg.batch_bytes
                || forming.iter().any(|i| i.sync)
                || carry.is_some()
                || now >= deadline)
        {
            queue.push_back(Batch::new(
                std::mem::take(&mut forming),
                forming_n,
                cfg.retry_backoff,
            ));
            (forming_n, forming_bytes) = (0, 0);
        }
        if forming.is_empty() {
            if let Some(i) = carry.take() {
                deadline = i.queued_at + cfg.batch_timeout.saturating_sub(Duration::from_millis(1));
                forming_n += i.messages.len();
                forming_bytes += i.bytes;
                forming.push(i);
                continue; // it may be ready at once (sync, or full)
            }
        }
        while inflight.len() < cfg.max_in_flight {
            if queue
                .front()
                .is_none_or(|b| b.not_before.is_some_and(|t| t > now))
            {
                break;
            }
            let mut b = queue.pop_front().expect("front");
            let (handle, sent) = submit(&shared, partition, &mut b, &mut seq).await;
            inflight.push_back(b);
            replies.push_back(handle);
            if !sent {
                break; // no leader or connection: let the retry logic see it before sending more
            }
        }
        if closed && forming.is_empty() && queue.is_empty() && inflight.is_empty() {
            break;
        }
        let retry_at = queue.front().and_then(|b| b.not_before);
        let can_take = !closed
            && carry.is_none()
            && forming_n < cfg.batch_size
            && forming_bytes < cfg.batch_bytes;
        tokio::select! {
            biased;
            r = async { replies.front_mut().expect("reply").await }, if !replies.is_empty() => {
                replies.pop_front();
                let b = inflight.pop_front().expect("batch of reply");
                let r = r.unwrap_or(Err(Error::Closed));
                on_reply(&shared, partition, b, r, &mut inflight, &mut replies, &mut queue, &mut seq).await;
            }
            item = rx.recv(), if can_take => match item {
                Some(i) => {
                    let mut next = Some(i);
                    while let Some(i) = next.take() {
                        let fits = forming.is_empty()
                            || (forming_n + i.messages.len() <= cfg.batch_size
                                && forming_bytes + i.bytes <= cfg.batch_bytes);
                        if !fits {
                            carry = Some(i);
                            break;
                        }
                        if forming.is_empty() {
                            // tokio's timers fire on the first 1 ms tick at or after their
                            // deadline; aiming 1 ms early keeps the wait within batch_timeout.
                            deadline = i.queued_at
                                + cfg.batch_timeout.saturating_sub(Duration::from_millis(1));
                        }
                        forming_n += i.messages.len();
                        forming_bytes += i.bytes;
                        forming.push(i);
                        if forming_n < cfg.batch_size && forming_bytes < cfg.batch_bytes {
                            next = rx.try_recv().ok();
                        }
                    }
                }
                None => closed = true,
            },
            _ = tokio::time::sleep_until(deadline), if !forming.is_empty() => {}
            _ = tokio::time::sleep_until(retry_at.unwrap_or(now)), if retry_at.is_some() && inflight.len() < cfg.max_in_flight => {}
        }
    }
}

/// Numbers (first time or after an epoch change), encodes and queues a batch on its leader's
/// connection; the answer is awaited in a task. Returns false as second value when the batch
/// could not even be queued (its handle then holds the error).
async fn submit(
    shared: &Arc<Shared>,
    partition: i32,
    b: &mut Batch,
    seq: &mut Sequence,
) -> (ReplyHandle, bool) {
    let cfg = &shared.config;
    b.attempts += 1;
    b.started.get_or_insert_with(std::time::Instant::now);
    let queued: Result<ReplyHandle> = async {
        let identity = shared.producer(None).await?;
        if !b.numbered || b.identity != identity {
            if seq.identity != identity {
                // New producer or new epoch: numbering starts over.
                seq.identity = identity;
                seq.next = 0;
            }
            b.identity = identity;
            b.first_seq = seq.next;
            b.numbered = true;
            if identity.is_some() {
                seq.next = wrap_seq(seq.next, b.n);
            }
        }
        let records = match b.encoded.take() {
            Some((r, id, first)) if id == identity && first == b.first_seq => r,
            Some((r, _, _)) => {
                let mut m = bytes::BytesMut::from(&r[..]);
                let (pid, epoch) = identity.map_or((-1, -1), |i| (i.id, i.epoch));
                kafkit_protocol::batch::restamp_producer(&mut m, pid, epoch, b.first_seq)?;
                m.freeze()
            }
            None => {
                let mut batches = build_records(cfg, &b.items, identity, b.first_seq)?;
                let r = if batches.len() == 1 {
                    batches.pop().expect("one batch")
                } else {
                    let mut r =
                        bytes::BytesMut::with_capacity(batches.iter().map(|x| x.len()).sum());
                    for x in &batches {
                        r.extend_from_slice(x);
                    }
                    r.freeze()
                };
                // The encoded bytes are all a retry needs: free the messages now.
                for i in &mut b.items {
                    i.messages = Vec::new();
                }
                r
            }
        };
        b.encoded = Some((records.clone(), identity, b.first_seq));
        tracing::info!(target: "kafkit::writer", "writing {} messages to {} (partition: {partition})", b.n, cfg.topic);
        let addr = shared.client.leader_addr(&cfg.topic, partition).await?;
        // Kafka takes exactly one record batch per partition in a Produce request (v3+): a
        // batch that was split (batch_size, batch_bytes) goes out as consecutive requests, in
        // order, and succeeds when every part does.
        let split = kafkit_protocol::batch::split_batches(&records)?;
        let sender = shared.broker_sender(&addr);
        let mut parts = Vec::with_capacity(split.batches.len());
        for range in split.batches {
            let (tx, rx) = oneshot::channel();
            sender
                .send(Entry {
                    partition,
                    records: records.slice(range),
                    reply: tx,
                })
                .await
                .map_err(|_| Error::Closed)?;
            parts.push(rx);
        }
        if parts.len() == 1 {
            return Ok(parts.pop().expect("one part"));
        }
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut base, mut error) = (None, None);
            for part in parts {
                match part.await.unwrap_or(Err(Error::Closed)) {
                    Ok(b) => {
                        base.get_or_insert(b);
                    }
                    // A resent part the broker already has (idempotence).
                    Err(e) if e.kafka_code() == Some(codes::DUPLICATE_SEQUENCE_NUMBER) => {
                        base.get_or_insert(-1);
                    }
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                }
            }
            let _ = tx.send(match error {
                Some(e) => Err(e),
                None => Ok(base.unwrap_or(-1)),
            });
        });
        Ok(rx)
    }
    .await;
    match queued {
        Ok(h) => (h, true),
        Err(e) => (answered(Err(e)), false),
    }
}

fn is_sequence_error(b: &Batch, e: &Error) -> bool {
    b.identity.is_some()
        && matches!(
            e.kafka_code(),
            Some(codes::OUT_OF_ORDER_SEQUENCE_NUMBER | codes::UNKNOWN_PRODUCER_ID)
        )
}

/// Handles the answer to the oldest batch in flight.
#[allow(clippy::too_many_arguments)]
async fn on_reply(
    shared: &Arc<Shared>,
    partition: i32,
    mut b: Batch,
    r: Result<i64>,
    inflight: &mut VecDeque<Batch>,
    replies: &mut VecDeque<ReplyHandle>,
    queue: &mut VecDeque<Batch>,
    seq: &mut Sequence,
) {
    let cfg = &shared.config;
    let e = match r {
        Ok(base) => return complete(shared, partition, b, Ok(base)),
        // DUPLICATE_SEQUENCE_NUMBER: the broker already has this batch.
        Err(e) if e.kafka_code() == Some(codes::DUPLICATE_SEQUENCE_NUMBER) => {
            return complete(shared, partition, b, Ok(-1))
        }
        Err(e) => e,
    };
    let seq_error = is_sequence_error(&b, &e);
    if !(e.is_retriable() || seq_error) || b.attempts >= cfg.max_attempts {
        // With idempotence, later batches now follow a gap: they come back with
        // OUT_OF_ORDER_SEQUENCE_NUMBER and are renumbered under a new epoch then.
        return complete(shared, partition, b, Err(e));
    }
    shared.counters.retries.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(target: "kafkit::writer", topic = %cfg.topic, partition, attempt = b.attempts, error = %e, "retrying write");
    shared.client.invalidate(&cfg.topic);
    // Whatever was sent after this batch: keep what succeeded, resend the rest in order.
    let backoff = b.backoff;
    b.backoff = (b.backoff * 2).min(cfg.retry_backoff_max);
    let old_identity = b.identity;
    let mut resend = vec![b];
    let mut bump = seq_error;
    while let (Some(other), Some(h)) = (inflight.pop_front(), replies.pop_front()) {
        let r = h.await.unwrap_or(Err(Error::Closed));
        match r {
            Ok(base) => complete(shared, partition, other, Ok(base)),
            Err(e) if e.kafka_code() == Some(codes::DUPLICATE_SEQUENCE_NUMBER) => {
                complete(shared, partition, other, Ok(-1))
            }
            Err(e) if e.is_retriable() || is_sequence_error(&other, &e) => {
                bump |= e.kafka_code() == Some(codes::UNKNOWN_PRODUCER_ID);
                resend.push(other)
            }
            Err(e) => complete(shared, partition, other, Err(e)),
        }
    }
    if bump {
        // OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID: new epoch (KIP-360); every batch
        // not yet acknowledged is renumbered from 0 when it is sent again.
        tracing::warn!(target: "kafkit::writer", topic = %cfg.topic, partition, "sequence lost; bumping the producer epoch");
        if let Err(e) = shared.producer(old_identity).await {
            let e = Arc::new(e);
            for x in resend {
                complete_arc(shared, partition, x, Err(e.clone()));
            }
            return;
        }
        seq.identity = None; // forces renumbering from 0 at the next send
    }
    let at = tokio::time::Instant::now() + backoff;
    for mut x in resend.into_iter().rev() {
        x.not_before = Some(at);
        queue.push_front(x);
    }
}

fn complete(shared: &Shared, partition: i32, b: Batch, result: Result<i64>) {
    complete_arc(shared, partition, b, result.map_err(Arc::new))
}

/// Counts, logs and reports a batch's final outcome to its writers.
fn complete_arc(shared: &Shared, partition: i32, b: Batch, result: Result<i64, Arc<Error>>) {
    let cfg = &shared.config;
    let c = &shared.counters;
    let n = b.n;
    match &result {
        Ok(base) => {
            let us = b.started.map_or(0, |t| t.elapsed().as_micros() as u64);
            c.writes.fetch_add(1, Ordering::Relaxed);
            c.messages.fetch_add(n as u64, Ordering::Relaxed);
            c.bytes.fetch_add(b.bytes as u64, Ordering::Relaxed);
            c.batch_max.fetch_max(n as u64, Ordering::Relaxed);
            c.latency_total_us.fetch_add(us, Ordering::Relaxed);
            c.latency_max_us.fetch_max(us, Ordering::Relaxed);
            tracing::debug!(target: "kafkit::writer", topic = %cfg.topic, partition, messages = n, base_offset = base, "wrote messages");
        }
        Err(e) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "kafkit::writer", topic = %cfg.topic, partition, messages = n, error = %e, "write failed");
        }
    }
    for mut i in b.items {
        if let Some(done) = i.done.take() {
            let _ = done.send(result.clone());
        }
    }
}

fn codec(c: crate::config::Compression) -> Compression {
    match c {
        crate::config::Compression::None => Compression::None,
        crate::config::Compression::Gzip => Compression::Gzip,
        crate::config::Compression::Snappy => Compression::Snappy,
        crate::config::Compression::Lz4 => Compression::Lz4,
        crate::config::Compression::Zstd => Compression::Zstd,
    }
}

/// Encodes the items as batches; with an identity, records are numbered from `first_seq`.
fn build_records(
    cfg: &WriterConfig,
    items: &[Item],
    identity: Option<ProducerIdentity>,
    first_seq: i32,
) -> Result<Vec<Bytes>> {
    let mut batches = Vec::new();
    let mut current: Vec<Record> = Vec::new();
    let mut bytes = 0;
    let compression = codec(cfg.compression);
    let (pid, epoch) = identity.map_or((-1, -1), |i| (i.id, i.epoch));
    let mut seq = first_seq;
    let flush = |current: &mut Vec<Record>, batches: &mut Vec<Bytes>| -> Result<()> {
        if !current.is_empty() {
            batches.push(encode_records_level(
                current,
                compression,
                cfg.compression_level,
            )?);
            current.clear();
        }
        Ok(())
    };
    for m in items.iter().flat_map(|i| &i.messages) {
        let size = m.size() + RECORD_OVERHEAD;
        if !current.is_empty()
            && (current.len() >= cfg.batch_size || bytes + size > cfg.batch_bytes)
        {
            flush(&mut current, &mut batches)?;
            bytes = 0;
        }
        let offset = current.len() as i64;
        // Sequence numbers wrap at i32::MAX, as Kafka's do; without an identity they only keep
        // `offset - sequence` constant for the encoder.
        let sequence = if identity.is_some() {
            seq
        } else {
            offset as i32
        };
        seq = if seq == i32::MAX { 0 } else { seq + 1 };
        let mut headers = IndexMap::new();
        for h in &m.headers {
            headers.insert(str_bytes(&h.key), h.value.clone());
        }
        current.push(Record {
            producer_id: pid,
            producer_epoch: epoch,
            sequence,
            headers,
            ..new_record(offset, now_ms(m.time), m.key.clone(), m.value.clone())
        });
        bytes += size;
    }
    flush(&mut current, &mut batches)?;
    Ok(batches)
}
