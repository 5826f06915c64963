//! Warren's AMQP 0-9-1 face on the broker core.
//!
//! A [`Session`] per connection applies the events of the sans-IO connection state machine
//! (`warren_connection::Connection`) to the broker: declares and bindings become the core's
//! definition commands, publishes are routed, channels are the core's delivery targets
//! ([`ChannelHandle`]) and write `basic.deliver` into their connection's [`Outbox`].
//! Broker errors get RabbitMQ's reply codes here ([`amqp_error`]). Sessions share a [`Node`]:
//! the broker and what every AMQP connection of it sees (direct reply-to consumers). No I/O.
//!
//! Every module is private; the root has the [`Session`], the [`Node`], the [`Outbox`] and its
//! marks, a channel's delivery side ([`ChannelHandle`], its [`Unacked`] deliveries), direct
//! reply-to ([`ReplyRegistry`], [`REPLY_QUEUE`]) and [`amqp_error`].

#![warn(missing_docs, unreachable_pub)]

mod channel;
mod error;
mod outbox;
mod session;

use std::sync::Arc;

use warren_broker::Broker;

pub use channel::{ChannelHandle, Unacked};
pub use error::amqp_error;
pub use outbox::{Batch, Outbox, SharedWriter, Waker, HIGH_WATER_MARK, READ_PAUSE_MARK, SHARE_BODIES_FROM};
pub use session::reply_to::{ReplyRegistry, REPLY_PREFIX, REPLY_QUEUE};
pub use session::{Session, SyncNotify};

/// What every AMQP connection of a broker shares.
pub struct Node {
    /// The broker core.
    pub broker: Arc<Broker>,
    /// Direct reply-to consumers, reachable from every connection.
    pub replies: ReplyRegistry,
}

impl Node {
    /// The AMQP face of `broker`.
    pub fn new(broker: Arc<Broker>) -> Arc<Node> {
        Arc::new(Node { broker, replies: ReplyRegistry::default() })
    }
}
