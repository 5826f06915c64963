//! AMQP errors as the peer sees them: a reply code, a text and the method that failed.

use warren_protocol::Method;

/// An error that closes a channel (soft) or the whole connection (hard).
///
/// `text` is the part a person reads; the wire text is `"{CODE_NAME} - {text}"`, as RabbitMQ sends it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} - {text}", code_name(*.code))]
pub struct AmqpError {
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

pub const CONTENT_TOO_LARGE: u16 = 311;
pub const NO_ROUTE: u16 = 312;
pub const NO_CONSUMERS: u16 = 313;
pub const CONNECTION_FORCED: u16 = 320;
pub const INVALID_PATH: u16 = 402;
pub const ACCESS_REFUSED: u16 = 403;
pub const NOT_FOUND: u16 = 404;
pub const RESOURCE_LOCKED: u16 = 405;
pub const PRECONDITION_FAILED: u16 = 406;
pub const FRAME_ERROR: u16 = 501;
pub const SYNTAX_ERROR: u16 = 502;
pub const COMMAND_INVALID: u16 = 503;
pub const CHANNEL_ERROR: u16 = 504;
pub const UNEXPECTED_FRAME: u16 = 505;
pub const RESOURCE_ERROR: u16 = 506;
pub const NOT_ALLOWED: u16 = 530;
pub const NOT_IMPLEMENTED: u16 = 540;
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

    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(NOT_FOUND, text)
    }
    pub fn precondition_failed(text: impl Into<String>) -> Self {
        Self::new(PRECONDITION_FAILED, text)
    }
    pub fn access_refused(text: impl Into<String>) -> Self {
        Self::new(ACCESS_REFUSED, text)
    }
    pub fn resource_locked(text: impl Into<String>) -> Self {
        Self::new(RESOURCE_LOCKED, text)
    }
    pub fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(NOT_ALLOWED, text)
    }
    pub fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(NOT_IMPLEMENTED, text)
    }
    pub fn command_invalid(text: impl Into<String>) -> Self {
        Self::new(COMMAND_INVALID, text)
    }
    pub fn channel_error(text: impl Into<String>) -> Self {
        Self::new(CHANNEL_ERROR, text)
    }
    pub fn unexpected_frame(text: impl Into<String>) -> Self {
        Self::new(UNEXPECTED_FRAME, text)
    }
    pub fn frame_error(text: impl Into<String>) -> Self {
        Self::new(FRAME_ERROR, text)
    }
    pub fn syntax_error(text: impl Into<String>) -> Self {
        Self::new(SYNTAX_ERROR, text)
    }
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
