//! AMQP 0-9-1's primitive encodings: checked big-endian readers over `Bytes` and the matching
//! writers. Field tables and properties are built from them here, frames and methods in
//! `warren-protocol`.
//!
//! Readers never panic: each checks the remaining length first and returns
//! [`DecodeError::Truncated`]. Strings are zero-copy slices of the input.
//! Writers cannot fail; a short string longer than 255 bytes is truncated to
//! 255 bytes at a character boundary (callers validate lengths beforehand).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{DecodeError, ShortStr};

#[inline]
fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError::Truncated)
    } else {
        Ok(())
    }
}

/// An octet.
#[inline]
pub fn get_u8(buf: &mut Bytes) -> Result<u8, DecodeError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

/// A big-endian `u16`.
#[inline]
pub fn get_u16(buf: &mut Bytes) -> Result<u16, DecodeError> {
    need(buf, 2)?;
    Ok(buf.get_u16())
}

/// A big-endian `u32`.
#[inline]
pub fn get_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}

/// A big-endian `u64`.
#[inline]
pub fn get_u64(buf: &mut Bytes) -> Result<u64, DecodeError> {
    need(buf, 8)?;
    Ok(buf.get_u64())
}

/// Split off the next `n` bytes (zero copy).
#[inline]
pub fn take(buf: &mut Bytes, n: usize) -> Result<Bytes, DecodeError> {
    need(buf, n)?;
    Ok(buf.split_to(n))
}

/// `shortstr`: u8 length + UTF-8 bytes.
#[inline]
pub fn get_shortstr(buf: &mut Bytes) -> Result<ShortStr, DecodeError> {
    let len = usize::from(get_u8(buf)?);
    let raw = take(buf, len)?;
    ShortStr::try_from(raw).map_err(|_| DecodeError::InvalidUtf8)
}

/// `longstr`: u32 length + raw bytes.
#[inline]
pub fn get_longstr(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = get_u32(buf)? as usize;
    take(buf, len)
}

/// The part of `s` that fits a short string (at most 255 bytes, cut at a char boundary).
#[inline]
pub fn shortstr_bytes(s: &str) -> &[u8] {
    if s.len() <= 255 {
        return s.as_bytes();
    }
    let mut end = 255;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.as_bytes().get(..end).unwrap_or_default()
}

/// The encoded length of `s` as a short string.
#[inline]
pub fn shortstr_len(s: &str) -> usize {
    1 + shortstr_bytes(s).len()
}

/// Appends `s` as a `shortstr` (cut to 255 bytes, see [`shortstr_bytes`]).
#[inline]
pub fn put_shortstr(out: &mut BytesMut, s: &str) {
    let b = shortstr_bytes(s);
    out.put_u8(b.len() as u8);
    out.put_slice(b);
}

/// Appends `b` as a `longstr`.
#[inline]
pub fn put_longstr(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_reads_fail() {
        let mut b = Bytes::from_static(&[1, 2, 3]);
        assert_eq!(get_u32(&mut b), Err(DecodeError::Truncated));
        assert_eq!(get_u16(&mut b), Ok(0x0102));
        assert_eq!(get_u64(&mut b), Err(DecodeError::Truncated));
        assert_eq!(get_u8(&mut b), Ok(3));
        assert_eq!(get_u8(&mut b), Err(DecodeError::Truncated));
    }

    #[test]
    fn shortstr_is_zero_copy_and_validated() {
        let src = Bytes::from_static(b"\x03abcrest");
        let mut b = src.clone();
        let s = get_shortstr(&mut b).unwrap();
        assert_eq!(&*s, "abc");
        assert_eq!(s.as_bytes().as_ptr(), src[1..].as_ptr());
        let mut bad = Bytes::from_static(b"\x02\xff\xfe");
        assert_eq!(get_shortstr(&mut bad), Err(DecodeError::InvalidUtf8));
        let mut short = Bytes::from_static(b"\x05ab");
        assert_eq!(get_shortstr(&mut short), Err(DecodeError::Truncated));
    }

    #[test]
    fn long_shortstr_is_cut_at_char_boundary() {
        let s = "é".repeat(200); // 400 bytes
        let mut out = BytesMut::new();
        put_shortstr(&mut out, &s);
        assert_eq!(out[0], 254);
        assert_eq!(out.len(), shortstr_len(&s));
        let mut b = out.freeze();
        assert_eq!(get_shortstr(&mut b).unwrap().chars().count(), 127);
    }
}
