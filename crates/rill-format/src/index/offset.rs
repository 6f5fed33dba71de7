//! The sparse offset index: `relative offset: u32 | file position: u32`, big-endian.
//!
//! In memory the two columns are kept apart: a lookup binary-searches the dense relative
//! offsets alone (4 bytes an entry) and reads one position at the end.

use super::{IndexError, SegmentBounds};

/// Bytes per offset-index entry.
pub const OFFSET_ENTRY_BYTES: usize = 8;

/// One entry: the batch with base offset `base_offset + relative_offset` starts at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Offset relative to the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
}

/// Offset → file position, one entry per `index_interval_bytes` of log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    base_offset: i64,
    /// Strictly increasing.
    relative_offsets: Vec<u32>,
    /// Strictly increasing, never 0; as long as `relative_offsets`.
    positions: Vec<u32>,
    max_entries: usize,
}

impl OffsetIndex {
    /// An empty index for the segment starting at `base_offset`.
    pub fn new(base_offset: i64, max_entries: usize) -> Self {
        Self {
            base_offset,
            relative_offsets: Vec::new(),
            positions: Vec::new(),
            max_entries,
        }
    }

    /// The entries, in order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = OffsetEntry> + DoubleEndedIterator + '_ {
        self.relative_offsets
            .iter()
            .zip(&self.positions)
            .map(|(&relative_offset, &position)| OffsetEntry {
                relative_offset,
                position,
            })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.relative_offsets.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.relative_offsets.is_empty()
    }

    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<OffsetEntry> {
        self.entries().next_back()
    }

    /// Whether no more entries fit (the segment must roll).
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_entries
    }

    /// Records that the batch at `offset` starts at `position`. Entries must increase in both;
    /// an entry that would not (or a full index) is refused and `false` returned.
    pub fn append(&mut self, offset: i64, position: u32) -> bool {
        let Ok(relative_offset) = u32::try_from(offset - self.base_offset) else {
            return false;
        };
        if self.is_full() || position == 0 {
            return false;
        }
        if let Some(last) = self.last_entry()
            && (relative_offset <= last.relative_offset || position <= last.position)
        {
            return false;
        }
        self.relative_offsets.push(relative_offset);
        self.positions.push(position);
        true
    }

    /// The greatest entry at or below `offset`, as (absolute offset, position); the segment
    /// start when there is none.
    pub fn lookup(&self, offset: i64) -> (i64, u32) {
        let relative = offset - self.base_offset;
        let after = self
            .relative_offsets
            .partition_point(|&r| i64::from(r) <= relative);
        let Some(floor) = after.checked_sub(1) else {
            return (self.base_offset, 0);
        };
        // Both columns have the same length, so `floor` is inside each.
        let relative = self.relative_offsets.get(floor).copied().unwrap_or(0);
        let position = self.positions.get(floor).copied().unwrap_or(0);
        (self.base_offset + i64::from(relative), position)
    }

    /// The greatest entry with an offset at or below `offset` and a position at or below
    /// `position`, as (absolute offset, position): the last batch boundary the index knows
    /// within both limits. `None` when no entry is.
    pub fn floor_within(&self, offset: i64, position: u64) -> Option<(i64, u64)> {
        let relative = offset - self.base_offset;
        let by_offset = self
            .relative_offsets
            .partition_point(|&r| i64::from(r) <= relative);
        let by_position = self
            .positions
            .partition_point(|&p| u64::from(p) <= position);
        let floor = by_offset.min(by_position).checked_sub(1)?;
        let relative = *self.relative_offsets.get(floor)?;
        let found = *self.positions.get(floor)?;
        Some((self.base_offset + i64::from(relative), u64::from(found)))
    }

    /// Drops entries for offsets at or after `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) {
        let relative = offset - self.base_offset;
        let keep = self
            .relative_offsets
            .partition_point(|&r| i64::from(r) < relative);
        self.relative_offsets.truncate(keep);
        self.positions.truncate(keep);
    }

    /// The on-disk form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * OFFSET_ENTRY_BYTES);
        for e in self.entries() {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Parses an index file and checks it against its segment: whole entries, strictly
    /// increasing offsets and positions, no position 0 (so zero padding is caught), every entry
    /// inside the segment.
    pub fn parse(
        bytes: &[u8],
        bounds: SegmentBounds,
        max_entries: usize,
    ) -> Result<Self, IndexError> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return Err(IndexError::PartialEntry {
                len: bytes.len(),
                entry_bytes: OFFSET_ENTRY_BYTES,
            });
        }
        let count = bytes.len() / OFFSET_ENTRY_BYTES;
        if count > max_entries {
            return Err(IndexError::TooManyEntries {
                entries: count,
                max: max_entries,
            });
        }
        let mut index = Self::new(bounds.base_offset, max_entries);
        for (i, chunk) in bytes.chunks_exact(OFFSET_ENTRY_BYTES).enumerate() {
            let relative_offset = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let position = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let offset = bounds.base_offset + i64::from(relative_offset);
            if offset >= bounds.next_offset || u64::from(position) >= bounds.size_bytes {
                return Err(IndexError::OutOfRange { index: i });
            }
            if !index.append(offset, position) {
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

    /// An index whose entries advance by `steps` (offset, position) from `base`.
    fn index_of_steps(base: i64, steps: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::new(base, steps.len());
        let (mut offset, mut position) = (base, 0u32);
        for (doff, dpos) in steps {
            offset += i64::from(*doff);
            position += dpos;
            assert!(index.append(offset, position));
        }
        index
    }

    proptest! {
        #[test]
        fn lookup_agrees_with_a_linear_scan(
            base in 0i64..1_000_000,
            steps in prop::collection::vec((1u32..50, 1u32..5000), 0..300),
            probes in prop::collection::vec(-10i64..20_000, 1..50),
        ) {
            let index = index_of_steps(base, &steps);
            let offsets: Vec<i64> =
                index.entries().map(|e| base + i64::from(e.relative_offset)).collect();
            let all = probes.iter().map(|p| base + p).chain(offsets.iter().flat_map(|o| [o - 1, *o, o + 1]));
            for probe in all {
                let linear = index
                    .entries()
                    .take_while(|e| base + i64::from(e.relative_offset) <= probe)
                    .last()
                    .map_or((base, 0), |e| (base + i64::from(e.relative_offset), e.position));
                prop_assert_eq!(index.lookup(probe), linear);
            }
        }

        #[test]
        fn floor_within_agrees_with_a_linear_scan(
            steps in prop::collection::vec((1u32..50, 1u32..5000), 0..300),
            probes in prop::collection::vec((-10i64..20_000, 0u64..1_600_000), 1..80),
        ) {
            let base = 1000;
            let index = index_of_steps(base, &steps);
            for (offset, position) in probes {
                let offset = base + offset;
                let linear = index
                    .entries()
                    .map(|e| (base + i64::from(e.relative_offset), u64::from(e.position)))
                    .take_while(|&(o, p)| o <= offset && p <= position)
                    .last();
                prop_assert_eq!(index.floor_within(offset, position), linear);
            }
        }
    }

    const BOUNDS: SegmentBounds = SegmentBounds {
        base_offset: 100,
        next_offset: 200,
        size_bytes: 10_000,
    };

    #[test]
    fn lookup_is_a_floor() {
        let mut index = OffsetIndex::new(100, 10);
        assert!(index.append(110, 500));
        assert!(index.append(150, 4000));
        assert_eq!(index.lookup(100), (100, 0));
        assert_eq!(index.lookup(109), (100, 0));
        assert_eq!(index.lookup(110), (110, 500));
        assert_eq!(index.lookup(149), (110, 500));
        assert_eq!(index.lookup(1000), (150, 4000));
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut index = OffsetIndex::new(100, 10);
        index.append(110, 500);
        index.append(150, 4000);
        let bytes = index.encode();
        assert_eq!(OffsetIndex::parse(&bytes, BOUNDS, 10).unwrap(), index);

        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 16]);
        assert_eq!(
            OffsetIndex::parse(&padded, BOUNDS, 10),
            Err(IndexError::NotMonotonic { index: 2 })
        );
        assert!(matches!(
            OffsetIndex::parse(&bytes[..11], BOUNDS, 10),
            Err(IndexError::PartialEntry { .. })
        ));
        let short = SegmentBounds {
            size_bytes: 4000,
            ..BOUNDS
        };
        assert_eq!(
            OffsetIndex::parse(&bytes, short, 10),
            Err(IndexError::OutOfRange { index: 1 })
        );
        assert!(matches!(
            OffsetIndex::parse(&bytes, BOUNDS, 1),
            Err(IndexError::TooManyEntries { .. })
        ));
    }

    #[test]
    fn refuses_non_increasing_and_full() {
        let mut index = OffsetIndex::new(0, 2);
        assert!(!index.append(5, 0), "position 0 is never indexed");
        assert!(index.append(5, 100));
        assert!(!index.append(5, 200));
        assert!(!index.append(6, 100));
        assert!(index.append(6, 200));
        assert!(index.is_full());
        assert!(!index.append(7, 300));
        index.truncate_to_offset(6);
        assert_eq!(index.entries().len(), 1);
    }
}
