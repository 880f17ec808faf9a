//! Heartbeat (key 12) v0-v4.

use std::time::Instant;

use kafkit_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{err, Ctx};

pub fn handle(ctx: &Ctx, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    if !ctx.is_coordinator(&req.group_id.0) {
        return HeartbeatResponse::default().with_error_code(err::NOT_COORDINATOR);
    }
    let mut groups = ctx.cluster.groups.lock().expect("groups lock");
    let code = groups.coordinator.heartbeat(
        Instant::now(),
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
    );
    HeartbeatResponse::default().with_error_code(code)
}
