//! CreatePartitions (key 37) v0-v3: grows a topic; replicas of new partitions follow the same
//! placement as at creation, or the request's assignments (validated; kept across restarts).

use kafkit_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafkit_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::Ctx;

pub fn handle(ctx: &Ctx, req: CreatePartitionsRequest, _version: i16) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let assignment: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            let code = match ctx.cluster.create_partitions(
                &t.name.0,
                t.count,
                assignment.as_deref(),
                req.validate_only,
            ) {
                Ok(()) => 0,
                Err(code) => code,
            };
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(code)
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
