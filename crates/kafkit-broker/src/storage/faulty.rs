//! A [`Storage`] for tests: the real filesystem underneath, with a disk of chosen capacity and
//! faults injected by rule.
//!
//! * **Capacity** ([`FaultyStorage::set_capacity`]): bytes in files written through this
//!   storage count against it. An append that does not fit writes what fits and returns a
//!   short count, and the next one fails with `ENOSPC` — what `write(2)` does on a full disk,
//!   which is how torn tails are born. Removing files and truncating give space back;
//!   raising the capacity is "space returns".
//! * **Rules** ([`FaultyStorage::inject`]): on an operation ([`Op`]) on a path containing a
//!   substring, `times` times or until cleared, fail with `EIO` or `ENOSPC`, write only `n`
//!   bytes, or sleep first.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{DiskStorage, Storage, StorageFile};

/// The operation a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`StorageFile::append`].
    Append,
    /// [`StorageFile::sync`].
    Sync,
    /// [`StorageFile::set_len`].
    SetLen,
    /// [`StorageFile::read_at`] and [`Storage::read_file`].
    Read,
    /// [`Storage::write_atomic`].
    WriteAtomic,
    /// [`Storage::open`] and [`Storage::create_dir_all`].
    Open,
    /// [`Storage::remove_file`] and [`Storage::remove_dir_all`].
    Remove,
}

/// What happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails with `EIO`.
    Io,
    /// Fails with `ENOSPC`.
    NoSpace,
    /// Appends: writes at most this many bytes and returns the short count.
    Short(usize),
    /// Sleeps this long, then does the operation.
    Delay(Duration),
}

/// A fault to inject.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// The operation.
    pub op: Op,
    /// Only on paths containing this (e.g. `"broker-2/"`, `"offsets.log"`); `None`: any.
    pub path: Option<String>,
    /// What happens.
    pub fault: Fault,
    /// How many times (`None`: until [`FaultyStorage::clear`]).
    pub times: Option<u32>,
}

impl FaultRule {
    /// `fault` on every `op`, until cleared.
    pub fn always(op: Op, fault: Fault) -> Self {
        Self {
            op,
            path: None,
            fault,
            times: None,
        }
    }

    /// `fault` on the next `n` `op`s.
    pub fn times(op: Op, fault: Fault, n: u32) -> Self {
        Self {
            op,
            path: None,
            fault,
            times: Some(n),
        }
    }

    /// Only on paths containing `part`.
    pub fn on(mut self, part: impl Into<String>) -> Self {
        self.path = Some(part.into());
        self
    }
}

#[derive(Debug, Default)]
struct State {
    capacity: Option<u64>,
    used: u64,
    sizes: HashMap<PathBuf, u64>,
    rules: Vec<FaultRule>,
    applied: u64,
}

impl State {
    /// The fault to apply to `op` on `path` now, if any (counting it).
    fn fault(&mut self, op: Op, path: &Path) -> Option<Fault> {
        let p = path.to_string_lossy();
        let i = self
            .rules
            .iter()
            .position(|r| r.op == op && r.path.as_deref().is_none_or(|part| p.contains(part)))?;
        let rule = &mut self.rules[i];
        let fault = rule.fault;
        if let Some(n) = &mut rule.times {
            *n -= 1;
            if *n == 0 {
                self.rules.remove(i);
            }
        }
        self.applied += 1;
        Some(fault)
    }

    fn set_size(&mut self, path: &Path, size: u64) {
        let old = self.sizes.insert(path.to_owned(), size).unwrap_or(0);
        self.used = self.used + size - old;
    }

    fn forget(&mut self, path: &Path) {
        if let Some(old) = self.sizes.remove(path) {
            self.used -= old;
        }
    }

    fn free(&self) -> u64 {
        self.capacity
            .map_or(u64::MAX, |c| c.saturating_sub(self.used))
    }
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

/// The real filesystem with a capacity and injected faults. Cloning shares the state, so a
/// test keeps a handle to change faults while the cluster runs.
#[derive(Debug, Clone, Default)]
pub struct FaultyStorage {
    state: Arc<Mutex<State>>,
}

impl FaultyStorage {
    /// No capacity limit and no faults until set.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the disk's capacity in bytes (`None`: unlimited). Lowering it below what is used
    /// makes every growing write fail; raising it is space returning.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Bytes in files written or opened through this storage.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    /// Adds a rule.
    pub fn inject(&self, rule: FaultRule) {
        self.lock().rules.push(rule);
    }

    /// Removes every rule (the capacity stays).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Faults applied so far (capacity refusals not included).
    pub fn faults_applied(&self) -> u64 {
        self.lock().applied
    }

