//! Shared state of the embedded cluster: brokers, topics, partitions, groups.

use std::collections::HashSet;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch, Notify};

use crate::group::offsets::OffsetStore;
use crate::group::{Action, Coordinator, JoinResult, SyncResult, Token};
use crate::log::PartitionLog;
use crate::BrokerError;
use kafkit_protocol::codes;

/// On-disk format version written to `<data_dir>/FORMAT`.
pub const FORMAT_VERSION: u32 = 1;

pub use crate::config::ClusterConfig;

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

/// Leadership, ISR, high watermark and the replica logs of one partition, under one lock.
#[derive(Debug)]
pub struct PartitionInner {
    /// Leader node id, -1 while the partition is offline.
    pub leader: i32,
    /// Bumped at every leader change.
    pub leader_epoch: i32,
    /// In-sync replicas (the leader included).
    pub isr: Vec<i32>,
    /// Offset below which every ISR member has the records; consumers see only these.
    pub high_watermark: i64,
    /// Each replica's log, by node id.
    pub logs: BTreeMap<i32, PartitionLog>,
    /// When each follower was last fully caught up with the leader.
    pub caught_up_at: HashMap<i32, Instant>,
}

impl PartitionInner {
    /// The leader's log.
    pub fn leader_log(&self) -> Option<&PartitionLog> {
        self.logs.get(&self.leader)
    }

    /// The leader's log end offset.
    pub fn log_end(&self) -> i64 {
        self.leader_log().map_or(0, |l| l.next_offset())
    }

    /// Moves the high watermark to the lowest log end in the ISR. Returns true if it moved.
    pub fn update_high_watermark(&mut self) -> bool {
        let Some(min) = self
            .isr
            .iter()
            .filter_map(|b| self.logs.get(b))
            .map(|l| l.next_offset())
            .min()
        else {
            return false;
        };
        if min > self.high_watermark {
            self.high_watermark = min;
            true
        } else {
            false
        }
    }
}

/// A partition: its replicas and their shared state.
#[derive(Debug)]
pub struct PartitionState {
    /// Partition index.
    pub index: i32,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// Leadership, ISR and logs.
    pub inner: Mutex<PartitionInner>,
    /// Woken when records are appended or the high watermark moves: the partition's long-poll
    /// fetches and acks=-1 writers wait on it (cluster-wide events use `ClusterState::changed`),
    /// so an append wakes only those who wait for this partition.
    pub data: Notify,
}

impl PartitionState {
    /// Locks the partition state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, PartitionInner> {
        self.inner.lock().expect("partition lock")
    }
}

