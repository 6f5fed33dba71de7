//! How Raft entries become v2 batches, and back. I/O-free.
//!
//! One entry is one batch of one record, at the offset equal to its index, with the entry's
//! term as the batch's `partitionLeaderEpoch`. One batch per entry, not per append: a
//! follower's truncation (Raft's conflict rule) may fall at any index, and rill truncates whole
//! batches; and every replica then stores the same bytes, however the entries were grouped on
//! their way to it.
//!
//! * a `Normal` entry is a data record: the [`Record`]'s timestamp, key, value and headers;
//! * a `Blank` or `Membership` entry is a control record (the batch's control bit is set, so
//!   Kafka consumers skip it): key = version `0` (i16) and type (i16, [`BLANK_CONTROL_TYPE`]
//!   or [`MEMBERSHIP_CONTROL_TYPE`]), value = nothing, or the membership as JSON. Its
//!   timestamp is -1 (Kafka's "no timestamp"): no replica's clock goes into the log.

use crate::error::Error;
use crate::types::{Entry, LogId, Membership, Record, RecordHeader};
use openraft::{CommittedLeaderId, EntryPayload};
use rill::batch::{self, BatchBuilder, BatchHeader, Header};

/// The control-record type of a blank entry (a new leader's first entry). Outside Kafka's
/// range of types (0–6), so Kafka's readers see an unknown control record and skip it.
pub const BLANK_CONTROL_TYPE: i16 = 100;
/// The control-record type of a membership entry.
pub const MEMBERSHIP_CONTROL_TYPE: i16 = 101;
/// The control-record key's version.
const CONTROL_KEY_VERSION: i16 = 0;
/// Bytes a record adds to a batch beyond its key, value and header bytes, at most (the
/// varints of its length, timestamp and offset deltas, lengths and counts).
const RECORD_OVERHEAD_BYTES: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// Bytes a header adds beyond its key and value, at most (two varint lengths).
const HEADER_OVERHEAD_BYTES: usize = 10;

/// The largest term a log holds (a batch's `partitionLeaderEpoch` is an `i32`). A node must
/// refuse Raft messages of a larger term before openraft stores it as its vote.
pub const MAX_TERM: u64 = i32::MAX as u64;

/// The `partitionLeaderEpoch` a term is stored as.
pub(crate) fn epoch_of(term: u64) -> Result<i32, Error> {
    i32::try_from(term).map_err(|_| Error::TermTooLarge(term))
}

/// The offset an index is stored at.
pub(crate) fn offset_of(index: u64) -> Result<i64, Error> {
    i64::try_from(index).map_err(|_| Error::IndexTooLarge(index))
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

/// The largest number of bytes `entry` adds to a batch.
fn encoded_bound(entry: &Entry, membership_json: Option<&[u8]>) -> usize {
    match &entry.payload {
        EntryPayload::Normal(r) => record_bound(r),
        EntryPayload::Blank | EntryPayload::Membership(_) => {
            4 + membership_json.map_or(0, <[u8]>::len) + RECORD_OVERHEAD_BYTES
        }
    }
}

/// Whether `record`, as a normal entry, fits a batch of at most `max_batch_bytes`: check it
/// before proposing it, since a store that cannot write an entry stops Raft on that node.
pub fn check_record(record: &Record, max_batch_bytes: usize) -> Result<(), Error> {
    let bytes = batch::HEADER_BYTES + record_bound(record);
    if bytes > max_batch_bytes {
        return Err(Error::EntryTooLarge {
            index: 0,
            bytes,
            max: max_batch_bytes,
        });
    }
    Ok(())
}

/// Encodes `entry` as its batch, with `builder`'s buffer (cleared first). An entry that would
/// make a batch larger than `max_batch_bytes` is refused.
pub(crate) fn encode<'b>(
    entry: &Entry,
    builder: &'b mut BatchBuilder,
    max_batch_bytes: usize,
) -> Result<&'b [u8], Error> {
    let membership_json = match &entry.payload {
        EntryPayload::Membership(m) => Some(serde_json::to_vec(m)?),
        _ => None,
    };
    let bound = batch::HEADER_BYTES + encoded_bound(entry, membership_json.as_deref());
    if bound > max_batch_bytes {
        return Err(Error::EntryTooLarge {
            index: entry.log_id.index,
            bytes: bound,
            max: max_batch_bytes,
        });
    }
    builder.clear();
    builder
        .partition_leader_epoch(epoch_of(entry.log_id.leader_id.term)?)
        .control(is_control(entry))
        .base_offset(offset_of(entry.log_id.index)?);
    append_record(builder, entry, membership_json.as_deref())?;
    Ok(builder.finish()?)
}

