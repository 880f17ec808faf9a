//! What a broker refuses before storing a produced batch (issue 11's "batches that lie"), and
//! compression bombs. Each lying batch has a valid CRC: only validation can catch it.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use kafkit_protocol::batch::{
    encode_records, new_record, put_record_head, seal, BatchHeader, CODECS,
};
use kafkit_protocol::records::Compression;
use kafkit_protocol::validate::{validate_batch, InvalidBatch};
use kafkit_protocol::ResponseError;

const CAP: usize = 1 << 20;

fn good(n: i64, c: Compression) -> Vec<u8> {
    let recs: Vec<_> = (0..n)
        .map(|i| {
            new_record(
                i,
                1_700_000_000_000 + i,
                None,
                Some(Bytes::from(format!("value {i}"))),
            )
        })
        .collect();
    encode_records(&recs, c).unwrap().to_vec()
}

fn recrc(b: &mut [u8]) {
    seal(b);
}

fn set_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    recrc(b);
}

fn code(b: &[u8]) -> ResponseError {
    validate_batch(b, CAP).unwrap_err().code()
}

#[test]
fn good_batches_pass_for_every_codec() {
    for c in CODECS {
        let b = good(50, c);
        let h = validate_batch(&b, CAP).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert_eq!(h.record_count, 50);
    }
}

#[test]
fn count_1000_with_one_record() {
    let mut b = good(1, Compression::None);
    set_i32(&mut b, 57, 1000);
    assert_eq!(
        code(&b),
        ResponseError::InvalidRecord,
        "last offset delta 0 vs 1000 records"
    );
    set_i32(&mut b, 23, 999);
    assert_eq!(
        code(&b),
        ResponseError::CorruptMessage,
        "999 records missing"
    );
}

#[test]
fn record_length_1000_for_10_bytes() {
    let mut b = good(1, Compression::None);
    b[61] = 0xd0; // zigzag varint 1000 = 0xd0 0x0f
    b.insert(62, 0x0f);
    recrc(&mut b);
    assert_eq!(code(&b), ResponseError::CorruptMessage);
    // And a length shorter than the fields.
    let mut b = good(1, Compression::None);
    b[61] -= 2;
    recrc(&mut b);
    assert_eq!(code(&b), ResponseError::CorruptMessage);
}

#[test]
fn garbage_records() {
    let mut b = good(3, Compression::None);
    for x in &mut b[61..] {
        *x = 0xff;
    }
    recrc(&mut b);
    assert_eq!(code(&b), ResponseError::CorruptMessage);
}

#[test]
fn count_zero_with_one_record() {
    let mut b = good(1, Compression::None);
    set_i32(&mut b, 57, 0);
    assert_eq!(code(&b), ResponseError::InvalidRecord);
}

#[test]
fn last_offset_delta_2_31_with_one_record() {
    let mut b = good(1, Compression::None);
    set_i32(&mut b, 23, i32::MAX);
    assert_eq!(code(&b), ResponseError::InvalidRecord);
}