/// A topic.
#[derive(Debug)]
pub struct TopicState {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: uuid::Uuid,
    /// Replicas per partition.
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

/// The coordinator state machine plus its waiters (committed offsets are apart, in
/// [`ClusterState::offsets`]: no disk work under this lock).
#[derive(Debug)]
pub struct Groups {
    /// The state machine.
    pub coordinator: Coordinator,
    /// Requests waiting for an [`Action`].
    pub waiters: HashMap<Token, Waiter>,
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
    /// Group coordination (never held across disk work).
    pub groups: Mutex<Groups>,
    /// Committed offsets, with their own locks (see `group::offsets`).
    pub offsets: Arc<OffsetStore>,
    /// Signalled after appends and high watermark moves (wakes fetches, acks=-1 waits and the
    /// replicator).
    pub changed: Notify,
    /// Which brokers are up (index: node id - 1).
    pub alive: Vec<AtomicBool>,
    /// Turns true while a broker is down: its connections close.
    pub down: Vec<watch::Sender<bool>>,
    /// Broker pairs between which replication is cut (smaller id first).
    pub cut_links: Mutex<HashSet<(i32, i32)>>,
    /// Injected faults.
    pub faults: Mutex<crate::faults::Faults>,
    /// Source of waiter tokens.
    pub next_token: AtomicU64,
    /// Next idempotent producer id (persisted in `<data_dir>/producer_ids`).
    pub next_producer_id: Mutex<i64>,
    /// Run-time state of the resource limits.
    pub limits: crate::limits::Limits,
    /// The open segment files of every log.
    pub files: Arc<crate::log::OpenFiles>,
    /// Traffic capture, when `capture_dir` is set.
    pub capture: Option<crate::capture::Capture>,
    /// The topic list changed but could not be saved yet (a full disk): the flush retries.
    pub topics_unsaved: AtomicBool,
    /// Per-topic config overrides (AlterConfigs, IncrementalAlterConfigs), saved in
    /// `<data_dir>/topic-configs/<topic>`.
    pub topic_configs: Mutex<HashMap<String, BTreeMap<String, String>>>,
    /// Dynamic broker configs (AlterConfigs on BROKER resources) by resource name: a broker
    /// id, or "" for the cluster-wide default; saved in `<data_dir>/broker-configs/<id|default>`.
    pub broker_configs: Mutex<HashMap<String, BTreeMap<String, String>>>,
    /// ACLs (CreateAcls, DescribeAcls, DeleteAcls), saved in `<data_dir>/acls`.
    pub acls: crate::acl::AclStore,
    /// SCRAM credentials (AlterUserScramCredentials), saved in `<data_dir>/scram-credentials`.
    pub scram: crate::scram::ScramStore,
    /// Incremental fetch sessions (KIP-227) of each broker, by broker id.
    pub fetch_sessions: HashMap<i32, Mutex<crate::fetch_session::SessionCache>>,
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
    /// POLICY_VIOLATION (44): the cluster would hold more than `max_partitions` replicas.
    TooManyPartitions,
    /// LEADER_NOT_AVAILABLE (5, retriable): the auto-creation budget is spent for now.
    Throttled,
    /// INVALID_REPLICA_ASSIGNMENT (39)
    InvalidReplicaAssignment,
}

impl CreateTopicError {
    /// Kafka error code.
    pub fn code(self) -> i16 {
        match self {
            Self::AlreadyExists => codes::TOPIC_ALREADY_EXISTS,
            Self::InvalidName => codes::INVALID_TOPIC_EXCEPTION,
            Self::InvalidPartitions => codes::INVALID_PARTITIONS,
            Self::InvalidReplicationFactor => codes::INVALID_REPLICATION_FACTOR,
            Self::Storage => codes::KAFKA_STORAGE_ERROR,
            Self::TooManyPartitions => codes::POLICY_VIOLATION,
            Self::Throttled => codes::LEADER_NOT_AVAILABLE,
            Self::InvalidReplicaAssignment => codes::INVALID_REPLICA_ASSIGNMENT,
        }
    }
}

/// `1,2,3;2,3,1`: one broker list per partition.
fn parse_assignment(s: &str) -> Option<Vec<Vec<i32>>> {
    s.split(';')
        .map(|p| p.split(',').map(|b| b.parse().ok()).collect())
        .collect()
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

/// `key=value` lines of a saved config file.
fn parse_config_lines(data: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(data)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
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
        let storage = config.storage.clone();
        storage.create_dir_all(&data_dir)?;
        let format_path = data_dir.join("FORMAT");
        match storage.read_file(&format_path) {
            Ok(s) => {
                let s = String::from_utf8_lossy(&s);
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
            Err(_) => storage.write_atomic(
                &format_path,
                format!("kafkit-data {FORMAT_VERSION}\n").as_bytes(),
            )?,
        }
        let offsets = OffsetStore::open(storage.clone(), &data_dir.join("__consumer_offsets"))?;
        let state = Self {
            limits: crate::limits::Limits::new(&config, brokers.len()),
            files: crate::log::OpenFiles::new(config.max_open_files, storage.clone()),
            capture: config.capture_dir.clone().map(crate::capture::Capture::new),
            topics_unsaved: AtomicBool::new(false),
            topic_configs: Mutex::new(HashMap::new()),
            broker_configs: Mutex::new(HashMap::new()),
            acls: crate::acl::AclStore::open(storage.clone(), data_dir.join("acls"))?,
            fetch_sessions: brokers
                .iter()
                .map(|b| {
                    let cache = crate::fetch_session::SessionCache::new(
                        config.max_fetch_sessions,
                        Duration::from_secs(120),
                    );
                    (b.id, Mutex::new(cache))
                })
                .collect(),
            scram: crate::scram::ScramStore::open(
                storage.clone(),
                data_dir.join("scram-credentials"),
            )?,
            groups: Mutex::new(Groups {
                coordinator: Coordinator::new(config.group_initial_rebalance_delay),
                waiters: HashMap::new(),
            }),
            offsets: Arc::new(offsets),
            config,
            data_dir,
            topics: RwLock::new(BTreeMap::new()),
            changed: Notify::new(),
            alive: brokers.iter().map(|_| AtomicBool::new(true)).collect(),
            down: brokers.iter().map(|_| watch::channel(false).0).collect(),
            cut_links: Mutex::new(HashSet::new()),
            faults: Mutex::new(Default::default()),
            brokers,
            next_token: AtomicU64::new(1),
            next_producer_id: Mutex::new(0),
        };
        let next_pid = storage
            .read_file(&state.data_dir.join("producer_ids"))
            .ok()
            .and_then(|s| String::from_utf8_lossy(&s).trim().parse::<i64>().ok())
            .unwrap_or(1000);
        *state.next_producer_id.lock().expect("pid lock") = next_pid;
        // Dynamic broker configs before the topics: their logs open with the settings they give.
        if let Ok(files) = storage.list_dir(&state.data_dir.join("broker-configs")) {
            for path in files {
                let name = match path.file_name().and_then(|f| f.to_str()) {
                    Some("default") => "",
                    Some(id) if id.parse::<i32>().is_ok() => id,
                    _ => continue, // e.g. a temporary file a crash left behind
                };
                if let Ok(data) = storage.read_file(&path) {
                    state
                        .broker_configs
                        .lock()
                        .expect("configs lock")
                        .insert(name.to_owned(), parse_config_lines(&data));
                }
            }
        }
        if let Ok(list) = storage.read_file(&state.data_dir.join("topics")) {
            for line in String::from_utf8_lossy(&list).lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if let [name, parts, rf, id, ref rest @ ..] = f[..] {
                    let bad = || BrokerError::Config(format!("bad topics line {line:?}"));
                    let parts: i32 = parts.parse().map_err(|_| bad())?;
                    let rf: i16 = rf.parse().unwrap_or(1);
                    let id = uuid::Uuid::parse_str(id).unwrap_or_else(|_| uuid::Uuid::new_v4());
                    // Format 1 lines may end in `a=1,2,3;2,3,1;...`: a manual assignment.
                    let manual = match rest.first().and_then(|a| a.strip_prefix("a=")) {
                        Some(a) => Some(parse_assignment(a).ok_or_else(bad)?),
                        None => None,
                    };
                    // Its config overrides first: the logs open with the settings they give.
                    let path = state.data_dir.join("topic-configs").join(name);
                    if let Ok(data) = storage.read_file(&path) {
                        let map = parse_config_lines(&data);
                        state
                            .topic_configs
                            .lock()
                            .expect("configs lock")
                            .insert(name.to_owned(), map);
                    }
                    let topic = state.build_topic(name, parts, rf, id, manual.as_deref())?;
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

    /// A topic's config overrides.
    pub fn topic_overrides(&self, name: &str) -> BTreeMap<String, String> {
        self.topic_configs
            .lock()
            .expect("configs lock")
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// The value of topic config `key` for `topic` on `broker`: the topic's override, else
    /// the broker's dynamic config of that name (`log.retention.ms` for `retention.ms`...),
    /// else the cluster-wide dynamic default; `None` means the static `ClusterConfig`.
    fn topic_setting<T: std::str::FromStr>(
        &self,
        topic: &str,
        key: &str,
        broker: i32,
    ) -> Option<T> {
        let parse = |v: &String| v.trim().parse().ok();
        let topic_value = self
            .topic_configs
            .lock()
            .expect("configs lock")
            .get(topic)
            .and_then(|m| m.get(key))
            .and_then(parse);
        topic_value.or_else(|| {
            let name = crate::topic_config::broker_synonym(key)?;
            let b = self.broker_configs.lock().expect("configs lock");
            b.get(&broker.to_string())
                .and_then(|m| m.get(name))
                .or_else(|| b.get("").and_then(|m| m.get(name)))
                .and_then(parse)
        })
    }

    /// `max.message.bytes` for a topic on its leader `broker`.
    pub fn max_message_bytes(&self, topic: &str, broker: i32) -> usize {
        self.topic_setting(topic, "max.message.bytes", broker)
            .unwrap_or(self.config.message_max_bytes)
    }

    /// True if the topic's `cleanup.policy` on its leader `broker` includes `compact` (records
    /// then need keys).
    pub fn is_compacted(&self, topic: &str, broker: i32) -> bool {
        self.topic_setting::<String>(topic, "cleanup.policy", broker)
            .is_some_and(|p| p.contains("compact"))
    }

    /// `min.insync.replicas` for a topic on its leader `broker`.
    pub fn min_insync_replicas(&self, topic: &str, broker: i32) -> usize {
        self.topic_setting(topic, "min.insync.replicas", broker)
            .unwrap_or(self.config.min_insync_replicas)
    }

    /// The log settings of `topic`'s replica on `broker`: the cluster's, with the topic's (or
    /// the broker's dynamic) `retention.ms`, `retention.bytes`, `segment.bytes` and
    /// `segment.ms`.
    pub fn log_config_for(&self, topic: &str, broker: i32) -> crate::log::LogConfig {
        let mut c = self.config.log.clone();
        let ms = |v: i64| (v >= 0).then(|| Duration::from_millis(v as u64));
        if let Some(v) = self.topic_setting::<i64>(topic, "retention.ms", broker) {
            c.retention_ms = ms(v);
        }
        if let Some(v) = self.topic_setting::<i64>(topic, "retention.bytes", broker) {
            c.retention_bytes = (v >= 0).then_some(v as u64);
        }
        if let Some(v) = self.topic_setting::<u64>(topic, "segment.bytes", broker) {
            c.segment_bytes = v;
        }
        if let Some(v) = self
            .topic_setting::<i64>(topic, "segment.ms", broker)
            .and_then(ms)
        {
            c.segment_ms = v;
        }
        // No compaction here: a policy without "delete" keeps everything (see topic_config).
        let policy: Option<String> = self.topic_setting(topic, "cleanup.policy", broker);
        if policy.is_some_and(|p| !p.contains("delete")) {
            c.retention_ms = None;
            c.retention_bytes = None;
        }
        c
    }

    /// A broker's dynamic config overrides ("" for the cluster-wide default).
    pub fn broker_overrides(&self, name: &str) -> BTreeMap<String, String> {
        self.broker_configs
            .lock()
            .expect("configs lock")
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Replaces the dynamic config overrides of broker `name` (an id, or "" for the
    /// cluster-wide default) after [`crate::topic_config::validate_broker`], saves them and
    /// gives every log its new settings. `Err((code, message))`: INVALID_REQUEST (42) for an
    /// unknown broker, INVALID_CONFIG (40), KAFKA_STORAGE_ERROR (56).
    pub fn set_broker_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        if !name.is_empty()
            && name
                .parse::<i32>()
                .ok()
                .and_then(|id| self.broker(id))
                .is_none()
        {
            return Err((
                codes::INVALID_REQUEST,
                format!("broker {name} does not exist"),
            ));
        }
        for (k, v) in &configs {
            crate::topic_config::validate_broker(k, Some(v)).map_err(|m| (40, m))?;
        }
        if validate_only {
            return Ok(());
        }
        let file = if name.is_empty() { "default" } else { name };
        self.save_configs(&self.data_dir.join("broker-configs"), file, &configs)
            .map_err(|e| {
                (
                    codes::KAFKA_STORAGE_ERROR,
                    format!("saving broker configs: {e}"),
                )
            })?;
        tracing::info!(target: "kafkit::broker", broker = name, ?configs, "broker configs changed");
        self.broker_configs
            .lock()
            .expect("configs lock")
            .insert(name.to_owned(), configs);
        let topics: Vec<String> = self
            .topics
            .read()
            .expect("topics lock")
            .keys()
            .cloned()
            .collect();
        for topic in topics {
            self.apply_log_config(&topic);
        }
        Ok(())
    }

    /// Writes `configs` to `dir/file` (`key=value` lines; no file when empty).
    fn save_configs(
        &self,
        dir: &Path,
        file: &str,
        configs: &BTreeMap<String, String>,
    ) -> std::io::Result<()> {
        let path = dir.join(file);
        if configs.is_empty() {
            match self.config.storage.remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let text: String = configs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            self.config
                .storage
                .create_dir_all(dir)
                .and_then(|()| self.config.storage.write_atomic(&path, text.as_bytes()))
        }
    }

    /// Gives every replica log of `topic` its current log settings.
    fn apply_log_config(&self, topic: &str) {
        if let Some(t) = self.topic(topic) {
            for p in &t.partitions {
                for (&broker, log) in p.lock().logs.iter_mut() {
                    log.set_config(self.log_config_for(topic, broker));
                }
            }
        }
    }

    /// Replaces a topic's config overrides (after [`crate::topic_config`] checks), saves them
    /// and applies the ones this cluster honours. `Err((code, message))`: UNKNOWN_TOPIC (3),
    /// INVALID_CONFIG (40), KAFKA_STORAGE_ERROR (56).
    pub fn set_topic_configs(
        &self,
        topic: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        if self.topic(topic).is_none() {
            return Err((
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {topic} does not exist"),
            ));
        }
        for (k, v) in &configs {
            crate::topic_config::validate(k, Some(v)).map_err(|m| (40, m))?;
        }
        if validate_only {
            return Ok(());
        }
        self.save_configs(&self.data_dir.join("topic-configs"), topic, &configs)
            .map_err(|e| {
                (
                    codes::KAFKA_STORAGE_ERROR,
                    format!("saving topic configs: {e}"),
                )
            })?;
        tracing::info!(target: "kafkit::broker", topic, ?configs, "topic configs changed");
        self.topic_configs
            .lock()
            .expect("configs lock")
            .insert(topic.to_owned(), configs);
        self.apply_log_config(topic);
        Ok(())
    }

    fn partition_dir(&self, leader: i32, topic: &str, p: i32) -> PathBuf {
        self.data_dir
            .join(format!("broker-{leader}"))
            .join(format!("{topic}-{p}"))
    }

    /// Checks a topic to create and resolves -1 (defaults): `(partitions, replication factor)`.
    pub fn plan_topic(
        &self,
        name: &str,
        partitions: i32,
        rf: i16,
    ) -> Result<(i32, i16), CreateTopicError> {
        if !valid_topic_name(name) {
            return Err(CreateTopicError::InvalidName);
        }
        let partitions = if partitions == -1 {
            self.config.default_partitions
        } else {
            partitions
        };
        let rf = if rf == -1 {
            self.default_replication_factor()
        } else {
            rf
        };
        if !(1..=100_000).contains(&partitions) {
            return Err(CreateTopicError::InvalidPartitions);
        }
        if rf < 1 || rf as usize > self.brokers.len() {
            return Err(CreateTopicError::InvalidReplicationFactor);
        }
        if partitions as usize * rf as usize > self.config.max_partitions {
            return Err(CreateTopicError::TooManyPartitions);
        }
        if self.topics.read().expect("topics lock").contains_key(name) {
            return Err(CreateTopicError::AlreadyExists);
        }
        Ok((partitions, rf))
    }

    /// Refuses `more` replicas when the cluster would then hold over `max_partitions`.
    fn check_partition_budget(
        &self,
        topics: &BTreeMap<String, Arc<TopicState>>,
        more: usize,
    ) -> Result<(), CreateTopicError> {
        let have: usize = topics
            .values()
            .map(|t| t.partitions.len() * t.replication_factor.max(1) as usize)
            .sum();
        if have + more > self.config.max_partitions {
            tracing::warn!(target: "kafkit::broker", have, more, max_partitions = self.config.max_partitions, "refusing partitions: max.partitions reached");
            return Err(CreateTopicError::TooManyPartitions);
        }
        Ok(())
    }

    /// Removes what a failed create left on disk (on every broker: assignments may be
    /// manual).
    fn remove_partition_dirs(&self, name: &str, range: std::ops::Range<i32>) {
        for p in range {
            for b in &self.brokers {
                // Most brokers hold no replica of `p`: NotFound is expected.
                let _ = self
                    .config
                    .storage
                    .remove_dir_all(&self.partition_dir(b.id, name, p));
            }
        }
    }

    /// The replicas of partition `p`, leader first: leaders spread round-robin from a
    /// per-topic start, followers on the next brokers (Kafka's rack-unaware assignment,
    /// simplified). Deterministic, so not stored.
    fn replicas_for(&self, name: &str, p: i32, rf: i16) -> Vec<i32> {
        let n = self.brokers.len() as i32;
        let start = (java_string_hash(name) & 0x7fff_ffff) % n;
        (0..rf as i32)
            .map(|k| self.brokers[((start + p + k) % n) as usize].id)
            .collect()
    }

    fn build_topic(
        &self,
        name: &str,
        partitions: i32,
        rf: i16,
        id: uuid::Uuid,
        manual: Option<&[Vec<i32>]>,
    ) -> Result<TopicState, BrokerError> {
        Ok(TopicState {
            name: name.to_owned(),
            id,
            replication_factor: rf,
            partitions: self.build_partitions(name, 0..partitions, rf, manual)?,
        })
    }

    /// Opens (or creates) the replica logs of partitions `range` of a topic.
    fn build_partitions(
        &self,
        name: &str,
        range: std::ops::Range<i32>,
        rf: i16,
        manual: Option<&[Vec<i32>]>,
    ) -> Result<Vec<Arc<PartitionState>>, BrokerError> {
        let now = Instant::now();
        let mut parts = Vec::new();
        for p in range {
            let replicas = match manual.and_then(|m| m.get(p as usize)) {
                Some(r) => r.clone(),
                None => self.replicas_for(name, p, rf),
            };
            let mut logs = BTreeMap::new();
            for &r in &replicas {
                logs.insert(
                    r,
                    PartitionLog::open_shared(
                        &self.partition_dir(r, name, p),
                        self.log_config_for(name, r),
                        &self.files,
                    )?,
                );
            }
            // After a restart the replica with the longest log leads; longer logs elsewhere
            // cannot exist then, so nothing acknowledged is lost.
            let leader = *replicas
                .iter()
                .max_by_key(|r| {
                    (
                        logs[r].next_offset(),
                        std::cmp::Reverse(replicas.iter().position(|x| x == *r)),
                    )
                })
                .expect("at least one replica");
            let hw = replicas
                .iter()
                .map(|r| logs[r].next_offset())
                .min()
                .unwrap_or(0);
            // A (re)start is a leader election: the epoch goes past every one saved at a
            // leadership change or stamped on a batch, so it never goes back. (Not saved
            // here: a restart without leadership changes may hand out the same epoch again,
            // which clients accept; saving would cost a sync per partition at startup.)
            let leader_epoch = logs
                .values()
                .map(|l| l.known_leader_epoch())
                .max()
                .unwrap_or(-1)
                + 1;
            let mut inner = PartitionInner {
                leader,
                leader_epoch,
                isr: replicas.clone(),
                high_watermark: hw,
                logs,
                caught_up_at: replicas.iter().map(|r| (*r, now)).collect(),
            };
            inner.update_high_watermark();
            parts.push(Arc::new(PartitionState {
                index: p,
                replicas,
                inner: Mutex::new(inner),
                data: Notify::new(),
            }));
        }
        Ok(parts)
    }

    fn save_topics(&self, topics: &BTreeMap<String, Arc<TopicState>>) -> std::io::Result<()> {
        let mut s = String::new();
        for t in topics.values() {
            s.push_str(&format!(
                "{} {} {} {}",
                t.name,
                t.partitions.len(),
                t.replication_factor,
                t.id
            ));
            let manual = t
                .partitions
                .iter()
                .any(|p| p.replicas != self.replicas_for(&t.name, p.index, t.replication_factor));
            if manual {
                let a: Vec<String> = t
                    .partitions
                    .iter()
                    .map(|p| {
                        p.replicas
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect();
                s.push_str(&format!(" a={}", a.join(";")));
            }
            s.push('\n');
        }
        self.config
            .storage
            .write_atomic(&self.data_dir.join("topics"), s.as_bytes())
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
    ) -> Result<Arc<TopicState>, CreateTopicError> {
        let (partitions, rf) = self.plan_topic(name, partitions, rf)?;
        self.create(name, partitions, rf, None)
    }

    /// Checks a manual replica assignment (one broker list per partition, partition 0
    /// first): `(partitions, replication factor)`. INVALID_REPLICA_ASSIGNMENT when lists are
    /// empty, of different lengths, repeat a broker or name an unknown one.
    pub fn plan_assignment(
        &self,
        name: &str,
        assignment: &[Vec<i32>],
    ) -> Result<(i32, i16), CreateTopicError> {
        let rf = assignment.first().map_or(0, |a| a.len());
        if assignment.is_empty() || !self.valid_replica_lists(assignment, rf) {
            return Err(CreateTopicError::InvalidReplicaAssignment);
        }
        self.plan_topic(name, assignment.len() as i32, rf as i16)
    }

    /// Every list has `rf` (> 0) distinct, known brokers.
    fn valid_replica_lists(&self, lists: &[Vec<i32>], rf: usize) -> bool {
        rf > 0
            && lists.iter().all(|a| {
                a.len() == rf
                    && a.iter().all(|b| self.broker(*b).is_some())
                    && a.iter().collect::<HashSet<_>>().len() == a.len()
            })
    }

    /// Creates a topic with a manual replica assignment (see
    /// [`plan_assignment`](Self::plan_assignment)); the first broker of each list is the
    /// preferred leader.
    pub fn create_topic_assigned(
        &self,
        name: &str,
        assignment: &[Vec<i32>],
    ) -> Result<Arc<TopicState>, CreateTopicError> {
        let (partitions, rf) = self.plan_assignment(name, assignment)?;
        self.create(name, partitions, rf, Some(assignment))
    }

    fn create(
        &self,
        name: &str,
        partitions: i32,
        rf: i16,
        manual: Option<&[Vec<i32>]>,
    ) -> Result<Arc<TopicState>, CreateTopicError> {
        let mut topics = self.topics.write().expect("topics lock");
        if topics.contains_key(name) {
            return Err(CreateTopicError::AlreadyExists);
        }
        self.check_partition_budget(&topics, partitions as usize * rf as usize)?;
        let topic = self
            .build_topic(name, partitions, rf, uuid::Uuid::new_v4(), manual)
            .map_err(|e| {
                tracing::error!(target: "kafkit::broker", topic = name, error = %e, "creating topic failed");
                self.remove_partition_dirs(name, 0..partitions);
                CreateTopicError::Storage
            })?;
        let topic = Arc::new(topic);
        topics.insert(name.to_owned(), topic.clone());
        if let Err(e) = self.save_topics(&topics) {
            tracing::error!(target: "kafkit::broker", error = %e, "saving topic list failed");
            topics.remove(name);
            drop(topic);
            self.remove_partition_dirs(name, 0..partitions);
            return Err(CreateTopicError::Storage);
        }
        tracing::info!(target: "kafkit::broker", topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data. Err(UNKNOWN_TOPIC_OR_PARTITION) if there is none.
    ///
    /// On a full disk the new topic list cannot be written until space is freed, and the
    /// topic's own data is what frees it: then the data goes first and the list is saved
    /// after. Should even that fail, the topic stays deleted and the list is saved by the
    /// background flush (a crash before that brings the topic back, empty).
    pub fn delete_topic(&self, name: &str) -> Result<(), i16> {
        let mut topics = self.topics.write().expect("topics lock");
        let Some(topic) = topics.remove(name) else {
            return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
        };
        match self.save_topics(&topics) {
            Ok(()) => {
                drop(topics);
                self.remove_topic_data(&topic);
            }
            Err(e) if crate::storage::is_no_space(&e) => {
                tracing::warn!(target: "kafkit::broker", topic = name, error = %e, "disk full: deleting the topic's data before saving the topic list");
                self.remove_topic_data(&topic);
                if let Err(e) = self.save_topics(&topics) {
                    tracing::error!(target: "kafkit::broker", topic = name, error = %e, "saving topic list failed; retrying in the background");
                    self.topics_unsaved.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::error!(target: "kafkit::broker", error = %e, "saving topic list failed");
                topics.insert(name.to_owned(), topic);
                return Err(CreateTopicError::Storage.code());
            }
        }
        if self
            .topic_configs
            .lock()
            .expect("configs lock")
            .remove(name)
            .is_some()
        {
            let _ = self
                .config
                .storage
                .remove_file(&self.data_dir.join("topic-configs").join(name));
        }
        tracing::info!(target: "kafkit::broker", topic = name, "deleted topic");
        self.changed.notify_waiters();
        Ok(())
    }

    fn remove_topic_data(&self, topic: &TopicState) {
        for p in &topic.partitions {
            for r in &p.replicas {
                let dir = self.partition_dir(*r, &topic.name, p.index);
                if let Err(e) = self.config.storage.remove_dir_all(&dir) {
                    tracing::warn!(target: "kafkit::broker", dir = %dir.display(), error = %e, "removing partition data failed");
                }
            }
        }
    }

    /// Grows a topic to `count` partitions (CreatePartitions); `assignment`, if given, has
    /// the replicas of each new partition (INVALID_REPLICA_ASSIGNMENT unless there is one list
    /// per new partition, each of the topic's replication factor, of known, distinct brokers).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignment: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), i16> {
        let mut topics = self.topics.write().expect("topics lock");
        let Some(old) = topics.get(name).cloned() else {
            return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
        };
        let have = old.partitions.len() as i32;
        if count <= have || count > 100_000 {
            return Err(CreateTopicError::InvalidPartitions.code());
        }
        self.check_partition_budget(
            &topics,
            (count - have) as usize * old.replication_factor.max(1) as usize,
        )
        .map_err(CreateTopicError::code)?;
        if let Some(a) = assignment {
            let rf = old.replication_factor.max(1) as usize;
            if a.len() != (count - have) as usize || !self.valid_replica_lists(a, rf) {
                return Err(CreateTopicError::InvalidReplicaAssignment.code());
            }
        }
        // `build_partitions` takes lists indexed by partition from 0.
        let manual: Option<Vec<Vec<i32>>> = assignment.map(|a| {
            old.partitions
                .iter()
                .map(|p| p.replicas.clone())
                .chain(a.iter().cloned())
                .collect()
        });
        if validate_only {
            return Ok(());
        }
        let added = self.build_partitions(name, have..count, old.replication_factor, manual.as_deref()).map_err(|e| {
            tracing::error!(target: "kafkit::broker", topic = name, error = %e, "adding partitions failed");
            self.remove_partition_dirs(name, have..count);
            CreateTopicError::Storage.code()
        })?;
        let mut partitions = old.partitions.clone();
        partitions.extend(added);
        let grown = TopicState {
            name: old.name.clone(),
            id: old.id,
            replication_factor: old.replication_factor,
            partitions,
        };
        topics.insert(name.to_owned(), Arc::new(grown));
        if let Err(e) = self.save_topics(&topics) {
            tracing::error!(target: "kafkit::broker", error = %e, "saving topic list failed");
            topics.insert(name.to_owned(), old);
            self.remove_partition_dirs(name, have..count);
            return Err(CreateTopicError::Storage.code());
        }
        tracing::info!(target: "kafkit::broker", topic = name, from = have, to = count, "added partitions");
        Ok(())
    }

    /// Gets a topic, creating it with defaults when auto-creation is on and `allow` is set.
    pub fn topic_or_create(&self, name: &str, allow: bool) -> Result<Arc<TopicState>, i16> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if !(allow && self.config.auto_create_topics) {
            return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
        }
        let (partitions, rf) = match self.plan_topic(name, -1, -1) {
            Ok(plan) => plan,
            Err(CreateTopicError::AlreadyExists) => {
                return self.topic(name).ok_or(codes::UNKNOWN_TOPIC_OR_PARTITION);
            }
            Err(e) => return Err(e.code()),
        };
        if !self.limits.take_auto_create(partitions as u32) {
            tracing::debug!(target: "kafkit::broker", topic = name, "auto-creation budget spent; answering LEADER_NOT_AVAILABLE");
            return Err(CreateTopicError::Throttled.code());
        }
        match self.create_topic(name, partitions, rf) {
            Ok(t) => {
                // At info: a topic that reappears after a delete was asked for by name.
                tracing::info!(target: "kafkit::broker", topic = name, partitions, replication_factor = rf, "auto-created topic");
                Ok(t)
            }
            Err(CreateTopicError::AlreadyExists) => {
                self.topic(name).ok_or(codes::UNKNOWN_TOPIC_OR_PARTITION)
            }
            Err(e) => Err(e.code()),
        }
    }

    /// Replication factor used when none is given.
    pub fn default_replication_factor(&self) -> i16 {
        self.config
            .default_replication_factor
            .unwrap_or_else(|| self.brokers.len().min(3) as i16)
    }

    /// The broker coordinating a group (as Kafka: hash of the id over `__consumer_offsets`'s 50
    /// partitions, then that partition's leader: the first live broker from there).
    pub fn coordinator_for(&self, group: &str) -> &BrokerInfo {
        let p = ((java_string_hash(group) & 0x7fff_ffff) % 50) as usize;
        let n = self.brokers.len();
        (0..n)
            .map(|k| &self.brokers[(p + k) % n])
            .find(|b| self.is_alive(b.id))
            .unwrap_or(&self.brokers[p % n])
    }

    /// Whether a broker is up.
    pub fn is_alive(&self, id: i32) -> bool {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.alive.get(i))
            .is_some_and(|a| a.load(Ordering::Acquire))
    }

    /// Whether replication between two brokers is cut.
    pub fn is_cut(&self, a: i32, b: i32) -> bool {
        self.cut_links
            .lock()
            .expect("links lock")
            .contains(&(a.min(b), a.max(b)))
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<(String, Arc<PartitionState>)> {
        self.topics
            .read()
            .expect("topics lock")
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.clone())))
            .collect()
    }

    /// A broker by node id.
    pub fn broker(&self, id: i32) -> Option<&BrokerInfo> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// Flushes every log to stable storage.
    pub fn flush_all(&self) {
        if self.topics_unsaved.load(Ordering::Relaxed) {
            let topics = self.topics.read().expect("topics lock");
            match self.save_topics(&topics) {
                Ok(()) => self.topics_unsaved.store(false, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(target: "kafkit::broker", error = %e, "saving topic list failed again")
                }
            }
        }
        let mut failed = false;
        for t in self.topics.read().expect("topics lock").values() {
            for p in &t.partitions {
                // Take handles under the lock, sync without it: a produce request to this
                // partition must not wait for the disk.
                let mut work = Vec::new();
                for (replica, log) in p.lock().logs.iter_mut() {
                    if let Err(e) = log.save_pending() {
                        tracing::warn!(target: "kafkit::broker", path = %log.path().display(), error = %e, "saving log start offset failed");
                    }
                    match log.unsynced() {
                        Ok(handles) => work.push((*replica, handles)),
                        Err(e) => {
                            tracing::error!(target: "kafkit::broker", path = %log.path().display(), error = %e, "flush failed")
                        }
                    }
                }
                for (replica, (cuts, handles)) in work {
                    for (base, file, size) in handles {
                        let synced = file.sync();
                        let mut inner = p.lock();
                        let Some(log) = inner.logs.get_mut(&replica) else {
                            continue;
                        };
                        match synced {
                            Ok(()) => log.mark_synced(cuts, base, size),
                            Err(e) => {
                                // What the failed sync covered may never reach the disk: the
                                // replication pass takes this replica out of the ISR (moving
                                // leadership away from it) and has it copy that part again.
                                tracing::error!(target: "kafkit::broker", topic = %t.name, partition = p.index, replica, base, error = %e, "sync failed");
                                log.mark_sync_failed(&e);
                                failed = true;
                                break;
                            }
                        }
                    }
                }
            }
        }
        if failed {
            self.changed.notify_waiters();
        }
    }

    /// Issues a producer id never issued before by this data directory.
    pub fn allocate_producer_id(&self) -> std::io::Result<i64> {
        let mut next = self.next_producer_id.lock().expect("pid lock");
        let pid = *next;
        self.config.storage.write_atomic(
            &self.data_dir.join("producer_ids"),
            format!("{}\n", pid + 1).as_bytes(),
        )?;
        *next = pid + 1;
        Ok(pid)
    }

    /// Applies retention to every replica log.
    pub fn enforce_retention(&self) {
        let now = std::time::SystemTime::now();
        for (_, part) in self.all_partitions() {
            let mut inner = part.lock();
            for log in inner.logs.values_mut() {
                if let Err(e) = log.enforce_retention(now) {
                    tracing::error!(target: "kafkit::broker", path = %log.path().display(), error = %e, "retention failed");
                }
            }
        }
    }

    /// Drops every unsynced byte of every log, as a machine crash would.
    pub fn simulate_crash(&self) {
        for (_, part) in self.all_partitions() {
            let mut inner = part.lock();
            for log in inner.logs.values_mut() {
                if let Err(e) = log.simulate_crash() {
                    tracing::error!(target: "kafkit::broker", path = %log.path().display(), error = %e, "simulated crash failed");
                }
            }
        }
    }

    /// A fresh token for a waiting request.
    pub fn token(&self) -> Token {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }
}
