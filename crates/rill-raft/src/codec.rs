//! How Raft entries become v2 batches, and back. I/O-free.
//!
//! One entry is one batch, with the entry's term as the batch's `partitionLeaderEpoch` and its
//! Raft index in a header of the batch's first record ([`INDEX_HEADER_KEY`], 8 bytes,
//! big-endian). The batch's offsets are the partition's: entry *i* + 1 starts where entry *i*
//! ends, so an index and an offset differ by the records of the entries before it, and every
//! replica, holding the same entries, puts them at the same offsets. One batch per entry: the
//! batch is the unit a Raft append, a conflict truncation (rill truncates whole batches) and a
//! purge act on, and a client's append, one entry, goes in or not as a whole.
//!
//! * a `Normal` entry is the client's records, in order: their timestamps, keys, values and
//!   headers, the index header first among the first record's headers;
//! * a `Blank` or `Membership` entry is one control record (the batch's control bit is set, so
//!   Kafka consumers skip it): key = version `0` (i16) and type (i16, [`BLANK_CONTROL_TYPE`]
//!   or [`MEMBERSHIP_CONTROL_TYPE`]), value = nothing, or the membership as JSON. Its
//!   timestamp is -1 (Kafka's "no timestamp"): no replica's clock goes into the log.

use crate::error::Error;
use crate::types::{Entry, LogId, Membership, Record, RecordHeader, Records};
use openraft::{CommittedLeaderId, EntryPayload};
use rill::batch::{self, BatchBuilder, BatchHeader, Header};

/// The control-record type of a blank entry (a new leader's first entry). Outside Kafka's
/// range of types (0–6), so Kafka's readers see an unknown control record and skip it.
pub const BLANK_CONTROL_TYPE: i16 = 100;
/// The control-record type of a membership entry.
pub const MEMBERSHIP_CONTROL_TYPE: i16 = 101;
/// The key of the header, first on a batch's first record, that holds the entry's Raft index.
pub const INDEX_HEADER_KEY: &[u8] = b"rill.raft.index";
/// The control-record key's version.
const CONTROL_KEY_VERSION: i16 = 0;
/// Bytes a record adds to a batch beyond its key, value and header bytes, at most (the
/// varints of its length, timestamp and offset deltas, lengths and counts).
const RECORD_OVERHEAD_BYTES: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// Bytes a header adds beyond its key and value, at most (two varint lengths).
const HEADER_OVERHEAD_BYTES: usize = 10;
/// Bytes the index header adds to a batch, at most.
const INDEX_HEADER_BYTES: usize = INDEX_HEADER_KEY.len() + 8 + HEADER_OVERHEAD_BYTES;

/// The largest term a log holds (a batch's `partitionLeaderEpoch` is an `i32`). A node must
/// refuse Raft messages of a larger term before openraft stores it as its vote.
pub const MAX_TERM: u64 = i32::MAX as u64;

/// The `partitionLeaderEpoch` a term is stored as.
pub(crate) fn epoch_of(term: u64) -> Result<i32, Error> {
    i32::try_from(term).map_err(|_| Error::TermTooLarge(term))
}

/// A log id of this crate's types.
pub(crate) fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

/// Whether an entry is stored as a control record.
fn is_control(entry: &Entry) -> bool {
    !matches!(entry.payload, EntryPayload::Normal(_))
}

/// The largest number of bytes a data record adds to a batch.
fn record_bound(r: &Record) -> usize {
    r.key.as_ref().map_or(0, Vec::len)
        + r.value.as_ref().map_or(0, Vec::len)
        + r.headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len))
            .sum::<usize>()
        + r.headers.len() * HEADER_OVERHEAD_BYTES
        + RECORD_OVERHEAD_BYTES
}

/// The largest number of bytes `records` add to a batch (beyond its header and the index).
pub fn records_bound(records: &[Record]) -> usize {
    records.iter().map(record_bound).sum()
}

/// The largest number of bytes the batch of `entry` takes.
fn encoded_bound(entry: &Entry, membership_json: Option<&[u8]>) -> usize {
    let records = match &entry.payload {
        EntryPayload::Normal(r) => records_bound(&r.0),
        EntryPayload::Blank | EntryPayload::Membership(_) => {
            4 + membership_json.map_or(0, <[u8]>::len) + RECORD_OVERHEAD_BYTES
        }
    };
    batch_bound(records)
}

/// The largest batch a normal entry of records taking `records_bytes` (their
/// [`records_bound`]) makes.
pub fn batch_bound(records_bytes: usize) -> usize {
    batch::HEADER_BYTES + INDEX_HEADER_BYTES + records_bytes
}

