//! DescribeCluster (key 60) v0-v1: cluster id, controller and live brokers.

use kafkit_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafkit_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafkit_protocol::str_bytes;

use super::Ctx;

pub fn handle(ctx: &Ctx, req: DescribeClusterRequest, version: i16) -> DescribeClusterResponse {
    let c = &ctx.cluster;
    let live: Vec<_> = c.brokers.iter().filter(|b| c.is_alive(b.id)).collect();
    let mut r = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes("kafkit-embedded"))
        .with_controller_id(BrokerId(live.first().map_or(-1, |b| b.id)))
        .with_brokers(
            live.iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(str_bytes(&b.host))
                        .with_port(b.port as i32)
                })
                .collect(),
        );
    if version >= 1 {
        r.endpoint_type = 1;
    }
    if req.include_cluster_authorized_operations {
        r.cluster_authorized_operations = super::acl::CLUSTER_OPS;
    }
    r
}
