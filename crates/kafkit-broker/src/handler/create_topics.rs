//! CreateTopics (key 19) v2-v7. `validate_only` checks and creates nothing; a create that fails
//! part-way removes what it wrote. Topic configs are checked (`topic_config`: an unknown name
//! or a bad value is INVALID_CONFIG and nothing is created) but not applied per topic. Not
//! implemented: manual replica assignments.

use kafkit_protocol::messages::create_topics_response::CreatableTopicResult;
use kafkit_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafkit_protocol::str_bytes;

use super::Ctx;

/// INVALID_CONFIG
const INVALID_CONFIG: i16 = 40;

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
            let made = if req.validate_only {
                // Checked, nothing created (on disk or in memory).
                ctx.cluster
                    .plan_topic(&name, t.num_partitions, t.replication_factor)
                    .map(|(p, rf)| (p, rf, uuid::Uuid::nil()))
            } else {
                ctx.cluster
                    .create_topic(&name, t.num_partitions, t.replication_factor)
                    .map(|topic| {
                        (
                            topic.partitions.len() as i32,
                            topic.replication_factor,
                            topic.id,
                        )
                    })
            };
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
