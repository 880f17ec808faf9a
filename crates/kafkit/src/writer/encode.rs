//! Encoding a batch's messages as Kafka record batches (pure: no I/O, no clock but the
//! records' own timestamps).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafkit_protocol::batch::{encode_records_level, new_record};
use kafkit_protocol::indexmap::IndexMap;
use kafkit_protocol::records::{Compression, Record};
use kafkit_protocol::str_bytes;

use super::ProducerIdentity;
use crate::config::WriterConfig;
use crate::error::Result;
use crate::Message;

/// A generous estimate of a record's encoding beyond its key, value and headers (length,
/// attributes, deltas, header count as varints), used to keep batches within `batch_bytes`.
pub(crate) const RECORD_OVERHEAD: usize = 32;

/// How records are encoded: compression and the per-batch limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoding {
    pub compression: Compression,
    pub level: Option<i32>,
    pub batch_size: usize,
    pub batch_bytes: usize,
}

impl Encoding {
    pub(crate) fn of(cfg: &WriterConfig) -> Self {
        Self {
            compression: codec(cfg.compression),
            level: cfg.compression_level,
            batch_size: cfg.batch_size,
            batch_bytes: cfg.batch_bytes,
        }
    }
}

fn codec(c: crate::config::Compression) -> Compression {
    match c {
        crate::config::Compression::None => Compression::None,
        crate::config::Compression::Gzip => Compression::Gzip,
        crate::config::Compression::Snappy => Compression::Snappy,
        crate::config::Compression::Lz4 => Compression::Lz4,
        crate::config::Compression::Zstd => Compression::Zstd,
    }
}

fn now_ms(t: Option<SystemTime>) -> i64 {
    t.unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Encodes the messages as record batches, concatenated (more than one when `batch_size` or
/// `batch_bytes` cut them); with an identity, records are numbered from `first_seq`.
pub(crate) fn build_records<'a>(
    enc: &Encoding,
    messages: impl Iterator<Item = &'a Message>,
    identity: Option<ProducerIdentity>,
    first_seq: i32,
) -> Result<Bytes> {
    let mut batches: Vec<Bytes> = Vec::new();
    let mut current: Vec<Record> = Vec::new();
    let mut bytes = 0;
    let (pid, epoch) = identity.map_or((-1, -1), |i| (i.id, i.epoch));
    let mut seq = first_seq;
    let flush = |current: &mut Vec<Record>, batches: &mut Vec<Bytes>| -> Result<()> {
        if !current.is_empty() {
            batches.push(encode_records_level(current, enc.compression, enc.level)?);
            current.clear();
        }
        Ok(())
    };
    for m in messages {
        let size = m.size() + RECORD_OVERHEAD;
        if !current.is_empty()
            && (current.len() >= enc.batch_size || bytes + size > enc.batch_bytes)
        {
            flush(&mut current, &mut batches)?;
            bytes = 0;
        }
        let offset = current.len() as i64;
        // Sequence numbers wrap at i32::MAX, as Kafka's do; without an identity they only keep
        // `offset - sequence` constant for the encoder.
        let sequence = if identity.is_some() {
            seq
        } else {
            offset as i32
        };
        seq = if seq == i32::MAX { 0 } else { seq + 1 };
        let mut headers = IndexMap::new();
        for h in &m.headers {
            headers.insert(str_bytes(&h.key), h.value.clone());
        }
        current.push(Record {
            producer_id: pid,
            producer_epoch: epoch,
            sequence,
            headers,
            ..new_record(offset, now_ms(m.time), m.key.clone(), m.value.clone())
        });
        bytes += size;
    }
    flush(&mut current, &mut batches)?;
    Ok(if batches.len() == 1 {
        batches.pop().expect("one batch")
    } else {
        let mut r = BytesMut::with_capacity(batches.iter().map(|x| x.len()).sum());
        for x in &batches {
            r.extend_from_slice(x);
        }
        r.freeze()
    })
}

/// The same records under another producer identity and first sequence: only the batch
/// headers and CRCs are rewritten (no second encoding or compression).
pub(crate) fn restamp(
    records: &Bytes,
    identity: Option<ProducerIdentity>,
    first_seq: i32,
) -> Result<Bytes> {
    let mut m = BytesMut::from(&records[..]);
    let (pid, epoch) = identity.map_or((-1, -1), |i| (i.id, i.epoch));
    kafkit_protocol::batch::restamp_producer(&mut m, pid, epoch, first_seq)?;
    Ok(m.freeze())
}
