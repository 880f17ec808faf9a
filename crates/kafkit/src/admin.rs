//! Cluster administration over the wire protocol: topics (list, describe, create, delete),
//! offsets by time, consumer groups (list, describe, committed offsets and lag, delete, reset).

use std::time::Duration;

use kafkit_protocol::codes;
use kafkit_protocol::messages::create_topics_request::CreatableTopic;
use kafkit_protocol::messages::delete_topics_request::DeleteTopicState;
use kafkit_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafkit_protocol::messages::metadata_request::MetadataRequest;
use kafkit_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafkit_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafkit_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, ListOffsetsRequest,
};
use kafkit_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest,
};
use kafkit_protocol::{str_bytes, topic_name};
use std::collections::BTreeMap;

use crate::cluster::ClusterClient;
use crate::conn::ConnConfig;
use crate::error::{Error, Result};
use crate::security::SecurityConfig;

/// One partition as `describe_topic` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader node id (-1: none).
    pub leader: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// First offset still in the log.
    pub log_start: i64,
    /// High watermark.
    pub high_watermark: i64,
}

/// A consumer group as `list_groups` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// "consumer" for consumer groups.
    pub protocol_type: String,
    /// State (Empty, Stable, PreparingRebalance, ...; empty when the broker does not say).
    pub state: String,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id given by the coordinator.
    pub member_id: String,
    /// Static membership id, if any.
    pub group_instance_id: Option<String>,
    /// The member's client id.
    pub client_id: String,
    /// The member's host as the coordinator saw it.
    pub client_host: String,
    /// Assigned partitions per topic (decoded consumer-protocol assignment).
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// A group as `describe_group` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State (Empty, Stable, PreparingRebalance, CompletingRebalance, Dead).
    pub state: String,
    /// The chosen assignor ("range", "roundrobin", ...).
    pub protocol: String,
    /// Members.
    pub members: Vec<GroupMember>,
}

/// A committed offset with the partition's end and the lag between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset (-1: none).
    pub committed: i64,
    /// High watermark (-1: unknown).
    pub high_watermark: i64,
    /// `high_watermark - committed` (whole partition from log start when nothing is committed).
    pub lag: i64,
}

/// Topic administration.
#[derive(Debug)]
pub struct Admin {
    client: ClusterClient,
}

impl Admin {
    /// An admin client for `brokers` (`host:port`), PLAINTEXT.
    pub fn new(brokers: Vec<String>) -> Result<Self> {
        Self::with_security(brokers, SecurityConfig::default())
    }

    /// An admin client with TLS/SASL settings.
    pub fn with_security(brokers: Vec<String>, security: SecurityConfig) -> Result<Self> {
        crate::config::validate_brokers(&brokers)?;
        security.validate()?;
        let conn = ConnConfig {
            client_id: "kafkit-admin".into(),
            dial_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            security: std::sync::Arc::new(security.into()),
        };
        Ok(Self {
            client: ClusterClient::new(brokers, conn, false),
        })
    }