    /// Applies a rule for `op` on `path`: Err for failures, Ok(Some(n)) for a short write.
    fn check(&self, op: Op, path: &Path) -> io::Result<Option<usize>> {
        let fault = self.lock().fault(op, path);
        match fault {
            None => Ok(None),
            Some(Fault::Io) => Err(eio()),
            Some(Fault::NoSpace) => Err(enospc()),
            Some(Fault::Short(n)) => Ok(Some(n)),
            Some(Fault::Delay(d)) => {
                std::thread::sleep(d);
                Ok(None)
            }
        }
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::Open, dir)?;
        DiskStorage.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        DiskStorage.list_dir(dir)
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check(Op::Read, path)?;
        DiskStorage.read_file(path)
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.check(Op::WriteAtomic, path)?;
        {
            // The temporary file needs room next to the old one.
            let state = self.lock();
            if (data.len() as u64) > state.free() {
                return Err(enospc());
            }
        }
        DiskStorage.write_atomic(path, data)?;
        self.lock().set_size(path, data.len() as u64);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove, path)?;
        DiskStorage.remove_file(path)?;
        self.lock().forget(path);
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::Remove, dir)?;
        DiskStorage.remove_dir_all(dir)?;
        let mut state = self.lock();
        let gone: Vec<PathBuf> = state
            .sizes
            .keys()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for p in gone {
            state.forget(&p);
        }
        Ok(())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.check(Op::Open, path)?;
        let inner = DiskStorage.open(path, create)?;
        let len = inner.size()?;
        self.lock().set_size(path, len);
        Ok(Arc::new(FaultyFile {
            inner,
            path: path.to_owned(),
            storage: self.clone(),
        }))
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    path: PathBuf,
    storage: FaultyStorage,
}

impl FaultyFile {
    fn sync_size(&self) -> io::Result<()> {
        let len = self.inner.size()?;
        self.storage.lock().set_size(&self.path, len);
        Ok(())
    }
}

impl StorageFile for FaultyFile {
    fn append(&self, data: &[u8]) -> io::Result<usize> {
        let short = self.storage.check(Op::Append, &self.path)?;
        let free = self.storage.lock().free();
        if free == 0 && !data.is_empty() {
            return Err(enospc());
        }
        let n = data
            .len()
            .min(short.unwrap_or(usize::MAX))
            .min(usize::try_from(free).unwrap_or(usize::MAX));
        let written = self.inner.append(&data[..n])?;
        self.sync_size()?;
        Ok(written)
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.storage.check(Op::Read, &self.path)?;
        self.inner.read_at(buf, pos)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.storage.check(Op::SetLen, &self.path)?;
        let now = self.inner.size()?;
        if len > now && len - now > self.storage.lock().free() {
            return Err(enospc());
        }
        self.inner.set_len(len)?;
        self.sync_size()
    }

    fn sync(&self) -> io::Result<()> {
        self.storage.check(Op::Sync, &self.path)?;
        self.inner.sync()
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn modified(&self) -> io::Result<SystemTime> {
        self.inner.modified()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{append_all, is_no_space, read_all};
    use super::*;

    #[test]
    fn a_full_disk_writes_what_fits_then_refuses_and_frees_on_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let s = FaultyStorage::new();
        s.set_capacity(Some(10));
        let f = s.open(&dir.path().join("a"), true).unwrap();
        let e = append_all(&*f, b"0123456789abcdef").unwrap_err();
        assert!(is_no_space(&e), "{e}");
        assert_eq!(f.size().unwrap(), 10, "the part that fit was written");
        assert_eq!(s.used(), 10);
        f.set_len(4).unwrap();
        assert_eq!(s.used(), 4);
        append_all(&*f, b"456789").unwrap();
        s.set_capacity(None);
        append_all(&*f, b"more").unwrap();
        assert_eq!(read_all(&*f).unwrap(), b"0123456789more");
        s.remove_file(&dir.path().join("a")).unwrap();
        assert_eq!(s.used(), 0);
    }

    #[test]
    fn rules_fire_on_matching_paths_the_given_number_of_times() {
        let dir = tempfile::tempdir().unwrap();
        let s = FaultyStorage::new();
        // Rules match a part of the path: a name the temporary directory's random name
        // cannot contain (a rule on "b" also hit "a" one run in ten, in /tmp/.tmpXbXXXX).
        s.inject(FaultRule::times(Op::Sync, Fault::Io, 2).on("second-file"));
        s.inject(FaultRule::times(Op::Append, Fault::Short(3), 1));
        let a = s.open(&dir.path().join("first-file"), true).unwrap();
        let b = s.open(&dir.path().join("second-file"), true).unwrap();
        a.sync().unwrap();
        assert!(b.sync().is_err());
        assert!(b.sync().is_err());
        b.sync().unwrap();
        assert_eq!(a.append(b"abcdef").unwrap(), 3);
        assert_eq!(a.append(b"def").unwrap(), 3);
        assert_eq!(s.faults_applied(), 3);
        s.inject(FaultRule::always(Op::WriteAtomic, Fault::NoSpace));
        assert!(s.write_atomic(&dir.path().join("m"), b"x").is_err());
        s.clear();
        s.write_atomic(&dir.path().join("m"), b"x").unwrap();
    }

    #[test]
    fn delays_slow_the_operation_and_then_do_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = FaultyStorage::new();
        s.inject(FaultRule::times(
            Op::Append,
            Fault::Delay(Duration::from_millis(60)),
            1,
        ));
        let f = s.open(&dir.path().join("slow"), true).unwrap();
        let t = std::time::Instant::now();
        append_all(&*f, b"late").unwrap();
        assert!(t.elapsed() >= Duration::from_millis(60));
        assert_eq!(read_all(&*f).unwrap(), b"late");
    }
}
