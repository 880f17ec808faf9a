//! Fetch (key 1) v4-v12: a real long poll. The response is sent as soon as `min_bytes` are
//! available across the requested partitions, or when `max_wait_ms` has passed. Consumers see
//! only records below the high watermark. At most `max_bytes` (and `partition_max_bytes` per
//! partition) are returned, except that the first batch of the first non-empty partition is
//! returned whole even when larger (KIP-74), so a consumer can always make progress.
//!
//! Incremental fetch sessions (KIP-227) from v7: see [`crate::fetch_session`]. A client's
//! `current_leader_epoch` is checked (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH).
//!
//! Not implemented: follower fetching over the wire (followers replicate in-process), topic ids (v13+),
//! isolation levels (no transactions yet, so both read up to the high watermark).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafkit_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafkit_protocol::messages::{FetchRequest, FetchResponse};
use kafkit_protocol::topic_name;

use super::{err, Ctx};
use crate::fetch_session::{Answer, Mode, SessionError, Wanted};
use crate::state::{PartitionInner, PartitionState, TopicState};

/// The partition `w` names, if it exists.
/// The partitions `wanted` names (`None`: no such topic or partition), each topic looked up
/// once per request rather than once per partition.
fn partitions(ctx: &Ctx, wanted: Vec<Wanted>) -> Vec<(Wanted, Option<Arc<PartitionState>>)> {
    let mut topics: std::collections::HashMap<String, Option<Arc<TopicState>>> = Default::default();
    wanted
        .into_iter()
        .map(|w| {
            if !topics.contains_key(&w.topic) {
                topics.insert(w.topic.clone(), ctx.cluster.topic(&w.topic));
            }
            let topic = &topics[&w.topic];
            let p = topic.as_ref().and_then(|t| {
                let i = usize::try_from(w.partition).ok()?;
                t.partitions.get(i).cloned()
            });
            (w, p)
        })
        .collect()
}

/// Why `w` cannot be read from this broker now, if it cannot: not the leader, or a leader
/// epoch the client knows that is older (FENCED_LEADER_EPOCH) or newer (UNKNOWN_LEADER_EPOCH)
/// than the partition's, or an offset out of range.
fn refusal(ctx: &Ctx, inner: &PartitionInner, w: &Wanted) -> Option<i16> {
    let Some(log) = inner.leader_log().filter(|_| inner.leader == ctx.broker_id) else {
        return Some(err::NOT_LEADER_OR_FOLLOWER);
    };
    if w.current_leader_epoch >= 0 && w.current_leader_epoch < inner.leader_epoch {
        return Some(err::FENCED_LEADER_EPOCH);
    }
    if w.current_leader_epoch > inner.leader_epoch {
        return Some(err::UNKNOWN_LEADER_EPOCH);
    }
    if w.fetch_offset > log.next_offset() || w.fetch_offset < log.log_start_offset() {
        return Some(err::OFFSET_OUT_OF_RANGE);
    }
    None
}

/// (bytes available within limits, whether to answer now: some partition has an error to
/// report, or records behind a lock). Stops
/// counting once `min_bytes` are there: the answer goes out then anyway (with 1,000
/// partitions in a session, summing all of them on every wake-up was the broker's top cost).
fn poll(ctx: &Ctx, parts: &[(Wanted, Option<Arc<PartitionState>>)], min_bytes: u64) -> (u64, bool) {
    let mut total = 0;
    for (w, part) in parts {
        let Some(part) = part else {
            return (total, true);
        };
        // On a runtime thread: never wait for a partition's lock (an append or a read holds
        // it on a blocking thread, maybe across a slow disk). Records below its high
        // watermark are there: answer now (the read waits on a blocking thread); otherwise
        // it has nothing yet, and its `data` notify wakes the poll again.
        let Some(inner) = part.try_lock() else {
            if part.view().high_watermark > w.fetch_offset {
                return (total, true);
            }
            continue;
        };
        if refusal(ctx, &inner, w).is_some() {
            return (total, true);
        }
        let log = inner.leader_log().expect("checked by refusal");
        total += log
            .bytes_after(w.fetch_offset, inner.high_watermark)
            .min(w.max_bytes.max(0) as u64);
        if total >= min_bytes.max(1) {
            break;
        }
    }
    (total, false)
}

