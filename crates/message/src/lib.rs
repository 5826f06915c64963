//! Warren's message model: what a message carries besides its body, and how it is encoded.
//!
//! Messages keep their properties as AMQP 0-9-1 encodes them ([`BasicProperties`], with
//! [`FieldTable`] headers): byte for byte as published, decoded only when something needs them.
//! It is the form RabbitMQ keeps messages in too, and the one other protocols (MQTT, streams)
//! map theirs to, so the broker core and the store depend on this crate and on no protocol.
//! Declare and binding arguments are field tables as well.

#![warn(missing_docs, unreachable_pub)]

/// A short string (UTF-8, at most 255 bytes on the wire); decoded ones are zero-copy slices of
/// the read buffer.
pub use bytestring::ByteString as ShortStr;

pub mod codec;
pub mod erlang;
pub mod properties;
pub mod raw;

mod error;
mod lenient;
#[cfg(any(test, feature = "proptest"))]
pub mod strategies;
mod table;

pub use error::DecodeError;
pub use lenient::{LenientTable, LenientValue};
pub use properties::BasicProperties;
pub use table::{FieldTable, FieldValue};
