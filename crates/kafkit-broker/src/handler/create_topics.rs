//! CreateTopics (key 19) v2-v7. `validate_only` checks and creates nothing; a create that fails
//! part-way removes what it wrote. Topic configs are checked (`topic_config`: an unknown name
//! or a bad value is INVALID_CONFIG and nothing is created) and become the topic's overrides
//! (`ClusterState::set_topic_configs`). Manual
//! replica assignments (`assignments`, with partitions and replication factor -1) are
//! validated and kept.

use kafkit_protocol::messages::create_topics_response::CreatableTopicResult;
use kafkit_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafkit_protocol::str_bytes;

use super::Ctx;

use kafkit_protocol::codes::INVALID_CONFIG;
use kafkit_protocol::codes::INVALID_REQUEST;

pub fn handle(ctx: &Ctx, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let mut r = CreatableTopicResult::default().with_name(t.name);
            let bad_config = t
                .configs
                .iter()
                .find_map(|c| crate::topic_config::validate(&c.name, c.value.as_deref()).err());
            if let Some(message) = bad_config {
                r.error_code = INVALID_CONFIG;
                r.error_message = Some(str_bytes(&message));
                return r;
            }
            let assignment: Vec<Vec<i32>> = t
                .assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect();
            // As Kafka: an assignment goes with -1 for both counts, in partition order.
            if !assignment.is_empty()
                && (t.num_partitions != -1
                    || t.replication_factor != -1
                    || t.assignments
                        .iter()
                        .enumerate()
                        .any(|(i, a)| a.partition_index != i as i32))
            {
                r.error_code = INVALID_REQUEST;
                r.error_message = Some(str_bytes(
                    "an assignment needs numPartitions and replicationFactor -1 and partitions 0..n in order",
                ));
                return r;
            }
            let made = if req.validate_only {
                // Checked, nothing created (on disk or in memory).
                if assignment.is_empty() {
                    ctx.cluster
                        .plan_topic(&name, t.num_partitions, t.replication_factor)
                } else {
                    ctx.cluster.plan_assignment(&name, &assignment)
                }
                .map(|(p, rf)| (p, rf, uuid::Uuid::nil()))
            } else {
                if assignment.is_empty() {
                    ctx.cluster
                        .create_topic(&name, t.num_partitions, t.replication_factor)
                } else {
                    ctx.cluster.create_topic_assigned(&name, &assignment)
                }
                .map(|topic| {
                        (
                            topic.partitions.len() as i32,
                            topic.replication_factor,
                            topic.id,
                        )
                    })
            };
            // The configs given are the topic's overrides from the start.
            let configs: std::collections::BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            if made.is_ok() && !req.validate_only && !configs.is_empty() {
                if let Err((code, message)) = ctx.cluster.set_topic_configs(&name, configs, false) {
                    r.error_code = code;
                    r.error_message = Some(str_bytes(&message));
                    return r;
                }
            }
            match made {
                Ok((partitions, rf, id)) => {
                    if version >= 5 {
                        r.num_partitions = partitions;
                        r.replication_factor = rf;
                    }
                    if version >= 7 {
                        r.topic_id = id;
                    }
                }
                Err(e) => {
                    r.error_code = e.code();
                    r.error_message = Some(str_bytes(&format!("{e:?}")));
                }
            }
            r
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
