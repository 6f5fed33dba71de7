//! Records inside an uncompressed v2 batch, decoded without copying or allocating.
//!
//! ```text
//! length: varint | attributes: i8 | timestampDelta: varlong | offsetDelta: varint
//! keyLength: varint | key | valueLength: varint | value | headersCount: varint | headers
//! header: keyLength: varint | key | valueLength: varint | value      (-1 length = null)
//! ```

use super::varint::{get_varint, get_varlong};
use super::{BatchHeader, Compression};

/// Why a record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes end inside a record.
    #[error("record truncated")]
    Truncated,
    /// A varint is longer than its type allows.
    #[error("varint overflows its type")]
    VarintOverflow,
    /// A record's length prefix is negative.
    #[error("negative record length {0}")]
    NegativeLength(i32),
    /// A key, value or header length below -1 (or a null header key).
    #[error("invalid field length {0}")]
    InvalidFieldLength(i32),
    /// A negative header count.
    #[error("negative header count {0}")]
    NegativeHeaderCount(i32),
    /// The fields did not fill the record's declared length exactly.
    #[error("record declares {declared} bytes but its fields take {used}")]
    SizeMismatch {
        /// The length prefix.
        declared: usize,
        /// Bytes the fields took.
        used: usize,
    },
    /// The batch is compressed: its records are not iterated in place (validation on append
    /// decodes them; reads hand the batch out as stored).
    #[error("records are compressed ({0:?})")]
    Compressed(Compression),
}

/// One decoded record, borrowing the batch's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record attributes (unused by Kafka today, always 0).
    pub attributes: i8,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Absolute offset: base offset + delta.
    pub offset: i64,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Absolute timestamp: base timestamp + delta.
    pub timestamp: i64,
    /// Key, `None` when null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` when null.
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: i32,
}

impl<'a> Record<'a> {
    /// The record's headers, in order. They were checked when the record was decoded.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            buf: self.headers,
            remaining: self.header_count,
        }
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }
}

/// One record header. Keys are UTF-8 by Kafka's rules; rill hands out the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Header key (never null).
    pub key: &'a [u8],
    /// Header value, `None` when null.
    pub value: Option<&'a [u8]>,
}

/// Iterator over a record's headers.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    buf: &'a [u8],
    remaining: i32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<Header<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            return None;
        }
        self.remaining -= 1;
        let mut cursor = Cursor {
            buf: self.buf,
            pos: 0,
        };
        let header = cursor.header();
        self.buf = &self.buf[cursor.pos.min(self.buf.len())..];
        if header.is_err() {
            self.remaining = 0;
        }
        Some(header)
    }
}

/// Iterator over the records of a batch. It stops after `recordsCount` records or at the first
/// error; [`RecordIter::remaining_bytes`] then tells whether bytes were left over.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: i32,
    base_offset: i64,
    base_timestamp: i64,
    compressed: Option<Compression>,
}

impl<'a> RecordIter<'a> {
    /// Records of the batch whose header is `header` and whose records section is `records`.
    pub fn new(header: &BatchHeader, records: &'a [u8]) -> Self {
        let compressed = match header.attributes.compression() {
            Some(Compression::None) => None,
            Some(codec) => Some(codec),
            None => Some(Compression::None),
        };
        Self {
            buf: records,
            pos: 0,
            remaining: header.records_count.max(0),
            base_offset: header.base_offset,
            base_timestamp: header.base_timestamp,
            compressed,
        }
    }

    /// Records of a records section already decompressed (or never compressed), whatever the
    /// header's codec says: for a compressed batch's decompressed records.
    pub fn new_uncompressed(header: &BatchHeader, records: &'a [u8]) -> Self {
        Self {
            compressed: None,
            ..Self::new(header, records)
        }
    }

    /// Bytes not consumed by the records decoded so far.
    pub fn remaining_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn decode(&mut self) -> Result<Record<'a>, RecordError> {
        let (fields, next) = parse_record(self.buf, self.pos)?;
        self.pos = next;
        Ok(Record {
            attributes: fields.attributes,
            offset_delta: fields.offset_delta,
            offset: self
                .base_offset
                .wrapping_add(i64::from(fields.offset_delta)),
            timestamp_delta: fields.timestamp_delta,
            timestamp: self.base_timestamp.wrapping_add(fields.timestamp_delta),
            key: fields.key,
            value: fields.value,
            headers: fields.headers,
            header_count: fields.header_count,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            return None;
        }
        if let Some(codec) = self.compressed {
            self.remaining = 0;
            return Some(Err(RecordError::Compressed(codec)));
        }
        self.remaining -= 1;
        let record = self.decode();
        if record.is_err() {
            self.remaining = 0;
        }
        Some(record)
    }
}

