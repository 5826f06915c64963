//! RabbitMQ's frame error texts quote frame types and payloads the way Erlang prints them;
//! clients and operators match on these texts, so Warren writes them the same way.

use warren_protocol::erlang::binary;
use warren_protocol::FrameError;

use crate::error::{AmqpError, FRAME_ERROR};

/// "type T, all octets = <<...>>" (the first 16 octets of longer payloads), as RabbitMQ's
/// reader describes a bad frame.
pub(crate) fn frame_snippet(frame_type: u8, payload: &[u8]) -> String {
    let (which, shown) = if payload.len() <= 16 { ("all", payload) } else { ("first", &payload[..16]) };
    format!("type {frame_type}, {which} octets = {}", binary(shown))
}

/// The connection.close RabbitMQ sends for a frame that cannot be parsed.
pub(crate) fn frame_error(error: &FrameError) -> AmqpError {
    let code = error.reply_code();
    match error {
        FrameError::TooLarge { frame_type, size, max } => AmqpError::new(
            FRAME_ERROR,
            format!(
                "{}: {{frame_too_large,{size},{}}}",
                frame_snippet(*frame_type, &[]),
                max.saturating_sub(warren_protocol::FRAME_OVERHEAD as u32)
            ),
        ),
        FrameError::BadFrameEnd { frame_type, payload, end } => AmqpError::new(
            FRAME_ERROR,
            format!("{}: {{invalid_frame_end_marker,{end}}}", frame_snippet(*frame_type, payload)),
        ),
        FrameError::UnknownFrame { frame_type, payload } => {
            AmqpError::new(FRAME_ERROR, format!("{}: unknown_frame", frame_snippet(*frame_type, payload)))
        }
        FrameError::Method { class_id, method_id, arguments, error } if code == FRAME_ERROR => {
            let _ = error;
            AmqpError::new(FRAME_ERROR, format!("cannot decode {}", binary(arguments)))
                .at(*class_id, *method_id)
        }
        FrameError::Method { class_id, method_id, error: decode, .. } => {
            AmqpError::new(code, decode.to_string()).at(*class_id, *method_id)
        }
        FrameError::Header(_) | FrameError::HeartbeatPayload(_) => AmqpError::new(code, error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_texts_match_rabbitmq() {
        let e = FrameError::BadFrameEnd { frame_type: 1, payload: vec![0, 20, 0, 10, 0].into(), end: 205 };
        assert_eq!(
            frame_error(&e).reply_text(),
            "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,205}"
        );
        let e = FrameError::TooLarge { frame_type: 3, size: 131_172, max: 131_072 };
        assert_eq!(
            frame_error(&e).reply_text(),
            "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,131172,131064}"
        );
        let e = FrameError::UnknownFrame { frame_type: 7, payload: "xx".into() };
        assert_eq!(
            frame_error(&e).reply_text(),
            "FRAME_ERROR - type 7, all octets = <<\"xx\">>: unknown_frame"
        );
        let e = FrameError::Method {
            class_id: 50,
            method_id: 10,
            arguments: vec![0, 0, 7, 113, 45, 115, 104, 111, 114, 116].into(),
            error: warren_protocol::DecodeError::Truncated,
        };
        let close = frame_error(&e);
        assert_eq!(close.reply_text(), "FRAME_ERROR - cannot decode <<0,0,7,113,45,115,104,111,114,116>>");
        assert_eq!((close.class_id, close.method_id), (50, 10));
    }

    #[test]
    fn long_payloads_show_the_first_16_octets() {
        assert_eq!(frame_snippet(3, &[1; 20]), format!("type 3, first octets = {}", binary(&[1; 16])));
    }
}
