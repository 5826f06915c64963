//! Durable definitions: what a vhost writes to the definitions store before it replies -ok, and
//! how a broker is rebuilt from the store at startup.

use std::sync::Arc;

use warren_protocol::ShortStr;
use warren_store::definitions::{BindingDef, Definitions, DefinitionsError, ExchangeDef, QueueDef};

use crate::error::BrokerError;
use crate::exchange::{Binding, Destination, Exchange, ExchangeKind};
use crate::queue::Queue;
use crate::vhost::VHost;

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

impl VHost {
    /// Writes through to the definitions store, if there is one.
    pub(crate) fn persist(
        &self,
        write: impl FnOnce(&Definitions) -> Result<(), DefinitionsError>,
    ) -> Result<(), BrokerError> {
        match self.definitions() {
            Some(d) => Ok(write(d)?),
            None => Ok(()),
        }
    }

    /// Like [`VHost::persist`] for removals that cascade from another operation: a failure is
    /// logged (the entity is already gone in memory).
    pub(crate) fn forget(&self, write: impl FnOnce(&Definitions) -> Result<(), DefinitionsError>) {
        if let Err(error) = self.persist(write) {
            tracing::error!(vhost = %self.name, %error, "removing a definition failed");
        }
    }

    /// Restores a stored exchange at startup (the amq.* ones already exist).
    pub fn restore_exchange(&self, def: &ExchangeDef) {
        let Some(kind) = ExchangeKind::parse(&def.kind) else {
            tracing::warn!(exchange = %def.name, kind = %def.kind, "skipping a stored exchange of unknown type");
            return;
        };
        let e = Exchange::new(
            ShortStr::from(def.name.as_str()),
            kind,
            def.durable,
            def.auto_delete,
            def.internal,
            def.arguments.clone(),
        );
        if let Err(error) = self.open_delay_log(&e) {
            tracing::error!(vhost = %self.name, exchange = %def.name, %error, "delayed messages not recovered");
        }
        self.insert_exchange(Arc::new(e));
    }

    /// Restores a stored queue and the messages its log recovers.
    pub fn restore_queue(&self, def: &QueueDef) -> Result<(), BrokerError> {
        let log = self.open_queue_log(&def.name, true, &def.arguments).map_err(|e| {
            BrokerError::Storage(format!("cannot recover the log of queue '{}': {e}", def.name))
        })?;
        let q = Queue::new(
            ShortStr::from(def.name.as_str()),
            def.durable,
            None,
            def.auto_delete,
            def.arguments.clone(),
            log,
        );
        self.insert_queue(Arc::new(q));
        Ok(())
    }

    /// Restores a stored binding; one whose ends are missing is dropped with a warning.
    pub fn restore_binding(&self, def: &BindingDef) {
        let source = self.exchange(&def.source);
        let destination = if def.destination_is_queue {
            self.queue(&def.destination).map(Destination::Queue)
        } else {
            self.exchange(&def.destination).map(Destination::Exchange)
        };
        match (source, destination) {
            (Ok(source), Ok(destination)) => {
                source.bind(Binding {
                    destination,
                    key: ShortStr::from(def.routing_key.as_str()),
                    args: def.arguments.clone(),
                });
            }
            _ => {
                tracing::warn!(source = %def.source, destination = %def.destination, "skipping a stored binding whose ends are gone")
            }
        }
    }
}
