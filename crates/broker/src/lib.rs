//! Warren's broker core, protocol-neutral.
//!
//! [`Broker`] holds vhosts, users and the [`Registry`] of connections; a [`VHost`] holds
//! exchanges, queues and bindings, changed only through [`Command`]s; [`Queue`]s hand messages
//! to consumers on [`DeliveryTarget`]s (an AMQP channel, later an MQTT session or a stream
//! reader). The core encodes no protocol and reads no clock: callers hand in [`Now`], drive
//! timers with [`Broker::tick`], and apply the [`Effects`] an operation leaves.
//!
//! Every module but [`definitions_json`] is private and everything public is re-exported here;
//! mainly:
//!
//! * the broker and its users: [`Broker`], [`User`], [`AuthFailure`], [`RefusedLogin`];
//! * access control: [`AccessControl`] (users, permissions, limits), changed by
//!   [`AdminCommand`]s; a connection's [`ConnectionLease`] and [`UserAccess`] checks;
//! * definitions: [`VHost`], the [`Command`]s it applies ([`ExchangeSpec`], [`QueueSpec`],
//!   [`BindingSpec`]) for an [`Actor`] and their [`Outcome`], the [`Exchange`]s and their
//!   [`Binding`]s;
//! * publishing: [`VHost::publish`] and its [`PublishResult`], [`Message`] (the store's);
//! * queues and consumers: [`Queue`], [`Consumer`] on a [`DeliveryTarget`], [`Settle`];
//! * listings: the [`Registry`] of connections and channels, their snapshots, [`Counters`];
//! * policies: [`Policy`] ([`PolicyKind`], [`ApplyTo`], [`Definition`]), set on a vhost with
//!   [`VHost::set_policy`]; what applies to a queue or exchange: [`AppliedPolicies`];
//! * definitions files in RabbitMQ's JSON format: [`definitions_json`] ([`Broker::import_definitions`],
//!   [`Broker::export_definitions`]);
//! * errors: [`BrokerError`], [`PolicyError`]; and the names of the store logs the core opens besides queues'
//!   ([`delayed_log_name`], [`priority_level_log_names`], [`dedup_log_name`]), which a store's cleanup must keep.

#![warn(missing_docs, unreachable_pub)]

mod access;
mod admin;
mod args;
mod broker;
mod churn;
mod counters;
mod deadletter;
mod dedup;
pub mod definitions_json;
mod delayed;
mod effects;
mod error;
mod exchange;
mod logins;
mod names;
mod persist;
mod policy;
mod priority;
mod queue;
mod registry;
mod time;
mod vhost;

pub use access::{
    is_loopback, AccessControl, AuthFailure, ConnectionLease, HashAlgorithm, PasswordHash, Pattern,
    Permission, Permissions, Resource, TopicPermission, UnknownLimit, User, UserAccess, UserLimits,
    VhostLimits, VhostSettings,
};
pub use admin::AdminCommand;
pub use args::{type_name, validate_consume_args};
pub use broker::{Broker, FirstStart, DEFAULT_CONSUMER_TIMEOUT_MS};
pub use churn::{Churn, ChurnEvent, ChurnValues};
pub use counters::{Counter, CounterValues, Counters};
pub use deadletter::DeathReason;
pub use dedup::{log_name as dedup_log_name, Deduplicator, DEFAULT_CACHE_SIZE, MAX_CACHE_SIZE};
pub use definitions_json::{DefinitionsImportError, ImportSummary};
pub use delayed::{log_name as delayed_log_name, DelayedMessages};
pub use effects::{Effects, Flushed};
pub use error::{BrokerError, Inequivalence};
pub use exchange::{binding_args_hash, Binding, Destination, Exchange, ExchangeKind, HeadersSource};
pub use logins::RefusedLogin;
pub use names::generated_name;
pub use policy::{erlang_term, AppliedPolicies, ApplyTo, Definition, Policy, PolicyError, PolicyKind};
pub use priority::level_log_names as priority_level_log_names;
pub use queue::{
    notify_cancelled, ConsumeRefused, Consumer, ConsumerRef, DeliveryTarget, FlowBound, FlowWaker, Published,
    Queue, QueueStats, Settle, TargetId, FLOW_STALL,
};
pub use registry::{
    ChannelEntry, ChannelMode, ChannelSnapshot, CloseRequester, ConnectionDetails, ConnectionEntry,
    ConnectionSnapshot, ConnectionState, ConsumerSnapshot, Endpoint, Registry,
};
pub use time::Now;
pub use vhost::{
    Actor, BindingSpec, Command, DestinationKind, ExchangeSpec, Outcome, PublishResult, QueueChurnValues,
    QueueSpec, Routed, VHost,
};
/// Messages are defined by the store, which keeps them.
pub use warren_store::{Message, QueuedMessage};
