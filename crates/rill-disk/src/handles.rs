//! [`StdDisk`](super::StdDisk)'s handle table: a bounded cache of open descriptors.
//!
//! A [`FileId`] names a file by the path it was opened at, not by a descriptor. At most
//! `max_open_files` handles hold a descriptor at a time; the least recently used lose theirs
//! when more are opened, and get a new one (reopening the path) on their next use. So a log of
//! 100,000 segments holds a bounded number of descriptors, whatever it retains (Kafka keeps one
//! per segment; a broker with many small segments then runs out).
//!
//! Why reopening by path finds the same file: every rename and removal goes through the disk,
//! which updates the table under its lock. A rename moves the handles of `from` to `to` (and of
//! every path below `from`, for a directory); handles of a path that a rename replaces or a
//! removal unlinks are *detached*: their descriptor, if they hold one, is never evicted (it is
//! the only way left to the file), and without one their next use fails with `ENOENT` rather
//! than open whatever the name leads to now.
//!
//! Eviction only drops the table's reference ([`Arc<File>`]): an operation that took the file
//! (a read, a write, an fdatasync, an io_uring submission holding it until its completion)
//! keeps the descriptor open until it ends, so a descriptor number is never reused under an
//! operation in flight.
//!
//! Every table operation costs time in what it touches, not in the handles there are: handles
//! are found by id (a hash map), by path (an ordered map of the paths' bytes, where the paths
//! below a directory, which all start with `dir/`, are contiguous), and eviction looks only at
//! the handles holding a descriptor.

use super::FileId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// The default bound on descriptors [`StdDisk`](super::StdDisk) keeps open: well inside the
/// usual soft limit of 1,024 per process, with room for sockets, pipes and rings.
pub const DEFAULT_MAX_OPEN_FILES: usize = 512;

/// Attempts to reopen a handle whose path changes under the reopen (a concurrent rename).
const MAX_REOPEN_ATTEMPTS: u32 = 4;

/// How the table has been used, for tests and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandleStats {
    /// Handles currently open (with or without a descriptor).
    pub handles: usize,
    /// Handles holding a descriptor now.
    pub descriptors: usize,
    /// Descriptors closed to stay within the bound.
    pub evictions: u64,
    /// Handles given a new descriptor after an eviction.
    pub reopens: u64,
}

#[derive(Debug)]
pub(super) struct Handles {
    max_open_files: usize,
    table: RwLock<Table>,
    /// A logical clock for least-recently-used eviction.
    clock: AtomicU64,
    evictions: AtomicU64,
    reopens: AtomicU64,
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Default)]
struct Table {
    next: u64,
    handles: IdMap<Handle>,
    /// The handles that are not detached, by path (its bytes: a byte comparison is a
    /// `memcmp`, a `Path` comparison parses components).
    by_path: BTreeMap<OsString, Vec<u64>>,
    /// Handles with a descriptor that eviction may close (not detached); at most
    /// `max_open_files` between operations.
    evictable: IdSet,
    /// Handles holding a descriptor, detached ones included.
    descriptors: usize,
}

impl Table {
    fn insert(&mut self, path: &Path, file: Option<Arc<File>>, now: u64) -> u64 {
        self.next += 1;
        let id = self.next;
        if file.is_some() {
            self.evictable.insert(id);
            self.descriptors += 1;
        }
        self.by_path
            .entry(path.as_os_str().to_owned())
            .or_default()
            .push(id);
        self.handles.insert(
            id,
            Handle {
                path: path.to_path_buf(),
                file,
                last_use: AtomicU64::new(now),
                detached: false,
            },
        );
        id
    }

