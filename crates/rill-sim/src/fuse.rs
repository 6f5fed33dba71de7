//! [`SimDisk`] as a real file system: a FUSE mount whose files live in a simulated disk, so
//! that code doing its own system calls (rill's io_uring and syscall drivers) runs on a file
//! system that really loses what was not synced when the power is cut.
//!
//! Writes go through to the daemon (no `writeback_cache`), so the kernel holds no dirty page of
//! its own: what a cut can lose is exactly what [`SimDisk`] has not made durable. A power cut is
//! [`SimDisk::power_cut_after`] (every later call fails with `EIO`, as a dead device does), then
//! unmounting (which drops the kernel's cached pages and attributes), [`SimDisk::crash`], and a
//! new mount. Attributes and entries are not cached (zero TTL), so the kernel asks the disk.

use crate::SimDisk;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use rill_disk::{Disk, FileId, OpenMode};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nothing is cached by the kernel: every lookup and attribute comes from the disk.
const TTL: Duration = Duration::ZERO;
/// Largest read served in one request.
const MAX_READ_BYTES: u32 = 1 << 20;
/// How long [`SimMount::unmount`] waits for a busy mount: attempts × pause (5 s in all).
const UNMOUNT_ATTEMPTS: u32 = 500;
const UNMOUNT_RETRY: Duration = Duration::from_millis(10);

/// A mounted [`SimFs`]. Dropping fuser's session alone leaves the file system mounted, so this
/// owns the unmount: [`SimMount::unmount`], which reports a failure, or the same on drop (a
/// panicking test leaves nothing mounted).
#[derive(Debug)]
pub struct SimMount {
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl SimMount {
    /// Unmounts the file system and waits for its session to end; the kernel's cached pages and
    /// attributes go with the mount. Every file on it must be closed: a busy mount is retried
    /// for a bounded time (the kernel releases an io_uring's registered files asynchronously,
    /// after the ring is closed), then detached.
    ///
    /// # Errors
    /// If it stays busy, or the unmount fails otherwise (the mount is then detached).
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_now()
    }

    fn unmount_now(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let mut result = Err(io::Error::from(io::ErrorKind::ResourceBusy));
        for _ in 0..UNMOUNT_ATTEMPTS {
            match rustix::mount::unmount(&self.mountpoint, rustix::mount::UnmountFlags::empty()) {
                Ok(()) => {
                    result = Ok(());
                    break;
                }
                Err(rustix::io::Errno::BUSY) => std::thread::sleep(UNMOUNT_RETRY),
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
        }
        match result {
            // Unmounted: the session's next read of the device fails (ENODEV, or ECONNABORTED
            // if requests were still queued) and it ends; either is the end we asked for.
            Ok(()) => match session.join() {
                Err(e)
                    if e.raw_os_error() == Some(libc::ENODEV)
                        || e.raw_os_error() == Some(libc::ECONNABORTED) =>
                {
                    Ok(())
                }
                ended => ended,
            },
            Err(e) => {
                // Detached now, gone once nothing uses it; the session is left to end then.
                let _ =
                    rustix::mount::unmount(&self.mountpoint, rustix::mount::UnmountFlags::DETACH);
                Err(e)
            }
        }
    }
}

impl Drop for SimMount {
    fn drop(&mut self) {
        let _ = self.unmount_now();
    }
}

/// Inode numbers for paths (FUSE names files by number, the simulated disk by path).
#[derive(Debug)]
struct Inodes {
    paths: HashMap<u64, PathBuf>,
    numbers: HashMap<PathBuf, u64>,
    next: u64,
}

impl Inodes {
    fn new() -> Self {
        let root = PathBuf::from("/");
        Self {
            paths: HashMap::from([(INodeNo::ROOT.0, root.clone())]),
            numbers: HashMap::from([(root, INodeNo::ROOT.0)]),
            next: INodeNo::ROOT.0 + 1,
        }
    }

    fn number(&mut self, path: &Path) -> u64 {
        if let Some(&n) = self.numbers.get(path) {
            return n;
        }
        let n = self.next;
        self.next += 1;
        self.paths.insert(n, path.to_path_buf());
        self.numbers.insert(path.to_path_buf(), n);
        n
    }

    /// Every known path under `from` (itself included) moves to `to`.
    fn rename(&mut self, from: &Path, to: &Path) {
        let moved: Vec<(PathBuf, u64)> = self
            .numbers
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, &n)| (p.clone(), n))
            .collect();
        for (old, n) in moved {
            self.numbers.remove(&old);
            if let Ok(rest) = old.strip_prefix(from) {
                let new = to.join(rest);
                self.paths.insert(n, new.clone());
                self.numbers.insert(new, n);
            }
        }
    }
}

/// A mountable file system over a [`SimDisk`] (its tree from `/`).
#[derive(Debug)]
pub struct SimFs {
    disk: Arc<SimDisk>,
    inodes: Mutex<Inodes>,
}

impl SimFs {
    /// A file system serving `disk`.
    pub fn new(disk: Arc<SimDisk>) -> Self {
        Self {
            disk,
            inodes: Mutex::new(Inodes::new()),
        }
    }

