//! DescribeConfigs (key 32) v1-v4: the settings a topic or broker actually runs with (the ones
//! this cluster implements), a topic's overrides (set by CreateTopics, AlterConfigs or
//! IncrementalAlterConfigs) with source TOPIC_CONFIG, and dynamic broker configs with source
//! DYNAMIC_BROKER_CONFIG or DYNAMIC_DEFAULT_BROKER_CONFIG (a topic shows the cluster-wide
//! default of a setting it does not override). Brokers name the log settings as Kafka does
//! (`log.retention.ms` for `retention.ms`). Not implemented: the synonyms list, documentation.

use kafkit_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafkit_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafkit_protocol::str_bytes;

use super::{err, Ctx};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Config source DEFAULT_CONFIG.
const DEFAULT_CONFIG: i8 = 5;
/// Config source TOPIC_CONFIG (an override).
const TOPIC_CONFIG: i8 = 1;
/// Config source DYNAMIC_BROKER_CONFIG (set for one broker).
const DYNAMIC_BROKER_CONFIG: i8 = 2;
/// Config source DYNAMIC_DEFAULT_BROKER_CONFIG (set for every broker).
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;

fn ms(d: Option<std::time::Duration>) -> String {
    d.map_or("-1".to_owned(), |d| d.as_millis().to_string())
}

/// The cluster's defaults (a topic's overrides are laid over them).
fn settings(ctx: &Ctx, resource_type: i8) -> Vec<(&'static str, String)> {
    let c = &ctx.cluster.config;
    let mut v = vec![
        ("cleanup.policy", "delete".to_owned()),
        ("compression.type", "producer".to_owned()),
        ("max.message.bytes", c.message_max_bytes.to_string()),
        ("min.insync.replicas", c.min_insync_replicas.to_string()),
        ("retention.ms", ms(c.log.retention_ms)),
        (
            "retention.bytes",
            c.log.retention_bytes.map_or(-1, |b| b as i64).to_string(),
        ),
        ("segment.bytes", c.log.segment_bytes.to_string()),
        ("segment.ms", c.log.segment_ms.as_millis().to_string()),
        ("message.timestamp.type", "CreateTime".to_owned()),
    ];
    if resource_type == BROKER {
        v.extend([
            (
                "auto.create.topics.enable",
                c.auto_create_topics.to_string(),
            ),
            ("num.partitions", c.default_partitions.to_string()),
            (
                "default.replication.factor",
                ctx.cluster.default_replication_factor().to_string(),
            ),
            (
                "replica.lag.time.max.ms",
                c.replica_lag_time_max.as_millis().to_string(),
            ),
            (
                "group.initial.rebalance.delay.ms",
                c.group_initial_rebalance_delay.as_millis().to_string(),
            ),
            ("socket.request.max.bytes", c.max_frame_bytes.to_string()),
        ]);
    }
    v
}

pub fn handle(ctx: &Ctx, req: DescribeConfigsRequest, _version: i16) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let known = match r.resource_type {
                TOPIC => ctx.cluster.topic(&r.resource_name).is_some(),
                BROKER => {
                    r.resource_name.is_empty()
                        || r.resource_name
                            .parse::<i32>()
                            .is_ok_and(|id| ctx.cluster.broker(id).is_some())
                }
                _ => false,
            };
            if !known {
                out.error_code = if r.resource_type == TOPIC {
                    err::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    err::INVALID_REQUEST
                };
                out.error_message = Some(str_bytes("unknown resource"));
                return out;
            }
            // Lowest precedence first; a later layer replaces an earlier one's value.
            let mut layers: Vec<(i8, std::collections::BTreeMap<String, String>)> = Vec::new();
            let broker_named = |(k, v): (&str, String)| {
                let k = crate::topic_config::broker_synonym(k).unwrap_or(k);
                (k.to_owned(), v)
            };
            let defaults = ctx.cluster.broker_overrides("");
            match r.resource_type {
                TOPIC => {
                    let d = settings(ctx, TOPIC);
                    layers.push((
                        DEFAULT_CONFIG,
                        d.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    ));
                    let inherited = defaults
                        .into_iter()
                        .filter_map(|(k, v)| {
                            Some((crate::topic_config::topic_synonym(&k)?.to_owned(), v))
                        })
                        .collect();
                    layers.push((DYNAMIC_DEFAULT_BROKER_CONFIG, inherited));
                    layers.push((TOPIC_CONFIG, ctx.cluster.topic_overrides(&r.resource_name)));
                }
                _ if r.resource_name.is_empty() => {
                    layers.push((DYNAMIC_DEFAULT_BROKER_CONFIG, defaults));
                }
                _ => {
                    let d = settings(ctx, BROKER);
                    layers.push((DEFAULT_CONFIG, d.into_iter().map(broker_named).collect()));
                    layers.push((DYNAMIC_DEFAULT_BROKER_CONFIG, defaults));
                    layers.push((
                        DYNAMIC_BROKER_CONFIG,
                        ctx.cluster.broker_overrides(&r.resource_name),
                    ));
                }
            }
            let mut merged: std::collections::BTreeMap<String, (String, i8)> = Default::default();
            for (source, layer) in layers {
                for (k, v) in layer {
                    merged.insert(k, (v, source));
                }
            }
            let all: Vec<(String, String, i8)> =
                merged.into_iter().map(|(k, (v, s))| (k, v, s)).collect();
            out.configs = all
                .into_iter()
                .filter(|(k, _, _)| {
                    r.configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|x| x.as_str() == k))
                })
                .map(|(k, v, source)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(&k))
                        .with_value(Some(str_bytes(&v)))
                        .with_read_only(
                            r.resource_type != TOPIC
                                && crate::topic_config::validate_broker(&k, None).is_err(),
                        )
                        .with_config_source(source)
                })
                .collect();
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
