//! Field tables (`table`) and field values, with RabbitMQ's type set.
//!
//! Accepted value types are exactly those of RabbitMQ's
//! `rabbit_binary_parser`: `t b B s u I i l f d D S A T F V x`, plus `L`
//! which RabbitMQ also reads as a signed 64-bit integer (it decodes to
//! [`FieldValue::I64`] and is re-encoded as `l`). Any other type octet is
//! [`DecodeError::BadFieldType`]. Nesting of tables/arrays is limited to
//! [`MAX_DEPTH`] levels so hostile input cannot overflow the stack.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{
    get_longstr, get_shortstr, get_u16, get_u32, get_u64, get_u8, put_longstr, put_shortstr, shortstr_len,
    take,
};
use crate::{DecodeError, ShortStr};

/// Maximum nesting depth of tables and arrays accepted by the decoder.
pub(crate) const MAX_DEPTH: usize = 64;

/// A field-table value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// `t`
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s` (RabbitMQ errata: signed 16)
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l` (errata: signed 64); `L` also decodes to this
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`: `value` × 10^-`scale`
    Decimal {
        /// How many decimal digits of `value` follow the point.
        scale: u8,
        /// The unscaled value.
        value: u32,
    },
    /// `S`
    LongStr(Bytes),
    /// `A`
    Array(Vec<FieldValue>),
    /// `T`
    Timestamp(u64),
    /// `F`
    Table(FieldTable),
    /// `V`
    Void,
    /// `x`
    ByteArray(Bytes),
}

/// A field table; entries keep the order in which they were received.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    /// An empty table.
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    /// The value of the first entry with `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }

    /// Insert, replacing the value of an existing key in place.
    pub fn insert(&mut self, key: impl Into<ShortStr>, value: FieldValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    /// Removes the first entry with `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let pos = self.0.iter().position(|(k, _)| &**k == key)?;
        Some(self.0.remove(pos).1)
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of entries (repeated keys count each time).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&ShortStr, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Read a u32 length prefix and that many bytes of entries.
    pub fn decode(buf: &mut Bytes) -> Result<FieldTable, DecodeError> {
        decode_table(buf, 1)
    }

    /// Write the u32 length prefix and the entries.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0);
        for (k, v) in &self.0 {
            put_shortstr(out, k);
            v.encode(out);
        }
        patch_len(out, start);
    }

    /// Encoded size including the 4-byte length prefix.
    pub fn encoded_len(&self) -> usize {
        4 + self.0.iter().map(|(k, v)| shortstr_len(k) + v.encoded_len()).sum::<usize>()
    }
}

impl FieldValue {
    /// The string of a `LongStr` that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongStr(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Any integer variant (`I8` to `I64`; not `Timestamp`) as i64.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            FieldValue::I8(v) => v.into(),
            FieldValue::U8(v) => v.into(),
            FieldValue::I16(v) => v.into(),
            FieldValue::U16(v) => v.into(),
            FieldValue::I32(v) => v.into(),
            FieldValue::U32(v) => v.into(),
            FieldValue::I64(v) => v,
            _ => return None,
        })
    }

    /// The value of a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The type octet written for this value.
    pub fn type_octet(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal { .. } => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
            FieldValue::ByteArray(_) => b'x',
        }
    }

    /// Write the type octet and the value.
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.type_octet());
        match self {
            FieldValue::Bool(v) => out.put_u8(u8::from(*v)),
            FieldValue::I8(v) => out.put_i8(*v),
            FieldValue::U8(v) => out.put_u8(*v),
            FieldValue::I16(v) => out.put_i16(*v),
            FieldValue::U16(v) => out.put_u16(*v),
            FieldValue::I32(v) => out.put_i32(*v),
            FieldValue::U32(v) => out.put_u32(*v),
            FieldValue::I64(v) => out.put_i64(*v),
            FieldValue::F32(v) => out.put_f32(*v),
            FieldValue::F64(v) => out.put_f64(*v),
            FieldValue::Decimal { scale, value } => {
                out.put_u8(*scale);
                out.put_u32(*value);
            }
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => put_longstr(out, b),
            FieldValue::Array(items) => {
                let start = out.len();
                out.put_u32(0);
                for item in items {
                    item.encode(out);
                }
                patch_len(out, start);
            }
            FieldValue::Timestamp(v) => out.put_u64(*v),
            FieldValue::Table(t) => t.encode(out),
            FieldValue::Void => {}
        }
    }

    /// Encoded size including the type octet.
    fn encoded_len(&self) -> usize {
        1 + match self {
            FieldValue::Void => 0,
            FieldValue::Bool(_) | FieldValue::I8(_) | FieldValue::U8(_) => 1,
            FieldValue::I16(_) | FieldValue::U16(_) => 2,
            FieldValue::I32(_) | FieldValue::U32(_) | FieldValue::F32(_) => 4,
            FieldValue::I64(_) | FieldValue::F64(_) | FieldValue::Timestamp(_) => 8,
            FieldValue::Decimal { .. } => 5,
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => 4 + b.len(),
            FieldValue::Array(items) => 4 + items.iter().map(Self::encoded_len).sum::<usize>(),
            FieldValue::Table(t) => t.encoded_len(),
        }
    }
}

