//! File handles as the io_uring driver sees them.
//!
//! [`NotifyingDisk`] wraps a [`Disk`] and records which handles were closed, so the driver that
//! registered their descriptors can clear those slots of its registered-file table (a
//! registered file keeps the file open, and a deleted segment's space would otherwise never be
//! freed). [`FileTable`] maps handles to slots of the sparse table.

use parking_lot::Mutex;
use rill_segment::disk::{Disk, FileId, OpenMode};
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

/// Handles closed since the driver last looked.
#[derive(Debug, Default)]
pub struct ClosedFiles {
    closed: Mutex<Vec<FileId>>,
}

impl ClosedFiles {
    /// Takes the handles closed so far.
    pub fn take(&self) -> Vec<FileId> {
        std::mem::take(&mut *self.closed.lock())
    }
}

/// A [`Disk`] that reports closed handles to a driver. Everything else is passed through.
#[derive(Debug)]
pub struct NotifyingDisk {
    inner: Arc<dyn Disk>,
    closed: Arc<ClosedFiles>,
}

impl NotifyingDisk {
    /// Wraps `inner`; closed handles are reported to `closed`.
    pub fn new(inner: Arc<dyn Disk>, closed: Arc<ClosedFiles>) -> Self {
        Self { inner, closed }
    }
}

impl Disk for NotifyingDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileId> {
        self.inner.open(path, mode)
    }
    fn close(&self, file: FileId) {
        self.inner.close(file);
        self.closed.closed.lock().push(file);
    }
    fn file_len(&self, file: FileId) -> io::Result<u64> {
        self.inner.file_len(file)
    }
    fn read_at(&self, file: FileId, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(file, pos, buf)
    }
    fn write_at(&self, file: FileId, pos: u64, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_at(file, pos, bufs)
    }
    fn set_len(&self, file: FileId, len: u64) -> io::Result<()> {
        self.inner.set_len(file, len)
    }
    fn allocate(&self, file: FileId, len: u64) -> io::Result<()> {
        self.inner.allocate(file, len)
    }
    fn fdatasync(&self, file: FileId) -> io::Result<()> {
        self.inner.fdatasync(file)
    }
    fn drop_cache(&self, file: FileId) -> io::Result<()> {
        self.inner.drop_cache(file)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn raw_fd(&self, file: FileId) -> Option<RawFd> {
        self.inner.raw_fd(file)
    }

    fn clone_fd(&self, file: FileId) -> io::Result<std::os::fd::OwnedFd> {
        self.inner.clone_fd(file)
    }
}

/// Slots of a sparse registered-file table, by handle.
#[derive(Debug)]
pub(crate) struct FileTable {
    slots: HashMap<FileId, u32>,
    free: Vec<u32>,
}

impl FileTable {
    /// A table of `capacity` empty slots.
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            slots: HashMap::new(),
            free: (0..capacity).rev().collect(),
        }
    }

    pub(crate) fn get(&self, file: FileId) -> Option<u32> {
        self.slots.get(&file).copied()
    }

    /// Reserves a slot for `file`; `None` when the table is full.
    pub(crate) fn insert(&mut self, file: FileId) -> Option<u32> {
        let slot = self.free.pop()?;
        self.slots.insert(file, slot);
        Some(slot)
    }

    /// Releases `file`'s slot, returning it.
    pub(crate) fn remove(&mut self, file: FileId) -> Option<u32> {
        let slot = self.slots.remove(&file)?;
        self.free.push(slot);
        Some(slot)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_after_removal() {
        let mut table = FileTable::new(2);
        let a = table.insert(FileId(1)).unwrap();
        let b = table.insert(FileId(2)).unwrap();
        assert_ne!(a, b);
        assert_eq!(table.insert(FileId(3)), None, "full");
        assert_eq!(table.remove(FileId(1)), Some(a));
        assert_eq!(table.insert(FileId(3)), Some(a));
        assert_eq!(table.get(FileId(2)), Some(b));
        assert_eq!(table.len(), 2);
    }
}
