//! Shared by the decoding targets: inputs start with an api key and a version (INT16 each).

use kafkit_protocol::messages::ApiKey;

/// `(api key, version, rest)`, or `None` for inputs shorter than four bytes.
pub fn split(data: &[u8]) -> Option<(i16, i16, &[u8])> {
    let (head, rest) = data.split_at_checked(4)?;
    let key = i16::from_be_bytes([head[0], head[1]]);
    let version = i16::from_be_bytes([head[2], head[3]]);
    Some((key, version, rest))
}

/// The API, if kafka-protocol knows the key and the version is in its range.
pub fn known(key: i16, version: i16) -> Option<ApiKey> {
    let api = ApiKey::try_from(key).ok()?;
    let r = api.valid_versions();
    (version >= r.min && version <= r.max).then_some(api)
}
