//! The real file system, through plain syscalls.

use super::{Disk, FileId, OpenMode};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

/// [`Disk`] on the real file system. Handles map to open [`File`]s.
#[derive(Debug, Default)]
pub struct StdDisk {
    files: RwLock<Files>,
}

#[derive(Debug, Default)]
struct Files {
    next: u64,
    open: HashMap<u64, Arc<File>, BuildHasherDefault<IdHasher>>,
}

/// Hashes the handles (sequential `u64`s) with one multiplication (Fibonacci hashing): every
/// read and write looks its file up, and SipHash cost more than the lookup itself.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl StdDisk {
    /// A disk with no open files.
    pub fn new() -> Self {
        Self::default()
    }

    /// The file behind `id`. The table's lock is held for the lookup only, never across a
    /// syscall: a slow write on one file must not hold up opening or closing another.
    fn file(&self, id: FileId) -> io::Result<Arc<File>> {
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        files
            .open
            .get(&id.0)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc_ebadf()))
    }
}

fn libc_ebadf() -> i32 {
    rustix::io::Errno::BADF.raw_os_error()
}

impl Disk for StdDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileId> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::CreateNew => options.create_new(true),
            OpenMode::Create => options.create(true),
            OpenMode::Existing => &mut options,
        };
        let file = Arc::new(options.open(path)?);
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        files.next += 1;
        let id = files.next;
        files.open.insert(id, file);
        Ok(FileId(id))
    }

    fn close(&self, file: FileId) {
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        files.open.remove(&file.0);
    }

    fn file_len(&self, file: FileId) -> io::Result<u64> {
        Ok(self.file(file)?.metadata()?.len())
    }

    fn read_at(&self, file: FileId, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file(file)?.read_at(buf, pos)
    }

    fn write_at(&self, file: FileId, pos: u64, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let file = self.file(file)?;
        Ok(rustix::io::pwritev(file.as_fd(), bufs, pos)?)
    }

    fn set_len(&self, file: FileId, len: u64) -> io::Result<()> {
        self.file(file)?.set_len(len)
    }

    fn allocate(&self, file: FileId, len: u64) -> io::Result<()> {
        let file = self.file(file)?;
        let current = file.metadata()?.len();
        if len <= current {
            return Ok(());
        }
        match rustix::fs::fallocate(
            file.as_fd(),
            rustix::fs::FallocateFlags::empty(),
            current,
            len - current,
        ) {
            Ok(()) => Ok(()),
            // File systems without fallocate: extend the length instead (sparse zeros).
            Err(rustix::io::Errno::OPNOTSUPP) => file.set_len(len),
            Err(e) => Err(e.into()),
        }
    }

    fn fdatasync(&self, file: FileId) -> io::Result<()> {
        self.file(file)?.sync_data()
    }

    fn drop_cache(&self, file: FileId) -> io::Result<()> {
        let file = self.file(file)?;
        rustix::fs::fadvise(file.as_fd(), 0, None, rustix::fs::Advice::DontNeed)?;
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn raw_fd(&self, file: FileId) -> Option<RawFd> {
        self.file(file).ok().map(|f| f.as_raw_fd())
    }

    fn clone_fd(&self, file: FileId) -> io::Result<std::os::fd::OwnedFd> {
        Ok(self.file(file)?.try_clone()?.into())
    }
}
