//! Warren's broker core, protocol-neutral.
//!
//! [`Broker`] holds vhosts, users and the [`Registry`] of connections; a [`VHost`] holds
//! exchanges, queues and bindings, changed only through [`Command`]s; [`Queue`]s hand messages
//! to consumers on [`DeliveryTarget`]s (an AMQP channel, later an MQTT session or a stream
//! reader). The core encodes no protocol and reads no clock: callers hand in [`Now`], drive
//! timers with [`Broker::tick`], and apply the [`Effects`] an operation leaves.

mod args;
mod broker;
mod counters;
mod deadletter;
mod delayed;
mod effects;
mod error;
mod exchange;
mod names;
mod persist;
mod priority;
mod queue;
mod registry;
mod time;
mod vhost;

pub use args::{type_name, validate_consume_args};
pub use broker::{is_loopback, AuthFailure, Broker, User, DEFAULT_CONSUMER_TIMEOUT_MS};
pub use counters::{Counter, CounterValues, Counters};
pub use deadletter::DeathReason;
pub use delayed::log_name as delayed_log_name;
pub use effects::Effects;
pub use error::{BrokerError, Inequivalence};
pub use exchange::{Binding, Destination, Exchange, ExchangeKind, HeadersSource};
pub use names::generated_name;
pub use priority::level_log_names as priority_level_log_names;
pub use queue::{
    notify_cancelled, ConsumeRefused, Consumer, ConsumerRef, DeliveryTarget, Published, Queue, QueueStats,
    Settle, TargetId,
};
pub use registry::{
    ChannelEntry, ChannelMode, ChannelSnapshot, CloseRequester, ConnectionDetails, ConnectionEntry,
    ConnectionSnapshot, ConnectionState, ConsumerSnapshot, Registry,
};
pub use time::Now;
pub use vhost::{
    Actor, BindingSpec, Command, DestinationKind, ExchangeSpec, Outcome, PublishResult, QueueSpec, Routed,
    VHost,
};
/// Messages are defined by the store, which keeps them.
pub use warren_store::{Message, QueuedMessage};
