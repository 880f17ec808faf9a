//! Partition logs on disk.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! <data_dir>/FORMAT                      "kafkit-data 1"
//! <data_dir>/topics                      one line per topic: name partitions replication uuid
//! <data_dir>/broker-<id>/<topic>-<p>/00000000000000000000.log
//!                                        concatenated v2 record batches, exactly as Kafka
//!                                        stores them in a segment (offsets assigned)
//! <data_dir>/__consumer_offsets/offsets.log   see `group::offsets`
//! <data_dir>/producer_ids                next idempotent producer id
//! ```
//!
//! The batch index (offset → file position) is rebuilt on open by scanning the file; every
//! batch's CRC is checked and the file is truncated at the first torn or corrupt batch, which is
//! never served. Writes go to the OS with `write`; `sync` (fsync) happens on [`PartitionLog::flush`],
//! called at clean shutdown. So a process crash loses nothing, a machine crash may lose
//! what was written since the last flush (the same default as Kafka, which leaves flushing to
//! the OS and relies on replication). Segment rolling, retention and a sync policy come with the
//! durability work (issue 3).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafkit_protocol::batch::{self, BatchHeader};

/// One batch in the index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    /// Leader epoch stamped on the batch.
    epoch: i32,
    pos: u64,
    len: u32,
}

/// Batches remembered per producer for duplicate detection (Kafka keeps 5, the most a
/// producer may have in flight).
const PRODUCER_BATCHES: usize = 5;

/// What the log knows of one idempotent producer.
#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    /// (first sequence, last sequence, base offset) of recent batches, oldest first.
    batches: VecDeque<(i32, i32, i64)>,
}

/// Why an append was refused.
#[derive(Debug)]
pub enum AppendError {
    /// A Kafka error code (sequence or epoch problems).
    Code(i16),
    /// The write failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for AppendError {
    fn from(e: std::io::Error) -> Self {
        AppendError::Io(e)
    }
}

enum SeqCheck {
    Append,
    Duplicate(i64),
    Reject(i16),
}