    /// Names of all topics, sorted.
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let conn = self.client.any_conn().await?;
        let (_, md) = conn
            .send(
                &MetadataRequest::default()
                    .with_topics(None)
                    .with_allow_auto_topic_creation(false),
            )
            .await?;
        let mut names: Vec<String> = md
            .topics
            .into_iter()
            .filter_map(|t| t.name.map(|n| n.0.to_string()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Creates a topic (`replication_factor` -1: the broker's default).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<()> {
        crate::config::validate_topic(name)?;
        let conn = self.client.any_conn().await?;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)]);
        let (_, resp) = conn.send(&req).await?;
        match resp.topics.first() {
            Some(t) if t.error_code != codes::NONE => {
                Err(Error::kafka(t.error_code, format!("create topic {name}")))
            }
            Some(_) => Ok(()),
            None => Err(Error::kafka(
                -1,
                format!("create topic {name}: the broker answered for no topic"),
            )),
        }
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let conn = self.client.any_conn().await?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(30_000);
        // v6 names topics in `topics` (with optional ids); earlier versions in `topic_names`.
        if conn.version_for::<DeleteTopicsRequest>()? >= 6 {
            req.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(name)))];
        } else {
            req.topic_names = vec![topic_name(name)];
        }
        let (_, resp) = conn.send(&req).await?;
        match resp.responses.first() {
            Some(t) if t.error_code != codes::NONE => {
                Err(Error::kafka(t.error_code, format!("delete topic {name}")))
            }
            Some(_) => Ok(()),
            None => Err(Error::kafka(
                -1,
                format!("delete topic {name}: the broker answered for no topic"),
            )),
        }
    }

    /// Grows `topic` to `count` partitions (partitions can only be added).
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<()> {
        use kafkit_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        let conn = self.client.any_conn().await?;
        let req = kafkit_protocol::messages::CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None)])
            .with_timeout_ms(30_000);
        let (_, resp) = conn.send(&req).await?;
        match resp.results.first() {
            Some(r) if r.error_code == codes::NONE => {
                self.client.invalidate(topic);
                Ok(())
            }
            Some(r) => Err(Error::kafka(
                r.error_code,
                format!("create partitions for {topic}"),
            )),
            None => Err(Error::kafka(
                -1,
                format!("create partitions for {topic}: empty answer"),
            )),
        }
    }

    /// Offset of each partition of `topic` for a ListOffsets timestamp: -2 earliest, -1 latest,
    /// or milliseconds since the epoch (the first offset at or after it; the end when none).
    pub async fn list_offsets(&self, topic: &str, timestamp: i64) -> Result<BTreeMap<i32, i64>> {
        let meta = self.client.topic(topic).await?;
        let mut out = BTreeMap::new();
        for p in 0..meta.leaders.len() as i32 {
            let addr = self.client.leader_addr(topic, p).await?;
            let conn = self.client.conn(&addr).await?;
            let mut offset = list_one(&conn, topic, p, timestamp).await?;
            if offset < 0 && timestamp >= 0 {
                offset = list_one(&conn, topic, p, -1).await?;
            }
            out.insert(p, offset);
        }
        Ok(out)
    }

    /// Groups known to every broker, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.client.refresh(&[]).await?;
        let mut out = Vec::new();
        for (_, addr) in self.client.brokers() {
            let conn = self.client.conn(&addr).await?;
            let (_, resp) = conn.send(&ListGroupsRequest::default()).await?;
            if resp.error_code != codes::NONE {
                return Err(Error::kafka(
                    resp.error_code,
                    format!("ListGroups at {addr}"),
                ));
            }
            for g in resp.groups {
                out.push(GroupListing {
                    group_id: g.group_id.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: g.group_state.to_string(),
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// State, protocol and members (with decoded assignments) of a group.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let conn = self.coordinator(group).await?;
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
        let (_, resp) = conn.send(&req).await?;
        let g = resp.groups.into_iter().next().ok_or_else(|| {
            Error::UnexpectedResponse(format!("DescribeGroups {group}: empty answer"))
        })?;
        if g.error_code != codes::NONE {
            return Err(Error::kafka(
                g.error_code,
                format!("describe group {group}"),
            ));
        }
        Ok(GroupDescription {
            group_id: g.group_id.to_string(),
            state: g.group_state.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: crate::reader::assign::decode_assignment(m.member_assignment)
                        .unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Committed offsets of a group for every partition of the topics it committed to (or of
    /// `topic` only), with high watermarks and lag.
    pub async fn group_offsets(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<GroupOffset>> {
        let conn = self.coordinator(group).await?;
        let topics = topic.map(|t| {
            vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(t))
                .with_partition_indexes(Vec::new())]
        });
        let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let mut names: Vec<String> = Vec::new();
        if let Some(t) = topic {
            // Every partition of the topic, committed or not.
            names.push(t.to_owned());
            let meta = self.client.topic(t).await?;
            for p in 0..meta.leaders.len() as i32 {
                committed.insert((t.to_owned(), p), -1);
            }
        }
        let mut req = OffsetFetchRequest::default().with_group_id(GroupId(str_bytes(group)));
        if let Some(mut ts) = topics {
            for t in &mut ts {
                let n = self.client.topic(t.name.as_str()).await?.leaders.len() as i32;
                t.partition_indexes = (0..n).collect();
            }
            req.topics = Some(ts);
        } else {
            req.topics = None; // all topics (OffsetFetch v2+)
        }
        let (_, resp) = conn.send(&req).await?;
        if resp.error_code != codes::NONE {
            return Err(Error::kafka(
                resp.error_code,
                format!("OffsetFetch {group}"),
            ));
        }
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != codes::NONE {
                    return Err(Error::kafka(
                        p.error_code,
                        format!(
                            "OffsetFetch {group} {}/{}",
                            t.name.as_str(),
                            p.partition_index
                        ),
                    ));
                }
                let name = t.name.to_string();
                if !names.contains(&name) {
                    names.push(name.clone());
                }
                committed.insert((name, p.partition_index), p.committed_offset);
            }
        }
        let mut out = Vec::new();
        for name in names {
            let ends = self.list_offsets(&name, -1).await?;
            let starts = self.list_offsets(&name, -2).await?;
            for (p, end) in &ends {
                let Some(&c) = committed.get(&(name.clone(), *p)) else {
                    continue;
                };
                let from = if c >= 0 {
                    c
                } else {
                    starts.get(p).copied().unwrap_or(0)
                };
                out.push(GroupOffset {
                    topic: name.clone(),
                    partition: *p,
                    committed: c,
                    high_watermark: *end,
                    lag: (end - from).max(0),
                });
            }
        }
        Ok(out)
    }

    /// Deletes a group (it must have no members).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let conn = self.coordinator(group).await?;
        let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group))]);
        let (_, resp) = conn.send(&req).await?;
        match resp.results.first() {
            Some(r) if r.error_code == codes::NONE => Ok(()),
            Some(r) => Err(Error::kafka(r.error_code, format!("delete group {group}"))),
            None => Err(Error::kafka(
                -1,
                format!("delete group {group}: empty answer"),
            )),
        }
    }

    /// Sets a group's committed offsets (the group must have no active members, as with
    /// `kafka-consumer-groups --reset-offsets`).
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<()> {
        let conn = self.coordinator(group).await?;
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(str_bytes(""))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                                .with_committed_metadata(Some(str_bytes("")))
                        })
                        .collect(),
                )]);
        let (_, resp) = conn.send(&req).await?;
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code != codes::NONE {
                    return Err(Error::kafka(
                        p.error_code,
                        format!("commit {topic}/{} for group {group}", p.partition_index),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn coordinator(&self, group: &str) -> Result<std::sync::Arc<crate::conn::Connection>> {
        let addr = self.client.coordinator(group).await?;
        self.client.conn(&addr).await
    }

    /// Partitions of a topic with leaders, replicas, ISR, log start and high watermark.
    pub async fn describe_topic(&self, name: &str) -> Result<Vec<PartitionInfo>> {
        let conn = self.client.any_conn().await?;
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                kafkit_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(topic_name(name))),
            ]))
            .with_allow_auto_topic_creation(false);
        let (_, md) = conn.send(&req).await?;
        let topic = md.topics.into_iter().next().ok_or_else(|| {
            Error::kafka(codes::UNKNOWN_TOPIC_OR_PARTITION, format!("topic {name}"))
        })?;
        if topic.error_code != codes::NONE {
            return Err(Error::kafka(topic.error_code, format!("topic {name}")));
        }
        self.client.refresh(&[name.to_owned()]).await?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        let mut out = Vec::new();
        for p in topic.partitions {
            let mut info = PartitionInfo {
                partition: p.partition_index,
                leader: p.leader_id.0,
                replicas: ids(&p.replica_nodes),
                isr: ids(&p.isr_nodes),
                log_start: -1,
                high_watermark: -1,
            };
            if let Ok(addr) = self.client.leader_addr(name, p.partition_index).await {
                let leader = self.client.conn(&addr).await?;
                for (ts, slot) in [(-2i64, 0usize), (-1, 1)] {
                    let req = ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_topics(vec![ListOffsetsTopic::default()
                            .with_name(topic_name(name))
                            .with_partitions(vec![ListOffsetsPartition::default()
                                .with_partition_index(p.partition_index)
                                .with_timestamp(ts)])]);
                    let (_, r) = leader.send(&req).await?;
                    let offset = r
                        .topics
                        .first()
                        .and_then(|t| t.partitions.first())
                        .filter(|x| x.error_code == codes::NONE)
                        .map_or(-1, |x| x.offset);
                    if slot == 0 {
                        info.log_start = offset;
                    } else {
                        info.high_watermark = offset;
                    }
                }
            }
            out.push(info);
        }
        out.sort_by_key(|p| p.partition);
        Ok(out)
    }
}

/// ListOffsets for one partition on its leader's connection: -2 earliest, -1 latest, or a
/// timestamp (ms; -1 in the answer when no record is that new).
pub(crate) async fn list_one(
    conn: &crate::conn::Connection,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<i64> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let (_, r) = conn.send(&req).await?;
    let p = r
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| {
            Error::UnexpectedResponse(format!("ListOffsets {topic}/{partition}: empty answer"))
        })?;
    if p.error_code != codes::NONE {
        return Err(Error::kafka(
            p.error_code,
            format!("ListOffsets {topic}/{partition}"),
        ));
    }
    Ok(p.offset)
}
