//! kafkit: a pure-Rust Kafka client.
//!
//! * [`Writer`] ([`writer`]) writes messages to a topic: a balancer picks the partition
//!   (Java-compatible murmur2 of the key by default); each partition's batching, in-flight
//!   order, retries and sequence numbers are a state machine without I/O
//!   (`writer::accumulator`), driven by a tokio task per partition, and a request builder per
//!   broker merges partitions into Produce requests.
//! * [`Reader`] ([`reader`]) reads a topic as a member of a consumer group (join, sync,
//!   heartbeat, commit, leave: `reader::membership` is the sans-io state machine) or one
//!   partition without a group, with one fetch loop per broker and bounded prefetch.
//! * [`Admin`] ([`admin`]): topics, groups, offsets, configs, ACLs, SCRAM users.
//!
//! Underneath: [`conn`] (one pipelined connection per broker with version negotiation, TLS
//! and SASL from [`security`]), [`cluster`] (metadata cache, leaders, coordinators),
//! [`config`] (every knob, validated; errors name the field), [`error`] (Kafka codes by name,
//! the client's own failures as their own variants), [`message`]. Only the Kafka wire
//! protocol is used, so all of it works against Apache Kafka, Redpanda, librdkafka's mock
//! cluster and the embedded `kafkit-broker`.
//!
//! Logging goes through `tracing` with targets `kafkit::writer` and `kafkit::reader`.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod error;
pub mod message;
pub mod reader;
pub mod security;
pub mod writer;

pub use admin::{Admin, GroupDescription, GroupListing, GroupMember, GroupOffset, PartitionInfo};
pub use config::{
    Compression, GroupBalancer, IsolationLevel, OffsetOutOfRange, ReaderConfig, RequiredAcks,
    StartOffset, WriterConfig,
};
pub use error::{Error, KafkaCode, Result};
pub use message::{Header, Message};
pub use reader::{Reader, ReaderStats, Rebalance, RebalanceListener};
pub use security::{Sasl, SecurityConfig, SecurityProtocol, TlsConfig};
pub use writer::balancer::Balancer;
pub use writer::{Delivery, Writer, WriterStats};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
