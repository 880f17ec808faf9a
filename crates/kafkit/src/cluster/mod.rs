//! What the client knows about the cluster: brokers, topic metadata, leaders, coordinators, and a
//! pool of shared connections (one per broker). Metadata is cached and refreshed when a broker
//! says NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION or a connection breaks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafkit_protocol::codes;
use kafkit_protocol::messages::metadata_request::MetadataRequestTopic;
use kafkit_protocol::messages::{FindCoordinatorRequest, MetadataRequest};
use kafkit_protocol::{str_bytes, topic_name};

use crate::conn::{ConnConfig, Connection};
use crate::error::{Error, Result};

/// Partition count and leaders of a topic.
#[derive(Debug, Clone)]
pub struct TopicMeta {
    /// Leader node id per partition index (-1 when there is none).
    pub leaders: Vec<i32>,
}

/// Shared state of a client: bootstrap list, broker addresses, metadata cache, connections.
#[derive(Debug)]
pub struct ClusterClient {
    bootstrap: Vec<String>,
    conn_config: ConnConfig,
    allow_auto_topic_creation: bool,
    brokers: Mutex<HashMap<i32, String>>,
    topics: Mutex<HashMap<String, TopicMeta>>,
    conns: tokio::sync::Mutex<HashMap<String, Arc<Connection>>>,
}

