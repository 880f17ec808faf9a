//! LeaveGroup (key 13) v0-v5 (one member in v0-v2, a list from v3; the v5 reason is ignored).

use std::time::Instant;

use kafkit_protocol::messages::leave_group_response::MemberResponse;
use kafkit_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{err, Ctx};

pub fn handle(ctx: &Ctx, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !ctx.is_coordinator(&group_id) {
        return LeaveGroupResponse::default().with_error_code(err::NOT_COORDINATOR);
    }
    let ids: Vec<String> = if version >= 3 {
        req.members
            .iter()
            .map(|m| m.member_id.to_string())
            .collect()
    } else {
        vec![req.member_id.to_string()]
    };
    let mut groups = ctx.cluster.groups.lock().expect("groups lock");
    let (codes, actions) = groups.coordinator.leave(Instant::now(), &group_id, &ids);
    groups.dispatch(actions);
    for (id, code) in ids.iter().zip(&codes) {
        tracing::info!(target: "kafkit::broker", group = %group_id, member = %id, code, "member left");
    }
    if version >= 3 {
        LeaveGroupResponse::default().with_members(
            req.members
                .into_iter()
                .zip(codes)
                .map(|(m, code)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(code)
                })
                .collect(),
        )
    } else {
        LeaveGroupResponse::default().with_error_code(codes[0])
    }
}
