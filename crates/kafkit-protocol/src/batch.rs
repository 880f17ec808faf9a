//! Record batches (message format v2).
//!
//! A broker must assign offsets, check CRCs and split fetched data into batches without
//! decompressing records; `kafka_protocol::records` only decodes whole batches into records, so
//! the fixed 61-byte v2 batch header is read here by hand:
//!
//! ```text
//! 0  baseOffset i64        | 23 lastOffsetDelta i32 | 51 producerEpoch i16
//! 8  batchLength i32       | 27 baseTimestamp i64   | 53 baseSequence i32
//! 12 partitionLeaderEpoch  | 35 maxTimestamp i64    | 57 recordCount i32
//! 16 magic i8 (= 2)        | 43 producerId i64      | 61 records...
//! 17 crc u32 (crc32c of bytes 21..end)
//! 21 attributes i16
//! ```
//!
//! Record encoding and decoding is delegated to `kafka_protocol::records`.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use crate::{Corrupt, ProtocolError};

/// Size of the fixed part of a v2 record batch.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength themselves.
pub const LOG_OVERHEAD: usize = 12;

/// The fixed header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes following the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 here.
    pub magic: i8,
    /// Stored CRC-32C.
    pub crc: u32,
    /// Attributes (compression in bits 0-2, timestamp type bit 3, transactional 4, control 5).
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (which must hold at least the fixed header).
    pub fn parse(buf: &[u8]) -> Result<Self, ProtocolError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(ProtocolError::CorruptBatch(Corrupt::ShortHeader {
                len: buf.len(),
            }));
        }
        let magic = buf[16] as i8;
        if magic != 2 {
            return Err(ProtocolError::CorruptBatch(Corrupt::Magic(magic)));
        }
        let h = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic,
            crc: u32::from_be_bytes(buf[17..21].try_into().expect("4 bytes")),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        };
        if (h.batch_length as usize) < BATCH_HEADER_LEN - LOG_OVERHEAD || h.batch_length < 0 {
            return Err(ProtocolError::CorruptBatch(Corrupt::Length(h.batch_length)));
        }
        if h.record_count < 0 || h.last_offset_delta < 0 {
            return Err(ProtocolError::CorruptBatch(Corrupt::NegativeCount));
        }
        Ok(h)
    }

    /// Whole size of the batch on the wire.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }

    /// Whether this is a control batch (transaction markers), never shown to applications.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// Checks the CRC-32C of one whole batch.
pub fn verify_crc(batch: &[u8]) -> Result<BatchHeader, ProtocolError> {
    let h = BatchHeader::parse(batch)?;
    if batch.len() != h.total_len() {
        return Err(ProtocolError::CorruptBatch(Corrupt::SizeMismatch {
            stated: h.total_len(),
            present: batch.len(),
        }));
    }
    let actual = crc32c::crc32c(&batch[21..]);
    if actual != h.crc {
        return Err(ProtocolError::CorruptBatch(Corrupt::Crc {
            stored: h.crc,
            computed: actual,
        }));
    }
    Ok(h)
}

/// The five codecs a v2 batch may use, in codec-id order.
pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

impl BatchHeader {
    /// The header of a batch a plain (non-idempotent) client writes: base offset 0, no producer
    /// id, length and CRC left for [`seal`].
    pub fn client(
        attributes: i16,
        record_count: i32,
        base_timestamp: i64,
        max_timestamp: i64,
    ) -> Self {
        Self {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: record_count - 1,
            base_timestamp,
            max_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count,
        }
    }

    /// Writes this header into the first [`BATCH_HEADER_LEN`] bytes of `out`, length and CRC
    /// as they are in `self` (see [`seal`] to set both from the bytes that follow).
    pub fn write(&self, out: &mut [u8]) {
        let mut h = &mut out[..BATCH_HEADER_LEN];
        use bytes::BufMut;
        h.put_i64(self.base_offset);
        h.put_i32(self.batch_length);
        h.put_i32(self.partition_leader_epoch);
        h.put_i8(self.magic);
        h.put_u32(self.crc);
        h.put_i16(self.attributes);
        h.put_i32(self.last_offset_delta);
        h.put_i64(self.base_timestamp);
        h.put_i64(self.max_timestamp);
        h.put_i64(self.producer_id);
        h.put_i16(self.producer_epoch);
        h.put_i32(self.base_sequence);
        h.put_i32(self.record_count);
    }
}

