//! exchange.* and queue.* methods: declares, deletes, bindings, purge.

use warren_connection::{AmqpError, Connection};
use warren_protocol::methods::*;
use warren_protocol::ShortStr;

use super::{notify_cancelled, Session};
use crate::vhost::{ExchangeSpec, QueueSpec};

impl Session {
    pub(super) fn exchange_declare(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &ExchangeDeclare,
    ) -> Result<(), AmqpError> {
        let vhost = self.vhost()?;
        vhost.declare_exchange(ExchangeSpec {
            name: m.exchange.clone(),
            kind: m.kind.clone(),
            passive: m.passive,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            arguments: m.arguments.clone(),
        })?;
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
        self.vhost()?.delete_exchange(&m.exchange, m.if_unused)?;
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
        let vhost = self.vhost()?;
        vhost.bind_exchange(&m.destination, &m.source, m.routing_key.clone(), m.arguments.clone())?;
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
        let vhost = self.vhost()?;
        vhost.unbind_exchange(&m.destination, &m.source, m.routing_key.clone(), m.arguments.clone())?;
        if !m.nowait {
            conn.send_method(channel, &ExchangeUnbindOk {}.into());
        }
        Ok(())
    }

    /// The queue a method names, or for "" the last queue declared on the channel.
    fn resolve_queue_name(&mut self, channel: u16, name: &ShortStr) -> Result<ShortStr, AmqpError> {
        if !name.is_empty() {
            return Ok(name.clone());
        }
        let ch = self.channel_or_err(channel)?;
        ch.last_queue.clone().ok_or_else(|| AmqpError::not_found("no previously declared queue"))
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
        let vhost = self.vhost()?;
        // Unlike the other queue methods, declare never means "the last queue" by "".
        let name = m.queue.clone();
        let spec = QueueSpec {
            name,
            passive: m.passive,
            durable: m.durable,
            exclusive: m.exclusive,
            auto_delete: m.auto_delete,
            arguments: m.arguments.clone(),
        };
        let queue = vhost.declare_queue(spec, self.id)?;
        let name = queue.name.clone();
        if queue.exclusive_owner == Some(self.id)
            && !self.exclusive_queues.iter().any(|q| std::sync::Arc::ptr_eq(q, &queue))
        {
            self.exclusive_queues.push(queue.clone());
        }
        self.channel_or_err(channel)?.last_queue = Some(name.clone());
        if !m.nowait {
            let ok = QueueDeclareOk {
                queue: name,
                message_count: queue.message_count(),
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
        let vhost = self.vhost()?;
        let queue = self.resolve_queue_name(channel, &m.queue)?;
        let key = if m.queue.is_empty() && m.routing_key.is_empty() {
            queue.clone()
        } else {
            m.routing_key.clone()
        };
        vhost.bind_queue(&queue, &m.exchange, key, m.arguments.clone(), self.id)?;
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
        let vhost = self.vhost()?;
        let queue = self.resolve_queue_name(channel, &m.queue)?;
        vhost.unbind_queue(&queue, &m.exchange, m.routing_key.clone(), m.arguments.clone())?;
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
        let name = self.resolve_queue_name(channel, &m.queue)?;
        let queue = vhost.queue(&name)?;
        vhost.check_exclusive_access(&queue, self.id)?;
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
        let vhost = self.vhost()?;
        let name = self.resolve_queue_name(channel, &m.queue)?;
        let (consumers, message_count) = vhost.delete_queue(&name, m.if_unused, m.if_empty, self.id)?;
        self.exclusive_queues.retain(|q| q.name != name);
        self.flush(conn);
        notify_cancelled(consumers);
        if !m.nowait {
            conn.send_method(channel, &QueueDeleteOk { message_count }.into());
        }
        Ok(())
    }
}
