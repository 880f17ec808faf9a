//! Everything the cluster keeps on disk goes through [`Storage`] (DESIGN.md rule 7): segment
//! files, the committed-offsets log and the metadata files (`FORMAT`, `topics`,
//! `producer_ids`, `log-start-offset`). [`DiskStorage`] is the real filesystem; [`FaultyStorage`]
//! wraps it for tests and injects `ENOSPC` (a disk of a chosen capacity), `EIO`, short writes,
//! failed `fsync` and slow operations at chosen points.
//!
//! The traits are small on purpose: appends (files are append-only), positional reads,
//! truncation, `fsync`, and whole-file replacement for metadata. What callers do when an
//! operation fails — undo a partial append before acknowledging anything — lives with the
//! callers (`log`, `group::offsets`), and is tested through [`FaultyStorage`].

mod faulty;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use faulty::{Fault, FaultRule, FaultyStorage, Op};

/// A filesystem: directories of append-only files and atomically replaced small files.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The entries of a directory (full paths, unordered).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// A whole (small) file.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Replaces `path` with `data` so that a crash leaves either the old or the new contents:
    /// a temporary file is written and synced, renamed over `path`, and the directory synced.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens a file for reading and appending, creating it (empty) if `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
}

/// An open append-only file.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Appends what it can of `data` in one write and returns how much (like `write(2)`: a
    /// short count is not an error; the next call reports one if there is one).
    fn append(&self, data: &[u8]) -> io::Result<usize>;
    /// Reads at `pos`; returns bytes read (0 at the end).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Truncates (or extends) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Forces the file's data to stable storage (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// The file's length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// When the file was last modified.
    fn modified(&self) -> io::Result<SystemTime>;
}

/// Appends all of `data`, call after call. On an error some of `data` may be in the file: the
/// caller truncates back to its last good size.
pub fn append_all(f: &dyn StorageFile, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match f.append(data) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends `data` to a file whose good bytes end at `good_len`, all or nothing: a torn tail left
/// by an earlier failure (`*torn`) is cut first; if this append (or, with `sync`, its fsync)
/// fails, the file is cut back to `good_len` before the error is returned — or, if even the
/// cut fails, `*torn` is set and the cut happens before the next append. Files are
/// `O_APPEND`: without the cut, the next write would land behind the torn bytes. The segment
/// logs and the committed-offsets log both append through this.
pub fn append_or_cut(
    f: &dyn StorageFile,
    good_len: u64,
    data: &[u8],
    sync: bool,
    torn: &mut bool,
) -> io::Result<()> {
    if *torn {
        f.set_len(good_len)?;
        *torn = false;
    }
    let written = append_all(f, data).and_then(|()| if sync { f.sync() } else { Ok(()) });
    if written.is_err() && f.set_len(good_len).is_err() {
        *torn = true;
    }
    written
}

/// Fills `buf` from `pos`, or fails with `UnexpectedEof`.
pub fn read_exact_at(f: &dyn StorageFile, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match f.read_at(buf, pos) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads a whole file through an open handle.
pub fn read_all(f: &dyn StorageFile) -> io::Result<Vec<u8>> {
    let len = f.size()?;
    let len = usize::try_from(len).map_err(io::Error::other)?;
    let mut data = vec![0; len];
    read_exact_at(f, &mut data, 0)?;
    Ok(data)
}

/// True for the errors a full disk gives (`ENOSPC`, `EDQUOT`).
pub fn is_no_space(e: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskStorage;

/// The shared default storage.
pub fn disk() -> Arc<dyn Storage> {
    Arc::new(DiskStorage)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

impl Storage for DiskStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let tmp = tmp_path(path);
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_data()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(dir)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(create)
            .open(path)?;
        Ok(Arc::new(DiskFile(file)))
    }
}

/// A file of [`DiskStorage`], opened `O_APPEND`.
#[derive(Debug)]
pub struct DiskFile(File);

impl StorageFile for DiskFile {
    fn append(&self, data: &[u8]) -> io::Result<usize> {
        (&self.0).write(data)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.0.read_at(buf, pos)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn modified(&self) -> io::Result<SystemTime> {
        self.0.metadata()?.modified()
    }
}
