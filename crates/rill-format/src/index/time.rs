//! The sparse time index: `timestamp: i64 | relative offset: u32`, big-endian. Each entry holds
//! the largest timestamp seen so far in the segment and the last offset of the batch that set it,
//! so timestamps strictly increase and offsets do not decrease.
//!
//! In memory the two columns are kept apart: a lookup binary-searches the dense timestamps
//! alone (8 bytes an entry, half the cache lines of a 16-byte padded entry) and reads one
//! offset at the end.

use super::{IndexError, SegmentBounds};

/// Bytes per time-index entry.
pub const TIME_ENTRY_BYTES: usize = 12;

/// One entry: no batch before offset `base_offset + relative_offset` has a timestamp above
/// `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp so far, in milliseconds.
    pub timestamp: i64,
    /// Offset (relative to the segment base) of the batch that set it.
    pub relative_offset: u32,
}

/// Timestamp → offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    base_offset: i64,
    /// Strictly increasing.
    timestamps: Vec<i64>,
    /// Not decreasing; as long as `timestamps`.
    relative_offsets: Vec<u32>,
    max_entries: usize,
}

impl TimeIndex {
    /// An empty index for the segment starting at `base_offset`.
    pub fn new(base_offset: i64, max_entries: usize) -> Self {
        Self {
            base_offset,
            timestamps: Vec::new(),
            relative_offsets: Vec::new(),
            max_entries,
        }
    }

    /// The entries, in order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = TimeEntry> + DoubleEndedIterator + '_ {
        self.timestamps
            .iter()
            .zip(&self.relative_offsets)
            .map(|(&timestamp, &relative_offset)| TimeEntry {
                timestamp,
                relative_offset,
            })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<TimeEntry> {
        self.entries().next_back()
    }

    /// Whether no more entries fit.
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_entries
    }

    /// The largest timestamp recorded, if any.
    pub fn last_timestamp(&self) -> Option<i64> {
        self.timestamps.last().copied()
    }

    /// Appends `(timestamp, offset)` if `timestamp` exceeds the last entry's and the offset does
    /// not go backwards; returns whether it was appended. `force` ignores the size limit (used
    /// for the final entry written at roll, as Kafka does).
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, force: bool) -> bool {
        let Ok(relative_offset) = u32::try_from(offset - self.base_offset) else {
            return false;
        };
        if self.is_full() && !force {
            return false;
        }
        if let Some(last) = self.last_entry()
            && (timestamp <= last.timestamp || relative_offset < last.relative_offset)
        {
            return false;
        }
        self.timestamps.push(timestamp);
        self.relative_offsets.push(relative_offset);
        true
    }

    /// The offset to start scanning from to find the first batch with a timestamp at or above
    /// `timestamp`: the offset of the greatest entry whose timestamp is below it, else the
    /// segment's base offset.
    pub fn lookup(&self, timestamp: i64) -> i64 {
        let after = self.timestamps.partition_point(|&t| t < timestamp);
        match after
            .checked_sub(1)
            .and_then(|i| self.relative_offsets.get(i))
        {
            Some(&relative) => self.base_offset + i64::from(relative),
            None => self.base_offset,
        }
    }

    /// Drops entries for offsets at or after `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) {
        let relative = offset - self.base_offset;
        let keep = self
            .relative_offsets
            .partition_point(|&r| i64::from(r) < relative);
        self.timestamps.truncate(keep);
        self.relative_offsets.truncate(keep);
    }

    /// The on-disk form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * TIME_ENTRY_BYTES);
        for e in self.entries() {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Parses a time-index file and checks it: whole entries, strictly increasing timestamps,
    /// non-decreasing offsets inside the segment. The size limit is not applied, since the final
    /// entry may exceed it.
    pub fn parse(
        bytes: &[u8],
        bounds: SegmentBounds,
        max_entries: usize,
    ) -> Result<Self, IndexError> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return Err(IndexError::PartialEntry {
                len: bytes.len(),
                entry_bytes: TIME_ENTRY_BYTES,
            });
        }
        let count = bytes.len() / TIME_ENTRY_BYTES;
        if count > max_entries.saturating_add(1) {
            return Err(IndexError::TooManyEntries {
                entries: count,
                max: max_entries,
            });
        }
        let mut index = Self::new(bounds.base_offset, max_entries);
        for (i, chunk) in bytes.chunks_exact(TIME_ENTRY_BYTES).enumerate() {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let timestamp = i64::from_be_bytes(ts);
            let relative_offset = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            let offset = bounds.base_offset + i64::from(relative_offset);
            if offset >= bounds.next_offset {
                return Err(IndexError::OutOfRange { index: i });
            }
            if !index.maybe_append(timestamp, offset, true) {
                return Err(IndexError::NotMonotonic { index: i });
            }
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `lookup` must return, by a linear scan of the entries.
    fn linear_lookup(index: &TimeIndex, base: i64, timestamp: i64) -> i64 {
        index
            .entries()
            .take_while(|e| e.timestamp < timestamp)
            .last()
            .map_or(base, |e| base + i64::from(e.relative_offset))
    }

    proptest! {
        #[test]
        fn lookup_agrees_with_a_linear_scan(
            base in 0i64..1_000_000,
            steps in prop::collection::vec((1i64..1000, 0u32..50), 0..300),
            probes in prop::collection::vec(-100i64..400_000, 1..50),
        ) {
            let mut index = TimeIndex::new(base, steps.len());
            let (mut timestamp, mut offset) = (0i64, base);
            for (dt, doff) in &steps {
                timestamp += dt;
                offset += i64::from(*doff);
                prop_assert!(index.maybe_append(timestamp, offset, false));
            }
            prop_assert_eq!(index.len(), steps.len());
            let stamps: Vec<i64> = index.entries().map(|e| e.timestamp).collect();
            for probe in probes.iter().copied().chain(stamps.iter().flat_map(|t| [t - 1, *t, t + 1])) {
                prop_assert_eq!(index.lookup(probe), linear_lookup(&index, base, probe));
            }
            let bounds = SegmentBounds { base_offset: base, next_offset: offset + 1, size_bytes: 1 };
            prop_assert_eq!(TimeIndex::parse(&index.encode(), bounds, steps.len()), Ok(index));
        }
    }

    #[test]
    fn lookup_finds_a_safe_start() {
        let mut index = TimeIndex::new(0, 10);
        assert!(index.maybe_append(1000, 9, false));
        assert!(
            !index.maybe_append(1000, 19, false),
            "timestamps must increase"
        );
        assert!(index.maybe_append(2000, 29, false));
        assert_eq!(index.lookup(500), 0);
        assert_eq!(index.lookup(1000), 0);
        assert_eq!(index.lookup(1001), 9);
        assert_eq!(index.lookup(5000), 29);
        assert_eq!(index.last_timestamp(), Some(2000));
    }

    #[test]
    fn zero_padding_is_rejected() {
        let mut index = TimeIndex::new(0, 10);
        index.maybe_append(1000, 9, false);
        let mut bytes = index.encode();
        bytes.extend_from_slice(&[0; 24]);
        let bounds = SegmentBounds {
            base_offset: 0,
            next_offset: 100,
            size_bytes: 1 << 20,
        };
        assert_eq!(
            TimeIndex::parse(&bytes, bounds, 10),
            Err(IndexError::NotMonotonic { index: 1 })
        );
        assert_eq!(TimeIndex::parse(&bytes[..12], bounds, 10).unwrap(), index);
    }
}
