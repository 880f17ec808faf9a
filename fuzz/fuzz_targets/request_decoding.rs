//! Broker-side request decoding: input = api key (i16), version (i16), then a request frame
//! body after the header. Every API key and version kafka-protocol knows (the broker serves a
//! subset), plus the hand-written legacy decoders (Produce v0-v2, Fetch v0-v3, ListOffsets v0).
//! Any panic or abort is a bug: a count or length read off the wire must be checked first.
#![no_main]

#[path = "common.rs"]
mod common;

use bytes::Bytes;
use kafkit_protocol::{codec, legacy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((key, version, rest)) = common::split(data) else {
        return;
    };
    let body = Bytes::copy_from_slice(rest);
    let _ = codec::peek_request(&body);
    match (key, version) {
        (0, 0..=2) => drop(legacy::decode_produce_request(body.clone())),
        (1, 0..=3) => drop(legacy::decode_fetch_request(version, body.clone())),
        (2, 0) => drop(legacy::decode_list_offsets_v0(body.clone())),
        _ => {}
    }
    if let Some(api) = common::known(key, version) {
        let _ = codec::decode_request(body, api, version);
    }
});
