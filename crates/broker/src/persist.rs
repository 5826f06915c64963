//! Durable definitions: the records a vhost writes to the definitions store before a durable
//! declare is answered (only what outlives a restart is written).

use warren_store::definitions::{BindingDef, DefinitionsError, ExchangeDef, QueueDef};

use crate::error::BrokerError;
use crate::exchange::{Binding, Destination, Exchange};
use crate::queue::Queue;

impl From<DefinitionsError> for BrokerError {
    fn from(e: DefinitionsError) -> BrokerError {
        BrokerError::Storage(format!("cannot store definitions: {e}"))
    }
}

pub(crate) fn exchange_def(vhost: &str, e: &Exchange) -> ExchangeDef {
    ExchangeDef {
        vhost: vhost.to_owned(),
        name: e.name.to_string(),
        kind: e.kind.as_str().to_owned(),
        durable: e.durable,
        auto_delete: e.auto_delete,
        internal: e.internal,
        arguments: e.arguments.clone(),
    }
}

pub(crate) fn queue_def(vhost: &str, q: &Queue) -> QueueDef {
    QueueDef {
        vhost: vhost.to_owned(),
        name: q.name.to_string(),
        durable: q.durable,
        auto_delete: q.auto_delete,
        arguments: q.arguments.clone(),
    }
}

/// Only bindings between durable ends outlive a restart, as in RabbitMQ.
pub(crate) fn binding_def(vhost: &str, source: &Exchange, binding: &Binding) -> Option<BindingDef> {
    let (destination, destination_is_queue, durable) = match &binding.destination {
        Destination::Queue(q) => (q.name.to_string(), true, q.durable && q.exclusive_owner.is_none()),
        Destination::Exchange(e) => (e.name.to_string(), false, e.durable),
    };
    (source.durable && durable).then(|| BindingDef {
        vhost: vhost.to_owned(),
        source: source.name.to_string(),
        destination,
        destination_is_queue,
        routing_key: binding.key.to_string(),
        arguments: binding.args.clone(),
    })
}

/// Whether a queue's definition is stored: durable and not exclusive.
pub(crate) fn is_stored(q: &Queue) -> bool {
    q.durable && q.exclusive_owner.is_none()
}
