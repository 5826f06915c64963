//! A virtual host: its exchanges, queues and bindings, and the declare/delete/bind rules
//! RabbitMQ applies to them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use crate::args::{first_mismatch, EXCHANGE_EQUIVALENCE_ARGS, QUEUE_EQUIVALENCE_ARGS};
use crate::error::{BrokerError, Inequivalence};
use crate::exchange::{dedupe_queues, Binding, Destination, Exchange, ExchangeKind, HeadersSource};
use crate::message::Message;
use crate::names::generated_name;
use crate::queue::Queue;
use warren_store::definitions::Definitions;
use warren_store::Store;

use crate::persist::{binding_def, exchange_def, is_stored, queue_def};

/// What exchange.declare asks for.
#[derive(Debug, Clone, Default)]
pub struct ExchangeSpec {
    pub name: ShortStr,
    pub kind: ShortStr,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// What queue.declare asks for. `owner` is the declaring connection.
#[derive(Debug, Clone, Default)]
pub struct QueueSpec {
    pub name: ShortStr,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// Alternate exchanges may chain; a cycle stops here.
const MAX_ALTERNATE_HOPS: usize = 8;

pub struct VHost {
    pub name: String,
    store: Arc<dyn Store>,
    /// Where durable definitions are written; None keeps everything in memory.
    definitions: Option<Arc<Definitions>>,
    exchanges: RwLock<HashMap<ShortStr, Arc<Exchange>>>,
    queues: RwLock<HashMap<ShortStr, Arc<Queue>>>,
}

impl VHost {
    /// A vhost with the default exchanges RabbitMQ creates.
    pub fn new(name: &str, store: Arc<dyn Store>, definitions: Option<Arc<Definitions>>) -> Self {
        let vhost = VHost {
            name: name.to_owned(),
            store,
            definitions,
            exchanges: RwLock::default(),
            queues: RwLock::default(),
        };
        for (name, kind) in [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            let e = Exchange::new(ShortStr::from(name), kind, true, false, false, FieldTable::new());
            vhost.exchanges.write().insert(e.name.clone(), Arc::new(e));
        }
        vhost
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn definitions(&self) -> Option<&Definitions> {
        self.definitions.as_deref()
    }

    pub(crate) fn insert_exchange(&self, e: Arc<Exchange>) {
        self.exchanges.write().insert(e.name.clone(), e);
    }

    pub(crate) fn insert_queue(&self, q: Arc<Queue>) {
        self.queues.write().insert(q.name.clone(), q);
    }

    pub fn exchange(&self, name: &str) -> Result<Arc<Exchange>, BrokerError> {
        self.exchanges.read().get(name).cloned().ok_or_else(|| self.no_exchange(name))
    }

    pub fn queue(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        self.queues.read().get(name).cloned().ok_or_else(|| self.no_queue(name))
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.read().values().cloned().collect()
    }

    fn no_exchange(&self, name: &str) -> BrokerError {
        BrokerError::ExchangeNotFound { name: name.to_owned(), vhost: self.name.clone() }
    }

    fn no_queue(&self, name: &str) -> BrokerError {
        BrokerError::QueueNotFound { name: name.to_owned(), vhost: self.name.clone() }
    }

    fn inequivalent(
        &self,
        kind: &'static str,
        name: &str,
        arg: &str,
        received: String,
        current: String,
    ) -> BrokerError {
        BrokerError::Inequivalent(Box::new(Inequivalence {
            kind,
            name: name.to_owned(),
            vhost: self.name.clone(),
            arg: arg.to_owned(),
            received,
            current,
        }))
    }

    pub fn declare_exchange(&self, spec: ExchangeSpec) -> Result<Arc<Exchange>, BrokerError> {
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
        let mut exchanges = self.exchanges.write();
        if let Some(existing) = exchanges.get(&spec.name) {
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
        self.open_delay_log(&e)?;
        if e.durable {
            self.persist(|d| d.put_exchange(&exchange_def(&self.name, &e)))?;
        }
        exchanges.insert(spec.name, e.clone());
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

    /// Deletes an exchange; deleting one that does not exist succeeds, as in RabbitMQ 3.x.
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), BrokerError> {
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

    fn remove_exchange(&self, exchange: &Arc<Exchange>) {
        self.exchanges.write().remove(&exchange.name);
        if let Some(delayed) = exchange.delayed() {
            delayed.delete();
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

    /// Declares a queue for connection `owner`; returns it with its message and consumer counts.
    pub fn declare_queue(&self, spec: QueueSpec, owner: u64) -> Result<Arc<Queue>, BrokerError> {
        if spec.passive {
            let q = self.queue(&spec.name)?;
            self.check_exclusive_access(&q, owner)?;
            q.mark_used();
            return Ok(q);
        }
        if spec.name.starts_with("amq.") {
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
        let mut queues = self.queues.write();
        let mut spec = spec;
        if spec.name.is_empty() {
            spec.name = loop {
                let candidate = generated_name("amq.gen-");
                if !queues.contains_key(&candidate) {
                    break candidate;
                }
            };
        }
        if let Some(existing) = queues.get(&spec.name) {
            self.check_exclusive_access(existing, owner)?;
            self.check_queue_equivalence(existing, &spec)?;
            existing.mark_used();
            return Ok(existing.clone());
        }
        // An exclusive queue dies with its connection: its messages never outlive a restart.
        let log = self.open_queue_log(&spec.name, spec.durable && !spec.exclusive, &spec.arguments).map_err(
            |e| BrokerError::Storage(format!("cannot open the log of queue '{}': {e}", spec.name)),
        )?;
        let q = Arc::new(Queue::new(
            spec.name.clone(),
            spec.durable,
            spec.exclusive.then_some(owner),
            spec.auto_delete,
            spec.arguments,
            log,
        ));
        if is_stored(&q) {
            self.persist(|d| d.put_queue(&queue_def(&self.name, &q)))?;
        }
        queues.insert(spec.name, q.clone());
        Ok(q)
    }

    /// Opens (recovering, when `durable`) the message log of queue `name`: a priority queue's is
    /// one store log per priority level.
    pub(crate) fn open_queue_log(
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

    /// Exclusive queues belong to the connection that declared them.
    pub fn check_exclusive_access(&self, q: &Queue, owner: u64) -> Result<(), BrokerError> {
        match q.exclusive_owner {
            Some(o) if o != owner => {
                Err(BrokerError::ExclusiveLocked { name: q.name.to_string(), vhost: self.name.clone() })
            }
            _ => Ok(()),
        }
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

    /// Deletes a queue; returns the consumers to notify and the number of messages it held.
    /// A queue that does not exist deletes fine with a count of 0, as in RabbitMQ 3.x.
    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        owner: u64,
    ) -> Result<(Vec<crate::queue::Consumer>, u32), BrokerError> {
        let Some(q) = self.queues.read().get(name).cloned() else {
            return Ok((Vec::new(), 0));
        };
        self.check_exclusive_access(&q, owner)?;
        if if_unused && q.consumer_count() > 0 {
            return Err(BrokerError::InUse {
                kind: "queue",
                name: name.to_owned(),
                vhost: self.name.clone(),
            });
        }
        if if_empty && q.message_count() > 0 {
            return Err(BrokerError::NotEmpty { name: name.to_owned(), vhost: self.name.clone() });
        }
        Ok(self.remove_queue(&q))
    }

    /// Removes a queue and its bindings; exchanges left unbound that are auto-delete go too.
    pub fn remove_queue(&self, q: &Arc<Queue>) -> (Vec<crate::queue::Consumer>, u32) {
        {
            let mut queues = self.queues.write();
            if queues.get(&q.name).is_some_and(|existing| Arc::ptr_eq(existing, q)) {
                queues.remove(&q.name);
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
        q.delete()
    }

    fn binding_source(&self, exchange: &str) -> Result<Arc<Exchange>, BrokerError> {
        if exchange.is_empty() {
            return Err(BrokerError::DefaultExchange);
        }
        self.exchange(exchange)
    }

    pub fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: ShortStr,
        args: FieldTable,
        owner: u64,
    ) -> Result<(), BrokerError> {
        let e = self.binding_source(exchange)?;
        let q = self.queue(queue)?;
        self.check_exclusive_access(&q, owner)?;
        self.check_binding_args(&e, &key, &args)?;
        self.add_binding(&e, Binding { destination: Destination::Queue(q), key, args })
    }

    pub fn unbind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: ShortStr,
        args: FieldTable,
    ) -> Result<(), BrokerError> {
        // Unbinding what is not there succeeds, as in RabbitMQ; exclusivity does not apply.
        if exchange.is_empty() {
            return Err(BrokerError::DefaultExchange);
        }
        let (Ok(e), Ok(q)) = (self.exchange(exchange), self.queue(queue)) else { return Ok(()) };
        self.remove_binding(&e, &Binding { destination: Destination::Queue(q), key, args });
        if e.should_auto_delete() {
            self.remove_exchange(&e);
        }
        Ok(())
    }

    pub fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: ShortStr,
        args: FieldTable,
    ) -> Result<(), BrokerError> {
        let s = self.binding_source(source)?;
        let d = self.binding_source(destination)?;
        self.check_binding_args(&s, &key, &args)?;
        self.add_binding(&s, Binding { destination: Destination::Exchange(d), key, args })
    }

    pub fn unbind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: ShortStr,
        args: FieldTable,
    ) -> Result<(), BrokerError> {
        if source.is_empty() || destination.is_empty() {
            return Err(BrokerError::DefaultExchange);
        }
        let (Ok(s), Ok(d)) = (self.exchange(source), self.exchange(destination)) else { return Ok(()) };
        self.remove_binding(&s, &Binding { destination: Destination::Exchange(d), key, args });
        if s.should_auto_delete() {
            self.remove_exchange(&s);
        }
        Ok(())
    }

    /// Adds a binding, stored first when both ends are durable.
    fn add_binding(&self, source: &Exchange, binding: Binding) -> Result<(), BrokerError> {
        if let Some(def) = binding_def(&self.name, source, &binding) {
            self.persist(|d| d.put_binding(&def))?;
        }
        source.bind(binding);
        Ok(())
    }

    fn remove_binding(&self, source: &Exchange, binding: &Binding) {
        if source.unbind(binding) {
            if let Some(def) = binding_def(&self.name, source, binding) {
                self.forget(|d| d.delete_binding(&def));
            }
        }
    }

    /// Headers exchanges accept only the x-match values RabbitMQ knows.
    fn check_binding_args(
        &self,
        exchange: &Exchange,
        key: &str,
        args: &FieldTable,
    ) -> Result<(), BrokerError> {
        exchange.routing.validate_binding(key)?;
        if exchange.routing != ExchangeKind::Headers {
            return Ok(());
        }
        match args.get("x-match") {
            None => Ok(()),
            Some(FieldValue::LongStr(v))
                if matches!(&v[..], b"all" | b"any" | b"all-with-x" | b"any-with-x") =>
            {
                Ok(())
            }
            Some(FieldValue::LongStr(v)) => Err(BrokerError::InvalidXMatch(format!(
                "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
                warren_connection::erlang::binary(v)
            ))),
            Some(other) => Err(BrokerError::InvalidXMatch(format!(
                "Invalid x-match field type '{}'; expected longstr",
                crate::args::type_name(other)
            ))),
        }
    }

    /// The queues a message published to `exchange` reaches, deduplicated, into `out`.
    /// A message no queue takes goes on to the exchange's alternate exchange, if it has one.
    pub fn route(
        &self,
        exchange: &str,
        message: &Message,
        out: &mut Vec<Arc<Queue>>,
    ) -> Result<Routed, BrokerError> {
        self.route_keys(exchange, message, &[], out)
    }

    /// As [`VHost::route`], routing with `extra_keys` as well as the message's routing key
    /// (sender-selected distribution: the `CC` and `BCC` headers).
    pub fn route_keys(
        &self,
        exchange: &str,
        message: &Message,
        extra_keys: &[ShortStr],
        out: &mut Vec<Arc<Queue>>,
    ) -> Result<Routed, BrokerError> {
        if exchange.is_empty() {
            let queues = self.queues.read();
            for key in std::iter::once(&message.routing_key).chain(extra_keys) {
                if let Some(q) = queues.get(&**key) {
                    out.push(q.clone());
                }
            }
            drop(queues);
            dedupe_queues(out);
            return Ok(Routed::ToQueues);
        }
        let e = self.exchanges.read().get(exchange).cloned().ok_or_else(|| self.no_exchange(exchange))?;
        if e.internal {
            return Err(BrokerError::InternalExchange {
                name: exchange.to_owned(),
                vhost: self.name.clone(),
            });
        }
        let mut exchange = e;
        for _ in 0..MAX_ALTERNATE_HOPS {
            // A delayed-message exchange holds a message with an x-delay: it reaches no queue
            // now (a mandatory publish is returned, as with the plugin), and no alternate exchange.
            if let Some(stored) = self.hold_if_delayed(&exchange, message, extra_keys)? {
                return Ok(Routed::Delayed { stored });
            }
            let mut headers = HeadersSource::new(&message.properties);
            exchange.route_message(&message.routing_key, extra_keys, &mut headers, out);
            if !out.is_empty() {
                break;
            }
            let alternate = exchange.arguments.get("alternate-exchange").and_then(FieldValue::as_str);
            let Some(next) = alternate.and_then(|name| self.exchanges.read().get(name).cloned()) else {
                break;
            };
            exchange = next;
        }
        dedupe_queues(out);
        Ok(Routed::ToQueues)
    }
}

/// What routing did with a message, besides finding its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// It goes to the queues found (perhaps none).
    ToQueues,
    /// A delayed-message exchange holds it; `stored` when in a durable exchange's log, so a
    /// confirm must wait for the store's next sync as for a message stored in a queue.
    Delayed { stored: bool },
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

    fn declare(
        v: &VHost,
        name: &str,
        kind: &str,
        arguments: FieldTable,
    ) -> Result<Arc<Exchange>, BrokerError> {
        v.declare_exchange(ExchangeSpec {
            name: name.into(),
            kind: kind.into(),
            arguments,
            ..Default::default()
        })
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
        let amqp: warren_connection::AmqpError = e.clone().into();
        assert_eq!(amqp.code, warren_connection::error::PRECONDITION_FAILED);
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