fn read(
    ctx: &Ctx,
    parts: &[(Wanted, Option<Arc<PartitionState>>)],
    max_bytes: i32,
) -> Vec<PartitionData> {
    let mut budget = max_bytes.max(0) as usize;
    let mut first_data = true;
    let mut out = Vec::with_capacity(parts.len());
    for (w, part) in parts {
        let mut pd = PartitionData::default().with_partition_index(w.partition);
        match part {
            None => pd.error_code = err::UNKNOWN_TOPIC_OR_PARTITION,
            Some(part) => {
                let inner = part.lock();
                if let Some(log) = inner.leader_log().filter(|_| inner.leader == ctx.broker_id) {
                    pd.high_watermark = inner.high_watermark;
                    pd.last_stable_offset = inner.high_watermark;
                    pd.log_start_offset = log.log_start_offset();
                }
                match refusal(ctx, &inner, w) {
                    Some(code) => pd.error_code = code,
                    None => {
                        let log = inner.leader_log().expect("checked by refusal");
                        let limit = budget.min(w.max_bytes.max(0) as usize);
                        match log.read(w.fetch_offset, limit, first_data, inner.high_watermark) {
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
        out.push(pd);
    }
    out
}

pub async fn handle(ctx: &Ctx, req: FetchRequest, version: i16) -> FetchResponse {
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = req.min_bytes.max(0) as u64;
    let wanted: Vec<Wanted> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Wanted {
                topic: t.topic.0.to_string(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
            })
        })
        .collect();
    // Fetch sessions (KIP-227) exist from v7; older requests are sessionless.
    let sessions = ctx.cluster.fetch_sessions.get(&ctx.broker_id);
    let (mode, wanted) = match sessions.filter(|_| version >= 7) {
        None => (Mode::Sessionless, wanted),
        Some(cache) => {
            let forgotten: Vec<(String, i32)> = req
                .forgotten_topics_data
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
                .collect();
            let begun = cache.lock().expect("fetch sessions lock").begin(
                Instant::now(),
                req.session_id,
                req.session_epoch,
                wanted,
                &forgotten,
            );
            match begun {
                Ok(b) => b,
                Err(SessionError(code)) => {
                    tracing::debug!(target: "kafkit::broker", session_id = req.session_id, epoch = req.session_epoch, code, "fetch session refused");
                    return FetchResponse::default().with_error_code(code);
                }
            }
        }
    };
    let parts = partitions(ctx, wanted);
    // Woken by appends to the requested partitions (each partition's own `data`), and by
    // cluster-wide changes (leadership, faults, topics).
    loop {
        // Register for wake-ups before checking, so an append between the check and the wait
        // is not missed.
        let notified = ctx.cluster.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut appended: Vec<_> = parts
            .iter()
            .filter_map(|(_, p)| p.as_ref())
            .map(|p| Box::pin(p.data.notified()))
            .collect();
        for n in &mut appended {
            n.as_mut().enable();
        }
        let (available, answer_now) = poll(ctx, &parts, min_bytes);
        if answer_now || available >= min_bytes {
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
    // The log files are read on a blocking thread (the crate's concurrency rule).
    let (data, parts) = {
        let (ctx, max_bytes) = (ctx.clone(), req.max_bytes);
        match tokio::task::spawn_blocking(move || (read(&ctx, &parts, max_bytes), parts)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(target: "kafkit::broker", error = %e, "fetch read task failed");
                return FetchResponse::default()
                    .with_error_code(kafkit_protocol::ResponseError::UnknownServerError.code());
            }
        }
    };
    let include = match (mode, sessions) {
        (Mode::Sessionless, _) | (_, None) => vec![true; data.len()],
        (mode, Some(cache)) => {
            let keys: Vec<(&str, i32)> = parts
                .iter()
                .map(|(w, _)| (w.topic.as_str(), w.partition))
                .collect();
            let answers: Vec<Answer> = data
                .iter()
                .map(|pd| Answer {
                    record_bytes: pd.records.as_ref().map_or(0, |r| r.len()),
                    error_code: pd.error_code,
                    high_watermark: pd.high_watermark,
                    log_start_offset: pd.log_start_offset,
                })
                .collect();
            cache
                .lock()
                .expect("fetch sessions lock")
                .finish(mode, &keys, &answers)
        }
    };
    // One entry per topic, topics in the order they first appear.
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = Default::default();
    for (((w, _), pd), keep) in parts.iter().zip(data).zip(include) {
        if !keep {
            continue;
        }
        let i = *index.entry(w.topic.as_str()).or_insert_with(|| {
            responses.push(FetchableTopicResponse::default().with_topic(topic_name(&w.topic)));
            responses.len() - 1
        });
        responses[i].partitions.push(pd);
    }
    let session_id = match mode {
        Mode::Sessionless => 0,
        Mode::Full(id) | Mode::Incremental(id) => id,
    };
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(responses)
}
