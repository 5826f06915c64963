//! Sans-IO AMQP 0-9-1 connection state machine.
//!
//! [`Connection`] takes the bytes a client sent and the current time, and produces the bytes
//! to send back plus [`Event`]s for the broker: opened channels, channel methods, publishes with
//! their assembled content, flow changes and closed channels. Everything about the protocol's
//! rules (handshake order, tune limits, heartbeats, which frame may follow which, which close code
//! a mistake earns) lives here and is tested without sockets.
//!
//! The root has the machine ([`Connection`], the [`Host`] it asks during the handshake, the
//! [`Event`]s it emits), its [`ConnectionConfig`], [`AmqpError`] and the reasons a connection
//! ends ([`CloseReason`], [`LoginRefused`]), the publisher-confirm bookkeeping of a channel
//! ([`ConfirmTracker`]) and the [`ChannelMap`] the layers above keep their channels in. The
//! reply codes are in [`error`].

#![warn(missing_docs, unreachable_pub)]

mod channel_map;
mod close;
mod config;
mod confirms;
mod erlang;
pub mod error;
mod machine;

pub use channel_map::ChannelMap;
pub use close::{CloseReason, LoginRefused};
pub use config::{server_properties, ConnectionConfig, FRAME_MIN_SIZE};
pub use confirms::{Confirm, ConfirmTracker, PublishOutcome};
pub use error::AmqpError;
pub use machine::{client_capability, Connection, Event, Host, MAX_MESSAGE_SIZE_CEILING};
