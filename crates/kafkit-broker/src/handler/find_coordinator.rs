//! FindCoordinator (key 10) v0-v3. Groups and transactional ids are placed by the hash of their
//! key, as Kafka places them on `__consumer_offsets` partitions. Not implemented: v4+ batching.

use kafkit_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafkit_protocol::str_bytes;

use super::Ctx;

pub fn handle(ctx: &Ctx, req: FindCoordinatorRequest, _version: i16) -> FindCoordinatorResponse {
    let b = ctx.cluster.coordinator_for(&req.key);
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(b.id))
        .with_host(str_bytes(&b.host))
        .with_port(b.port as i32)
}
