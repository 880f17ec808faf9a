//! DeleteRecords (key 21) v0-v2: moves the log start offset forward on every replica (-1 means
//! the high watermark). Offsets above the high watermark are OFFSET_OUT_OF_RANGE.

use kafkit_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafkit_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{err, Ctx};

pub fn handle(ctx: &Ctx, req: DeleteRecordsRequest, _version: i16) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.cluster.topic(&t.name.0);
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
                    let part = topic.as_ref().and_then(|t| usize::try_from(p.partition_index).ok().and_then(|i| t.partitions.get(i)));
                    let Some(part) = part else {
                        return r.with_error_code(err::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let mut inner = part.lock();
                    if inner.leader != ctx.broker_id {
                        return r.with_error_code(err::NOT_LEADER_OR_FOLLOWER);
                    }
                    let hw = inner.high_watermark;
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if target < 0 || target > hw {
                        return r.with_error_code(err::OFFSET_OUT_OF_RANGE);
                    }
                    let mut low = -1;
                    for log in inner.logs.values_mut() {
                        match log.delete_records_before(target) {
                            Ok(start) => low = start,
                            Err(e) => {
                                tracing::error!(target: "kafkit::broker", error = %e, "delete records failed");
                                return r.with_error_code(err::KAFKA_STORAGE_ERROR);
                            }
                        }
                    }
                    r.low_watermark = low;
                    r
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(parts)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
