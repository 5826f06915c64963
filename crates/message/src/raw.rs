//! Reading encoded properties and field tables in place, without decoding them: the publish
//! path asks a few questions of every message (is there a `CC` header? what is the
//! deduplication key?) and must not allocate to answer them. Every read is bounds-checked:
//! malformed bytes give `None`, never a panic.

use crate::properties::{CONTENT_ENCODING, CONTENT_TYPE, HEADERS};

/// A cursor over encoded bytes; every read is bounds-checked (`None` past the end).
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    /// What is left to read.
    pub buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    /// An octet.
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// A big-endian short.
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    /// A big-endian long.
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A short string's bytes.
    pub fn shortstr(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()?;
        self.take(usize::from(len))
    }

    /// A long string's bytes.
    pub fn longstr(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()?;
        self.take(len as usize)
    }

    /// A field value of type `kind`: its bytes (a string's, array's or table's without the
    /// length prefix).
    pub fn value(&mut self, kind: u8) -> Option<&'a [u8]> {
        match kind {
            b'V' => Some(&[]),
            b't' | b'b' | b'B' => self.take(1),
            b's' | b'u' => self.take(2),
            b'I' | b'i' | b'f' => self.take(4),
            b'D' => self.take(5),
            b'l' | b'L' | b'd' | b'T' => self.take(8),
            b'S' | b'x' | b'A' | b'F' => self.longstr(),
            _ => None,
        }
    }

    /// Reads the property flags (all their words) and the properties before `headers`: the
    /// flags, and the reader left at the headers table if there is one.
    pub fn skip_to_headers(&mut self) -> Option<u16> {
        let flags = self.u16()?;
        let mut word = flags;
        while word & 1 != 0 {
            word = self.u16()?;
        }
        for bit in [CONTENT_TYPE, CONTENT_ENCODING] {
            if flags & bit != 0 {
                self.shortstr()?;
            }
        }
        Some(flags)
    }
}

/// The encoded headers table (without its length prefix) of raw properties (flags and list, as
/// published); `None` when there is none or the properties are malformed.
pub fn headers(raw: &[u8]) -> Option<&[u8]> {
    let mut r = Reader::new(raw);
    let flags = r.skip_to_headers()?;
    if flags & HEADERS == 0 {
        return None;
    }
    r.longstr()
}

/// The top-level fields of an encoded table, in order: name, type octet and value bytes (as
/// [`Reader::value`] gives them); an `Err(())` item, the last, where the table is malformed.
pub fn fields(table: &[u8]) -> impl Iterator<Item = Result<(&[u8], u8, &[u8]), ()>> {
    let mut r = Reader::new(table);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || r.buf.is_empty() {
            return None;
        }
        let field = (|| {
            let name = r.shortstr()?;
            let kind = r.u8()?;
            Some((name, kind, r.value(kind)?))
        })();
        failed = field.is_none();
        Some(field.ok_or(()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BasicProperties, FieldTable, FieldValue};
    use bytes::{Bytes, BytesMut};

    #[test]
    fn the_headers_and_their_fields_read_in_place() {
        let mut table = FieldTable::new();
        table.insert("arr", FieldValue::Array(vec![FieldValue::I32(1)]));
        table.insert("n", FieldValue::I16(-2));
        table.insert("s", FieldValue::LongStr(Bytes::from_static(b"v")));
        let props = BasicProperties {
            content_type: Some("text/plain".into()),
            headers: Some(table),
            delivery_mode: Some(2),
            ..Default::default()
        };
        let mut raw = BytesMut::new();
        props.encode(&mut raw);
        let table = headers(&raw).unwrap();
        let got: Vec<_> = fields(table).map(|f| f.unwrap()).map(|(n, k, _)| (n.to_vec(), k)).collect();
        assert_eq!(got, vec![(b"arr".to_vec(), b'A'), (b"n".to_vec(), b's'), (b"s".to_vec(), b'S')]);
        assert_eq!(fields(table).last().unwrap().unwrap().2, b"v");
        // Cut short, the last item says so; no headers, none.
        assert_eq!(fields(&table[..table.len() - 1]).last(), Some(Err(())));
        let mut plain = BytesMut::new();
        BasicProperties { delivery_mode: Some(2), ..Default::default() }.encode(&mut plain);
        assert_eq!(headers(&plain), None);
        for cut in 0..raw.len() - 1 {
            // Never a panic; a cut inside the table gives no table.
            let _ = headers(&raw[..cut]).map(|t| fields(t).count());
        }
    }
}
