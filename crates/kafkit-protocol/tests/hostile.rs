//! Counts and lengths a peer sends are checked against the bytes that remain before anything is
//! reserved (see vendor/kafka-protocol/KAFKIT_PATCH.md). Without that check every test here
//! aborts the test process (`memory allocation of ... bytes failed`) instead of failing.

use bytes::{BufMut, Bytes, BytesMut};
use kafkit_protocol::codec;
use kafkit_protocol::messages::{ApiKey, RequestKind, ResponseKind};

/// The counts a hostile peer would send: INT32 2^31-1 and the largest UNSIGNED_VARINT.
const HUGE_INT32: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];
const HUGE_VARINT: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

/// Bodies of zeros (empty strings, empty arrays, zero ints) with a huge count at each position:
/// one of them lands on every array count of every message that starts with fixed fields.
fn hostile_bodies() -> Vec<Bytes> {
    let mut out = Vec::new();
    for prefix in 0..48 {
        for huge in [&HUGE_INT32[..], &HUGE_VARINT[..]] {
            let mut b = BytesMut::new();
            b.put_bytes(0, prefix);
            b.put_slice(huge);
            b.put_bytes(0, 16);
            out.push(b.freeze());
        }
    }
    out
}

#[test]
fn every_request_decoder_refuses_counts_larger_than_the_frame() {
    let bodies = hostile_bodies();
    let mut refused = 0;
    for key in ApiKey::iter() {
        let range = key.valid_versions();
        for version in range.min..=range.max {
            for body in &bodies {
                if RequestKind::decode(key, &mut body.clone(), version).is_err() {
                    refused += 1;
                }
            }
        }
    }
    // Most fail (the count does not fit); the point is that none aborted.
    assert!(refused > 0);
}

#[test]
fn every_response_decoder_refuses_counts_larger_than_the_frame() {
    let bodies = hostile_bodies();
    for key in ApiKey::iter() {
        let range = key.valid_versions();
        for version in range.min..=range.max {
            for body in &bodies {
                let _ = ResponseKind::decode(key, &mut body.clone(), version);
            }
        }
    }
}

/// The 18-byte request from issue 11: Metadata v1 whose topic array claims 2^31-1 topics.
#[test]
fn the_eighteen_byte_metadata_request_is_an_error() {
    let mut frame = BytesMut::new();
    frame.put_i16(3); // Metadata
    frame.put_i16(1);
    frame.put_i32(7); // correlation id
    frame.put_i16(-1); // null client id
    frame.put_slice(&HUGE_INT32);
    assert_eq!(frame.len() + 4, 18);
    let err = codec::decode_request(frame.freeze(), ApiKey::Metadata, 1).unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");

    // v12: flexible header (tagged fields) and a compact array count.
    let mut frame = BytesMut::new();
    frame.put_i16(3);
    frame.put_i16(12);
    frame.put_i32(7);
    frame.put_i16(-1);
    frame.put_u8(0); // header tagged fields
    frame.put_slice(&HUGE_VARINT);
    assert!(codec::decode_request(frame.freeze(), ApiKey::Metadata, 12).is_err());
}

/// A v2 record batch whose header claims 2^31-1 records (and a record claiming 2^31-1 headers)
/// decodes to an error.
#[test]
fn record_counts_are_not_trusted() {
    use kafkit_protocol::batch::{encode_records, new_record, seal};
    use kafkit_protocol::records::{Compression, RecordBatchDecoder};
    let good = encode_records(
        &[new_record(0, 1, None, Some(Bytes::from_static(b"v")))],
        Compression::None,
    )
    .unwrap();
    let mut bad = good.to_vec();
    bad[57..61].copy_from_slice(&HUGE_INT32);
    seal(&mut bad);
    assert!(RecordBatchDecoder::decode(&mut Bytes::from(bad)).is_err());

    // The record's header count is its last varint (0 here): make it 2^30.
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    assert_eq!(bad[last], 0);
    bad[last] = 0x80;
    bad.extend_from_slice(&[0x80, 0x80, 0x80, 0x08]);
    bad[61] += 8; // record length varint (zigzag): 4 more bytes
    seal(&mut bad);
    assert!(RecordBatchDecoder::decode(&mut Bytes::from(bad)).is_err());
}

/// What the `request_decoding` fuzz target found in seconds when built against unpatched
/// kafka-protocol (`memory allocation of 111568091616 bytes failed`): a Fetch v8 whose topic
/// count is 0x45454545 (the input is fuzz/regressions/request_decoding/fetch-v8-unpatched-abort).
#[test]
fn fuzzer_found_fetch_v8_count() {
    let bytes: &[u8] =
        include_bytes!("../../../fuzz/regressions/request_decoding/fetch-v8-unpatched-abort");
    assert_eq!(bytes.len(), 110);
    let body = bytes::Bytes::copy_from_slice(&bytes[4..]);
    assert!(codec::decode_request(body, ApiKey::Fetch, 8).is_err());
}
