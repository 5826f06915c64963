//! AMQP errors as the peer sees them: a reply code, a text and the method that failed; and the
//! reply codes themselves. A soft code closes only the channel, a hard one the connection (see
//! [`AmqpError::is_hard`]).

use warren_protocol::Method;

/// An error that closes a channel (soft) or the whole connection (hard).
///
/// `text` is the part a person reads; the wire text is `"{CODE_NAME} - {text}"`, as RabbitMQ sends it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} - {text}", code_name(*.code))]
pub struct AmqpError {
    /// The reply code, one of this module's constants.
    pub code: u16,
    /// The text after the code name.
    pub text: String,
    /// The class id of the method that failed; 0 when no method did.
    pub class_id: u16,
    /// The method id of the method that failed; 0 when no method did.
    pub method_id: u16,
}

/// Soft: a message body larger than the server accepts.
pub const CONTENT_TOO_LARGE: u16 = 311;
/// Soft: a mandatory message reached no queue (the reply code of its basic.return).
pub const NO_ROUTE: u16 = 312;
/// Soft: an immediate message found no consumer to take it.
pub const NO_CONSUMERS: u16 = 313;
/// Hard: the broker closed the connection itself (an operator, or a shutdown).
pub const CONNECTION_FORCED: u16 = 320;
/// Hard: an invalid vhost path (unused: an unknown vhost gets [`NOT_ALLOWED`], as in RabbitMQ).
pub const INVALID_PATH: u16 = 402;
/// Soft: the client may not do this (a reserved name, the default or an internal exchange, a
/// queue with an exclusive consumer); also a refused login, on the connection.
pub const ACCESS_REFUSED: u16 = 403;
/// Soft: the entity the client named does not exist.
pub const NOT_FOUND: u16 = 404;
/// Soft: the queue is exclusive to another connection.
pub const RESOURCE_LOCKED: u16 = 405;
/// Soft: a precondition of the method failed (inequivalent arguments, a queue in use...).
pub const PRECONDITION_FAILED: u16 = 406;
/// Hard: a frame that does not decode.
pub const FRAME_ERROR: u16 = 501;
/// Hard: a frame with illegal values in its fields.
pub const SYNTAX_ERROR: u16 = 502;
/// Hard: a method the server does not accept in this sequence or state.
pub const COMMAND_INVALID: u16 = 503;
/// Hard: a method on a channel that is not open.
pub const CHANNEL_ERROR: u16 = 504;
/// Hard: a frame not expected here (usually around a content header and body).
pub const UNEXPECTED_FRAME: u16 = 505;
/// Hard: the server lacks the resources to complete the method.
pub const RESOURCE_ERROR: u16 = 506;
/// Hard: something the server does not permit (an unknown or forbidden vhost, tune values out of
/// range, too many channels).
pub const NOT_ALLOWED: u16 = 530;
/// Hard: functionality the server does not implement.
pub const NOT_IMPLEMENTED: u16 = 540;
/// Hard: the server failed to complete the method because of an internal error.
pub const INTERNAL_ERROR: u16 = 541;

/// The spec's name of a reply code, as RabbitMQ prefixes reply texts with it.
pub fn code_name(code: u16) -> &'static str {
    match code {
        200 => "OK",
        CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
        NO_ROUTE => "NO_ROUTE",
        NO_CONSUMERS => "NO_CONSUMERS",
        CONNECTION_FORCED => "CONNECTION_FORCED",
        INVALID_PATH => "INVALID_PATH",
        ACCESS_REFUSED => "ACCESS_REFUSED",
        NOT_FOUND => "NOT_FOUND",
        RESOURCE_LOCKED => "RESOURCE_LOCKED",
        PRECONDITION_FAILED => "PRECONDITION_FAILED",
        FRAME_ERROR => "FRAME_ERROR",
        SYNTAX_ERROR => "SYNTAX_ERROR",
        COMMAND_INVALID => "COMMAND_INVALID",
        CHANNEL_ERROR => "CHANNEL_ERROR",
        UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        RESOURCE_ERROR => "RESOURCE_ERROR",
        NOT_ALLOWED => "NOT_ALLOWED",
        NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        INTERNAL_ERROR => "INTERNAL_ERROR",
        _ => "ERROR",
    }
}

