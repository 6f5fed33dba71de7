//! Kafka's primitive types on the wire: big-endian integers; in non-flexible versions strings
//! and byte arrays with `i16`/`i32` length prefixes, `-1` for null, arrays with an `i32`
//! count; in flexible (KIP-482) versions the "compact" forms, an unsigned varint of length + 1
//! (0 for null), and tagged fields at the end of every structure. A [`Reader`] or [`Writer`]
//! is in one mode or the other for a whole message (`flexible`).
//!
//! The reader never allocates more than the input could hold: an array's declared count is
//! checked against the bytes left (each element takes at least one byte) before a `Vec` is
//! reserved, so a 20-byte frame cannot ask for a billion elements.

use super::DecodeError;
use bytes::{BufMut, BytesMut};
use std::ops::Range;

/// A cursor over one request frame.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from `pos`.
    pub fn new(buf: &'a [u8], pos: usize) -> Self {
        Self {
            buf,
            pos,
            flexible: false,
        }
    }

    /// Switches to the compact encodings of flexible versions, for the rest of the frame.
    pub fn set_flexible(&mut self, flexible: bool) {
        self.flexible = flexible;
    }

    /// An unsigned varint of at most 5 bytes (a `u32`).
    pub fn uvarint(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let byte = self.array::<1>(field)?[0];
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::NegativeLength(field))
    }

    /// A length or count: `None` for null. Flexible: varint of length + 1; otherwise the
    /// signed prefix read by `fixed`.
    fn length(
        &mut self,
        field: &'static str,
        fixed: impl FnOnce(&mut Self) -> Result<i64, DecodeError>,
    ) -> Result<Option<usize>, DecodeError> {
        let len = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else {
            fixed(self)?
        };
        if len == -1 {
            return Ok(None);
        }
        usize::try_from(len)
            .map(Some)
            .map_err(|_| DecodeError::NegativeLength(field))
    }

    /// The request header's tagged fields (header v2), read before the body switches the
    /// reader to flexible mode.
    pub fn tags_of_flexible(&mut self) -> Result<(), DecodeError> {
        let flexible = std::mem::replace(&mut self.flexible, true);
        let result = self.tags();
        self.flexible = flexible;
        result
    }

    /// The tagged fields that end a structure in a flexible version (skipped: none is
    /// understood here); nothing in a non-flexible one.
    pub fn tags(&mut self) -> Result<(), DecodeError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint("tagged fields")? as usize;
        // Each field is at least two bytes (tag, size): bounded by the frame.
        if count.saturating_mul(2) > self.remaining() {
            return Err(DecodeError::Truncated("tagged fields"));
        }
        for _ in 0..count {
            self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")? as usize;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The position in the frame.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(DecodeError::Truncated(field))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub fn i8(&mut self, field: &'static str) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        Ok(self.i8(field)? != 0)
    }

    pub fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// A nullable string: `i16` length (`-1` = null), UTF-8 bytes.
    pub fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        let Some(len) = self.length(field, |r| Ok(i64::from(r.i16(field)?)))? else {
            return Ok(None);
        };
        let bytes = self.take(len, field)?;
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8(field))?;
        Ok(Some(text.to_owned()))
    }

    /// A non-null string.
    pub fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        self.nullable_string(field)?
            .ok_or(DecodeError::UnexpectedNull(field))
    }

    /// Nullable bytes (`i32` length, `-1` = null), as their range in the frame: record
    /// batches stay where they are, to be handed to the log without a copy.
    pub fn nullable_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Range<usize>>, DecodeError> {
        let Some(len) = self.length(field, |r| Ok(i64::from(r.i32(field)?)))? else {
            return Ok(None);
        };
        let start = self.pos;
        self.take(len, field)?;
        Ok(Some(start..self.pos))
    }

    /// Non-null bytes, borrowed from the frame.
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let range = self
            .nullable_bytes(field)?
            .ok_or(DecodeError::UnexpectedNull(field))?;
        Ok(&self.buf[range])
    }

    /// An array's element count (`-1` = null), checked against the bytes left: every element
    /// is at least `min_element_bytes` long.
    pub fn array_len(
        &mut self,
        field: &'static str,
        min_element_bytes: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let Some(count) = self.length(field, |r| Ok(i64::from(r.i32(field)?)))? else {
            return Ok(None);
        };
        if count.saturating_mul(min_element_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated(field));
        }
        Ok(Some(count))
    }

    /// A non-null array of `decode`d elements.
    pub fn vec<T>(
        &mut self,
        field: &'static str,
        min_element_bytes: usize,
        mut decode: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self
            .array_len(field, min_element_bytes)?
            .ok_or(DecodeError::UnexpectedNull(field))?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(decode(self)?);
        }
        Ok(out)
    }

    /// Skips a non-null array of `i32`s, returning its length.
    pub fn skip_i32_array(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let count = self.array_len(field, 4)?.unwrap_or(0);
        self.take(count * 4, field)?;
        Ok(count)
    }

    /// Fails unless the whole frame was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.remaining()))
        }
    }
}

/// Writing Kafka's types into a response buffer.
pub trait WriteExt {
    fn put_string(&mut self, s: &str);
    fn put_nullable_string(&mut self, s: Option<&str>);
    fn put_array_len(&mut self, len: usize);
    fn put_bool(&mut self, b: bool);
}

impl WriteExt for BytesMut {
    /// Strings longer than `i16::MAX` never come from this broker (topic names are at most
    /// 249 bytes, messages are short); they are cut rather than sent with a wrong length.
    fn put_string(&mut self, s: &str) {
        let len = s.len().min(i16::MAX as usize);
        self.put_i16(len as i16);
        self.put_slice(&s.as_bytes()[..len]);
    }

