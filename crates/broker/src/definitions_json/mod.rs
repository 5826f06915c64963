//! RabbitMQ's definitions JSON: the file `rabbitmqctl export_definitions`, the management API
//! and RabbitMQ's `load_definitions` setting use to carry users (with their password hashes),
//! vhosts, permissions, limits, policies, exchanges, queues and bindings from one broker to
//! another.
//!
//! * `format`: the serde types of the file, read leniently across RabbitMQ versions;
//! * `arguments`: declare and binding arguments between JSON and AMQP field tables;
//! * `plan`: checking a whole file against the broker before anything changes;
//! * `import`: [`Broker::import_definitions`], applying a checked file;
//! * `export`: [`Broker::export_definitions`];
//! * `policies`: where policies plug in;
//! * `error`: [`DefinitionsImportError`] and the [`ImportSummary`].
//!
//! [`Broker::import_definitions`]: crate::Broker::import_definitions
//! [`Broker::export_definitions`]: crate::Broker::export_definitions

mod arguments;
mod error;
mod export;
mod format;
mod import;
mod plan;
mod policies;

#[cfg(test)]
mod tests;

pub use arguments::{from_field_table, to_field_table};
pub use error::{DefinitionsImportError, ImportSummary, Problem};
pub use export::RABBITMQ_FORMAT_VERSION;
pub use format::*;
pub use import::parse_definitions;
