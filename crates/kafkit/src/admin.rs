//! Cluster administration over the wire protocol: topics (list, describe, create, delete).
//! Groups and offsets come with the CLI issue (6).

use std::time::Duration;

use kafkit_protocol::messages::create_topics_request::CreatableTopic;
use kafkit_protocol::messages::delete_topics_request::DeleteTopicState;
use kafkit_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafkit_protocol::messages::metadata_request::MetadataRequest;
use kafkit_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, ListOffsetsRequest,
};
use kafkit_protocol::topic_name;

use crate::cluster::ClusterClient;
use crate::conn::ConnConfig;
use crate::error::{Error, Result};

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

/// Topic administration.
#[derive(Debug)]
pub struct Admin {
    client: ClusterClient,
}

impl Admin {
    /// An admin client for `brokers` (`host:port`).
    pub fn new(brokers: Vec<String>) -> Result<Self> {
        crate::config::validate_brokers(&brokers)?;
        let conn = ConnConfig {
            client_id: "kafkit-admin".into(),
            dial_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
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
            Some(t) if t.error_code != 0 => {
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
            Some(t) if t.error_code != 0 => {
                Err(Error::kafka(t.error_code, format!("delete topic {name}")))
            }
            Some(_) => Ok(()),
            None => Err(Error::kafka(
                -1,
                format!("delete topic {name}: the broker answered for no topic"),
            )),
        }
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
        let topic = md
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| Error::kafka(3, format!("topic {name}")))?;
        if topic.error_code != 0 {
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
                        .filter(|x| x.error_code == 0)
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
