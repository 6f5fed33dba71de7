//! A partition's idempotent-producer state as stored in `<offset:020>.snapshot` (docs/FORMAT.md
//! §8): for each producer its epoch, when it last appended, and its last few batches' sequence
//! and offset ranges, as of a log offset. I/O-free; `rill-segment`'s `producers` module keeps
//! the state and writes and reads the files.
//!
//! ```text
//! 0   8  magic "RILLPSNP"
//! 8   2  version (1)
//! 10  8  offset: the state covers every batch below it
//! 18  4  producer count n
//! 22  n  producers, ascending by id, each:
//!        producer id i64, epoch i16, last append (ms) i64, batch count b u8 (1..=5),
//!        b batches, oldest first: first sequence i32, last sequence i32,
//!        base offset i64, last offset i64, max timestamp i64
//! end 4  CRC-32C of everything before it
//! ```

/// Suffix of a snapshot file (`<offset:020>.snapshot`).
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Batches remembered per producer (Kafka's window of in-flight requests).
pub const BATCHES_PER_PRODUCER: usize = 5;
/// Most producers a snapshot may hold: above any configured bound, so a larger count is damage.
pub const MAX_SNAPSHOT_PRODUCERS: usize = 1 << 20;
const MAGIC: &[u8; 8] = b"RILLPSNP";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 22;
const PRODUCER_BYTES: usize = 19;
const BATCH_BYTES: usize = 32;

/// One batch of a producer: its sequences and where it is in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencedBatch {
    /// The batch's `baseSequence`.
    pub first_sequence: i32,
    /// Its last record's sequence (`baseSequence + lastOffsetDelta`, wrapping past `i32::MAX`
    /// to 0, as Kafka's).
    pub last_sequence: i32,
    /// The offset of its first record.
    pub base_offset: i64,
    /// The offset of its last record.
    pub last_offset: i64,
    /// Its `maxTimestamp`.
    pub max_timestamp: i64,
}

/// One producer's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// When it last appended (wall-clock ms; for expiry).
    pub last_append_ms: i64,
    /// Its last batches, oldest first (1 to [`BATCHES_PER_PRODUCER`]).
    pub batches: Vec<SequencedBatch>,
}

/// A whole snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerSnapshot {
    /// The state covers every batch below this offset.
    pub offset: i64,
    /// The producers, ascending by id.
    pub producers: Vec<ProducerRecord>,
}

/// Why snapshot bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Too short, or not as long as its contents say.
    #[error("producer snapshot has the wrong length")]
    WrongLength,
    /// Does not start with the magic.
    #[error("bad producer snapshot magic")]
    BadMagic,
    /// A version this code does not know.
    #[error("unsupported producer snapshot version {0}")]
    UnsupportedVersion(u16),
    /// The CRC does not match.
    #[error("producer snapshot CRC mismatch")]
    CrcMismatch,
    /// A field out of range: a negative offset or id, producers not ascending, a batch count
    /// outside 1..=5, or batch offsets not increasing.
    #[error("producer snapshot field out of range: {0}")]
    OutOfRange(&'static str),
}