    fn put_nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.put_string(s),
            None => self.put_i16(-1),
        }
    }

    fn put_array_len(&mut self, len: usize) {
        self.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    }

    fn put_bool(&mut self, b: bool) {
        self.put_i8(i8::from(b));
    }
}

/// Writes one response body in one mode: non-flexible or flexible (compact lengths, tagged
/// fields). Only the APIs written with it have flexible versions; older code writes through
/// [`WriteExt`].
#[derive(Debug)]
pub struct Writer<'a> {
    pub buf: &'a mut BytesMut,
    pub flexible: bool,
}

impl<'a> Writer<'a> {
    /// A body of a response with header `v1` (flexible: starts with the header's empty tagged
    /// fields, after the correlation id `begin_frame` wrote).
    pub fn response(buf: &'a mut BytesMut, flexible: bool) -> Self {
        let mut w = Self { buf, flexible };
        w.tags();
        w
    }

    pub fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.put_i8(i8::from(v));
    }

    pub fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// A length or count (`None`: null) in the mode's form: `i16`/`i32` prefix or varint + 1.
    fn length(&mut self, len: Option<usize>, wide: bool) {
        if self.flexible {
            let v = len.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX - 1) + 1);
            self.uvarint(v);
        } else if wide {
            self.buf
                .put_i32(len.map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)));
        } else {
            self.buf
                .put_i16(len.map_or(-1, |n| i16::try_from(n).unwrap_or(i16::MAX)));
        }
    }

    /// Strings longer than `i16::MAX` never come from this broker; they are cut rather than
    /// sent with a wrong length.
    pub fn nullable_string(&mut self, s: Option<&str>) {
        let s = s.map(|s| &s.as_bytes()[..s.len().min(i16::MAX as usize)]);
        self.length(s.map(<[u8]>::len), false);
        if let Some(s) = s {
            self.buf.put_slice(s);
        }
    }

    pub fn string(&mut self, s: &str) {
        self.nullable_string(Some(s));
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.length(Some(b.len()), true);
        self.buf.put_slice(b);
    }

    pub fn array_len(&mut self, len: usize) {
        self.length(Some(len), true);
    }

    /// A null array (nullable arrays only).
    pub fn null_array(&mut self) {
        self.length(None, true);
    }

    /// The all-zero UUID (Kafka's "no id").
    pub fn uuid_zero(&mut self) {
        self.buf.put_slice(&[0; 16]);
    }

    /// The tagged fields that end a structure (none) in a flexible version.
    pub fn tags(&mut self) {
        if self.flexible {
            self.buf.put_u8(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_primitives_and_nulls() {
        let mut b = BytesMut::new();
        b.put_i16(7);
        b.put_i32(-2);
        b.put_string("héllo");
        b.put_nullable_string(None);
        b.put_i32(-1); // null bytes
        b.put_i32(3);
        b.put_slice(b"abc");
        let mut r = Reader::new(&b, 0);
        assert_eq!(r.i16("a").unwrap(), 7);
        assert_eq!(r.i32("b").unwrap(), -2);
        assert_eq!(r.string("c").unwrap(), "héllo");
        assert_eq!(r.nullable_string("d").unwrap(), None);
        assert_eq!(r.nullable_bytes("e").unwrap(), None);
        let range = r.nullable_bytes("f").unwrap().unwrap();
        assert_eq!(&b[range], b"abc");
        r.finish().unwrap();
    }

    #[test]
    fn flexible_forms_round_trip() {
        let mut b = BytesMut::new();
        let mut w = Writer {
            buf: &mut b,
            flexible: true,
        };
        w.string("héllo");
        w.nullable_string(None);
        w.array_len(300);
        w.bytes(b"abc");
        w.tags();
        let mut r = Reader::new(&b, 0);
        r.set_flexible(true);
        assert_eq!(r.string("a").unwrap(), "héllo");
        assert_eq!(r.nullable_string("b").unwrap(), None);
        assert_eq!(r.uvarint("c").unwrap(), 301);
        assert_eq!(&b[r.nullable_bytes("d").unwrap().unwrap()], b"abc");
        r.tags().unwrap();
        r.finish().unwrap();
        // A tagged field is skipped; a varint longer than five bytes is refused.
        let tagged = [1u8, 5, 2, 0xaa, 0xbb];
        let mut r = Reader::new(&tagged, 0);
        r.set_flexible(true);
        r.tags().unwrap();
        r.finish().unwrap();
        let long = [0xffu8; 6];
        assert!(Reader::new(&long, 0).uvarint("x").is_err());
        let many_tags = [0x7fu8];
        let mut r = Reader::new(&many_tags, 0);
        r.set_flexible(true);
        assert!(r.tags().is_err());
    }

    #[test]
    fn rejects_lengths_beyond_the_frame() {
        let mut b = BytesMut::new();
        b.put_i32(1_000_000_000);
        assert!(matches!(
            Reader::new(&b, 0).array_len("x", 4),
            Err(DecodeError::Truncated("x"))
        ));
        assert!(matches!(
            Reader::new(&b, 0).nullable_bytes("x"),
            Err(DecodeError::Truncated("x"))
        ));
        let mut b = BytesMut::new();
        b.put_i16(-5);
        assert!(matches!(
            Reader::new(&b, 0).string("s"),
            Err(DecodeError::NegativeLength("s"))
        ));
        let mut b = BytesMut::new();
        b.put_i16(2);
        b.put_slice(&[0xff, 0xfe]);
        assert!(matches!(
            Reader::new(&b, 0).string("s"),
            Err(DecodeError::InvalidUtf8("s"))
        ));
    }
}
