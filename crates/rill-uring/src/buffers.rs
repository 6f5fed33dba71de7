//! Read buffers: a pool of equal-sized buffers carved from one anonymous mapping, which the
//! io_uring driver registers with the kernel (fixed buffers) and the other drivers use as plain
//! memory.
//!
//! A [`ReadBuf`] is an owned guard over one buffer: while a read is in flight the driver's
//! operation owns it; afterwards the caller does, and dropping it returns the buffer to the pool.
//! When every buffer is out, or a read is larger than a buffer, the read gets an ordinary heap
//! buffer instead, so the pool bounds pinned memory, never the number of reads.

use crate::error::DriverError;
use bytes::Bytes;
use parking_lot::Mutex;
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Size of the buffer pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferPoolConfig {
    /// Number of buffers.
    pub buffers: usize,
    /// Bytes per buffer: reads up to this size use a pooled buffer.
    pub buffer_bytes: usize,
}

impl Default for BufferPoolConfig {
    /// 32 buffers of 1 MiB: 32 MiB pinned per shard.
    fn default() -> Self {
        Self {
            buffers: 32,
            buffer_bytes: 1 << 20,
        }
    }
}

/// The anonymous mapping behind the pool.
struct Arena {
    ptr: NonNull<u8>,
    len: usize,
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly the mapping made in `Arena::new`; no `ReadBuf` or
        // in-flight operation can use it any more, because each holds an `Arc` to the pool
        // that owns this arena, and this runs when the last one is gone.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl Arena {
    fn new(len: usize) -> Result<Self, DriverError> {
        use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous};
        // SAFETY: a fresh private anonymous mapping aliases no existing memory.
        let ptr = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(|e| DriverError::setup("mmap read buffers", e))?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| DriverError::Config("mmap returned null".into()))?;
        Ok(Self { ptr, len })
    }
}

struct Shared {
    arena: Arena,
    buffer_bytes: usize,
    buffers: usize,
    free: Mutex<Vec<u32>>,
    registered: AtomicBool,
    pooled_reads: AtomicU64,
    heap_reads: AtomicU64,
}

// SAFETY: the arena is plain memory; every access goes through a `ReadBuf`, which owns a
// disjoint buffer (its index left the free list, guarded by the mutex, and returns to it only
// when the `ReadBuf` drops), so sharing the pool across threads creates no aliasing.
unsafe impl Send for Shared {}
// SAFETY: as above: `&Shared` gives access only to the mutex-guarded free list and atomics.
unsafe impl Sync for Shared {}

/// A pool of read buffers. Cheap to clone (shared).
#[derive(Clone)]
pub struct BufferPool {
    shared: Arc<Shared>,
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("buffers", &self.shared.buffers)
            .field("buffer_bytes", &self.shared.buffer_bytes)
            .field("available", &self.available())
            .field("registered", &self.is_registered())
            .finish()
    }
}

impl BufferPool {
    /// Maps `config.buffers * config.buffer_bytes` bytes.
    pub fn new(config: BufferPoolConfig) -> Result<Self, DriverError> {
        if config.buffers == 0 || config.buffer_bytes == 0 || config.buffers > u32::MAX as usize {
            return Err(DriverError::Config(format!(
                "buffer pool needs 1..=u32::MAX buffers of at least one byte, got {config:?}"
            )));
        }
        // Page-align each buffer so a registered buffer pins no page twice.
        let page = 4096;
        let buffer_bytes = config.buffer_bytes.div_ceil(page) * page;
        let len = buffer_bytes
            .checked_mul(config.buffers)
            .filter(|len| *len <= 1 << 30)
            .ok_or_else(|| {
                DriverError::Config("buffer pool larger than 1 GiB (io_uring's limit)".into())
            })?;
        let arena = Arena::new(len)?;
        let free = (0..config.buffers as u32).rev().collect();
        Ok(Self {
            shared: Arc::new(Shared {
                arena,
                buffer_bytes,
                buffers: config.buffers,
                free: Mutex::new(free),
                registered: AtomicBool::new(false),
                pooled_reads: AtomicU64::new(0),
                heap_reads: AtomicU64::new(0),
            }),
        })
    }

    /// Bytes per pooled buffer.
    pub fn buffer_bytes(&self) -> usize {
        self.shared.buffer_bytes
    }

    /// Buffers not handed out.
    pub fn available(&self) -> usize {
        self.shared.free.lock().len()
    }

    /// Whether the pool is registered with an io_uring (reads into it are fixed-buffer reads).
    pub fn is_registered(&self) -> bool {
        self.shared.registered.load(Ordering::Relaxed)
    }

    /// Reads served from the pool and from heap buffers so far.
    pub fn reads(&self) -> (u64, u64) {
        (
            self.shared.pooled_reads.load(Ordering::Relaxed),
            self.shared.heap_reads.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn mark_registered(&self) {
        self.shared.registered.store(true, Ordering::Relaxed);
    }

    /// The whole arena, for `io_uring_register_buffers` (registered as buffer index 0).
    pub(crate) fn arena_iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.shared.arena.ptr.as_ptr().cast(),
            iov_len: self.shared.arena.len,
        }
    }

