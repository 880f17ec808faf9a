//! Client-side response decoding (a hostile or broken broker must not abort the application):
//! input = api key (i16), version (i16), then a response frame after the size prefix.
#![no_main]

use bytes::Bytes;
use kafkit_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafkit_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let key = i16::from_be_bytes([data[0], data[1]]);
    let version = i16::from_be_bytes([data[2], data[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return;
    };
    let r = api.valid_versions();
    if version < r.min || version > r.max {
        return;
    }
    let mut frame = Bytes::copy_from_slice(&data[4..]);
    if ResponseHeader::decode(&mut frame, api.response_header_version(version)).is_ok() {
        let _ = ResponseKind::decode(api, &mut frame, version);
    }
});
