//! Writer and reader settings. Every field has a documented default and unit; `validate` names
//! the offending field in its error.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::writer::balancer::Balancer;

/// How many acknowledgements a write waits for (the tutorial's `RequiredAcks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequiredAcks {
    /// 0: fire and forget; no response is awaited.
    None,
    /// 1: the partition leader has appended the records.
    One,
    /// -1: every in-sync replica has the records. The default.
    #[default]
    All,
}

impl RequiredAcks {
    /// Wire value.
    pub fn as_i16(self) -> i16 {
        match self {
            RequiredAcks::None => 0,
            RequiredAcks::One => 1,
            RequiredAcks::All => -1,
        }
    }

    /// From the wire value (0, 1, -1).
    pub fn from_i16(v: i16) -> Result<Self> {
        match v {
            0 => Ok(RequiredAcks::None),
            1 => Ok(RequiredAcks::One),
            -1 => Ok(RequiredAcks::All),
            other => Err(Error::config(
                "required_acks",
                format!("{other} is not one of 0, 1, -1"),
            )),
        }
    }
}

/// Compression codec for written batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression. The default.
    #[default]
    None,
    /// gzip (deflate).
    Gzip,
    /// Snappy (xerial framing, as Kafka clients write it).
    Snappy,
    /// LZ4 frame.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl std::str::FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            other => {
                return Err(Error::config(
                    "compression",
                    format!("{other:?} is not one of none, gzip, snappy, lz4, zstd"),
                ))
            }
        })
    }
}

/// Settings of a [`crate::Writer`].
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Bootstrap brokers, `host:port`. Required.
    pub brokers: Vec<String>,
    /// Topic written to. Required.
    pub topic: String,
    /// Partition choice. Default: [`Balancer::Murmur2`] (Java-compatible for keyed messages).
    pub balancer: Balancer,
    /// Most messages in one batch per partition. Default 100 (as kafka-go).
    pub batch_size: usize,
    /// Most bytes in one batch per partition. Default 1 MiB (as kafka-go's `BatchBytes`).
    pub batch_bytes: usize,
    /// Longest time a batch waits to fill before it is sent (linger). Default 1 s (as kafka-go).
    /// A synchronous [`crate::Writer::write_messages`] never waits for it: the caller is blocked,
    /// so nothing more can come from it, and its batch is sent at once (see the writer docs).
    pub batch_timeout: Duration,
    /// Acknowledgements to wait for. Default [`RequiredAcks::All`].
    pub required_acks: RequiredAcks,
    /// Attempts per batch before a retriable error is returned. Default 10.
    pub max_attempts: u32,
    /// First retry backoff, doubled per attempt up to `retry_backoff_max`. Default 100 ms.
    pub retry_backoff: Duration,
    /// Longest retry backoff. Default 1 s.
    pub retry_backoff_max: Duration,
    /// Most bytes buffered in the writer, queued or in flight (key + value + headers plus about
    /// 180 bytes of bookkeeping per message); writes wait for room instead of growing memory
    /// without bound. Default 16 MiB: enough to keep 5 requests of 1 MiB in flight to each
    /// of a few brokers (more does not add throughput); a 10-million-record run stays under
    /// 50 MB resident (docs/BENCHMARKS.md).
    pub buffer_memory: usize,
    /// Limit for one produce request (also sent as the broker-side timeout). Default 10 s.
    pub write_timeout: Duration,
    /// Limit for connecting to a broker. Default 10 s.
    pub dial_timeout: Duration,
    /// TLS and SASL (Kafka's `security.protocol`, `ssl.*`, `sasl.*`). Default PLAINTEXT.
    pub security: crate::security::SecurityConfig,
    /// Client id sent to brokers. Default "kafkit".
    pub client_id: String,
    /// Ask brokers to create the topic if it does not exist. Default true.
    pub allow_auto_topic_creation: bool,
    /// Compression of batches. Default none.
    pub compression: Compression,
    /// Idempotent writes: the brokers drop batches a retry sends twice, so retries never
    /// duplicate or reorder records. Default true; it applies only with
    /// `required_acks: All` (as the Java client turns it off when acks is set otherwise).
    pub idempotent: bool,
    /// Compression level: gzip 0-9, lz4 0-16, zstd 1-22; `None` uses the codec's default (gzip
    /// 6, lz4 4, zstd 3). Snappy has no levels. Default `None`.
    pub compression_level: Option<i32>,
    /// Most produce requests awaiting an answer per broker, and per partition (Kafka's
    /// `max.in.flight.requests.per.connection`). Several in flight hide the round trip when one
    /// partition takes a lot of data. With idempotence at most 5 (as Kafka), and order is kept
    /// across retries; without idempotence a retried batch can land after a later one, as in
    /// every Kafka client — set 1 to rule that out. Default 5.
    pub max_in_flight: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            brokers: Vec::new(),
            topic: String::new(),
            balancer: Balancer::default(),
            batch_size: 100,
            batch_bytes: 1024 * 1024,
            batch_timeout: Duration::from_secs(1),
            required_acks: RequiredAcks::All,
            max_attempts: 10,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            buffer_memory: 16 * 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            dial_timeout: Duration::from_secs(10),
            security: Default::default(),
            client_id: "kafkit".into(),
            allow_auto_topic_creation: true,
            compression: Compression::None,
            idempotent: true,
            compression_level: None,
            max_in_flight: 5,
        }
    }
}