    /// Forgets `id` under `path` in the path index.
    fn unindex(&mut self, path: &Path, id: u64) {
        if let Some(ids) = self.by_path.get_mut(path.as_os_str()) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_path.remove(path.as_os_str());
            }
        }
    }

    /// Detaches every handle of `path`: the name no longer leads to their file.
    fn detach_path(&mut self, path: &Path) {
        for id in self.by_path.remove(path.as_os_str()).unwrap_or_default() {
            if let Some(handle) = self.handles.get_mut(&id) {
                handle.detached = true;
            }
            self.evictable.remove(&id);
        }
    }

    /// Moves the handles of `from` and of every path below it to `to`.
    fn move_paths(&mut self, from: &Path, to: &Path) {
        let mut below = from.as_os_str().as_bytes().to_vec();
        below.push(b'/');
        let below = OsString::from_vec(below);
        let mut moved: Vec<OsString> = self
            .by_path
            .range::<OsString, _>(&below..)
            .map(|(path, _)| path)
            .take_while(|path| path.as_bytes().starts_with(below.as_bytes()))
            .cloned()
            .collect();
        if self.by_path.contains_key(from.as_os_str()) {
            moved.push(from.as_os_str().to_owned());
        }
        for old in moved {
            let Some(ids) = self.by_path.remove(&old) else {
                continue;
            };
            let new = match Path::new(&old).strip_prefix(from) {
                Ok(rest) if !rest.as_os_str().is_empty() => to.join(rest),
                _ => to.to_path_buf(),
            };
            for id in &ids {
                if let Some(handle) = self.handles.get_mut(id) {
                    handle.path.clone_from(&new);
                }
            }
            self.by_path
                .entry(new.into_os_string())
                .or_default()
                .extend(ids);
        }
    }
}

