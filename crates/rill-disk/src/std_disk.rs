//! The real file system, through plain syscalls.

use super::handles::{DEFAULT_MAX_OPEN_FILES, HandleStats, Handles};
use super::{Disk, FileId, OpenMode};
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The fewest descriptors a [`StdDisk`] keeps open, whatever the process limit.
pub const MIN_OPEN_FILES: usize = 8;

/// [`Disk`] on the real file system. Handles name files by path, with a bounded cache of open
/// descriptors (module `handles`): at most `max_open_files` are open at once, whatever the
/// number of handles.
#[derive(Debug)]
pub struct StdDisk {
    handles: Handles,
}

impl Default for StdDisk {
    fn default() -> Self {
        Self::new()
    }
}

impl StdDisk {
    /// A disk with no open files, keeping at most [`DEFAULT_MAX_OPEN_FILES`] descriptors.
    pub fn new() -> Self {
        Self::with_max_open_files(DEFAULT_MAX_OPEN_FILES)
    }

    /// A disk keeping at most `max_open_files` descriptors open, and at most half of the
    /// process's descriptor limit (`RLIMIT_NOFILE`) as it is now, so sockets, pipes and rings
    /// keep room (never fewer than [`MIN_OPEN_FILES`]). Handles beyond it lose their
    /// descriptor, least recently used first, and reopen on their next use. If the process
    /// runs out anyway (`EMFILE`), half of the cache is closed and the open tried again.
    pub fn with_max_open_files(max_open_files: usize) -> Self {
        let process_limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .and_then(|n| usize::try_from(n / 2).ok());
        let bound = process_limit.map_or(max_open_files, |half| max_open_files.min(half));
        Self {
            handles: Handles::new(bound.max(MIN_OPEN_FILES)),
        }
    }

    /// Handles, descriptors held, evictions and reopens so far.
    pub fn handle_stats(&self) -> HandleStats {
        self.handles.stats()
    }

    fn file(&self, id: FileId) -> io::Result<Arc<File>> {
        self.handles.get(id)
    }
}

impl Disk for StdDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in self.handles.with_descriptor(|| fs::read_dir(dir))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn list_subdirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in self.handles.with_descriptor(|| fs::read_dir(dir))? {
            let entry = entry?;
            // The entry's type comes with the directory read (no stat on ext4, xfs, btrfs).
            if entry.file_type()?.is_dir() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(meta) => Ok(meta.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.handles.with_descriptor(|| File::open(dir))?.sync_all()
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
        self.handles.open(path, &options)
    }

    fn open_existing_lazily(&self, path: &Path) -> io::Result<(FileId, u64)> {
        let metadata = fs::metadata(path)?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok((self.handles.insert_closed(path), metadata.len()))
    }

    fn close(&self, file: FileId) {
        self.handles.close(file);
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

    fn read_ahead(&self, file: FileId, pos: u64, len: u64) -> io::Result<()> {
        let file = self.file(file)?;
        rustix::fs::fadvise(
            file.as_fd(),
            pos,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::WillNeed,
        )?;
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.handles.rename(from, to, || fs::rename(from, to))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.handles.remove(path, || fs::remove_file(path))
    }

    fn shared_file(&self, file: FileId) -> io::Result<Arc<File>> {
        self.file(file)
    }

    fn clone_fd(&self, file: FileId) -> io::Result<std::os::fd::OwnedFd> {
        Ok(self.file(file)?.try_clone()?.into())
    }
}
