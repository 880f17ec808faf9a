//! Old request versions `kafka-protocol` cannot decode (see `kafkit_protocol::legacy`):
//! Produce v0-v2 with message sets v0/v1, Fetch v0-v3 (stored v2 batches are down-converted
//! to message sets: magic 1 for v2-v3, magic 0 for v0-v1) and ListOffsets v0. Records from
//! old producers are stored as v2 batches, as Kafka 3 stores them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafkit_protocol::batch::decode_records_capped;
use kafkit_protocol::legacy::{self, FetchPartition, LegacyRecord, ProducePartition};
use kafkit_protocol::messages::fetch_request::{FetchPartition as FetchReqPartition, FetchTopic};
use kafkit_protocol::messages::{ApiKey, BrokerId, FetchRequest};
use kafkit_protocol::topic_name;
use kafkit_protocol::ProtocolError;

use super::{err, fetch, produce, Ctx};

/// Whether this (api key, version) is served here rather than by `kafka-protocol`.
pub fn serves(api_key: i16, version: i16) -> bool {
    matches!(
        (ApiKey::try_from(api_key), version),
        (Ok(ApiKey::Produce), 0..=2) | (Ok(ApiKey::Fetch), 0..=3) | (Ok(ApiKey::ListOffsets), 0)
    )
}

