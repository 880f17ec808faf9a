//! The pre-KIP-98 formats that `kafka-protocol` 0.18 no longer has (it follows Kafka 4's
//! KIP-896 removal), written here by hand because old clients still send them and Kafka 3.9
//! still serves them:
//!
//! * message sets v0/v1 (magic 0 and 1), including compressed wrapper messages (gzip, snappy,
//!   and lz4 for magic 1);
//! * Produce v0-v2 requests and responses;
//! * Fetch v0-v3 requests and responses (records as message sets, down-converted by the broker);
//! * ListOffsets v0.
//!
//! All of these are non-flexible: fixed-width big-endian integers, INT16-length strings and
//! INT32-length bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::IEEE;

use crate::batch::{put_record_head, seal, BatchHeader};
use crate::validate::InvalidBatch;
use crate::{Corrupt, ProtocolError};

fn short(what: &str) -> ProtocolError {
    ProtocolError::Decode {
        what: "legacy message",
        api_key: -1,
        version: -1,
        message: format!("truncated {what}"),
    }
}

/// Bounds-checked reads over a request body.
pub struct Reader(pub Bytes);

impl Reader {
    fn need(&self, n: usize, what: &str) -> Result<(), ProtocolError> {
        if self.0.remaining() < n {
            Err(short(what))
        } else {
            Ok(())
        }
    }
    /// INT8.
    pub fn i8(&mut self) -> Result<i8, ProtocolError> {
        self.need(1, "int8")?;
        Ok(self.0.get_i8())
    }
    /// INT16.
    pub fn i16(&mut self) -> Result<i16, ProtocolError> {
        self.need(2, "int16")?;
        Ok(self.0.get_i16())
    }
    /// INT32.
    pub fn i32(&mut self) -> Result<i32, ProtocolError> {
        self.need(4, "int32")?;
        Ok(self.0.get_i32())
    }
    /// INT64.
    pub fn i64(&mut self) -> Result<i64, ProtocolError> {
        self.need(8, "int64")?;
        Ok(self.0.get_i64())
    }
    /// STRING (INT16 length, not null).
    pub fn string(&mut self) -> Result<String, ProtocolError> {
        let n = self.i16()?;
        if n < 0 {
            return Err(short("string (null where a string is required)"));
        }
        self.need(n as usize, "string")?;
        Ok(String::from_utf8_lossy(&self.0.split_to(n as usize)).into_owned())
    }
    /// NULLABLE_BYTES (INT32 length, -1 = null).
    pub fn bytes(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        self.need(n as usize, "bytes")?;
        Ok(Some(self.0.split_to(n as usize)))
    }
    /// ARRAY length (INT32), refusing lengths the remaining bytes cannot hold.
    pub fn array_len(&mut self, min_item: usize) -> Result<usize, ProtocolError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        if (n as usize).saturating_mul(min_item) > self.0.remaining() {
            return Err(short("array"));
        }
        Ok(n as usize)
    }
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_bytes(b: &mut BytesMut, v: Option<&Bytes>) {
    match v {
        Some(v) => {
            b.put_i32(v.len() as i32);
            b.put_slice(v);
        }
        None => b.put_i32(-1),
    }
}

/// One record of a legacy message set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyRecord {
    /// Offset (absolute once stored).
    pub offset: i64,
    /// Timestamp (magic 1), or -1.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
}

fn decompress(
    codec: i8,
    magic: i8,
    data: &[u8],
    budget: &mut usize,
) -> Result<Bytes, ProtocolError> {
    let supported = matches!((codec, magic), (1 | 2, _) | (3, 1));
    if !supported {
        return Err(InvalidBatch::UnsupportedCompression(codec as i16).into());
    }
    let out = crate::validate::decompress_capped(codec as i16, data, *budget)?;
    *budget -= out.len();
    Ok(out)
}

