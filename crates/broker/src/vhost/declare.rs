//! The rules of declares, deletes and bindings, as RabbitMQ applies them. Each runs with the
//! vhost's command lock held (see [`VHost::apply`]): checks read the maps, durable changes are
//! written to the definitions store, and only then is the routing map updated under its write
//! lock, so routing never waits for a store write.

use std::sync::Arc;
use std::time::Instant;

use warren_message::{FieldTable, FieldValue};
use warren_store::definitions::{Definitions, DefinitionsError};

use super::command::{Actor, BindingSpec, DestinationKind, ExchangeSpec, QueueSpec};
use super::VHost;
use crate::args::{first_mismatch, EXCHANGE_EQUIVALENCE_ARGS, QUEUE_EQUIVALENCE_ARGS};
use crate::churn::ChurnEvent;
use crate::effects::Effects;
use crate::error::BrokerError;
use crate::exchange::{Binding, Destination, Exchange, ExchangeKind};
use crate::names::generated_name;
use crate::persist::{binding_def, exchange_def, is_stored, queue_def};
use crate::queue::Queue;

impl VHost {
    /// Writes through to the definitions store, if there is one.
    fn persist(
        &self,
        write: impl FnOnce(&Definitions) -> Result<(), DefinitionsError>,
    ) -> Result<(), BrokerError> {
        match self.definitions.as_deref() {
            // A deleted vhost's definitions went from the store with it.
            Some(_) if self.destroyed.load(std::sync::atomic::Ordering::Acquire) => Ok(()),
            Some(d) => Ok(write(d)?),
            None => Ok(()),
        }
    }

    /// Like [`VHost::persist`] for removals that cascade from another operation: a failure is
    /// logged (the entity is already gone in memory).
    fn forget(&self, write: impl FnOnce(&Definitions) -> Result<(), DefinitionsError>) {
        if let Err(error) = self.persist(write) {
            tracing::error!(vhost = %self.name, %error, "removing a definition failed");
        }
    }

    pub(super) fn declare_exchange(
        &self,
        spec: ExchangeSpec,
        now: Instant,
    ) -> Result<Arc<Exchange>, BrokerError> {
        if spec.name.is_empty() {
            // The default exchange exists implicitly and may not be declared, even passively.
            return Err(BrokerError::DefaultExchange);
        }
        if spec.passive {
            return self.exchange(&spec.name);
        }
        let Some(kind) = ExchangeKind::parse(&spec.kind) else {
            return Err(BrokerError::UnknownExchangeType(spec.kind.to_string()));
        };
        if let Some(existing) = self.exchanges.read().get(&spec.name) {
            self.check_exchange_equivalence(existing, kind, &spec)?;
            return Ok(existing.clone());
        }
        if spec.name.starts_with("amq.") {
            return Err(BrokerError::ReservedName { kind: "exchange", name: spec.name.to_string() });
        }
        // Arguments are checked only when the exchange is created, as RabbitMQ does: a redeclare
        // compares `alternate-exchange` and nothing else.
        if let Some((arg, type_name)) = crate::args::exchange_arg_type_error(&spec.arguments) {
            let (exchange, vhost) = (spec.name.to_string(), self.name.clone());
            return Err(BrokerError::InvalidArgType { arg, type_name, exchange, vhost });
        }
        kind.validate_arguments(&spec.arguments)?;
        let e = Arc::new(Exchange::new(
            spec.name.clone(),
            kind,
            spec.durable,
            spec.auto_delete,
            spec.internal,
            spec.arguments,
        ));
        e.apply_policies(self.exchange_policies(&e.name));
        self.open_delay_log(&e, now)?;
        self.open_dedup_log(true, &e.name, e.durable, e.dedup())?;
        if e.durable {
            self.persist(|d| d.put_exchange(&exchange_def(&self.name, &e)))?;
        }
        self.insert_exchange(e.clone());
        Ok(e)
    }

    fn check_exchange_equivalence(
        &self,
        existing: &Exchange,
        kind: ExchangeKind,
        spec: &ExchangeSpec,
    ) -> Result<(), BrokerError> {
        let name = &*spec.name;
        if existing.kind != kind {
            let (r, c) = (quoted(kind.as_str()), quoted(existing.kind.as_str()));
            return Err(self.inequivalent("exchange", name, "type", r, c));
        }
        for (arg, received, current) in [
            ("durable", spec.durable, existing.durable),
            ("auto_delete", spec.auto_delete, existing.auto_delete),
            ("internal", spec.internal, existing.internal),
        ] {
            if received != current {
                return Err(self.inequivalent(
                    "exchange",
                    name,
                    arg,
                    quoted_bool(received),
                    quoted_bool(current),
                ));
            }
        }
        if let Some((arg, received, current)) =
            first_mismatch(EXCHANGE_EQUIVALENCE_ARGS, &spec.arguments, &existing.arguments)
        {
            return Err(self.inequivalent("exchange", name, arg, received, current));
        }
        Ok(())
    }

