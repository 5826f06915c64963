//! The shared test harness for building and reading raw AMQP 0-9-1 frames.
//!
//! Everything is written by hand, independently of `warren-protocol`, so tests can send
//! malformed or unusual frames and look at exactly what a broker wrote. There is no I/O here:
//! callers feed the bytes to a socket or to a sans-IO connection themselves.
//!
//! * [`W`] builds method arguments and payloads, [`R`] reads them back;
//! * [`frame()`], [`method_frame`], [`content_header_frame`]… build whole frames, and
//!   [`parse_frame`] splits one off the front of a buffer;
//! * [`methods`] has the arguments of the methods tests send most (handshake, publish, close).

#![warn(missing_docs, unreachable_pub)]

mod frame;
pub mod methods;
mod read;
mod write;

pub use frame::{
    body_frames, content_header_frame, content_header_frame_with, frame, heartbeat_frame, method_frame,
    parse_frame, payload_len, Frame, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEAD_LEN, FRAME_HEARTBEAT,
    FRAME_METHOD, FRAME_OVERHEAD, PROTOCOL_HEADER,
};
pub use read::R;
pub use write::W;