/// Decodes a message set (magic 0/1), unwrapping compressed messages. A truncated last message
/// is ignored, as consumers of message sets must do. Wrappers decompress to at most
/// [`crate::batch::DEFAULT_MAX_DECOMPRESSED`] bytes in all.
pub fn decode_message_set(data: &Bytes) -> Result<Vec<LegacyRecord>, ProtocolError> {
    let mut out = Vec::new();
    let mut budget = crate::batch::DEFAULT_MAX_DECOMPRESSED;
    decode_into(data.clone(), 0, &mut budget, &mut |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// Converts a message set (magic 0/1, compressed or not) into one uncompressed v2 record batch
/// (base offset 0, no producer id), as Kafka 3 stores records from old producers. Messages go
/// straight from the (decompressed) set into the batch, so memory is bounded by `max_decompressed`
/// (the most all wrappers may decompress to) plus the batch itself. Messages without a timestamp
/// (magic 0, or -1) get `now_ms`. An empty set is an error.
pub fn message_set_to_batch(
    data: &Bytes,
    max_decompressed: usize,
    now_ms: i64,
) -> Result<Bytes, ProtocolError> {
    let mut b = BytesMut::with_capacity(crate::batch::BATCH_HEADER_LEN + data.len());
    b.put_bytes(0, crate::batch::BATCH_HEADER_LEN);
    let mut count: i64 = 0;
    let (mut base_ts, mut max_ts) = (0i64, i64::MIN);
    let mut budget = max_decompressed;
    decode_into(data.clone(), 0, &mut budget, &mut |r| {
        let ts = if r.timestamp >= 0 {
            r.timestamp
        } else {
            now_ms
        };
        if count == 0 {
            base_ts = ts;
        }
        if count >= i32::MAX as i64 {
            return Err(ProtocolError::CorruptBatch(Corrupt::TooManyLegacyMessages));
        }
        max_ts = max_ts.max(ts);
        let value = r.value.as_deref();
        put_record_head(
            &mut b,
            ts - base_ts,
            count as i32,
            r.key.as_deref(),
            value.map(<[u8]>::len),
        );
        b.put_slice(value.unwrap_or_default());
        b.put_u8(0); // no headers
        count += 1;
        Ok(())
    })?;
    if count == 0 {
        return Err(ProtocolError::CorruptBatch(Corrupt::EmptyLegacySet));
    }
    BatchHeader::client(0, count as i32, base_ts, max_ts).write(&mut b);
    seal(&mut b);
    Ok(b.freeze())
}

/// The offset of the last complete message in a set, read from message headers only.
fn last_offset(mut data: &[u8]) -> Option<i64> {
    let mut last = None;
    while data.len() >= 12 {
        let offset = i64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
        let size = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        if size < 0 || data.len() - 12 < size as usize {
            break;
        }
        last = Some(offset);
        data = &data[12 + size as usize..];
    }
    last
}

fn decode_into(
    mut data: Bytes,
    depth: u8,
    budget: &mut usize,
    emit: &mut dyn FnMut(LegacyRecord) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    while data.remaining() >= 12 {
        let offset = data.get_i64();
        let size = data.get_i32();
        if size < 14 {
            return Err(ProtocolError::CorruptBatch(Corrupt::LegacySize(size)));
        }
        if data.remaining() < size as usize {
            break; // truncated tail
        }
        let message = data.split_to(size as usize);
        let stored_crc = u32::from_be_bytes(message[0..4].try_into().expect("4 bytes"));
        if IEEE.checksum(&message[4..]) != stored_crc {
            return Err(ProtocolError::CorruptBatch(Corrupt::LegacyCrc));
        }
        let mut r = Reader(message.slice(4..));
        let magic = r.i8()?;
        if !(0..=1).contains(&magic) {
            return Err(ProtocolError::CorruptBatch(Corrupt::LegacyMagic(magic)));
        }
        let attributes = r.i8()?;
        let timestamp = if magic == 1 { r.i64()? } else { -1 };
        let key = r.bytes()?;
        let value = r.bytes()?;
        let codec = attributes & 0x07;
        if codec == 0 {
            emit(LegacyRecord {
                offset,
                timestamp,
                key,
                value,
            })?;
            continue;
        }
        if depth > 0 {
            return Err(ProtocolError::CorruptBatch(
                Corrupt::NestedLegacyCompression,
            ));
        }
        let inner = decompress(codec, magic, value.as_deref().unwrap_or_default(), budget)?;
        if magic == 1 {
            // Inner offsets are relative; the wrapper carries the last one's absolute offset.
            let shift = offset - last_offset(&inner).unwrap_or(0);
            decode_into(inner, depth + 1, budget, &mut |mut rec| {
                rec.offset += shift;
                if rec.timestamp < 0 {
                    rec.timestamp = timestamp;
                }
                emit(rec)
            })?;
        } else {
            decode_into(inner, depth + 1, budget, emit)?;
        }
    }
    Ok(())
}

/// Encodes records as an uncompressed message set of `magic` 0 or 1.
pub fn encode_message_set(records: &[LegacyRecord], magic: i8) -> Bytes {
    let mut b = BytesMut::new();
    for rec in records {
        put_message(&mut b, rec, magic, 0);
    }
    b.freeze()
}

/// Appends one message (offset, size, CRC, then magic, `attributes`, timestamp for magic 1,
/// key, value). A compressed wrapper is a message whose attributes name the codec and whose
/// value is the compressed inner message set (with magic 1, its offset is the last inner one's).
pub fn put_message(b: &mut BytesMut, rec: &LegacyRecord, magic: i8, attributes: i8) {
    let mut m = BytesMut::new();
    m.put_i8(magic);
    m.put_i8(attributes);
    if magic == 1 {
        m.put_i64(rec.timestamp);
    }
    put_bytes(&mut m, rec.key.as_ref());
    put_bytes(&mut m, rec.value.as_ref());
    b.put_i64(rec.offset);
    b.put_i32(4 + m.len() as i32);
    b.put_u32(IEEE.checksum(&m));
    b.put_slice(&m);
}

/// Produce v0-v2 request body.
#[derive(Debug, Clone)]
pub struct ProduceRequest {
    /// Required acks.
    pub acks: i16,
    /// Broker-side timeout.
    pub timeout_ms: i32,
    /// Topic → (partition, message set).
    pub topics: Vec<(String, Vec<(i32, Bytes)>)>,
}

/// Decodes a Produce v0-v2 body (the same layout in all three).
pub fn decode_produce_request(body: Bytes) -> Result<ProduceRequest, ProtocolError> {
    let mut r = Reader(body);
    let acks = r.i16()?;
    let timeout_ms = r.i32()?;
    let mut topics = Vec::new();
    for _ in 0..r.array_len(6)? {
        let name = r.string()?;
        let mut parts = Vec::new();
        for _ in 0..r.array_len(8)? {
            let p = r.i32()?;
            parts.push((p, r.bytes()?.unwrap_or_default()));
        }
        topics.push((name, parts));
    }
    Ok(ProduceRequest {
        acks,
        timeout_ms,
        topics,
    })
}

/// Encodes a Produce v0-v2 body (the inverse of [`decode_produce_request`]; for tests and
/// tools that speak as an old client).
pub fn encode_produce_request(req: &ProduceRequest) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(req.acks);
    b.put_i32(req.timeout_ms);
    b.put_i32(req.topics.len() as i32);
    for (topic, parts) in &req.topics {
        put_str(&mut b, topic);
        b.put_i32(parts.len() as i32);
        for (p, set) in parts {
            b.put_i32(*p);
            put_bytes(&mut b, Some(set));
        }
    }
    b
}

/// One partition of a Produce v0-v2 response.
#[derive(Debug, Clone, Copy)]
pub struct ProducePartition {
    /// Partition.
    pub partition: i32,
    /// Error code.
    pub error_code: i16,
    /// Offset of the first appended record.
    pub base_offset: i64,
}

/// Encodes a Produce v0-v2 response body.
pub fn encode_produce_response(
    version: i16,
    topics: &[(String, Vec<ProducePartition>)],
) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i32(topics.len() as i32);
    for (name, parts) in topics {
        put_str(&mut b, name);
        b.put_i32(parts.len() as i32);
        for p in parts {
            b.put_i32(p.partition);
            b.put_i16(p.error_code);
            b.put_i64(p.base_offset);
            if version >= 2 {
                b.put_i64(-1); // log_append_time: CreateTime
            }
        }
    }
    if version >= 1 {
        b.put_i32(0); // throttle_time_ms
    }
    b
}