#[test]
fn semantic_checks() {
    // base offset must be 0
    let mut b = good(2, Compression::None);
    b[0..8].copy_from_slice(&5i64.to_be_bytes());
    assert_eq!(code(&b), ResponseError::InvalidRecord);
    // control batches are the broker's
    let mut b = good(2, Compression::None);
    b[22] |= 0x20;
    recrc(&mut b);
    assert_eq!(code(&b), ResponseError::InvalidRecord);
    // a producer id with a negative sequence
    let mut b = good(2, Compression::None);
    b[43..51].copy_from_slice(&7i64.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    recrc(&mut b);
    assert_eq!(code(&b), ResponseError::InvalidRecord);
    // unknown codec
    let mut b = good(2, Compression::None);
    b[22] |= 0x06;
    b[22] |= 0x01;
    recrc(&mut b);
    assert_eq!(code(&b), ResponseError::UnsupportedCompressionType);
    // bytes after the last record
    let mut b = good(2, Compression::None);
    b.push(0);
    recrc(&mut b);
    assert_eq!(code(&b), ResponseError::CorruptMessage);
    // offset deltas out of order: swap record 0's delta (0) for 1
    let mut b = good(2, Compression::None);
    let h = BatchHeader::parse(&b).unwrap();
    assert_eq!(h.record_count, 2);
    // record 0: len, attrs, ts delta (0 => one byte), offset delta at 61+3
    assert_eq!(b[64], 0);
    b[64] = 2; // zigzag 1
    recrc(&mut b);
    assert_eq!(code(&b), ResponseError::InvalidRecord);
}

/// The uncompressed records of one record whose value is `value_len` zeros: a varint prefix,
/// then zeros — everything a bomb needs.
fn bomb_prefix(value_len: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    put_record_head(&mut b, 0, 0, None, Some(value_len as usize));
    b.to_vec()
}

/// A batch around `payload` with codec `c` and one record.
fn batch_with(c: i16, payload: &[u8]) -> Vec<u8> {
    let mut b = good(1, Compression::None)[..61].to_vec();
    b[21..23].copy_from_slice(&c.to_be_bytes());
    b.extend_from_slice(payload);
    recrc(&mut b);
    b
}

/// 1 GiB of zeros as 1,024 concatenated gzip members of 1 MiB each (about 1 MB in all).
pub fn gzip_bomb(total: u64) -> Vec<u8> {
    let mib = vec![0u8; 1 << 20];
    let member = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut first = bomb_prefix(total);
    first.extend_from_slice(&mib[first.len()..]);
    let mut out = member(&first);
    let zeros = member(&mib);
    for _ in 1..total >> 20 {
        out.extend_from_slice(&zeros);
    }
    out
}

#[test]
fn gzip_and_zstd_bombs_stop_at_the_cap() {
    let gz = gzip_bomb(1 << 30);
    assert!(gz.len() < 1_200_000, "{}", gz.len());
    let b = batch_with(1, &gz);
    let t = std::time::Instant::now();
    let err = validate_batch(&b, 8 << 20).unwrap_err();
    assert_eq!(err, InvalidBatch::TooLarge { limit: 8 << 20 });
    assert_eq!(err.code(), ResponseError::MessageTooLarge);
    assert!(
        t.elapsed().as_secs() < 5,
        "stopped at the cap, {:?}",
        t.elapsed()
    );

    let mut first = bomb_prefix(1 << 30);
    first.resize(1 << 20, 0);
    let mut z = zstd::encode_all(&first[..], 19).unwrap();
    let zeros = zstd::encode_all(&vec![0u8; 1 << 20][..], 19).unwrap();
    for _ in 1..1024 {
        z.extend_from_slice(&zeros);
    }
    assert!(z.len() < 100_000, "{}", z.len());
    let err = validate_batch(&batch_with(4, &z), 8 << 20).unwrap_err();
    assert_eq!(err.code(), ResponseError::MessageTooLarge);

    // The same records, small enough: accepted.
    let small = {
        let mut p = bomb_prefix(1000);
        p.resize(p.len() + 1001, 0);
        p.pop();
        p.push(0); // headers count (the last zero)
        p
    };
    for (codec, data) in [
        (1i16, {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&small).unwrap();
            e.finish().unwrap()
        }),
        (4, zstd::encode_all(&small[..], 3).unwrap()),
    ] {
        validate_batch(&batch_with(codec, &data), 8 << 20)
            .unwrap_or_else(|e| panic!("codec {codec}: {e}"));
    }
}

#[test]
fn snappy_lengths_are_checked_before_allocating() {
    // A raw snappy block announcing 4 GiB (varint 0xffffffff) in 6 bytes.
    let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    assert_eq!(code(&batch_with(2, &bomb)), ResponseError::CorruptMessage);
    let mut framed = BytesMut::new();
    framed.put_slice(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
    framed.put_u32(bomb.len() as u32);
    framed.put_slice(&bomb);
    assert_eq!(code(&batch_with(2, &framed)), ResponseError::CorruptMessage);
}

/// Every truncation and every single-byte change of good batches: never a panic.
#[test]
fn mutations_never_panic() {
    for c in CODECS {
        let b = good(5, c);
        for cut in 0..b.len() {
            let _ = validate_batch(&b[..cut], CAP);
        }
        for i in 0..b.len() {
            for x in [0x00, 0x7f, 0x80, 0xff] {
                let mut m = b.clone();
                m[i] = x;
                recrc(&mut m);
                let _ = validate_batch(&m, CAP);
                let _ = kafkit_protocol::batch::decode_records(&Bytes::from(m));
            }
        }
    }
}