/// Why a legacy request closes its connection.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// The request could not be decoded, or is not one [`serves`] covers.
    #[error(transparent)]
    Request(#[from] ProtocolError),
    /// A blocking task (down-conversion, a log read) did not finish: the runtime is
    /// shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

/// Serves a legacy request body; `Ok(None)` means no response (acks=0).
pub async fn handle(
    ctx: &Ctx,
    api_key: i16,
    version: i16,
    body: Bytes,
) -> Result<Option<BytesMut>, LegacyError> {
    match ApiKey::try_from(api_key) {
        Ok(ApiKey::Produce) => produce_v0(ctx, version, body).await,
        Ok(ApiKey::Fetch) => fetch_v0(ctx, version, body).await.map(Some),
        Ok(ApiKey::ListOffsets) => super::on_disk(ctx, move |ctx| list_offsets_v0(ctx, body))
            .await
            .ok_or(LegacyError::ShuttingDown)?
            .map(Some),
        _ => Err(ProtocolError::UnsupportedVersion { api_key, version }.into()),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Converts a message set into one v2 batch, or a Kafka error code: on a blocking thread, a few
/// at a time, decompressing at most `max_decompressed_batch_bytes` (issue 11: 4 M tiny messages
/// in 252 KB of gzip took the broker to 1 GB).
async fn to_batch(ctx: &Ctx, set: &Bytes) -> Result<Bytes, i16> {
    let cap = ctx.cluster.config.max_decompressed_batch_bytes;
    let set = set.clone();
    let now = now_ms();
    let converted = ctx
        .cluster
        .limits
        .decompress(move || legacy::message_set_to_batch(&set, cap, now))
        .await
        .ok_or(err::CORRUPT_MESSAGE)?;
    converted.map_err(|e| {
        tracing::info!(target: "kafkit::broker", broker = ctx.broker_id, peer = %ctx.peer_addr, error = %e, "refusing legacy message set");
        match e {
            ProtocolError::InvalidBatch(b) => b.code().code(),
            _ => err::CORRUPT_MESSAGE,
        }
    })
}

async fn produce_v0(ctx: &Ctx, version: i16, body: Bytes) -> Result<Option<BytesMut>, LegacyError> {
    let req = legacy::decode_produce_request(body)?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut results = Vec::new();
    for (topic, parts) in &req.topics {
        let mut out = Vec::new();
        for (partition, set) in parts {
            let a = if !matches!(req.acks, -1..=1) {
                produce::Appended::error(err::INVALID_REQUIRED_ACKS)
            } else {
                // The converted batch is ours (one valid v2 batch; the fuzz target
                // `legacy_message_set` checks that); only its size is left to check.
                let batch = to_batch(ctx, set).await.and_then(|batch| {
                    if batch.len() > ctx.cluster.max_message_bytes(topic, ctx.broker_id) {
                        Err(err::MESSAGE_TOO_LARGE)
                    } else {
                        Ok(batch)
                    }
                });
                match batch {
                    Ok(batch) => {
                        produce::append(ctx, topic, *partition, Some(&batch), req.acks).await
                    }
                    Err(code) => produce::Appended::error(code),
                }
            };
            out.push((*partition, a));
        }
        results.push((topic.clone(), out));
    }
    let mut topics = Vec::new();
    for (topic, parts) in results {
        let mut out = Vec::new();
        for (partition, mut a) in parts {
            if req.acks == -1 {
                if let Some((p, end, min_isr)) = a.wait.take() {
                    a.code = produce::wait_replicated(ctx, &p, end, min_isr, deadline).await;
                }
            }
            out.push(ProducePartition {
                partition,
                error_code: a.code,
                base_offset: if a.code == 0 { a.base } else { -1 },
            });
        }
        topics.push((topic, out));
    }
    Ok((req.acks != 0).then(|| legacy::encode_produce_response(version, &topics)))
}

async fn fetch_v0(ctx: &Ctx, version: i16, body: Bytes) -> Result<BytesMut, LegacyError> {
    let req = legacy::decode_fetch_request(version, body)?;
    let modern = FetchRequest::default()
        .with_replica_id(BrokerId(req.replica_id))
        .with_max_wait_ms(req.max_wait_ms)
        .with_min_bytes(req.min_bytes)
        .with_max_bytes(req.max_bytes)
        .with_topics(
            req.topics
                .iter()
                .map(|(t, parts)| {
                    FetchTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(p, offset, max)| {
                                    FetchReqPartition::default()
                                        .with_partition(*p)
                                        .with_fetch_offset(*offset)
                                        .with_partition_max_bytes(*max)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp = fetch::handle(ctx, modern, 4).await;
    let magic = if version >= 2 { 1 } else { 0 };
    // Down-conversion decompresses stored batches: on a blocking thread, a few at a time, each
    // batch under `max_decompressed_batch_bytes` (a batch that exceeds it is left out).
    let cap = ctx.cluster.config.max_decompressed_batch_bytes;
    ctx.cluster
        .limits
        .decompress(move || down_convert(resp, version, magic, cap))
        .await
        .ok_or(LegacyError::ShuttingDown)
}

fn down_convert(
    resp: kafkit_protocol::messages::FetchResponse,
    version: i16,
    magic: i8,
    cap: usize,
) -> BytesMut {
    let topics: Vec<(String, Vec<FetchPartition>)> = resp
        .responses
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .into_iter()
                .map(|p| {
                    let records = p
                        .records
                        .as_ref()
                        .and_then(|data| decode_records_capped(data, cap).ok())
                        .map(|recs| {
                            let legacy: Vec<LegacyRecord> = recs
                                .into_iter()
                                .map(|r| LegacyRecord {
                                    offset: r.offset,
                                    timestamp: r.timestamp,
                                    key: r.key,
                                    value: r.value,
                                })
                                .collect();
                            legacy::encode_message_set(&legacy, magic)
                        })
                        .unwrap_or_default();
                    FetchPartition {
                        partition: p.partition_index,
                        error_code: p.error_code,
                        high_watermark: p.high_watermark,
                        records,
                    }
                })
                .collect();
            (t.topic.0.to_string(), parts)
        })
        .collect();
    legacy::encode_fetch_response(version, &topics)
}

fn list_offsets_v0(ctx: &Ctx, body: Bytes) -> Result<BytesMut, LegacyError> {
    let req = legacy::decode_list_offsets_v0(body)?;
    let topics: legacy::ListedOffsets = req
        .into_iter()
        .map(|(t, parts)| {
            let topic = ctx.cluster.topic(&t);
            let out = parts
                .into_iter()
                .map(|(p, ts, max)| {
                    let part = topic
                        .as_ref()
                        .and_then(|t| usize::try_from(p).ok().and_then(|i| t.partitions.get(i)));
                    let Some(part) = part else {
                        return (p, err::UNKNOWN_TOPIC_OR_PARTITION, vec![]);
                    };
                    let inner = part.lock();
                    let Some(log) = inner.leader_log().filter(|_| inner.leader == ctx.broker_id)
                    else {
                        return (p, err::NOT_LEADER_OR_FOLLOWER, vec![]);
                    };
                    let offset = match ts {
                        -2 => log.log_start_offset(),
                        ts if ts < 0 => inner.high_watermark,
                        ts => match log.offset_for_timestamp(ts, inner.high_watermark) {
                            Ok(Some((offset, _))) => offset,
                            // v0 has no "none": the end, where a reader would wait.
                            Ok(None) => inner.high_watermark,
                            Err(_) => return (p, err::KAFKA_STORAGE_ERROR, vec![]),
                        },
                    };
                    (p, err::NONE, if max > 0 { vec![offset] } else { vec![] })
                })
                .collect();
            (t, out)
        })
        .collect();
    Ok(legacy::encode_list_offsets_v0(&topics))
}
