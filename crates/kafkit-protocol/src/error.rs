//! Codec errors.

/// An error while framing, encoding or decoding Kafka protocol data.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame announced a size above the configured maximum (or a negative size).
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced size.
        size: i64,
        /// Configured limit.
        max: usize,
    },
    /// The API key is not one this codec knows.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The version is outside what the message type supports.
    #[error("api key {api_key} does not support version {version}")]
    UnsupportedVersion {
        /// API key.
        api_key: i16,
        /// Requested version.
        version: i16,
    },
    /// Bytes could not be decoded as the expected message.
    #[error("could not decode {what} (api key {api_key}, v{version}): {message}")]
    Decode {
        /// What was being decoded (request header, response body, ...).
        what: &'static str,
        /// API key.
        api_key: i16,
        /// API version.
        version: i16,
        /// Details from the decoder.
        message: String,
    },
    /// A message could not be encoded at the chosen version.
    #[error("could not encode {what} (api key {api_key}, v{version}): {message}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// API key.
        api_key: i16,
        /// API version.
        version: i16,
        /// Details from the encoder.
        message: String,
    },
    /// A batch (or legacy message set) a broker must refuse; says which Kafka error.
    #[error(transparent)]
    InvalidBatch(#[from] crate::validate::InvalidBatch),
    /// A record batch is malformed (bad length, magic, or CRC).
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
}