pub(crate) fn validate_brokers(brokers: &[String]) -> Result<()> {
    if brokers.is_empty() {
        return Err(Error::config(
            "brokers",
            "at least one broker address is required",
        ));
    }
    for b in brokers {
        let ok = b
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(Error::config("brokers", format!("{b:?} is not host:port")));
        }
    }
    Ok(())
}

pub(crate) fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(Error::config("topic", "must not be empty"));
    }
    if topic.len() > 249
        || !topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(Error::config(
            "topic",
            format!("{topic:?} is not a legal topic name ([a-zA-Z0-9._-], at most 249)"),
        ));
    }
    Ok(())
}

impl WriterConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        validate_brokers(&self.brokers)?;
        validate_topic(&self.topic)?;
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        if self.batch_bytes < 64 {
            return Err(Error::config("batch_bytes", "must be at least 64 bytes"));
        }
        if self.buffer_memory < self.batch_bytes.min(1024 * 1024)
            || self.buffer_memory > u32::MAX as usize
        {
            return Err(Error::config(
                "buffer_memory",
                "must hold at least one batch (min(batch_bytes, 1 MiB)) and be below 4 GiB",
            ));
        }
        if self.retry_backoff_max < self.retry_backoff {
            return Err(Error::config(
                "retry_backoff_max",
                "must not be below retry_backoff",
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::config("max_attempts", "must be at least 1"));
        }
        let idempotent = self.idempotent && self.required_acks == RequiredAcks::All;
        if self.max_in_flight == 0 || (idempotent && self.max_in_flight > 5) {
            return Err(Error::config(
                "max_in_flight",
                "must be at least 1, and at most 5 with idempotence (brokers remember 5 batches per producer)",
            ));
        }
        if let Some(level) = self.compression_level {
            let range = match self.compression {
                Compression::Gzip => 0..=9,
                Compression::Lz4 => 0..=16,
                Compression::Zstd => 1..=22,
                Compression::None | Compression::Snappy => {
                    return Err(Error::config(
                        "compression_level",
                        format!("{:?} has no levels", self.compression),
                    ))
                }
            };
            if !range.contains(&level) {
                return Err(Error::config(
                    "compression_level",
                    format!(
                        "{level} is outside {}..={} for {:?}",
                        range.start(),
                        range.end(),
                        self.compression
                    ),
                ));
            }
        }
        if self.write_timeout.is_zero() {
            return Err(Error::config("write_timeout", "must be positive"));
        }
        if self.dial_timeout.is_zero() {
            return Err(Error::config("dial_timeout", "must be positive"));
        }
        self.security.validate()
    }
}

/// Where a reader starts when its group has no committed offset (the tutorial's `StartOffset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartOffset {
    /// The earliest offset still in the log. The default (as kafka-go's `FirstOffset`).
    #[default]
    First,
    /// Only messages written after the reader joined.
    Last,
    /// The first message with a timestamp at or after this time (ListOffsets by time); the end
    /// of the log when every message is older.
    Timestamp(std::time::SystemTime),
}

/// An assignor a group may use; members list them in preference order and the group picks one
/// every member supports. Names and results match the Java client's assignors, so kafkit
/// readers share groups with Java, librdkafka and kafka-python consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBalancer {
    /// "range": per topic, consecutive partitions per member (Java's `RangeAssignor`).
    Range,
    /// "roundrobin": all partitions dealt out in turn (Java's `RoundRobinAssignor`).
    RoundRobin,
    /// "cooperative-sticky": incremental rebalancing (KIP-429). Members keep their partitions
    /// across rebalances where they can, and partitions that keep their owner are fetched
    /// without pause while the group rebalances.
    CooperativeSticky,
}

