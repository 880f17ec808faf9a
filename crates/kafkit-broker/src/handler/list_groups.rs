//! ListGroups (key 16) v0-v5: groups with members or committed offsets, with their state (v4
//! filters by state) and type (v5, KIP-848: all groups here are "classic"; the type filter
//! applies).

use kafkit_protocol::messages::list_groups_response::ListedGroup;
use kafkit_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafkit_protocol::str_bytes;

use super::Ctx;

/// The only group type this coordinator runs (the classic JoinGroup/SyncGroup protocol).
const CLASSIC: &str = "classic";

pub fn handle(ctx: &Ctx, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let groups = ctx.cluster.groups.lock().expect("groups lock");
    let mut ids = groups.coordinator.group_ids();
    ids.extend(ctx.cluster.offsets.groups());
    ids.sort();
    ids.dedup();
    let listed = ids
        .into_iter()
        // Each broker lists the groups it coordinates, as Kafka's brokers do.
        .filter(|g| ctx.is_coordinator(g))
        .filter_map(|g| {
            let (state, protocol_type) = match groups.coordinator.describe(&g) {
                Some(d) => (d.state.as_str(), d.protocol_type),
                None => ("Empty", "consumer".to_owned()),
            };
            let wanted = req.states_filter.is_empty()
                || req
                    .states_filter
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(state));
            let right_type = req.types_filter.is_empty()
                || req
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(CLASSIC));
            (wanted && right_type).then(|| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(&g)))
                    .with_protocol_type(str_bytes(&protocol_type))
                    .with_group_state(str_bytes(state));
                if version >= 5 {
                    listed.group_type = str_bytes(CLASSIC);
                }
                listed
            })
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}