/// Sets a whole batch's `batchLength` from its size and recomputes its CRC-32C.
pub fn seal(batch: &mut [u8]) {
    let len = (batch.len() - LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    write_crc(batch);
}

/// Recomputes the CRC-32C of a whole batch (attributes to the end).
fn write_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Appends a zigzag varint (the record fields' integer encoding).
pub fn put_varint(b: &mut BytesMut, v: i64) {
    use bytes::BufMut;
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        b.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    b.put_u8(z as u8);
}

fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Appends a v2 record without headers up to its value: the caller appends the value's
/// `value_len` bytes (none for `None`) and then the header count `0`. Lets a record be written
/// without its value in memory (legacy conversion, streams).
pub fn put_record_head(
    b: &mut BytesMut,
    ts_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value_len: Option<usize>,
) {
    use bytes::BufMut;
    let len_of = |n: Option<usize>| n.map_or(varint_len(-1), |n| varint_len(n as i64) + n);
    let len = 1
        + varint_len(ts_delta)
        + varint_len(offset_delta as i64)
        + len_of(key.map(<[u8]>::len))
        + len_of(value_len)
        + 1;
    put_varint(b, len as i64);
    b.put_u8(0); // attributes
    put_varint(b, ts_delta);
    put_varint(b, offset_delta as i64);
    match key {
        Some(k) => {
            put_varint(b, k.len() as i64);
            b.put_slice(k);
        }
        None => put_varint(b, -1),
    }
    put_varint(b, value_len.map_or(-1, |n| n as i64));
}

/// Rewrites the base offset of a batch (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Restamps every batch in `buf` with a producer id, epoch and sequence numbers (the first
/// batch starts at `base_sequence`, each next one after the previous one's records) and
/// recomputes the CRCs. A writer uses this to renumber batches it already encoded after its
/// producer epoch changed, without encoding (and compressing) the records again.
pub fn restamp_producer(
    buf: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<(), ProtocolError> {
    let split = split_batches(buf)?;
    let mut seq = base_sequence as i64;
    for range in split.batches {
        let batch = &mut buf[range];
        let records = be_i32(batch, 57).max(0) as i64;
        batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
        batch[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
        let stamped = if producer_id < 0 {
            -1
        } else {
            (seq % (i32::MAX as i64 + 1)) as i32
        };
        batch[53..57].copy_from_slice(&stamped.to_be_bytes());
        write_crc(batch);
        seq += records;
    }
    Ok(())
}

/// Rewrites the partition leader epoch of a batch (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Result of [`split_batches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Byte ranges of complete batches, in order.
    pub batches: Vec<Range<usize>>,
    /// Bytes after the last complete batch (a truncated batch, as brokers may send at the end of
    /// a fetch response, or a torn write at the end of a log file).
    pub trailing: usize,
}

/// Splits concatenated batches. A short tail is reported in [`Split::trailing`], not as an
/// error; a header that cannot be a batch is an error.
pub fn split_batches(buf: &[u8]) -> Result<Split, ProtocolError> {
    let mut batches = Vec::new();
    let mut pos = 0;
    while buf.len() - pos >= BATCH_HEADER_LEN {
        let h = BatchHeader::parse(&buf[pos..])?;
        let end = pos + h.total_len();
        if end > buf.len() {
            break;
        }
        batches.push(pos..end);
        pos = end;
    }
    Ok(Split {
        batches,
        trailing: buf.len() - pos,
    })
}

/// A plain (non-transactional, create-time) record at `offset` within its batch, with
/// `sequence = offset` as [`encode_records`] expects when there is no producer id.
pub fn new_record(offset: i64, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset,
        sequence: offset as i32,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Encodes records as v2 batches. Offsets are taken relative to the lowest record offset.
///
/// `kafka_protocol`'s encoder starts a new batch whenever `offset - sequence` changes, so
/// callers give every record `sequence = offset - first offset` (plus the producer's base
/// sequence when idempotent). For records without a producer id the batch's `baseSequence` is
/// then reset to -1 (with the CRC recomputed), as the Java client writes it.
pub fn encode_records(
    records: &[Record],
    compression: Compression,
) -> Result<Bytes, ProtocolError> {
    encode_records_level(records, compression, None)
}

/// Like [`encode_records`] with a compression level for gzip (0-9), lz4 (0-16) and zstd
/// (1-22); `None` (and snappy, which has no levels) uses the codec's default.
pub fn encode_records_level(
    records: &[Record],
    compression: Compression,
    level: Option<i32>,
) -> Result<Bytes, ProtocolError> {
    // Room for the uncompressed batch up front (it is the most a batch takes): growing by
    // doubling would copy a 1 MB batch several times.
    let estimate = 61
        + records
            .iter()
            .map(|r| {
                24 + r.key.as_ref().map_or(0, |k| k.len())
                    + r.value.as_ref().map_or(0, |v| v.len())
                    + r.headers
                        .iter()
                        .map(|(k, v)| 10 + k.len() + v.as_ref().map_or(0, |v| v.len()))
                        .sum::<usize>()
            })
            .sum::<usize>();
    let mut buf = BytesMut::with_capacity(estimate);
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    let encoded = match (level, compression) {
        (Some(level), Compression::Gzip | Compression::Lz4 | Compression::Zstd) => {
            RecordBatchEncoder::encode_with_custom_compression(
                &mut buf,
                records,
                &options,
                Some(|raw: &mut BytesMut, out: &mut BytesMut, c: Compression| {
                    compress_level(raw, out, c, level)
                }),
            )
        }
        _ => RecordBatchEncoder::encode(&mut buf, records, &options),
    };
    encoded.map_err(|e| ProtocolError::EncodeRecords(e.to_string()))?;
    let split = split_batches(&buf)?;
    for range in split.batches {
        let batch = &mut buf[range];
        if be_i64(batch, 43) == -1 && be_i32(batch, 53) != -1 {
            batch[53..57].copy_from_slice(&(-1i32).to_be_bytes());
            write_crc(batch);
        }
    }
    Ok(buf.freeze())
}

/// Most bytes one batch may decompress to when decoded with [`decode_records`] (64 MiB): a
/// peer's "compression bomb" fails with an error instead of taking the process's memory.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 64 << 20;

/// Decodes every complete batch in `data` into records (control records dropped, truncated tail
/// ignored). Batches are CRC-checked by the decoder; each decompresses to at most
/// [`DEFAULT_MAX_DECOMPRESSED`] bytes.
pub fn decode_records(data: &Bytes) -> Result<Vec<Record>, ProtocolError> {
    decode_records_capped(data, DEFAULT_MAX_DECOMPRESSED)
}

/// [`decode_records`] with a cap on each batch's decompressed size.
pub fn decode_records_capped(data: &Bytes, cap: usize) -> Result<Vec<Record>, ProtocolError> {
    let mut out = Vec::new();
    decode_batches_each(data, cap, |mut records| {
        if out.is_empty() {
            out = records;
        } else {
            out.append(&mut records);
        }
    })?;
    Ok(out)
}

/// [`decode_records_capped`] handing each batch's records (control records dropped) to `f` as
/// the batch is decoded, with no vector of every record first: the reader's hot path turns
/// them into messages directly. On an error, `f` has seen the batches before the bad one.
pub fn decode_batches_each(
    data: &Bytes,
    cap: usize,
    mut f: impl FnMut(Vec<Record>),
) -> Result<(), ProtocolError> {
    let split = split_batches(data)?;
    let decompress = |b: &mut Bytes, c: Compression| -> anyhow::Result<Bytes> {
        match c {
            Compression::None => Ok(b.clone()),
            c => Ok(crate::validate::decompress_capped(c as i16, b, cap)?),
        }
    };
    for range in split.batches {
        let mut batch = data.slice(range);
        let set = RecordBatchDecoder::decode_with_custom_compression(&mut batch, Some(&decompress))
            .map_err(|e| ProtocolError::CorruptBatch(Corrupt::Records(format!("{e:#}"))))?;
        let mut records = set.records;
        records.retain(|r| !r.control);
        f(records);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::TimestampType;

    fn record(offset: i64, v: &str) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::from(v.to_owned())),
            headers: Default::default(),
        }
    }

    #[test]
    fn header_offsets_and_crc() {
        let recs: Vec<_> = (0..5).map(|i| record(i, "hello")).collect();
        let batch = encode_records(&recs, Compression::None).unwrap();
        let mut batch = batch.to_vec();
        let h = verify_crc(&batch).unwrap();
        assert_eq!(h.record_count, 5);
        assert_eq!(h.base_sequence, -1);
        assert_eq!(h.last_offset(), 4);
        set_base_offset(&mut batch, 100);
        set_partition_leader_epoch(&mut batch, 3);
        let h = verify_crc(&batch).unwrap();
        assert_eq!(
            (h.base_offset, h.last_offset(), h.partition_leader_epoch),
            (100, 104, 3)
        );
        let decoded = decode_records(&Bytes::from(batch.clone())).unwrap();
        assert_eq!(decoded.len(), 5);
        assert_eq!(decoded[4].offset, 104);
        batch[70] ^= 0xff;
        assert!(matches!(
            verify_crc(&batch),
            Err(ProtocolError::CorruptBatch(Corrupt::Crc { stored, computed })) if stored != computed
        ));
        assert!(matches!(
            verify_crc(&batch[..batch.len() - 1]),
            Err(ProtocolError::CorruptBatch(Corrupt::SizeMismatch { present, .. })) if present == batch.len() - 1
        ));
        batch[16] = 1;
        assert_eq!(
            BatchHeader::parse(&batch).unwrap_err().to_string(),
            "corrupt record batch: message format v1 is not supported (only v2 record batches)"
        );
    }

    #[test]
    fn every_codec_roundtrips_and_validates() {
        let recs: Vec<_> = (0..20)
            .map(|i| record(i, "compressible compressible compressible"))
            .collect();
        for c in CODECS {
            let b = encode_records(&recs, c).unwrap();
            let h = verify_crc(&b).unwrap();
            assert_eq!(h.compression(), c as i16);
            crate::validate::validate_batch(&b, 1 << 20).unwrap();
            let back = decode_records(&b).unwrap();
            assert_eq!(back.len(), 20, "{c:?}");
            assert_eq!(back[7].value, recs[7].value);
        }
    }

    #[test]
    fn split_reports_truncated_tail() {
        let a = encode_records(&[record(0, "a")], Compression::None).unwrap();
        let b = encode_records(&[record(1, "bb")], Compression::None).unwrap();
        let mut all = a.to_vec();
        all.extend_from_slice(&b[..b.len() - 3]);
        let s = split_batches(&all).unwrap();
        assert_eq!(s.batches, vec![0..a.len()]);
        assert_eq!(s.trailing, b.len() - 3);
        assert_eq!(decode_records(&Bytes::from(all)).unwrap().len(), 1);
    }
}

/// Compresses `raw` into `out` at `level`, framed as Kafka expects (gzip stream, lz4 frame with
/// independent blocks, zstd frame) — the same framing kafka-protocol writes at its defaults.
fn compress_level(
    raw: &mut BytesMut,
    out: &mut BytesMut,
    c: Compression,
    level: i32,
) -> anyhow::Result<()> {
    use bytes::BufMut;
    use std::io::Write;
    match c {
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                out.writer(),
                flate2::Compression::new(level.clamp(0, 9) as u32),
            );
            e.write_all(raw)?;
            e.finish()?;
        }
        Compression::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .level(level.clamp(0, 16) as u32)
                .block_mode(lz4::BlockMode::Independent)
                .build(out.writer())?;
            e.write_all(raw)?;
            let (_, r) = e.finish();
            r?;
        }
        Compression::Zstd => {
            zstd::stream::copy_encode(&raw[..], out.writer(), level.clamp(1, 22))?;
        }
        other => anyhow::bail!("no compression level for {other:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod level_tests {
    use super::*;

    #[test]
    fn levels_change_the_size_and_round_trip() {
        let records: Vec<Record> = (0..200)
            .map(|i| {
                new_record(
                    i,
                    1_700_000_000_000,
                    None,
                    Some(Bytes::from(format!("value {i} {}", "abcdefgh".repeat(20)))),
                )
            })
            .collect();
        for c in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let fast = encode_records_level(&records, c, Some(1)).unwrap();
            let best = encode_records_level(&records, c, Some(9)).unwrap();
            let default = encode_records(&records, c).unwrap();
            for b in [&fast, &best, &default] {
                crate::validate::validate_batch(b, 1 << 20).unwrap();
                let back = decode_records(b).unwrap();
                assert_eq!(back.len(), 200, "{c:?}");
                assert_eq!(back[7].value, records[7].value);
            }
            assert!(
                best.len() <= fast.len(),
                "{c:?}: {} > {}",
                best.len(),
                fast.len()
            );
        }
    }
}

#[cfg(test)]
mod restamp_tests {
    use super::*;

    #[test]
    fn restamped_batches_carry_the_new_producer_and_valid_crcs() {
        let recs: Vec<Record> = (0..10)
            .map(|i| new_record(i, 1, None, Some(Bytes::from(vec![b'x'; 10]))))
            .collect();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&encode_records(&recs[..4], Compression::None).unwrap());
        buf.extend_from_slice(&encode_records(&recs[4..], Compression::Lz4).unwrap());
        restamp_producer(&mut buf, 7, 2, 100).unwrap();
        let split = split_batches(&buf).unwrap();
        let firsts: Vec<i32> = split
            .batches
            .iter()
            .map(|r| {
                let h = BatchHeader::parse(&buf[r.clone()]).unwrap();
                verify_crc(&buf[r.clone()]).unwrap();
                assert_eq!((h.producer_id, h.producer_epoch), (7, 2));
                h.base_sequence
            })
            .collect();
        assert_eq!(firsts, [100, 104]);
        let back = decode_records(&buf.freeze()).unwrap();
        assert_eq!(back.len(), 10);
        assert_eq!(back[9].sequence, 109);
    }
}