impl ClusterClient {
    /// A client for `bootstrap` brokers. Nothing is dialed until first use.
    pub fn new(
        bootstrap: Vec<String>,
        conn_config: ConnConfig,
        allow_auto_topic_creation: bool,
    ) -> Self {
        Self {
            bootstrap,
            conn_config,
            allow_auto_topic_creation,
            brokers: Mutex::new(HashMap::new()),
            topics: Mutex::new(HashMap::new()),
            conns: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Connection settings.
    pub fn conn_config(&self) -> &ConnConfig {
        &self.conn_config
    }

    /// The shared connection to `addr`, dialing if needed.
    pub async fn conn(&self, addr: &str) -> Result<Arc<Connection>> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(addr) {
            if c.is_alive() {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(Connection::connect(addr, self.conn_config.clone()).await?);
        conns.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    /// A new connection nobody else uses (for long polls and group coordination).
    pub async fn dedicated(&self, addr: &str) -> Result<Connection> {
        Connection::connect(addr, self.conn_config.clone()).await
    }

    /// Address of a broker by node id.
    pub fn broker_addr(&self, node: i32) -> Option<String> {
        self.brokers
            .lock()
            .expect("brokers lock")
            .get(&node)
            .cloned()
    }

    /// Known brokers (node id, address), sorted by id; call `refresh` first to learn them.
    pub fn brokers(&self) -> Vec<(i32, String)> {
        let mut v: Vec<(i32, String)> = self
            .brokers
            .lock()
            .expect("brokers lock")
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        v.sort();
        v
    }

    /// Any reachable broker: known brokers first, then the bootstrap list.
    pub async fn any_conn(&self) -> Result<Arc<Connection>> {
        let mut candidates: Vec<String> = self
            .brokers
            .lock()
            .expect("brokers lock")
            .values()
            .cloned()
            .collect();
        candidates.sort();
        for b in &self.bootstrap {
            if !candidates.contains(b) {
                candidates.push(b.clone());
            }
        }
        let mut last = String::from("no brokers configured");
        for addr in &candidates {
            match self.conn(addr).await {
                Ok(c) => return Ok(c),
                // Wrong credentials or certificates fail the same way at every broker: say so
                // now, with the error's own type (SASL_AUTHENTICATION_FAILED, TLS, ...).
                Err(e) if !e.is_retriable() => return Err(e),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::NoBrokerReachable {
            tried: candidates.join(","),
            last,
        })
    }

    /// Fetches metadata for `topics` and updates the cache.
    pub async fn refresh(&self, topics: &[String]) -> Result<()> {
        let conn = self.any_conn().await?;
        let req = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(self.allow_auto_topic_creation);
        let (_, resp) = conn.send(&req).await?;
        {
            let mut brokers = self.brokers.lock().expect("brokers lock");
            for b in &resp.brokers {
                brokers.insert(b.node_id.0, format!("{}:{}", b.host, b.port));
            }
        }
        let mut cache = self.topics.lock().expect("topics lock");
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != codes::NONE {
                cache.remove(&name);
                // LEADER_NOT_AVAILABLE right after auto-creation is normal: the caller retries.
                if topics.contains(&name) && t.error_code != codes::LEADER_NOT_AVAILABLE {
                    return Err(Error::kafka(
                        t.error_code,
                        format!("metadata for topic {name}"),
                    ));
                }
                continue;
            }
            let mut leaders = vec![-1; t.partitions.len()];
            for p in &t.partitions {
                if let Some(slot) = usize::try_from(p.partition_index)
                    .ok()
                    .and_then(|i| leaders.get_mut(i))
                {
                    *slot = if p.error_code == codes::NONE {
                        p.leader_id.0
                    } else {
                        -1
                    };
                }
            }
            cache.insert(name, TopicMeta { leaders });
        }
        Ok(())
    }

    /// Cached metadata for a topic, fetched if missing.
    pub async fn topic(&self, topic: &str) -> Result<TopicMeta> {
        for attempt in 0..10 {
            if let Some(m) = self.topics.lock().expect("topics lock").get(topic) {
                if !m.leaders.is_empty() {
                    return Ok(m.clone());
                }
            }
            self.refresh(&[topic.to_owned()]).await?;
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
        }
        Err(Error::kafka(
            5,
            format!("topic {topic}: no partitions/leaders in metadata"),
        ))
    }

    /// Forgets cached metadata for a topic (after NOT_LEADER and friends).
    pub fn invalidate(&self, topic: &str) {
        self.topics.lock().expect("topics lock").remove(topic);
    }

    /// Cached leader node ids of a topic's partitions (`None`: not cached).
    pub fn cached_leaders(&self, topic: &str) -> Option<Vec<i32>> {
        self.topics
            .lock()
            .expect("topics lock")
            .get(topic)
            .map(|m| m.leaders.clone())
    }

    /// The node id of the broker at `addr`, as metadata named it.
    pub fn node_id(&self, addr: &str) -> Option<i32> {
        self.brokers
            .lock()
            .expect("brokers lock")
            .iter()
            .find(|(_, a)| a.as_str() == addr)
            .map(|(id, _)| *id)
    }

    /// Address of the leader of a partition from cached metadata only (`None`: not known).
    pub fn cached_leader_addr(&self, topic: &str, partition: i32) -> Option<String> {
        let leader = *self
            .topics
            .lock()
            .expect("topics lock")
            .get(topic)?
            .leaders
            .get(usize::try_from(partition).ok()?)?;
        (leader >= 0).then(|| self.broker_addr(leader)).flatten()
    }

    /// Address of the leader of a partition.
    pub async fn leader_addr(&self, topic: &str, partition: i32) -> Result<String> {
        let meta = self.topic(topic).await?;
        let leader = meta
            .leaders
            .get(partition as usize)
            .copied()
            .ok_or_else(|| {
                Error::kafka(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("{topic}/{partition}"),
                )
            })?;
        if leader < 0 {
            self.invalidate(topic);
            return Err(Error::kafka(
                codes::LEADER_NOT_AVAILABLE,
                format!("{topic}/{partition}"),
            ));
        }
        self.broker_addr(leader).ok_or_else(|| {
            Error::kafka(
                5,
                format!("{topic}/{partition}: leader {leader} not in metadata"),
            )
        })
    }

    /// Finds the coordinator of a consumer group; returns its address.
    pub async fn coordinator(&self, group: &str) -> Result<String> {
        let conn = self.any_conn().await?;
        let (_, resp) = conn
            .send(&FindCoordinatorRequest::default().with_key(str_bytes(group)))
            .await?;
        if resp.error_code != codes::NONE {
            return Err(Error::kafka(
                resp.error_code,
                format!("FindCoordinator for group {group}"),
            ));
        }
        let addr = format!("{}:{}", resp.host, resp.port);
        self.brokers
            .lock()
            .expect("brokers lock")
            .insert(resp.node_id.0, addr.clone());
        Ok(addr)
    }
}
