//! AMQP 0-9-1 codec for Warren: frames, methods and content headers, over the message model of
//! `warren-message` (field tables, properties), which it re-exports. No I/O: parsing works on a
//! `BytesMut` read buffer and hands out zero-copy `Bytes` slices of it; encoding appends to a
//! `BytesMut`.
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

pub mod constants;
pub mod frame;
pub mod methods;

mod error;
mod generated;

/// The primitive encodings frames and methods are built from.
pub(crate) use warren_message::codec;
#[cfg(test)]
pub(crate) use warren_message::strategies as testing;
/// Field tables, properties and their primitives are the message model's, re-exported here so
/// the codec reads as one crate.
pub use warren_message::{
    erlang, properties, raw, BasicProperties, DecodeError, FieldTable, FieldValue, LenientTable,
    LenientValue, ShortStr,
};

pub use error::FrameError;
pub use frame::{
    parse_frame, write_body, write_content, write_header, write_heartbeat, write_method, ContentHeader,
    Frame, FRAME_OVERHEAD, PROTOCOL_HEADER,
};
pub use methods::Method;
