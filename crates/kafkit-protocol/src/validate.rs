//! Checking a produced v2 record batch before a broker stores it, as Kafka's `LogValidator`
//! (and `DefaultRecordBatch.ensureValid`) do, and decompressing under a cap.
//!
//! A batch is accepted only when:
//! * its length and CRC-32C hold and its magic is 2;
//! * it comes from a client: base offset 0, not a control batch;
//! * `recordCount > 0` and `lastOffsetDelta == recordCount - 1`;
//! * a producer id implies a producer epoch and a base sequence that are not negative;
//! * the records parse: each record's length varint matches the bytes its fields take,
//!   offset deltas run 0, 1, 2, ..., timestamps do not overflow, key/value/header lengths are
//!   not below -1 (header keys not below 0), and the count of records matches the header with
//!   no bytes left over;
//! * a compressed batch is decompressed **as a stream**: records are checked as they come out of
//!   the decoder, never all held in memory, and decoding stops with an error once more than
//!   `max_decompressed` bytes came out (a "bomb"). The zstd window is capped too
//!   ([`ZSTD_WINDOW_LOG_MAX`]).
//!
//! The error says which Kafka code a broker answers ([`InvalidBatch::code`]): framing, CRC and
//! parse failures are `CORRUPT_MESSAGE` (2), semantic ones `INVALID_RECORD` (87), an unknown
//! codec `UNSUPPORTED_COMPRESSION_TYPE` (76), and a bomb `MESSAGE_TOO_LARGE` (10).
//!
//! Written by hand (not with `kafka_protocol::records`) because that decoder materialises every
//! record of a batch, and decompresses the whole batch into memory first.

use std::io::{BufRead, BufReader, Read};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::batch::{BatchHeader, BATCH_HEADER_LEN};

/// Largest zstd window (log2 bytes) a decoder accepts: 32 MiB. zstd's own default is 2^27; a
/// frame may ask for that much memory before it produces a byte.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 25;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBatch {
    /// Framing, CRC or record encoding is broken.
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// Well-formed, but not something a client may write.
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// Compression codec id 5-7.
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(i16),
    /// Decompressed to more than the cap.
    #[error("batch decompresses to more than {limit} bytes")]
    TooLarge {
        /// The cap, in decompressed bytes.
        limit: usize,
    },
}

impl InvalidBatch {
    /// The Kafka error a broker answers with.
    pub fn code(&self) -> ResponseError {
        match self {
            InvalidBatch::Corrupt(_) => ResponseError::CorruptMessage,
            InvalidBatch::InvalidRecord(_) => ResponseError::InvalidRecord,
            InvalidBatch::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
            InvalidBatch::TooLarge { .. } => ResponseError::MessageTooLarge,
        }
    }
}

fn corrupt(msg: impl Into<String>) -> InvalidBatch {
    InvalidBatch::Corrupt(msg.into())
}

fn invalid(msg: impl Into<String>) -> InvalidBatch {
    InvalidBatch::InvalidRecord(msg.into())
}

/// Checks one whole produced batch. See the module docs for what is checked.
pub fn validate_batch(batch: &[u8], max_decompressed: usize) -> Result<BatchHeader, InvalidBatch> {
    let h = crate::batch::verify_crc(batch).map_err(|e| corrupt(e.to_string()))?;
    if h.compression() > 4 {
        return Err(InvalidBatch::UnsupportedCompression(h.compression()));
    }
    if h.base_offset != 0 {
        return Err(invalid(format!(
            "base offset {} (a produced batch starts at 0)",
            h.base_offset
        )));
    }
    if h.is_control() {
        return Err(invalid("clients may not write control batches"));
    }
    if h.record_count <= 0 {
        return Err(invalid(format!("record count {}", h.record_count)));
    }
    if h.last_offset_delta != h.record_count - 1 {
        return Err(invalid(format!(
            "last offset delta {} does not match {} records",
            h.last_offset_delta, h.record_count
        )));
    }
    if h.producer_id >= 0 && (h.producer_epoch < 0 || h.base_sequence < 0) {
        return Err(invalid(format!(
            "producer id {} with epoch {} and base sequence {}",
            h.producer_id, h.producer_epoch, h.base_sequence
        )));
    }
    let payload = &batch[BATCH_HEADER_LEN..];
    match h.compression() {
        0 => check_records(
            &mut SliceInput {
                buf: payload,
                pos: 0,
            },
            &h,
        ),
        codec => {
            let reader = decoder(codec, payload, max_decompressed)?;
            let mut input = StreamInput {
                inner: BufReader::with_capacity(16 * 1024, reader),
                consumed: 0,
                cap: max_decompressed as u64,
                failed: None,
            };
            check_records(&mut input, &h)
        }
    }?;
    Ok(h)
}