impl ProducerSnapshot {
    /// The on-disk form.
    pub fn encode(&self) -> Vec<u8> {
        let batches: usize = self.producers.iter().map(|p| p.batches.len()).sum();
        let mut out = Vec::with_capacity(
            HEADER_BYTES + self.producers.len() * PRODUCER_BYTES + batches * BATCH_BYTES + 4,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for p in &self.producers {
            out.extend_from_slice(&p.producer_id.to_be_bytes());
            out.extend_from_slice(&p.epoch.to_be_bytes());
            out.extend_from_slice(&p.last_append_ms.to_be_bytes());
            out.push(p.batches.len() as u8);
            for b in &p.batches {
                out.extend_from_slice(&b.first_sequence.to_be_bytes());
                out.extend_from_slice(&b.last_sequence.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a whole file.
    pub fn parse(buf: &[u8]) -> Result<Self, SnapshotError> {
        let body_len = buf
            .len()
            .checked_sub(4)
            .filter(|len| *len >= HEADER_BYTES)
            .ok_or(SnapshotError::WrongLength)?;
        let (body, crc) = buf.split_at(body_len);
        if &body[..8] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(SnapshotError::CrcMismatch);
        }
        let mut r = Reader { buf: body, at: 8 };
        let version = u16::from_be_bytes(r.take::<2>()?);
        if version != VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let offset = i64::from_be_bytes(r.take::<8>()?);
        let count = u32::from_be_bytes(r.take::<4>()?) as usize;
        if offset < 0 {
            return Err(SnapshotError::OutOfRange("negative offset"));
        }
        if count > MAX_SNAPSHOT_PRODUCERS || count * PRODUCER_BYTES > body.len() {
            return Err(SnapshotError::OutOfRange("producer count"));
        }
        let mut producers = Vec::with_capacity(count);
        for _ in 0..count {
            let producer = r.producer()?;
            if producers
                .last()
                .is_some_and(|p: &ProducerRecord| p.producer_id >= producer.producer_id)
            {
                return Err(SnapshotError::OutOfRange("producers not ascending"));
            }
            producers.push(producer);
        }
        if r.at != body.len() {
            return Err(SnapshotError::WrongLength);
        }
        Ok(Self { offset, producers })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let bytes = self
            .buf
            .get(self.at..self.at + N)
            .ok_or(SnapshotError::WrongLength)?;
        self.at += N;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take::<8>()?))
    }

    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take::<4>()?))
    }

    fn producer(&mut self) -> Result<ProducerRecord, SnapshotError> {
        let producer_id = self.i64()?;
        let epoch = i16::from_be_bytes(self.take::<2>()?);
        let last_append_ms = self.i64()?;
        let [count] = self.take::<1>()?;
        if producer_id < 0 || epoch < 0 {
            return Err(SnapshotError::OutOfRange("negative producer id or epoch"));
        }
        if count == 0 || usize::from(count) > BATCHES_PER_PRODUCER {
            return Err(SnapshotError::OutOfRange("batch count"));
        }
        let mut batches: Vec<SequencedBatch> = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let batch = SequencedBatch {
                first_sequence: self.i32()?,
                last_sequence: self.i32()?,
                base_offset: self.i64()?,
                last_offset: self.i64()?,
                max_timestamp: self.i64()?,
            };
            let ordered = batch.base_offset >= 0
                && batch.last_offset >= batch.base_offset
                && batch.first_sequence >= 0
                && batch.last_sequence >= 0
                && batches
                    .last()
                    .is_none_or(|before| before.last_offset < batch.base_offset);
            if !ordered {
                return Err(SnapshotError::OutOfRange("batch offsets"));
            }
            batches.push(batch);
        }
        Ok(ProducerRecord {
            producer_id,
            epoch,
            last_append_ms,
            batches,
        })
    }
}

/// The file name of a snapshot at `offset`.
pub fn file_name(offset: i64) -> String {
    format!("{offset:020}{SNAPSHOT_SUFFIX}")
}

/// The offset of a snapshot file name (`None` for anything else).
pub fn parse_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn sample() -> ProducerSnapshot {
        let batch = |seq: i32, offset: i64| SequencedBatch {
            first_sequence: seq,
            last_sequence: seq + 2,
            base_offset: offset,
            last_offset: offset + 2,
            max_timestamp: 1_700_000_000_000 + offset,
        };
        ProducerSnapshot {
            offset: 100,
            producers: vec![
                ProducerRecord {
                    producer_id: 7,
                    epoch: 0,
                    last_append_ms: 5,
                    batches: vec![batch(0, 0), batch(3, 10)],
                },
                ProducerRecord {
                    producer_id: 9,
                    epoch: 3,
                    last_append_ms: 6,
                    batches: vec![batch(6, 20)],
                },
            ],
        }
    }

    #[test]
    fn round_trips_byte_exact() {
        let bytes = sample().encode();
        assert_eq!(bytes.len(), 22 + 2 * 19 + 3 * 32 + 4);
        assert_eq!(&bytes[..8], b"RILLPSNP");
        assert_eq!(&bytes[10..18], &100i64.to_be_bytes());
        assert_eq!(&bytes[18..22], &2u32.to_be_bytes());
        assert_eq!(&bytes[22..30], &7i64.to_be_bytes());
        assert_eq!(bytes[40], 2, "batch count after id, epoch and last append");
        assert_eq!(ProducerSnapshot::parse(&bytes).unwrap(), sample());
        let empty = ProducerSnapshot::default();
        assert_eq!(ProducerSnapshot::parse(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn damage_is_refused() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(ProducerSnapshot::parse(&bytes[..len]).is_err(), "{len}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(ProducerSnapshot::parse(&bad).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn out_of_order_fields_are_refused_even_with_a_good_crc() {
        let mut snapshot = sample();
        snapshot.producers.swap(0, 1);
        assert!(matches!(
            ProducerSnapshot::parse(&snapshot.encode()),
            Err(SnapshotError::OutOfRange(_))
        ));
        let mut snapshot = sample();
        snapshot.producers[0].batches.swap(0, 1);
        assert!(ProducerSnapshot::parse(&snapshot.encode()).is_err());
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name(368_769), "00000000000000368769.snapshot");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("42.snapshot"), None);
        assert_eq!(parse_file_name("00000000000000368769.log"), None);
    }
}