    /// Mounts `disk` at `mountpoint` (needs root or `fusermount3`). [`SimMount::unmount`]
    /// unmounts it; dropping the mount detaches it lazily.
    ///
    /// # Errors
    /// If the mount fails (no `/dev/fuse`, not permitted).
    pub fn mount(disk: Arc<SimDisk>, mountpoint: &Path) -> io::Result<SimMount> {
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("rill-sim".into()),
            fuser::MountOption::Subtype("rill-sim".into()),
        ];
        let session = fuser::spawn_mount(Self::new(disk), mountpoint, &config)?;
        Ok(SimMount {
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
        })
    }

    fn inodes(&self) -> std::sync::MutexGuard<'_, Inodes> {
        self.inodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.inodes()
            .paths
            .get(&ino.0)
            .cloned()
            .ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// The attributes of `path`, from the disk.
    fn attr(&self, path: &Path) -> Result<FileAttr, Errno> {
        let ino = INodeNo(self.inodes().number(path));
        if self.disk.is_dir(path).map_err(errno)? {
            return Ok(file_attr(ino, FileType::Directory, 0));
        }
        let file = self.disk.open(path, OpenMode::Existing).map_err(errno)?;
        let len = self.disk.file_len(file);
        self.disk.close(file);
        Ok(file_attr(ino, FileType::RegularFile, len.map_err(errno)?))
    }
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "used as `map_err(errno)`, which hands the error over"
)]
fn errno(e: io::Error) -> Errno {
    match e.raw_os_error() {
        Some(code) if code > 0 => Errno::from_i32(code),
        _ => Errno::EIO,
    }
}

/// Answers a request that returns nothing.
fn reply_empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn file_attr(ino: INodeNo, kind: FileType, size: u64) -> FileAttr {
    let perm = if kind == FileType::Directory {
        0o755
    } else {
        0o644
    };
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

impl Filesystem for SimFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|p| self.attr(&p)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.path(ino).and_then(|p| self.attr(&p)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.path(ino).and_then(|path| {
            if let Some(len) = size {
                if let Some(fh) = fh {
                    self.disk.set_len(FileId(fh.0), len).map_err(errno)?;
                } else {
                    let file = self.disk.open(&path, OpenMode::Existing).map_err(errno)?;
                    let set = self.disk.set_len(file, len);
                    self.disk.close(file);
                    set.map_err(errno)?;
                }
            }
            self.attr(&path)
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.child(parent, name).and_then(|path| {
            if self.disk.is_dir(&path).map_err(errno)? || self.attr(&path).is_ok() {
                return Err(Errno::EEXIST);
            }
            self.disk.create_dir_all(&path).map_err(errno)?;
            self.attr(&path)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let path = self.child(parent, name);
        reply_empty(
            reply,
            path.and_then(|p| self.disk.remove_file(&p).map_err(errno)),
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let path = self.child(parent, name);
        reply_empty(
            reply,
            path.and_then(|p| self.disk.remove_dir(&p).map_err(errno)),
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.child(parent, name).and_then(|from| {
            let to = self.child(newparent, newname)?;
            self.disk.rename(&from, &to).map_err(errno)?;
            self.inodes().rename(&from, &to);
            Ok(())
        });
        reply_empty(reply, result);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let result = self.path(ino).and_then(|path| {
            let file = self.disk.open(&path, OpenMode::Existing).map_err(errno)?;
            if flags.0 & libc::O_TRUNC != 0
                && let Err(e) = self.disk.set_len(file, 0)
            {
                self.disk.close(file);
                return Err(errno(e));
            }
            Ok(file)
        });
        match result {
            Ok(file) => reply.opened(FileHandle(file.0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mode = if flags & libc::O_EXCL != 0 {
            OpenMode::CreateNew
        } else {
            OpenMode::Create
        };
        let result = self.child(parent, name).and_then(|path| {
            let file = self.disk.open(&path, mode).map_err(errno)?;
            match self.attr(&path) {
                Ok(attr) => Ok((file, attr)),
                Err(e) => {
                    self.disk.close(file);
                    Err(e)
                }
            }
        });
        match result {
            Ok((file, attr)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(file.0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let mut buf = vec![0u8; size.min(MAX_READ_BYTES) as usize];
        let mut filled = 0;
        // Bounded: each pass reads at least one byte or ends.
        while filled < buf.len() {
            match self
                .disk
                .read_at(FileId(fh.0), offset + filled as u64, &mut buf[filled..])
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buf[..filled]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match rill_disk::write_all_at(self.disk.as_ref(), FileId(fh.0), offset, &[data]) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.disk.close(FileId(fh.0));
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.disk.fdatasync(FileId(fh.0)).map_err(errno));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.path(ino).and_then(|dir| {
            let names = self.disk.list_dir(&dir).map_err(errno)?;
            let mut entries = vec![
                (ino, FileType::Directory, ".".to_string()),
                (ino, FileType::Directory, "..".to_string()),
            ];
            for name in names {
                let path = dir.join(&name);
                let kind = if self.disk.is_dir(&path).map_err(errno)? {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                entries.push((INodeNo(self.inodes().number(&path)), kind, name));
            }
            Ok(entries)
        });
        match listed {
            Ok(entries) => {
                let skip = usize::try_from(offset).unwrap_or(usize::MAX);
                for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(skip) {
                    if reply.add(ino, i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let path = self.path(ino);
        reply_empty(
            reply,
            path.and_then(|p| self.disk.sync_dir(&p).map_err(errno)),
        );
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = 1 << 24;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Plain allocation (rill's preallocation) grows the file; other modes are refused.
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let allocated = self.disk.allocate(FileId(fh.0), offset + length);
        reply_empty(reply, allocated.map_err(errno));
    }
}
