//! JoinGroup (key 11) v0-v9 (the v8 `reason` is ignored; `skip_assignment` is always false).
//! The request waits in the coordinator until every member has rejoined or the rebalance
//! timeout passes. Static members (`group_instance_id`, KIP-345) get their assignment back
//! without a rebalance (see `group`). Not implemented: MEMBER_ID_REQUIRED (new members get
//! their id with the first answer, which every client accepts).

use std::time::{Duration, Instant};

use kafkit_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafkit_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};
use kafkit_protocol::str_bytes;
use tokio::sync::oneshot;

use super::{err, Ctx};
use crate::group::JoinRequest;
use crate::state::Waiter;

pub async fn handle(
    ctx: &Ctx,
    header: &RequestHeader,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !ctx.is_coordinator(&group_id) {
        return JoinGroupResponse::default()
            .with_error_code(err::NOT_COORDINATOR)
            .with_protocol_name(Some(str_bytes("")));
    }
    let join = JoinRequest {
        group_id: group_id.clone(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: header.client_id.as_deref().unwrap_or("").to_owned(),
        client_host: ctx.peer_host.clone(),
        session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout: Duration::from_millis(if version >= 1 {
            req.rebalance_timeout_ms.max(0) as u64
        } else {
            req.session_timeout_ms.max(0) as u64
        }),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
    };
    let (tx, rx) = oneshot::channel();
    {
        let mut groups = ctx.cluster.groups.lock().expect("groups lock");
        let token = ctx.cluster.token();
        groups.waiters.insert(token, Waiter::Join(tx));
        let actions = groups.coordinator.join(Instant::now(), token, join);
        groups.dispatch(actions);
    }
    let Ok(r) = rx.await else {
        return JoinGroupResponse::default()
            .with_error_code(crate::group::codes::REBALANCE_IN_PROGRESS)
            .with_protocol_name(Some(str_bytes("")));
    };
    if r.error == 0 {
        tracing::info!(target: "kafkit::broker", group = %group_id, member = %r.member_id, generation = r.generation, leader = r.member_id == r.leader, "member joined");
    }
    let mut resp = JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_protocol_name(Some(str_bytes(r.protocol_name.as_deref().unwrap_or(""))))
        .with_leader(str_bytes(&r.leader))
        .with_member_id(str_bytes(&r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|(id, inst, meta)| {
                    let mut m = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&id))
                        .with_metadata(meta);
                    if version >= 5 {
                        m.group_instance_id = inst.map(|s| str_bytes(&s));
                    }
                    m
                })
                .collect(),
        );
    if version >= 7 {
        resp.protocol_type = r.protocol_type.map(|s| str_bytes(&s));
        resp.protocol_name = r.protocol_name.map(|s| str_bytes(&s));
    }
    resp
}
