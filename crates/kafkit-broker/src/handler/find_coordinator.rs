//! FindCoordinator (key 10) v0-v4. Groups and transactional ids are placed by the hash of their
//! key, as Kafka places them on `__consumer_offsets` partitions, on the first live broker from
//! there. v4 answers several keys at once.

use kafkit_protocol::messages::find_coordinator_response::Coordinator;
use kafkit_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafkit_protocol::str_bytes;

use super::Ctx;

pub fn handle(ctx: &Ctx, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let b = ctx.cluster.coordinator_for(&key);
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(b.id))
                    .with_host(str_bytes(&b.host))
                    .with_port(b.port as i32)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let b = ctx.cluster.coordinator_for(&req.key);
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(b.id))
        .with_host(str_bytes(&b.host))
        .with_port(b.port as i32)
}
