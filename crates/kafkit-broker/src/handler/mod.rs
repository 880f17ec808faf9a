//! One file per Kafka API. Each handler takes the decoded request and returns the response; the
//! connection loop in `server.rs` does framing and version checks.

mod acls;
mod alter_configs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod injected;
mod join_group;
mod leave_group;
pub mod legacy;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod scram_credentials;
mod sync_group;

use std::sync::Arc;

use kafkit_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

use crate::state::ClusterState;

pub use api_versions::api_versions_error_response;

/// What a handler knows about where a request came from.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The broker serving the connection.
    pub broker_id: i32,
    /// Shared cluster state.
    pub cluster: Arc<ClusterState>,
    /// Peer host, for group member descriptions.
    pub peer_host: String,
    /// Peer address (host:port), for logs.
    pub peer_addr: String,
}

impl Ctx {
    /// True if this broker coordinates `group`.
    pub fn is_coordinator(&self, group: &str) -> bool {
        self.cluster.coordinator_for(group).id == self.broker_id
    }
}

/// API keys and version ranges this broker serves.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 0, 12),
    (ApiKey::ListOffsets, 0, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Served by the connection loop (`server`), which holds the exchange's state.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The range served for a raw api key.
pub fn supported_range(api_key: i16) -> Option<(ApiKey, i16, i16)> {
    SUPPORTED
        .iter()
        .copied()
        .find(|(k, _, _)| *k as i16 == api_key)
}

/// Kafka error codes by name (`kafkit_protocol::codes`, derived from `ResponseError`).
pub use kafkit_protocol::codes as err;

/// Runs a handler that touches the disk (directories, small files, fsyncs, log reads) on a
/// blocking thread, so the runtime's workers keep serving everyone else meanwhile (the
/// concurrency rule in the crate docs). `None` when the runtime is shutting down.
async fn on_disk<R: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&Ctx) -> R + Send + 'static,
) -> Option<R> {
    let ctx = ctx.clone();
    crate::blocking::run(move || f(&ctx)).await
}

/// Serves one request. `None` means no response is sent (Produce with acks=0).
pub async fn handle(ctx: &Ctx, header: &RequestHeader, body: RequestKind) -> Option<ResponseKind> {
    let v = header.request_api_version;
    let key = header.request_api_key;
    let (injected, delay) = {
        let mut faults = ctx.cluster.faults.lock().expect("faults lock");
        (
            faults.take_error(key, ctx.broker_id),
            faults.delay_for(key, ctx.broker_id),
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = injected {
        if let Some(resp) = injected::error_response(&body, code) {
            tracing::info!(target: "kafkit::broker", broker = ctx.broker_id, api_key = key, code, "answering with an injected error");
            return Some(resp);
        }
    }
    Some(match body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(ctx, r, v)),
        // Creating a topic makes directories and saves the topic list: off the runtime.
        RequestKind::Metadata(r) if metadata::may_create(ctx, &r, v) => {
            ResponseKind::Metadata(on_disk(ctx, move |ctx| metadata::handle(ctx, r, v)).await?)
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(ctx, r, v)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(
            on_disk(ctx, move |ctx| create_topics::handle(ctx, r, v)).await?,
        ),
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(ctx, r, v).await?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(ctx, r, v).await),
        // By timestamp, the log's batches are read.
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(
            on_disk(ctx, move |ctx| list_offsets::handle(ctx, r, v)).await?,
        ),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(ctx, r, v))
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(join_group::handle(ctx, header, r, v).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group::handle(ctx, r, v).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(ctx, r, v)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(leave_group::handle(ctx, r, v)),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offset_commit::handle(ctx, r, v).await)
        }
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch::handle(ctx, r, v)),
        // Saves the next producer id.
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(
            on_disk(ctx, move |ctx| init_producer_id::handle(ctx, r, v)).await?,
        ),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups::handle(ctx, r, v))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list_groups::handle(ctx, r, v)),
        // Write tombstones to the offsets log.
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(
            on_disk(ctx, move |ctx| delete_groups::handle(ctx, r, v)).await?,
        ),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(
            on_disk(ctx, move |ctx| offset_delete::handle(ctx, r, v)).await?,
        ),
        // Remove directories, save the topic list, make directories, save log start offsets.
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(
            on_disk(ctx, move |ctx| delete_topics::handle(ctx, r, v)).await?,
        ),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(
            on_disk(ctx, move |ctx| create_partitions::handle(ctx, r, v)).await?,
        ),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(
            on_disk(ctx, move |ctx| delete_records::handle(ctx, r, v)).await?,
        ),
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(ctx, r, v))
        }
        // Save config files.
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(
            on_disk(ctx, move |ctx| alter_configs::handle(ctx, r, v)).await?,
        ),
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            on_disk(ctx, move |ctx| alter_configs::handle_incremental(ctx, r, v)).await?,
        ),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(ctx, r, v))
        }
        // Reads the leader's epoch cache under the partition's lock.
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(
            on_disk(ctx, move |ctx| offset_for_leader_epoch::handle(ctx, r, v)).await?,
        ),
        // The server checks `SUPPORTED` before decoding, so other kinds never get here.
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(acls::handle_describe(ctx, r, v))
        }
        // Save the ACL file.
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(on_disk(ctx, move |ctx| acls::handle_create(ctx, r, v)).await?)
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(on_disk(ctx, move |ctx| acls::handle_delete(ctx, r, v)).await?)
        }
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            scram_credentials::handle_describe(ctx, r, v),
        ),
        // Save the credentials file (and run PBKDF2).
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            on_disk(ctx, move |ctx| scram_credentials::handle_alter(ctx, r, v)).await?,
        ),
        _ => return None,
    })
}

/// Authorized operations, as Kafka reports them without an authorizer: every operation the
/// resource type supports (`AclEntry.supportedOperations`), as a bit field of `AclOperation`
/// codes (READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12).
pub(crate) mod acl {
    const fn bits(ops: &[u8]) -> i32 {
        let mut v = 0;
        let mut i = 0;
        while i < ops.len() {
            v |= 1 << ops[i];
            i += 1;
        }
        v
    }
    /// A topic's.
    pub const TOPIC_OPS: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
    /// The cluster's.
    pub const CLUSTER_OPS: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);
    /// A group's.
    pub const GROUP_OPS: i32 = bits(&[3, 6, 8]);
}
