//! exchange.* and queue.* methods: declares, deletes, bindings, purge. Each becomes one of the
//! core's definition commands.

use warren_broker::{
    generated_name, Actor, BindingSpec, BrokerError, Command, DestinationKind, ExchangeSpec, Outcome,
    Permission, QueueSpec, Resource,
};
use warren_connection::{AmqpError, Connection};
use warren_protocol::methods::*;
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use super::Session;
use crate::error::amqp_error;

impl Session {
    /// Applies a definition command as this connection.
    fn apply(&mut self, command: Command) -> Result<Outcome, AmqpError> {
        let vhost = self.vhost()?;
        vhost
            .apply(command, Actor::connection(self.id()), self.now.instant, &mut self.effects)
            .map_err(amqp_error)
    }

    pub(super) fn exchange_declare(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &ExchangeDeclare,
    ) -> Result<(), AmqpError> {
        if !m.passive && !m.exchange.is_empty() {
            self.check(Permission::Configure, Resource::Exchange, &m.exchange)?;
            // A new exchange's alternate exchange is written to by whoever publishes to it.
            if let Some(FieldValue::LongStr(ae)) = m.arguments.get("alternate-exchange") {
                if self.vhost()?.exchange(&m.exchange).is_err() {
                    self.check(Permission::Read, Resource::Exchange, &m.exchange)?;
                    let ae = ShortStr::from(String::from_utf8_lossy(ae).into_owned());
                    self.check(Permission::Write, Resource::Exchange, &ae)?;
                }
            }
        }
        self.apply(Command::DeclareExchange(ExchangeSpec {
            name: m.exchange.clone(),
            kind: m.kind.clone(),
            passive: m.passive,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            arguments: m.arguments.clone(),
        }))?;
        if !m.nowait {
            conn.send_method(channel, &ExchangeDeclareOk {}.into());
        }
        Ok(())
    }

    pub(super) fn exchange_delete(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &ExchangeDelete,
    ) -> Result<(), AmqpError> {
        // RabbitMQ refuses the default and amq.* exchanges before it checks permissions.
        if m.exchange.is_empty() {
            return Err(amqp_error(BrokerError::DefaultExchange));
        }
        if m.exchange.starts_with("amq.") {
            let vhost = self.vhost()?.name.clone();
            return Err(amqp_error(BrokerError::SystemExchange { name: m.exchange.to_string(), vhost }));
        }
        self.check(Permission::Configure, Resource::Exchange, &m.exchange)?;
        self.apply(Command::DeleteExchange { name: m.exchange.clone(), if_unused: m.if_unused })?;
        if !m.nowait {
            conn.send_method(channel, &ExchangeDeleteOk {}.into());
        }
        Ok(())
    }

    pub(super) fn exchange_bind(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &ExchangeBind,
    ) -> Result<(), AmqpError> {
        self.check_binding(Resource::Exchange, &m.destination, &m.source, &m.routing_key)?;
        self.apply(Command::Bind(exchange_binding(&m.source, &m.destination, &m.routing_key, &m.arguments)))?;
        if !m.nowait {
            conn.send_method(channel, &ExchangeBindOk {}.into());
        }
        Ok(())
    }

    pub(super) fn exchange_unbind(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &ExchangeUnbind,
    ) -> Result<(), AmqpError> {
        self.check_binding(Resource::Exchange, &m.destination, &m.source, &m.routing_key)?;
        self.apply(Command::Unbind(exchange_binding(
            &m.source,
            &m.destination,
            &m.routing_key,
            &m.arguments,
        )))?;
        if !m.nowait {
            conn.send_method(channel, &ExchangeUnbindOk {}.into());
        }
        Ok(())
    }

    pub(super) fn queue_declare(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &QueueDeclare,
    ) -> Result<(), AmqpError> {
        if m.queue.starts_with(super::reply_to::REPLY_QUEUE) {
            return self.reply_declare(conn, channel, m);
        }
        // Unlike the other queue methods, declare never means "the last queue" by "". A
        // server-named queue's name is made here: permissions are checked on it.
        let server_named = !m.passive && m.queue.is_empty();
        let name = if server_named { generated_name("amq.gen-") } else { m.queue.clone() };
        if !m.passive {
            self.check(Permission::Configure, Resource::Queue, &name)?;
            if let Some(FieldValue::LongStr(dlx)) = m.arguments.get("x-dead-letter-exchange") {
                // A new queue's dead-letter exchange is written to with what is read from it.
                if self.vhost()?.queue(&name).is_err() {
                    self.check(Permission::Read, Resource::Queue, &name)?;
                    let dlx = ShortStr::from(String::from_utf8_lossy(dlx).into_owned());
                    self.check(Permission::Write, Resource::Exchange, &dlx)?;
                }
            }
        }
        let spec = QueueSpec {
            name,
            passive: m.passive,
            durable: m.durable,
            exclusive: m.exclusive,
            auto_delete: m.auto_delete,
            arguments: m.arguments.clone(),
            server_named,
        };
        let Outcome::Queue(queue) = self.apply(Command::DeclareQueue(spec))? else {
            unreachable!("a queue declare yields its queue")
        };
        let name = queue.name.clone();
        if queue.exclusive_owner == Some(self.id())
            && !self.exclusive_queues.iter().any(|q| std::sync::Arc::ptr_eq(q, &queue))
        {
            self.exclusive_queues.push(queue.clone());
        }
        self.channel_or_err(channel)?.last_queue = Some(name.clone());
        if !m.nowait {
            let ok = QueueDeclareOk {
                queue: name,
                message_count: queue.message_count(self.now.instant),
                consumer_count: queue.consumer_count(),
            };
            conn.send_method(channel, &ok.into());
        }
        Ok(())
    }

