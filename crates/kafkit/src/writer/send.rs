//! The writer's tokio driver: one task per partition runs that partition's
//! [`PartitionCore`](super::accumulator::PartitionCore) (feeding it writes, answers and the
//! time, and doing what it asks), and one request builder per broker merges the partitions'
//! batches into Produce requests.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafkit_protocol::codes;
use kafkit_protocol::messages::ProduceRequest;
use kafkit_protocol::produce::{encode_produce_request, ProducePartition};
use tokio::sync::{mpsc, oneshot};

use super::accumulator::{Done, Event, Limits, PartitionCore, Write};
use super::encode::Encoding;
use super::{Shared, Token};
use crate::config::RequiredAcks;
use crate::error::{Error, Result};

/// The driver's clock: tokio's (so paused-time tests work), as a std `Instant` for the core.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// One partition's sender: runs the partition's core until the writer closes and every write
/// has its outcome.
pub(super) async fn partition_task(
    shared: Arc<Shared>,
    partition: i32,
    mut rx: mpsc::Receiver<Write<Token>>,
) {
    let cfg = &shared.config;
    let mut core = PartitionCore::new(
        Limits {
            batch_size: cfg.batch_size,
            batch_bytes: cfg.batch_bytes,
            // tokio's timers fire on the first 1 ms tick at or after their deadline; aiming
            // 1 ms early keeps the wait within batch_timeout.
            linger: cfg.batch_timeout.saturating_sub(Duration::from_millis(1)),
            max_in_flight: cfg.max_in_flight,
            max_attempts: cfg.max_attempts,
            retry_backoff: cfg.retry_backoff,
            retry_backoff_max: cfg.retry_backoff_max,
        },
        Encoding::of(cfg),
    );
    // The answers of the batches in flight, in the order sent.
    let mut replies: VecDeque<(u64, ReplyHandle)> = VecDeque::new();
    loop {
        let t = now();
        while core.sendable(t) {
            let identity = shared.producer(None).await;
            let Some(out) = core.send(t, identity) else {
                break;
            };
            tracing::info!(target: "kafkit::writer", "writing {} messages to {} (partition: {partition})", out.n, cfg.topic);
            let queued = match out.records {
                Ok(records) => route(&shared, partition, records).await,
                Err(e) => Err(e),
            };
            let sent = queued.is_ok();
            replies.push_back((out.id, queued.unwrap_or_else(|e| answered(Err(e)))));
            if !sent {
                break; // no leader or connection: let the retry logic see it before sending more
            }
        }
        while let Some(event) = core.poll_event() {
            match event {
                Event::Done(d) => complete(&shared, partition, d),
                Event::Retrying { attempt, error } => {
                    shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "kafkit::writer", topic = %cfg.topic, partition, attempt, %error, "retrying write");
                    shared.client.invalidate(&cfg.topic);
                }
                Event::BumpEpoch(old) => {
                    // OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID: new epoch (KIP-360).
                    tracing::warn!(target: "kafkit::writer", topic = %cfg.topic, partition, "sequence lost; bumping the producer epoch");
                    let r = shared.producer(old).await.map(|_| ());
                    core.epoch_bumped(r, now());
                }
            }
        }
        if core.is_finished() {
            return;
        }
        let deadline = core.next_deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            r = async { (&mut replies.front_mut().expect("reply").1).await }, if !replies.is_empty() => {
                let (id, _) = replies.pop_front().expect("front");
                core.on_response(id, r.unwrap_or(Err(Error::Closed)), now());
            }
            w = rx.recv(), if core.accepts() => match w {
                Some(w) => {
                    core.push(w);
                    // Take what is already queued, up to a full batch, before deciding.
                    while core.accepts() {
                        match rx.try_recv() {
                            Ok(w) => core.push(w),
                            Err(_) => break,
                        }
                    }
                }
                None => core.close(),
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {}
        }
    }
}

/// Counts, logs and reports a batch's final outcome to its writers.
fn complete(shared: &Shared, partition: i32, d: Done<Token>) {
    let cfg = &shared.config;
    let c = &shared.counters;
    let n = d.n;
    match &d.result {
        Ok(base) => {
            let us = d.latency.as_micros() as u64;
            c.writes.fetch_add(1, Ordering::Relaxed);
            c.messages.fetch_add(n as u64, Ordering::Relaxed);
            c.bytes.fetch_add(d.payload as u64, Ordering::Relaxed);
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
    for t in d.tokens {
        let _ = t.done.send(d.result.clone());
    }
}

/// Queues a partition's encoded batch on its leader's request builder; the handle gets the
/// answer. Kafka takes exactly one record batch per partition in a Produce request (v3+): a
/// batch that was split (batch_size, batch_bytes) goes out as consecutive requests, in order,
/// and succeeds when every part does.
async fn route(shared: &Arc<Shared>, partition: i32, records: Bytes) -> Result<ReplyHandle> {
    let cfg = &shared.config;
    let addr = shared.client.leader_addr(&cfg.topic, partition).await?;
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

/// The answer to a sent batch: base offset, or why it failed.
type ReplyHandle = oneshot::Receiver<Result<i64>>;

fn answered(r: Result<i64>) -> ReplyHandle {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(r);
    rx
}

/// A partition's encoded batch handed to its leader's request builder.
pub(super) struct Entry {
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
pub(super) async fn broker_task(
    weak: std::sync::Weak<Shared>,
    addr: String,
    mut rx: mpsc::Receiver<Entry>,
) {
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
                    None => Err(Error::UnexpectedResponse(format!(
                        "no answer for {topic}/{} in the produce response",
                        x.partition
                    ))),
                };
                let _ = x.reply.send(r);
            }
        });
    }
}
