//! Message encoding for producers (and the sink's deliveries) and the timestamp carried in bodies.
//!
//! Body layout, when the body has at least 16 bytes: bytes 0..8 are the intended send time as
//! Unix nanoseconds (big-endian), bytes 8..16 the marker `WPERF\0\0\x01`; the rest is zeros.
//! A body without the marker (another publisher's message, or --size < 16) gets no latency sample.

use bytes::{BufMut, BytesMut};
use warren_protocol::methods::{BasicDeliver, BasicPublish, Method};
use warren_protocol::{write_body, write_header, write_method, BasicProperties};

pub const MARKER: [u8; 8] = *b"WPERF\0\0\x01";
pub const TIMESTAMP_BYTES: usize = 16;
const CLASS_BASIC: u16 = 60;

/// The send timestamp (Unix ns) of a body written by [`write_timestamp`], from its first bytes.
#[inline]
pub fn body_timestamp(first_chunk: &[u8]) -> Option<u64> {
    let head = first_chunk.get(..TIMESTAMP_BYTES)?;
    if head[8..16] != MARKER {
        return None;
    }
    Some(u64::from_be_bytes(head[..8].try_into().ok()?))
}

#[inline]
fn write_timestamp(body: &mut [u8], unix_ns: u64) {
    if body.len() >= TIMESTAMP_BYTES {
        body[..8].copy_from_slice(&unix_ns.to_be_bytes());
        body[8..16].copy_from_slice(&MARKER);
    }
}

/// The body frames of one message: split at frame_max, the timestamp patched into the first.
#[inline]
fn put_body(out: &mut BytesMut, channel: u16, body: &[u8], max_chunk: usize) {
    for chunk in body.chunks(max_chunk) {
        write_body(out, channel, chunk);
    }
}

fn max_chunk(frame_max: u32) -> usize {
    if frame_max == 0 {
        u32::MAX as usize
    } else {
        (frame_max as usize).saturating_sub(warren_protocol::FRAME_OVERHEAD).max(1)
    }
}

/// Encodes publishes: the method and header frames are encoded once per routing key, so a
/// message costs two memcpys and the timestamp.
pub struct PublishEncoder {
    prefixes: Vec<Vec<u8>>,
    body: Vec<u8>,
    channel: u16,
    max_chunk: usize,
    /// With --unique-keys: where in each prefix the `x-deduplication-header` value's 16 hex
    /// digits are patched, and what is added to the message number to make them.
    unique_key: Option<(usize, u64)>,
}

/// The placeholder value of the `x-deduplication-header` header, patched per message.
const KEY_PLACEHOLDER: &[u8; 16] = b"@@@@@@@@@@@@@@@@";

impl PublishEncoder {
    /// An encoder of messages without deduplication keys.
    pub fn new(
        channel: u16,
        exchange: &str,
        routing_keys: &[String],
        persistent: bool,
        size: usize,
        frame_max: u32,
    ) -> PublishEncoder {
        Self::with_keys(channel, exchange, routing_keys, persistent, size, frame_max, None)
    }

    /// As [`PublishEncoder::new`]; with `unique_keys` (a salt), every message carries a distinct
    /// `x-deduplication-header` value: 16 hex digits of the salt plus the message number.
    pub fn with_keys(
        channel: u16,
        exchange: &str,
        routing_keys: &[String],
        persistent: bool,
        size: usize,
        frame_max: u32,
        unique_keys: Option<u64>,
    ) -> PublishEncoder {
        let headers = unique_keys.map(|_| {
            let mut t = warren_protocol::FieldTable::new();
            let placeholder = bytes::Bytes::from_static(KEY_PLACEHOLDER);
            t.insert("x-deduplication-header", warren_protocol::FieldValue::LongStr(placeholder));
            t
        });
        let props = BasicProperties { delivery_mode: persistent.then_some(2), headers, ..Default::default() };
        let mut raw_props = BytesMut::new();
        props.encode(&mut raw_props);
        let keys: Vec<&str> = if routing_keys.is_empty() {
            vec![""]
        } else {
            routing_keys.iter().map(String::as_str).collect()
        };
        let prefixes: Vec<Vec<u8>> = keys
            .iter()
            .map(|rk| {
                let mut b = BytesMut::new();
                let publish = BasicPublish {
                    exchange: exchange.into(),
                    routing_key: (*rk).into(),
                    ..Default::default()
                };
                write_method(&mut b, channel, &Method::from(publish));
                write_header(&mut b, channel, CLASS_BASIC, size as u64, &raw_props);
                b.to_vec()
            })
            .collect();
        let unique_key = unique_keys.map(|salt| {
            let at = prefixes[0].windows(16).position(|w| w == KEY_PLACEHOLDER).expect("placeholder encoded");
            (at, salt)
        });
        // Routing keys of different lengths would put the value at different offsets: with
        // unique keys, every message uses the first routing key.
        let prefixes = if unique_key.is_some() { prefixes.into_iter().take(1).collect() } else { prefixes };
        PublishEncoder { prefixes, body: vec![0; size], channel, max_chunk: max_chunk(frame_max), unique_key }
    }

