//! Produce (key 0) v3-v9. Every batch is checked (v2 format, length, CRC-32C) before anything
//! is appended; the partition's batches are appended together or not at all.
//!
//! Not implemented yet (issue 3): v0-v2 with legacy message sets, replication (acks=-1 is
//! answered once the leader has appended, which is all the replicas there are), idempotent
//! sequence checks, transactions, compression validation beyond the CRC.

use std::sync::atomic::Ordering;

use kafkit_protocol::batch;
use kafkit_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafkit_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{err, Ctx};

fn append(ctx: &Ctx, topic: &str, partition: i32, records: Option<&[u8]>) -> (i16, i64, i64) {
    let Some(t) = ctx.cluster.topic_or_create(topic, true) else {
        return (err::UNKNOWN_TOPIC_OR_PARTITION, -1, -1);
    };
    let Some(p) = usize::try_from(partition)
        .ok()
        .and_then(|i| t.partitions.get(i))
    else {
        return (err::UNKNOWN_TOPIC_OR_PARTITION, -1, -1);
    };
    if p.leader.load(Ordering::Relaxed) != ctx.broker_id {
        return (err::NOT_LEADER_OR_FOLLOWER, -1, -1);
    }
    let data = records.unwrap_or_default();
    let split = match batch::split_batches(data) {
        Ok(s) if s.trailing == 0 && !s.batches.is_empty() => s,
        _ => return (err::CORRUPT_MESSAGE, -1, -1),
    };
    let mut slices = Vec::with_capacity(split.batches.len());
    for range in split.batches {
        let b = &data[range];
        if b.len() > ctx.cluster.config.message_max_bytes {
            return (err::MESSAGE_TOO_LARGE, -1, -1);
        }
        match batch::verify_crc(b) {
            Ok(h) if h.compression() > 4 => return (err::UNSUPPORTED_COMPRESSION_TYPE, -1, -1),
            Ok(_) => slices.push(b),
            Err(_) => return (err::CORRUPT_MESSAGE, -1, -1),
        }
    }
    let mut log = p.log.lock().expect("log lock");
    let epoch = p.leader_epoch.load(Ordering::Relaxed);
    match log.append(&slices, epoch) {
        Ok(base) => (err::NONE, base, log.log_start_offset()),
        Err(e) => {
            tracing::error!(target: "kafkit::broker", topic, partition, error = %e, "append failed");
            (err::KAFKA_STORAGE_ERROR, -1, -1)
        }
    }
}

pub fn handle(ctx: &Ctx, req: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let mut responses = Vec::new();
    let mut appended = false;
    for td in req.topic_data {
        let topic = td.name.0.to_string();
        let mut parts = Vec::new();
        for pd in td.partition_data {
            let (code, base, start) = if valid_acks {
                append(ctx, &topic, pd.index, pd.records.as_deref())
            } else {
                (err::INVALID_REQUIRED_ACKS, -1, -1)
            };
            appended |= code == err::NONE;
            tracing::debug!(target: "kafkit::broker", broker = ctx.broker_id, topic = %topic, partition = pd.index, code, base, "produce");
            let mut r = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_error_code(code)
                .with_base_offset(base);
            if version >= 5 {
                r.log_start_offset = start;
            }
            parts.push(r);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name)
                .with_partition_responses(parts),
        );
    }
    if appended {
        ctx.cluster.appended.notify_waiters();
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}