fn append_record(
    builder: &mut BatchBuilder,
    entry: &Entry,
    membership_json: Option<&[u8]>,
) -> Result<(), Error> {
    match &entry.payload {
        EntryPayload::Normal(record) => {
            let headers: Vec<Header<'_>> = record
                .headers
                .iter()
                .map(|h| Header {
                    key: &h.key,
                    value: h.value.as_deref(),
                })
                .collect();
            builder.append(
                record.timestamp_ms,
                record.key.as_deref(),
                record.value.as_deref(),
                &headers,
            )?;
        }
        EntryPayload::Blank => {
            builder.append(-1, Some(&control_key(BLANK_CONTROL_TYPE)), None, &[])?;
        }
        EntryPayload::Membership(_) => {
            builder.append(
                -1,
                Some(&control_key(MEMBERSHIP_CONTROL_TYPE)),
                membership_json,
                &[],
            )?;
        }
    }
    Ok(())
}

fn control_key(kind: i16) -> [u8; 4] {
    let [v0, v1] = CONTROL_KEY_VERSION.to_be_bytes();
    let [t0, t1] = kind.to_be_bytes();
    [v0, v1, t0, t1]
}

/// The term a stored batch carries (its `partitionLeaderEpoch`).
pub(crate) fn term_of(header: &BatchHeader) -> Result<u64, Error> {
    u64::try_from(header.partition_leader_epoch).map_err(|_| {
        Error::corrupt_entry(
            header.base_offset,
            format!("partitionLeaderEpoch {}", header.partition_leader_epoch),
        )
    })
}

/// Decodes the entries of a stored batch whose indexes lie in `from..to`, appending them to
/// `out`. The batch's CRC was checked by the read.
pub(crate) fn decode(batch: &[u8], from: u64, to: u64, out: &mut Vec<Entry>) -> Result<(), Error> {
    let header = BatchHeader::parse(batch).map_err(|e| Error::corrupt_entry(-1, e.to_string()))?;
    let term = term_of(&header)?;
    if header.records_count != 1 {
        return Err(Error::corrupt_entry(
            header.base_offset,
            format!("{} records in one batch", header.records_count),
        ));
    }
    let control = header.attributes.is_control();
    let records = batch::records(batch)
        .map_err(|e| Error::corrupt_entry(header.base_offset, e.to_string()))?;
    for record in records {
        let record = record.map_err(|e| Error::corrupt_entry(header.base_offset, e.to_string()))?;
        let index = u64::try_from(record.offset)
            .map_err(|_| Error::corrupt_entry(record.offset, "negative offset"))?;
        if index < from {
            continue;
        }
        if index >= to {
            break;
        }
        let log_id = log_id(term, index);
        let payload = if control {
            control_payload(&record)?
        } else {
            EntryPayload::Normal(data_record(&record)?)
        };
        out.push(Entry { log_id, payload });
    }
    Ok(())
}

