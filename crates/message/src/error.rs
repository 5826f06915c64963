//! What goes wrong decoding a message's parts (and, in `warren-protocol`, a method's).

/// A method, field table, or property list could not be decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("truncated input")]
    Truncated,
    /// A method frame names a class id the spec does not have.
    #[error("unknown class id {0}")]
    UnknownClass(u16),
    /// A method frame names a method id its (known) class does not have.
    #[error("unknown method id {method_id} for class id {class_id}")]
    UnknownMethod {
        /// The class id read from the frame.
        class_id: u16,
        /// The method id read from the frame.
        method_id: u16,
    },
    /// A field-table value has a type octet outside RabbitMQ's set (the octet read).
    #[error("bad field value type {:?} ({:#04x})", char::from(*.0), .0)]
    BadFieldType(u8),
    /// A short string is not valid UTF-8.
    #[error("invalid UTF-8 in short string")]
    InvalidUtf8,
    /// Bytes left over after the last method argument or property (how many).
    #[error("{0} trailing bytes after the last argument")]
    TrailingBytes(usize),
    /// Tables or arrays nested deeper than the decoder accepts (the limit).
    #[error("field tables or arrays nested deeper than {0} levels")]
    TooDeep(usize),
}
