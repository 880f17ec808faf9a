//! Committed offsets, persisted like Kafka's `__consumer_offsets`: an append-only log replayed on
//! start.
//!
//! Format (version 1) of `offsets.log`: records of `[u32 len][u32 crc32c(payload)][payload]`,
//! payload = `group: str16, topic: str16, partition: i32, offset: i64, leader_epoch: i32,
//! metadata: str16 (0xFFFF = null)`, all big-endian. A torn or corrupt tail is truncated on open.
//! An offset of -1 deletes the entry.
//!
//! A commit is acknowledged only after its records are written and fsynced. A write or sync
//! that fails is cut off the file (back to the last good length) before the error is
//! returned, or before the next commit if cutting fails too, and the commit is not applied.
//!
//! Two locks, so a slow disk stalls nobody but the committers: the file's (held across the
//! write and fsync, by one commit at a time, on a blocking thread — see the broker's
//! concurrency rule in the crate docs) and the map's (held only to look up or apply). It is
//! not under the group coordinator's lock: Join, Sync and Heartbeat never wait for a disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::storage::{self, Storage, StorageFile};

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the committed record, or -1.
    pub leader_epoch: i32,
    /// Application metadata.
    pub metadata: Option<String>,
}

/// Key: (group, topic, partition).
pub type OffsetKey = (String, String, i32);

/// The committed offsets of every group, backed by a file.
#[derive(Debug)]
pub struct OffsetStore {
    /// Taken first, for the whole of a write (then `offsets`, briefly, to apply it).
    file: Mutex<OffsetFile>,
    offsets: Mutex<BTreeMap<OffsetKey, Committed>>,
}

#[derive(Debug)]
struct OffsetFile {
    file: Arc<dyn StorageFile>,
    /// Bytes of whole, synced commits: where the next one starts.
    good_len: u64,
    /// A failed commit's bytes may still be past `good_len`.
    torn: bool,
}

fn put_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            let b = &s.as_bytes()[..s.len().min(0xFFFE)];
            buf.extend_from_slice(&(b.len() as u16).to_be_bytes());
            buf.extend_from_slice(b);
        }
        None => buf.extend_from_slice(&0xFFFFu16.to_be_bytes()),
    }
}

struct Cursor<'a>(&'a [u8]);
impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn str(&mut self) -> Option<Option<String>> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        if len == 0xFFFF {
            return Some(None);
        }
        Some(Some(
            String::from_utf8_lossy(self.take(len as usize)?).into_owned(),
        ))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn parse(payload: &[u8]) -> Option<(OffsetKey, Committed)> {
    let mut c = Cursor(payload);
    let group = c.str()??;
    let topic = c.str()??;
    let partition = c.i32()?;
    let offset = c.i64()?;
    let leader_epoch = c.i32()?;
    let metadata = c.str()?;
    Some((
        (group, topic, partition),
        Committed {
            offset,
            leader_epoch,
            metadata,
        },
    ))
}

impl OffsetStore {
    /// Opens the store in `dir`, replaying the log.
    pub fn open(storage: Arc<dyn Storage>, dir: &Path) -> std::io::Result<Self> {
        storage.create_dir_all(dir)?;
        let path = dir.join("offsets.log");
        let file = storage.open(&path, true)?;
        let data = storage::read_all(&*file)?;
        let mut offsets = BTreeMap::new();
        let mut pos = 0;
        while data.len() - pos >= 8 {
            let len = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4")) as usize;
            let crc = u32::from_be_bytes(data[pos + 4..pos + 8].try_into().expect("4"));
            let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
                break;
            };
            if crc32c::crc32c(payload) != crc {
                break;
            }
            let Some((k, v)) = parse(payload) else { break };
            if v.offset < 0 {
                offsets.remove(&k);
            } else {
                offsets.insert(k, v);
            }
            pos += 8 + len;
        }
        if pos < data.len() {
            tracing::warn!(target: "kafkit::broker", path = %path.display(), "truncating torn tail of offsets log");
            file.set_len(pos as u64)?;
        }
        Ok(Self {
            file: Mutex::new(OffsetFile {
                file,
                good_len: pos as u64,
                torn: false,
            }),
            offsets: Mutex::new(offsets),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<OffsetKey, Committed>> {
        self.offsets.lock().expect("offsets lock")
    }

    /// Records a batch of commits durably (one write, then fsync: a commit acknowledged to a
    /// client survives a machine crash). Blocks on the disk: call it off the runtime's
    /// threads (`spawn_blocking`).
    pub fn commit(&self, entries: Vec<(OffsetKey, Committed)>) -> std::io::Result<()> {
        let mut f = self.file.lock().expect("offsets file lock");
        self.commit_locked(&mut f, entries)
    }

    fn commit_locked(
        &self,
        f: &mut OffsetFile,
        entries: Vec<(OffsetKey, Committed)>,
    ) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for ((g, t, p), c) in &entries {
            let mut payload = Vec::new();
            put_str(&mut payload, Some(g));
            put_str(&mut payload, Some(t));
            payload.extend_from_slice(&p.to_be_bytes());
            payload.extend_from_slice(&c.offset.to_be_bytes());
            payload.extend_from_slice(&c.leader_epoch.to_be_bytes());
            put_str(&mut payload, c.metadata.as_deref());
            buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
            buf.extend_from_slice(&payload);
        }
        if let Err(e) = storage::append_or_cut(&*f.file, f.good_len, &buf, true, &mut f.torn) {
            tracing::warn!(target: "kafkit::broker", error = %e, "writing committed offsets failed; nothing of it is kept");
            return Err(e);
        }
        f.good_len += buf.len() as u64;
        // Applied while the file lock is held: the map follows the file's order.
        let mut map = self.map();
        for (k, v) in entries {
            if v.offset < 0 {
                map.remove(&k);
            } else {
                map.insert(k, v);
            }
        }
        Ok(())
    }

    /// The committed offset for one partition.
    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.map()
            .get(&(group.to_owned(), topic.to_owned(), partition))
            .cloned()
    }

