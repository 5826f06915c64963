//! AMQP 0-9-1 codec for Warren: frames, methods, content headers and field
//! tables. No I/O: parsing works on a `BytesMut` read buffer and hands out
//! zero-copy `Bytes` slices of it; encoding appends to a `BytesMut`.
//!
//! Method structs and protocol constants are generated from
//! `spec/amqp-rabbitmq-0.9.1.json` by `cargo run -p xtask -- codegen`.

pub use bytestring::ByteString as ShortStr;

pub mod constants;
pub mod erlang;
pub mod error;
pub mod frame;
pub mod methods;
pub mod properties;
pub mod table;

mod codec;
mod generated;

#[cfg(test)]
mod testing;

pub use error::{DecodeError, FrameError};
pub use frame::*;
pub use methods::Method;
pub use properties::BasicProperties;
pub use table::{FieldTable, FieldValue};