/// Overwrite the u32 placeholder at `start` with the number of bytes after it.
pub(crate) fn patch_len(out: &mut BytesMut, start: usize) {
    let len = (out.len() - start - 4) as u32;
    if let Some(slot) = out.get_mut(start..start + 4) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

fn check_depth(depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        Err(DecodeError::TooDeep(MAX_DEPTH))
    } else {
        Ok(())
    }
}

fn decode_table(buf: &mut Bytes, depth: usize) -> Result<FieldTable, DecodeError> {
    check_depth(depth)?;
    let len = get_u32(buf)? as usize;
    let mut body = take(buf, len)?;
    let mut entries = Vec::new();
    while !body.is_empty() {
        let key = get_shortstr(&mut body)?;
        let value = decode_value(&mut body, depth)?;
        entries.push((key, value));
    }
    Ok(FieldTable(entries))
}

fn decode_array(buf: &mut Bytes, depth: usize) -> Result<Vec<FieldValue>, DecodeError> {
    check_depth(depth)?;
    let len = get_u32(buf)? as usize;
    let mut body = take(buf, len)?;
    let mut items = Vec::new();
    while !body.is_empty() {
        items.push(decode_value(&mut body, depth)?);
    }
    Ok(items)
}

/// Decode a type octet and value; `depth` is that of the enclosing container.
pub(crate) fn decode_value(buf: &mut Bytes, depth: usize) -> Result<FieldValue, DecodeError> {
    let tag = get_u8(buf)?;
    Ok(match tag {
        b't' => FieldValue::Bool(get_u8(buf)? != 0),
        b'b' => FieldValue::I8(get_u8(buf)? as i8),
        b'B' => FieldValue::U8(get_u8(buf)?),
        b's' => FieldValue::I16(get_u16(buf)? as i16),
        b'u' => FieldValue::U16(get_u16(buf)?),
        b'I' => FieldValue::I32(get_u32(buf)? as i32),
        b'i' => FieldValue::U32(get_u32(buf)?),
        b'l' | b'L' => FieldValue::I64(get_u64(buf)? as i64),
        b'f' => FieldValue::F32(f32::from_bits(get_u32(buf)?)),
        b'd' => FieldValue::F64(f64::from_bits(get_u64(buf)?)),
        b'D' => FieldValue::Decimal { scale: get_u8(buf)?, value: get_u32(buf)? },
        b'S' => FieldValue::LongStr(get_longstr(buf)?),
        b'A' => FieldValue::Array(decode_array(buf, depth + 1)?),
        b'T' => FieldValue::Timestamp(get_u64(buf)?),
        b'F' => FieldValue::Table(decode_table(buf, depth + 1)?),
        b'V' => FieldValue::Void,
        b'x' => FieldValue::ByteArray(get_longstr(buf)?),
        other => return Err(DecodeError::BadFieldType(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::arb_table;
    use proptest::prelude::*;

    fn roundtrip(t: &FieldTable) -> FieldTable {
        let mut out = BytesMut::new();
        t.encode(&mut out);
        assert_eq!(out.len(), t.encoded_len());
        let mut b = out.freeze();
        let back = FieldTable::decode(&mut b).unwrap();
        assert!(b.is_empty());
        back
    }

    #[test]
    fn map_operations_keep_order() {
        let mut t = FieldTable::new();
        t.insert("a", FieldValue::I32(1));
        t.insert("b", FieldValue::Bool(true));
        t.insert("a", FieldValue::I32(2));
        assert_eq!(t.len(), 2);
        assert_eq!(t.0[0].0, "a");
        assert_eq!(t.get("a"), Some(&FieldValue::I32(2)));
        assert_eq!(t.get("a").and_then(FieldValue::as_i64), Some(2));
        assert_eq!(t.get("b").and_then(FieldValue::as_bool), Some(true));
        assert_eq!(t.remove("a"), Some(FieldValue::I32(2)));
        assert_eq!(t.remove("a"), None);
        assert_eq!(t.iter().count(), 1);
        assert!(!t.is_empty());
        let s = FieldValue::LongStr(Bytes::from_static(b"hi"));
        assert_eq!(s.as_str(), Some("hi"));
    }

    #[test]
    fn bad_field_type_rejected() {
        // table of 4 bytes: key "k", type 'Z', one byte
        let mut b = Bytes::from_static(b"\x00\x00\x00\x04\x01kZ\x00");
        assert_eq!(FieldTable::decode(&mut b), Err(DecodeError::BadFieldType(b'Z')));
    }

    #[test]
    fn capital_l_reads_as_signed_64() {
        let mut b = Bytes::from_static(b"\x00\x00\x00\x0b\x01kL\xff\xff\xff\xff\xff\xff\xff\xfe");
        let t = FieldTable::decode(&mut b).unwrap();
        assert_eq!(t.get("k"), Some(&FieldValue::I64(-2)));
    }

    #[test]
    fn entry_overrunning_table_is_truncated() {
        let mut b = Bytes::from_static(b"\x00\x00\x00\x03\x01kI\x00\x00\x00\x01");
        assert_eq!(FieldTable::decode(&mut b), Err(DecodeError::Truncated));
    }

    #[test]
    fn deep_nesting_rejected_without_overflow() {
        // 10_000 nested arrays: each level is 'A' + u32 length.
        let depth = 10_000usize;
        let mut inner: Vec<u8> = Vec::new();
        for _ in 0..depth {
            let mut v = vec![b'A'];
            v.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            v.extend_from_slice(&inner);
            inner = v;
        }
        let mut t = vec![1, b'k'];
        t.extend_from_slice(&inner);
        let mut buf = (t.len() as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&t);
        let mut b = Bytes::from(buf);
        assert_eq!(FieldTable::decode(&mut b), Err(DecodeError::TooDeep(MAX_DEPTH)));
    }

    #[test]
    fn all_types_roundtrip() {
        let mut inner = FieldTable::new();
        inner.insert("x", FieldValue::Void);
        let t = FieldTable(vec![
            ("t".into(), FieldValue::Bool(true)),
            ("b".into(), FieldValue::I8(-1)),
            ("B".into(), FieldValue::U8(255)),
            ("s".into(), FieldValue::I16(-2)),
            ("u".into(), FieldValue::U16(65535)),
            ("I".into(), FieldValue::I32(-3)),
            ("i".into(), FieldValue::U32(u32::MAX)),
            ("l".into(), FieldValue::I64(i64::MIN)),
            ("f".into(), FieldValue::F32(1.5)),
            ("d".into(), FieldValue::F64(-2.25)),
            ("D".into(), FieldValue::Decimal { scale: 2, value: 12345 }),
            ("S".into(), FieldValue::LongStr(Bytes::from_static(b"long"))),
            ("A".into(), FieldValue::Array(vec![FieldValue::U8(1), FieldValue::Void])),
            ("T".into(), FieldValue::Timestamp(1_700_000_000)),
            ("F".into(), FieldValue::Table(inner)),
            ("V".into(), FieldValue::Void),
            ("x".into(), FieldValue::ByteArray(Bytes::from_static(b"\x00\x01"))),
        ]);
        assert_eq!(roundtrip(&t), t);
    }

    proptest! {
        #[test]
        fn arbitrary_tables_roundtrip(t in arb_table()) {
            prop_assert_eq!(roundtrip(&t), t);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut b = Bytes::from(data);
            let _ = FieldTable::decode(&mut b);
        }
    }
}