/// Per topic: (partition, offset or timestamp, byte or count limit).
pub type TopicPartitions = Vec<(String, Vec<(i32, i64, i32)>)>;

/// ListOffsets v0 answer per topic: (partition, error code, offsets).
pub type ListedOffsets = Vec<(String, Vec<(i32, i16, Vec<i64>)>)>;

/// Fetch v0-v3 request body.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// -1 for consumers.
    pub replica_id: i32,
    /// Longest wait.
    pub max_wait_ms: i32,
    /// Bytes to wait for.
    pub min_bytes: i32,
    /// Response limit (v3; i32::MAX before).
    pub max_bytes: i32,
    /// Topic → (partition, fetch offset, partition max bytes).
    pub topics: TopicPartitions,
}

/// Decodes a Fetch v0-v3 body.
pub fn decode_fetch_request(version: i16, body: Bytes) -> Result<FetchRequest, ProtocolError> {
    let mut r = Reader(body);
    let replica_id = r.i32()?;
    let max_wait_ms = r.i32()?;
    let min_bytes = r.i32()?;
    let max_bytes = if version >= 3 { r.i32()? } else { i32::MAX };
    let mut topics = Vec::new();
    for _ in 0..r.array_len(6)? {
        let name = r.string()?;
        let mut parts = Vec::new();
        for _ in 0..r.array_len(16)? {
            parts.push((r.i32()?, r.i64()?, r.i32()?));
        }
        topics.push((name, parts));
    }
    Ok(FetchRequest {
        replica_id,
        max_wait_ms,
        min_bytes,
        max_bytes,
        topics,
    })
}