fn last_sequence(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX (Kafka's DefaultRecordBatch.incrementSequence).
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

/// An append-only log of record batches for one partition.
#[derive(Debug)]
pub struct PartitionLog {
    path: PathBuf,
    file: File,
    index: Vec<Entry>,
    /// Offset of the first record the log holds or will hold (0 until retention exists).
    start_offset: i64,
    next_offset: i64,
    size: u64,
    /// Idempotent producers seen in this log, rebuilt from batch headers on open.
    producers: HashMap<i64, ProducerEntry>,
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering from a torn tail.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("00000000000000000000.log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut data = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut data)?;
        let mut index = Vec::new();
        let mut pos = 0usize;
        let mut next_offset = 0;
        let mut producers = HashMap::new();
        while pos < data.len() {
            let rest = &data[pos..];
            let Ok(h) = BatchHeader::parse(rest) else {
                break;
            };
            if h.total_len() > rest.len() {
                break;
            }
            if batch::verify_crc(&rest[..h.total_len()]).is_err() {
                break;
            }
            index.push(Entry {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
                epoch: h.partition_leader_epoch,
                pos: pos as u64,
                len: h.total_len() as u32,
            });
            next_offset = h.last_offset() + 1;
            remember(&mut producers, &h);
            pos += h.total_len();
        }
        if pos < data.len() {
            tracing::warn!(
                target: "kafkit::broker",
                path = %path.display(),
                kept = pos,
                dropped = data.len() - pos,
                "truncating torn or corrupt tail of log"
            );
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        // DeleteRecords moves the start forward logically; it is kept in a checkpoint file.
        let checkpoint = std::fs::read_to_string(dir.join("log-start-offset"))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok());
        let first = index.first().map_or(next_offset, |e| e.base_offset);
        Ok(Self {
            path,
            file,
            start_offset: checkpoint.map_or(first, |c| c.max(first).min(next_offset)),
            index,
            next_offset,
            size: pos as u64,
            producers,
        })
    }

    /// Offset the next appended record gets (the log end offset).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.start_offset
    }

    /// Makes `offset` the new log start (DeleteRecords): records below it are no longer
    /// served. Returns the new start. The file keeps the bytes until segments and retention
    /// can drop whole segments.
    pub fn delete_records_before(&mut self, offset: i64) -> std::io::Result<i64> {
        let offset = offset.clamp(self.start_offset, self.next_offset);
        if offset != self.start_offset {
            let dir = self.path.parent().expect("log in a directory");
            let tmp = dir.join("log-start-offset.tmp");
            std::fs::write(&tmp, format!("{offset}\n"))?;
            std::fs::rename(&tmp, dir.join("log-start-offset"))?;
            self.start_offset = offset;
        }
        Ok(offset)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` that the log has, and its
    /// end offset (the first offset of a later epoch, or the log end).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        match self.index.iter().position(|e| e.epoch > epoch) {
            Some(0) => (-1, self.index[0].base_offset),
            Some(i) => (self.index[i - 1].epoch, self.index[i].base_offset),
            None => (self.index.last().map_or(-1, |e| e.epoch), self.next_offset),
        }
    }

    fn check_sequence(known: Option<&ProducerEntry>, h: &BatchHeader) -> SeqCheck {
        if h.producer_id < 0 {
            return SeqCheck::Append;
        }
        let Some(p) = known else {
            // A producer new to this partition starts at sequence 0.
            return if h.base_sequence == 0 {
                SeqCheck::Append
            } else {
                SeqCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        };
        if h.producer_epoch < p.epoch {
            return SeqCheck::Reject(INVALID_PRODUCER_EPOCH);
        }
        if h.producer_epoch > p.epoch {
            return if h.base_sequence == 0 {
                SeqCheck::Append
            } else {
                SeqCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        let last = last_sequence(h);
        if let Some((_, _, base)) = p
            .batches
            .iter()
            .find(|(f, l, _)| *f == h.base_sequence && *l == last)
        {
            return SeqCheck::Duplicate(*base);
        }
        let expected = p
            .batches
            .back()
            .map_or(0, |(_, l, _)| if *l == i32::MAX { 0 } else { l + 1 });
        if h.base_sequence != expected {
            return SeqCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER);
        }
        SeqCheck::Append
    }

    /// Appends validated batches, assigning offsets, and returns the base offset. Idempotent
    /// batches are checked against the producer's sequence: a retried batch that is already in
    /// the log is not written again and its original offset is returned (Kafka's answer to a
    /// DUPLICATE_SEQUENCE_NUMBER); a gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an old epoch is
    /// INVALID_PRODUCER_EPOCH.
    pub fn append(&mut self, batches: &[&[u8]], leader_epoch: i32) -> Result<i64, AppendError> {
        let mut headers = Vec::with_capacity(batches.len());
        let mut first_base = None;
        // Later batches of the same request continue the sequence of earlier ones: check them
        // against the state as it will be, and keep it only if every batch passes.
        let mut overlay: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut next_check = self.next_offset;
        for b in batches {
            let h = BatchHeader::parse(b).map_err(std::io::Error::other)?;
            let known = overlay
                .get(&h.producer_id)
                .or_else(|| self.producers.get(&h.producer_id));
            match Self::check_sequence(known, &h) {
                SeqCheck::Append => {
                    if h.producer_id >= 0 && !overlay.contains_key(&h.producer_id) {
                        let current = self
                            .producers
                            .get(&h.producer_id)
                            .cloned()
                            .unwrap_or_default();
                        overlay.insert(h.producer_id, current);
                    }
                    remember(
                        &mut overlay,
                        &BatchHeader {
                            base_offset: next_check,
                            ..h
                        },
                    );
                    next_check += h.last_offset_delta as i64 + 1;
                    headers.push(Some(h));
                }
                SeqCheck::Duplicate(base) => {
                    first_base.get_or_insert(base);
                    headers.push(None);
                }
                SeqCheck::Reject(code) => return Err(AppendError::Code(code)),
            }
        }
        let base = self.next_offset;
        let mut buf = BytesMut::with_capacity(batches.iter().map(|b| b.len()).sum());
        let mut entries = Vec::with_capacity(batches.len());
        let mut next = base;
        for (b, h) in batches.iter().zip(headers) {
            let Some(h) = h else { continue };
            first_base.get_or_insert(next);
            let start = buf.len();
            buf.extend_from_slice(b);
            let slice = &mut buf[start..];
            batch::set_base_offset(slice, next);
            batch::set_partition_leader_epoch(slice, leader_epoch);
            entries.push(Entry {
                base_offset: next,
                last_offset: next + h.last_offset_delta as i64,
                max_timestamp: h.max_timestamp,
                epoch: leader_epoch,
                pos: self.size + start as u64,
                len: b.len() as u32,
            });
            remember(
                &mut self.producers,
                &BatchHeader {
                    base_offset: next,
                    ..h
                },
            );
            next += h.last_offset_delta as i64 + 1;
        }
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        self.index.extend(entries);
        self.next_offset = next;
        Ok(first_base.unwrap_or(base))
    }

    /// Reads whole batches starting with the one containing `offset`, up to `max_bytes`, and
    /// only batches that end below `upto` (the high watermark for consumers, the log end for
    /// replication). The first batch is returned even when larger than `max_bytes` if
    /// `at_least_one` is set.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
        upto: i64,
    ) -> std::io::Result<Bytes> {
        let first = self.index.partition_point(|e| e.last_offset < offset);
        if first >= self.index.len() {
            return Ok(Bytes::new());
        }
        let start = self.index[first].pos;
        let mut end = start;
        for e in &self.index[first..] {
            if e.last_offset >= upto {
                break;
            }
            let would = e.pos + e.len as u64 - start;
            if would as usize > max_bytes && !(at_least_one && end == start) {
                break;
            }
            end = e.pos + e.len as u64;
        }
        if end == start {
            return Ok(Bytes::new());
        }
        let mut buf = vec![0u8; (end - start) as usize];
        self.file.read_exact_at(&mut buf, start)?;
        Ok(Bytes::from(buf))
    }

    /// Bytes of whole batches from `offset` that end below `upto`.
    pub fn bytes_after(&self, offset: i64, upto: i64) -> u64 {
        let first = self.index.partition_point(|e| e.last_offset < offset);
        let last = self.index.partition_point(|e| e.last_offset < upto);
        if first >= last {
            return 0;
        }
        let end = self.index[last - 1].pos + self.index[last - 1].len as u64;
        end - self.index[first].pos
    }

    /// Appends batches copied from the leader, keeping their offsets (replication).
    pub fn append_replicated(&mut self, data: &[u8]) -> std::io::Result<()> {
        let split = batch::split_batches(data).map_err(std::io::Error::other)?;
        let mut entries = Vec::with_capacity(split.batches.len());
        let mut next = self.next_offset;
        for range in &split.batches {
            let h = BatchHeader::parse(&data[range.clone()]).map_err(std::io::Error::other)?;
            if h.base_offset != next {
                return Err(std::io::Error::other(format!(
                    "replicated batch starts at {} but the log ends at {next}",
                    h.base_offset
                )));
            }
            entries.push(Entry {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
                epoch: h.partition_leader_epoch,
                pos: self.size + range.start as u64,
                len: range.len() as u32,
            });
            remember(&mut self.producers, &h);
            next = h.last_offset() + 1;
        }
        let used = data.len() - split.trailing;
        self.file.write_all(&data[..used])?;
        self.size += used as u64;
        self.index.extend(entries);
        self.next_offset = next;
        Ok(())
    }

    /// Drops every batch at or after `offset` (a returning replica truncating to the high
    /// watermark before it catches up). Batches are whole, so the log may keep a little less.
    pub fn truncate_to(&mut self, offset: i64) -> std::io::Result<()> {
        let keep = self.index.partition_point(|e| e.last_offset < offset);
        if keep == self.index.len() {
            return Ok(());
        }
        let size = self.index[keep].pos;
        self.file.set_len(size)?;
        self.index.truncate(keep);
        self.size = size;
        self.next_offset = self
            .index
            .last()
            .map_or(self.start_offset, |e| e.last_offset + 1);
        self.start_offset = self.start_offset.min(self.next_offset);
        Ok(())
    }

    /// First offset whose batch has a timestamp at or after `ts`, or the log end.
    pub fn offset_for_timestamp(&self, ts: i64) -> i64 {
        self.index
            .iter()
            .find(|e| e.max_timestamp >= ts)
            .map_or(self.next_offset, |e| e.base_offset)
    }

    /// Forces written data to stable storage.
    pub fn flush(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn remember(producers: &mut HashMap<i64, ProducerEntry>, h: &BatchHeader) {
    if h.producer_id < 0 {
        return;
    }
    let p = producers.entry(h.producer_id).or_default();
    if h.producer_epoch != p.epoch {
        p.epoch = h.producer_epoch;
        p.batches.clear();
    }
    p.batches
        .push_back((h.base_sequence, last_sequence(h), h.base_offset));
    if p.batches.len() > PRODUCER_BATCHES {
        p.batches.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafkit_protocol::records::{Compression, Record, TimestampType};

    fn batch(n: usize) -> Bytes {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1000 + i as i64,
                key: None,
                value: Some(Bytes::from_static(b"value")),
                headers: Default::default(),
            })
            .collect();
        batch::encode_records(&recs, Compression::None).unwrap()
    }

    fn idem_batch(pid: i64, epoch: i16, first_seq: i32, n: usize) -> Bytes {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: first_seq + i as i32,
                timestamp: 1000,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        batch::encode_records(&recs, Compression::None).unwrap()
    }

    #[test]
    fn idempotent_sequences_dedup_and_reject_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let code = |r: Result<i64, AppendError>| match r {
            Err(AppendError::Code(c)) => c,
            other => panic!("expected a code, got {other:?}"),
        };
        {
            let mut log = PartitionLog::open(dir.path()).unwrap();
            assert_eq!(log.append(&[&idem_batch(7, 0, 0, 3)], 0).unwrap(), 0);
            // a retried batch: same offsets back, nothing appended
            assert_eq!(log.append(&[&idem_batch(7, 0, 0, 3)], 0).unwrap(), 0);
            assert_eq!(log.next_offset(), 3);
            assert_eq!(log.append(&[&idem_batch(7, 0, 3, 2)], 0).unwrap(), 3);
            // a gap
            assert_eq!(code(log.append(&[&idem_batch(7, 0, 9, 1)], 0)), 45);
            // a new producer must start at 0
            assert_eq!(code(log.append(&[&idem_batch(8, 0, 4, 1)], 0)), 45);
            // a bumped epoch restarts at 0; the old epoch is fenced
            assert_eq!(log.append(&[&idem_batch(7, 1, 0, 1)], 0).unwrap(), 5);
            assert_eq!(code(log.append(&[&idem_batch(7, 0, 5, 1)], 0)), 47);
        }
        // state is rebuilt from the log on open
        let mut log = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(log.append(&[&idem_batch(7, 1, 0, 1)], 0).unwrap(), 5);
        assert_eq!(log.append(&[&idem_batch(7, 1, 1, 1)], 0).unwrap(), 6);
    }

    #[test]
    fn append_read_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let b3 = batch(3);
        let b2 = batch(2);
        {
            let mut log = PartitionLog::open(dir.path()).unwrap();
            assert_eq!(log.append(&[&b3], 0).unwrap(), 0);
            assert_eq!(log.append(&[&b2, &b3], 0).unwrap(), 3);
            assert_eq!(log.next_offset(), 8);
            let all = log.read(0, usize::MAX, true, i64::MAX).unwrap();
            assert_eq!(all.len(), b3.len() * 2 + b2.len());
            // offset 4 lives in the batch starting at 3
            let from4 = log.read(4, usize::MAX, true, i64::MAX).unwrap();
            assert_eq!(BatchHeader::parse(&from4).unwrap().base_offset, 3);
            // max_bytes smaller than one batch: one batch only when at_least_one
            assert_eq!(log.read(0, 1, true, i64::MAX).unwrap().len(), b3.len());
            assert!(log.read(0, 1, false, i64::MAX).unwrap().is_empty());
            // only batches below the high watermark
            assert_eq!(
                log.read(0, usize::MAX, true, 5).unwrap().len(),
                b3.len() + b2.len()
            );
            assert_eq!(log.read(0, usize::MAX, true, 3).unwrap().len(), b3.len());
            assert_eq!(log.bytes_after(0, 5), (b3.len() + b2.len()) as u64);
            assert_eq!(log.bytes_after(0, 3), b3.len() as u64);
            assert_eq!(log.bytes_after(0, 2), 0);
            log.flush().unwrap();
        }
        // tear the last batch
        let path = dir.path().join("00000000000000000000.log");
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        let log = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(log.next_offset(), 5);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (b3.len() + b2.len()) as u64
        );
    }
}
