//! Metadata (key 3) v0-v12: live brokers, and per partition the leader (or
//! LEADER_NOT_AVAILABLE while offline), epoch, replicas, ISR and offline replicas. Not
//! implemented: authorized operations (always "not requested").

use kafkit_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafkit_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafkit_protocol::{str_bytes, topic_name};

use super::{err, Ctx};
use crate::state::{valid_topic_name, TopicState};

/// Whether serving `req` may create a topic (auto-creation allowed and a named topic
/// missing): then it runs on a blocking thread.
pub fn may_create(ctx: &Ctx, req: &MetadataRequest, version: i16) -> bool {
    ctx.cluster.config.auto_create_topics
        && (version < 4 || req.allow_auto_topic_creation)
        && req.topics.as_ref().is_some_and(|ts| {
            ts.iter().any(|t| {
                t.name
                    .as_ref()
                    .is_some_and(|n| ctx.cluster.topic(n).is_none())
            })
        })
}

fn describe(ctx: &Ctx, t: &TopicState, version: i16, include_ops: bool) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            // The view, not the lock: an append holding it across a slow disk must not hold
            // up Metadata.
            let inner = p.view();
            let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
            let mut mp = MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(inner.leader))
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&inner.isr));
            if inner.leader < 0 {
                mp.error_code = err::LEADER_NOT_AVAILABLE;
            }
            if version >= 5 {
                let offline: Vec<i32> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| !ctx.cluster.is_alive(*r))
                    .collect();
                mp.offline_replicas = ids(&offline);
            }
            if version >= 7 {
                mp.leader_epoch = inner.leader_epoch;
            }
            mp
        })
        .collect();
    let mut mt = MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_partitions(partitions);
    if version >= 10 {
        mt.topic_id = t.id;
    }
    if version >= 8 && include_ops {
        mt.topic_authorized_operations = super::acl::TOPIC_OPS;
    }
    mt
}

pub fn handle(ctx: &Ctx, req: MetadataRequest, version: i16) -> MetadataResponse {
    let cluster = &ctx.cluster;
    let brokers = cluster
        .brokers
        .iter()
        .filter(|b| cluster.is_alive(b.id))
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port as i32)
        })
        .collect();
    // v0: an empty list means all topics; v1+: null means all topics.
    let requested: Option<Vec<String>> = match req.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(
            list.into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    let allow_create = version < 4 || req.allow_auto_topic_creation;
    let include_ops = req.include_topic_authorized_operations;
    let topics = match requested {
        None => cluster
            .topics
            .all()
            .iter()
            .map(|t| describe(ctx, t, version, include_ops))
            .collect(),
        Some(names) => names
            .iter()
            .map(|name| {
                if !valid_topic_name(name) {
                    return MetadataResponseTopic::default()
                        .with_name(Some(topic_name(name)))
                        .with_error_code(err::INVALID_TOPIC_EXCEPTION);
                }
                if allow_create
                    && tracing::enabled!(target: "kafkit::broker", tracing::Level::DEBUG)
                    && cluster.topic(name).is_none()
                {
                    tracing::debug!(target: "kafkit::broker", broker = ctx.broker_id, peer = %ctx.peer_addr, topic = %name, version, "Metadata names an unknown topic with auto-creation allowed");
                }
                match cluster.topic_or_create(name, allow_create) {
                    Ok(t) => describe(ctx, &t, version, include_ops),
                    Err(code) => MetadataResponseTopic::default()
                        .with_name(Some(topic_name(name)))
                        .with_error_code(code),
                }
            })
            .collect(),
    };
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    if version >= 1 {
        resp.controller_id = BrokerId(
            cluster
                .brokers
                .iter()
                .find(|b| cluster.is_alive(b.id))
                .map_or(-1, |b| b.id),
        );
    }
    if version >= 2 {
        resp.cluster_id = Some(str_bytes("kafkit-embedded"));
    }
    if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = super::acl::CLUSTER_OPS;
    }
    resp
}