/// Decompresses a batch payload (or a legacy wrapper message's value) into memory, failing
/// once more than `cap` bytes came out. `codec`: 1 gzip, 2 snappy, 3 lz4, 4 zstd.
pub fn decompress_capped(codec: i16, data: &[u8], cap: usize) -> Result<Bytes, InvalidBatch> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(cap).min(1 << 20));
    decoder(codec, data, cap)?
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(from_io)?;
    if out.len() > cap {
        return Err(InvalidBatch::TooLarge { limit: cap });
    }
    Ok(Bytes::from(out))
}

/// A decoder's error: our own refusal (from [`SnappyReader`]) passes through as it was.
fn from_io(e: std::io::Error) -> InvalidBatch {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<InvalidBatch>())
    {
        Some(b) => b.clone(),
        None => corrupt(format!("decompressing: {e}")),
    }
}

/// A streaming decoder for gzip, lz4, zstd and snappy; `cap` bounds what a snappy block may
/// announce before it is allocated (the others stream in small pieces).
fn decoder<'a>(codec: i16, data: &'a [u8], cap: usize) -> Result<Box<dyn Read + 'a>, InvalidBatch> {
    Ok(match codec {
        1 => Box::new(flate2::read::MultiGzDecoder::new(data)),
        2 => Box::new(SnappyReader::new(data, cap)),
        3 => Box::new(lz4::Decoder::new(data).map_err(|e| corrupt(format!("lz4: {e}")))?),
        4 => {
            let mut d = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| corrupt(format!("zstd: {e}")))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| corrupt(format!("zstd: {e}")))?;
            Box::new(d)
        }
        other => return Err(InvalidBatch::UnsupportedCompression(other)),
    })
}

const SNAPPY_XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";

/// Snappy as Kafka writes it: xerial framing (16-byte header, then INT32-length blocks), or a
/// raw snappy block when the header is absent (as Java's `SnappyInputStream` accepts). Each
/// block's announced length is checked against what is left of the cap before it is decoded.
struct SnappyReader<'a> {
    data: &'a [u8],
    started: bool,
    xerial: bool,
    block: Vec<u8>,
    pos: usize,
    /// Decoded bytes still allowed.
    room: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(data: &'a [u8], cap: usize) -> Self {
        Self {
            data,
            started: false,
            xerial: false,
            block: Vec::new(),
            pos: 0,
            room: cap,
        }
    }

    /// The next decoded block, refusing one that would go past the cap.
    fn next_block(&mut self) -> Result<Option<Vec<u8>>, InvalidBatch> {
        let block = self.next_raw_block()?;
        block
            .map(|b| {
                let out = snappy_block(b, self.room)?;
                self.room -= out.len();
                Ok(out)
            })
            .transpose()
    }

    fn next_raw_block(&mut self) -> Result<Option<&'a [u8]>, InvalidBatch> {
        if !self.started {
            self.started = true;
            if self.data.len() >= 16 && &self.data[..8] == SNAPPY_XERIAL_MAGIC {
                self.xerial = true;
                self.data = &self.data[16..];
            } else {
                return Ok(Some(std::mem::take(&mut self.data)));
            }
        }
        if !self.xerial || self.data.is_empty() {
            return Ok(None);
        }
        if self.data.len() < 4 {
            return Err(corrupt("snappy: truncated block length"));
        }
        let n = u32::from_be_bytes(self.data[..4].try_into().expect("4 bytes")) as usize;
        if self.data.len() - 4 < n {
            return Err(corrupt("snappy: truncated block"));
        }
        let block = &self.data[4..4 + n];
        self.data = &self.data[4 + n..];
        Ok(Some(block))
    }
}