impl GroupBalancer {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            GroupBalancer::Range => "range",
            GroupBalancer::RoundRobin => "roundrobin",
            GroupBalancer::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The balancer with this protocol name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Range, Self::RoundRobin, Self::CooperativeSticky]
            .into_iter()
            .find(|b| b.name() == name)
    }
}

/// Which records a reader sees (Fetch's isolation level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark. The default (as kafka-go and the Java client).
    #[default]
    ReadUncommitted,
    /// Only up to the last stable offset: records of open or aborted transactions are not
    /// returned (brokers without transactions treat both the same).
    ReadCommitted,
}

/// What a reader does when its position is no longer in the log (OFFSET_OUT_OF_RANGE: deleted
/// by retention, or ahead of the log after an unclean leader change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetOutOfRange {
    /// Continue from the earliest offset still in the log. The default.
    #[default]
    Earliest,
    /// Continue from the end of the log.
    Latest,
    /// Stop fetching that partition and return [`crate::Error::Kafka`] (code 1) from the next
    /// read.
    Error,
}

/// Settings of a [`crate::Reader`].
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// Bootstrap brokers, `host:port`. Required.
    pub brokers: Vec<String>,
    /// Topic read from. Required unless `group_topics` is set.
    pub topic: String,
    /// Several topics for one group member (kafka-go's `GroupTopics`); needs `group_id`, and
    /// `topic` must then be empty. Messages carry their topic. Default empty.
    pub group_topics: Vec<String>,
    /// Consumer group. `None` reads `partition` without a group.
    pub group_id: Option<String>,
    /// Partition read when there is no group. Default 0.
    pub partition: i32,
    /// The broker answers a fetch once this many bytes are available. Default 1 byte.
    pub min_bytes: usize,
    /// Most bytes per fetch response. Default 1 MB (1e6, as the tutorial).
    pub max_bytes: usize,
    /// Longest a fetch waits for `min_bytes`. Default 10 s (as kafka-go).
    pub max_wait: Duration,
    /// Where to start without a committed offset. Default [`StartOffset::First`].
    pub start_offset: StartOffset,
    /// Most messages fetched ahead of the application, per reader. Default 100,000.
    pub queue_capacity: usize,
    /// Most bytes per partition in a fetch response, and most bytes of one partition waiting
    /// for the application before it is left out of fetches (Kafka's
    /// `max.partition.fetch.bytes`). Default 1 MiB.
    pub max_partition_bytes: usize,
    /// Most bytes of fetched records waiting for the application, over all partitions
    /// (payload plus each message's own overhead): memory is bounded by this, not by the
    /// partition count; each partition may hold its share (at least `max_partition_bytes`).
    /// librdkafka's `queued.max.messages.kbytes` plays this part. Default 16 MiB.
    pub max_buffered_bytes: usize,
    /// Heartbeat period. Default 3 s.
    pub heartbeat_interval: Duration,
    /// The coordinator drops a member it has not heard from for this long. Default 30 s.
    pub session_timeout: Duration,
    /// Longest a rebalance waits for members to rejoin. Default 30 s.
    pub rebalance_timeout: Duration,
    /// Limit for connecting to a broker. Default 10 s.
    pub dial_timeout: Duration,
    /// TLS and SASL (Kafka's `security.protocol`, `ssl.*`, `sasl.*`). Default PLAINTEXT.
    pub security: crate::security::SecurityConfig,
    /// Client id sent to brokers. Default "kafkit".
    pub client_id: String,
    /// How `read_message` commits: zero (the default) commits the previous message
    /// synchronously when the next one is asked for; a positive interval only marks it, and
    /// marked offsets are committed in the background every interval, at rebalances and on
    /// close (fewer requests, a larger window of redelivery after a crash).
    pub commit_interval: Duration,
    /// Assignors this reader supports, in preference order. Default `[Range]`.
    pub group_balancers: Vec<GroupBalancer>,
    /// Static membership (KIP-345): a stable id for this group member across restarts. A
    /// restarted member with the same id gets its partitions back without a rebalance if it
    /// returns within `session_timeout`; `close` does not leave the group. Default `None`.
    pub group_instance_id: Option<String>,
    /// Which records fetches return. Default [`IsolationLevel::ReadUncommitted`].
    pub isolation_level: IsolationLevel,
    /// What to do when the position is out of range. Default [`OffsetOutOfRange::Earliest`].
    pub offset_out_of_range: OffsetOutOfRange,
    /// Rebalance when the topic's partition count changes (checked every
    /// `partition_watch_interval`). Default true.
    pub watch_partition_changes: bool,
    /// How often to check the partition count. Default 5 s (as kafka-go).
    pub partition_watch_interval: Duration,
    /// Told about assigned, revoked and lost partitions of a group member, and awaited, so an
    /// application that commits by hand can commit before its partitions move
    /// ([`crate::reader::RebalanceListener`]). Default `None`.
    pub rebalance_listener: Option<crate::reader::Listener>,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            brokers: Vec::new(),
            topic: String::new(),
            group_topics: Vec::new(),
            group_id: None,
            partition: 0,
            min_bytes: 1,
            max_bytes: 1_000_000,
            max_wait: Duration::from_secs(10),
            start_offset: StartOffset::First,
            queue_capacity: 100_000,
            max_partition_bytes: 1 << 20,
            max_buffered_bytes: 16 << 20,
            heartbeat_interval: Duration::from_secs(3),
            session_timeout: Duration::from_secs(30),
            rebalance_timeout: Duration::from_secs(30),
            dial_timeout: Duration::from_secs(10),
            security: Default::default(),
            client_id: "kafkit".into(),
            commit_interval: Duration::ZERO,
            group_balancers: vec![GroupBalancer::Range],
            group_instance_id: None,
            isolation_level: IsolationLevel::ReadUncommitted,
            offset_out_of_range: OffsetOutOfRange::Earliest,
            watch_partition_changes: true,
            partition_watch_interval: Duration::from_secs(5),
            rebalance_listener: None,
        }
    }
}

