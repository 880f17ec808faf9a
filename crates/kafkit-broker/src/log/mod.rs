//! Partition logs on disk.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! <data_dir>/FORMAT                      "kafkit-data 1"
//! <data_dir>/topics                      one line per topic: name partitions replication uuid
//!                                        [a=1,2,3;2,3,1;... a manual replica assignment]
//! <data_dir>/producer_ids                next idempotent producer id
//! <data_dir>/__consumer_offsets/offsets.log   see `group::offsets`
//! <data_dir>/broker-<id>/<topic>-<p>/<base offset, 20 digits>.log
//!                                        segments: concatenated v2 record batches with their
//!                                        offsets assigned, exactly as Kafka stores them
//! <data_dir>/broker-<id>/<topic>-<p>/log-start-offset   after DeleteRecords
//! <data_dir>/broker-<id>/<topic>-<p>/leader-epoch       the epoch of the last leadership
//!                                        change that made this replica the leader
//!
//! Small files are replaced atomically (temporary file, fsync, rename, directory fsync).
//! ```
//!
//! A log is a sequence of segments; the last one takes appends and is rolled when it would
//! pass `segment_bytes` or is older than `segment_ms`. Retention deletes whole old segments by
//! size (`retention_bytes`) or age (`retention_ms`, by the newest record timestamp in the
//! segment), and segments wholly below the log start offset.
//!
//! Recovery on open: the offset index is rebuilt by scanning every segment and checking every
//! batch's length, CRC-32C and offset order; at the first torn or corrupt batch the segment is
//! truncated and later segments are deleted, so nothing damaged is ever served. (There is no
//! on-disk offset index: the scan that checks every CRC builds it anyway.)
//!
//! Durability follows [`SyncPolicy`]: `EveryWrite` fsyncs before an append returns (an
//! acknowledged record survives a machine crash); `Interval` (the default, every second)
//! bounds the loss on a machine crash to that interval; `Never` leaves it to the OS and to
//! replication, as Kafka does by default. A process crash loses nothing in any mode: the data
//! is in the OS page cache. [`PartitionLog::simulate_crash`] drops what was not synced, for
//! tests.

mod files;
mod producers;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::storage::{self, Storage};
use bytes::{Bytes, BytesMut};
pub use files::{FileRef, OpenFiles, SegmentFile, DEFAULT_MAX_OPEN_FILES};
use kafkit_protocol::batch::{self, BatchHeader};
use producers::{Producers, SeqCheck};

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fsync before every append returns.
    EveryWrite,
    /// fsync in the background at this interval.
    Interval(Duration),
    /// Only at clean shutdown; the OS decides otherwise.
    Never,
}

/// Segment and retention settings of every partition log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll the active segment before it passes this many bytes (default 1 GiB).
    pub segment_bytes: u64,
    /// Roll the active segment once it is this old (default 7 days).
    pub segment_ms: Duration,
    /// Delete segments whose newest record is older than this (default 7 days; `None` keeps
    /// them).
    pub retention_ms: Option<Duration>,
    /// Delete old segments while the log is larger than this (default `None`: no limit).
    pub retention_bytes: Option<u64>,
    /// Sync policy (default every second).
    pub sync: SyncPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: Duration::from_secs(7 * 24 * 3600),
            retention_ms: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: None,
            sync: SyncPolicy::Interval(Duration::from_secs(1)),
        }
    }
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

#[derive(Debug)]
struct Segment {
    base: i64,
    file: SegmentFile,
    size: u64,
    synced: u64,
    created: SystemTime,
}

impl Segment {
    fn create(files: &Arc<OpenFiles>, dir: &Path, base: i64) -> std::io::Result<Self> {
        let file = SegmentFile::create(files, dir.join(format!("{base:020}.log")))?;
        Ok(Self {
            base,
            file,
            size: 0,
            synced: 0,
            created: SystemTime::now(),
        })
    }
}

/// One batch in the index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    /// Leader epoch stamped on the batch.
    epoch: i32,
    /// Base offset of the segment holding it.
    segment: i64,
    /// Position in that segment.
    pos: u64,
    len: u32,
    /// Bytes appended to the log before this batch (for byte counts across segments).
    cum: u64,
}

/// A segment with unsynced bytes: (base offset, its own file handle, size to mark synced).
pub type UnsyncedSegment = (i64, FileRef, u64);

/// An append-only, segmented log of record batches for one partition replica.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    files: Arc<OpenFiles>,
    segments: Vec<Segment>,
    index: VecDeque<Entry>,
    /// Offset of the first record served (moved by retention and DeleteRecords).
    start_offset: i64,
    next_offset: i64,
    /// Bytes ever appended (the `cum` of the next batch).
    total: u64,
    producers: Producers,
    /// Bumped whenever bytes are cut from a segment; a sync that started before a cut does
    /// not count for bytes written after it.
    cuts: u64,
    /// The last write or sync failed (cleared by the next good write): the replica is not
    /// fit to be in sync or to lead.
    failure: Option<String>,
    /// A failed write may have left bytes past the active segment's size that could not be
    /// cut off yet: they are cut before the next append.
    torn: bool,
    /// A sync failed: bytes past each segment's synced size may not be on disk even though
    /// reads return them (Linux can drop dirty pages after a failed write-back). The
    /// replica truncates to [`synced_offset`](Self::synced_offset) and catches up again.
    sync_failed: bool,
    /// The log start offset moved but could not be saved yet.
    start_unsaved: bool,
    /// The last leader epoch saved in this replica's directory (`leader-epoch`), -1 if none.
    saved_leader_epoch: i32,
}

