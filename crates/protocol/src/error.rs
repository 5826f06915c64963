//! Decode and framing errors, and the AMQP reply code each maps to.

use crate::constants::{FRAME_ERROR, NOT_IMPLEMENTED, SYNTAX_ERROR};

/// A method, field table, or property list could not be decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DecodeError {
    #[error("truncated input")]
    Truncated,
    #[error("unknown class id {0}")]
    UnknownClass(u16),
    #[error("unknown method id {method_id} for class id {class_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    #[error("bad field value type {:?} ({:#04x})", char::from(*.0), .0)]
    BadFieldType(u8),
    #[error("invalid UTF-8 in short string")]
    InvalidUtf8,
    #[error("{0} trailing bytes after the last argument")]
    TrailingBytes(usize),
    #[error("field tables or arrays nested deeper than {0} levels")]
    TooDeep(usize),
}

/// A frame could not be parsed. Every variant is a connection error.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FrameError {
    /// `size` is the declared total frame size (payload + 8 bytes of envelope).
    #[error("frame of {size} bytes exceeds frame_max {max}")]
    TooLarge { size: u32, max: u32 },
    #[error("bad frame end octet {0:#04x} (expected 0xce)")]
    BadFrameEnd(u8),
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    #[error("bad method frame: {0}")]
    Method(DecodeError),
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
            FrameError::Method(e) | FrameError::Header(e) => match e {
                DecodeError::UnknownClass(_) | DecodeError::UnknownMethod { .. } => NOT_IMPLEMENTED,
                DecodeError::BadFieldType(_) | DecodeError::TooDeep(_) => SYNTAX_ERROR,
                DecodeError::Truncated | DecodeError::InvalidUtf8 | DecodeError::TrailingBytes(_) => {
                    FRAME_ERROR
                }
            },
            FrameError::TooLarge { .. }
            | FrameError::BadFrameEnd(_)
            | FrameError::UnknownFrameType(_)
            | FrameError::HeartbeatPayload(_) => FRAME_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes() {
        assert_eq!(FrameError::BadFrameEnd(0).reply_code(), 501);
        assert_eq!(FrameError::UnknownFrameType(9).reply_code(), 501);
        assert_eq!(FrameError::TooLarge { size: 1, max: 0 }.reply_code(), 501);
        assert_eq!(FrameError::Method(DecodeError::Truncated).reply_code(), 501);
        assert_eq!(FrameError::Method(DecodeError::BadFieldType(b'z')).reply_code(), 502);
        assert_eq!(FrameError::Method(DecodeError::UnknownClass(7)).reply_code(), 540);
        let e = DecodeError::UnknownMethod { class_id: 60, method_id: 99 };
        assert_eq!(FrameError::Method(e).reply_code(), 540);
    }

    #[test]
    fn messages_are_readable() {
        assert_eq!(DecodeError::BadFieldType(b'z').to_string(), "bad field value type 'z' (0x7a)");
    }
}
