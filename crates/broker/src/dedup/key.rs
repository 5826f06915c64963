//! A message's deduplication key and TTL, read straight from its encoded properties without
//! decoding them (no allocation on the publish path): the key is the value of the configured
//! header (or the `message-id` property) hashed to 128 bits, so the cache holds fixed-size
//! entries whatever the keys' length.
//!
//! The hash is XXH3-128 with a fixed seed per kind of value, so keys written to a durable
//! window's log mean the same after a restart. It is not a cryptographic hash; it does not need
//! to be: anyone who can publish to the exchange can already claim another publisher's key by
//! sending the same value, so engineering a collision gains nothing more.

use warren_message::properties::{
    has_property, CORRELATION_ID, DELIVERY_MODE, EXPIRATION, HEADERS, MESSAGE_ID, PRIORITY, REPLY_TO,
};
use warren_message::raw::{self, Reader};
use xxhash_rust::xxh3::xxh3_128_with_seed;

use super::cache::Key;
use super::config::{KeySource, TTL_HEADER};

/// Seeds that keep values of different kinds apart (the string "1" is not the integer 1).
const STRING: u64 = 1;
const INTEGER: u64 = 2;
/// Plus the type octet, for the other types (compared by their encoded bytes).
const OTHER: u64 = 0x100;

/// What deduplication reads from a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageKey {
    pub(crate) key: Key,
    /// The message's own `x-cache-ttl`, if it has a valid one.
    pub(crate) ttl_ms: Option<u64>,
}

/// The key of a message with these encoded properties (flags and list, as published); `None`
/// when it has none (it is not deduplicated) or the properties are malformed.
pub(crate) fn message_key(raw: &[u8], source: &KeySource) -> Option<MessageKey> {
    let needed = match source {
        KeySource::Header(_) => HEADERS,
        KeySource::MessageId => MESSAGE_ID,
    };
    if !has_property(raw, needed) {
        return None;
    }
    let mut r = Reader::new(raw);
    let flags = r.skip_to_headers()?;
    let mut found = Found::default();
    if flags & HEADERS != 0 {
        let wanted = match source {
            KeySource::Header(name) => Some(name.as_bytes().as_ref()),
            KeySource::MessageId => None,
        };
        scan_headers(r.longstr()?, wanted, &mut found)?;
    }
    if let KeySource::MessageId = source {
        for (bit, len) in [(DELIVERY_MODE, 1), (PRIORITY, 1)] {
            if flags & bit != 0 {
                r.take(len)?;
            }
        }
        for bit in [CORRELATION_ID, REPLY_TO, EXPIRATION] {
            if flags & bit != 0 {
                r.shortstr()?;
            }
        }
        found.key = Some(hash(STRING, r.shortstr()?));
    }
    Some(MessageKey { key: found.key?, ttl_ms: found.ttl_ms })
}

#[derive(Default)]
struct Found {
    key: Option<Key>,
    ttl_ms: Option<u64>,
}

/// Reads the key header (`wanted`) and `x-cache-ttl` from an encoded headers table.
fn scan_headers(table: &[u8], wanted: Option<&[u8]>, found: &mut Found) -> Option<()> {
    for field in raw::fields(table) {
        let (name, kind, value) = field.ok()?;
        if Some(name) == wanted {
            found.key = value_key(kind, value);
        } else if name == TTL_HEADER.as_bytes() {
            found.ttl_ms = integer(kind, value).and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0);
        }
    }
    Some(())
}

fn hash(seed: u64, bytes: &[u8]) -> Key {
    let h = xxh3_128_with_seed(bytes, seed);
    [h as u64, (h >> 64) as u64]
}

/// The value of an integer field, whatever its width.
fn integer(kind: u8, v: &[u8]) -> Option<i64> {
    Some(match (kind, v) {
        (b'b', [a]) => i64::from(*a as i8),
        (b'B', [a]) => i64::from(*a),
        (b's', &[a, b]) => i64::from(i16::from_be_bytes([a, b])),
        (b'u', &[a, b]) => i64::from(u16::from_be_bytes([a, b])),
        (b'I', _) => i64::from(i32::from_be_bytes(v.try_into().ok()?)),
        (b'i', _) => i64::from(u32::from_be_bytes(v.try_into().ok()?)),
        (b'l' | b'L', _) => i64::from_be_bytes(v.try_into().ok()?),
        _ => return None,
    })
}

