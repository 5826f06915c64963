//! Framing errors, and the AMQP reply code each (and each decode error) maps to.

use crate::constants::{FRAME_ERROR, NOT_IMPLEMENTED, SYNTAX_ERROR};
use crate::DecodeError;

/// A frame could not be parsed. Every variant is a connection error.
///
/// Variants carry the frame type and payload bytes RabbitMQ quotes in its reply texts.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FrameError {
    /// `size` is the declared payload size; `max` the negotiated frame_max (envelope included).
    #[error("frame of type {frame_type} with a {size}-byte payload exceeds frame_max {max}")]
    TooLarge {
        /// The frame's type octet.
        frame_type: u8,
        /// The payload size the frame declares.
        size: u32,
        /// The negotiated frame_max.
        max: u32,
    },
    /// The octet after the payload is not [`FRAME_END`](crate::constants::FRAME_END).
    #[error("bad frame end octet {end:#04x} (expected 0xce)")]
    BadFrameEnd {
        /// The frame's type octet.
        frame_type: u8,
        /// The frame's payload.
        payload: bytes::Bytes,
        /// The octet found in place of the frame end.
        end: u8,
    },
    /// An unknown frame type, or a method frame too short to name its method.
    #[error("unknown frame type {frame_type}")]
    UnknownFrame {
        /// The frame's type octet.
        frame_type: u8,
        /// The frame's payload.
        payload: bytes::Bytes,
    },
    /// Method arguments that do not decode.
    #[error("bad arguments for method {class_id}.{method_id}: {error}")]
    Method {
        /// The class id of the method.
        class_id: u16,
        /// The method id of the method.
        method_id: u16,
        /// The payload after the class and method ids.
        arguments: bytes::Bytes,
        /// Why the arguments do not decode.
        error: DecodeError,
    },
    /// A content header frame shorter than its fixed fields (why it does not decode).
    #[error("bad content header frame: {0}")]
    Header(DecodeError),
    /// A heartbeat frame must have an empty payload.
    #[error("heartbeat frame with {0} bytes of payload")]
    HeartbeatPayload(u32),
}

impl FrameError {
    /// Reply code for the `connection.close` sent in response.
    ///
    /// Follows RabbitMQ where it gives an answer: framing problems, an
    /// unknown frame type, and method arguments that cannot be decoded
    /// (truncated, trailing bytes, malformed UTF-8) are `FRAME_ERROR` (501),
    /// as RabbitMQ's `rabbit_reader` / `rabbit_framing` raise `frame_error`
    /// for all of them. Two cases where RabbitMQ merely crashes the
    /// connection process get spec-based codes: an unknown field-table value
    /// type (or excessive nesting) is `SYNTAX_ERROR` (502, "illegal values
    /// for one or more fields"), an unknown class or method id is
    /// `NOT_IMPLEMENTED` (540).
    pub fn reply_code(&self) -> u16 {
        match self {
            FrameError::Method { error: e, .. } | FrameError::Header(e) => match e {
                DecodeError::UnknownClass(_) | DecodeError::UnknownMethod { .. } => NOT_IMPLEMENTED,
                DecodeError::BadFieldType(_) | DecodeError::TooDeep(_) => SYNTAX_ERROR,
                DecodeError::Truncated | DecodeError::InvalidUtf8 | DecodeError::TrailingBytes(_) => {
                    FRAME_ERROR
                }
            },
            FrameError::TooLarge { .. }
            | FrameError::BadFrameEnd { .. }
            | FrameError::UnknownFrame { .. }
            | FrameError::HeartbeatPayload(_) => FRAME_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method_error(error: DecodeError) -> FrameError {
        FrameError::Method { class_id: 60, method_id: 40, arguments: bytes::Bytes::new(), error }
    }

    #[test]
    fn reply_codes() {
        let payload = bytes::Bytes::new();
        assert_eq!(
            FrameError::BadFrameEnd { frame_type: 1, payload: payload.clone(), end: 0 }.reply_code(),
            501
        );
        assert_eq!(FrameError::UnknownFrame { frame_type: 9, payload }.reply_code(), 501);
        assert_eq!(FrameError::TooLarge { frame_type: 3, size: 1, max: 0 }.reply_code(), 501);
        assert_eq!(method_error(DecodeError::Truncated).reply_code(), 501);
        assert_eq!(method_error(DecodeError::BadFieldType(b'z')).reply_code(), 502);
        assert_eq!(method_error(DecodeError::UnknownClass(7)).reply_code(), 540);
        assert_eq!(
            method_error(DecodeError::UnknownMethod { class_id: 60, method_id: 99 }).reply_code(),
            540
        );
    }

    #[test]
    fn messages_are_readable() {
        assert_eq!(DecodeError::BadFieldType(b'z').to_string(), "bad field value type 'z' (0x7a)");
    }
}
