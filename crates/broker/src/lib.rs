//! Warren's broker core.
//!
//! [`Broker`] holds vhosts and users; a [`vhost::VHost`] holds exchanges, queues and bindings;
//! [`queue::Queue`]s dispatch to consumers on [`channel::ChannelHandle`]s, which write frames to
//! their connection's [`outbox::Outbox`]. A [`session::Session`] per connection applies the
//! events of the sans-IO connection state machine to all of this.

pub mod args;
pub mod broker;
pub mod channel;
pub mod consistent_hash;
pub mod deadletter;
pub mod delayed;
pub mod erlang_hash;
pub mod erlang_rand;
pub mod error;
pub mod exchange;
pub mod headers;
pub mod names;
pub mod outbox;
pub mod persist;
pub mod priority;
pub mod queue;
pub mod session;
pub mod topic;
pub mod vhost;

pub use broker::{Broker, User};
pub use error::BrokerError;
pub use outbox::Outbox;
pub use session::Session;
/// Messages are defined by the store, which keeps them.
pub use warren_store::{message, Message, QueuedMessage};
