//! Kafka's primitive types on the wire (non-flexible versions): big-endian integers, strings
//! and byte arrays with `i16`/`i32` length prefixes, `-1` for null, arrays with an `i32`
//! count.
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
}

impl<'a> Reader<'a> {
    /// Reads `buf` from `pos`.
    pub fn new(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
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
        let len = self.i16(field)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| DecodeError::NegativeLength(field))?;
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
        let len = self.i32(field)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| DecodeError::NegativeLength(field))?;
        let start = self.pos;
        self.take(len, field)?;
        Ok(Some(start..self.pos))
    }

    /// An array's element count (`-1` = null), checked against the bytes left: every element
    /// is at least `min_element_bytes` long.
    pub fn array_len(
        &mut self,
        field: &'static str,
        min_element_bytes: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let count = self.i32(field)?;
        if count == -1 {
            return Ok(None);
        }
        let count = usize::try_from(count).map_err(|_| DecodeError::NegativeLength(field))?;
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
