//! An embedded, durable, Kafka-compatible cluster: several brokers in one process, each with its
//! own TCP listener, speaking the Kafka wire protocol to any client.
//!
//! Moving parts, in the order a request meets them:
//! 1. [`server`]: accept loop per broker, one task per connection, TLS and SASL ([`auth`]),
//!    framing, version checks, resource limits ([`limits`]);
//! 2. `handler`: one file per Kafka API; KIP-227 fetch sessions in [`fetch_session`];
//! 3. [`state`]: what the brokers share, in parts — the topic registry and partitions
//!    (leader, ISR, logs), dynamic configs, broker liveness, the group coordinator's waiters —
//!    configured by [`config`];
//! 4. [`log`]: partition logs on [`storage`] (the real disk, or a fault-injecting one) with
//!    CRC-checked recovery; [`replication`] copies them to followers;
//! 5. [`group`]: the consumer group state machine (sans-io) and the committed-offsets store.
//!
//! Also: [`control`] (take brokers down, move leaders, inject errors; the table it fills is
//! [`faults`]), [`acl`] (ACLs, stored), [`scram`] (SCRAM credentials), [`topic_config`]
//! (topic and broker configs), [`capture`] (request/response samples for the fuzzers).
//!
//! ```no_run
//! # async fn f() -> Result<(), kafkit_broker::BrokerError> {
//! let cluster = kafkit_broker::Cluster::builder().brokers(3).start().await?;
//! cluster.create_topic("message-log", 3)?;
//! // point any Kafka client at cluster.bootstrap()
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Concurrency rule
//! No blocking file I/O on the runtime's worker threads, and no lock that other requests need
//! held across it: a slow disk must delay only the requests that wait for that disk.
//! - Produce appends (with the followers' copies) and Fetch reads run on blocking threads
//!   under the partition's lock only (Fetch v0-v3 goes through Fetch v4's path).
//! - OffsetCommit writes and fsyncs the offsets log on a blocking thread under the offsets
//!   file's own lock, never the group coordinator's; DeleteGroups and OffsetDelete decide
//!   under the coordinator's lock and write their tombstones after releasing it.
//! - Admin requests that touch the disk run on blocking threads (`handler::on_disk`):
//!   CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords, AlterConfigs (both),
//!   Create/DeleteAcls, AlterUserScramCredentials, InitProducerId, DeleteGroups,
//!   OffsetDelete, ListOffsets, and Metadata when it may auto-create a topic.
//! - Topic changes do their disk work (directories, logs, the saved topic list) on a copy of
//!   the topic map under the topics' own change lock, then publish it with a short write
//!   lock: Metadata, Produce and Fetch never wait for a topic being made or removed.
//! - The replication pass (followers' catch-up copies) runs on a blocking thread.
//!
//! - A partition's lock is held across its own appends and reads (on blocking threads); code
//!   on runtime threads reads the partition's view instead (leader, epoch, ISR, high
//!   watermark, brought up to date whenever the lock is released: Metadata, acks=-1 waits)
//!   or only tries the lock (the fetch long-poll). OffsetForLeaderEpoch and legacy
//!   ListOffsets v0 run on blocking threads.
//!
//! `crates/kafkit/tests/slow_disk.rs` shows it: with appends, fsyncs and small-file writes
//! made 1.5 s slow, Metadata (of the slow topic too), Produce, Fetch and Heartbeat elsewhere
//! answer in milliseconds; each of its assertions fails without the change behind it.
//!
//! Partitions are replicated ([`replication`]): acks=-1 waits for the ISR, consumers read up
//! to the high watermark, and [`control`] takes brokers down and up, moves leaders and injects
//! errors. Legacy message formats (Produce v0-v2, Fetch v0-v3) are converted to and from v2
//! batches. Resource limits and request validation: [`limits`], docs/LIMITS.md.

pub mod acl;
pub mod auth;
mod blocking;
pub mod capture;
mod cluster;
pub mod config;
pub mod control;
mod error;
pub mod faults;
pub mod fetch_session;
pub mod group;
mod handler;
pub mod limits;
pub mod log;
pub mod replication;
pub mod scram;
pub mod server;
pub mod state;
pub mod storage;
pub mod topic_config;

pub use cluster::{Cluster, ClusterBuilder};
pub use control::Control;
pub use error::BrokerError;
pub use state::ClusterConfig;
