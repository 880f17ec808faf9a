//! ListOffsets (key 2) v1-v7: earliest (-2), latest (-1, the high watermark) and by timestamp. Not implemented:
//! max timestamp (-3, v7) answers with the latest offset.

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
                                r.offset = match p.timestamp {
                                    -2 => log.log_start_offset(),
                                    ts if ts < 0 => inner.high_watermark,
                                    ts => log.offset_for_timestamp(ts).min(inner.high_watermark),
                                };
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
