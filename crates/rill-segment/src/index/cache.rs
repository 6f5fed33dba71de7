//! A bounded cache of sealed segments' indexes, shared by the partitions of a log.
//!
//! A sealed segment's indexes live in its index files once its seal is durable; they are read
//! when first used (a lookup, a retention check, a verification) and kept here, least recently
//! used first out, within `max_bytes`. So the memory a log holds for indexes does not grow with
//! the data it retains (read whole at open, they cost about 6 MB per GiB of log).

use super::{OFFSET_ENTRY_BYTES, OffsetIndex, TIME_ENTRY_BYTES, TimeIndex};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The default bound of an [`IndexCache`]: 64 MiB, the indexes of about 10 GiB of log.
pub const DEFAULT_INDEX_CACHE_BYTES: u64 = 64 << 20;

/// A segment's two indexes, as the cache holds them.
#[derive(Debug, Clone)]
pub struct SegmentIndexes {
    /// The offset index.
    pub offset: Arc<OffsetIndex>,
    /// The time index.
    pub time: Arc<TimeIndex>,
}

impl SegmentIndexes {
    /// Memory the entries take.
    pub fn bytes(&self) -> u64 {
        (self.offset.len() * OFFSET_ENTRY_BYTES + self.time.len() * TIME_ENTRY_BYTES) as u64
    }
}

/// How the cache has been used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexCacheStats {
    /// Segments whose indexes are cached now.
    pub segments: usize,
    /// Bytes they take.
    pub bytes: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to load.
    pub misses: u64,
    /// Entries dropped to stay within the bound.
    pub evictions: u64,
}

/// A cache key: the partition log (its process-unique id) and the segment's base offset.
type Key = (u64, i64);

/// See the module documentation. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct IndexCache {
    max_bytes: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    bytes: u64,
    clock: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
}

#[derive(Debug)]
struct Entry {
    indexes: SegmentIndexes,
    bytes: u64,
    last_use: u64,
}

impl Default for IndexCache {
    fn default() -> Self {
        Self::new(DEFAULT_INDEX_CACHE_BYTES)
    }
}

impl IndexCache {
    /// A cache holding at most `max_bytes` of index entries (one segment's indexes are kept
    /// even when larger).
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached indexes of segment `base` of log `log_id`, if present.
    pub(crate) fn get(&self, log_id: u64, base: i64) -> Option<SegmentIndexes> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some(entry) = inner.entries.get_mut(&(log_id, base)) {
            entry.last_use = now;
            let found = entry.indexes.clone();
            inner.hits += 1;
            Some(found)
        } else {
            inner.misses += 1;
            None
        }
    }

    /// Caches the indexes of segment `base` of log `log_id`, replacing what was there, and
    /// evicts the least recently used entries beyond the bound.
    pub(crate) fn insert(&self, log_id: u64, base: i64, indexes: SegmentIndexes) {
        let bytes = indexes.bytes();
        let mut inner = self.lock();
        inner.clock += 1;
        let last_use = inner.clock;
        if let Some(old) = inner.entries.insert(
            (log_id, base),
            Entry {
                indexes,
                bytes,
                last_use,
            },
        ) {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
        if inner.bytes > self.max_bytes {
            // Down to seven eighths of the bound, so the sort is paid once per many inserts.
            let target = self.max_bytes - self.max_bytes / 8;
            evict_to(&mut inner, target, (log_id, base));
        }
    }

    /// Forgets segment `base` of log `log_id` (deleted, truncated, or its log closed).
    pub(crate) fn remove(&self, log_id: u64, base: i64) {
        let mut inner = self.lock();
        if let Some(old) = inner.entries.remove(&(log_id, base)) {
            inner.bytes -= old.bytes;
        }
    }

    /// Forgets every segment of log `log_id`.
    pub(crate) fn remove_log(&self, log_id: u64) {
        let mut inner = self.lock();
        let mut freed = 0;
        inner.entries.retain(|(id, _), entry| {
            let keep = *id != log_id;
            if !keep {
                freed += entry.bytes;
            }
            keep
        });
        inner.bytes -= freed;
    }

    /// What the cache holds and how it was used.
    pub fn stats(&self) -> IndexCacheStats {
        let inner = self.lock();
        IndexCacheStats {
            segments: inner.entries.len(),
            bytes: inner.bytes,
            hits: inner.hits,
            misses: inner.misses,
            evictions: inner.evictions,
        }
    }
}

fn evict_to(inner: &mut Inner, target: u64, spare: Key) {
    let mut by_age: Vec<(u64, Key)> = inner
        .entries
        .iter()
        .filter(|(key, _)| **key != spare)
        .map(|(key, e)| (e.last_use, *key))
        .collect();
    by_age.sort_unstable();
    for (_, key) in by_age {
        if inner.bytes <= target {
            break;
        }
        if let Some(old) = inner.entries.remove(&key) {
            inner.bytes -= old.bytes;
            inner.evictions += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes(base: i64, entries: u32) -> SegmentIndexes {
        let mut offset = OffsetIndex::new(base, 1000);
        let mut time = TimeIndex::new(base, 1000);
        for i in 1..=entries {
            offset.append(base + i64::from(i), i * 100);
            time.maybe_append(i64::from(i), base + i64::from(i), false);
        }
        SegmentIndexes {
            offset: Arc::new(offset),
            time: Arc::new(time),
        }
    }

    #[test]
    fn stays_within_its_bound_evicting_the_least_recently_used() {
        let one = indexes(0, 10).bytes();
        let cache = IndexCache::new(one * 4);
        for base in 0..4 {
            cache.insert(1, base, indexes(base, 10));
        }
        assert!(cache.get(1, 0).is_some(), "0 is now the most recently used");
        cache.insert(1, 4, indexes(4, 10));
        let stats = cache.stats();
        assert!(stats.bytes <= one * 4, "{stats:?}");
        assert!(cache.get(1, 0).is_some(), "recently used: kept");
        assert!(cache.get(1, 1).is_none(), "least recently used: evicted");
        assert!(cache.get(1, 4).is_some());
    }

    #[test]
    fn removal_forgets_segments_and_logs() {
        let cache = IndexCache::new(1 << 20);
        cache.insert(1, 0, indexes(0, 3));
        cache.insert(1, 10, indexes(10, 3));
        cache.insert(2, 0, indexes(0, 3));
        cache.remove(1, 0);
        assert!(cache.get(1, 0).is_none());
        cache.remove_log(1);
        assert!(cache.get(1, 10).is_none());
        assert!(cache.get(2, 0).is_some());
        assert_eq!(cache.stats().bytes, indexes(0, 3).bytes());
    }
}