/// Checks the record starting at `pos` of a batch's records section without building it (the
/// validation of an append). Returns its offset delta and where the next record starts.
#[inline]
pub(crate) fn check_record(buf: &[u8], pos: usize) -> Result<Checked, RecordError> {
    parse_record(buf, pos).map(|(fields, next)| Checked {
        offset_delta: fields.offset_delta,
        timestamp_delta: fields.timestamp_delta,
        keyed: fields.key.is_some(),
        next,
    })
}

/// What validation learns of a batch's records as it checks them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) min_timestamp: i64,
    pub(crate) max_timestamp: i64,
    /// Whether a record has a null key.
    pub(crate) keyless: bool,
}

impl Summary {
    pub(crate) fn new() -> Self {
        Self {
            min_timestamp: i64::MAX,
            max_timestamp: i64::MIN,
            keyless: false,
        }
    }

    /// Accounts for the record `checked` of a batch whose base timestamp is `base_timestamp`.
    pub(crate) fn add(&mut self, base_timestamp: i64, checked: &Checked) {
        let timestamp = base_timestamp.wrapping_add(checked.timestamp_delta);
        self.min_timestamp = self.min_timestamp.min(timestamp);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.keyless |= !checked.keyed;
    }
}

/// What [`check_record`] reads of a record.
pub(crate) struct Checked {
    pub(crate) offset_delta: i32,
    pub(crate) timestamp_delta: i64,
    /// Whether its key is not null.
    pub(crate) keyed: bool,
    /// Where the next record starts.
    pub(crate) next: usize,
}

/// A record's fields as they lie in the batch (headers still encoded).
struct Fields<'a> {
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: i32,
}

/// Parses and checks the record starting at `pos` of a records section: its fields, and where
/// the next record starts. Inlined, so a caller that needs one field pays for no other.
#[inline]
fn parse_record(buf: &[u8], pos: usize) -> Result<(Fields<'_>, usize), RecordError> {
    let mut outer = Cursor { buf, pos };
    let length = outer.varint()?;
    let declared = usize::try_from(length).map_err(|_| RecordError::NegativeLength(length))?;
    let body = outer.take(declared)?;
    let mut c = Cursor { buf: body, pos: 0 };
    let attributes = c.take(1)?[0] as i8;
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let key = c.nullable_bytes()?;
    let value = c.nullable_bytes()?;
    let header_count = c.varint()?;
    if header_count < 0 {
        return Err(RecordError::NegativeHeaderCount(header_count));
    }
    let headers_start = c.pos;
    // Bounded by the body: each header takes at least one byte or fails.
    for _ in 0..header_count {
        c.header()?;
    }
    if c.pos != body.len() {
        return Err(RecordError::SizeMismatch {
            declared,
            used: c.pos,
        });
    }
    let fields = Fields {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: &body[headers_start..],
        header_count,
    };
    Ok((fields, outer.pos))
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn varint(&mut self) -> Result<i32, RecordError> {
        let (value, used) = get_varint(&self.buf[self.pos..])?;
        self.pos += used;
        Ok(value)
    }

    #[inline]
    fn varlong(&mut self) -> Result<i64, RecordError> {
        let (value, used) = get_varlong(&self.buf[self.pos..])?;
        self.pos += used;
        Ok(value)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(n).ok_or(RecordError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(RecordError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, RecordError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < -1 => Err(RecordError::InvalidFieldLength(n)),
            n => self.take(n as usize).map(Some),
        }
    }

    fn header(&mut self) -> Result<Header<'a>, RecordError> {
        let key_len = self.varint()?;
        if key_len < 0 {
            return Err(RecordError::InvalidFieldLength(key_len));
        }
        let key = self.take(key_len as usize)?;
        let value = self.nullable_bytes()?;
        Ok(Header { key, value })
    }
}
