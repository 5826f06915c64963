//! Sans-IO AMQP 0-9-1 connection state machine.
//!
//! [`Connection`] takes the bytes a client sent and the current time, and produces the bytes
//! to send back plus [`Event`]s for the broker: opened channels, channel methods, publishes with
//! their assembled content, flow changes and closed channels. Everything about the protocol's
//! rules (handshake order, tune limits, heartbeats, which frame may follow which, which close code
//! a mistake earns) lives here and is tested without sockets.

pub mod channel_map;
pub mod close;
pub mod config;
pub mod confirms;
pub mod erlang;
pub mod error;
pub mod machine;

pub use channel_map::ChannelMap;
pub use close::{CloseReason, LoginRefused};
pub use config::{server_properties, ConnectionConfig, FRAME_MIN_SIZE};
pub use confirms::{Confirm, ConfirmTracker, PublishOutcome};
pub use error::AmqpError;
pub use machine::{client_capability, Connection, Event, Host};
