//! Broker errors.

/// An error starting or running the embedded cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// File system or socket error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A setting or the data directory is unusable.
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// The answer to one item of a request: `Err((Kafka error code, message))`.
pub type Outcome<T = ()> = Result<T, (i16, String)>;
