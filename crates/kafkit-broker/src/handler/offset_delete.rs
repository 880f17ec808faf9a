//! OffsetDelete (key 47) v0: deletes a group's committed offsets for some partitions.
//! Refused with GROUP_SUBSCRIBED_TO_TOPIC while the group has members (simplified: Kafka checks
//! the members' subscriptions).

use kafkit_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafkit_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::{err, Ctx};
use crate::group::codes;

pub fn handle(ctx: &Ctx, req: OffsetDeleteRequest, _version: i16) -> OffsetDeleteResponse {
    let g = req.group_id.0.to_string();
    if !ctx.is_coordinator(&g) {
        return OffsetDeleteResponse::default().with_error_code(err::NOT_COORDINATOR);
    }
    let (known, busy) = {
        let groups = ctx.cluster.groups.lock().expect("groups lock");
        (
            groups.coordinator.describe(&g).is_some(),
            groups.coordinator.has_members(&g),
        )
    }; // released before the tombstones are written
    if !known && ctx.cluster.offsets.group(&g).is_empty() {
        return OffsetDeleteResponse::default().with_error_code(codes::GROUP_ID_NOT_FOUND);
    }
    let mut keys = Vec::new();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if busy {
                        err::GROUP_SUBSCRIBED_TO_TOPIC
                    } else {
                        keys.push((g.clone(), t.name.0.to_string(), p.partition_index));
                        err::NONE
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(parts)
        })
        .collect();
    if ctx.cluster.offsets.delete(keys).is_err() {
        return OffsetDeleteResponse::default().with_error_code(err::KAFKA_STORAGE_ERROR);
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