/// One partition of a Fetch v0-v3 response.
#[derive(Debug, Clone)]
pub struct FetchPartition {
    /// Partition.
    pub partition: i32,
    /// Error code.
    pub error_code: i16,
    /// High watermark.
    pub high_watermark: i64,
    /// Message set.
    pub records: Bytes,
}

/// Encodes a Fetch v0-v3 response body.
pub fn encode_fetch_response(version: i16, topics: &[(String, Vec<FetchPartition>)]) -> BytesMut {
    let mut b = BytesMut::new();
    if version >= 1 {
        b.put_i32(0); // throttle_time_ms
    }
    b.put_i32(topics.len() as i32);
    for (name, parts) in topics {
        put_str(&mut b, name);
        b.put_i32(parts.len() as i32);
        for p in parts {
            b.put_i32(p.partition);
            b.put_i16(p.error_code);
            b.put_i64(p.high_watermark);
            b.put_i32(p.records.len() as i32);
            b.put_slice(&p.records);
        }
    }
    b
}

/// ListOffsets v0 request body: topic → (partition, timestamp, max number of offsets).
pub fn decode_list_offsets_v0(body: Bytes) -> Result<TopicPartitions, ProtocolError> {
    let mut r = Reader(body);
    let _replica_id = r.i32()?;
    let mut topics = Vec::new();
    for _ in 0..r.array_len(6)? {
        let name = r.string()?;
        let mut parts = Vec::new();
        for _ in 0..r.array_len(16)? {
            parts.push((r.i32()?, r.i64()?, r.i32()?));
        }
        topics.push((name, parts));
    }
    Ok(topics)
}