impl AmqpError {
    /// An error with `code` and `text`, tied to no method (see [`AmqpError::during`]).
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        AmqpError { code, text: text.into(), class_id: 0, method_id: 0 }
    }

    /// Records the method that caused the error, for the close frame.
    pub fn during(mut self, method: &Method) -> Self {
        self.class_id = method.class_id();
        self.method_id = method.method_id();
        self
    }

    /// Records the failing method by class and method id.
    pub fn at(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// Hard errors close the connection; the others close only the channel.
    pub fn is_hard(&self) -> bool {
        !matches!(
            self.code,
            CONTENT_TOO_LARGE
                | NO_ROUTE
                | NO_CONSUMERS
                | ACCESS_REFUSED
                | NOT_FOUND
                | RESOURCE_LOCKED
                | PRECONDITION_FAILED
        )
    }

    /// The reply text as sent on the wire: one that does not fit a shortstr keeps its first
    /// 252 bytes and ends with "...", as RabbitMQ cuts it.
    pub fn reply_text(&self) -> String {
        let mut text = self.to_string();
        if text.len() > 255 {
            let mut cut = 252;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        text
    }

    /// A [`NOT_FOUND`] error with `text`.
    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(NOT_FOUND, text)
    }
    /// A [`PRECONDITION_FAILED`] error with `text`.
    pub fn precondition_failed(text: impl Into<String>) -> Self {
        Self::new(PRECONDITION_FAILED, text)
    }
    /// An [`ACCESS_REFUSED`] error with `text`.
    pub fn access_refused(text: impl Into<String>) -> Self {
        Self::new(ACCESS_REFUSED, text)
    }
    /// A [`RESOURCE_LOCKED`] error with `text`.
    pub fn resource_locked(text: impl Into<String>) -> Self {
        Self::new(RESOURCE_LOCKED, text)
    }
    /// A [`NOT_ALLOWED`] error with `text`.
    pub fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(NOT_ALLOWED, text)
    }
    /// A [`NOT_IMPLEMENTED`] error with `text`.
    pub fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(NOT_IMPLEMENTED, text)
    }
    /// A [`COMMAND_INVALID`] error with `text`.
    pub fn command_invalid(text: impl Into<String>) -> Self {
        Self::new(COMMAND_INVALID, text)
    }
    /// A [`CHANNEL_ERROR`] error with `text`.
    pub fn channel_error(text: impl Into<String>) -> Self {
        Self::new(CHANNEL_ERROR, text)
    }
    /// An [`UNEXPECTED_FRAME`] error with `text`.
    pub fn unexpected_frame(text: impl Into<String>) -> Self {
        Self::new(UNEXPECTED_FRAME, text)
    }
    /// A [`FRAME_ERROR`] error with `text`.
    pub fn frame_error(text: impl Into<String>) -> Self {
        Self::new(FRAME_ERROR, text)
    }
    /// A [`SYNTAX_ERROR`] error with `text`.
    pub fn syntax_error(text: impl Into<String>) -> Self {
        Self::new(SYNTAX_ERROR, text)
    }
    /// An [`INTERNAL_ERROR`] error with `text`.
    pub fn internal_error(text: impl Into<String>) -> Self {
        Self::new(INTERNAL_ERROR, text)
    }
    /// RabbitMQ's 320 for connections the broker closes itself, e.g. `reason` "shutdown".
    pub fn broker_forced(reason: &str) -> Self {
        Self::new(CONNECTION_FORCED, format!("broker forced connection closure with reason '{reason}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_text_is_prefixed_with_the_code_name() {
        let e = AmqpError::not_found("no queue 'q' in vhost '/'");
        assert_eq!(e.reply_text(), "NOT_FOUND - no queue 'q' in vhost '/'");
        assert!(!e.is_hard());
        assert!(AmqpError::frame_error("x").is_hard());
    }

    #[test]
    fn long_texts_are_cut_to_a_shortstr() {
        let e = AmqpError::precondition_failed("é".repeat(300));
        assert!(e.reply_text().len() <= 255);
    }
}