    pub(super) fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        if name.is_empty() {
            return Err(BrokerError::DefaultExchange);
        }
        if name.starts_with("amq.") {
            return Err(BrokerError::SystemExchange { name: name.to_owned(), vhost: self.name.clone() });
        }
        let Some(exchange) = self.exchanges.read().get(name).cloned() else {
            return Ok(());
        };
        if if_unused && exchange.has_bindings() {
            return Err(BrokerError::InUse {
                kind: "exchange",
                name: name.to_owned(),
                vhost: self.name.clone(),
            });
        }
        self.remove_exchange(&exchange);
        Ok(())
    }

    pub(super) fn remove_exchange(&self, exchange: &Arc<Exchange>) {
        self.exchanges.write().remove(&exchange.name);
        if let Some(delayed) = exchange.delayed() {
            delayed.delete();
        }
        if let Some(dedup) = exchange.dedup() {
            dedup.delete();
        }
        if exchange.durable {
            self.forget(|d| d.delete_exchange(&self.name, &exchange.name));
        }
        let as_destination = Destination::Exchange(exchange.clone());
        for other in self.exchanges() {
            if other.unbind_destination(&as_destination) > 0 && other.should_auto_delete() {
                self.remove_exchange(&other);
            }
        }
    }

    pub(super) fn declare_queue(
        &self,
        spec: QueueSpec,
        actor: Actor,
        now: Instant,
    ) -> Result<Arc<Queue>, BrokerError> {
        let owner = actor.connection;
        if spec.passive {
            let q = self.queue(&spec.name)?;
            self.check_exclusive_access(&q, owner)?;
            q.mark_used(now);
            return Ok(q);
        }
        if spec.name.starts_with("amq.") && !spec.server_named {
            return Err(BrokerError::ReservedName { kind: "queue", name: spec.name.to_string() });
        }
        if let Err((arg, reason)) = crate::args::validate_queue_args(&spec.arguments) {
            return Err(BrokerError::InvalidArg {
                arg: arg.to_owned(),
                queue: spec.name.to_string(),
                vhost: self.name.clone(),
                reason,
            });
        }
        crate::dedup::DedupConfig::for_queue(&spec.arguments)?;
        let mut spec = spec;
        if spec.name.is_empty() {
            let queues = self.queues.read();
            spec.name = loop {
                let candidate = generated_name("amq.gen-");
                if !queues.contains_key(&candidate) {
                    break candidate;
                }
            };
        }
        if let Some(existing) = self.queues.read().get(&spec.name) {
            self.check_exclusive_access(existing, owner)?;
            self.check_queue_equivalence(existing, &spec)?;
            existing.mark_used(now);
            self.churn.count(ChurnEvent::QueueDeclared);
            return Ok(existing.clone());
        }
        if let Some(limit) = crate::access::reached(self.max_queues(), self.queues.read().len() as u64) {
            return Err(BrokerError::VhostQueueLimit {
                queue: spec.name.to_string(),
                vhost: self.name.clone(),
                limit,
            });
        }
        // An exclusive queue dies with its connection: its messages never outlive a restart.
        let log = self.open_queue_log(&spec.name, spec.durable && !spec.exclusive, &spec.arguments).map_err(
            |e| BrokerError::Storage(format!("cannot open the log of queue '{}': {e}", spec.name)),
        )?;
        let q = Arc::new(
            Queue::new(
                spec.name.clone(),
                spec.durable,
                spec.exclusive.then_some(owner),
                spec.auto_delete,
                spec.arguments,
                log,
                now,
            )
            .with_flow_bound(self.flow_bound())
            .with_policies(self.queue_policies(&spec.name), now),
        );
        self.open_dedup_log(false, &q.name, spec.durable && !spec.exclusive, q.dedup())?;
        if is_stored(&q) {
            self.persist(|d| d.put_queue(&queue_def(&self.name, &q)))?;
        }
        self.queues.write().insert(spec.name, q.clone());
        self.churn.count(ChurnEvent::QueueDeclared);
        self.churn.count(ChurnEvent::QueueCreated);
        Ok(q)
    }

    /// Opens (recovering, when `durable`) the message log of queue `name`: a priority queue's is
    /// one store log per priority level.
    pub(super) fn open_queue_log(
        &self,
        name: &str,
        durable: bool,
        arguments: &FieldTable,
    ) -> std::io::Result<Box<dyn warren_store::QueueLog>> {
        let own = self.store.open_queue(&self.name, name, durable)?;
        let mut above_zero = crate::priority::level_log_names(name, arguments).peekable();
        if above_zero.peek().is_none() {
            return Ok(own);
        }
        let mut levels = vec![own];
        for log_name in above_zero {
            levels.push(self.store.open_queue(&self.name, &log_name, durable)?);
        }
        Ok(Box::new(crate::priority::PriorityLog::new(levels)))
    }

    fn check_queue_equivalence(&self, existing: &Queue, spec: &QueueSpec) -> Result<(), BrokerError> {
        let name = &*spec.name;
        if existing.exclusive_owner.is_some() != spec.exclusive {
            return Err(BrokerError::ExclusiveLocked { name: name.to_owned(), vhost: self.name.clone() });
        }
        for (arg, received, current) in [
            ("durable", spec.durable, existing.durable),
            ("auto_delete", spec.auto_delete, existing.auto_delete),
        ] {
            if received != current {
                return Err(self.inequivalent(
                    "queue",
                    name,
                    arg,
                    quoted_bool(received),
                    quoted_bool(current),
                ));
            }
        }
        if let Some((arg, received, current)) =
            first_mismatch(QUEUE_EQUIVALENCE_ARGS, &spec.arguments, &existing.arguments)
        {
            return Err(self.inequivalent("queue", name, arg, received, current));
        }
        Ok(())
    }

    pub(super) fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        actor: Actor,
        effects: &mut Effects,
    ) -> Result<u32, BrokerError> {
        let Some(q) = self.queues.read().get(name).cloned() else {
            return Ok(0);
        };
        self.check_exclusive_access(&q, actor.connection)?;
        if if_unused && q.consumer_count() > 0 {
            return Err(BrokerError::InUse {
                kind: "queue",
                name: name.to_owned(),
                vhost: self.name.clone(),
            });
        }
        if if_empty && q.stats().ready > 0 {
            return Err(BrokerError::NotEmpty { name: name.to_owned(), vhost: self.name.clone() });
        }
        Ok(self.remove_queue_locked(&q, effects))
    }

    /// Removes a queue and its bindings; exchanges left unbound that are auto-delete go too.
    /// Returns how many messages it held; its consumers go to `effects` to be told.
    pub(super) fn remove_queue_locked(&self, q: &Arc<Queue>, effects: &mut Effects) -> u32 {
        {
            let mut queues = self.queues.write();
            if queues.get(&q.name).is_some_and(|existing| Arc::ptr_eq(existing, q)) {
                queues.remove(&q.name);
                self.churn.count(ChurnEvent::QueueDeleted);
            }
        }
        if is_stored(q) {
            self.forget(|d| d.delete_queue(&self.name, &q.name));
        }
        let as_destination = Destination::Queue(q.clone());
        for exchange in self.exchanges() {
            if exchange.unbind_destination(&as_destination) > 0 && exchange.should_auto_delete() {
                self.remove_exchange(&exchange);
            }
        }
        let (consumers, messages) = q.delete();
        self.retired_queues.absorb(&q.counters().snapshot());
        effects.cancelled(consumers);
        messages
    }

    fn binding_source(&self, exchange: &str) -> Result<Arc<Exchange>, BrokerError> {
        if exchange.is_empty() {
            return Err(BrokerError::DefaultExchange);
        }
        self.exchange(exchange)
    }

    pub(super) fn bind(&self, spec: BindingSpec, actor: Actor) -> Result<(), BrokerError> {
        let source = self.binding_source(&spec.source)?;
        let destination = match spec.destination_kind {
            DestinationKind::Queue => {
                let q = self.queue(&spec.destination)?;
                self.check_exclusive_access(&q, actor.connection)?;
                Destination::Queue(q)
            }
            DestinationKind::Exchange => Destination::Exchange(self.binding_source(&spec.destination)?),
        };
        check_binding_args(source.routing, &spec.key, &spec.arguments)?;
        let binding = Binding { destination, key: spec.key, args: spec.arguments };
        if let Some(def) = binding_def(&self.name, &source, &binding) {
            self.persist(|d| d.put_binding(&def))?;
        }
        source.bind(binding);
        Ok(())
    }

    pub(super) fn unbind(&self, spec: BindingSpec) -> Result<(), BrokerError> {
        // Unbinding what is not there succeeds, as in RabbitMQ; exclusivity does not apply.
        if spec.source.is_empty()
            || (spec.destination_kind == DestinationKind::Exchange && spec.destination.is_empty())
        {
            return Err(BrokerError::DefaultExchange);
        }
        let Ok(source) = self.exchange(&spec.source) else { return Ok(()) };
        let destination = match spec.destination_kind {
            DestinationKind::Queue => self.queue(&spec.destination).map(Destination::Queue),
            DestinationKind::Exchange => self.exchange(&spec.destination).map(Destination::Exchange),
        };
        let Ok(destination) = destination else { return Ok(()) };
        let binding = Binding { destination, key: spec.key, args: spec.arguments };
        if source.unbind(&binding) {
            if let Some(def) = binding_def(&self.name, &source, &binding) {
                self.forget(|d| d.delete_binding(&def));
            }
        }
        if source.should_auto_delete() {
            self.remove_exchange(&source);
        }
        Ok(())
    }
}