fn data_record(record: &batch::Record<'_>) -> Result<Record, Error> {
    let headers = record
        .headers()
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

    fn normal(term: u64, index: u64, value: &[u8]) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Record {
                timestamp_ms: 1_700_000_000_000 + index as i64,
                key: Some(b"k".to_vec()),
                value: Some(value.to_vec()),
                headers: vec![RecordHeader {
                    key: b"h".to_vec(),
                    value: None,
                }],
            }),
        }
    }

    fn round_trip(entry: &Entry) -> Vec<u8> {
        let mut builder = BatchBuilder::new();
        let bytes = encode(entry, &mut builder, 1 << 20).unwrap().to_vec();
        let mut out = Vec::new();
        decode(&bytes, 0, u64::MAX, &mut out).unwrap();
        assert_eq!(out, vec![entry.clone()]);
        bytes
    }

    #[test]
    fn every_kind_of_entry_round_trips_as_one_batch_of_one_record() {
        let members: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        let membership = Entry {
            log_id: log_id(1, 0),
            payload: EntryPayload::Membership(Membership::new(vec![members], None)),
        };
        let blank = Entry {
            log_id: log_id(2, 1),
            payload: EntryPayload::Blank,
        };
        for (entry, control) in [
            (membership, true),
            (blank, true),
            (normal(2, 2, b"a"), false),
        ] {
            let bytes = round_trip(&entry);
            let header = BatchHeader::parse(&bytes).unwrap();
            let term = entry.log_id.leader_id.term;
            assert_eq!(header.base_offset, entry.log_id.index as i64);
            assert_eq!(header.partition_leader_epoch, term as i32);
            assert_eq!(header.records_count, 1);
            assert_eq!(header.attributes.is_control(), control);
            rill::batch::validate_for_append(&bytes, 1 << 20).unwrap();
        }
    }

    #[test]
    fn decoding_keeps_the_asked_range_and_sizes_are_bounded() {
        let mut out = Vec::new();
        let mut builder = BatchBuilder::new();
        for i in 0..6 {
            let bytes = encode(&normal(1, i, b"v"), &mut builder, 400)
                .unwrap()
                .to_vec();
            decode(&bytes, 2, 4, &mut out).unwrap();
        }
        let indexes: Vec<u64> = out.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![2, 3]);
        assert!(matches!(
            encode(&normal(1, 0, &[0; 500]), &mut builder, 400),
            Err(Error::EntryTooLarge { index: 0, .. })
        ));
        assert!(matches!(
            encode(&normal(u64::from(u32::MAX), 0, b""), &mut builder, 400),
            Err(Error::TermTooLarge(_))
        ));
        // The bound holds for the largest header count too.
        let mut many = normal(1, 0, b"");
        if let EntryPayload::Normal(r) = &mut many.payload {
            r.headers = vec![
                RecordHeader {
                    key: vec![1; 3],
                    value: Some(vec![2; 3])
                };
                20
            ];
        }
        let bytes = encode(&many, &mut builder, 1 << 20).unwrap();
        assert!(bytes.len() <= batch::HEADER_BYTES + encoded_bound(&many, None));
    }

    #[test]
    fn a_batch_not_written_by_raft_is_refused() {
        let mut plain = BatchBuilder::new();
        plain.append(0, None, Some(b"x"), &[]).unwrap();
        let bytes = plain.build().unwrap();
        // partitionLeaderEpoch -1: Kafka's producers' default.
        assert!(matches!(
            decode(&bytes, 0, 10, &mut Vec::new()),
            Err(Error::CorruptEntry { .. })
        ));
        let mut control = BatchBuilder::new();
        control.partition_leader_epoch(1).control(true);
        control
            .append(-1, Some(&control_key(1)), None, &[])
            .unwrap();
        assert!(decode(&control.build().unwrap(), 0, 10, &mut Vec::new()).is_err());
        let mut two = BatchBuilder::new();
        two.partition_leader_epoch(1);
        two.append(0, None, Some(b"x"), &[]).unwrap();
        two.append(0, None, Some(b"y"), &[]).unwrap();
        assert!(decode(&two.build().unwrap(), 0, 10, &mut Vec::new()).is_err());
    }
}