/// Whether `records`, as one normal entry, fit a batch of at most `max_batch_bytes`: check
/// them before proposing them, since a store that cannot write an entry stops Raft on that
/// node.
pub fn check_records(records: &[Record], max_batch_bytes: usize) -> Result<(), Error> {
    if records.is_empty() {
        return Err(Error::EmptyEntry { index: 0 });
    }
    let bytes = batch_bound(records_bound(records));
    if bytes > max_batch_bytes {
        return Err(Error::EntryTooLarge {
            index: 0,
            bytes,
            max: max_batch_bytes,
        });
    }
    Ok(())
}

/// Encodes `entry` as its batch, with `builder`'s buffer (cleared first), at base offset 0:
/// the partition gives the batch its offsets. An entry without records, or that would make a
/// batch larger than `max_batch_bytes`, is refused.
pub(crate) fn encode<'b>(
    entry: &Entry,
    builder: &'b mut BatchBuilder,
    max_batch_bytes: usize,
) -> Result<&'b [u8], Error> {
    let index = entry.log_id.index;
    let membership_json = match &entry.payload {
        EntryPayload::Membership(m) => Some(serde_json::to_vec(m)?),
        EntryPayload::Normal(r) if r.0.is_empty() => return Err(Error::EmptyEntry { index }),
        _ => None,
    };
    let bound = encoded_bound(entry, membership_json.as_deref());
    if bound > max_batch_bytes {
        return Err(Error::EntryTooLarge {
            index,
            bytes: bound,
            max: max_batch_bytes,
        });
    }
    builder.clear();
    builder
        .partition_leader_epoch(epoch_of(entry.log_id.leader_id.term)?)
        .control(is_control(entry))
        .base_offset(0);
    let index_bytes = index.to_be_bytes();
    let index_header = Header {
        key: INDEX_HEADER_KEY,
        value: Some(&index_bytes),
    };
    match &entry.payload {
        EntryPayload::Normal(records) => {
            let mut headers: Vec<Header<'_>> = Vec::new();
            for (i, record) in records.0.iter().enumerate() {
                headers.clear();
                if i == 0 {
                    headers.push(index_header);
                }
                headers.extend(record.headers.iter().map(|h| Header {
                    key: &h.key,
                    value: h.value.as_deref(),
                }));
                builder.append(
                    record.timestamp_ms,
                    record.key.as_deref(),
                    record.value.as_deref(),
                    &headers,
                )?;
            }
        }
        EntryPayload::Blank => {
            builder.append(
                -1,
                Some(&control_key(BLANK_CONTROL_TYPE)),
                None,
                &[index_header],
            )?;
        }
        EntryPayload::Membership(_) => {
            builder.append(
                -1,
                Some(&control_key(MEMBERSHIP_CONTROL_TYPE)),
                membership_json.as_deref(),
                &[index_header],
            )?;
        }
    }
    Ok(builder.finish()?)
}

fn control_key(kind: i16) -> [u8; 4] {
    let [v0, v1] = CONTROL_KEY_VERSION.to_be_bytes();
    let [t0, t1] = kind.to_be_bytes();
    [v0, v1, t0, t1]
}

/// The term a stored batch carries (its `partitionLeaderEpoch`).
fn term_of(header: &BatchHeader) -> Result<u64, Error> {
    u64::try_from(header.partition_leader_epoch).map_err(|_| {
        Error::corrupt_entry(
            header.base_offset,
            format!("partitionLeaderEpoch {}", header.partition_leader_epoch),
        )
    })
}

/// Where a stored entry lies: its log id and its batch's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    pub log_id: LogId,
    /// The batch's first offset.
    pub base_offset: i64,
    /// The offset after the batch.
    pub next_offset: i64,
}

/// The log id and offsets of a stored batch, from its header and its first record's first
/// header. The batch's CRC was checked by the read.
pub(crate) fn place(batch: &[u8]) -> Result<Placed, Error> {
    let header = BatchHeader::parse(batch).map_err(|e| Error::corrupt_entry(-1, e.to_string()))?;
    place_parsed(batch, &header)
}

/// [`place`] of a batch whose header is parsed already.
fn place_parsed(batch: &[u8], header: &BatchHeader) -> Result<Placed, Error> {
    let term = term_of(header)?;
    let at = header.base_offset;
    let first = batch::records(batch)
        .map_err(|e| Error::corrupt_entry(at, e.to_string()))?
        .next()
        .ok_or_else(|| Error::corrupt_entry(at, "no records"))?
        .map_err(|e| Error::corrupt_entry(at, e.to_string()))?;
    let index = index_of(&first)?;
    Ok(Placed {
        log_id: log_id(term, index),
        base_offset: at,
        next_offset: header.next_offset(),
    })
}

