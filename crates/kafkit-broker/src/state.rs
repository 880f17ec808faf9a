//! Shared state of the embedded cluster: brokers, topics, partitions, groups.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::group::offsets::OffsetStore;
use crate::group::{Action, Coordinator, JoinResult, SyncResult, Token};
use crate::log::PartitionLog;
use crate::BrokerError;

/// On-disk format version written to `<data_dir>/FORMAT`.
pub const FORMAT_VERSION: u32 = 1;

/// Settings of the embedded cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where data lives; `None` keeps it in a temporary directory removed on drop.
    pub data_dir: Option<PathBuf>,
    /// Create unknown topics on Metadata/Produce (Kafka's `auto.create.topics.enable`, default true).
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics (default 3).
    pub default_partitions: i32,
    /// Largest record batch accepted, bytes (Kafka's `message.max.bytes`, default 1 MiB + 12).
    pub message_max_bytes: usize,
    /// Largest request frame accepted, bytes (default 100 MiB).
    pub max_frame_bytes: usize,
    /// Wait for more members when a group forms (Kafka's `group.initial.rebalance.delay.ms`;
    /// default 0 here, 3 s in Kafka).
    pub group_initial_rebalance_delay: Duration,
    /// Most connections served at once per broker (default 1024).
    pub max_connections: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            auto_create_topics: true,
            default_partitions: 3,
            message_max_bytes: 1024 * 1024 + 12,
            max_frame_bytes: kafkit_protocol::frame::DEFAULT_MAX_FRAME,
            group_initial_rebalance_delay: Duration::ZERO,
            max_connections: 1024,
        }
    }
}

/// One broker's advertised address.
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    /// Node id.
    pub id: i32,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A partition: its leader and (on the leader) its log.
#[derive(Debug)]
pub struct PartitionState {
    /// Partition index.
    pub index: i32,
    /// Current leader node id.
    pub leader: AtomicI32,
    /// Leader epoch.
    pub leader_epoch: AtomicI32,
    /// The log.
    pub log: Mutex<PartitionLog>,
}

/// A topic.
#[derive(Debug)]
pub struct TopicState {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: uuid::Uuid,
    /// Replication factor requested at creation (replication itself: issue 3).
    pub replication_factor: i16,
    /// Partitions.
    pub partitions: Vec<Arc<PartitionState>>,
}

/// A JoinGroup or SyncGroup waiting for the coordinator.
#[derive(Debug)]
pub enum Waiter {
    /// JoinGroup.
    Join(oneshot::Sender<JoinResult>),
    /// SyncGroup.
    Sync(oneshot::Sender<SyncResult>),
}

/// The coordinator state machine plus its I/O: waiters and the offsets log.
#[derive(Debug)]
pub struct Groups {
    /// The state machine.
    pub coordinator: Coordinator,
    /// Requests waiting for an [`Action`].
    pub waiters: HashMap<Token, Waiter>,
    /// Committed offsets.
    pub offsets: OffsetStore,
}

impl Groups {
    /// Delivers actions to their waiters.
    pub fn dispatch(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Join(t, r) => {
                    if let Some(Waiter::Join(tx)) = self.waiters.remove(&t) {
                        let _ = tx.send(r);
                    }
                }
                Action::Sync(t, r) => {
                    if let Some(Waiter::Sync(tx)) = self.waiters.remove(&t) {
                        let _ = tx.send(r);
                    }
                }
            }
        }
    }
}

/// Everything the brokers of one cluster share.
#[derive(Debug)]
pub struct ClusterState {
    /// Settings.
    pub config: ClusterConfig,
    /// Data directory in use.
    pub data_dir: PathBuf,
    /// Brokers, by position.
    pub brokers: Vec<BrokerInfo>,
    /// Topics by name.
    pub topics: RwLock<BTreeMap<String, Arc<TopicState>>>,
    /// Group coordination and committed offsets.
    pub groups: Mutex<Groups>,
    /// Signalled after every append (wakes long-polling fetches).
    pub appended: Notify,
    /// Source of waiter tokens.
    pub next_token: AtomicU64,
}

