//! Client-side response decoding (a hostile or broken broker must not abort the application):
//! input = api key (i16), version (i16), then a response frame after the size prefix.
#![no_main]

#[path = "common.rs"]
mod common;

use bytes::Bytes;
use kafkit_protocol::messages::{ResponseHeader, ResponseKind};
use kafkit_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((key, version, rest)) = common::split(data) else {
        return;
    };
    let Some(api) = common::known(key, version) else {
        return;
    };
    let mut frame = Bytes::copy_from_slice(rest);
    if ResponseHeader::decode(&mut frame, api.response_header_version(version)).is_ok() {
        let _ = ResponseKind::decode(api, &mut frame, version);
    }
});