    pub(super) fn queue_bind(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &QueueBind,
    ) -> Result<(), AmqpError> {
        let queue = self.named_queue(channel, &m.queue)?;
        let key = if m.queue.is_empty() && m.routing_key.is_empty() {
            queue.clone()
        } else {
            m.routing_key.clone()
        };
        self.check_binding(Resource::Queue, &queue, &m.exchange, &key)?;
        self.apply(Command::Bind(queue_binding(&m.exchange, queue, key, &m.arguments)))?;
        if !m.nowait {
            conn.send_method(channel, &QueueBindOk {}.into());
        }
        Ok(())
    }

    pub(super) fn queue_unbind(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &QueueUnbind,
    ) -> Result<(), AmqpError> {
        let queue = self.named_queue(channel, &m.queue)?;
        self.check_binding(Resource::Queue, &queue, &m.exchange, &m.routing_key)?;
        self.apply(Command::Unbind(queue_binding(&m.exchange, queue, m.routing_key.clone(), &m.arguments)))?;
        conn.send_method(channel, &QueueUnbindOk {}.into());
        Ok(())
    }

    pub(super) fn queue_purge(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &QueuePurge,
    ) -> Result<(), AmqpError> {
        let vhost = self.vhost()?;
        let name = self.named_queue(channel, &m.queue)?;
        self.check(Permission::Read, Resource::Queue, &name)?;
        let queue = vhost.queue(&name).map_err(amqp_error)?;
        vhost.check_exclusive_access(&queue, self.id()).map_err(amqp_error)?;
        let message_count = queue.purge();
        if !m.nowait {
            conn.send_method(channel, &QueuePurgeOk { message_count }.into());
        }
        Ok(())
    }

    pub(super) fn queue_delete(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &QueueDelete,
    ) -> Result<(), AmqpError> {
        let name = self.named_queue(channel, &m.queue)?;
        self.check(Permission::Configure, Resource::Queue, &name)?;
        let command =
            Command::DeleteQueue { name: name.clone(), if_unused: m.if_unused, if_empty: m.if_empty };
        let Outcome::QueueDeleted { messages } = self.apply(command)? else {
            unreachable!("a queue delete yields its message count")
        };
        self.exclusive_queues.retain(|q| q.name != name);
        if !m.nowait {
            conn.send_method(channel, &QueueDeleteOk { message_count: messages }.into());
        }
        Ok(())
    }
}

impl Session {
    /// A binding's checks, in RabbitMQ's order: write on the destination, neither end the
    /// default exchange, read on the source, then the binding key against the user's topic
    /// permissions on a topic source.
    fn check_binding(
        &mut self,
        destination_kind: Resource,
        destination: &ShortStr,
        source: &ShortStr,
        key: &ShortStr,
    ) -> Result<(), AmqpError> {
        self.check(Permission::Write, destination_kind, destination)?;
        if source.is_empty() || (destination_kind == Resource::Exchange && destination.is_empty()) {
            return Err(amqp_error(BrokerError::DefaultExchange));
        }
        self.check(Permission::Read, Resource::Exchange, source)?;
        self.check_topic(Permission::Read, source, key)
    }
}

fn queue_binding(exchange: &ShortStr, queue: ShortStr, key: ShortStr, arguments: &FieldTable) -> BindingSpec {
    BindingSpec {
        source: exchange.clone(),
        destination: queue,
        destination_kind: DestinationKind::Queue,
        key,
        arguments: arguments.clone(),
    }
}

fn exchange_binding(
    source: &ShortStr,
    destination: &ShortStr,
    key: &ShortStr,
    arguments: &FieldTable,
) -> BindingSpec {
    BindingSpec {
        source: source.clone(),
        destination: destination.clone(),
        destination_kind: DestinationKind::Exchange,
        key: key.clone(),
        arguments: arguments.clone(),
    }
}
