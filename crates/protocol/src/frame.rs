//! Frame envelope: parsing whole frames off a read buffer (zero copy) and
//! writing method, content header, body and heartbeat frames.
//!
//! Envelope: type (u8), channel (u16), payload size (u32), payload,
//! frame-end octet 0xCE.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::{get_u16, get_u64};
use crate::constants::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};
use crate::methods::Method;
use crate::{BasicProperties, DecodeError, FrameError};

/// Protocol header a client sends before the first frame.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Bytes of envelope around a frame's payload (7-byte header + end octet).
pub const FRAME_OVERHEAD: usize = 8;

/// One parsed frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A method frame.
    Method {
        /// The channel the frame was sent on.
        channel: u16,
        /// The decoded method and its arguments.
        method: Method,
    },
    /// A content header frame.
    Header {
        /// The channel the frame was sent on.
        channel: u16,
        /// The header, properties still raw.
        header: ContentHeader,
    },
    /// A content body frame.
    Body {
        /// The channel the frame was sent on.
        channel: u16,
        /// A zero-copy slice of the read buffer.
        payload: Bytes,
    },
    /// A heartbeat frame.
    Heartbeat {
        /// The channel the frame was sent on (0 from a well-behaved peer).
        channel: u16,
    },
}

/// A content header frame; properties are kept raw (flags + list), zero copy.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentHeader {
    /// The class of the content (60, `basic`, for every method that carries content).
    pub class_id: u16,
    /// Unused by the protocol; 0 when written.
    pub weight: u16,
    /// The total size of the body frames that follow.
    pub body_size: u64,
    /// Property flags and property list, undecoded.
    pub properties: Bytes,
}

impl ContentHeader {
    /// Decodes the raw properties as those of class `basic`.
    pub fn decode_properties(&self) -> Result<BasicProperties, DecodeError> {
        BasicProperties::decode(&self.properties)
    }

    fn decode(mut payload: Bytes) -> Result<Self, DecodeError> {
        let class_id = get_u16(&mut payload)?;
        let weight = get_u16(&mut payload)?;
        let body_size = get_u64(&mut payload)?;
        Ok(ContentHeader { class_id, weight, body_size, properties: payload })
    }
}

/// If `buf` starts with a whole frame, split it off (zero copy) and parse it;
/// `Ok(None)` if more bytes are needed.
///
/// The declared size is checked as soon as the 7-byte header is in, before
/// the rest is buffered: a frame whose total size
/// (payload + 8) exceeds `frame_max` is [`FrameError::TooLarge`]
/// (`frame_max == 0` means no limit). Does not reserve buffer space; the
/// caller decides how much to read. On error the buffer contents are
/// unspecified (the connection must be closed anyway).
pub fn parse_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, FrameError> {
    let Some(&[kind, c0, c1, s0, s1, s2, s3]) = buf.get(..7) else {
        return Ok(None);
    };
    let channel = u16::from_be_bytes([c0, c1]);
    let size = u32::from_be_bytes([s0, s1, s2, s3]);
    let total = u64::from(size) + FRAME_OVERHEAD as u64;
    if frame_max != 0 && total > u64::from(frame_max) {
        return Err(FrameError::TooLarge { frame_type: kind, size, max: frame_max });
    }
    let Ok(total) = usize::try_from(total) else {
        return Err(FrameError::TooLarge { frame_type: kind, size, max: frame_max });
    };
    let Some(&end) = buf.get(total - 1) else {
        return Ok(None);
    };
    let mut payload = buf.split_to(total).freeze();
    payload.advance(7);
    payload.truncate(total - FRAME_OVERHEAD);
    if end != FRAME_END {
        return Err(FrameError::BadFrameEnd { frame_type: kind, payload, end });
    }
    let frame = match kind {
        FRAME_METHOD => {
            let Some(&[a, b, c, d]) = payload.get(..4) else {
                return Err(FrameError::UnknownFrame { frame_type: kind, payload });
            };
            match Method::decode(payload.clone()) {
                Ok(method) => Frame::Method { channel, method },
                Err(error) => {
                    return Err(FrameError::Method {
                        class_id: u16::from_be_bytes([a, b]),
                        method_id: u16::from_be_bytes([c, d]),
                        arguments: payload.slice(4..),
                        error,
                    })
                }
            }
        }
        FRAME_HEADER => {
            Frame::Header { channel, header: ContentHeader::decode(payload).map_err(FrameError::Header)? }
        }
        FRAME_BODY => Frame::Body { channel, payload },
        FRAME_HEARTBEAT => {
            if size != 0 {
                return Err(FrameError::HeartbeatPayload(size));
            }
            Frame::Heartbeat { channel }
        }
        _ => return Err(FrameError::UnknownFrame { frame_type: kind, payload }),
    };
    Ok(Some(frame))
}

