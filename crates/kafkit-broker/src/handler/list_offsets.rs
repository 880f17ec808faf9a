//! ListOffsets (key 2) v1-v7: earliest (-2), latest (-1) and by timestamp. Not implemented:
//! max timestamp (-3, v7) answers with the latest offset.

use std::sync::atomic::Ordering;

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
                    match part {
                        None => r.error_code = err::UNKNOWN_TOPIC_OR_PARTITION,
                        Some(part) if part.leader.load(Ordering::Relaxed) != ctx.broker_id => {
                            r.error_code = err::NOT_LEADER_OR_FOLLOWER
                        }
                        Some(part) => {
                            let log = part.log.lock().expect("log lock");
                            r.offset = match p.timestamp {
                                -2 => log.log_start_offset(),
                                ts if ts < 0 => log.next_offset(),
                                ts => log.offset_for_timestamp(ts),
                            };
                            if version >= 4 {
                                r.leader_epoch = part.leader_epoch.load(Ordering::Relaxed);
                            }
                        }
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
