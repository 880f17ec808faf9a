//! The embedded cluster's settings ([`ClusterConfig`]), apart from the state they configure so
//! every module can read them without depending on `state`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// Incremental fetch sessions (KIP-227) each broker keeps (Kafka's
    /// `max.incremental.fetch.session.cache.slots`; default 1,000). Beyond it, the least
    /// recently used session idle for 2 minutes is evicted, or the fetch is served without one.
    pub max_fetch_sessions: usize,
    /// Most connections served at once per broker (Kafka's `max.connections`; default 1024).
    /// Connections beyond it are accepted and closed at once, with a log line.
    pub max_connections: usize,
    /// Most connections per client address, per broker (Kafka's `max.connections.per.ip`;
    /// default unlimited, as in Kafka). Beyond it: accepted and closed at once, with a log
    /// line.
    pub max_connections_per_ip: usize,
    /// Replication factor of auto-created topics and of `-1` in CreateTopics (default: 3, or
    /// the number of brokers if fewer).
    pub default_replication_factor: Option<i16>,
    /// acks=-1 writes fail with NOT_ENOUGH_REPLICAS when fewer replicas are in sync (Kafka's
    /// `min.insync.replicas`, default 1).
    pub min_insync_replicas: usize,
    /// A follower that has not caught up for this long leaves the ISR (Kafka's
    /// `replica.lag.time.max.ms`; default 10 s).
    pub replica_lag_time_max: Duration,
    /// Segments, retention and sync policy of partition logs.
    pub log: crate::log::LogConfig,
    /// A connection that has sent nothing for this long is closed (Kafka's
    /// `connections.max.idle.ms`, default 10 minutes).
    pub connections_max_idle: Duration,
    /// A request whose first bytes arrived must be complete within this time, or its
    /// connection is closed (kafkit's own; default 30 s). Stops half-sent frames from holding
    /// memory and a connection slot.
    pub request_read_timeout: Duration,
    /// Bytes of requests being read or served at once, per broker (Kafka's
    /// `queued.max.request.bytes`; default 200 MiB, twice the largest frame). Readers of
    /// further frames wait (the broker stops reading their sockets) until bytes are freed.
    pub queued_max_request_bytes: usize,
    /// Most bytes one compressed batch (or legacy message set) may decompress to (kafkit's
    /// own; Kafka has none; default 64 MiB). Beyond it Produce answers MESSAGE_TOO_LARGE.
    pub max_decompressed_batch_bytes: usize,
    /// Decompressions running at once on blocking threads (default 2).
    pub max_concurrent_decompressions: usize,
    /// Partitions auto-creation may create per second, across the cluster (a token bucket; the
    /// rate of Kafka's KIP-599 controller mutation quota; default 1,000). Topics over the
    /// budget are answered LEADER_NOT_AVAILABLE (retriable) and created on a later request.
    pub auto_create_partitions_per_sec: u32,
    /// Most partition replicas the cluster holds (KIP-578's `max.partitions`, never merged
    /// into Kafka; default 10,000). Bounds the memory and directories partitions take.
    /// CreateTopics/CreatePartitions beyond it answer POLICY_VIOLATION.
    pub max_partitions: usize,
    /// Most segment files open at once across all logs of the cluster (kafkit's own; Kafka
    /// keeps every segment open; default 1,000). The least recently used is closed to open
    /// another, so descriptors do not grow with partitions.
    pub max_open_files: usize,
    /// Capture a few requests and responses of each API key and version into this directory
    /// (see [`crate::capture`]; default off).
    pub capture_dir: Option<PathBuf>,
    /// Where everything is stored (default: the real filesystem; tests use
    /// [`crate::storage::FaultyStorage`] to inject a full disk and failing writes).
    pub storage: Arc<dyn crate::storage::Storage>,
    /// The listeners' security: TLS, SASL users and mechanisms (default PLAINTEXT).
    pub security: crate::auth::Security,
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
            max_fetch_sessions: 1000,
            max_connections: 1024,
            max_connections_per_ip: usize::MAX,
            default_replication_factor: None,
            min_insync_replicas: 1,
            replica_lag_time_max: Duration::from_secs(10),
            log: crate::log::LogConfig::default(),
            connections_max_idle: crate::limits::DEFAULT_CONNECTIONS_MAX_IDLE,
            request_read_timeout: Duration::from_secs(30),
            queued_max_request_bytes: 2 * kafkit_protocol::frame::DEFAULT_MAX_FRAME,
            max_decompressed_batch_bytes: kafkit_protocol::batch::DEFAULT_MAX_DECOMPRESSED,
            max_concurrent_decompressions: 2,
            auto_create_partitions_per_sec: 1_000,
            max_partitions: 10_000,
            max_open_files: crate::log::DEFAULT_MAX_OPEN_FILES,
            capture_dir: None,
            storage: crate::storage::disk(),
            security: crate::auth::Security::default(),
        }
    }
}
