//! AMQP 0-9-1 codec for Warren: frames, methods, content headers and field
//! tables. No I/O: parsing works on a `BytesMut` read buffer and hands out
//! zero-copy `Bytes` slices of it; encoding appends to a `BytesMut`.
//!
//! Method structs and protocol constants are generated from
//! `spec/amqp-rabbitmq-0.9.1.json` by `cargo run -p xtask -- codegen`.
//!
//! The root has what most callers need: [`parse_frame`] and the `write_*` functions, [`Frame`],
//! [`Method`], [`BasicProperties`], [`FieldTable`] and [`FieldValue`], and the two errors. The
//! method structs are in [`methods`], the spec's constants in [`constants`], the property flag
//! bits and readers of raw properties in [`properties`], and Erlang's printing of binaries in
//! [`erlang`].

#![warn(missing_docs, unreachable_pub)]

/// An AMQP short string (UTF-8, at most 255 bytes on the wire); decoded ones are zero-copy
/// slices of the read buffer.
pub use bytestring::ByteString as ShortStr;

pub mod constants;
pub mod erlang;
pub mod frame;
pub mod methods;
pub mod properties;

mod codec;
mod error;
mod generated;
mod table;

#[cfg(test)]
mod testing;

pub use error::{DecodeError, FrameError};
pub use frame::{
    parse_frame, write_body, write_content, write_header, write_heartbeat, write_method, ContentHeader,
    Frame, FRAME_OVERHEAD, PROTOCOL_HEADER,
};
pub use methods::Method;
pub use properties::BasicProperties;
pub use table::{FieldTable, FieldValue};
