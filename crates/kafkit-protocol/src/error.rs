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
    /// A record batch (or legacy message set) is malformed: which way, as [`Corrupt`].
    #[error("corrupt record batch: {0}")]
    CorruptBatch(Corrupt),
    /// Records could not be encoded (the `kafka-protocol` encoder's message).
    #[error("encoding records: {0}")]
    EncodeRecords(String),
}

/// How a record batch or a legacy message set is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corrupt {
    /// Fewer bytes than a v2 batch header.
    #[error("{len} bytes is shorter than a batch header")]
    ShortHeader {
        /// Bytes present.
        len: usize,
    },
    /// A batch's magic byte is not 2.
    #[error("message format v{0} is not supported (only v2 record batches)")]
    Magic(i8),
    /// `batchLength` smaller than the header it must cover.
    #[error("batch length {0} is too small")]
    Length(i32),
    /// A negative record count or last offset delta.
    #[error("negative record count")]
    NegativeCount,
    /// The batch's stated size differs from the bytes given.
    #[error("batch says {stated} bytes but {present} are present")]
    SizeMismatch {
        /// `batchLength` + log overhead.
        stated: usize,
        /// Bytes given.
        present: usize,
    },
    /// The CRC-32C does not match.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// In the header.
        stored: u32,
        /// Over the bytes.
        computed: u32,
    },
    /// The `kafka-protocol` record decoder refused the batch (its message, for people).
    #[error("{0}")]
    Records(String),
    /// A legacy message set with more messages than a batch can number.
    #[error("too many legacy messages")]
    TooManyLegacyMessages,
    /// A legacy message set without a message.
    #[error("empty legacy message set")]
    EmptyLegacySet,
    /// A legacy message's size field is below the smallest message.
    #[error("legacy message size {0}")]
    LegacySize(i32),
    /// A legacy message's CRC-32 does not match.
    #[error("legacy message crc mismatch")]
    LegacyCrc,
    /// A legacy message's magic is neither 0 nor 1.
    #[error("legacy message magic {0}")]
    LegacyMagic(i8),
    /// A compressed legacy message inside a compressed one.
    #[error("nested compressed legacy messages")]
    NestedLegacyCompression,
}
