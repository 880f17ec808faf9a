//! AlterConfigs (key 33) v0-v2 and IncrementalAlterConfigs (key 44) v0-v1 for topics: the
//! topic's config overrides are replaced (AlterConfigs) or changed one by one
//! (IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT for list configs), checked as
//! CreateTopics checks them (INVALID_CONFIG for an unknown name or a bad value, and then
//! nothing changes), saved, shown by DescribeConfigs, and applied where the cluster implements
//! them (see `topic_config`). BROKER resources (a broker id, or "" for the cluster-wide
//! default) take Kafka's dynamic broker configs that have a meaning here: the topic-config
//! defaults (`log.retention.ms`, `log.cleanup.policy`, `message.max.bytes`...), applied to
//! topics without an override of their own; see `topic_config::validate_broker`.

use std::collections::BTreeMap;

use kafkit_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafkit_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResponse;
use kafkit_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafkit_protocol::str_bytes;

use super::{err, Ctx};

/// `(error_code, error_message)` of a resource's answer.
fn outcome(
    result: Result<(), (i16, String)>,
) -> (i16, Option<kafkit_protocol::protocol::StrBytes>) {
    match result {
        Ok(()) => (err::NONE, None),
        Err((code, message)) => (code, Some(str_bytes(&message))),
    }
}

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
use kafkit_protocol::codes::INVALID_CONFIG;

/// Applies `change` to the overrides of the resource; `Err((code, message))`.
fn alter(
    ctx: &Ctx,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, (i16, String)>,
) -> Result<(), (i16, String)> {
    match resource_type {
        TOPIC => {
            let next = change(ctx.cluster.topic_overrides(name))?;
            ctx.cluster.set_topic_configs(name, next, validate_only)
        }
        BROKER => {
            let next = change(ctx.cluster.broker_overrides(name))?;
            ctx.cluster.set_broker_configs(name, next, validate_only)
        }
        other => Err((
            err::INVALID_REQUEST,
            format!("resource type {other} has no configs here"),
        )),
    }
}

pub fn handle(ctx: &Ctx, req: AlterConfigsRequest, _version: i16) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let configs: BTreeMap<String, String> = r
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            // AlterConfigs replaces the whole set: what is not named goes back to its default.
            let result = alter(
                ctx,
                r.resource_type,
                &r.resource_name,
                req.validate_only,
                |_| Ok(configs),
            );
            let (code, message) = outcome(result);
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Entries of a list config's value.
fn entries(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_list(name: &str) -> bool {
    matches!(
        name,
        "cleanup.policy"
            | "log.cleanup.policy"
            | "leader.replication.throttled.replicas"
            | "follower.replication.throttled.replicas"
    )
}

pub fn handle_incremental(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let ops: Vec<(String, i8, Option<String>)> = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            let result = alter(
                ctx,
                r.resource_type,
                &r.resource_name,
                req.validate_only,
                |mut cur| {
                    for (name, op, value) in ops {
                        let bad = |m: &str| (INVALID_CONFIG, format!("{name}: {m}"));
                        match op {
                            0 => {
                                let v = value.ok_or_else(|| bad("SET needs a value"))?;
                                cur.insert(name, v);
                            }
                            1 => {
                                cur.remove(&name);
                            }
                            2 | 3 => {
                                if !is_list(&name) {
                                    return Err(bad("APPEND and SUBTRACT need a list config"));
                                }
                                let v = value.ok_or_else(|| bad("needs a value"))?;
                                let default = if name.ends_with("cleanup.policy") {
                                    "delete"
                                } else {
                                    ""
                                };
                                let mut list =
                                    entries(cur.get(&name).map_or(default, String::as_str));
                                for e in entries(&v) {
                                    if op == 2 && !list.contains(&e) {
                                        list.push(e);
                                    } else if op == 3 {
                                        list.retain(|x| *x != e);
                                    }
                                }
                                cur.insert(name, list.join(","));
                            }
                            other => {
                                return Err((
                                    err::INVALID_REQUEST,
                                    format!("{name}: unknown config operation {other}"),
                                ))
                            }
                        }
                    }
                    Ok(cur)
                },
            );
            let (code, message) = outcome(result);
            IncrementalResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