    /// All committed offsets of a group.
    pub fn group(&self, group: &str) -> Vec<(String, i32, Committed)> {
        self.map()
            .iter()
            .filter(|((g, _, _), _)| g == group)
            .map(|((_, t, p), c)| (t.clone(), *p, c.clone()))
            .collect()
    }

    /// Deletes committed offsets (written as tombstones, offset -1).
    pub fn delete(&self, keys: Vec<OffsetKey>) -> std::io::Result<()> {
        let mut f = self.file.lock().expect("offsets file lock");
        let known = self.map();
        let tombstones = keys
            .into_iter()
            .filter(|k| known.contains_key(k))
            .map(|k| {
                (
                    k,
                    Committed {
                        offset: -1,
                        leader_epoch: -1,
                        metadata: None,
                    },
                )
            })
            .collect::<Vec<_>>();
        drop(known);
        if tombstones.is_empty() {
            return Ok(());
        }
        self.commit_locked(&mut f, tombstones)
    }

    /// Every group with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map().keys().map(|(g, _, _)| g.clone()).collect();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = OffsetStore::open(storage::disk(), dir.path()).unwrap();
            s.commit(vec![(
                ("g".into(), "t".into(), 0),
                Committed {
                    offset: 5,
                    leader_epoch: -1,
                    metadata: None,
                },
            )])
            .unwrap();
            s.commit(vec![(
                ("g".into(), "t".into(), 0),
                Committed {
                    offset: 9,
                    leader_epoch: 0,
                    metadata: Some("m".into()),
                },
            )])
            .unwrap();
        }
        let path = dir.path().join("offsets.log");
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::write(
            &path,
            [std::fs::read(&path).unwrap(), vec![0, 0, 0, 40, 1, 2]].concat(),
        )
        .unwrap();
        let s = OffsetStore::open(storage::disk(), dir.path()).unwrap();
        assert_eq!(s.get("g", "t", 0).unwrap().offset, 9);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }

    #[test]
    fn failed_commits_are_not_applied_and_leave_nothing_behind() {
        use crate::storage::{Fault, FaultRule, FaultyStorage, Op};
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyStorage::new();
        let at = |offset| {
            vec![(
                ("g".to_string(), "t".to_string(), 0),
                Committed {
                    offset,
                    leader_epoch: 0,
                    metadata: None,
                },
            )]
        };
        let s = OffsetStore::open(Arc::new(disk.clone()), dir.path()).unwrap();
        s.commit(at(1)).unwrap();
        let one = s.file.lock().unwrap().good_len;
        // Torn write, and the cut fails as well: cut before the next commit.
        disk.inject(FaultRule::times(Op::Append, Fault::Short(7), 1));
        disk.inject(FaultRule::times(Op::Append, Fault::NoSpace, 1));
        disk.inject(FaultRule::times(Op::SetLen, Fault::Io, 1));
        assert!(s.commit(at(2)).is_err());
        assert_eq!(s.get("g", "t", 0).unwrap().offset, 1, "not applied");
        // A failed fsync: not applied either.
        disk.inject(FaultRule::times(Op::Sync, Fault::Io, 1));
        assert!(s.commit(at(3)).is_err());
        assert_eq!(s.get("g", "t", 0).unwrap().offset, 1);
        s.commit(at(4)).unwrap();
        // Two whole records and nothing of the failed ones.
        assert_eq!(
            std::fs::metadata(dir.path().join("offsets.log"))
                .unwrap()
                .len(),
            2 * one
        );
        drop(s);
        let s = OffsetStore::open(Arc::new(disk.clone()), dir.path()).unwrap();
        assert_eq!(s.get("g", "t", 0).unwrap().offset, 4);
    }
}
