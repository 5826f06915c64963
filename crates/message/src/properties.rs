//! Basic-class content properties (the property flags + property list of a
//! content header). Decoded only on demand: frames carry the raw bytes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{get_shortstr, get_u16, get_u64, get_u8, put_shortstr};
use crate::{DecodeError, FieldTable, LenientTable, ShortStr};

/// Properties of class `basic`; `None` = flag bit clear.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BasicProperties {
    /// `content-type`, a MIME type.
    pub content_type: Option<ShortStr>,
    /// `content-encoding`, a MIME encoding.
    pub content_encoding: Option<ShortStr>,
    /// `headers`, application headers (and RabbitMQ's `x-` headers).
    pub headers: Option<FieldTable>,
    /// `delivery-mode`: 2 is persistent, anything else transient.
    pub delivery_mode: Option<u8>,
    /// `priority`, used by priority queues.
    pub priority: Option<u8>,
    /// `correlation-id`, set by applications.
    pub correlation_id: Option<ShortStr>,
    /// `reply-to`, the queue a reply goes to.
    pub reply_to: Option<ShortStr>,
    /// `expiration`, the message TTL in milliseconds as a decimal string.
    pub expiration: Option<ShortStr>,
    /// `message-id`, set by applications.
    pub message_id: Option<ShortStr>,
    /// `timestamp`, in seconds since the epoch.
    pub timestamp: Option<u64>,
    /// The `type` property.
    pub kind: Option<ShortStr>,
    /// `user-id`, checked against the connection's user when set.
    pub user_id: Option<ShortStr>,
    /// `app-id`, set by applications.
    pub app_id: Option<ShortStr>,
    /// `cluster-id`, deprecated and unused.
    pub cluster_id: Option<ShortStr>,
}

// Flag bits, most significant first; bit 0 is the continuation bit.
/// Flag bit of `content-type`.
pub const CONTENT_TYPE: u16 = 1 << 15;
/// Flag bit of `content-encoding`.
pub const CONTENT_ENCODING: u16 = 1 << 14;
/// Flag bit of `headers`.
pub const HEADERS: u16 = 1 << 13;
/// Flag bit of `delivery-mode`.
pub const DELIVERY_MODE: u16 = 1 << 12;
/// Flag bit of `priority`.
pub const PRIORITY: u16 = 1 << 11;
/// Flag bit of `correlation-id`.
pub const CORRELATION_ID: u16 = 1 << 10;
/// Flag bit of `reply-to`.
pub const REPLY_TO: u16 = 1 << 9;
/// Flag bit of `expiration`.
pub const EXPIRATION: u16 = 1 << 8;
/// Flag bit of `message-id`.
pub const MESSAGE_ID: u16 = 1 << 7;
/// Flag bit of `timestamp`.
pub const TIMESTAMP: u16 = 1 << 6;
/// Flag bit of `type`.
pub const TYPE: u16 = 1 << 5;
/// Flag bit of `user-id`.
pub const USER_ID: u16 = 1 << 4;
/// Flag bit of `app-id`.
pub const APP_ID: u16 = 1 << 3;
/// Flag bit of `cluster-id`.
pub const CLUSTER_ID: u16 = 1 << 2;
const CONTINUATION: u16 = 1;

/// Whether raw property bytes (flags and list) carry the property with flag `bit` (one of the
/// constants above), read from the flags alone: callers decode only when it is there.
pub fn has_property(raw: &[u8], bit: u16) -> bool {
    match raw {
        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]) & bit != 0,
        _ => false,
    }
}

/// The delivery-mode property read straight from raw property bytes (flags and list, as in a
/// content header), skipping what precedes it without decoding: the publish path asks this of
/// every message and must not allocate.
pub fn raw_delivery_mode(raw: &[u8]) -> Option<u8> {
    let word = |pos: usize| Some(u16::from_be_bytes([*raw.get(pos)?, *raw.get(pos + 1)?]));
    let flags = word(0)?;
    if flags & DELIVERY_MODE == 0 {
        return None;
    }
    let mut pos = 2;
    let mut last = flags;
    while last & CONTINUATION != 0 {
        last = word(pos)?;
        pos += 2;
    }
    for bit in [CONTENT_TYPE, CONTENT_ENCODING] {
        if flags & bit != 0 {
            pos += 1 + usize::from(*raw.get(pos)?);
        }
    }
    if flags & HEADERS != 0 {
        let len =
            u32::from_be_bytes([*raw.get(pos)?, *raw.get(pos + 1)?, *raw.get(pos + 2)?, *raw.get(pos + 3)?]);
        pos = pos.checked_add(4)?.checked_add(usize::try_from(len).ok()?)?;
    }
    raw.get(pos).copied()
}

