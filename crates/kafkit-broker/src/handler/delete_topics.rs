//! DeleteTopics (key 20) v1-v6: by name (v6 also accepts topic ids).

use kafkit_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafkit_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafkit_protocol::topic_name;

use super::{err, Ctx};

pub fn handle(ctx: &Ctx, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let mut names: Vec<String> = req.topic_names.iter().map(|t| t.0.to_string()).collect();
    for t in &req.topics {
        match &t.name {
            Some(n) => names.push(n.0.to_string()),
            None => {
                let found = ctx.cluster.topics.by_id(t.topic_id).map(|x| x.name.clone());
                names.push(found.unwrap_or_default());
            }
        }
    }
    let responses = names
        .into_iter()
        .map(|name| {
            let id = ctx.cluster.topic(&name).map(|t| t.id);
            let code = match ctx.cluster.delete_topic(&name) {
                Ok(()) => err::NONE,
                Err(code) => code,
            };
            let mut r = DeletableTopicResult::default()
                .with_name(Some(topic_name(&name)))
                .with_error_code(code);
            if version >= 6 {
                r.topic_id = id.unwrap_or_default();
            }
            r
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