    /// Bytes one message takes on the wire.
    #[cfg(test)]
    pub fn wire_size(&self) -> usize {
        let frames = self.body.len().div_ceil(self.max_chunk);
        self.prefixes[0].len() + self.body.len() + frames * warren_protocol::FRAME_OVERHEAD
    }

    /// Appends message number `i` (routing key `i mod keys`) stamped with `unix_ns`.
    #[inline]
    pub fn encode(&mut self, out: &mut BytesMut, i: u64, unix_ns: u64) {
        let prefix = &self.prefixes[(i % self.prefixes.len() as u64) as usize];
        out.reserve(prefix.len() + self.body.len() + 16);
        let start = out.len();
        out.put_slice(prefix);
        if let Some((at, salt)) = self.unique_key {
            let value = salt.wrapping_add(i);
            let digits = &mut out[start + at..start + at + 16];
            for (n, d) in digits.iter_mut().enumerate() {
                *d = b"0123456789abcdef"[((value >> (60 - 4 * n)) & 0xf) as usize];
            }
        }
        write_timestamp(&mut self.body, unix_ns);
        put_body(out, self.channel, &self.body, self.max_chunk);
    }
}

/// Encodes basic.deliver + content for the sink: the method frame is encoded once and only the
/// delivery tag is patched per message.
pub struct DeliverEncoder {
    method: Vec<u8>,
    tag_offset: usize,
    header: Vec<u8>,
    body: Vec<u8>,
    channel: u16,
    max_chunk: usize,
}

impl DeliverEncoder {
    pub fn new(
        channel: u16,
        consumer_tag: &str,
        routing_key: &str,
        size: usize,
        frame_max: u32,
    ) -> DeliverEncoder {
        let mut m = BytesMut::new();
        let d = BasicDeliver {
            consumer_tag: consumer_tag.into(),
            delivery_tag: 0,
            redelivered: false,
            exchange: "".into(),
            routing_key: routing_key.into(),
        };
        write_method(&mut m, channel, &Method::from(d));
        // frame header (7) + class/method (4) + consumer tag (1 + len)
        let tag_offset = 7 + 4 + 1 + consumer_tag.len();
        let mut h = BytesMut::new();
        let mut raw_props = BytesMut::new();
        BasicProperties::default().encode(&mut raw_props);
        write_header(&mut h, channel, CLASS_BASIC, size as u64, &raw_props);
        DeliverEncoder {
            method: m.to_vec(),
            tag_offset,
            header: h.to_vec(),
            body: vec![0; size],
            channel,
            max_chunk: max_chunk(frame_max),
        }
    }

