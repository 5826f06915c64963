//! A message's deduplication key and TTL, read from its encoded properties: the key is the
//! value of the configured header (or the `message-id` property) hashed to 128 bits, so the
//! cache holds fixed-size entries whatever the keys' length.
//!
//! The hash is XXH3-128 with a fixed seed per value type, so keys written to a durable cache's
//! log mean the same after a restart. It is not a cryptographic hash; it does not need to be:
//! anyone who can publish to the exchange can already claim another publisher's key by sending
//! the same value, so engineering a collision gains nothing more.

use bytes::{Bytes, BytesMut};
use warren_message::properties::{has_property, HEADERS, MESSAGE_ID};
use warren_message::{BasicProperties, FieldTable, FieldValue};
use xxhash_rust::xxh3::xxh3_128_with_seed;

use super::cache::Key;
use super::config::{KeySource, TTL_HEADER};

/// Seeds that keep values of different kinds apart (the string "1" is not the integer 1).
const STRING: u64 = 1;
const INTEGER: u64 = 2;
const OTHER: u64 = 3;

/// What deduplication reads from a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageKey {
    pub(crate) key: Key,
    /// The message's own `x-cache-ttl`, if it has a valid one.
    pub(crate) ttl_ms: Option<u64>,
}

/// The key of a message with these encoded properties; `None` when it has none (it is not
/// deduplicated).
pub(crate) fn message_key(raw_properties: &Bytes, source: &KeySource) -> Option<MessageKey> {
    let needed = match source {
        KeySource::Header(_) => HEADERS,
        KeySource::MessageId => MESSAGE_ID,
    };
    if !has_property(raw_properties, needed) {
        return None;
    }
    let props = BasicProperties::decode(raw_properties).ok()?;
    let key = match source {
        KeySource::Header(name) => value_key(props.headers.as_ref()?.get(name)?)?,
        KeySource::MessageId => hash(STRING, props.message_id.as_ref()?.as_bytes()),
    };
    let ttl_ms = props.headers.as_ref().and_then(|h| h.get(TTL_HEADER)).and_then(FieldValue::as_i64);
    Some(MessageKey { key, ttl_ms: ttl_ms.and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0) })
}

fn hash(seed: u64, bytes: &[u8]) -> Key {
    let h = xxh3_128_with_seed(bytes, seed);
    [h as u64, (h >> 64) as u64]
}

/// The key of a header value: strings by their bytes, integers by their value whatever their
/// width, anything else by its encoding. A void value is no key.
fn value_key(value: &FieldValue) -> Option<Key> {
    Some(match value {
        FieldValue::LongStr(s) => hash(STRING, s),
        FieldValue::Void => return None,
        other => match other.as_i64() {
            Some(n) => hash(INTEGER, &n.to_le_bytes()),
            None => {
                let mut table = FieldTable::new();
                table.insert("", other.clone());
                let mut out = BytesMut::new();
                table.encode(&mut out);
                hash(OTHER, &out)
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
