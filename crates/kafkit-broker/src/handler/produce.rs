//! Produce (key 0) v3-v11 (v0-v2 in `legacy.rs`). Every batch is validated before anything is
//! appended (`check_records`: one v2 batch per partition, length, CRC-32C, codec, base offset 0,
//! record count and offset deltas, every record parsed; compressed batches decompressed as a
//! stream under a cap on a blocking thread), and stored as sent.
//!
//! acks=0: no response. acks=1: answered once the leader has appended. acks=-1: answered once
//! every in-sync replica has the records (the high watermark passed them); NOT_ENOUGH_REPLICAS
//! before appending when the ISR is smaller than `min_insync_replicas`,
//! NOT_ENOUGH_REPLICAS_AFTER_APPEND if it shrank below while waiting, REQUEST_TIMED_OUT after
//! `timeout_ms`, NOT_LEADER_OR_FOLLOWER if leadership moved meanwhile.
//!
//! Idempotent batches are checked against the producer's sequence in the partition log (see
//! `PartitionLog::append`). Appends run on a blocking thread (the crate's concurrency rule).
//! Not implemented: transactions (transactional batches are refused).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafkit_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafkit_protocol::messages::{ProduceRequest, ProduceResponse};
use kafkit_protocol::str_bytes;
use kafkit_protocol::{batch, validate};

use super::{err, Ctx};
use crate::log::AppendError;
use crate::state::PartitionState;

pub(super) struct Appended {
    pub(super) code: i16,
    pub(super) base: i64,
    pub(super) log_start: i64,
    pub(super) wait: Option<(Arc<PartitionState>, i64, usize)>,
    /// Records refused one by one (index in the batch, why), with INVALID_RECORD.
    pub(super) record_errors: Vec<(i32, String)>,
}

impl Appended {
    pub(super) fn error(code: i16) -> Self {
        Self {
            code,
            base: -1,
            log_start: -1,
            wait: None,
            record_errors: Vec::new(),
        }
    }
}

/// [`append_blocking`] on a blocking thread: the append writes the leader's log and copies to
/// the followers' under the partition's lock, which must not happen on a runtime thread (the
/// crate's concurrency rule).
pub(super) async fn append(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    records: Option<&bytes::Bytes>,
    acks: i16,
) -> Appended {
    let (ctx, topic, records) = (ctx.clone(), topic.to_owned(), records.cloned());
    tokio::task::spawn_blocking(move || {
        append_blocking(&ctx, &topic, partition, records.as_ref(), acks)
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(target: "kafkit::broker", error = %e, "append task failed");
        Appended::error(err::KAFKA_STORAGE_ERROR)
    })
}

