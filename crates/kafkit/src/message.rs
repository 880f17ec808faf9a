//! The message type shared by Writer and Reader.

use std::time::SystemTime;

use bytes::Bytes;

/// A record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Header value.
    pub value: Option<Bytes>,
}

/// A Kafka message, as written by [`crate::Writer`] and read by [`crate::Reader`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Topic (filled in by the reader; the writer uses its configured topic).
    pub topic: String,
    /// Partition (filled in by the reader and, after a write, chosen by the balancer).
    pub partition: i32,
    /// Offset (filled in by the reader).
    pub offset: i64,
    /// Key; decides the partition with the default balancer.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
    /// Timestamp; `None` when writing means "now".
    pub time: Option<SystemTime>,
}

impl Message {
    /// A message with a key and a value.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key: Some(key.into()),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// A message with only a value.
    pub fn value(value: impl Into<Bytes>) -> Self {
        Self {
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Bytes of key, value and headers.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>()
    }
}
