//! DeleteGroups (key 42) v0-v2: removes empty groups and their committed offsets;
//! NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND for unknown groups.

use kafkit_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafkit_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::{err, Ctx};
use crate::group::codes;

pub fn handle(ctx: &Ctx, req: DeleteGroupsRequest, _version: i16) -> DeleteGroupsResponse {
    // The coordinator's part under its lock; the offsets' tombstones after it is released
    // (a slow disk must not hold up every group's heartbeat).
    let decided: Vec<_> = {
        let mut groups = ctx.cluster.groups.lock().expect("groups lock");
        req.groups_names
            .into_iter()
            .map(|gid| {
                let g = gid.0.to_string();
                let code = if !ctx.is_coordinator(&g) {
                    Some(err::NOT_COORDINATOR)
                } else if groups.coordinator.describe(&g).is_none()
                    && ctx.cluster.offsets.group(&g).is_empty()
                {
                    Some(codes::GROUP_ID_NOT_FOUND)
                } else {
                    groups.coordinator.delete(&g).err()
                };
                (gid, g, code)
            })
            .collect()
    };
    let results = decided
        .into_iter()
        .map(|(gid, g, code)| {
            let code = code.unwrap_or_else(|| {
                let keys = ctx
                    .cluster
                    .offsets
                    .group(&g)
                    .into_iter()
                    .map(|(t, p, _)| (g.clone(), t, p))
                    .collect();
                match ctx.cluster.offsets.delete(keys) {
                    Ok(()) => {
                        tracing::info!(target: "kafkit::broker", group = %g, "deleted group");
                        err::NONE
                    }
                    Err(_) => err::KAFKA_STORAGE_ERROR,
                }
            });
            DeletableGroupResult::default()
                .with_group_id(gid)
                .with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
