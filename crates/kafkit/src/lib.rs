//! kafkit: a pure-Rust Kafka client.
//!
//! * [`Writer`] writes messages to a topic: a balancer picks the partition (Java-compatible
//!   murmur2 of the key by default), per-partition sender tasks batch and send Produce requests,
//!   retrying retriable errors after refreshing metadata.
//! * [`Reader`] reads a topic as a member of a consumer group (join, sync, heartbeat, commit,
//!   leave) or one partition without a group, with bounded prefetch.
//!
//! Underneath: `conn` (one pipelined connection per broker with version negotiation) and
//! `cluster` (metadata cache, leaders, coordinators). Only the Kafka wire protocol is used, so
//! both work against Apache Kafka, Redpanda, librdkafka's mock cluster and the embedded
//! `kafkit-broker`.
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
