//! Fetch (key 1) v4-v12: a real long poll. The response is sent as soon as `min_bytes` are
//! available across the requested partitions, or when `max_wait_ms` has passed. Consumers see
//! only records below the high watermark. At most `max_bytes` (and `partition_max_bytes` per
//! partition) are returned, except that the first batch of the first non-empty partition is
//! returned whole even when larger (KIP-74), so a consumer can always make progress.
//!
//! Not implemented: fetch sessions (KIP-227; `session_id` 0 is returned, so clients send full
//! fetches), follower fetching over the wire (followers replicate in-process), topic ids (v13+),
//! isolation levels (no transactions yet, so both read up to the high watermark).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafkit_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafkit_protocol::messages::{FetchRequest, FetchResponse};

use super::{err, Ctx};
use crate::state::PartitionState;

/// (bytes available within limits, whether some partition has an error to report).
fn poll(ctx: &Ctx, req: &FetchRequest) -> (u64, bool) {
    let mut total = 0;
    for t in &req.topics {
        let Some(topic) = ctx.cluster.topic(&t.topic.0) else {
            return (total, true);
        };
        for p in &t.partitions {
            let Some(part) = usize::try_from(p.partition)
                .ok()
                .and_then(|i| topic.partitions.get(i))
            else {
                return (total, true);
            };
            let inner = part.lock();
            let Some(log) = inner.leader_log().filter(|_| inner.leader == ctx.broker_id) else {
                return (total, true);
            };
            if p.fetch_offset > log.next_offset() || p.fetch_offset < log.log_start_offset() {
                return (total, true);
            }
            total += log
                .bytes_after(p.fetch_offset, inner.high_watermark)
                .min(p.partition_max_bytes.max(0) as u64);
        }
    }
    (total, false)
}

fn read(ctx: &Ctx, req: &FetchRequest) -> Vec<FetchableTopicResponse> {
    let mut budget = req.max_bytes.max(0) as usize;
    let mut first_data = true;
    let mut out = Vec::new();
    for t in &req.topics {
        let topic = ctx.cluster.topic(&t.topic.0);
        let mut parts = Vec::new();
        for p in &t.partitions {
            let mut pd = PartitionData::default().with_partition_index(p.partition);
            let part = topic.as_ref().and_then(|topic| {
                usize::try_from(p.partition)
                    .ok()
                    .and_then(|i| topic.partitions.get(i))
            });
            match part {
                None => pd.error_code = err::UNKNOWN_TOPIC_OR_PARTITION,
                Some(part) => {
                    let inner = part.lock();
                    match inner.leader_log().filter(|_| inner.leader == ctx.broker_id) {
                        None => pd.error_code = err::NOT_LEADER_OR_FOLLOWER,
                        Some(log) => {
                            let hw = inner.high_watermark;
                            pd.high_watermark = hw;
                            pd.last_stable_offset = hw;
                            pd.log_start_offset = log.log_start_offset();
                            if p.fetch_offset > log.next_offset()
                                || p.fetch_offset < log.log_start_offset()
                            {
                                pd.error_code = err::OFFSET_OUT_OF_RANGE;
                            } else {
                                let limit = budget.min(p.partition_max_bytes.max(0) as usize);
                                match log.read(p.fetch_offset, limit, first_data, hw) {
                                    Ok(data) => {
                                        if !data.is_empty() {
                                            first_data = false;
                                            budget = budget.saturating_sub(data.len());
                                        }
                                        pd.records = Some(data);
                                    }
                                    Err(e) => {
                                        tracing::error!(target: "kafkit::broker", error = %e, "log read failed");
                                        pd.error_code = err::KAFKA_STORAGE_ERROR;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            parts.push(pd);
        }
        out.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(parts),
        );
    }
    out
}

pub async fn handle(ctx: &Ctx, req: FetchRequest, _version: i16) -> FetchResponse {
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = req.min_bytes.max(0) as u64;
    // Woken by appends to the requested partitions (each partition's own `data`), and by
    // cluster-wide changes (leadership, faults, topics).
    let parts: Vec<Arc<PartitionState>> = req
        .topics
        .iter()
        .filter_map(|t| ctx.cluster.topic(&t.topic.0).map(|topic| (t, topic)))
        .flat_map(|(t, topic)| {
            t.partitions
                .iter()
                .filter_map(|p| {
                    usize::try_from(p.partition)
                        .ok()
                        .and_then(|i| topic.partitions.get(i).cloned())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    loop {
        // Register for wake-ups before checking, so an append between the check and the wait
        // is not missed.
        let notified = ctx.cluster.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut appended: Vec<_> = parts.iter().map(|p| Box::pin(p.data.notified())).collect();
        for n in &mut appended {
            n.as_mut().enable();
        }
        let (available, errors) = poll(ctx, &req);
        if errors || available >= min_bytes {
            break;
        }
        let any_appended = std::future::poll_fn(|cx| {
            for n in &mut appended {
                if n.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(());
                }
            }
            std::task::Poll::Pending
        });
        let woken = async {
            tokio::select! {
                _ = notified => {}
                _ = any_appended => {}
            }
        };
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            break;
        }
    }
    FetchResponse::default().with_responses(read(ctx, &req))
}