impl BasicProperties {
    /// Decode property flags and list. Like RabbitMQ, the unused flag bit 1 is
    /// ignored; continuation flag words are read and ignored (class `basic`
    /// has only 14 properties). Bytes after the list are an error.
    pub fn decode(raw: &Bytes) -> Result<Self, DecodeError> {
        let (mut props, headers) = decode_with(raw, FieldTable::decode)?;
        props.headers = headers;
        Ok(props)
    }

    /// Like [`BasicProperties::decode`], but headers nested deeper than the decoder goes are kept
    /// encoded instead of failing the whole: for rewriting a message's headers without losing
    /// any of its properties. The headers come apart; the properties' own are `None`.
    pub fn decode_lenient(raw: &Bytes) -> Result<(Self, Option<LenientTable>), DecodeError> {
        decode_with(raw, LenientTable::decode)
    }

    /// Write property flags (one word, no continuation) and the property list.
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_with(self.headers.is_some(), out, |out| {
            if let Some(h) = &self.headers {
                h.encode(out);
            }
        });
    }

    /// Like [`BasicProperties::encode`], with `headers` in place of the properties' own.
    pub fn encode_lenient(&self, headers: Option<&LenientTable>, out: &mut BytesMut) {
        self.encode_with(headers.is_some(), out, |out| {
            if let Some(h) = headers {
                h.encode(out);
            }
        });
    }

    fn encode_with(&self, has_headers: bool, out: &mut BytesMut, write_headers: impl FnOnce(&mut BytesMut)) {
        let flag = |present: bool, bit: u16| if present { bit } else { 0 };
        let flags = flag(self.content_type.is_some(), CONTENT_TYPE)
            | flag(self.content_encoding.is_some(), CONTENT_ENCODING)
            | flag(has_headers, HEADERS)
            | flag(self.delivery_mode.is_some(), DELIVERY_MODE)
            | flag(self.priority.is_some(), PRIORITY)
            | flag(self.correlation_id.is_some(), CORRELATION_ID)
            | flag(self.reply_to.is_some(), REPLY_TO)
            | flag(self.expiration.is_some(), EXPIRATION)
            | flag(self.message_id.is_some(), MESSAGE_ID)
            | flag(self.timestamp.is_some(), TIMESTAMP)
            | flag(self.kind.is_some(), TYPE)
            | flag(self.user_id.is_some(), USER_ID)
            | flag(self.app_id.is_some(), APP_ID)
            | flag(self.cluster_id.is_some(), CLUSTER_ID);
        out.put_u16(flags);
        let put_s = |out: &mut BytesMut, v: &Option<ShortStr>| {
            if let Some(v) = v {
                put_shortstr(out, v);
            }
        };
        put_s(out, &self.content_type);
        put_s(out, &self.content_encoding);
        write_headers(out);
        if let Some(v) = self.delivery_mode {
            out.put_u8(v);
        }
        if let Some(v) = self.priority {
            out.put_u8(v);
        }
        put_s(out, &self.correlation_id);
        put_s(out, &self.reply_to);
        put_s(out, &self.expiration);
        put_s(out, &self.message_id);
        if let Some(v) = self.timestamp {
            out.put_u64(v);
        }
        put_s(out, &self.kind);
        put_s(out, &self.user_id);
        put_s(out, &self.app_id);
        put_s(out, &self.cluster_id);
    }
}