/// Write a frame header with a placeholder size; returns the size position.
fn begin(out: &mut BytesMut, kind: u8, channel: u16) -> usize {
    out.put_u8(kind);
    out.put_u16(channel);
    let pos = out.len();
    out.put_u32(0);
    pos
}

/// Patch the size written by [`begin`] and append the frame end.
fn finish(out: &mut BytesMut, size_pos: usize) {
    let size = (out.len() - size_pos - 4) as u32;
    if let Some(slot) = out.get_mut(size_pos..size_pos + 4) {
        slot.copy_from_slice(&size.to_be_bytes());
    }
    out.put_u8(FRAME_END);
}

/// Appends a method frame carrying `method` on `channel`.
pub fn write_method(out: &mut BytesMut, channel: u16, method: &Method) {
    let pos = begin(out, FRAME_METHOD, channel);
    method.encode(out);
    finish(out, pos);
}

/// Content header frame (weight 0); `properties` = raw flags + property list.
pub fn write_header(out: &mut BytesMut, channel: u16, class_id: u16, body_size: u64, properties: &[u8]) {
    out.reserve(FRAME_OVERHEAD + 12 + properties.len());
    out.put_u8(FRAME_HEADER);
    out.put_u16(channel);
    out.put_u32((12 + properties.len()) as u32);
    out.put_u16(class_id);
    out.put_u16(0);
    out.put_u64(body_size);
    out.put_slice(properties);
    out.put_u8(FRAME_END);
}

/// Appends a content body frame; `payload` must fit the negotiated frame_max.
pub fn write_body(out: &mut BytesMut, channel: u16, payload: &[u8]) {
    out.reserve(FRAME_OVERHEAD + payload.len());
    out.put_u8(FRAME_BODY);
    out.put_u16(channel);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.put_u8(FRAME_END);
}

/// Appends what precedes a body frame's payload (type, channel, size), for a caller that sends
/// the payload itself from a shared buffer and then [`FRAME_END`].
pub fn write_body_prefix(out: &mut BytesMut, channel: u16, payload_len: usize) {
    out.reserve(FRAME_OVERHEAD - 1);
    out.put_u8(FRAME_BODY);
    out.put_u16(channel);
    out.put_u32(payload_len as u32);
}

/// The largest body payload per frame for `frame_max` (0 = unlimited).
pub fn max_body_chunk(frame_max: u32) -> usize {
    if frame_max == 0 {
        u32::MAX as usize
    } else {
        (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1)
    }
}

