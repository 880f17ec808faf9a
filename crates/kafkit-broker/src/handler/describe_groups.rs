//! DescribeGroups (key 15) v0-v5: state, protocol and members (with their subscription
//! metadata and assignment). Groups known only by committed offsets are "Empty"; unknown
//! groups are "Dead", as Kafka reports them. Not implemented: authorized operations.

use kafkit_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafkit_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafkit_protocol::str_bytes;

use super::{err, Ctx};

pub fn handle(ctx: &Ctx, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let groups = ctx.cluster.groups.lock().expect("groups lock");
    let described = req
        .groups
        .into_iter()
        .map(|gid| {
            let g = gid.0.to_string();
            let mut out = DescribedGroup::default().with_group_id(gid);
            if version >= 3 && req.include_authorized_operations {
                out.authorized_operations = super::acl::GROUP_OPS;
            }
            if !ctx.is_coordinator(&g) {
                return out.with_error_code(err::NOT_COORDINATOR);
            }
            match groups.coordinator.describe(&g) {
                Some(d) => {
                    out.group_state = str_bytes(d.state.as_str());
                    out.protocol_type = str_bytes(&d.protocol_type);
                    out.protocol_data = str_bytes(&d.protocol);
                    out.members = d
                        .members
                        .into_iter()
                        .map(|(id, instance, client, host, meta, assignment)| {
                            let mut m = DescribedGroupMember::default()
                                .with_member_id(str_bytes(&id))
                                .with_client_id(str_bytes(&client))
                                .with_client_host(str_bytes(&host))
                                .with_member_metadata(meta)
                                .with_member_assignment(assignment);
                            if version >= 4 {
                                m.group_instance_id = instance.map(|s| str_bytes(&s));
                            }
                            m
                        })
                        .collect();
                }
                None if !ctx.cluster.offsets.group(&g).is_empty() => {
                    out.group_state = str_bytes("Empty");
                    out.protocol_type = str_bytes("consumer");
                }
                None => out.group_state = str_bytes("Dead"),
            }
            out
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}