/// The properties without their headers, and the headers as `read_headers` reads them.
fn decode_with<H>(
    raw: &Bytes,
    read_headers: fn(&mut Bytes) -> Result<H, DecodeError>,
) -> Result<(BasicProperties, Option<H>), DecodeError> {
    let mut buf = raw.clone();
    let flags = get_u16(&mut buf)?;
    let mut more = flags & CONTINUATION != 0;
    while more {
        more = get_u16(&mut buf)? & CONTINUATION != 0;
    }
    let b = &mut buf;
    let s = |b: &mut Bytes, bit| -> Result<Option<ShortStr>, DecodeError> {
        if flags & bit != 0 {
            get_shortstr(b).map(Some)
        } else {
            Ok(None)
        }
    };
    let o = |b: &mut Bytes, bit| -> Result<Option<u8>, DecodeError> {
        if flags & bit != 0 {
            get_u8(b).map(Some)
        } else {
            Ok(None)
        }
    };
    let content_type = s(b, CONTENT_TYPE)?;
    let content_encoding = s(b, CONTENT_ENCODING)?;
    let headers = if flags & HEADERS != 0 { Some(read_headers(b)?) } else { None };
    // Fields are read in the order written: the property list's order.
    let props = BasicProperties {
        content_type,
        content_encoding,
        headers: None,
        delivery_mode: o(b, DELIVERY_MODE)?,
        priority: o(b, PRIORITY)?,
        correlation_id: s(b, CORRELATION_ID)?,
        reply_to: s(b, REPLY_TO)?,
        expiration: s(b, EXPIRATION)?,
        message_id: s(b, MESSAGE_ID)?,
        timestamp: if flags & TIMESTAMP != 0 { Some(get_u64(b)?) } else { None },
        kind: s(b, TYPE)?,
        user_id: s(b, USER_ID)?,
        app_id: s(b, APP_ID)?,
        cluster_id: s(b, CLUSTER_ID)?,
    };
    if !buf.is_empty() {
        return Err(DecodeError::TrailingBytes(buf.len()));
    }
    Ok((props, headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::{arb_shortstr, arb_table};
    use proptest::option::of;
    use proptest::prelude::*;

    fn arb_props() -> impl Strategy<Value = BasicProperties> {
        (
            (of(arb_shortstr()), of(arb_shortstr()), of(arb_table())),
            (of(any::<u8>()), of(any::<u8>()), of(arb_shortstr()), of(arb_shortstr())),
            (of(arb_shortstr()), of(arb_shortstr()), of(any::<u64>()), of(arb_shortstr())),
            (of(arb_shortstr()), of(arb_shortstr()), of(arb_shortstr())),
        )
            .prop_map(|((a, b, c), (d, e, f, g), (h, i, j, k), (l, m, n))| BasicProperties {
                content_type: a,
                content_encoding: b,
                headers: c,
                delivery_mode: d,
                priority: e,
                correlation_id: f,
                reply_to: g,
                expiration: h,
                message_id: i,
                timestamp: j,
                kind: k,
                user_id: l,
                app_id: m,
                cluster_id: n,
            })
    }

    #[test]
    fn empty_and_known_encoding() {
        let mut out = BytesMut::new();
        BasicProperties::default().encode(&mut out);
        assert_eq!(&out[..], b"\x00\x00");
        let p = BasicProperties {
            content_type: Some("text/plain".into()),
            delivery_mode: Some(2),
            ..Default::default()
        };
        let mut out = BytesMut::new();
        p.encode(&mut out);
        assert_eq!(&out[..], b"\x90\x00\x0atext/plain\x02");
        assert_eq!(BasicProperties::decode(&out.freeze()), Ok(p));
    }

    #[test]
    fn continuation_words_and_reserved_bit_are_skipped() {
        let raw = Bytes::from_static(b"\x10\x03\x00\x00\x02");
        let p = BasicProperties::decode(&raw).unwrap();
        assert_eq!(p.delivery_mode, Some(2));
    }

    #[test]
    fn errors() {
        assert_eq!(BasicProperties::decode(&Bytes::from_static(b"\x10")), Err(DecodeError::Truncated));
        assert_eq!(BasicProperties::decode(&Bytes::from_static(b"\x10\x00")), Err(DecodeError::Truncated));
        assert_eq!(
            BasicProperties::decode(&Bytes::from_static(b"\x00\x00\x01")),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    proptest! {
        #[test]
        fn roundtrip(p in arb_props()) {
            let mut out = BytesMut::new();
            p.encode(&mut out);
            prop_assert_eq!(BasicProperties::decode(&out.freeze()), Ok(p));
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = BasicProperties::decode(&Bytes::from(data.clone()));
            let _ = BasicProperties::decode_lenient(&Bytes::from(data));
        }

        /// What decodes, decodes the same leniently, and the lenient form writes the same bytes.
        #[test]
        fn lenient_decoding_agrees(p in arb_props()) {
            let mut out = BytesMut::new();
            p.encode(&mut out);
            let raw = out.freeze();
            let (rest, headers) = BasicProperties::decode_lenient(&raw).unwrap();
            prop_assert_eq!(&rest, &BasicProperties { headers: None, ..p.clone() });
            prop_assert_eq!(headers.is_some(), p.headers.is_some());
            let mut again = BytesMut::new();
            rest.encode_lenient(headers.as_ref(), &mut again);
            prop_assert_eq!(again.freeze(), raw);
        }
    }

    #[test]
    fn raw_delivery_mode_matches_decoding() {
        let cases = [
            BasicProperties::default(),
            BasicProperties { delivery_mode: Some(2), ..Default::default() },
            BasicProperties {
                content_type: Some("text/plain".into()),
                content_encoding: Some("gzip".into()),
                headers: Some(crate::FieldTable(vec![("k".into(), crate::FieldValue::I32(7))])),
                delivery_mode: Some(1),
                priority: Some(3),
                ..Default::default()
            },
        ];
        for props in cases {
            let mut raw = BytesMut::new();
            props.encode(&mut raw);
            assert_eq!(raw_delivery_mode(&raw), props.delivery_mode, "{props:?}");
        }
        assert_eq!(raw_delivery_mode(&[0x10]), None, "truncated input is not an error");
    }
}