/// Heartbeat frame (always on channel 0).
pub fn write_heartbeat(out: &mut BytesMut) {
    out.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Header frame + body frames, each body frame at most `frame_max` bytes in
/// total (0 = unlimited); no body frame when `body` is empty.
pub fn write_content(
    out: &mut BytesMut,
    channel: u16,
    class_id: u16,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    write_header(out, channel, class_id, body.len() as u64, properties);
    for chunk in body.chunks(max_body_chunk(frame_max)) {
        write_body(out, channel, chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::arbitrary::arbitrary_method;
    use crate::methods::{BasicPublish, ChannelOpen};
    use proptest::prelude::*;

    fn parse_all(mut buf: BytesMut, frame_max: u32) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = parse_frame(&mut buf, frame_max).unwrap() {
            frames.push(f);
        }
        assert!(buf.is_empty());
        frames
    }

    #[test]
    fn heartbeat_roundtrip() {
        let mut out = BytesMut::new();
        write_heartbeat(&mut out);
        assert_eq!(&out[..], b"\x08\x00\x00\x00\x00\x00\x00\xce");
        assert_eq!(parse_all(out, 0), vec![Frame::Heartbeat { channel: 0 }]);
    }

    #[test]
    fn publish_frame_bytes() {
        let m = Method::from(BasicPublish {
            exchange: "x".into(),
            routing_key: "rk".into(),
            mandatory: true,
            ..Default::default()
        });
        let mut out = BytesMut::new();
        write_method(&mut out, 1, &m);
        assert_eq!(&out[..], b"\x01\x00\x01\x00\x00\x00\x0c\x00\x3c\x00\x28\x00\x00\x01x\x02rk\x01\xce");
        assert_eq!(parse_all(out, 0), vec![Frame::Method { channel: 1, method: m }]);
    }

    #[test]
    fn incomplete_needs_more() {
        let mut out = BytesMut::new();
        write_method(&mut out, 3, &ChannelOpen::default().into());
        let full = out.clone();
        for n in 0..full.len() {
            let mut part = BytesMut::from(&full[..n]);
            assert_eq!(parse_frame(&mut part, 0), Ok(None));
            assert_eq!(part.len(), n);
        }
    }

    #[test]
    fn too_large_rejected_before_body_arrives() {
        // Header only, declaring a 1 MiB payload.
        let mut buf = BytesMut::from(&b"\x03\x00\x01\x00\x10\x00\x00"[..]);
        assert_eq!(
            parse_frame(&mut buf, 131_072),
            Err(FrameError::TooLarge { frame_type: 3, size: 1_048_576, max: 131_072 })
        );
        // Exactly frame_max in total is fine.
        let mut out = BytesMut::new();
        write_body(&mut out, 1, &[7; 92]);
        assert_eq!(parse_all(out.clone(), 100).len(), 1);
        let mut out2 = out.clone();
        assert!(matches!(parse_frame(&mut out2, 99), Err(FrameError::TooLarge { size: 92, max: 99, .. })));
    }

    #[test]
    fn bad_frame_end() {
        let mut buf = BytesMut::from(&b"\x08\x00\x00\x00\x00\x00\x00\x00"[..]);
        let err = parse_frame(&mut buf, 0).unwrap_err();
        assert!(matches!(err, FrameError::BadFrameEnd { frame_type: 8, end: 0, .. }), "{err:?}");
    }

    #[test]
    fn unknown_frame_type() {
        let mut buf = BytesMut::from(&b"\x04\x00\x00\x00\x00"[..]);
        assert_eq!(parse_frame(&mut buf, 0), Ok(None));
        buf.extend_from_slice(b"\x00\x00\xce");
        let err = parse_frame(&mut buf, 0).unwrap_err();
        assert!(matches!(err, FrameError::UnknownFrame { frame_type: 4, .. }), "{err:?}");
        // The protocol header sent again mid-stream declares an enormous frame.
        let mut buf = BytesMut::from(&PROTOCOL_HEADER[..]);
        let err = parse_frame(&mut buf, 131_072).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { frame_type: b'A', .. }), "{err:?}");
    }

    #[test]
    fn unknown_method_and_class() {
        let mut buf = BytesMut::from(&b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x63\xce"[..]);
        let err = parse_frame(&mut buf, 0).unwrap_err();
        assert!(matches!(
            err,
            FrameError::Method { error: DecodeError::UnknownMethod { class_id: 60, method_id: 99 }, .. }
        ));
        assert_eq!(err.reply_code(), 540);
        let mut buf = BytesMut::from(&b"\x01\x00\x01\x00\x00\x00\x04\x00\x07\x00\x0a\xce"[..]);
        let err = parse_frame(&mut buf, 0).unwrap_err();
        assert!(matches!(err, FrameError::Method { error: DecodeError::UnknownClass(7), .. }));
    }

    #[test]
    fn bad_field_type_in_method() {
        // queue.declare with arguments table {"k": 'Z'}
        let mut payload = BytesMut::new();
        payload.put_slice(b"\x00\x32\x00\x0a\x00\x00\x01q\x00");
        payload.put_slice(b"\x00\x00\x00\x03\x01kZ");
        let mut buf = BytesMut::new();
        write_body(&mut buf, 1, &payload);
        buf[0] = FRAME_METHOD;
        let err = parse_frame(&mut buf, 0).unwrap_err();
        assert!(matches!(
            err,
            FrameError::Method { class_id: 50, method_id: 10, error: DecodeError::BadFieldType(b'Z'), .. }
        ));
        assert_eq!(err.reply_code(), 502);
    }

    #[test]
    fn short_header_and_heartbeat_payload() {
        let mut buf = BytesMut::new();
        write_body(&mut buf, 1, &[0; 11]);
        buf[0] = FRAME_HEADER;
        assert_eq!(parse_frame(&mut buf, 0), Err(FrameError::Header(DecodeError::Truncated)));
        let mut buf = BytesMut::new();
        write_body(&mut buf, 0, &[0; 1]);
        buf[0] = FRAME_HEARTBEAT;
        assert_eq!(parse_frame(&mut buf, 0), Err(FrameError::HeartbeatPayload(1)));
    }

    #[test]
    fn content_is_split_and_zero_copy() {
        let props = BasicProperties { delivery_mode: Some(2), ..Default::default() };
        let mut raw = BytesMut::new();
        props.encode(&mut raw);
        let body: Vec<u8> = (0..250u8).collect();
        let mut out = BytesMut::new();
        write_content(&mut out, 5, 60, &raw, &body, 108);
        let start = out.as_ptr() as usize;
        let frames = parse_all(out, 108);
        assert_eq!(frames.len(), 4); // header + 100 + 100 + 50
        let Frame::Header { channel: 5, header } = &frames[0] else { panic!() };
        assert_eq!(header.body_size, 250);
        assert_eq!(header.class_id, 60);
        assert_eq!(header.decode_properties(), Ok(props));
        let mut got = Vec::new();
        for f in &frames[1..] {
            let Frame::Body { channel: 5, payload } = f else { panic!() };
            assert!(payload.len() <= 100);
            // Body slices point into the original read buffer.
            assert!(payload.as_ptr() as usize >= start);
            got.extend_from_slice(payload);
        }
        assert_eq!(got, body);
        let mut out = BytesMut::new();
        write_content(&mut out, 5, 60, &raw, &[], 108);
        assert_eq!(parse_all(out, 0).len(), 1);
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (any::<u16>(), arbitrary_method())
                .prop_map(|(channel, method)| Frame::Method { channel, method }),
            (
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..32)
            )
                .prop_map(|(channel, class_id, weight, body_size, p)| Frame::Header {
                    channel,
                    header: ContentHeader { class_id, weight, body_size, properties: Bytes::from(p) },
                }),
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64))
                .prop_map(|(channel, p)| Frame::Body { channel, payload: Bytes::from(p) }),
            any::<u16>().prop_map(|channel| Frame::Heartbeat { channel }),
        ]
    }

    fn write_frame(out: &mut BytesMut, f: &Frame) {
        match f {
            Frame::Method { channel, method } => write_method(out, *channel, method),
            Frame::Header { channel, header } => {
                let pos = out.len();
                write_header(out, *channel, header.class_id, header.body_size, &header.properties);
                out[pos + 9..pos + 11].copy_from_slice(&header.weight.to_be_bytes());
            }
            Frame::Body { channel, payload } => write_body(out, *channel, payload),
            Frame::Heartbeat { channel } => {
                let pos = out.len();
                write_heartbeat(out);
                out[pos + 1..pos + 3].copy_from_slice(&channel.to_be_bytes());
            }
        }
    }

    proptest! {
        #[test]
        fn frames_roundtrip(frames in proptest::collection::vec(arb_frame(), 0..8)) {
            let mut out = BytesMut::new();
            for f in &frames {
                write_frame(&mut out, f);
            }
            prop_assert_eq!(parse_all(out, 0), frames);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), max in any::<u32>()) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = parse_frame(&mut buf, max) {}
        }

        #[test]
        fn mutated_frames_never_panic(
            frames in proptest::collection::vec(arb_frame(), 1..4),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let mut out = BytesMut::new();
            for f in &frames {
                write_frame(&mut out, f);
            }
            for (i, v) in flips {
                let i = i.index(out.len());
                out[i] = v;
            }
            while let Ok(Some(_)) = parse_frame(&mut out, 0) {}
        }

        #[test]
        fn truncated_frames_need_more(f in arb_frame(), cut in any::<prop::sample::Index>()) {
            let mut out = BytesMut::new();
            write_frame(&mut out, &f);
            let n = cut.index(out.len());
            let mut part = BytesMut::from(&out[..n]);
            prop_assert_eq!(parse_frame(&mut part, 0), Ok(None));
        }
    }
}