/// The Raft index a batch's first record carries.
fn index_of(first: &batch::Record<'_>) -> Result<u64, Error> {
    let missing = || Error::corrupt_entry(first.offset, "no Raft index header");
    let header = first
        .headers()
        .next()
        .ok_or_else(missing)?
        .map_err(|e| Error::corrupt_entry(first.offset, e.to_string()))?;
    match (header.key, header.value) {
        (INDEX_HEADER_KEY, Some(value)) => value
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| Error::corrupt_entry(first.offset, "Raft index header of bad length")),
        _ => Err(missing()),
    }
}

/// Decodes a stored batch into its entry, and where it lies.
pub(crate) fn decode(batch: &[u8]) -> Result<(Entry, Placed), Error> {
    let header = BatchHeader::parse(batch).map_err(|e| Error::corrupt_entry(-1, e.to_string()))?;
    let placed = place_parsed(batch, &header)?;
    let at = placed.base_offset;
    let records = batch::records(batch).map_err(|e| Error::corrupt_entry(at, e.to_string()))?;
    let payload = if header.attributes.is_control() {
        if header.records_count != 1 {
            return Err(Error::corrupt_entry(at, "a control entry of many records"));
        }
        let mut records = records;
        let record = records
            .next()
            .ok_or_else(|| Error::corrupt_entry(at, "no records"))?
            .map_err(|e| Error::corrupt_entry(at, e.to_string()))?;
        control_payload(&record)?
    } else {
        let mut out = Vec::with_capacity(usize::try_from(header.records_count).unwrap_or(0));
        for (i, record) in records.enumerate() {
            let record = record.map_err(|e| Error::corrupt_entry(at, e.to_string()))?;
            out.push(data_record(&record, usize::from(i == 0))?);
        }
        EntryPayload::Normal(Records(out))
    };
    Ok((
        Entry {
            log_id: placed.log_id,
            payload,
        },
        placed,
    ))
}