    /// A buffer of `len` bytes: pooled when one is free and large enough, else from the heap.
    pub fn take(&self, len: usize) -> ReadBuf {
        if let Some(buf) = self.take_pooled(len) {
            return buf;
        }
        self.shared.heap_reads.fetch_add(1, Ordering::Relaxed);
        ReadBuf {
            kind: Kind::Heap(vec![0; len]),
            len,
        }
    }

    /// A pooled buffer of `len` bytes, if one is free and large enough.
    pub(crate) fn take_pooled(&self, len: usize) -> Option<ReadBuf> {
        if len > self.shared.buffer_bytes {
            return None;
        }
        let index = self.shared.free.lock().pop()?;
        self.shared.pooled_reads.fetch_add(1, Ordering::Relaxed);
        Some(ReadBuf {
            kind: Kind::Pooled {
                shared: Arc::clone(&self.shared),
                index,
            },
            len,
        })
    }
}

enum Kind {
    Pooled { shared: Arc<Shared>, index: u32 },
    Heap(Vec<u8>),
}

/// An owned buffer holding read bytes. Dropping it returns a pooled buffer to its pool.
/// Convert it into [`Bytes`] with [`ReadBuf::into_bytes`] (no copy).
pub struct ReadBuf {
    kind: Kind,
    len: usize,
}

impl fmt::Debug for ReadBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBuf")
            .field("len", &self.len)
            .field("pooled", &matches!(self.kind, Kind::Pooled { .. }))
            .finish()
    }
}

impl ReadBuf {
    /// A heap buffer holding `bytes` (for drivers and tests that have the bytes already).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self {
            len: bytes.len(),
            kind: Kind::Heap(bytes),
        }
    }

    /// Whether the buffer came from the pool.
    pub fn is_pooled(&self) -> bool {
        matches!(self.kind, Kind::Pooled { .. })
    }

    /// Start of the buffer, for the kernel to write into. The buffer has `len()` writable bytes.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        match &mut self.kind {
            Kind::Pooled { shared, index } => {
                let offset = *index as usize * shared.buffer_bytes;
                // SAFETY: `index < buffers`, so `offset + buffer_bytes <= arena.len`: the result
                // stays inside the mapping.
                unsafe { shared.arena.ptr.as_ptr().add(offset) }
            }
            Kind::Heap(vec) => vec.as_mut_ptr(),
        }
    }

    /// The registered-buffer index when the buffer is a pooled one in a registered pool.
    pub(crate) fn fixed_index(&self) -> Option<u16> {
        match &self.kind {
            Kind::Pooled { shared, .. } if shared.registered.load(Ordering::Relaxed) => Some(0),
            _ => None,
        }
    }

    /// The buffer as a mutable slice, for drivers that fill it with a system call.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        let ptr = self.as_mut_ptr();
        // SAFETY: `ptr` points at `len` initialised bytes (the arena is zero-filled at mapping,
        // a heap buffer is zeroed at creation) that this guard owns exclusively: no other
        // `ReadBuf` has the same index, and no operation is in flight on it while the driver
        // holds `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Shortens the buffer to its first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The bytes as [`Bytes`], without copying; the buffer returns to its pool when the last
    /// clone of the `Bytes` drops.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl Deref for ReadBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.kind {
            Kind::Pooled { shared, index } => {
                let offset = *index as usize * shared.buffer_bytes;
                // SAFETY: the range is inside the arena (see `as_mut_ptr`), initialised, and
                // owned by this guard; no write is in flight on it once a caller can see it
                // (the driver hands the guard out only after the read's completion).
                unsafe {
                    std::slice::from_raw_parts(shared.arena.ptr.as_ptr().add(offset), self.len)
                }
            }
            Kind::Heap(vec) => &vec[..self.len],
        }
    }
}

impl AsRef<[u8]> for ReadBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        if let Kind::Pooled { shared, index } = &self.kind {
            shared.free.lock().push(*index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_to_the_pool_and_overflow_to_the_heap() {
        let pool = BufferPool::new(BufferPoolConfig {
            buffers: 2,
            buffer_bytes: 4096,
        })
        .unwrap();
        let mut a = pool.take(100);
        let b = pool.take(4096);
        let c = pool.take(10);
        let big = pool.take(5000);
        assert!(a.is_pooled() && b.is_pooled());
        assert!(!c.is_pooled(), "pool exhausted: heap");
        assert!(!big.is_pooled(), "larger than a buffer: heap");
        assert_eq!((a.len(), big.len()), (100, 5000));
        a.as_mut_slice().fill(7);
        let bytes = a.into_bytes();
        assert_eq!(pool.available(), 0);
        assert!(bytes.iter().all(|&x| x == 7));
        drop(bytes);
        drop(b);
        assert_eq!(pool.available(), 2);
        assert_eq!(pool.reads(), (2, 2));
    }

    #[test]
    fn read_bufs_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<ReadBuf>();
        check::<BufferPool>();
    }
}