fn snappy_block(block: &[u8], room: usize) -> Result<Vec<u8>, InvalidBatch> {
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(format!("snappy: {e}")))?;
    // Snappy expands at most ~21x (a 3-byte copy of 64 bytes): a larger announced length is a
    // lie, refused before the decoder allocates it.
    if len > block.len().saturating_mul(24).saturating_add(64) {
        return Err(corrupt(format!(
            "snappy: a {}-byte block cannot hold {len} bytes",
            block.len()
        )));
    }
    if len > room {
        return Err(InvalidBatch::TooLarge { limit: room });
    }
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|e| corrupt(format!("snappy: {e}")))
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.block.len() {
            match self
                .next_block()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
            {
                Some(b) => {
                    self.block = b;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Why a read inside the records stopped. Small and `Copy`, so the per-byte paths stay cheap;
/// [`check_records`] turns it into an [`InvalidBatch`] with the record's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The records ended inside a record.
    End,
    /// A varint longer than its type, or outside int32.
    BadVarint,
    /// A length below what the field allows.
    BadLength,
    /// The stream failed (decoder error, or the cap): the reason is kept by the input.
    Stream,
}

/// Where record bytes come from: a slice (uncompressed batches) or a decoder stream.
trait Input {
    /// The bytes available now without reading further (empty only at the end).
    fn peek(&mut self) -> Result<&[u8], Stop>;
    /// Consumes `n` bytes of what [`Input::peek`] returned.
    fn advance(&mut self, n: usize) -> Result<(), Stop>;
    fn consumed(&self) -> u64;
    /// The reason behind [`Stop::Stream`].
    fn failure(&mut self) -> InvalidBatch {
        corrupt("records could not be read")
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Stop> {
        let b = *self.peek()?.first().ok_or(Stop::End)?;
        self.advance(1)?;
        Ok(b)
    }
    #[inline]
    fn skip(&mut self, mut n: usize) -> Result<(), Stop> {
        while n > 0 {
            let have = self.peek()?.len();
            if have == 0 {
                return Err(Stop::End);
            }
            let step = have.min(n);
            self.advance(step)?;
            n -= step;
        }
        Ok(())
    }
}

struct SliceInput<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Input for SliceInput<'_> {
    #[inline]
    fn peek(&mut self) -> Result<&[u8], Stop> {
        Ok(&self.buf[self.pos..])
    }
    #[inline]
    fn advance(&mut self, n: usize) -> Result<(), Stop> {
        self.pos += n;
        Ok(())
    }
    #[inline]
    fn consumed(&self) -> u64 {
        self.pos as u64
    }
}

struct StreamInput<R> {
    inner: BufReader<R>,
    consumed: u64,
    cap: u64,
    failed: Option<InvalidBatch>,
}

impl<R: Read> Input for StreamInput<R> {
    #[inline]
    fn peek(&mut self) -> Result<&[u8], Stop> {
        match self.inner.fill_buf() {
            Ok(b) => Ok(b),
            Err(e) => {
                self.failed = Some(from_io(e));
                Err(Stop::Stream)
            }
        }
    }
    #[inline]
    fn advance(&mut self, n: usize) -> Result<(), Stop> {
        self.inner.consume(n);
        self.consumed += n as u64;
        if self.consumed > self.cap {
            self.failed = Some(InvalidBatch::TooLarge {
                limit: self.cap as usize,
            });
            return Err(Stop::Stream);
        }
        Ok(())
    }
    fn consumed(&self) -> u64 {
        self.consumed
    }
    fn failure(&mut self) -> InvalidBatch {
        self.failed
            .take()
            .unwrap_or_else(|| corrupt("records could not be read"))
    }
}

#[inline]
fn unzigzag(raw: u64) -> i64 {
    (raw >> 1) as i64 ^ -((raw & 1) as i64)
}

/// Zigzag varint of at most `max_bytes` bytes (5 for int32, 10 for int64): decoded straight
/// from what is buffered, byte by byte only when it straddles the end of the buffer.
#[inline]
fn varint(input: &mut impl Input, max_bytes: usize) -> Result<i64, Stop> {
    let buf = input.peek()?;
    let n = buf.len().min(max_bytes);
    let mut raw: u64 = 0;
    let mut i = 0;
    while i < n {
        let b = buf[i];
        raw |= u64::from(b & 0x7f) << (7 * i);
        i += 1;
        if b < 0x80 {
            input.advance(i)?;
            return Ok(unzigzag(raw));
        }
    }
    if n == max_bytes {
        return Err(Stop::BadVarint);
    }
    // Straddles the end of the decoder's buffer (or the records end): byte by byte.
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let b = input.byte()?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(unzigzag(raw));
        }
    }
    Err(Stop::BadVarint)
}