/// Encodes a ListOffsets v0 response body: topic → (partition, error, offsets).
pub fn encode_list_offsets_v0(topics: &ListedOffsets) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i32(topics.len() as i32);
    for (name, parts) in topics {
        put_str(&mut b, name);
        b.put_i32(parts.len() as i32);
        for (p, code, offsets) in parts {
            b.put_i32(*p);
            b.put_i16(*code);
            b.put_i32(offsets.len() as i32);
            for o in offsets {
                b.put_i64(*o);
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(o: i64, v: &str) -> LegacyRecord {
        LegacyRecord {
            offset: o,
            timestamp: 1_600_000_000_000,
            key: Some(Bytes::from(format!("k{o}"))),
            value: Some(Bytes::from(v.to_owned())),
        }
    }

    #[test]
    fn message_sets_roundtrip_both_magics() {
        let recs = vec![rec(5, "a"), rec(6, "bb"), rec(7, "ccc")];
        for magic in [0, 1] {
            let set = encode_message_set(&recs, magic);
            let back = decode_message_set(&set).unwrap();
            assert_eq!(back.len(), 3);
            assert_eq!(back[2].value, recs[2].value);
            assert_eq!(back[1].offset, 6);
            assert_eq!(
                back[0].timestamp,
                if magic == 1 { recs[0].timestamp } else { -1 }
            );
            // truncated tail ignored, corrupt crc refused
            assert_eq!(
                decode_message_set(&set.slice(..set.len() - 2))
                    .unwrap()
                    .len(),
                2
            );
            let mut bad = set.to_vec();
            bad[20] ^= 1;
            assert!(decode_message_set(&Bytes::from(bad)).is_err());
        }
    }

    /// A magic-1 gzip wrapper around two messages with relative inner offsets, laid out as the
    /// Java client and kafka-python write it (built here, not captured).
    #[test]
    fn gzip_wrapper_from_a_capture() {
        use std::io::Write;
        let inner = encode_message_set(
            &[
                LegacyRecord {
                    offset: 0,
                    ..rec(0, "x")
                },
                LegacyRecord {
                    offset: 1,
                    ..rec(1, "y")
                },
            ],
            1,
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&inner).unwrap();
        let compressed = Bytes::from(gz.finish().unwrap());
        let mut set = BytesMut::new();
        // wrapper offset = last inner offset
        put_message(
            &mut set,
            &LegacyRecord {
                offset: 1,
                timestamp: 1_600_000_000_000,
                key: None,
                value: Some(compressed),
            },
            1,
            1,
        );
        let back = decode_message_set(&set.freeze()).unwrap();
        assert_eq!(
            back.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(back[1].value.as_deref(), Some(&b"y"[..]));
    }

    #[test]
    fn message_sets_become_valid_v2_batches() {
        let recs = vec![
            rec(5, "a"),
            LegacyRecord {
                timestamp: -1,
                key: None,
                ..rec(6, "bb")
            },
        ];
        for magic in [0, 1] {
            let set = encode_message_set(&recs, magic);
            let batch = message_set_to_batch(&set, 1 << 20, 1_700_000_000_000).unwrap();
            let h = crate::validate::validate_batch(&batch, 1 << 20).unwrap();
            assert_eq!((h.record_count, h.last_offset_delta), (2, 1));
            let back = crate::batch::decode_records(&batch).unwrap();
            assert_eq!(back[0].value.as_deref(), Some(&b"a"[..]));
            assert_eq!(back[1].key, None);
            assert_eq!(back[1].timestamp, 1_700_000_000_000);
            let ts0 = if magic == 1 {
                1_600_000_000_000
            } else {
                1_700_000_000_000
            };
            assert_eq!(back[0].timestamp, ts0);
        }
        assert!(message_set_to_batch(&Bytes::new(), 1 << 20, 0).is_err());
    }

    /// Issue 11: 4 M tiny messages in one 252 KB gzip wrapper took the broker to 1 GB. The
    /// decompressed bytes are capped, and nothing is kept per message.
    #[test]
    fn a_gzip_bomb_of_tiny_messages_is_capped() {
        use std::io::Write;
        let one = encode_message_set(
            &[LegacyRecord {
                offset: 0,
                timestamp: 1,
                key: None,
                value: None,
            }],
            1,
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for _ in 0..200_000 {
            gz.write_all(&one).unwrap();
        }
        let compressed = Bytes::from(gz.finish().unwrap());
        let mut set = BytesMut::new();
        put_message(
            &mut set,
            &LegacyRecord {
                offset: 199_999,
                timestamp: 1,
                key: None,
                value: Some(compressed),
            },
            1,
            1,
        );
        let set = set.freeze();
        let err = message_set_to_batch(&set, 1 << 20, 0).unwrap_err();
        assert!(
            err.to_string().contains("decompresses to more than"),
            "{err}"
        );
        let batch = message_set_to_batch(&set, 64 << 20, 0).unwrap();
        assert_eq!(
            crate::batch::BatchHeader::parse(&batch)
                .unwrap()
                .record_count,
            200_000
        );
    }

    #[test]
    fn produce_and_fetch_bodies() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(1000);
        b.put_i32(1);
        put_str(&mut b, "t");
        b.put_i32(1);
        b.put_i32(0);
        let set = encode_message_set(&[rec(0, "v")], 1);
        put_bytes(&mut b, Some(&set));
        let req = decode_produce_request(b.freeze()).unwrap();
        assert_eq!(
            (
                req.acks,
                req.timeout_ms,
                req.topics[0].0.as_str(),
                req.topics[0].1[0].0
            ),
            (1, 1000, "t", 0)
        );
        // a lying array length is an error, not an allocation
        let mut evil = BytesMut::new();
        evil.put_i16(1);
        evil.put_i32(1);
        evil.put_i32(i32::MAX);
        assert!(decode_produce_request(evil.freeze()).is_err());
        let resp = encode_produce_response(
            2,
            &[(
                "t".into(),
                vec![ProducePartition {
                    partition: 0,
                    error_code: 0,
                    base_offset: 7,
                }],
            )],
        );
        assert_eq!(resp.len(), 4 + 2 + 1 + 4 + 4 + 2 + 8 + 8 + 4);
        let mut f = BytesMut::new();
        f.put_i32(-1);
        f.put_i32(100);
        f.put_i32(1);
        f.put_i32(1 << 20);
        f.put_i32(1);
        put_str(&mut f, "t");
        f.put_i32(1);
        f.put_i32(0);
        f.put_i64(42);
        f.put_i32(1024);
        let fr = decode_fetch_request(3, f.freeze()).unwrap();
        assert_eq!((fr.max_bytes, fr.topics[0].1[0]), (1 << 20, (0, 42, 1024)));
    }
}
