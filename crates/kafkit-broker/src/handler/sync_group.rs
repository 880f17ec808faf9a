//! SyncGroup (key 14) v0-v5. Followers wait until the leader sends the assignment.

use std::time::Instant;

use kafkit_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafkit_protocol::str_bytes;
use tokio::sync::oneshot;

use super::{err, Ctx};
use crate::state::Waiter;

pub async fn handle(ctx: &Ctx, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !ctx.is_coordinator(&group_id) {
        return SyncGroupResponse::default().with_error_code(err::NOT_COORDINATOR);
    }
    let (tx, rx) = oneshot::channel();
    {
        let mut groups = ctx.cluster.groups.lock().expect("groups lock");
        let token = ctx.cluster.token();
        groups.waiters.insert(token, Waiter::Sync(tx));
        let assignments = req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect();
        let actions = groups.coordinator.sync(
            Instant::now(),
            token,
            &group_id,
            req.generation_id,
            &req.member_id,
            assignments,
        );
        groups.dispatch(actions);
    }
    let Ok(r) = rx.await else {
        return SyncGroupResponse::default()
            .with_error_code(crate::group::codes::REBALANCE_IN_PROGRESS);
    };
    let mut resp = SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_assignment(r.assignment);
    if version >= 5 {
        resp.protocol_type = r.protocol_type.map(|s| str_bytes(&s));
        resp.protocol_name = r.protocol_name.map(|s| str_bytes(&s));
    }
    resp
}