fn append_blocking(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    records: Option<&bytes::Bytes>,
    acks: i16,
) -> Appended {
    let t = match ctx.cluster.topic_or_create(topic, true) {
        Ok(t) => t,
        Err(code) => return Appended::error(code),
    };
    let Some(p) = usize::try_from(partition)
        .ok()
        .and_then(|i| t.partitions.get(i))
    else {
        return Appended::error(err::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let empty = bytes::Bytes::new();
    let data = records.unwrap_or(&empty);
    // `check_records` validated the batch (CRC included); only its bounds are needed here.
    let Ok(split) = batch::split_batches(data) else {
        return Appended::error(err::CORRUPT_MESSAGE);
    };
    let slices: Vec<&[u8]> = split.batches.into_iter().map(|r| &data[r]).collect();
    let mut inner = p.lock();
    if inner.leader != ctx.broker_id {
        return Appended::error(err::NOT_LEADER_OR_FOLLOWER);
    }
    let min_isr = ctx.cluster.min_insync_replicas(topic, ctx.broker_id);
    if acks == -1 && inner.isr.len() < min_isr {
        return Appended::error(err::NOT_ENOUGH_REPLICAS);
    }
    let epoch = inner.leader_epoch;
    let leader = inner.leader;
    let log = inner.logs.get_mut(&leader).expect("leader has a log");
    match log.append(&slices, epoch) {
        Ok(base) => {
            let end = log.next_offset();
            let log_start = log.log_start_offset();
            // Followers that are up and reachable copy the append now, under the same lock,
            // so the high watermark moves with it: a consumer (or an acks=-1 writer) does not
            // wait for the background pass, which is left to catch up followers that were
            // down or cut off (see `replication`).
            let isr = inner.isr.clone();
            crate::replication::replicate_partition(
                &ctx.cluster,
                topic,
                partition,
                &mut inner,
                &p.replicas,
                std::time::Instant::now(),
            );
            inner.update_high_watermark();
            let isr_changed = inner.isr != isr;
            drop(inner);
            p.data.notify_waiters();
            if isr_changed {
                ctx.cluster.changed.notify_waiters();
            }
            Appended {
                code: err::NONE,
                base,
                log_start,
                wait: Some((p.clone(), end, min_isr)),
                record_errors: Vec::new(),
            }
        }
        Err(AppendError::Code(code)) => Appended::error(code),
        Err(AppendError::Io(e)) => {
            // Nothing of the batch was kept (see `PartitionLog::write`). The replication pass
            // moves leadership to a healthy in-sync replica if there is one.
            tracing::debug!(target: "kafkit::broker", topic, partition, error = %e, "append failed");
            drop(inner);
            ctx.cluster.changed.notify_waiters();
            Appended::error(err::KAFKA_STORAGE_ERROR)
        }
    }
}

/// Validates one partition's records before anything is appended (Kafka's `LogValidator`, see
/// `kafkit_protocol::validate`): exactly one batch, within `message.max.bytes`, records that
/// parse and match the header. Uncompressed batches are checked here; compressed ones are
/// decompressed as a stream on a blocking thread, a few at a time, under
/// `max_decompressed_batch_bytes`.
async fn check_records(ctx: &Ctx, topic: &str, records: Option<&Bytes>) -> Result<(), i16> {
    let Some(data) = records else {
        return Err(err::CORRUPT_MESSAGE);
    };
    let split = batch::split_batches(data).map_err(|_| err::CORRUPT_MESSAGE)?;
    match split.batches.len() {
        _ if split.trailing != 0 => return Err(err::CORRUPT_MESSAGE),
        0 => return Err(err::CORRUPT_MESSAGE),
        1 => {}
        // As Kafka: "Produce requests with version 3+ are only allowed to contain exactly one
        // record batch per partition".
        _ => return Err(err::INVALID_RECORD),
    }
    if data.len() > ctx.cluster.max_message_bytes(topic, ctx.broker_id) {
        return Err(err::MESSAGE_TOO_LARGE);
    }
    let cap = ctx.cluster.config.max_decompressed_batch_bytes;
    let compressed = batch::BatchHeader::parse(data).is_ok_and(|h| h.compression() != 0);
    let checked = if compressed {
        let data = data.clone();
        ctx.cluster
            .limits
            .decompress(move || validate::validate_batch(&data, cap))
            .await
            .ok_or(err::CORRUPT_MESSAGE)?
    } else {
        validate::validate_batch(data, cap)
    };
    checked.map(drop).map_err(|e| {
        tracing::info!(target: "kafkit::broker", broker = ctx.broker_id, peer = %ctx.peer_addr, error = %e, "refusing a produced batch");
        e.code().code()
    })
}

/// On a topic whose `cleanup.policy` includes `compact`, records without a key are refused
/// (as Kafka's LogValidator: "Compacted topic cannot accept message without key"): their
/// indexes in the batch. Compressed batches are decoded on a blocking thread.
async fn keyless_records(ctx: &Ctx, topic: &str, records: Option<&Bytes>) -> Vec<i32> {
    let Some(data) = records else {
        return Vec::new();
    };
    if !ctx.cluster.is_compacted(topic, ctx.broker_id) {
        return Vec::new();
    }
    let cap = ctx.cluster.config.max_decompressed_batch_bytes;
    let data = data.clone();
    let find = move || -> Vec<i32> {
        batch::decode_records_capped(&data, cap)
            .map(|recs| {
                recs.iter()
                    .enumerate()
                    .filter(|(_, r)| r.key.is_none())
                    .map(|(i, _)| i as i32)
                    .collect()
            })
            .unwrap_or_default()
    };
    ctx.cluster
        .limits
        .decompress(find)
        .await
        .unwrap_or_default()
}

/// Waits until every in-sync replica has the records below `end`.
pub(super) async fn wait_replicated(
    ctx: &Ctx,
    p: &PartitionState,
    end: i64,
    min_isr: usize,
    deadline: tokio::time::Instant,
) -> i16 {
    loop {
        let notified = ctx.cluster.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let moved = p.data.notified();
        tokio::pin!(moved);
        moved.as_mut().enable();
        {
            let inner = p.view(); // on a runtime thread: never the lock
            if inner.leader != ctx.broker_id {
                return err::NOT_LEADER_OR_FOLLOWER;
            }
            if inner.isr.len() < min_isr {
                return err::NOT_ENOUGH_REPLICAS_AFTER_APPEND;
            }
            if inner.high_watermark >= end {
                return err::NONE;
            }
        }
        let either = async {
            tokio::select! {
                _ = notified => {}
                _ = moved => {}
            }
        };
        if tokio::time::timeout_at(deadline, either).await.is_err() {
            return err::REQUEST_TIMED_OUT;
        }
    }
}

pub async fn handle(ctx: &Ctx, req: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut results = Vec::new();
    for td in &req.topic_data {
        let topic = td.name.0.to_string();
        for pd in &td.partition_data {
            let a = if !valid_acks {
                Appended::error(err::INVALID_REQUIRED_ACKS)
            } else {
                match check_records(ctx, &topic, pd.records.as_ref()).await {
                    Ok(()) => {
                        let keyless = keyless_records(ctx, &topic, pd.records.as_ref()).await;
                        if keyless.is_empty() {
                            append(ctx, &topic, pd.index, pd.records.as_ref(), acks).await
                        } else {
                            let message = format!(
                                "Compacted topic cannot accept message without key in topic partition {topic}-{}.",
                                pd.index
                            );
                            Appended {
                                record_errors: keyless
                                    .into_iter()
                                    .map(|i| (i, message.clone()))
                                    .collect(),
                                ..Appended::error(err::INVALID_RECORD)
                            }
                        }
                    }
                    Err(code) => Appended::error(code),
                }
            };
            results.push(a);
        }
    }
    if acks == -1 {
        for a in &mut results {
            if let Some((p, end, min_isr)) = a.wait.take() {
                a.code = wait_replicated(ctx, &p, end, min_isr, deadline).await;
            }
        }
    }
    if acks == 0 {
        return None;
    }
    let mut results = results.into_iter();
    let responses = req
        .topic_data
        .into_iter()
        .map(|td| {
            let parts = td
                .partition_data
                .iter()
                .map(|pd| {
                    let a = results.next().expect("one result per partition");
                    tracing::debug!(target: "kafkit::broker", broker = ctx.broker_id, topic = %td.name.0, partition = pd.index, code = a.code, base = a.base, "produce");
                    let mut r = PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_error_code(a.code)
                        .with_base_offset(if a.code == err::NONE { a.base } else { -1 });
                    if version >= 5 {
                        r.log_start_offset = a.log_start;
                    }
                    if version >= 8 && !a.record_errors.is_empty() {
                        r.error_message = Some(str_bytes("One or more records have been rejected"));
                        r.record_errors = a
                            .record_errors
                            .iter()
                            .map(|(i, m)| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(*i)
                                    .with_batch_index_error_message(Some(str_bytes(m)))
                            })
                            .collect();
                    }
                    r
                })
                .collect();
            TopicProduceResponse::default().with_name(td.name).with_partition_responses(parts)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(responses))
}