fn segment_files(storage: &dyn Storage, dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut v = Vec::new();
    for p in storage.list_dir(dir)? {
        if p.extension().is_some_and(|x| x == "log") {
            if let Some(base) = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<i64>().ok())
            {
                v.push((base, p));
            }
        }
    }
    v.sort();
    Ok(v)
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir` with default settings.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        Self::open_with(dir, LogConfig::default())
    }

    /// Opens (creating if needed) the log in `dir` with its own budget of open files.
    pub fn open_with(dir: &Path, config: LogConfig) -> std::io::Result<Self> {
        Self::open_shared(
            dir,
            config,
            &OpenFiles::new(DEFAULT_MAX_OPEN_FILES, storage::disk()),
        )
    }

    /// Opens (creating if needed) the log in `dir`, recovering from a torn or corrupt tail;
    /// its segment files count against `files`. Only the active segment is left open.
    pub fn open_shared(
        dir: &Path,
        config: LogConfig,
        files: &Arc<OpenFiles>,
    ) -> std::io::Result<Self> {
        let storage = files.storage().clone();
        storage.create_dir_all(dir)?;
        let checkpoint = storage
            .read_file(&dir.join("log-start-offset"))
            .ok()
            .and_then(|s| String::from_utf8_lossy(&s).trim().parse::<i64>().ok());
        let mut log = Self {
            cuts: 0,
            failure: None,
            torn: false,
            sync_failed: false,
            start_unsaved: false,
            saved_leader_epoch: storage
                .read_file(&dir.join("leader-epoch"))
                .ok()
                .and_then(|s| String::from_utf8_lossy(&s).trim().parse::<i32>().ok())
                .unwrap_or(-1),
            dir: dir.to_owned(),
            config,
            files: files.clone(),
            segments: Vec::new(),
            index: VecDeque::new(),
            start_offset: 0,
            next_offset: 0,
            total: 0,
            producers: Producers::new(),
        };
        let found = segment_files(&*storage, dir)?;
        let mut damaged = false;
        for (base, path) in found {
            if damaged {
                tracing::warn!(target: "kafkit::broker", path = %path.display(), "deleting segment after a damaged one");
                storage.remove_file(&path)?;
                continue;
            }
            // The scan reads each segment whole (to check every CRC) and then closes it.
            let file = storage.open(&path, false)?;
            let data = storage::read_all(&*file)?;
            let created = file.modified().unwrap_or_else(|_| SystemTime::now());
            if log.segments.is_empty() {
                log.next_offset = base;
            }
            let mut pos = 0usize;
            while pos < data.len() {
                let rest = &data[pos..];
                let Ok(h) = BatchHeader::parse(rest) else {
                    break;
                };
                if h.total_len() > rest.len()
                    || h.base_offset < log.next_offset
                    || batch::verify_crc(&rest[..h.total_len()]).is_err()
                {
                    break;
                }
                log.index.push_back(Entry {
                    base_offset: h.base_offset,
                    last_offset: h.last_offset(),
                    max_timestamp: h.max_timestamp,
                    epoch: h.partition_leader_epoch,
                    segment: base,
                    pos: pos as u64,
                    len: h.total_len() as u32,
                    cum: log.total,
                });
                log.total += h.total_len() as u64;
                log.next_offset = h.last_offset() + 1;
                producers::remember(&mut log.producers, &h);
                pos += h.total_len();
            }
            if pos < data.len() {
                tracing::warn!(target: "kafkit::broker", path = %path.display(), kept = pos, dropped = data.len() - pos, "truncating torn or corrupt tail of log");
                file.set_len(pos as u64)?;
                file.sync()?;
                damaged = true;
            }
            drop(file);
            log.segments.push(Segment {
                base,
                file: SegmentFile::existing(files, path),
                size: pos as u64,
                synced: pos as u64,
                created,
            });
        }
        if log.segments.is_empty() {
            let base = checkpoint.unwrap_or(0).max(0);
            log.segments.push(Segment::create(files, dir, base)?);
            log.next_offset = base;
        }
        let first = log.index.front().map_or(log.next_offset, |e| e.base_offset);
        log.start_offset = checkpoint
            .map_or(first, |c| c.max(first))
            .min(log.next_offset);
        Ok(log)
    }

    /// Offset the next appended record gets (the log end offset).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// First offset still served.
    pub fn log_start_offset(&self) -> i64 {
        self.start_offset
    }

    /// The segment starting at offset `base` (one the index refers to).
    fn segment(&self, base: i64) -> &Segment {
        self.segments
            .iter()
            .find(|s| s.base == base)
            .expect("indexed segment exists")
    }

    /// `len` bytes at `pos` of segment `base`.
    fn read_span(&self, base: i64, pos: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        storage::read_exact_at(&*self.segment(base).file.get()?, &mut buf, pos)?;
        Ok(buf)
    }

    /// Bytes on disk.
    pub fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The active segment, rolled first if it is full or old enough for `incoming` bytes.
    fn active_for(&mut self, incoming: usize) -> std::io::Result<&mut Segment> {
        let active = self.segments.last().expect("a log has a segment");
        let age = SystemTime::now()
            .duration_since(active.created)
            .unwrap_or_default();
        if active.size > 0
            && (active.size + incoming as u64 > self.config.segment_bytes
                || age >= self.config.segment_ms)
        {
            let seg = Segment::create(&self.files, &self.dir, self.next_offset)?;
            tracing::debug!(target: "kafkit::broker", path = %seg.file.path().display(), "rolled segment");
            self.segments.push(seg);
        }
        Ok(self.segments.last_mut().expect("a log has a segment"))
    }

    /// Writes `data` to the active segment; returns (segment base, position). All or nothing:
    /// when the write (or, with `EveryWrite`, its fsync) fails, the segment is cut back to its
    /// last good size before the error is returned — or, if even that fails, before the next
    /// append — so a failed write never leaves bytes that a later one lands behind.
    fn write(&mut self, data: &[u8]) -> std::io::Result<(i64, u64)> {
        let result = self.try_write(data);
        match &result {
            Ok(_) => self.failure = None,
            Err(e) => {
                // Warn when the disk turns bad, not at every retry while it stays bad.
                if self.failure.is_none() {
                    tracing::warn!(target: "kafkit::broker", dir = %self.dir.display(), error = %e, "log write failed; nothing of it is kept");
                } else {
                    tracing::debug!(target: "kafkit::broker", dir = %self.dir.display(), error = %e, "log write failed again");
                }
                self.failure = Some(e.to_string());
            }
        }
        result
    }

    fn try_write(&mut self, data: &[u8]) -> std::io::Result<(i64, u64)> {
        let sync = self.config.sync == SyncPolicy::EveryWrite;
        if self.torn {
            // Cut the torn tail before a roll can leave it behind.
            let seg = self.segments.last().expect("a log has a segment");
            storage::append_or_cut(&*seg.file.get()?, seg.size, &[], false, &mut self.torn)?;
        }
        let mut torn = false;
        let seg = self.active_for(data.len())?;
        let (base, pos) = (seg.base, seg.size);
        let written = storage::append_or_cut(&*seg.file.get()?, pos, data, sync, &mut torn);
        if written.is_ok() {
            seg.size += data.len() as u64;
            if sync {
                seg.synced = seg.size;
            }
        }
        self.torn = torn;
        written?;
        Ok((base, pos))
    }

    /// Why the last write or sync failed, while it is the latest word on this log.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// True once a background sync failed, until [`resync`](Self::resync).
    pub fn sync_failed(&self) -> bool {
        self.sync_failed
    }

    /// Records a failed sync (see [`sync_failed`](Self::sync_failed)).
    pub fn mark_sync_failed(&mut self, e: &std::io::Error) {
        self.sync_failed = true;
        self.failure = Some(format!("sync failed: {e}"));
    }

    /// Replaces the segment, retention and sync settings (a topic's configs changed); they
    /// apply from the next append and retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The highest leader epoch this replica knows of: saved at a leadership change, or
    /// stamped on a batch in its log. A restarted cluster starts above it, so leader epochs
    /// never go back (clients ignore metadata with an older epoch than they have seen, KIP-320).
    pub fn known_leader_epoch(&self) -> i32 {
        let logged = self.index.iter().map(|e| e.epoch).max().unwrap_or(-1);
        logged.max(self.saved_leader_epoch)
    }

    /// Saves `epoch` as this partition's leader epoch (`leader-epoch` in the log directory).
    pub fn save_leader_epoch(&mut self, epoch: i32) -> std::io::Result<()> {
        self.files.storage().write_atomic(
            &self.dir.join("leader-epoch"),
            format!("{epoch}\n").as_bytes(),
        )?;
        self.saved_leader_epoch = epoch;
        Ok(())
    }

    /// Forgets a failed sync without truncating (the only copy is kept).
    pub fn clear_sync_failed(&mut self) {
        self.sync_failed = false;
        self.failure = None;
    }

    /// The offset below which every batch is known synced.
    pub fn synced_offset(&self) -> i64 {
        self.index
            .iter()
            .find(|e| e.pos + e.len as u64 > self.segment(e.segment).synced)
            .map_or(self.next_offset, |e| e.base_offset)
    }

    /// After a failed sync: drops what may not be on disk (everything from
    /// [`synced_offset`](Self::synced_offset)), to be copied again from the leader.
    pub fn resync(&mut self) -> std::io::Result<()> {
        let to = self.synced_offset();
        self.truncate_to(to)?;
        self.sync_failed = false;
        self.failure = None;
        Ok(())
    }

    /// Appends validated batches, assigning offsets, and returns the base offset. Idempotent
    /// batches are checked against the producer's sequence: a retried batch that is already in
    /// the log is not written again and its original offset is returned (Kafka's answer to a
    /// DUPLICATE_SEQUENCE_NUMBER); a gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an old epoch is
    /// INVALID_PRODUCER_EPOCH.
    pub fn append(&mut self, batches: &[&[u8]], leader_epoch: i32) -> Result<i64, AppendError> {
        let mut headers = Vec::with_capacity(batches.len());
        let mut first_base = None;
        // Later batches of one request continue the sequence of earlier ones: check each
        // against the state as it will be, and keep that state only if all pass.
        let mut overlay = Producers::new();
        let mut next = self.next_offset;
        for b in batches {
            let h = BatchHeader::parse(b).map_err(std::io::Error::other)?;
            let known = overlay
                .get(&h.producer_id)
                .or_else(|| self.producers.get(&h.producer_id));
            match producers::check(known, &h) {
                SeqCheck::Append => {
                    if h.producer_id >= 0 && !overlay.contains_key(&h.producer_id) {
                        let current = self
                            .producers
                            .get(&h.producer_id)
                            .cloned()
                            .unwrap_or_default();
                        overlay.insert(h.producer_id, current);
                    }
                    producers::remember(
                        &mut overlay,
                        &BatchHeader {
                            base_offset: next,
                            ..h
                        },
                    );
                    next += h.last_offset_delta as i64 + 1;
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
        let mut placed = Vec::with_capacity(batches.len());
        let mut next = base;
        for (b, h) in batches.iter().zip(headers) {
            let Some(h) = h else { continue };
            first_base.get_or_insert(next);
            let start = buf.len();
            buf.extend_from_slice(b);
            let slice = &mut buf[start..];
            batch::set_base_offset(slice, next);
            batch::set_partition_leader_epoch(slice, leader_epoch);
            placed.push((
                next,
                next + h.last_offset_delta as i64,
                h.max_timestamp,
                start,
                b.len(),
            ));
            next += h.last_offset_delta as i64 + 1;
        }
        if !buf.is_empty() {
            let (segment, pos) = self.write(&buf)?;
            for (base_offset, last_offset, max_timestamp, start, len) in placed {
                self.index.push_back(Entry {
                    base_offset,
                    last_offset,
                    max_timestamp,
                    epoch: leader_epoch,
                    segment,
                    pos: pos + start as u64,
                    len: len as u32,
                    cum: self.total,
                });
                self.total += len as u64;
            }
            self.next_offset = next;
        }
        self.producers.extend(overlay);
        Ok(first_base.unwrap_or(base))
    }

    /// Appends batches copied from the leader, keeping their offsets (replication).
    pub fn append_replicated(&mut self, data: &[u8]) -> std::io::Result<()> {
        let split = batch::split_batches(data).map_err(std::io::Error::other)?;
        let mut headers = Vec::with_capacity(split.batches.len());
        let mut next = self.next_offset;
        for range in &split.batches {
            let h = BatchHeader::parse(&data[range.clone()]).map_err(std::io::Error::other)?;
            if h.base_offset != next {
                return Err(std::io::Error::other(format!(
                    "replicated batch starts at {} but the log ends at {next}",
                    h.base_offset
                )));
            }
            next = h.last_offset() + 1;
            headers.push((h, range.clone()));
        }
        let used = data.len() - split.trailing;
        if used == 0 {
            return Ok(());
        }
        let (segment, pos) = self.write(&data[..used])?;
        for (h, range) in headers {
            self.index.push_back(Entry {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
                epoch: h.partition_leader_epoch,
                segment,
                pos: pos + range.start as u64,
                len: range.len() as u32,
                cum: self.total,
            });
            self.total += range.len() as u64;
            producers::remember(&mut self.producers, &h);
        }
        self.next_offset = next;
        Ok(())
    }

    /// Reads whole batches starting with the one containing `offset`, up to `max_bytes`, only
    /// batches that end below `upto` (the high watermark for consumers, the log end for
    /// replication), and from one segment (the next read continues in the next). The first
    /// batch is returned even when larger than `max_bytes` if `at_least_one` is set.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
        upto: i64,
    ) -> std::io::Result<Bytes> {
        let first = self.index.partition_point(|e| e.last_offset < offset);
        let Some(e0) = self.index.get(first) else {
            return Ok(Bytes::new());
        };
        let mut end = e0.pos;
        for e in self.index.range(first..) {
            if e.segment != e0.segment || e.last_offset >= upto {
                break;
            }
            let would = e.pos + e.len as u64 - e0.pos;
            if would as usize > max_bytes && !(at_least_one && end == e0.pos) {
                break;
            }
            end = e.pos + e.len as u64;
        }
        if end == e0.pos {
            return Ok(Bytes::new());
        }
        let buf = self.read_span(e0.segment, e0.pos, (end - e0.pos) as usize)?;
        Ok(Bytes::from(buf))
    }

    /// Bytes of whole batches from `offset` that end below `upto`.
    pub fn bytes_after(&self, offset: i64, upto: i64) -> u64 {
        let first = self.index.partition_point(|e| e.last_offset < offset);
        let last = self.index.partition_point(|e| e.last_offset < upto);
        if first >= last {
            return 0;
        }
        let l = &self.index[last - 1];
        l.cum + l.len as u64 - self.index[first].cum
    }

    /// ListOffsets by time: the first record below `upto` (the high watermark) whose timestamp
    /// is at or after `ts`, as (offset, its timestamp); `None` when there is none (Kafka then
    /// answers offset -1). The index keeps each batch's largest timestamp, so only the first
    /// batch that can hold such a record is read and decoded.
    pub fn offset_for_timestamp(&self, ts: i64, upto: i64) -> std::io::Result<Option<(i64, i64)>> {
        for e in &self.index {
            if e.base_offset >= upto {
                break;
            }
            if e.max_timestamp < ts || e.last_offset < self.start_offset {
                continue;
            }
            let found = self
                .records_of(e)?
                .into_iter()
                .find(|r| r.timestamp >= ts && r.offset >= self.start_offset && r.offset < upto);
            if let Some(r) = found {
                return Ok(Some((r.offset, r.timestamp)));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3, KIP-734): the record below `upto` with the largest
    /// timestamp (the first of equals), as (offset, timestamp).
    pub fn max_timestamp_offset(&self, upto: i64) -> std::io::Result<Option<(i64, i64)>> {
        let best = self
            .index
            .iter()
            .filter(|e| e.last_offset >= self.start_offset && e.base_offset < upto)
            .fold(None::<&Entry>, |best, e| match best {
                Some(b) if b.max_timestamp >= e.max_timestamp => Some(b),
                _ => Some(e),
            });
        let Some(e) = best else {
            return Ok(None);
        };
        let mut found: Option<(i64, i64)> = None;
        for r in self.records_of(e)? {
            if r.offset >= self.start_offset
                && r.offset < upto
                && found.is_none_or(|(_, t)| r.timestamp > t)
            {
                found = Some((r.offset, r.timestamp));
            }
        }
        Ok(found)
    }

    /// The records of one indexed batch.
    fn records_of(&self, e: &Entry) -> std::io::Result<Vec<kafkit_protocol::records::Record>> {
        let buf = self.read_span(e.segment, e.pos, e.len as usize)?;
        batch::decode_records(&Bytes::from(buf)).map_err(std::io::Error::other)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` that the log has, and its
    /// end offset (the first offset of a later epoch, or the log end).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        match self.index.iter().position(|e| e.epoch > epoch) {
            Some(0) => (-1, self.index[0].base_offset),
            Some(i) => (self.index[i - 1].epoch, self.index[i].base_offset),
            None => (self.index.back().map_or(-1, |e| e.epoch), self.next_offset),
        }
    }

    /// Drops every batch at or after `offset` (a returning replica truncating to the high
    /// watermark before it catches up). Batches are whole, so the log may keep a little less.
    pub fn truncate_to(&mut self, offset: i64) -> std::io::Result<()> {
        self.cuts += 1;
        let keep = self.index.partition_point(|e| e.last_offset < offset);
        let Some(cut) = self.index.get(keep).copied() else {
            return Ok(());
        };
        while self.segments.len() > 1 && self.segments.last().is_some_and(|s| s.base > cut.segment)
        {
            let s = self.segments.pop().expect("checked");
            self.files.storage().remove_file(s.file.path())?;
        }
        let seg = self.segments.last_mut().expect("a log has a segment");
        seg.file.get()?.set_len(cut.pos)?;
        self.torn = false;
        seg.size = cut.pos;
        seg.synced = seg.synced.min(cut.pos);
        self.index.truncate(keep);
        self.total = cut.cum;
        self.next_offset = self
            .index
            .back()
            .map_or(cut.base_offset, |e| e.last_offset + 1);
        self.start_offset = self.start_offset.min(self.next_offset);
        producers::truncate(&mut self.producers, self.next_offset);
        Ok(())
    }

    /// Makes `offset` the new log start (DeleteRecords): records below it are no longer
    /// served, segments wholly below it are deleted now (a full disk gets space back), and the
    /// new start is saved. If saving fails (a full disk), the new start holds in memory and is
    /// saved by a later [`flush`](Self::flush) — as Kafka checkpoints log start offsets in the
    /// background; a crash before that brings the deleted records back, never loses others.
    pub fn delete_records_before(&mut self, offset: i64) -> std::io::Result<i64> {
        let offset = offset.clamp(self.start_offset, self.next_offset);
        if offset != self.start_offset {
            self.start_offset = offset;
            self.start_unsaved = true;
            if let Err(e) = self.enforce_retention(SystemTime::now()) {
                tracing::warn!(target: "kafkit::broker", dir = %self.dir.display(), error = %e, "deleting segments below the new log start failed");
            }
            if let Err(e) = self.save_start() {
                tracing::warn!(target: "kafkit::broker", dir = %self.dir.display(), error = %e, "saving the log start offset failed; retrying at the next flush");
            }
        }
        Ok(offset)
    }

    fn save_start(&mut self) -> std::io::Result<()> {
        if self.start_unsaved {
            self.files.storage().write_atomic(
                &self.dir.join("log-start-offset"),
                format!("{}\n", self.start_offset).as_bytes(),
            )?;
            self.start_unsaved = false;
        }
        Ok(())
    }

    /// Deletes old segments as the retention settings say (never the active one). Returns how
    /// many were deleted.
    pub fn enforce_retention(&mut self, now: SystemTime) -> std::io::Result<usize> {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let next_base = self.segments[1].base;
            let size: u64 = self.size();
            let newest_ts = self
                .index
                .iter()
                .take_while(|e| e.segment == oldest.base)
                .map(|e| e.max_timestamp)
                .max()
                .unwrap_or(i64::MIN);
            let below_start = next_base <= self.start_offset;
            let too_big = self
                .config
                .retention_bytes
                .is_some_and(|limit| size - oldest.size >= limit);
            let too_old = self
                .config
                .retention_ms
                .is_some_and(|ms| newest_ts < now_ms - ms.as_millis() as i64);
            if !(below_start || too_big || too_old) {
                break;
            }
            let seg = &self.segments[0];
            self.files.storage().remove_file(seg.file.path())?;
            let seg = self.segments.remove(0);
            while self.index.front().is_some_and(|e| e.segment == seg.base) {
                self.index.pop_front();
            }
            self.start_offset = self.start_offset.max(next_base);
            tracing::info!(target: "kafkit::broker", path = %seg.file.path().display(), below_start, too_big, too_old, "deleted segment (retention)");
            deleted += 1;
        }
        Ok(deleted)
    }

    /// What [`flush`](Self::flush) would sync, as independent file handles: (segment base,
    /// handle, size to mark synced). Syncing them needs no lock on the log, so appends and
    /// fetches go on while the disk works; [`mark_synced`](Self::mark_synced) records the
    /// result.
    pub fn unsynced(&self) -> std::io::Result<(u64, Vec<UnsyncedSegment>)> {
        let handles = self
            .segments
            .iter()
            .filter(|s| s.synced < s.size)
            .map(|s| Ok((s.base, s.file.get()?, s.size)))
            .collect::<std::io::Result<_>>()?;
        Ok((self.cuts, handles))
    }

    /// Records that segment `base` is synced up to `size` (after syncing an [`unsynced`]
    /// handle). A segment truncated meanwhile keeps the smaller of the two.
    ///
    /// [`unsynced`]: Self::unsynced
    pub fn mark_synced(&mut self, cuts: u64, base: i64, size: u64) {
        if cuts != self.cuts {
            return;
        }
        if let Some(s) = self.segments.iter_mut().find(|s| s.base == base) {
            s.synced = s.synced.max(size.min(s.size));
        }
    }

    /// Forces written data (and an unsaved log start) to stable storage.
    pub fn flush(&mut self) -> std::io::Result<()> {
        for s in &mut self.segments {
            if s.synced < s.size {
                s.file.get()?.sync()?;
                s.synced = s.size;
            }
        }
        self.save_start()
    }

    /// Saves a log start offset that could not be saved when it moved.
    pub fn save_pending(&mut self) -> std::io::Result<()> {
        self.save_start()
    }

    /// Drops every byte not yet synced, as a machine crash would (for fault injection).
    pub fn simulate_crash(&mut self) -> std::io::Result<()> {
        self.cuts += 1;
        for s in &mut self.segments {
            if s.synced < s.size {
                s.file.get()?.set_len(s.synced)?;
                s.size = s.synced;
            }
        }
        Ok(())
    }

    /// The directory of this log.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafkit_protocol::codes;
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
            assert_eq!(
                code(log.append(&[&idem_batch(7, 0, 9, 1)], 0)),
                codes::OUT_OF_ORDER_SEQUENCE_NUMBER
            );
            // a new producer must start at 0
            assert_eq!(
                code(log.append(&[&idem_batch(8, 0, 4, 1)], 0)),
                codes::OUT_OF_ORDER_SEQUENCE_NUMBER
            );
            // a bumped epoch restarts at 0; the old epoch is fenced
            assert_eq!(log.append(&[&idem_batch(7, 1, 0, 1)], 0).unwrap(), 5);
            assert_eq!(
                code(log.append(&[&idem_batch(7, 0, 5, 1)], 0)),
                codes::INVALID_PRODUCER_EPOCH
            );
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
        assert!(path.exists());
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        let log = PartitionLog::open(dir.path()).unwrap();
        assert_eq!(log.next_offset(), 5);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (b3.len() + b2.len()) as u64
        );
    }

    #[test]
    fn replicate_and_truncate() {
        let leader_dir = tempfile::tempdir().unwrap();
        let follower_dir = tempfile::tempdir().unwrap();
        let mut leader = PartitionLog::open(leader_dir.path()).unwrap();
        leader.append(&[&batch(3), &batch(2)], 0).unwrap();
        let mut follower = PartitionLog::open(follower_dir.path()).unwrap();
        let data = leader
            .read(0, usize::MAX, true, leader.next_offset())
            .unwrap();
        follower.append_replicated(&data).unwrap();
        assert_eq!(follower.next_offset(), 5);
        // a batch that does not continue the log is refused
        assert!(follower.append_replicated(&data).is_err());
        follower.truncate_to(3).unwrap();
        assert_eq!(follower.next_offset(), 3);
        follower.truncate_to(0).unwrap();
        assert_eq!(follower.next_offset(), 0);
        drop(follower);
        assert_eq!(
            PartitionLog::open(follower_dir.path())
                .unwrap()
                .next_offset(),
            0
        );
    }

    #[test]
    fn epochs_and_deleted_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path()).unwrap();
        log.append(&[&batch(3)], 0).unwrap(); // 0..3 in epoch 0
        log.append(&[&batch(2)], 2).unwrap(); // 3..5 in epoch 2
        assert_eq!(log.end_offset_for_epoch(0), (0, 3));
        assert_eq!(log.end_offset_for_epoch(1), (0, 3));
        assert_eq!(log.end_offset_for_epoch(2), (2, 5));
        assert_eq!(log.delete_records_before(4).unwrap(), 4);
        assert_eq!(
            log.delete_records_before(2).unwrap(),
            4,
            "the start never moves back"
        );
        assert_eq!(
            log.delete_records_before(99).unwrap(),
            5,
            "clamped to the log end"
        );
        drop(log);
        assert_eq!(
            PartitionLog::open(dir.path()).unwrap().log_start_offset(),
            5
        );
    }

    fn small_segments(retention_bytes: Option<u64>) -> LogConfig {
        // The test records are stamped in 1970, so age-based retention stays off here.
        LogConfig {
            segment_bytes: 300,
            retention_bytes,
            retention_ms: None,
            sync: SyncPolicy::Never,
            ..LogConfig::default()
        }
    }

    #[test]
    fn segments_roll_reopen_and_read_across() {
        let dir = tempfile::tempdir().unwrap();
        let b = batch(3);
        {
            let mut log = PartitionLog::open_with(dir.path(), small_segments(None)).unwrap();
            for _ in 0..10 {
                log.append(&[&b], 0).unwrap();
            }
            assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
            // a read stops at the end of a segment; the next read continues in the next one
            let mut offset = 0;
            let mut seen = 0;
            while offset < log.next_offset() {
                let data = log.read(offset, usize::MAX, true, i64::MAX).unwrap();
                let recs = kafkit_protocol::batch::decode_records(&data).unwrap();
                seen += recs.len();
                offset = recs.last().unwrap().offset + 1;
            }
            assert_eq!(seen, 30);
            assert_eq!(log.bytes_after(0, i64::MAX), log.size());
            log.flush().unwrap();
        }
        let log = PartitionLog::open_with(dir.path(), small_segments(None)).unwrap();
        assert_eq!(log.next_offset(), 30);
        assert_eq!(log.bytes_after(3, i64::MAX), log.size() - b.len() as u64);
    }

    #[test]
    fn retention_by_bytes_and_below_start() {
        let dir = tempfile::tempdir().unwrap();
        let b = batch(3);
        let mut log = PartitionLog::open_with(dir.path(), small_segments(Some(600))).unwrap();
        for _ in 0..10 {
            log.append(&[&b], 0).unwrap();
        }
        let deleted = log.enforce_retention(SystemTime::now()).unwrap();
        assert!(
            deleted > 0 && log.size() <= 600 + 300,
            "deleted {deleted}, size {}",
            log.size()
        );
        assert!(log.log_start_offset() > 0);
        assert_eq!(log.next_offset(), 30);
        let data = log
            .read(log.log_start_offset(), usize::MAX, true, i64::MAX)
            .unwrap();
        assert!(!data.is_empty());
        let start = log.log_start_offset();
        drop(log);
        assert_eq!(
            PartitionLog::open_with(dir.path(), small_segments(Some(600)))
                .unwrap()
                .log_start_offset(),
            start
        );
        // DeleteRecords past a whole segment drops it at once (a full disk gets space back)
        let mut log = PartitionLog::open_with(dir.path(), small_segments(None)).unwrap();
        let before = log.segment_count();
        log.delete_records_before(27).unwrap();
        assert!(log.segment_count() < before);
        assert_eq!(log.log_start_offset(), 27);
    }

    #[test]
    fn retention_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_ms: Some(Duration::from_secs(3600)),
            ..small_segments(None)
        };
        let mut log = PartitionLog::open_with(dir.path(), cfg).unwrap();
        for _ in 0..10 {
            log.append(&[&batch(3)], 0).unwrap(); // stamped in 1970: far too old
        }
        assert!(log.enforce_retention(SystemTime::now()).unwrap() >= 3);
        assert_eq!(log.segment_count(), 1, "only the active segment stays");
    }

    #[test]
    fn crash_drops_unsynced_data_and_every_write_keeps_it() {
        for (sync, survives) in [(SyncPolicy::Never, 3), (SyncPolicy::EveryWrite, 6)] {
            let dir = tempfile::tempdir().unwrap();
            let cfg = LogConfig {
                sync,
                ..LogConfig::default()
            };
            let mut log = PartitionLog::open_with(dir.path(), cfg.clone()).unwrap();
            log.append(&[&batch(3)], 0).unwrap();
            log.flush().unwrap();
            log.append(&[&batch(3)], 0).unwrap();
            log.simulate_crash().unwrap();
            drop(log);
            assert_eq!(
                PartitionLog::open_with(dir.path(), cfg)
                    .unwrap()
                    .next_offset(),
                survives,
                "{sync:?}"
            );
        }
    }

    mod faults {
        use super::*;
        use crate::storage::{Fault, FaultRule, FaultyStorage, Op};

        fn faulty_log(dir: &Path, disk: &FaultyStorage, sync: SyncPolicy) -> PartitionLog {
            let cfg = LogConfig {
                sync,
                ..LogConfig::default()
            };
            PartitionLog::open_shared(dir, cfg, &OpenFiles::new(16, Arc::new(disk.clone())))
                .unwrap()
        }

        /// Every record of the log, by offset, read back in one pass.
        fn offsets(log: &PartitionLog) -> Vec<i64> {
            let data = log.read(0, usize::MAX, true, i64::MAX).unwrap();
            let recs = batch::decode_records(&data).unwrap();
            recs.iter().map(|r| r.offset).collect()
        }

        #[test]
        fn a_full_disk_mid_batch_keeps_nothing_of_it_and_space_returning_heals() {
            let dir = tempfile::tempdir().unwrap();
            let disk = FaultyStorage::new();
            let mut log = faulty_log(dir.path(), &disk, SyncPolicy::Never);
            let b = batch(5);
            log.append(&[&b], 0).unwrap();
            // Room for half of the next batch: write(2) writes that half, then ENOSPC.
            disk.set_capacity(Some(disk.used() + b.len() as u64 / 2));
            for _ in 0..3 {
                match log.append(&[&b], 0) {
                    Err(AppendError::Io(e)) => assert!(storage::is_no_space(&e), "{e}"),
                    other => panic!("{other:?}"),
                }
                assert!(log.failure().is_some());
                assert_eq!(log.next_offset(), 5);
                assert_eq!(log.size(), b.len() as u64);
                assert_eq!(disk.used(), b.len() as u64, "the torn half was cut off");
            }
            disk.set_capacity(None);
            assert_eq!(log.append(&[&b], 0).unwrap(), 5);
            assert!(log.failure().is_none());
            assert_eq!(offsets(&log), (0..10).collect::<Vec<_>>());
            drop(log);
            let log = faulty_log(dir.path(), &disk, SyncPolicy::Never);
            assert_eq!(offsets(&log), (0..10).collect::<Vec<_>>());
        }

        #[test]
        fn a_torn_write_that_cannot_be_cut_at_once_is_cut_before_the_next() {
            let dir = tempfile::tempdir().unwrap();
            let disk = FaultyStorage::new();
            let mut log = faulty_log(dir.path(), &disk, SyncPolicy::Never);
            let b = batch(4);
            log.append(&[&b], 0).unwrap();
            // 10 bytes land, then EIO; the cut fails too.
            disk.inject(FaultRule::times(Op::Append, Fault::Short(10), 1));
            disk.inject(FaultRule::times(Op::Append, Fault::Io, 1));
            disk.inject(FaultRule::times(Op::SetLen, Fault::Io, 1));
            assert!(log.append(&[&b], 0).is_err());
            let path = dir.path().join(format!("{:020}.log", 0));
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                b.len() as u64 + 10,
                "torn bytes are still there"
            );
            assert_eq!(log.append(&[&b], 0).unwrap(), 4);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * b.len() as u64);
            drop(log);
            let log = faulty_log(dir.path(), &disk, SyncPolicy::Never);
            assert_eq!(offsets(&log), (0..8).collect::<Vec<_>>());
            assert_eq!(disk.faults_applied(), 3);
        }

        #[test]
        fn a_failed_fsync_is_never_acknowledged() {
            let dir = tempfile::tempdir().unwrap();
            let disk = FaultyStorage::new();
            let mut log = faulty_log(dir.path(), &disk, SyncPolicy::EveryWrite);
            let b = batch(3);
            log.append(&[&b], 0).unwrap();
            disk.inject(FaultRule::times(Op::Sync, Fault::Io, 1));
            assert!(log.append(&[&b], 0).is_err());
            assert_eq!(log.next_offset(), 3);
            assert_eq!(log.append(&[&b], 0).unwrap(), 3);
            drop(log);
            let log = faulty_log(dir.path(), &disk, SyncPolicy::EveryWrite);
            assert_eq!(offsets(&log), (0..6).collect::<Vec<_>>());
        }

        #[test]
        fn a_failed_background_sync_drops_what_it_covered_for_recopying() {
            let dir = tempfile::tempdir().unwrap();
            let disk = FaultyStorage::new();
            let mut log = faulty_log(dir.path(), &disk, SyncPolicy::Never);
            let b = batch(2);
            log.append(&[&b], 0).unwrap();
            log.flush().unwrap();
            log.append(&[&b], 0).unwrap();
            log.append(&[&b], 0).unwrap();
            assert_eq!(log.synced_offset(), 2);
            disk.inject(FaultRule::times(Op::Sync, Fault::Io, 1));
            let e = log.flush().unwrap_err();
            log.mark_sync_failed(&e);
            assert!(log.sync_failed());
            log.resync().unwrap();
            assert_eq!(log.next_offset(), 2);
            assert!(!log.sync_failed() && log.failure().is_none());
        }

        #[test]
        fn delete_records_frees_space_on_a_full_disk_and_saves_the_start_later() {
            let dir = tempfile::tempdir().unwrap();
            let disk = FaultyStorage::new();
            let cfg = LogConfig {
                segment_bytes: 300,
                sync: SyncPolicy::Never,
                retention_ms: None,
                ..LogConfig::default()
            };
            let files = OpenFiles::new(16, Arc::new(disk.clone()));
            let mut log = PartitionLog::open_shared(dir.path(), cfg.clone(), &files).unwrap();
            let b = batch(3);
            for _ in 0..6 {
                log.append(&[&b], 0).unwrap();
            }
            let used = disk.used();
            disk.set_capacity(Some(used));
            assert!(log.append(&[&b], 0).is_err(), "the disk is full");
            assert_eq!(log.delete_records_before(15).unwrap(), 15);
            assert!(
                disk.used() < used,
                "segments below the new start were deleted"
            );
            assert_eq!(log.log_start_offset(), 15);
            // The start offset was saved, or will be at the next flush.
            disk.set_capacity(None);
            log.flush().unwrap();
            drop(log);
            let log = PartitionLog::open_shared(dir.path(), cfg, &files).unwrap();
            assert_eq!(log.log_start_offset(), 15);
        }
    }
}
