//! Frame envelopes: the constants of AMQP 0-9-1 framing, builders of whole frames, and
//! [`Frame`], one frame as read back.

use crate::{R, W};

/// What a client sends before its first frame: `AMQP` and protocol version 0-9-1.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// Frame type of method frames.
pub const FRAME_METHOD: u8 = 1;
/// Frame type of content header frames.
pub const FRAME_HEADER: u8 = 2;
/// Frame type of content body frames.
pub const FRAME_BODY: u8 = 3;
/// Frame type of heartbeat frames.
pub const FRAME_HEARTBEAT: u8 = 8;
/// The octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;
/// Bytes before a frame's payload: type, channel, payload size.
pub const FRAME_HEAD_LEN: usize = 7;
/// Bytes a frame adds to its payload (head and frame-end): a body frame under frame-max N
/// carries at most N - 8 bytes.
pub const FRAME_OVERHEAD: usize = FRAME_HEAD_LEN + 1;

/// The class of basic.*, whose content headers are the only ones a broker takes.
const CLASS_BASIC: u16 = 60;

/// A whole frame of any type, ended by [`FRAME_END`].
pub fn frame(ty: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + FRAME_OVERHEAD);
    v.push(ty);
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(FRAME_END);
    v
}

/// A method frame: class-id and method-id, then `args` as given.
pub fn method_frame(channel: u16, class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    frame(FRAME_METHOD, channel, &W::new().u16(class).u16(method).bytes(args).build())
}

/// A basic content header frame with no properties.
pub fn content_header_frame(channel: u16, body_size: u64) -> Vec<u8> {
    content_header_frame_with(channel, body_size, 0, &[])
}

/// A basic content header frame with these property flags and encoded property list.
pub fn content_header_frame_with(channel: u16, body_size: u64, flags: u16, properties: &[u8]) -> Vec<u8> {
    let payload = W::new().u16(CLASS_BASIC).u16(0).u64(body_size).u16(flags).bytes(properties).build();
    frame(FRAME_HEADER, channel, &payload)
}

/// `body` as body frames of at most `max_payload` bytes each (none for an empty body).
pub fn body_frames(channel: u16, body: &[u8], max_payload: usize) -> Vec<u8> {
    body.chunks(max_payload).flat_map(|chunk| frame(FRAME_BODY, channel, chunk)).collect()
}

/// A heartbeat frame (channel 0, empty payload).
pub fn heartbeat_frame() -> Vec<u8> {
    frame(FRAME_HEARTBEAT, 0, &[])
}

/// One frame as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame type octet ([`FRAME_METHOD`], [`FRAME_HEADER`]…).
    pub ty: u8,
    /// The channel the frame was sent on.
    pub channel: u16,
    /// The payload, between the head and the frame end.
    pub payload: Vec<u8>,
}

impl Frame {
    /// (class-id, method-id) of a method frame.
    pub fn method_id(&self) -> Option<(u16, u16)> {
        if self.ty != FRAME_METHOD || self.payload.len() < 4 {
            return None;
        }
        let mut r = R::new(&self.payload);
        Some((r.u16(), r.u16()))
    }

    /// Reader over what follows the first four payload bytes: a method's arguments, or a
    /// content header's body size and properties (after class-id and weight).
    pub fn args(&self) -> R<'_> {
        R::new(&self.payload[4.min(self.payload.len())..])
    }
}

/// The payload size a frame head announces.
pub fn payload_len(head: &[u8; FRAME_HEAD_LEN]) -> usize {
    u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize
}

/// Splits the first frame off `buf`: the frame and how many bytes it took, or None while `buf`
/// holds only part of one. Panics on a wrong frame-end octet (a broker must never send one).
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let head: &[u8; FRAME_HEAD_LEN] = buf.get(..FRAME_HEAD_LEN)?.try_into().unwrap();
    let size = payload_len(head);
    let end = FRAME_HEAD_LEN + size;
    let frame_end = *buf.get(end)?;
    assert_eq!(frame_end, FRAME_END, "frame without frame-end (head {head:?})");
    let frame = Frame {
        ty: head[0],
        channel: u16::from_be_bytes([head[1], head[2]]),
        payload: buf[FRAME_HEAD_LEN..end].to_vec(),
    };
    Some((frame, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_as_written() {
        let mut buf = method_frame(3, 20, 40, &W::new().u16(200).shortstr("bye").build());
        buf.extend(heartbeat_frame());
        let (f, n) = parse_frame(&buf).expect("a whole frame");
        assert_eq!((f.ty, f.channel, f.method_id()), (FRAME_METHOD, 3, Some((20, 40))));
        let mut a = f.args();
        assert_eq!((a.u16(), a.shortstr().as_str()), (200, "bye"));
        assert!(a.is_empty());
        let (hb, m) = parse_frame(&buf[n..]).expect("the heartbeat");
        assert_eq!((hb.ty, hb.channel, hb.payload.len(), n + m), (FRAME_HEARTBEAT, 0, 0, buf.len()));
    }

    #[test]
    fn a_partial_frame_is_not_split_off() {
        let buf = frame(FRAME_BODY, 1, b"hello");
        for cut in 0..buf.len() {
            assert_eq!(parse_frame(&buf[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn body_frames_respect_the_payload_limit() {
        let buf = body_frames(1, &[7; 10], 4);
        let mut sizes = Vec::new();
        let mut rest = &buf[..];
        while let Some((f, n)) = parse_frame(rest) {
            sizes.push(f.payload.len());
            rest = &rest[n..];
        }
        assert_eq!(sizes, [4, 4, 2]);
        assert!(body_frames(1, &[], 4).is_empty());
    }
}
