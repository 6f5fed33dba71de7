//! The file system as the log sees it.
//!
//! Everything rill does to files and directories goes through [`Disk`]: the real implementation
//! is [`StdDisk`] (plain syscalls, a bounded descriptor cache); the simulated one, with power
//! cuts and the fault model of docs/ARCHITECTURE.md, is test equipment in the `rill-sim` crate.
//! Files are named by [`FileId`] handles so that an executor can map them to its
//! own resources (the io_uring executor registers the file from [`Disk::shared_file`]). A handle
//! is not a descriptor: [`StdDisk`] keeps a bounded number of descriptors open and reopens a
//! handle's file when it is used again.

mod handles;
mod std_disk;

pub use handles::{DEFAULT_MAX_OPEN_FILES, HandleStats};
pub use std_disk::{MIN_OPEN_FILES, StdDisk};

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A handle to an open file of a [`Disk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u64);

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file#{}", self.0)
    }
}

/// How [`Disk::open`] treats an existing or missing file. Files are always opened read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file; fail if it exists.
    CreateNew,
    /// Open the file, creating it if missing.
    Create,
    /// Open an existing file; fail if missing.
    Existing,
}

/// File operations the log needs. Implementations must be usable from several threads.
///
/// Semantics follow POSIX with buffered I/O: a completed write is visible to reads but durable
/// only after [`Disk::fdatasync`] of the file; a created, renamed or removed name is durable only
/// after [`Disk::sync_dir`] of its directory.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of a directory (not recursive), in no particular order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether `path` names a directory (`false` if it names nothing or a file).
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        match self.list_dir(path) {
            Ok(_) => Ok(true),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
    /// Names of the directories directly in `dir`. A real file system answers from the entries'
    /// types, with no `stat` per entry.
    fn list_subdirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut dirs = Vec::new();
        for name in self.list_dir(dir)? {
            if self.is_dir(&dir.join(&name))? {
                dirs.push(name);
            }
        }
        Ok(dirs)
    }
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;
    /// Opens a file read-write.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileId>;
    /// Opens an existing file for later use and returns its handle and length. A disk with a
    /// descriptor cache may open it only when it is first used (opening a log of many
    /// segments then costs a `stat` per segment, not a descriptor).
    fn open_existing_lazily(&self, path: &Path) -> io::Result<(FileId, u64)> {
        let file = self.open(path, OpenMode::Existing)?;
        match self.file_len(file) {
            Ok(len) => Ok((file, len)),
            Err(e) => {
                self.close(file);
                Err(e)
            }
        }
    }
    /// Closes a handle. Unknown handles are ignored.
    fn close(&self, file: FileId);
    /// Current length of the file.
    fn file_len(&self, file: FileId) -> io::Result<u64>;
    /// Reads at `pos`; may return fewer bytes than asked, 0 at end of file.
    fn read_at(&self, file: FileId, pos: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes the buffers in order at `pos`; may write fewer bytes than asked.
    fn write_at(&self, file: FileId, pos: u64, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Sets the file length (truncates or extends with zeros).
    fn set_len(&self, file: FileId, len: u64) -> io::Result<()>;
    /// Reserves space so the file is at least `len` bytes long; new bytes read as zeros.
    fn allocate(&self, file: FileId, len: u64) -> io::Result<()>;
    /// Makes the file's data and length durable.
    fn fdatasync(&self, file: FileId) -> io::Result<()>;
    /// Drops clean cached pages so the next reads come from the medium. Used by recovery, after
    /// an fdatasync, so that it never validates bytes that only the page cache still holds.
    fn drop_cache(&self, file: FileId) -> io::Result<()>;
    /// Asks for `[pos, pos + len)` to be read into the page cache in the background (advice:
    /// it returns at once and may do nothing). Sequential scans call it ahead of their reads,
    /// so several reads are in flight while they check what they have.
    fn read_ahead(&self, file: FileId, pos: u64, len: u64) -> io::Result<()> {
        let _ = (file, pos, len);
        Ok(())
    }
    /// Renames a file or a directory (atomically replacing `to`; a directory only replaces an
    /// empty one).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file name.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The open file behind a handle, for executors that submit I/O themselves. Its descriptor
    /// stays open while the `Arc` is held (a descriptor cache closes an evicted one only when
    /// the last holder drops it), so an operation in flight holds it until its completion.
    /// Disks without descriptors return `Unsupported`.
    fn shared_file(&self, file: FileId) -> io::Result<Arc<File>> {
        let _ = file;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this disk has no OS descriptors",
        ))
    }
    /// A duplicate of the OS descriptor behind a handle, owned by the caller: it keeps the file
    /// readable after the handle closes or the file is removed (a send in progress holds one).
    /// Disks without descriptors return `Unsupported`.
    fn clone_fd(&self, file: FileId) -> io::Result<OwnedFd> {
        let _ = file;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this disk has no OS descriptors",
        ))
    }
}

/// Creates `dir` (and missing parents) durably: a directory's entry lives in its parent, so each
/// directory created here has its parent synced; `dir` itself is synced too, so what it already
/// holds is durable. On an existing directory this is one `sync_dir`.
pub fn create_dir_durably(disk: &dyn Disk, dir: &Path) -> io::Result<()> {
    // Walk up to the first directory that exists (the sync doubles as the probe), bounded by the
    // path's depth.
    let mut missing = Vec::new();
    for ancestor in dir.ancestors() {
        match disk.sync_dir(ancestor) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(ancestor),
            Err(e) => return Err(e),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    disk.create_dir_all(dir)?;
    // Innermost first: `dir`'s own (empty) contents, then each new entry in its parent.
    disk.sync_dir(dir)?;
    for created in missing {
        if let Some(parent) = created.parent() {
            disk.sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Replaces the small file `dir/name` atomically and durably: writes `bytes` to `dir/temp`,
/// fdatasyncs it, renames it over `name`, fsyncs `dir`. A crash leaves the old file or the new
/// one (the temp file may be left behind: the caller removes it at its next open). On failure,
/// returns the operation and path that failed.
pub fn write_file_atomically(
    disk: &dyn Disk,
    dir: &Path,
    name: &str,
    temp: &str,
    bytes: &[u8],
) -> Result<(), (&'static str, PathBuf, io::Error)> {
    let temp = dir.join(temp);
    let file = disk
        .open(&temp, OpenMode::Create)
        .map_err(|e| ("open", temp.clone(), e))?;
    let written = write_all_at(disk, file, 0, &[bytes])
        .and_then(|()| disk.set_len(file, bytes.len() as u64))
        .and_then(|()| disk.fdatasync(file));
    disk.close(file);
    written.map_err(|e| ("write", temp.clone(), e))?;
    let path = dir.join(name);
    disk.rename(&temp, &path).map_err(|e| ("rename", path, e))?;
    disk.sync_dir(dir)
        .map_err(|e| ("fsync", dir.to_path_buf(), e))
}

/// Reads a small file whole: `Ok(None)` if it does not exist. Reads at most `max_bytes + 1`
/// bytes, so a file longer than `max_bytes` is returned longer than it (the caller's parser
/// refuses it) without reading it all.
pub fn read_small_file(
    disk: &dyn Disk,
    path: &Path,
    max_bytes: usize,
) -> io::Result<Option<Vec<u8>>> {
    let file = match disk.open(path, OpenMode::Existing) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bytes = (|| {
        let len = disk.file_len(file)?;
        let mut buf = vec![0u8; len.min(max_bytes as u64 + 1) as usize];
        read_exact_at(disk, file, 0, &mut buf)?;
        Ok(buf)
    })();
    disk.close(file);
    bytes.map(Some)
}

/// Reads exactly `buf.len()` bytes at `pos`, looping over short reads.
pub fn read_exact_at(
    disk: &dyn Disk,
    file: FileId,
    mut pos: u64,
    mut buf: &mut [u8],
) -> io::Result<()> {
    // Each successful iteration consumes at least one byte, so the loop is bounded by buf.len().
    while !buf.is_empty() {
        match disk.read_at(file, pos, buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                pos += n as u64;
                buf = &mut buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `bufs` at `pos`, resubmitting the remainder after short writes.
pub fn write_all_at(disk: &dyn Disk, file: FileId, pos: u64, bufs: &[&[u8]]) -> io::Result<()> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut done = 0usize;
    // Each iteration writes at least one byte or returns, so it runs at most `total` times.
    while done < total {
        let slices = remaining_slices(bufs, done);
        match disk.write_at(file, pos + done as u64, &slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The parts of `bufs` after the first `skip` bytes.
pub fn remaining_slices<'a>(bufs: &[&'a [u8]], mut skip: usize) -> Vec<IoSlice<'a>> {
    let mut out = Vec::with_capacity(bufs.len());
    for buf in bufs {
        if skip >= buf.len() {
            skip -= buf.len();
            continue;
        }
        out.push(IoSlice::new(&buf[skip..]));
        skip = 0;
    }
    out
}
