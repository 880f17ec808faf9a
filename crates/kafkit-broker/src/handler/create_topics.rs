//! CreateTopics (key 19) v2-v7. Not implemented: manual replica assignments and topic configs
//! (accepted and ignored).

use kafkit_protocol::messages::create_topics_response::CreatableTopicResult;
use kafkit_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafkit_protocol::str_bytes;

use super::Ctx;

pub fn handle(ctx: &Ctx, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let mut r = CreatableTopicResult::default().with_name(t.name);
            match ctx.cluster.create_topic(
                &name,
                t.num_partitions,
                t.replication_factor,
                req.validate_only,
            ) {
                Ok(topic) => {
                    if version >= 5 {
                        r.num_partitions = topic.partitions.len() as i32;
                        r.replication_factor = topic.replication_factor;
                    }
                    if version >= 7 {
                        r.topic_id = topic.id;
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