impl ReaderConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        validate_brokers(&self.brokers)?;
        if self.group_topics.is_empty() {
            validate_topic(&self.topic)?;
        } else {
            if self.group_id.is_none() {
                return Err(Error::config(
                    "group_topics",
                    "several topics need a group_id (without a group, read one partition of `topic`)",
                ));
            }
            if !self.topic.is_empty() {
                return Err(Error::config(
                    "group_topics",
                    "set either topic or group_topics, not both",
                ));
            }
            for t in &self.group_topics {
                validate_topic(t)?;
            }
            let mut sorted = self.group_topics.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != self.group_topics.len() {
                return Err(Error::config("group_topics", "lists a topic twice"));
            }
        }
        if self.group_id.as_deref() == Some("") {
            return Err(Error::config(
                "group_id",
                "must not be empty (use None for no group)",
            ));
        }
        if self.min_bytes > self.max_bytes {
            return Err(Error::config(
                "min_bytes",
                format!("{} is above max_bytes ({})", self.min_bytes, self.max_bytes),
            ));
        }
        if self.max_bytes == 0 || self.max_bytes > i32::MAX as usize {
            return Err(Error::config("max_bytes", "must be between 1 and 2^31-1"));
        }
        if self.max_wait.as_millis() > i32::MAX as u128 {
            return Err(Error::config("max_wait", "too large"));
        }
        if self.max_partition_bytes == 0 || self.max_partition_bytes > i32::MAX as usize {
            return Err(Error::config(
                "max_partition_bytes",
                "must be between 1 and 2^31-1",
            ));
        }
        if self.max_buffered_bytes == 0 {
            return Err(Error::config("max_buffered_bytes", "must be at least 1"));
        }
        if self.queue_capacity == 0 {
            return Err(Error::config("queue_capacity", "must be at least 1"));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.session_timeout {
            return Err(Error::config(
                "heartbeat_interval",
                "must be positive and below session_timeout",
            ));
        }
        if self.partition < 0 {
            return Err(Error::config("partition", "must not be negative"));
        }
        if self.group_balancers.is_empty() {
            return Err(Error::config(
                "group_balancers",
                "must list at least one assignor",
            ));
        }
        if self.group_instance_id.as_deref() == Some("") {
            return Err(Error::config(
                "group_instance_id",
                "must not be empty (use None for dynamic membership)",
            ));
        }
        if self.watch_partition_changes && self.partition_watch_interval.is_zero() {
            return Err(Error::config(
                "partition_watch_interval",
                "must be positive when watch_partition_changes is on",
            ));
        }
        if self.dial_timeout.is_zero() {
            return Err(Error::config("dial_timeout", "must be positive"));
        }
        self.security.validate()
    }
}
