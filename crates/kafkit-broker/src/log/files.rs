//! A bounded set of open segment files shared by every log of a cluster.
//!
//! Kafka keeps every segment of every partition open and asks operators for a large
//! `ulimit -n`; thousands of partitions then hold tens of thousands of descriptors, and a
//! peer that makes the cluster create partitions can exhaust them (issue 11). Here a segment
//! is a [`SegmentFile`]: a path and a slot in [`OpenFiles`], which keeps at most `limit` of
//! them open and closes the least recently used one to open another. A segment not touched
//! for a while costs no descriptor; touching it again reopens it (one `open(2)`).
//!
//! A file in use (a [`FileRef`] handed out by [`SegmentFile::get`]) that is evicted stays
//! open until its user drops it, so the limit can be passed briefly by the number of
//! operations running at that moment — never by the number of partitions.
//!
//! Closing a file with unsynced bytes loses nothing: the bytes are in the page cache, and
//! `fsync` through a later descriptor of the same file flushes them (and, since Linux 4.16,
//! reports a write-back error no descriptor has seen yet).
//!
//! Written by hand: no crate offers a descriptor cache that hands out shared files and opens
//! outside its lock; an LRU map crate would still need this wrapper.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::storage::{Storage, StorageFile};

/// An open file, shared by its users.
pub type FileRef = Arc<dyn StorageFile>;

/// Default most segment files open at once, per cluster.
pub const DEFAULT_MAX_OPEN_FILES: usize = 1_000;

/// The open-file budget of a cluster's logs.
pub struct OpenFiles {
    limit: usize,
    storage: Arc<dyn Storage>,
    state: Mutex<State>,
    next_id: AtomicU64,
    opens: AtomicU64,
}

impl std::fmt::Debug for OpenFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFiles")
            .field("limit", &self.limit)
            .field("open", &self.open_count())
            .field("opens", &self.opens())
            .finish()
    }
}

#[derive(Default)]
struct State {
    tick: u64,
    /// Open files by segment id, with the tick of their last use.
    open: HashMap<u64, (FileRef, u64)>,
    /// Segment ids by last use, oldest first.
    lru: BTreeMap<u64, u64>,
}

impl OpenFiles {
    /// A budget of at most `limit` open files (at least 1) of `storage`.
    pub fn new(limit: usize, storage: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            storage,
            state: Mutex::default(),
            next_id: AtomicU64::new(0),
            opens: AtomicU64::new(0),
        })
    }

    /// Files open now (held by the cache).
    pub fn open_count(&self) -> usize {
        self.lock().open.len()
    }

    /// Times a file was opened (cache misses), for tests and stats.
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The storage files are opened from.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves the maps consistent (each update is a few
        // map operations that cannot panic halfway in a way that matters): keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(state: &mut State, id: u64) -> Option<FileRef> {
        state.tick += 1;
        let tick = state.tick;
        let (file, last) = state.open.get_mut(&id)?;
        let old = std::mem::replace(last, tick);
        let file = file.clone();
        state.lru.remove(&old);
        state.lru.insert(tick, id);
        Some(file)
    }

    fn insert(&self, id: u64, file: FileRef) -> FileRef {
        let mut state = self.lock();
        // Someone else may have opened it meanwhile: use theirs, close ours.
        if let Some(f) = Self::touch(&mut state, id) {
            return f;
        }
        while state.open.len() >= self.limit {
            let Some((_, victim)) = state.lru.pop_first() else {
                break;
            };
            state.open.remove(&victim);
        }
        state.tick += 1;
        let tick = state.tick;
        state.open.insert(id, (file.clone(), tick));
        state.lru.insert(tick, id);
        file
    }

    fn forget(&self, id: u64) {
        let mut state = self.lock();
        if let Some((_, tick)) = state.open.remove(&id) {
            state.lru.remove(&tick);
        }
    }
}

/// One segment file: opened when used, closed when the budget needs its descriptor.
#[derive(Debug)]
pub struct SegmentFile {
    id: u64,
    path: PathBuf,
    files: Arc<OpenFiles>,
}

impl SegmentFile {
    /// A handle on an existing file; nothing is opened until [`get`](Self::get).
    pub fn existing(files: &Arc<OpenFiles>, path: PathBuf) -> Self {
        Self {
            id: files.next_id.fetch_add(1, Ordering::Relaxed),
            path,
            files: files.clone(),
        }
    }

    /// Creates the file (empty if new) and keeps it open for the appends that follow.
    pub fn create(files: &Arc<OpenFiles>, path: PathBuf) -> std::io::Result<Self> {
        let seg = Self::existing(files, path);
        let file = files.storage.open(&seg.path, true)?;
        files.opens.fetch_add(1, Ordering::Relaxed);
        files.insert(seg.id, file);
        Ok(seg)
    }

    /// The open file (reopened if the budget closed it). Writes through it append.
    pub fn get(&self) -> std::io::Result<FileRef> {
        if let Some(f) = OpenFiles::touch(&mut self.files.lock(), self.id) {
            return Ok(f);
        }
        // Open outside the lock: a slow disk must not stall every other partition.
        let file = self.files.storage.open(&self.path, false)?;
        self.files.opens.fetch_add(1, Ordering::Relaxed);
        Ok(self.files.insert(self.id, file))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        self.files.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{append_all, disk, read_exact_at};

    #[test]
    fn keeps_at_most_limit_open_and_reopens_evicted_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(3, disk());
        let segs: Vec<_> = (0..10)
            .map(|i| SegmentFile::create(&files, dir.path().join(format!("{i}.log"))).unwrap())
            .collect();
        assert_eq!(files.open_count(), 3);
        for (i, s) in segs.iter().enumerate() {
            append_all(&*s.get().unwrap(), format!("segment {i}").as_bytes()).unwrap();
            assert!(files.open_count() <= 3);
        }
        // Every segment kept what was written, whether or not its file was closed since.
        for (i, s) in segs.iter().enumerate() {
            let want = format!("segment {i}");
            let mut buf = vec![0; want.len()];
            read_exact_at(&*s.get().unwrap(), &mut buf, 0).unwrap();
            assert_eq!(buf, want.as_bytes());
        }
        // Appends after a reopen land at the end.
        append_all(&*segs[0].get().unwrap(), b"!").unwrap();
        assert_eq!(segs[0].get().unwrap().size().unwrap(), 10);
        drop(segs);
        assert_eq!(files.open_count(), 0);
    }

    #[test]
    fn recently_used_files_stay_open() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(2, disk());
        let a = SegmentFile::create(&files, dir.path().join("a")).unwrap();
        let b = SegmentFile::create(&files, dir.path().join("b")).unwrap();
        let opens = files.opens();
        a.get().unwrap(); // a is now newer than b
        let _c = SegmentFile::create(&files, dir.path().join("c")).unwrap(); // evicts b
        a.get().unwrap();
        assert_eq!(files.opens(), opens + 1, "a stayed open");
        b.get().unwrap();
        assert_eq!(files.opens(), opens + 2, "b was reopened");
    }
}
