//! A field table read for rewriting: every entry is decoded, except those nested deeper than the
//! decoder goes, which are kept as they came and written back unchanged. A broker that adds or
//! replaces a few headers (dead-lettering's `x-death`) thus keeps the others, however deep:
//! failing the whole table would lose every property of the message.

use bytes::{Bytes, BytesMut};

use crate::codec::{get_shortstr, get_u32, put_shortstr, take};
use crate::table::{decode_value, patch_len};
use crate::{DecodeError, FieldValue, ShortStr};

/// One entry's value.
#[derive(Clone, Debug, PartialEq)]
pub enum LenientValue {
    /// Decoded as usual.
    Decoded(FieldValue),
    /// Nested too deep to decode: the encoded value (type octet and all), as it came.
    Kept(Bytes),
}

/// A field table whose entries too deep to decode are kept encoded; entries keep their order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LenientTable(pub Vec<(ShortStr, LenientValue)>);

impl LenientTable {
    /// Reads a u32 length prefix and that many bytes of entries. Errors other than the depth
    /// limit (a truncated value, an unknown type) still fail the table.
    pub fn decode(buf: &mut Bytes) -> Result<LenientTable, DecodeError> {
        let len = get_u32(buf)? as usize;
        let mut body = take(buf, len)?;
        let mut entries = Vec::new();
        while !body.is_empty() {
            let key = get_shortstr(&mut body)?;
            entries.push((key, read_value(&mut body)?));
        }
        Ok(LenientTable(entries))
    }

    /// The decoded value of the first entry with `key` (None for a kept one too).
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        match self.0.iter().find(|(k, _)| &**k == key)?.1 {
            LenientValue::Decoded(ref v) => Some(v),
            LenientValue::Kept(_) => None,
        }
    }

    /// Inserts, replacing the value of an existing key in place.
    pub fn insert(&mut self, key: impl Into<ShortStr>, value: FieldValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = LenientValue::Decoded(value),
            None => self.0.push((key, LenientValue::Decoded(value))),
        }
    }

    /// Removes the first entry with `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<LenientValue> {
        let pos = self.0.iter().position(|(k, _)| &**k == key)?;
        Some(self.0.remove(pos).1)
    }

    /// Sorts the entries by key (stable: repeated keys keep their order).
    pub fn sort_by_key(&mut self) {
        self.0.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
    }

    /// Writes the u32 length prefix and the entries, kept ones byte for byte.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        for (k, v) in &self.0 {
            put_shortstr(out, k);
            match v {
                LenientValue::Decoded(value) => value.encode(out),
                LenientValue::Kept(raw) => out.extend_from_slice(raw),
            }
        }
        patch_len(out, start);
    }
}

/// One value of a table's top level: decoded, or kept when it nests too deep.
fn read_value(body: &mut Bytes) -> Result<LenientValue, DecodeError> {
    let mut attempt = body.clone();
    // Depth 1: the value sits in a table, as FieldTable::decode counts.
    match decode_value(&mut attempt, 1) {
        Ok(value) => {
            *body = attempt;
            Ok(LenientValue::Decoded(value))
        }
        Err(DecodeError::TooDeep(_)) => skip_value(body).map(LenientValue::Kept),
        Err(other) => Err(other),
    }
}

/// Takes one encoded value, type octet and all, without decoding it: tables, arrays and strings
/// are length-prefixed, so nothing inside them is read (nor nested calls made).
fn skip_value(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let tag = *buf.first().ok_or(DecodeError::Truncated)?;
    let len = match tag {
        b'V' => 0,
        b't' | b'b' | b'B' => 1,
        b's' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'S' | b'x' | b'A' | b'F' => {
            let prefix = buf.get(1..5).ok_or(DecodeError::Truncated)?;
            4 + u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize
        }
        other => return Err(DecodeError::BadFieldType(other)),
    };
    take(buf, 1 + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldTable;

    /// A value nested `depth` tables deep, innermost holding a string.
    fn nested(depth: usize) -> Vec<u8> {
        let mut value = [b"S\x00\x00\x00\x02hi".as_slice()].concat();
        for _ in 0..depth {
            let mut entry = vec![1, b'n'];
            entry.extend_from_slice(&value);
            value = vec![b'F'];
            value.extend_from_slice(&(entry.len() as u32).to_be_bytes());
            value.extend_from_slice(&entry);
        }
        value
    }

    fn table(entries: &[(&str, &[u8])]) -> Bytes {
        let mut body = Vec::new();
        for (k, v) in entries {
            body.push(k.len() as u8);
            body.extend_from_slice(k.as_bytes());
            body.extend_from_slice(v);
        }
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        Bytes::from(out)
    }

    #[test]
    fn entries_too_deep_are_kept_and_written_back_unchanged() {
        let deep = nested(200);
        let raw = table(&[("b", b"I\x00\x00\x00\x07"), ("a", &deep)]);
        assert_eq!(FieldTable::decode(&mut raw.clone()), Err(DecodeError::TooDeep(64)));
        let mut t = LenientTable::decode(&mut raw.clone()).unwrap();
        assert_eq!(t.get("b"), Some(&FieldValue::I32(7)));
        assert_eq!(t.get("a"), None, "kept, not decoded");
        assert_eq!(t.0[1].1, LenientValue::Kept(Bytes::from(deep.clone())));
        let mut out = BytesMut::new();
        t.encode(&mut out);
        assert_eq!(out.freeze(), raw, "unchanged, byte for byte");
        t.insert("c", FieldValue::Bool(true));
        t.sort_by_key();
        let mut out = BytesMut::new();
        t.encode(&mut out);
        assert_eq!(out.freeze(), table(&[("a", &deep), ("b", b"I\x00\x00\x00\x07"), ("c", b"t\x01")]));
    }

    #[test]
    fn shallow_tables_read_as_field_tables_do() {
        let raw = table(&[("x", &nested(3)), ("y", b"V")]);
        let decoded = FieldTable::decode(&mut raw.clone()).unwrap();
        let lenient = LenientTable::decode(&mut raw.clone()).unwrap();
        let values: Vec<_> = decoded.0.into_iter().map(|(k, v)| (k, LenientValue::Decoded(v))).collect();
        assert_eq!(lenient.0, values);
        assert!(matches!(lenient.clone().remove("y"), Some(LenientValue::Decoded(FieldValue::Void))));
    }

    #[test]
    fn other_errors_still_fail() {
        let bad_type = table(&[("k", b"Z\x00")]);
        assert_eq!(LenientTable::decode(&mut bad_type.clone()), Err(DecodeError::BadFieldType(b'Z')));
        // Too deep and cut short: the kept value must still fit in the table.
        let mut deep = nested(100);
        deep.truncate(deep.len() - 1);
        let short = table(&[("k", &deep)]);
        assert_eq!(LenientTable::decode(&mut short.clone()), Err(DecodeError::Truncated));
    }
}
