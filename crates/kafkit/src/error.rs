//! Errors of the client.

use std::time::Duration;

/// A Kafka protocol error code with its name and whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaCode(pub i16);

impl KafkaCode {
    fn known(self) -> Option<kafkit_protocol::ResponseError> {
        kafkit_protocol::ResponseError::try_from_code(self.0)
    }

    /// Whether the request may succeed if retried (Kafka's `RetriableException`).
    pub fn is_retriable(self) -> bool {
        self.known().is_some_and(|e| e.is_retriable())
    }

    /// Kafka's name for the code, e.g. `NotLeaderOrFollower`.
    pub fn name(self) -> String {
        match self.known() {
            Some(e) => format!("{e:?}"),
            None => format!("UnknownErrorCode({})", self.0),
        }
    }
}

impl std::fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Every error the client returns.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration field is invalid.
    #[error("invalid config: {field}: {reason}")]
    Config {
        /// The field, as named in the config struct.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Could not connect to a broker.
    #[error("cannot connect to broker {addr}: {reason}")]
    Connect {
        /// Broker address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// A broker's answer lacks what the request asked for (e.g. no entry for the group or
    /// partition asked about): a broker bug or an incompatible broker, not a Kafka error code.
    #[error("unexpected response: {0}")]
    UnexpectedResponse(String),
    /// The TLS handshake with a broker failed (certificate, name, or not a TLS listener). Not
    /// retried: the same settings fail the same way.
    #[error("TLS with broker {addr} failed: {reason}")]
    Tls {
        /// Broker address.
        addr: String,
        /// The rustls error, with a hint where one helps.
        reason: String,
    },
    /// None of the bootstrap brokers could be reached.
    #[error("no broker reachable (tried {tried}): {last}")]
    NoBrokerReachable {
        /// Addresses tried.
        tried: String,
        /// Last error.
        last: String,
    },
    /// The connection to a broker broke.
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost {
        /// Broker address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// The broker answered with an error code.
    #[error("{code} from broker for {context}")]
    Kafka {
        /// The code.
        code: KafkaCode,
        /// Topic/partition/group it applies to.
        context: String,
    },
    /// Encoding or decoding failed.
    #[error("protocol error: {0}")]
    Protocol(#[from] kafkit_protocol::ProtocolError),
    /// Broker and client share no version of an API.
    #[error("broker {addr} supports no version of api {api_key} that this client speaks")]
    UnsupportedApi {
        /// Broker address.
        addr: String,
        /// API key.
        api_key: i16,
    },
    /// The writer or reader was closed.
    #[error("closed")]
    Closed,
    /// A message was larger than the limits.
    #[error("message of {size} bytes is larger than batch_bytes ({limit})")]
    MessageTooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Some messages of a write failed; each entry lists the indexes (in the write) of messages
    /// that failed with the same error.
    #[error("{} of {total} messages failed; first: {}", .failed.iter().map(|(i, _)| i.len()).sum::<usize>(), .failed.first().map(|(_, e)| e.to_string()).unwrap_or_default())]
    WriteFailed {
        /// Number of messages in the write.
        total: usize,
        /// Failed messages: indexes and their error.
        failed: Vec<(Vec<usize>, std::sync::Arc<Error>)>,
    },
}

impl Error {
    /// Whether retrying the operation may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => code.is_retriable(),
            Error::ConnectionLost { .. }
            | Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::NoBrokerReachable { .. } => true,
            _ => false,
        }
    }

    /// The Kafka error code, if the broker sent one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(code.0),
            _ => None,
        }
    }

    pub(crate) fn kafka(code: i16, context: impl Into<String>) -> Self {
        Error::Kafka {
            code: KafkaCode(code),
            context: context.into(),
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            field,
            reason: reason.into(),
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