#[inline]
fn varint32(input: &mut impl Input) -> Result<i32, Stop> {
    i32::try_from(varint(input, 5)?).map_err(|_| Stop::BadVarint)
}

/// Skips length-prefixed bytes (varint length; -1 = null where `nullable`).
#[inline]
fn skip_bytes(input: &mut impl Input, nullable: bool) -> Result<(), Stop> {
    let n = varint32(input)?;
    if n < -1 || (n == -1 && !nullable) {
        return Err(Stop::BadLength);
    }
    if n > 0 {
        input.skip(n as usize)?;
    }
    Ok(())
}

/// One record; `Ok(Err(..))` is a record that parses but may not be stored.
#[inline]
fn check_record(
    input: &mut impl Input,
    h: &BatchHeader,
    index: i32,
) -> Result<Result<(), InvalidBatch>, Stop> {
    let len = varint32(input)?;
    // attributes + timestamp delta + offset delta + key len + value len + header count
    if len < 6 {
        return Ok(Err(corrupt(format!("record {index}: length {len}"))));
    }
    let start = input.consumed();
    let _attributes = input.byte()?;
    let ts_delta = varint(input, 10)?;
    if h.base_timestamp.checked_add(ts_delta).is_none() {
        return Ok(Err(invalid(format!("record {index}: timestamp overflows"))));
    }
    let offset_delta = varint32(input)?;
    if offset_delta != index {
        return Ok(Err(invalid(format!(
            "record {index}: offset delta {offset_delta} (expected {index})"
        ))));
    }
    skip_bytes(input, true)?; // key
    skip_bytes(input, true)?; // value
    let headers = varint32(input)?;
    if headers < 0 {
        return Err(Stop::BadLength);
    }
    for _ in 0..headers {
        skip_bytes(input, false)?; // header key
        skip_bytes(input, true)?; // header value
        if input.consumed() - start > len as u64 {
            break;
        }
    }
    let used = input.consumed() - start;
    if used != len as u64 {
        return Ok(Err(corrupt(format!(
            "record {index}: length says {len} bytes, its fields take {used}"
        ))));
    }
    Ok(Ok(()))
}

fn check_records(input: &mut impl Input, h: &BatchHeader) -> Result<(), InvalidBatch> {
    for index in 0..h.record_count {
        match check_record(input, h, index) {
            Ok(checked) => checked?,
            Err(Stop::Stream) => return Err(input.failure()),
            Err(Stop::End) => {
                return Err(corrupt(format!(
                    "records end inside record {index} of {}",
                    h.record_count
                )))
            }
            Err(Stop::BadVarint) => return Err(corrupt(format!("record {index}: bad varint"))),
            Err(Stop::BadLength) => return Err(corrupt(format!("record {index}: bad length"))),
        }
    }
    match input.peek() {
        Ok([]) => Ok(()),
        Ok(_) => Err(corrupt(format!(
            "bytes after the {} records the header announces",
            h.record_count
        ))),
        Err(_) => Err(input.failure()),
    }
}