/// The key of a header value: strings by their bytes, integers by their value whatever their
/// width, anything else by its type and encoded bytes. A void value is no key.
fn value_key(kind: u8, value: &[u8]) -> Option<Key> {
    match kind {
        b'S' => Some(hash(STRING, value)),
        b'V' => None,
        _ => Some(match integer(kind, value) {
            Some(n) => hash(INTEGER, &n.to_le_bytes()),
            None => hash(OTHER + u64::from(kind), value),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::{Bytes, BytesMut};
    use warren_message::{BasicProperties, FieldTable, FieldValue};

    fn props(headers: &[(&str, FieldValue)], message_id: Option<&str>) -> Bytes {
        let mut table = FieldTable::new();
        for (k, v) in headers {
            table.insert(*k, v.clone());
        }
        let p = BasicProperties {
            headers: (!headers.is_empty()).then_some(table),
            message_id: message_id.map(Into::into),
            ..Default::default()
        };
        let mut out = BytesMut::new();
        p.encode(&mut out);
        out.freeze()
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()))
    }

    fn header() -> KeySource {
        KeySource::Header("x-deduplication-header".into())
    }

    #[test]
    fn keys_from_the_header_or_the_message_id() {
        let a = message_key(&props(&[("x-deduplication-header", s("a"))], None), &header()).unwrap();
        let a2 = message_key(&props(&[("x-deduplication-header", s("a")), ("o", s("x"))], None), &header());
        assert_eq!(Some(a), a2);
        let b = message_key(&props(&[("x-deduplication-header", s("b"))], None), &header()).unwrap();
        assert_ne!(a.key, b.key);
        assert_eq!(message_key(&props(&[], Some("a")), &header()), None, "no header, no key");
        assert_eq!(message_key(&props(&[("other", s("a"))], None), &header()), None);
        let id = message_key(&props(&[], Some("a")), &KeySource::MessageId).unwrap();
        assert_eq!(id.key, a.key, "the same string is the same key");
        assert_eq!(
            message_key(&props(&[("x-deduplication-header", s("a"))], None), &KeySource::MessageId),
            None
        );
    }

    #[test]
    fn integers_match_whatever_their_width_but_not_strings() {
        let key = |v: FieldValue| {
            message_key(&props(&[("x-deduplication-header", v)], None), &header()).unwrap().key
        };
        assert_eq!(key(FieldValue::I8(7)), key(FieldValue::I64(7)));
        assert_ne!(key(FieldValue::I32(7)), key(s("7")));
        assert_ne!(key(FieldValue::Bool(true)), key(FieldValue::Bool(false)));
        assert_eq!(
            message_key(&props(&[("x-deduplication-header", FieldValue::Void)], None), &header()),
            None
        );
    }

    #[test]
    fn a_message_ttl_from_its_header() {
        let m = props(&[("x-deduplication-header", s("a")), ("x-cache-ttl", FieldValue::I32(500))], None);
        assert_eq!(message_key(&m, &header()).unwrap().ttl_ms, Some(500));
        let m = props(&[("x-deduplication-header", s("a")), ("x-cache-ttl", FieldValue::I32(-5))], None);
        assert_eq!(message_key(&m, &header()).unwrap().ttl_ms, None);
    }

    #[test]
    fn read_past_every_property_and_value_type_before_it() {
        let mut headers = FieldTable::new();
        headers.insert("arr", FieldValue::Array(vec![FieldValue::I32(1), s("x")]));
        headers.insert("tab", FieldValue::Table(FieldTable::new()));
        headers.insert("dec", FieldValue::Decimal { scale: 2, value: 5 });
        headers.insert("f", FieldValue::F64(1.5));
        headers.insert("v", FieldValue::Void);
        headers.insert("ts", FieldValue::Timestamp(9));
        headers.insert("x-deduplication-header", s("deep"));
        headers.insert("x-cache-ttl", FieldValue::I64(70));
        let full = BasicProperties {
            content_type: Some("text/plain".into()),
            content_encoding: Some("utf-8".into()),
            headers: Some(headers),
            delivery_mode: Some(2),
            priority: Some(3),
            correlation_id: Some("c".into()),
            reply_to: Some("r".into()),
            expiration: Some("1000".into()),
            message_id: Some("deep".into()),
            timestamp: Some(5),
            ..Default::default()
        };
        let mut out = BytesMut::new();
        full.encode(&mut out);
        let raw = out.freeze();
        let by_header = message_key(&raw, &header()).unwrap();
        let by_id = message_key(&raw, &KeySource::MessageId).unwrap();
        assert_eq!(by_header.key, by_id.key);
        assert_eq!((by_header.ttl_ms, by_id.ttl_ms), (Some(70), Some(70)));
        // Cut anywhere up to the message-id's end (the timestamp's 8 bytes follow it), the
        // properties give no key rather than a wrong one or a panic.
        for cut in 0..raw.len() - 8 {
            assert_eq!(message_key(&raw[..cut], &KeySource::MessageId), None, "cut at {cut}");
        }
    }
}