/// Checks binding arguments for a source exchange routing as `routing`: consistent-hash
/// weights, and the x-match values RabbitMQ knows for headers exchanges.
pub(crate) fn check_binding_args(
    routing: ExchangeKind,
    key: &str,
    args: &FieldTable,
) -> Result<(), BrokerError> {
    routing.validate_binding(key)?;
    if routing != ExchangeKind::Headers {
        return Ok(());
    }
    match args.get("x-match") {
        None => Ok(()),
        Some(FieldValue::LongStr(v)) if matches!(&v[..], b"all" | b"any" | b"all-with-x" | b"any-with-x") => {
            Ok(())
        }
        Some(FieldValue::LongStr(v)) => Err(BrokerError::InvalidXMatch(format!(
            "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
            warren_message::erlang::binary(v)
        ))),
        Some(other) => Err(BrokerError::InvalidXMatch(format!(
            "Invalid x-match field type '{}'; expected longstr",
            crate::args::type_name(other)
        ))),
    }
}

fn quoted(s: &str) -> String {
    format!("'{s}'")
}

fn quoted_bool(b: bool) -> String {
    quoted(if b { "true" } else { "false" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vhost::{Command, Outcome};
    use warren_message::FieldValue;

    fn declare(
        v: &VHost,
        name: &str,
        kind: &str,
        arguments: FieldTable,
    ) -> Result<Arc<Exchange>, BrokerError> {
        let spec = ExchangeSpec { name: name.into(), kind: kind.into(), arguments, ..Default::default() };
        let now = std::time::Instant::now();
        match v.apply(Command::DeclareExchange(spec), Actor::BROKER, now, &mut Effects::default())? {
            Outcome::Exchange(e) => Ok(e),
            other => panic!("{other:?}"),
        }
    }

    fn ae(value: FieldValue) -> FieldTable {
        let mut t = FieldTable::new();
        t.insert("alternate-exchange", value);
        t
    }

    #[test]
    fn alternate_exchange_of_another_type_is_refused_on_creation_only() {
        let v = VHost::new("/", Arc::new(warren_store::MemoryStore), None);
        let e = declare(&v, "x", "direct", ae(FieldValue::I32(5))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid type 'signedint' for arg 'alternate-exchange' in exchange 'x' in vhost '/'"
        );
        assert!(v.exchange("x").is_err(), "not declared");
        // A missing exchange is a fine name; a redeclare compares the argument.
        declare(&v, "x", "direct", ae(FieldValue::LongStr("missing".into()))).unwrap();
        let e = declare(&v, "x", "direct", ae(FieldValue::Table(FieldTable::new()))).unwrap_err();
        assert!(matches!(e, BrokerError::Inequivalent(_)), "{e}");
        // The reserved-name check comes first, the exchange type's own checks after.
        let e = declare(&v, "amq.x", "direct", ae(FieldValue::I32(5))).unwrap_err();
        assert!(matches!(e, BrokerError::ReservedName { .. }), "{e}");
        let mut both = ae(FieldValue::I32(5));
        both.insert("hash-header", FieldValue::LongStr("h".into()));
        both.insert("hash-property", FieldValue::LongStr("message_id".into()));
        let e = declare(&v, "chx", "x-consistent-hash", both.clone()).unwrap_err();
        assert!(matches!(e, BrokerError::InvalidArgType { .. }), "{e}");
    }

    #[test]
    fn a_redeclare_does_not_check_the_type_arguments() {
        let v = VHost::new("/", Arc::new(warren_store::MemoryStore), None);
        declare(&v, "chx", "x-consistent-hash", FieldTable::new()).unwrap();
        let mut both = FieldTable::new();
        both.insert("hash-header", FieldValue::LongStr("h".into()));
        both.insert("hash-property", FieldValue::LongStr("message_id".into()));
        declare(&v, "chx", "x-consistent-hash", both.clone()).unwrap();
        assert!(declare(&v, "other", "x-consistent-hash", both).is_err());
    }
}