/// Why a topic could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateTopicError {
    /// TOPIC_ALREADY_EXISTS (36)
    AlreadyExists,
    /// INVALID_TOPIC_EXCEPTION (17)
    InvalidName,
    /// INVALID_PARTITIONS (37)
    InvalidPartitions,
    /// INVALID_REPLICATION_FACTOR (38)
    InvalidReplicationFactor,
    /// KAFKA_STORAGE_ERROR (56)
    Storage,
}

impl CreateTopicError {
    /// Kafka error code.
    pub fn code(self) -> i16 {
        match self {
            Self::AlreadyExists => 36,
            Self::InvalidName => 17,
            Self::InvalidPartitions => 37,
            Self::InvalidReplicationFactor => 38,
            Self::Storage => 56,
        }
    }
}

/// Kafka's topic name rule: 1-249 of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Java's `String.hashCode`, used to place groups on coordinators as Kafka does.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

impl ClusterState {
    /// Opens the data directory: checks the format, loads topics and their logs.
    pub fn open(
        config: ClusterConfig,
        data_dir: PathBuf,
        brokers: Vec<BrokerInfo>,
    ) -> Result<Self, BrokerError> {
        std::fs::create_dir_all(&data_dir)?;
        let format_path = data_dir.join("FORMAT");
        match std::fs::read_to_string(&format_path) {
            Ok(s) => {
                let v = s
                    .trim()
                    .strip_prefix("kafkit-data ")
                    .and_then(|v| v.parse::<u32>().ok());
                if v != Some(FORMAT_VERSION) {
                    return Err(BrokerError::Config(format!(
                        "data dir {} has format {:?}, this build reads format {FORMAT_VERSION}",
                        data_dir.display(),
                        s.trim()
                    )));
                }
            }
            Err(_) => std::fs::write(&format_path, format!("kafkit-data {FORMAT_VERSION}\n"))?,
        }
        let offsets = OffsetStore::open(&data_dir.join("__consumer_offsets"))?;
        let state = Self {
            groups: Mutex::new(Groups {
                coordinator: Coordinator::new(config.group_initial_rebalance_delay),
                waiters: HashMap::new(),
                offsets,
            }),
            config,
            data_dir,
            brokers,
            topics: RwLock::new(BTreeMap::new()),
            appended: Notify::new(),
            next_token: AtomicU64::new(1),
        };
        if let Ok(list) = std::fs::read_to_string(state.data_dir.join("topics")) {
            for line in list.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if let [name, parts, rf, id] = f[..] {
                    let parts: i32 = parts
                        .parse()
                        .map_err(|_| BrokerError::Config(format!("bad topics line {line:?}")))?;
                    let rf: i16 = rf.parse().unwrap_or(1);
                    let id = uuid::Uuid::parse_str(id).unwrap_or_else(|_| uuid::Uuid::new_v4());
                    let topic = state.build_topic(name, parts, rf, id)?;
                    state
                        .topics
                        .write()
                        .expect("topics lock")
                        .insert(name.to_owned(), Arc::new(topic));
                }
            }
        }
        Ok(state)
    }

    fn partition_dir(&self, leader: i32, topic: &str, p: i32) -> PathBuf {
        self.data_dir
            .join(format!("broker-{leader}"))
            .join(format!("{topic}-{p}"))
    }

    fn build_topic(
        &self,
        name: &str,
        partitions: i32,
        rf: i16,
        id: uuid::Uuid,
    ) -> Result<TopicState, BrokerError> {
        let n = self.brokers.len() as i32;
        // Spread leaders round-robin, starting at a per-topic offset as Kafka does.
        let start = (java_string_hash(name) & 0x7fff_ffff) % n;
        let mut parts = Vec::new();
        for p in 0..partitions {
            let leader = self.brokers[((start + p) % n) as usize].id;
            let log = PartitionLog::open(&self.partition_dir(leader, name, p))?;
            parts.push(Arc::new(PartitionState {
                index: p,
                leader: AtomicI32::new(leader),
                leader_epoch: AtomicI32::new(0),
                log: Mutex::new(log),
            }));
        }
        Ok(TopicState {
            name: name.to_owned(),
            id,
            replication_factor: rf,
            partitions: parts,
        })
    }

    fn save_topics(&self, topics: &BTreeMap<String, Arc<TopicState>>) -> std::io::Result<()> {
        let mut s = String::new();
        for t in topics.values() {
            s.push_str(&format!(
                "{} {} {} {}\n",
                t.name,
                t.partitions.len(),
                t.replication_factor,
                t.id
            ));
        }
        let tmp = self.data_dir.join("topics.tmp");
        std::fs::write(&tmp, s)?;
        std::fs::rename(&tmp, self.data_dir.join("topics"))
    }

    /// Looks a topic up.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicState>> {
        self.topics.read().expect("topics lock").get(name).cloned()
    }

    /// Creates a topic (partitions/rf of -1 mean the defaults).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        rf: i16,
        validate_only: bool,
    ) -> Result<Arc<TopicState>, CreateTopicError> {
        if !valid_topic_name(name) {
            return Err(CreateTopicError::InvalidName);
        }
        let partitions = if partitions == -1 {
            self.config.default_partitions
        } else {
            partitions
        };
        let rf = if rf == -1 { 1 } else { rf };
        if !(1..=100_000).contains(&partitions) {
            return Err(CreateTopicError::InvalidPartitions);
        }
        if rf < 1 || rf as usize > self.brokers.len() {
            return Err(CreateTopicError::InvalidReplicationFactor);
        }
        let mut topics = self.topics.write().expect("topics lock");
        if topics.contains_key(name) {
            return Err(CreateTopicError::AlreadyExists);
        }
        let topic = self.build_topic(name, partitions, rf, uuid::Uuid::new_v4()).map_err(|e| {
            tracing::error!(target: "kafkit::broker", topic = name, error = %e, "creating topic failed");
            CreateTopicError::Storage
        })?;
        let topic = Arc::new(topic);
        if validate_only {
            return Ok(topic);
        }
        topics.insert(name.to_owned(), topic.clone());
        if let Err(e) = self.save_topics(&topics) {
            tracing::error!(target: "kafkit::broker", error = %e, "saving topic list failed");
            topics.remove(name);
            return Err(CreateTopicError::Storage);
        }
        tracing::info!(target: "kafkit::broker", topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Gets a topic, creating it with defaults when auto-creation is on and `allow` is set.
    pub fn topic_or_create(&self, name: &str, allow: bool) -> Option<Arc<TopicState>> {
        if let Some(t) = self.topic(name) {
            return Some(t);
        }
        if !(allow && self.config.auto_create_topics) {
            return None;
        }
        match self.create_topic(name, -1, -1, false) {
            Ok(t) => Some(t),
            Err(CreateTopicError::AlreadyExists) => self.topic(name),
            Err(_) => None,
        }
    }

    /// The broker coordinating a group (as Kafka: hash of the id over `__consumer_offsets`'s 50
    /// partitions, then that partition's leader).
    pub fn coordinator_for(&self, group: &str) -> &BrokerInfo {
        let p = (java_string_hash(group) & 0x7fff_ffff) % 50;
        &self.brokers[p as usize % self.brokers.len()]
    }

    /// A broker by node id.
    pub fn broker(&self, id: i32) -> Option<&BrokerInfo> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// Flushes every log to stable storage.
    pub fn flush_all(&self) {
        for t in self.topics.read().expect("topics lock").values() {
            for p in &t.partitions {
                let log = p.log.lock().expect("log lock");
                if let Err(e) = log.flush() {
                    tracing::error!(target: "kafkit::broker", path = %log.path().display(), error = %e, "flush failed");
                }
            }
        }
    }

    /// A fresh token for a waiting request.
    pub fn token(&self) -> Token {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }
}
