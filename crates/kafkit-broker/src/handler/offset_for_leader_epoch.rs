//! OffsetForLeaderEpoch (key 23) v2-v4: the end offset of a leader epoch, from the epochs
//! stamped on the leader's batches; clients use it to detect log truncation after a leader
//! change. FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH when the caller's current epoch is stale
//! or ahead.

use kafkit_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafkit_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{err, Ctx};

pub fn handle(
    ctx: &Ctx,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.cluster.topic(&t.topic.0);
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let part = topic.as_ref().and_then(|t| {
                        usize::try_from(p.partition)
                            .ok()
                            .and_then(|i| t.partitions.get(i))
                    });
                    let Some(part) = part else {
                        return r.with_error_code(err::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let inner = part.lock();
                    let Some(log) = inner.leader_log().filter(|_| inner.leader == ctx.broker_id)
                    else {
                        return r.with_error_code(err::NOT_LEADER_OR_FOLLOWER);
                    };
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch < inner.leader_epoch {
                        return r.with_error_code(err::FENCED_LEADER_EPOCH);
                    }
                    if p.current_leader_epoch > inner.leader_epoch {
                        return r.with_error_code(err::UNKNOWN_LEADER_EPOCH);
                    }
                    let (epoch, end) = if p.leader_epoch >= inner.leader_epoch {
                        (inner.leader_epoch, log.next_offset())
                    } else {
                        log.end_offset_for_epoch(p.leader_epoch)
                    };
                    r.leader_epoch = epoch;
                    r.end_offset = end;
                    r
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(parts)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