/// A client's record, without the first `skip` headers (the index header).
fn data_record(record: &batch::Record<'_>, skip: usize) -> Result<Record, Error> {
    let headers = record
        .headers()
        .skip(skip)
        .map(|h| {
            h.map(|h| RecordHeader {
                key: h.key.to_vec(),
                value: h.value.map(<[u8]>::to_vec),
            })
            .map_err(|e| Error::corrupt_entry(record.offset, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Record {
        timestamp_ms: record.timestamp,
        key: record.key.map(<[u8]>::to_vec),
        value: record.value.map(<[u8]>::to_vec),
        headers,
    })
}

fn control_payload(record: &batch::Record<'_>) -> Result<EntryPayload<crate::TypeConfig>, Error> {
    let key = record.key.unwrap_or_default();
    let kind = match key {
        [v0, v1, t0, t1] if i16::from_be_bytes([*v0, *v1]) == CONTROL_KEY_VERSION => {
            i16::from_be_bytes([*t0, *t1])
        }
        _ => return Err(Error::corrupt_entry(record.offset, "control key")),
    };
    match kind {
        BLANK_CONTROL_TYPE => Ok(EntryPayload::Blank),
        MEMBERSHIP_CONTROL_TYPE => {
            let json = record
                .value
                .ok_or_else(|| Error::corrupt_entry(record.offset, "membership without value"))?;
            let membership: Membership = serde_json::from_slice(json)?;
            Ok(EntryPayload::Membership(membership))
        }
        other => Err(Error::corrupt_entry(
            record.offset,
            format!("control type {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use std::collections::BTreeSet;

    fn record(i: i64, value: &[u8]) -> Record {
        Record {
            timestamp_ms: 1_700_000_000_000 + i,
            key: Some(b"k".to_vec()),
            value: Some(value.to_vec()),
            headers: vec![RecordHeader {
                key: b"h".to_vec(),
                value: None,
            }],
        }
    }

    fn normal(term: u64, index: u64, values: &[&[u8]]) -> Entry {
        let records = (0..).zip(values).map(|(i, v)| record(i, v)).collect();
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Records(records)),
        }
    }

    fn round_trip(entry: &Entry) -> Vec<u8> {
        let mut builder = BatchBuilder::new();
        let bytes = encode(entry, &mut builder, 1 << 20).unwrap().to_vec();
        let (decoded, placed) = decode(&bytes).unwrap();
        assert_eq!(&decoded, entry);
        assert_eq!(placed.log_id, entry.log_id);
        assert_eq!(place(&bytes).unwrap(), placed);
        bytes
    }

    #[test]
    fn every_kind_of_entry_round_trips_as_one_batch() {
        let members: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        let membership = Entry {
            log_id: log_id(1, 0),
            payload: EntryPayload::Membership(Membership::new(vec![members], None)),
        };
        let blank = Entry {
            log_id: log_id(2, 1),
            payload: EntryPayload::Blank,
        };
        for (entry, control, records) in [
            (membership, true, 1),
            (blank, true, 1),
            (normal(2, 2, &[b"a"]), false, 1),
            (normal(2, 1 << 40, &[b"a", b"", b"ccc"]), false, 3),
        ] {
            let bytes = round_trip(&entry);
            let header = BatchHeader::parse(&bytes).unwrap();
            let term = entry.log_id.leader_id.term;
            assert_eq!(header.base_offset, 0);
            assert_eq!(header.partition_leader_epoch, term as i32);
            assert_eq!(header.records_count, records);
            assert_eq!(header.attributes.is_control(), control);
            rill::batch::validate_for_append(&bytes, 1 << 20).unwrap();
            // The index is the first record's first header: what a Kafka reader sees.
            let first = batch::records(&bytes).unwrap().next().unwrap().unwrap();
            let h = first.headers().next().unwrap().unwrap();
            assert_eq!(h.key, INDEX_HEADER_KEY);
            assert_eq!(h.value, Some(&entry.log_id.index.to_be_bytes()[..]));
        }
    }

    #[test]
    fn sizes_are_bounded_and_empty_or_oversized_entries_refused() {
        let mut builder = BatchBuilder::new();
        assert!(matches!(
            encode(&normal(1, 7, &[&[0; 500]]), &mut builder, 400),
            Err(Error::EntryTooLarge { index: 7, .. })
        ));
        assert!(matches!(
            encode(&normal(1, 7, &[]), &mut builder, 400),
            Err(Error::EmptyEntry { index: 7 })
        ));
        assert!(matches!(
            encode(&normal(u64::from(u32::MAX), 0, &[b""]), &mut builder, 400),
            Err(Error::TermTooLarge(_))
        ));
        assert!(check_records(&[], 400).is_err());
        assert!(check_records(&[record(0, &[0; 500])], 400).is_err());
        // The bound holds for many headers and records too.
        let mut many = normal(1, u64::MAX, &[b"", b"x", b"yy"]);
        if let EntryPayload::Normal(r) = &mut many.payload {
            for record in &mut r.0 {
                record.headers = vec![
                    RecordHeader {
                        key: vec![1; 3],
                        value: Some(vec![2; 3])
                    };
                    20
                ];
            }
            check_records(&r.0, 1 << 20).unwrap();
        }
        let bytes = encode(&many, &mut builder, 1 << 20).unwrap().len();
        assert!(bytes <= encoded_bound(&many, None));
    }

    #[test]
    fn a_batch_not_written_by_raft_is_refused() {
        let mut plain = BatchBuilder::new();
        plain.append(0, None, Some(b"x"), &[]).unwrap();
        let bytes = plain.build().unwrap();
        // partitionLeaderEpoch -1: Kafka's producers' default.
        assert!(matches!(decode(&bytes), Err(Error::CorruptEntry { .. })));
        // A term, but no index header.
        let mut no_index = BatchBuilder::new();
        no_index.partition_leader_epoch(1);
        no_index.append(0, None, Some(b"x"), &[]).unwrap();
        assert!(place(&no_index.build().unwrap()).is_err());
        let index = Header {
            key: INDEX_HEADER_KEY,
            value: Some(&[0; 8]),
        };
        let short = Header {
            key: INDEX_HEADER_KEY,
            value: Some(&[0; 4]),
        };
        let mut bad_len = BatchBuilder::new();
        bad_len.partition_leader_epoch(1);
        bad_len.append(0, None, Some(b"x"), &[short]).unwrap();
        assert!(place(&bad_len.build().unwrap()).is_err());
        let mut control = BatchBuilder::new();
        control.partition_leader_epoch(1).control(true);
        control
            .append(-1, Some(&control_key(1)), None, &[index])
            .unwrap();
        assert!(decode(&control.build().unwrap()).is_err());
        let mut two_controls = BatchBuilder::new();
        two_controls.partition_leader_epoch(1).control(true);
        for _ in 0..2 {
            let key = control_key(BLANK_CONTROL_TYPE);
            two_controls.append(-1, Some(&key), None, &[index]).unwrap();
        }
        assert!(decode(&two_controls.build().unwrap()).is_err());
    }
}
