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
//!
//! Where each part lives: this file has the public API (`Writer`, `Delivery`, `WriterStats`),
//! the split of a write into partitions and batch-sized pieces, `buffer_memory` and the
//! producer identity; `accumulator` is the per-partition core without I/O or clock
//! (batching, linger, in-flight order, retry, sequence numbers, epoch bumps), unit-tested with
//! simulated time; `send` is the tokio driver around it and the per-broker request builder;
//! `encode` turns messages into record batches; [`balancer`] picks partitions.

mod accumulator;
pub mod balancer;
mod encode;
mod send;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafkit_protocol::codes;
use kafkit_protocol::messages::{InitProducerIdRequest, ProducerId};
use tokio::sync::{mpsc, oneshot};

use crate::cluster::ClusterClient;
use crate::config::{RequiredAcks, WriterConfig};
use crate::conn::ConnConfig;
use crate::error::{Error, Result};
use crate::Message;
use accumulator::Write;
use balancer::{Partitioner, StickyLimits};
use encode::RECORD_OVERHEAD;

/// What a partition's sender hands back when a write's batch has its outcome: where the
/// caller waits, and the write's share of `buffer_memory` (released when this is dropped).
pub(crate) struct Token {
    done: oneshot::Sender<Result<i64, Arc<Error>>>,
    _memory: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token")
    }
}

/// What a queued message costs beyond its key, value and headers (the `Message` itself and its
/// share of the bookkeeping), charged against `buffer_memory` so the bound is on real memory.
const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>() + 32;

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
pub(crate) struct ProducerIdentity {
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
    broker_senders: Mutex<HashMap<String, mpsc::Sender<send::Entry>>>,
    /// Itself, for starting request builders that must not keep the writer alive.
    me: std::sync::Weak<Shared>,
}

impl Shared {
    fn broker_sender(&self, addr: &str) -> mpsc::Sender<send::Entry> {
        self.broker_senders
            .lock()
            .expect("senders lock")
            .entry(addr.to_owned())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(1024);
                tokio::spawn(send::broker_task(self.me.clone(), addr.to_owned(), rx));
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
        if resp.error_code != codes::NONE {
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
    senders: Mutex<HashMap<i32, mpsc::Sender<Write<Token>>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("topic", &self.shared.config.topic)
            .finish()
    }
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

    fn sender(&self, partition: i32) -> mpsc::Sender<Write<Token>> {
        let mut senders = self.senders.lock().expect("senders lock");
        senders
            .entry(partition)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(1024);
                let shared = self.shared.clone();
                let h = tokio::spawn(send::partition_task(shared, partition, rx));
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
                .send(Write {
                    messages: msgs,
                    bytes,
                    payload,
                    queued_at: tokio::time::Instant::now().into_std(),
                    sync,
                    token: Token {
                        done: tx,
                        _memory: memory,
                    },
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
