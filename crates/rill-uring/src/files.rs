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
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        self.inner.is_dir(path)
    }
    fn list_subdirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_subdirs(dir)
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
    fn open_existing_lazily(&self, path: &Path) -> io::Result<(FileId, u64)> {
        self.inner.open_existing_lazily(path)
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
    fn read_ahead(&self, file: FileId, pos: u64, len: u64) -> io::Result<()> {
        self.inner.read_ahead(file, pos, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn shared_file(&self, file: FileId) -> io::Result<Arc<std::fs::File>> {
        self.inner.shared_file(file)
    }

    fn clone_fd(&self, file: FileId) -> io::Result<std::os::fd::OwnedFd> {
        self.inner.clone_fd(file)
    }
}

/// Slots of a sparse registered-file table, by handle, evicted by use.
///
/// A slot is replaced only when no operation uses it: an entry names its file by slot, and
/// io_uring resolves the slot when the entry is issued (for an entry waiting in the backlog or
/// in an io-wq worker, later than submission), so replacing a slot under it would point it at
/// another file. Operations count themselves in with [`FileTable::begin`] and out with
/// [`FileTable::end`].
#[derive(Debug)]
pub(crate) struct FileTable {
    slots: HashMap<FileId, Slot>,
    free: Vec<u32>,
    clock: u64,
    evictions: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u32,
    last_use: u64,
    in_flight: u32,
    /// The handle was closed while operations used the slot: freed when the last ends.
    closing: bool,
}

impl FileTable {
    /// A table of `capacity` empty slots.
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            slots: HashMap::new(),
            free: (0..capacity).rev().collect(),
            clock: 0,
            evictions: 0,
        }
    }

    /// `file`'s slot, if it has one, counting an operation in.
    pub(crate) fn begin(&mut self, file: FileId) -> Option<u32> {
        self.clock += 1;
        let slot = self.slots.get_mut(&file)?;
        slot.last_use = self.clock;
        slot.in_flight += 1;
        Some(slot.index)
    }

    /// Counts out an operation that [`FileTable::begin`] (or `insert`) counted in. Returns the
    /// slot to clear when it was the last operation of a closed handle.
    pub(crate) fn end(&mut self, file: FileId) -> Option<u32> {
        let slot = self.slots.get_mut(&file)?;
        debug_assert!(slot.in_flight > 0, "end without begin for {file}");
        slot.in_flight = slot.in_flight.saturating_sub(1);
        if slot.in_flight == 0 && slot.closing {
            return self.remove(file);
        }
        None
    }

    /// Gives `file` a slot, counting an operation in: a free one, else the least recently used
    /// slot no operation uses (returned second, with the handle it held). `None` when every slot
    /// is in use.
    pub(crate) fn insert(&mut self, file: FileId) -> Option<(u32, Option<FileId>)> {
        let (index, evicted) = if let Some(index) = self.free.pop() {
            (index, None)
        } else {
            let (&victim, _) = self
                .slots
                .iter()
                .filter(|(_, s)| s.in_flight == 0 && !s.closing)
                .min_by_key(|(_, s)| s.last_use)?;
            let slot = self.slots.remove(&victim)?;
            self.evictions += 1;
            (slot.index, Some(victim))
        };
        self.clock += 1;
        self.slots.insert(
            file,
            Slot {
                index,
                last_use: self.clock,
                in_flight: 1,
                closing: false,
            },
        );
        Some((index, evicted))
    }

    /// Releases `file`'s slot (its handle closed), returning it to clear; while operations
    /// still use it, it is released when the last ends (see [`FileTable::end`]).
    pub(crate) fn remove(&mut self, file: FileId) -> Option<u32> {
        let slot = self.slots.get_mut(&file)?;
        if slot.in_flight > 0 {
            slot.closing = true;
            return None;
        }
        let slot = self.slots.remove(&file)?;
        self.free.push(slot.index);
        Some(slot.index)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slots replaced by use so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_after_removal() {
        let mut table = FileTable::new(2);
        let (a, _) = table.insert(FileId(1)).unwrap();
        let (b, _) = table.insert(FileId(2)).unwrap();
        assert_ne!(a, b);
        assert_eq!(table.insert(FileId(3)), None, "full, both in use");
        assert_eq!(table.end(FileId(1)), None);
        assert_eq!(table.remove(FileId(1)), Some(a));
        assert_eq!(table.insert(FileId(3)), Some((a, None)));
        assert_eq!(table.begin(FileId(2)), Some(b));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn the_least_recently_used_idle_slot_is_evicted_never_one_in_use() {
        let mut table = FileTable::new(2);
        let (a, _) = table.insert(FileId(1)).unwrap();
        let (b, _) = table.insert(FileId(2)).unwrap();
        table.end(FileId(1));
        table.end(FileId(2));
        // 1 is used again (and stays in use): 2 is the idle, least recently used one.
        assert_eq!(table.begin(FileId(1)), Some(a));
        assert_eq!(table.insert(FileId(3)), Some((b, Some(FileId(2)))));
        assert_eq!(table.begin(FileId(2)), None, "evicted");
        assert_eq!(table.insert(FileId(4)), None, "1 and 3 are in use");
        table.end(FileId(1));
        assert_eq!(table.insert(FileId(4)), Some((a, Some(FileId(1)))));
        assert_eq!(table.evictions(), 2);
    }

    #[test]
    fn a_closed_handle_keeps_its_slot_until_its_last_operation_ends() {
        let mut table = FileTable::new(1);
        let (a, _) = table.insert(FileId(1)).unwrap();
        assert_eq!(table.remove(FileId(1)), None, "in use");
        assert_eq!(table.insert(FileId(2)), None, "not free yet");
        assert_eq!(
            table.end(FileId(1)),
            Some(a),
            "freed with the last operation"
        );
        assert_eq!(table.insert(FileId(2)), Some((a, None)));
    }
}
