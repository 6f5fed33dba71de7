//! Which Raft indexes the log holds, and where the recent ones start in the partition.
//! I/O-free: the log store keeps it current, its readers consult it.
//!
//! An entry's index and its batch's offset differ by the records of the entries before it
//! (module `codec`), so finding entry *i* takes a lookup. The offsets of the last
//! [`MAX_RECENT_ENTRIES`] entries appended are kept here, which covers what replication and
//! commit ask for; an older entry is found by a binary search of the partition (module
//! `reading`), the batches carrying their indexes. Memory stays bounded however long the log.

use std::collections::VecDeque;

/// How many entries' offsets are remembered (8 bytes each).
pub const MAX_RECENT_ENTRIES: usize = 1 << 16;

/// The live entries' indexes and the recent entries' offsets.
#[derive(Debug, Default)]
pub(crate) struct LogIndex {
    /// The first live index (every entry before it is purged).
    first: u64,
    /// The index after the last entry.
    end: u64,
    /// The index whose offset `offsets[0]` is.
    recent_first: u64,
    /// The base offsets of entries `recent_first..recent_first + offsets.len()`.
    offsets: VecDeque<i64>,
    /// Truncations and purges so far: a reader that finds an entry gone knows whether the
    /// log changed under it (a short read) or is missing an entry it should hold (an error).
    removals: u64,
    /// Truncations so far: a leader never truncates its own log, so a replication reader
    /// that sees one belongs to a leadership that has ended.
    truncations: u64,
}

impl LogIndex {
    /// A log whose live entries are `first..end`, with no offsets remembered.
    pub fn new(first: u64, end: u64) -> Self {
        Self {
            first,
            end: end.max(first),
            recent_first: 0,
            offsets: VecDeque::new(),
            removals: 0,
            truncations: 0,
        }
    }

    /// How many truncations and purges the log has had.
    pub fn removals(&self) -> u64 {
        self.removals
    }

    /// How many truncations the log has had.
    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    /// The live indexes: `first..end`.
    pub fn live(&self) -> (u64, u64) {
        (self.first, self.end)
    }

    /// The base offset of entry `index`, if remembered and live.
    pub fn offset_of(&self, index: u64) -> Option<i64> {
        if index < self.first || index >= self.end {
            return None;
        }
        let at = usize::try_from(index.checked_sub(self.recent_first)?).ok()?;
        self.offsets.get(at).copied()
    }

    /// Entry `index` was appended at `base_offset` (the next index of the log).
    pub fn appended(&mut self, index: u64, base_offset: i64) {
        debug_assert!(
            self.first == self.end || index == self.end,
            "a hole at {index}"
        );
        if self.first == self.end {
            self.first = index;
        }
        self.end = index + 1;
        let contiguous = !self.offsets.is_empty()
            && self.recent_first + self.offsets.len() as u64 == index
            && self.offsets.back().is_some_and(|&last| last < base_offset);
        if !contiguous {
            self.offsets.clear();
            self.recent_first = index;
        }
        self.offsets.push_back(base_offset);
        if self.offsets.len() > MAX_RECENT_ENTRIES {
            self.offsets.pop_front();
            self.recent_first += 1;
        }
    }

    /// Entries from `index` on are being truncated (called before the partition is cut).
    pub fn truncated(&mut self, index: u64) {
        self.removals += 1;
        self.truncations += 1;
        self.end = self.end.min(index).max(self.first);
        let keep = index.saturating_sub(self.recent_first);
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        self.offsets.truncate(keep);
    }

    /// Entries up to `index` are being purged (called before the partition drops them); the
    /// log may now be empty, and go on after it.
    pub fn purged(&mut self, index: u64) {
        self.removals += 1;
        let first = index.saturating_add(1);
        self.first = self.first.max(first);
        self.end = self.end.max(self.first);
        while self.recent_first < self.first && self.offsets.pop_front().is_some() {
            self.recent_first += 1;
        }
        if self.offsets.is_empty() {
            self.recent_first = self.first;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_offsets_follow_appends_truncations_and_purges() {
        let mut index = LogIndex::new(0, 0);
        for i in 0..10 {
            index.appended(i, (i * 3) as i64);
        }
        assert_eq!(index.live(), (0, 10));
        assert_eq!(index.offset_of(4), Some(12));
        assert_eq!(index.offset_of(10), None);
        assert_eq!(index.removals(), 0);
        index.truncated(6);
        assert_eq!(index.removals(), 1);
        assert_eq!(index.live(), (0, 6));
        assert_eq!(index.offset_of(6), None);
        assert_eq!(index.offset_of(5), Some(15));
        index.appended(6, 100);
        assert_eq!(index.offset_of(6), Some(100));
        index.purged(3);
        assert_eq!((index.removals(), index.truncations()), (2, 1));
        assert_eq!(index.live(), (4, 7));
        assert_eq!(index.offset_of(3), None);
        assert_eq!(index.offset_of(4), Some(12));
        // A purge beyond the end empties the log; it goes on after the purged index.
        index.purged(20);
        assert_eq!(index.live(), (21, 21));
        assert_eq!(index.offset_of(6), None);
        index.appended(21, 500);
        assert_eq!(index.live(), (21, 22));
        assert_eq!(index.offset_of(21), Some(500));
    }

    #[test]
    fn an_opened_log_finds_old_entries_elsewhere_and_memory_is_bounded() {
        let mut index = LogIndex::new(5, 50);
        assert_eq!(index.offset_of(10), None);
        index.appended(50, 1000);
        assert_eq!(index.offset_of(49), None);
        assert_eq!(index.offset_of(50), Some(1000));
        for i in 51..(51 + MAX_RECENT_ENTRIES as u64 + 10) {
            index.appended(i, 1000 + i as i64);
        }
        assert_eq!(index.offsets.len(), MAX_RECENT_ENTRIES);
        assert_eq!(index.offset_of(50), None);
        assert_eq!(index.live().0, 5);
    }
}
