//! Rebuilding a vhost from its stored definitions at startup.

use std::sync::Arc;
use std::time::Instant;

use warren_message::ShortStr;
use warren_store::definitions::{BindingDef, ExchangeDef, QueueDef};

use super::VHost;
use crate::dedup::{Carried, Deduplicator, WindowOf};
use crate::error::BrokerError;
use crate::exchange::{Binding, Destination, Exchange, ExchangeKind};
use crate::queue::Queue;

impl VHost {
    /// Restores a stored exchange at startup (the amq.* ones already exist).
    pub(crate) fn restore_exchange(&self, def: &ExchangeDef, now: Instant) {
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
        e.apply_policies(self.exchange_policies(&e.name));
        if let Err(error) = self.open_delay_log(&e, now) {
            tracing::error!(vhost = %self.name, exchange = %def.name, %error, "delayed messages not recovered");
        }
        if let Err(error) = self.open_dedup_log(true, &e.name, e.durable, e.dedup()) {
            tracing::error!(vhost = %self.name, exchange = %def.name, %error, "deduplication keys not recovered");
        }
        self.insert_exchange(Arc::new(e));
    }

    /// Restores a stored queue and the messages its log recovers.
    pub(crate) fn restore_queue(&self, def: &QueueDef, now: Instant) -> Result<(), BrokerError> {
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
            now,
        )
        .with_flow_bound(self.flow_bound())
        .with_policies(self.queue_policies(&def.name), now);
        if let Err(error) = self.open_dedup_log(false, &q.name, q.durable, q.dedup()) {
            tracing::error!(vhost = %self.name, queue = %def.name, %error, "deduplication keys not recovered");
        }
        self.queues.write().insert(q.name.clone(), Arc::new(q));
        Ok(())
    }

    /// Restores a stored binding; one whose ends are missing is dropped with a warning.
    pub(crate) fn restore_binding(&self, def: &BindingDef) {
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

    /// Opens the log of a durable delayed-message exchange, taking back what it held (on a
    /// restart; messages recovered without a due time are due at `now`).
    pub(super) fn open_delay_log(&self, exchange: &Exchange, now: Instant) -> Result<(), BrokerError> {
        let Some(delayed) = exchange.delayed() else { return Ok(()) };
        if !exchange.durable {
            return Ok(());
        }
        let name = crate::delayed::log_name(&exchange.name);
        let log = self.store.open_queue(&self.name, &name, true).map_err(|e| {
            BrokerError::Storage(format!(
                "cannot open the delayed messages of exchange '{}': {e}",
                exchange.name
            ))
        })?;
        delayed.attach_log(log, now);
        Ok(())
    }

    /// Opens the log of a durable exchange's (`exchange` true) or queue's deduplication
    /// window, replaying the keys it holds; a window kept in memory (`x-cache-persistence:
    /// memory`, or not durable) has none.
    pub(super) fn open_dedup_log(
        &self,
        exchange: bool,
        name: &str,
        durable: bool,
        dedup: Option<&Arc<Deduplicator>>,
    ) -> Result<(), BrokerError> {
        let Some(dedup) = dedup.filter(|d| durable && d.wants_disk()) else { return Ok(()) };
        let log_name = crate::dedup::log_name(exchange, name);
        let log = self.store.open_queue(&self.name, &log_name, true).map_err(|e| {
            BrokerError::Storage(format!("cannot open the deduplication keys of '{name}': {e}"))
        })?;
        dedup.attach_log(log);
        let writer: Arc<dyn warren_store::LazyWriter> = dedup.clone();
        self.store.register_lazy_writer(Arc::downgrade(&writer));
        Ok(())
    }

    /// Once every exchange and queue is restored: hands the deduplication keys that the queues'
    /// recovered records carried to their windows (see `dedup`), then lets the queues delete
    /// the segments that carried them as they settle.
    pub(crate) fn merge_carried_keys(&self) {
        let queues: Vec<Arc<Queue>> = self.queues.read().values().cloned().collect();
        let mut for_exchanges: std::collections::HashMap<ShortStr, Vec<_>> = Default::default();
        for q in &queues {
            let mut own = Vec::new();
            for record in q.take_recovered_carried() {
                for (window, entry) in Carried::decode(&record) {
                    match window {
                        WindowOf::Queue => own.push(entry),
                        WindowOf::Exchange(name) => for_exchanges.entry(name).or_default().push(entry),
                    }
                }
            }
            if let Some(dedup) = q.dedup() {
                dedup.merge_recovered(own);
            }
        }
        let exchanges: Vec<Arc<Exchange>> = self.exchanges.read().values().cloned().collect();
        for e in exchanges {
            if let Some(dedup) = e.dedup() {
                dedup.merge_recovered(for_exchanges.remove(&e.name).unwrap_or_default());
            }
        }
        for q in &queues {
            q.release_recovered();
        }
    }
}