    #[inline]
    pub fn encode(&mut self, out: &mut BytesMut, delivery_tag: u64, unix_ns: u64) {
        self.method[self.tag_offset..self.tag_offset + 8].copy_from_slice(&delivery_tag.to_be_bytes());
        out.reserve(self.method.len() + self.header.len() + self.body.len() + 16);
        out.put_slice(&self.method);
        out.put_slice(&self.header);
        write_timestamp(&mut self.body, unix_ns);
        put_body(out, self.channel, &self.body, self.max_chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::{parse_frame, Frame};

    fn frames(mut buf: BytesMut, frame_max: u32) -> Vec<Frame> {
        let mut v = Vec::new();
        while let Some(f) = parse_frame(&mut buf, frame_max).unwrap() {
            v.push(f);
        }
        assert!(buf.is_empty());
        v
    }

    #[test]
    fn unique_keys_are_patched_into_each_message() {
        let mut e = PublishEncoder::with_keys(1, "dx", &["k".into()], false, 16, 131_072, Some(0xab << 48));
        let mut keys = Vec::new();
        for i in 0..3u64 {
            let mut buf = BytesMut::new();
            e.encode(&mut buf, i, 1);
            let header = frames(buf, 131_072).into_iter().find_map(|f| match f {
                Frame::Header { header, .. } => Some(header.properties),
                _ => None,
            });
            let props = BasicProperties::decode(&header.unwrap()).unwrap();
            let value = props.headers.unwrap().get("x-deduplication-header").cloned().unwrap();
            keys.push(value);
        }
        let hex = |s: &str| warren_protocol::FieldValue::LongStr(bytes::Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(keys, [hex("00ab000000000000"), hex("00ab000000000001"), hex("00ab000000000002")]);
    }

    #[test]
    fn publish_roundtrip_with_timestamp() {
        let keys = vec!["a".to_string(), "b".to_string()];
        let mut e = PublishEncoder::new(1, "ex", &keys, true, 32, 131_072);
        let mut out = BytesMut::new();
        e.encode(&mut out, 0, 111);
        e.encode(&mut out, 1, 222);
        assert_eq!(out.len(), 2 * e.wire_size());
        let f = frames(out, 131_072);
        assert_eq!(f.len(), 6);
        let Frame::Method { channel: 1, method: Method::BasicPublish(p) } = &f[0] else {
            panic!("{:?}", f[0])
        };
        assert_eq!((&*p.exchange, &*p.routing_key), ("ex", "a"));
        let Frame::Header { header, .. } = &f[1] else { panic!() };
        assert_eq!(header.body_size, 32);
        assert_eq!(header.decode_properties().unwrap().delivery_mode, Some(2));
        let Frame::Body { payload, .. } = &f[2] else { panic!() };
        assert_eq!(body_timestamp(payload), Some(111));
        let Frame::Method { method: Method::BasicPublish(p), .. } = &f[3] else { panic!() };
        assert_eq!(&*p.routing_key, "b");
        let Frame::Body { payload, .. } = &f[5] else { panic!() };
        assert_eq!(body_timestamp(payload), Some(222));
    }

    #[test]
    fn large_bodies_are_split_and_small_ones_carry_no_timestamp() {
        let mut e = PublishEncoder::new(3, "", &[], false, 10_000, 4096);
        let mut out = BytesMut::new();
        e.encode(&mut out, 0, 5);
        assert_eq!(out.len(), e.wire_size());
        let f = frames(out, 4096);
        assert_eq!(f.len(), 2 + 3); // 4088 + 4088 + 1824
        let Frame::Header { header, .. } = &f[1] else { panic!() };
        assert_eq!(header.decode_properties().unwrap().delivery_mode, None);
        let Frame::Body { payload, .. } = &f[2] else { panic!() };
        assert_eq!(body_timestamp(payload), Some(5));

        let mut e = PublishEncoder::new(1, "", &["q".into()], false, 8, 0);
        let mut out = BytesMut::new();
        e.encode(&mut out, 0, 5);
        let f = frames(out, 0);
        let Frame::Body { payload, .. } = &f[2] else { panic!() };
        assert_eq!(payload.len(), 8);
        assert_eq!(body_timestamp(payload), None);
        assert_eq!(body_timestamp(&[0u8; 16]), None);
    }

    #[test]
    fn empty_body_has_no_body_frame() {
        let mut e = PublishEncoder::new(1, "", &["q".into()], false, 0, 131_072);
        let mut out = BytesMut::new();
        e.encode(&mut out, 0, 5);
        assert_eq!(frames(out, 0).len(), 2);
    }

    #[test]
    fn deliver_tags_are_patched() {
        let mut e = DeliverEncoder::new(1, "ctag-1", "q", 16, 131_072);
        let mut out = BytesMut::new();
        e.encode(&mut out, 7, 70);
        e.encode(&mut out, 0x0102_0304_0506_0708, 80);
        let f = frames(out, 131_072);
        let Frame::Method { method: Method::BasicDeliver(d), .. } = &f[0] else { panic!() };
        assert_eq!((d.delivery_tag, &*d.consumer_tag, &*d.routing_key), (7, "ctag-1", "q"));
        let Frame::Method { method: Method::BasicDeliver(d), .. } = &f[3] else { panic!() };
        assert_eq!(d.delivery_tag, 0x0102_0304_0506_0708);
        let Frame::Body { payload, .. } = &f[5] else { panic!() };
        assert_eq!(body_timestamp(payload), Some(80));
    }
}
