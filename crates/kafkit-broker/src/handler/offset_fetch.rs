//! OffsetFetch (key 9) v1-v7 (one group per request). Not implemented: v8+ multi-group
//! requests, `require_stable` (no transactions, so every offset is stable).

use kafkit_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafkit_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use kafkit_protocol::{str_bytes, topic_name};

use super::{err, Ctx};

fn partition(
    p: i32,
    offset: i64,
    epoch: i32,
    meta: Option<String>,
    version: i16,
) -> OffsetFetchResponsePartition {
    let mut r = OffsetFetchResponsePartition::default()
        .with_partition_index(p)
        .with_committed_offset(offset)
        .with_metadata(Some(str_bytes(meta.as_deref().unwrap_or(""))));
    if version >= 5 {
        r.committed_leader_epoch = epoch;
    }
    r
}

pub fn handle(ctx: &Ctx, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let group_id = req.group_id.0.to_string();
    if !ctx.is_coordinator(&group_id) {
        let mut r = OffsetFetchResponse::default();
        if version >= 2 {
            r.error_code = err::NOT_COORDINATOR;
        } else if let Some(topics) = req.topics {
            r.topics = topics
                .into_iter()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partition_indexes
                                .into_iter()
                                .map(|p| {
                                    partition(p, -1, -1, None, version)
                                        .with_error_code(err::NOT_COORDINATOR)
                                })
                                .collect(),
                        )
                })
                .collect();
        }
        return r;
    }
    let topics = match req.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| {
                let parts = t
                    .partition_indexes
                    .iter()
                    .map(
                        |&p| match ctx.cluster.offsets.get(&group_id, &t.name.0, p) {
                            Some(c) => {
                                partition(p, c.offset, c.leader_epoch, c.metadata.clone(), version)
                            }
                            None => partition(p, -1, -1, None, version),
                        },
                    )
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(parts)
            })
            .collect(),
        None => {
            let mut by_topic: std::collections::BTreeMap<
                String,
                Vec<OffsetFetchResponsePartition>,
            > = Default::default();
            for (t, p, c) in ctx.cluster.offsets.group(&group_id) {
                by_topic.entry(t).or_default().push(partition(
                    p,
                    c.offset,
                    c.leader_epoch,
                    c.metadata,
                    version,
                ));
            }
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(&t))
                        .with_partitions(parts)
                })
                .collect()
        }
    };
    OffsetFetchResponse::default().with_topics(topics)
}
