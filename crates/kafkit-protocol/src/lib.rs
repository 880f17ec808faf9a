//! Sans-io pieces of the Kafka wire protocol used by kafkit.
//!
//! This is the only kafkit crate that depends on [`kafka_protocol`] (generated message types for
//! every API and version). On top of it this crate adds what the generated code does not do:
//!
//! * [`frame`]: the 4-byte size-prefixed framing, with a hard size limit checked before allocating;
//! * [`codec`]: pairing a request with its response type, request/response header versions, and
//!   the broker-side decoding of any request;
//! * [`versions`]: version negotiation from an `ApiVersions` response;
//! * [`batch`]: a zero-copy view of v2 record batch headers (offset assignment, CRC validation,
//!   splitting a buffer into batches with a possibly truncated tail), and record encoding/decoding.
//! * [`validate`]: what a broker checks before it stores a produced batch (Kafka's
//!   `LogValidator`), and decompression under a cap.
//!
//! Nothing here does I/O or reads a clock.

pub mod batch;
pub mod codec;
pub mod codes;
pub mod error;
pub mod frame;
pub mod legacy;
pub mod produce;
pub mod sasl;
pub mod validate;
pub mod versions;

pub use error::{Corrupt, ProtocolError};
/// Re-export used for record headers.
pub use indexmap;
pub use kafka_protocol::error::ResponseError;
pub use kafka_protocol::{messages, protocol, records};

/// Shorthand for building a [`protocol::StrBytes`] from a string.
pub fn str_bytes(s: &str) -> protocol::StrBytes {
    protocol::StrBytes::from_string(s.to_owned())
}

/// Shorthand for building a [`messages::TopicName`] from a string.
pub fn topic_name(s: &str) -> messages::TopicName {
    messages::TopicName(str_bytes(s))
}