#[derive(Debug)]
struct Handle {
    path: PathBuf,
    file: Option<Arc<File>>,
    last_use: AtomicU64,
    /// The path no longer leads to this file (see the module documentation).
    detached: bool,
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

fn ebadf() -> io::Error {
    io::Error::from_raw_os_error(rustix::io::Errno::BADF.raw_os_error())
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(rustix::io::Errno::NOENT.raw_os_error())
}

/// Whether `e` says the process (or system) has no descriptor left.
fn out_of_descriptors(e: &io::Error) -> bool {
    let errno = e.raw_os_error();
    errno == Some(rustix::io::Errno::MFILE.raw_os_error())
        || errno == Some(rustix::io::Errno::NFILE.raw_os_error())
}

impl Handles {
    pub(super) fn new(max_open_files: usize) -> Self {
        Self {
            max_open_files: max_open_files.max(1),
            table: RwLock::new(Table::default()),
            clock: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Opens `path` with `options` and returns a new handle to it. When the process is out of
    /// descriptors, half the cache is closed and the open tried once more.
    pub(super) fn open(&self, path: &Path, options: &OpenOptions) -> io::Result<FileId> {
        let file = self.open_file(path, options)?;
        let mut table = self.write();
        let id = table.insert(path, Some(Arc::new(file)), self.tick());
        self.evict_over_bound(&mut table, id);
        Ok(FileId(id))
    }

    /// A handle to the existing file at `path` that opens it on first use.
    pub(super) fn insert_closed(&self, path: &Path) -> FileId {
        let now = self.tick();
        FileId(self.write().insert(path, None, now))
    }

    fn open_file(&self, path: &Path, options: &OpenOptions) -> io::Result<File> {
        self.with_descriptor(|| options.open(path))
    }

    /// Runs `open` (anything that takes a descriptor); if the process or system has none left,
    /// closes half of the cache's and runs it once more.
    pub(super) fn with_descriptor<T>(&self, open: impl Fn() -> io::Result<T>) -> io::Result<T> {
        match open() {
            Err(e) if out_of_descriptors(&e) => {
                let mut table = self.write();
                let keep = table.evictable.len() / 2;
                self.evict_to(&mut table, keep, None);
                drop(table);
                open()
            }
            other => other,
        }
    }

    /// Closes a handle (its descriptor closes when the last operation holding it ends).
    pub(super) fn close(&self, id: FileId) {
        let mut table = self.write();
        if let Some(handle) = table.handles.remove(&id.0) {
            table.evictable.remove(&id.0);
            if handle.file.is_some() {
                table.descriptors -= 1;
            }
            if !handle.detached {
                table.unindex(&handle.path, id.0);
            }
        }
    }

    /// The open file behind `id`, reopened if its descriptor was evicted. The table's lock is
    /// held for the lookup only, never across a read or write: a slow write on one file must
    /// not hold up another's.
    pub(super) fn get(&self, id: FileId) -> io::Result<Arc<File>> {
        let now = self.tick();
        // Bounded: a retry happens only when a rename moved the handle during the reopen.
        for _ in 0..MAX_REOPEN_ATTEMPTS {
            let path = {
                let table = self.read();
                let handle = table.handles.get(&id.0).ok_or_else(ebadf)?;
                handle.last_use.store(now, Ordering::Relaxed);
                if let Some(file) = &handle.file {
                    return Ok(Arc::clone(file));
                }
                if handle.detached {
                    return Err(enoent());
                }
                handle.path.clone()
            };
            let mut options = OpenOptions::new();
            options.read(true).write(true);
            let reopened = self.open_file(&path, &options);
            let mut table = self.write();
            let handle = table.handles.get_mut(&id.0).ok_or_else(ebadf)?;
            if let Some(file) = &handle.file {
                return Ok(Arc::clone(file));
            }
            if handle.detached {
                return Err(enoent());
            }
            if handle.path != path {
                continue;
            }
            let file = Arc::new(reopened?);
            handle.file = Some(Arc::clone(&file));
            table.evictable.insert(id.0);
            table.descriptors += 1;
            self.reopens.fetch_add(1, Ordering::Relaxed);
            self.evict_over_bound(&mut table, id.0);
            return Ok(file);
        }
        Err(io::Error::other(format!(
            "{id} kept moving while it was reopened"
        )))
    }

    /// Runs `rename` (the file system's) under the table's lock, then moves the handles of
    /// `from` (and below it) to `to`; handles of a replaced `to` are detached.
    pub(super) fn rename(
        &self,
        from: &Path,
        to: &Path,
        rename: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let mut table = self.write();
        rename()?;
        if from == to {
            return Ok(());
        }
        table.detach_path(to);
        table.move_paths(from, to);
        Ok(())
    }

    /// Runs `remove` (the file system's) under the table's lock, then detaches the handles of
    /// `path`.
    pub(super) fn remove(
        &self,
        path: &Path,
        remove: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let mut table = self.write();
        remove()?;
        table.detach_path(path);
        Ok(())
    }

    pub(super) fn stats(&self) -> HandleStats {
        let table = self.read();
        HandleStats {
            handles: table.handles.len(),
            descriptors: table.descriptors,
            evictions: self.evictions.load(Ordering::Relaxed),
            reopens: self.reopens.load(Ordering::Relaxed),
        }
    }

    /// Keeps evictable descriptors within the bound. Evicts an eighth of the bound more than
    /// needed, so the sort is paid once per that many opens, not on every one.
    fn evict_over_bound(&self, table: &mut Table, keep_id: u64) {
        if table.evictable.len() > self.max_open_files {
            let keep = self.max_open_files - self.max_open_files / 8;
            self.evict_to(table, keep, Some(keep_id));
        }
    }

    /// Closes the least recently used evictable descriptors until at most `keep` remain
    /// (sparing `spare`, the handle being opened).
    fn evict_to(&self, table: &mut Table, keep: usize, spare: Option<u64>) {
        if table.evictable.len() <= keep {
            return;
        }
        let mut candidates: Vec<(u64, u64)> = table
            .evictable
            .iter()
            .filter(|id| Some(**id) != spare)
            .filter_map(|id| Some((table.handles.get(id)?.last_use.load(Ordering::Relaxed), *id)))
            .collect();
        candidates.sort_unstable();
        let excess = table.evictable.len() - keep;
        for (_, id) in candidates.into_iter().take(excess) {
            table.evictable.remove(&id);
            if let Some(handle) = table.handles.get_mut(&id)
                && handle.file.take().is_some()
            {
                table.descriptors -= 1;
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn rw() -> OpenOptions {
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true);
        o
    }

    fn read_all(handles: &Handles, id: FileId) -> Vec<u8> {
        let file = handles.get(id).unwrap();
        let mut buf = vec![0u8; file.metadata().unwrap().len() as usize];
        file.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    #[test]
    fn descriptors_stay_within_the_bound_and_handles_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let handles = Handles::new(8);
        let mut ids = Vec::new();
        for i in 0..100u32 {
            let path = dir.path().join(format!("{i}"));
            let id = handles.open(&path, &rw()).unwrap();
            handles
                .get(id)
                .unwrap()
                .write_all(&i.to_be_bytes())
                .unwrap();
            ids.push(id);
            assert!(handles.stats().descriptors <= 8);
        }
        for (i, id) in ids.iter().enumerate().rev() {
            assert_eq!(read_all(&handles, *id), (i as u32).to_be_bytes());
        }
        let stats = handles.stats();
        assert_eq!(stats.handles, 100);
        assert!(stats.descriptors <= 8);
        assert!(stats.evictions >= 92 && stats.reopens >= 92, "{stats:?}");
    }

    #[test]
    fn a_held_file_stays_open_after_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let handles = Handles::new(1);
        let a = handles.open(&dir.path().join("a"), &rw()).unwrap();
        let held = handles.get(a).unwrap();
        let _b = handles.open(&dir.path().join("b"), &rw()).unwrap();
        assert_eq!(handles.stats().descriptors, 1, "a was evicted");
        held.write_all_at(b"still open", 0).unwrap();
        assert_eq!(read_all(&handles, a), b"still open");
    }

    #[test]
    fn renames_move_handles_and_replaced_files_are_never_reopened_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let handles = Handles::new(1);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let ida = handles.open(&a, &rw()).unwrap();
        handles.get(ida).unwrap().write_all_at(b"A", 0).unwrap();
        let idb = handles.open(&b, &rw()).unwrap();
        handles.get(idb).unwrap().write_all_at(b"B", 0).unwrap();
        // a is evicted (bound 1); renaming it over b moves a's handle and detaches b's.
        handles.rename(&a, &b, || std::fs::rename(&a, &b)).unwrap();
        assert_eq!(read_all(&handles, ida), b"A", "reopened at its new name");
        assert_eq!(
            read_all(&handles, idb),
            b"B",
            "the replaced file keeps its descriptor"
        );
        // A directory rename moves the handles below it.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let c = handles.open(&sub.join("c"), &rw()).unwrap();
        handles.get(c).unwrap().write_all_at(b"C", 0).unwrap();
        let _evict = handles.open(&dir.path().join("d"), &rw()).unwrap();
        let moved = dir.path().join("moved");
        handles
            .rename(&sub, &moved, || std::fs::rename(&sub, &moved))
            .unwrap();
        assert_eq!(read_all(&handles, c), b"C");
    }

    #[test]
    fn a_removed_file_without_a_descriptor_is_not_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let handles = Handles::new(1);
        let a = dir.path().join("a");
        let ida = handles.open(&a, &rw()).unwrap();
        let _b = handles.open(&dir.path().join("b"), &rw()).unwrap();
        handles.remove(&a, || std::fs::remove_file(&a)).unwrap();
        std::fs::write(&a, b"another file").unwrap();
        let e = handles.get(ida).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        handles.close(ida);
        assert_eq!(
            handles.get(ida).unwrap_err().raw_os_error(),
            ebadf().raw_os_error()
        );
    }

    #[test]
    fn a_directory_rename_moves_only_the_paths_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let handles = Handles::new(1);
        let mut ids = Vec::new();
        for sub in ["t-1", "t-1.delete", "t-10", "t-1x"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            let path = dir.path().join(sub).join("f");
            let id = handles.open(&path, &rw()).unwrap();
            handles
                .get(id)
                .unwrap()
                .write_all_at(sub.as_bytes(), 0)
                .unwrap();
            ids.push((sub, id));
        }
        let (from, to) = (dir.path().join("t-1"), dir.path().join("t-1.gone"));
        handles
            .rename(&from, &to, || std::fs::rename(&from, &to))
            .unwrap();
        // Every handle lost its descriptor to the bound of 1 but the last; each reopens its
        // own file, the moved one at its new path.
        for (sub, id) in ids {
            assert_eq!(read_all(&handles, id), sub.as_bytes(), "{sub}");
        }
        assert_eq!(handles.read().by_path.len(), 4);
        assert!(
            handles
                .read()
                .by_path
                .contains_key(to.join("f").as_os_str())
        );
    }
}
