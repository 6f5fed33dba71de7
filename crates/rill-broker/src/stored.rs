//! The encoding of the records the broker stores in `__consumer_offsets` (committed offsets,
//! `crate::offsets`; groups' generations, `crate::coordinator::snapshot`): big-endian
//! integers, strings as a u16 length and UTF-8 (length `0xFFFF` for null), byte arrays as a
//! u32 length. I/O-free. docs/FORMAT.md §12 lists the records.

use bytes::{BufMut, BytesMut};

/// The length that marks a null string.
pub const NULL: u16 = u16::MAX;

/// A string (cut below [`NULL`] bytes: every string stored comes from a Kafka request, whose
/// strings are at most 32,767 bytes, or from the broker).
pub fn put_str(out: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(usize::from(NULL - 1))];
    out.put_u16(s.len() as u16);
    out.put_slice(s);
}

pub fn put_nullable_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.put_u16(NULL),
    }
}

pub fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    let b = &b[..b.len().min(u32::MAX as usize)];
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

/// Reads that fail (`None`) past the end or on bad UTF-8.
#[derive(Debug)]
pub struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self(buf)
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.array()?))
    }

    /// A string or null: `Some(None)` is a null read; `None` a failed read.
    #[allow(
        clippy::option_option,
        reason = "a failed read and a null are both answers"
    )]
    pub fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.u16()?;
        if len == NULL {
            return Some(None);
        }
        let bytes = self.take(usize::from(len))?;
        Some(Some(String::from_utf8(bytes.to_vec()).ok()?))
    }

    /// A non-null string.
    pub fn string(&mut self) -> Option<String> {
        self.nullable_string()?
    }

    pub fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = usize::try_from(self.u32()?).ok()?;
        Some(self.take(len)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_input_fails() {
        let mut out = BytesMut::new();
        put_str(&mut out, "héllo");
        put_nullable_str(&mut out, None);
        put_bytes(&mut out, &[1, 2, 3]);
        out.put_i64(-7);
        let mut r = Cursor::new(&out);
        assert_eq!(r.string().as_deref(), Some("héllo"));
        assert_eq!(r.nullable_string(), Some(None));
        assert_eq!(r.bytes().as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(r.i64(), Some(-7));
        assert!(r.is_empty());
        assert_eq!(Cursor::new(&out[..4]).string(), None);
        assert_eq!(Cursor::new(&[0, 2, 0xff, 0xfe]).string(), None);
    }
}
