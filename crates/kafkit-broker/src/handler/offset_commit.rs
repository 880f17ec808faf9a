//! OffsetCommit (key 8) v2-v8. Commits are written to the offsets log and fsynced before the
//! answer, on a blocking thread and without the group coordinator's lock (a slow disk delays
//! the committers only). Not implemented: retention time (offsets are kept forever), topic ids (v10).

use kafkit_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafkit_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::{err, Ctx};
use crate::group::offsets::Committed;

pub async fn handle(ctx: &Ctx, req: OffsetCommitRequest, _version: i16) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let code = if ctx.is_coordinator(&group_id) {
        let groups = ctx.cluster.groups.lock().expect("groups lock");
        groups.coordinator.validate_commit(
            &group_id,
            req.generation_id_or_member_epoch,
            &req.member_id,
        )
    } else {
        err::NOT_COORDINATOR
    };
    let mut entries = Vec::new();
    let mut topics = Vec::new();
    for t in &req.topics {
        let topic = t.name.0.to_string();
        let known = ctx.cluster.topic(&topic);
        let mut parts = Vec::new();
        for p in &t.partitions {
            let mut pcode = code;
            if pcode == err::NONE {
                let exists = known
                    .as_ref()
                    .is_some_and(|k| (0..k.partitions.len() as i32).contains(&p.partition_index));
                if !exists {
                    pcode = err::UNKNOWN_TOPIC_OR_PARTITION;
                } else {
                    entries.push((
                        (group_id.clone(), topic.clone(), p.partition_index),
                        Committed {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        },
                    ));
                }
            }
            parts.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(pcode),
            );
        }
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(parts),
        );
    }
    if !entries.is_empty() {
        let n = entries.len();
        let offsets = ctx.cluster.offsets.clone();
        let written = tokio::task::spawn_blocking(move || offsets.commit(entries))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = written {
            // As Kafka's coordinator maps a failed offsets append (KAFKA_STORAGE_ERROR): the
            // client looks the coordinator up again and retries. Nothing was applied.
            tracing::error!(target: "kafkit::broker", group = %group_id, error = %e, "writing offsets failed");
            for t in &mut topics {
                for p in &mut t.partitions {
                    if p.error_code == err::NONE {
                        p.error_code = err::NOT_COORDINATOR;
                    }
                }
            }
        } else {
            tracing::debug!(target: "kafkit::broker", group = %group_id, partitions = n, "offsets committed");
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}
