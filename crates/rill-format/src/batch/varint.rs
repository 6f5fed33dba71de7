//! Zig-zag variable-length integers, as Kafka's record format uses them
//! (protobuf's `sint32`/`sint64` encoding).

use super::RecordError;

/// Most bytes a zig-zag varint of an `i32` takes.
pub const MAX_VARINT_BYTES: usize = 5;
/// Most bytes a zig-zag varlong of an `i64` takes.
pub const MAX_VARLONG_BYTES: usize = 10;

/// Bytes needed to encode `value` as a zig-zag varint.
pub fn varint_len(value: i32) -> usize {
    varlong_len(i64::from(value))
}

/// Bytes needed to encode `value` as a zig-zag varlong.
pub fn varlong_len(value: i64) -> usize {
    let zigzag = ((value << 1) ^ (value >> 63)) as u64;
    // Each byte carries 7 bits; zero still takes one byte.
    let bits = 64 - (zigzag | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `value` as a zig-zag varint.
pub fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_varlong(out, i64::from(value));
}

/// Appends `value` as a zig-zag varlong.
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// Reads a zig-zag varint from the front of `buf`, returning the value and the bytes it took.
#[inline]
pub fn get_varint(buf: &[u8]) -> Result<(i32, usize), RecordError> {
    let (raw, used) = get_unsigned(buf, MAX_VARINT_BYTES)?;
    if raw > u64::from(u32::MAX) {
        return Err(RecordError::VarintOverflow);
    }
    let raw = raw as u32;
    Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), used))
}

/// Reads a zig-zag varlong from the front of `buf`, returning the value and the bytes it took.
#[inline]
pub fn get_varlong(buf: &[u8]) -> Result<(i64, usize), RecordError> {
    let (raw, used) = get_unsigned(buf, MAX_VARLONG_BYTES)?;
    Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), used))
}

#[inline]
fn get_unsigned(buf: &[u8], max_bytes: usize) -> Result<(u64, usize), RecordError> {
    // Fast paths: most fields of small records take one or two bytes.
    match *buf {
        [b0, ..] if b0 < 0x80 => return Ok((u64::from(b0), 1)),
        [b0, b1, ..] if b1 < 0x80 => {
            return Ok((u64::from(b0 & 0x7f) | (u64::from(b1) << 7), 2));
        }
        _ => {}
    }
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().take(max_bytes).enumerate() {
        let shift = 7 * i as u32;
        let chunk = u64::from(byte & 0x7f);
        // The 10th byte of a varlong may carry only the top bit of 64.
        if shift == 63 && chunk > 1 {
            return Err(RecordError::VarintOverflow);
        }
        value |= chunk << shift;
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() < max_bytes {
        Err(RecordError::Truncated)
    } else {
        Err(RecordError::VarintOverflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_kafka() {
        // Values from Kafka's ByteUtilsTest.
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i64::from(i32::MAX), &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i64::from(i32::MIN), &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(value, bytes) in cases {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            assert_eq!(out, bytes, "encoding {value}");
            assert_eq!(varlong_len(value), bytes.len());
            assert_eq!(get_varlong(bytes).unwrap(), (value, bytes.len()));
        }
    }

    #[test]
    fn truncated_and_overlong_inputs_are_errors() {
        assert_eq!(get_varint(&[]), Err(RecordError::Truncated));
        assert_eq!(get_varint(&[0x80, 0x80]), Err(RecordError::Truncated));
        assert_eq!(
            get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(RecordError::VarintOverflow)
        );
        // Five bytes whose value exceeds 32 bits.
        assert_eq!(
            get_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(RecordError::VarintOverflow)
        );
        assert_eq!(get_varlong(&[0xff; 10]), Err(RecordError::VarintOverflow));
    }

    proptest! {
        #[test]
        fn varlong_round_trips(value in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            prop_assert_eq!(out.len(), varlong_len(value));
            prop_assert_eq!(get_varlong(&out).unwrap(), (value, out.len()));
        }

        #[test]
        fn varint_round_trips(value in any::<i32>()) {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            prop_assert_eq!(out.len(), varint_len(value));
            prop_assert_eq!(get_varint(&out).unwrap(), (value, out.len()));
        }
    }
}
