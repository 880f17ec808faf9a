//! Shared state of the embedded cluster, in parts with narrow interfaces:
//!
//! - [`topics`]: the topic registry ([`Topics`]), partition state, and the topic lifecycle;
//! - [`configs`]: dynamic topic and broker configs ([`DynamicConfigs`]) and the settings they
//!   give;
//! - [`liveness`]: which brokers are up, which replication links are cut ([`Liveness`]);
//! - [`groups`]: the group coordinator's state machine and waiters ([`Groups`]); committed
//!   offsets are in their own store ([`OffsetStore`]), with their own locks;
//! - faults (`crate::faults`), limits (`crate::limits`), ACLs, SCRAM credentials and fetch
//!   sessions are their own types too.
//!
//! [`ClusterState`] holds one of each, the brokers and the static config. It depends on none
//! of the modules that drive it (`control`, `replication`, `server`, the handlers).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::group::offsets::OffsetStore;
use crate::group::{Coordinator, Token};
use crate::BrokerError;
use kafkit_protocol::codes;

pub mod configs;
pub mod groups;
pub mod liveness;
pub mod topics;

pub use configs::DynamicConfigs;
pub use groups::{Groups, Waiter};
pub use liveness::Liveness;
pub use topics::{
    PartitionGuard, PartitionInner, PartitionState, PartitionView, TopicState, Topics,
};

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

/// Everything the brokers of one cluster share.
#[derive(Debug)]
pub struct ClusterState {
    /// Settings.
    pub config: ClusterConfig,
    /// Data directory in use.
    pub data_dir: PathBuf,
    /// Brokers, by position.
    pub brokers: Vec<BrokerInfo>,
    /// Topics and their partitions.
    pub topics: Topics,
    /// Per-topic config overrides and dynamic broker configs (AlterConfigs), saved in
    /// `<data_dir>/topic-configs/<topic>` and `<data_dir>/broker-configs/<id|default>`.
    pub configs: DynamicConfigs,
    /// Which brokers are up; which replication links are cut.
    pub liveness: Liveness,
    /// Group coordination (never held across disk work).
    pub groups: Mutex<Groups>,
    /// Source of group waiter tokens.
    next_token: AtomicU64,
    /// Committed offsets, with their own locks (see `group::offsets`).
    pub offsets: Arc<OffsetStore>,
    /// Signalled after appends and high watermark moves (wakes fetches, acks=-1 waits and the
    /// replicator).
    pub changed: Notify,
    /// Injected faults.
    pub faults: Mutex<crate::faults::Faults>,
    /// Next idempotent producer id (persisted in `<data_dir>/producer_ids`).
    pub next_producer_id: Mutex<i64>,
    /// Run-time state of the resource limits.
    pub limits: crate::limits::Limits,
    /// The open segment files of every log.
    pub files: Arc<crate::log::OpenFiles>,
    /// Traffic capture, when `capture_dir` is set.
    pub capture: Option<crate::capture::Capture>,
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
            configs: DynamicConfigs::default(),
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
            topics: Topics::default(),
            changed: Notify::new(),
            liveness: Liveness::new(brokers.len()),
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
                    state.configs.put_broker(name, parse_config_lines(&data));
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
                        state.configs.put_topic(name, map);
                    }
                    let topic = state.build_topic(name, parts, rf, id, manual.as_deref(), true)?;
                    state
                        .topics
                        .write()
                        .insert(name.to_owned(), Arc::new(topic));
                }
            }
        }
        Ok(state)
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
        self.liveness.is_alive(id)
    }

    /// Whether replication between two brokers is cut.
    pub fn is_cut(&self, a: i32, b: i32) -> bool {
        self.liveness.is_cut(a, b)
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<(String, Arc<PartitionState>)> {
        self.topics.all_partitions()
    }

    /// A broker by node id.
    pub fn broker(&self, id: i32) -> Option<&BrokerInfo> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// Flushes every log to stable storage.
    pub fn flush_all(&self) {
        if self.topics.unsaved.load(Ordering::Relaxed) {
            let _change = self.topics.lifecycle();
            let topics = self.topics.snapshot();
            match self.save_topics(&topics) {
                Ok(()) => self.topics.unsaved.store(false, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(target: "kafkit::broker", error = %e, "saving topic list failed again")
                }
            }
        }
        let mut failed = false;
        for t in self.topics.all() {
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
