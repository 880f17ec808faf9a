//! ListOffsets (key 2) v1-v7: earliest (-2), latest (-1, the high watermark), max timestamp
//! (-3, KIP-734: the record with the largest timestamp) and by timestamp (the first record at
//! or after it; offset -1 when there is none, as Kafka). Only records below the high watermark
//! count.

use kafkit_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafkit_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{err, Ctx};

pub fn handle(ctx: &Ctx, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.cluster.topic(&t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let part = topic.as_ref().and_then(|t| {
                        usize::try_from(p.partition_index)
                            .ok()
                            .and_then(|i| t.partitions.get(i))
                    });
                    match part.map(|p| p.lock()) {
                        None => r.error_code = err::UNKNOWN_TOPIC_OR_PARTITION,
                        Some(inner) => match inner
                            .leader_log()
                            .filter(|_| inner.leader == ctx.broker_id)
                        {
                            None => r.error_code = err::NOT_LEADER_OR_FOLLOWER,
                            Some(log) => {
                                // Consumers see offsets up to the high watermark.
                                let hw = inner.high_watermark;
                                let found = match p.timestamp {
                                    -2 => Ok(Some((log.log_start_offset(), -1))),
                                    -3 => log.max_timestamp_offset(hw),
                                    ts if ts < 0 => Ok(Some((hw, -1))),
                                    ts => log.offset_for_timestamp(ts, hw),
                                };
                                match found {
                                    Ok(Some((offset, ts))) => {
                                        r.offset = offset;
                                        r.timestamp = ts;
                                    }
                                    Ok(None) => {}
                                    Err(e) => {
                                        tracing::warn!(target: "kafkit::broker", error = %e, "ListOffsets read failed");
                                        r.error_code = err::KAFKA_STORAGE_ERROR;
                                    }
                                }
                                if version >= 4 {
                                    r.leader_epoch = inner.leader_epoch;
                                }
                            }
                        },
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
