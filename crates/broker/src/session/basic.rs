//! basic.* methods: publish, consumers, get, acknowledgements, qos, recover.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_connection::{AmqpError, Connection, PublishOutcome};
use warren_protocol::frame::{self, ContentHeader};
use warren_protocol::methods::*;
use warren_protocol::{properties, FieldValue, Method, ShortStr};

use super::modes::Mode;
use super::reply_to::{REPLY_PREFIX, REPLY_QUEUE};
use super::{for_each_queue_run, Session};
use crate::channel::{ChannelHandle, Unacked};
use crate::error::BrokerError;
use crate::message::Message;
use crate::names::generated_name;
use crate::queue::{ConsumeRefused, Consumer, Queue, Settle};
use crate::vhost::{Routed, VHost};

impl Session {
    pub(super) fn publish(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        publish: BasicPublish,
        mut header: ContentHeader,
        body: Bytes,
    ) -> Result<(), AmqpError> {
        if publish.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        self.rewrite_reply_to(channel, &mut header)?;
        self.check_user_id(&header)?;
        check_properties(&header.properties)?;
        let ch = self.channel_or_err(channel)?;
        if let Some(buffered) = ch.mode.buffer_publish(&publish, &header, &body) {
            return buffered;
        }
        let (outcome, rejected) = self.route_message(conn, channel, publish, header, body)?;
        match self.channel(channel) {
            // A queue at its limit with x-overflow reject-publish refused it: a nack, as RabbitMQ.
            Some(ch) if matches!(ch.mode, Mode::Confirm(_)) => {
                ch.mode.published(if rejected { PublishOutcome::Failed } else { outcome })
            }
            // Without confirms there is nobody to nack: a message we could not keep is an error.
            _ if outcome == PublishOutcome::Failed => {
                return Err(AmqpError::internal_error("the message could not be stored"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Routes a publish to its queues (returning it to the publisher if mandatory and
    /// unroutable); says whether its confirm must wait for the store, and whether a full queue
    /// refused it.
    pub(super) fn route_message(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        publish: BasicPublish,
        header: ContentHeader,
        body: Bytes,
    ) -> Result<(PublishOutcome, bool), AmqpError> {
        let vhost = self.vhost()?;
        let mut message = Message {
            exchange: publish.exchange,
            routing_key: publish.routing_key,
            properties: header.properties,
            body,
        };
        let mut routed = std::mem::take(&mut self.routed);
        let result = if properties::has_property(&message.properties, properties::HEADERS) {
            route_sender_selected(&vhost, &mut message, &mut routed)
        } else {
            vhost.route(&message.exchange, &message, &mut routed)
        };
        let held_stored = match result {
            Ok(how) => how == Routed::Delayed { stored: true },
            Err(e) => {
                routed.clear();
                self.routed = routed;
                return Err(e.into());
            }
        };
        if message.exchange.is_empty() && message.routing_key.starts_with(REPLY_PREFIX) {
            // Direct reply-to: no queue takes it, so it is returned if mandatory, as in RabbitMQ.
            self.broker.reply_registry().deliver(&message);
        }
        if routed.is_empty() && publish.mandatory {
            return_unroutable(conn, channel, &message);
        }
        // A durable delayed-message exchange wrote it to its log: confirmed once synced.
        self.sync_needed |= held_stored;
        let mut outcome = if held_stored { PublishOutcome::Stored } else { PublishOutcome::Done };
        let mut rejected = false;
        for q in routed.drain(..) {
            match q.publish(message.clone()) {
                Ok(published) => {
                    if published.stored && outcome == PublishOutcome::Done {
                        outcome = PublishOutcome::Stored;
                    }
                    // Even without storing this message, dispatching it may have settled stored
                    // ones (no-ack consumers): their ack records go out with the batch.
                    if q.durable {
                        touch(&mut self.touched, &q);
                    }
                    rejected |= published.rejected;
                    for (dead, reason) in published.dead {
                        vhost.dead_letter(&q, dead, reason, &mut self.touched);
                    }
                }
                Err(error) => {
                    // Whatever went where, the publisher learns it was not kept everywhere.
                    tracing::error!(queue = %q.name, %error, "storing a message failed");
                    outcome = PublishOutcome::Failed;
                }
            }
        }
        self.routed = routed;
        Ok((outcome, rejected))
    }

    /// A publisher may only claim its own identity in the user_id property.
    fn check_user_id(&self, header: &ContentHeader) -> Result<(), AmqpError> {
        if !properties::has_property(&header.properties, properties::USER_ID) {
            return Ok(());
        }
        let claimed = header.decode_properties().ok().and_then(|p| p.user_id);
        match claimed {
            Some(claimed) if *claimed != *self.username => {
                Err(BrokerError::UserIdMismatch { claimed: claimed.to_string(), user: self.username.clone() }
                    .into())
            }
            _ => Ok(()),
        }
    }

    pub(super) fn basic_qos(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &BasicQos,
    ) -> Result<(), AmqpError> {
        if m.prefetch_size != 0 {
            return Err(AmqpError::not_implemented(format!("prefetch_size!=0 ({})", m.prefetch_size)));
        }
        let ch = self.channel_or_err(channel)?;
        if m.global {
            ch.handle.set_global_prefetch(m.prefetch_count);
        } else {
            // As RabbitMQ: a per-consumer limit also lifts an earlier channel-wide one.
            ch.consumer_prefetch = m.prefetch_count;
            ch.handle.set_global_prefetch(0);
        }
        let queues = ch.handle.consumer_queues();
        conn.send_method(channel, &BasicQosOk {}.into());
        self.flush(conn);
        for q in queues {
            q.wake();
            if q.durable {
                touch(&mut self.touched, &q);
            }
        }
        Ok(())
    }

    pub(super) fn basic_consume(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &BasicConsume,
    ) -> Result<(), AmqpError> {
        if *m.queue == *REPLY_QUEUE {
            return self.reply_consume(conn, channel, m);
        }
        let vhost = self.vhost()?;
        let name = if m.queue.is_empty() {
            let ch = self.channel_or_err(channel)?;
            ch.last_queue.clone().ok_or_else(|| AmqpError::not_found("no previously declared queue"))?
        } else {
            m.queue.clone()
        };
        let queue = vhost.queue(&name)?;
        vhost.check_exclusive_access(&queue, self.id)?;
        if let Err((arg, reason)) = crate::args::validate_consume_args(&m.arguments) {
            let (queue, vhost) = (name.to_string(), vhost.name.clone());
            return Err(BrokerError::InvalidArg { arg: arg.to_owned(), queue, vhost, reason }.into());
        }
        let ch = self.channel_or_err(channel)?;
        let tag =
            if m.consumer_tag.is_empty() { generated_name("amq.ctag-") } else { m.consumer_tag.clone() };
        if !ch.handle.register_consumer(tag.clone(), queue.clone()) {
            return Err(AmqpError::not_allowed(format!("attempt to reuse consumer tag '{tag}'")));
        }
        let consumer =
            Consumer::new(tag.clone(), ch.handle.clone(), m.no_ack, m.exclusive, ch.consumer_prefetch)
                .with_arguments(&m.arguments);
        let added = queue.add_consumer(consumer);
        if added.is_err() {
            ch.handle.unregister_consumer(&tag);
        }
        match added {
            Ok(()) => {}
            Err(ConsumeRefused::ExclusiveUse) => {
                let text = format!("queue '{name}' in vhost '{}' in exclusive use", vhost.name);
                return Err(AmqpError::access_refused(text));
            }
            Err(ConsumeRefused::Deleted) => {
                return Err(
                    BrokerError::QueueNotFound { name: name.to_string(), vhost: vhost.name.clone() }.into()
                )
            }
        }
        if !m.nowait {
            conn.send_method(channel, &BasicConsumeOk { consumer_tag: tag }.into());
        }
        // consume-ok goes out before the first delivery.
        self.flush(conn);
        queue.wake();
        if queue.durable {
            touch(&mut self.touched, &queue);
        }
        Ok(())
    }

    pub(super) fn basic_cancel(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &BasicCancel,
    ) -> Result<(), AmqpError> {
        if self.reply_cancel(conn, channel, m)? {
            return Ok(());
        }
        let ch = self.channel_or_err(channel)?;
        let mut take_over = None;
        if let Some(queue) = ch.handle.unregister_consumer(&m.consumer_tag) {
            if queue.remove_consumer(&ch.handle, &m.consumer_tag) {
                self.auto_delete_queue(&queue);
            } else if queue.single_active() {
                take_over = Some(queue);
            }
        }
        if !m.nowait {
            conn.send_method(channel, &BasicCancelOk { consumer_tag: m.consumer_tag.clone() }.into());
        }
        // The next consumer of a single-active-consumer queue takes over, after cancel-ok.
        if let Some(queue) = take_over {
            self.flush(conn);
            queue.wake();
            if queue.durable {
                touch(&mut self.touched, &queue);
            }
        }
        Ok(())
    }

    pub(super) fn basic_get(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &BasicGet,
    ) -> Result<(), AmqpError> {
        let vhost = self.vhost()?;
        let name = if m.queue.is_empty() {
            let ch = self.channel_or_err(channel)?;
            ch.last_queue.clone().ok_or_else(|| AmqpError::not_found("no previously declared queue"))?
        } else {
            m.queue.clone()
        };
        let queue = vhost.queue(&name)?;
        vhost.check_exclusive_access(&queue, self.id)?;
        let frame_max = conn.frame_max();
        if queue.durable && m.no_ack {
            touch(&mut self.touched, &queue);
        }
        let ch = self.channel_or_err(channel)?;
        match queue.get(m.no_ack) {
            Some((message, remaining)) => {
                ch.handle.deliver_get(&queue, message, remaining, m.no_ack, conn.out(), frame_max)
            }
            None => conn.send_method(channel, &BasicGetEmpty { cluster_id: Default::default() }.into()),
        }
        Ok(())
    }

    /// basic.ack, basic.nack and basic.reject.
    pub(super) fn settle(
        &mut self,
        channel: u16,
        tag: u64,
        multiple: bool,
        how: Settle,
    ) -> Result<(), AmqpError> {
        let ch = self.channel_or_err(channel)?;
        let settled = ch.handle.take_settled(tag, multiple)?;
        // In a transaction the deliveries wait for commit.
        let Err(settled) = ch.mode.buffer_settle(settled, how) else {
            return Ok(());
        };
        let handle = ch.handle.clone();
        let other_queues: Vec<_> =
            if handle.has_global_prefetch() { handle.consumer_queues() } else { Vec::new() };
        let mut touched = std::mem::take(&mut self.touched);
        apply_settle(self.vhost.as_deref(), &handle, settled, how, &mut touched);
        self.touched = touched;
        for q in other_queues {
            q.wake();
        }
        Ok(())
    }

    /// basic.recover: every outstanding delivery goes back to its queue.
    pub(super) fn recover(&mut self, channel: u16, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let ch = self.channel_or_err(channel)?;
        let outstanding = ch.handle.take_all();
        let handle = ch.handle.clone();
        // Only messages over an `x-delivery-limit` are dead-lettered by a requeue.
        let mut touched = std::mem::take(&mut self.touched);
        apply_settle(self.vhost.as_deref(), &handle, outstanding, Settle::Requeue, &mut touched);
        self.touched = touched;
        Ok(())
    }
}

/// Frees consumer credit for settled deliveries and requeues, dead-letters or drops them.
/// Durable queues that wrote ack records are added to `touched`, to be flushed with the batch.
pub(super) fn apply_settle(
    vhost: Option<&VHost>,
    handle: &Arc<ChannelHandle>,
    settled: Vec<Unacked>,
    how: Settle,
    touched: &mut Vec<Arc<Queue>>,
) {
    for_each_queue_run(settled, |queue, run| {
        if queue.durable && run.iter().any(|u| u.message.stored) {
            touch(touched, queue);
        }
        let dead = queue.settle(run, handle, how);
        if let Some(vhost) = vhost {
            for (message, reason) in dead {
                vhost.dead_letter(queue, message, reason, touched);
            }
        }
    });
}

/// Remembers a queue whose log must be flushed at the end of the batch.
pub(super) fn touch(touched: &mut Vec<Arc<Queue>>, queue: &Arc<Queue>) {
    if touched.last().is_none_or(|last| !Arc::ptr_eq(last, queue)) {
        touched.push(queue.clone());
    }
}

/// Routes a message that has headers: sender-selected distribution routes it with each key of
/// its `CC` and `BCC` headers as well, and `BCC` is removed from every copy.
fn route_sender_selected(
    vhost: &VHost,
    message: &mut Message,
    routed: &mut Vec<Arc<Queue>>,
) -> Result<Routed, BrokerError> {
    let Ok(mut props) = warren_protocol::BasicProperties::decode(&message.properties) else {
        return vhost.route(&message.exchange, message, routed);
    };
    let Some(headers) = props.headers.as_mut() else {
        return vhost.route(&message.exchange, message, routed);
    };
    let mut keys = Vec::new();
    let mut add_keys = |value: Option<&FieldValue>| {
        if let Some(FieldValue::Array(items)) = value {
            keys.extend(items.iter().filter_map(|item| match item {
                FieldValue::LongStr(key) => Some(ShortStr::from(String::from_utf8_lossy(key).as_ref())),
                _ => None,
            }));
        }
    };
    add_keys(headers.get("CC"));
    let bcc = headers.remove("BCC");
    add_keys(bcc.as_ref());
    if bcc.is_some() {
        let mut out = BytesMut::new();
        props.encode(&mut out);
        message.properties = out.freeze();
    }
    vhost.route_keys(&message.exchange, message, &keys, routed)
}

/// RabbitMQ refuses a delivery mode other than 1 or 2, and an expiration that is not a
/// non-negative integer.
fn check_properties(raw: &Bytes) -> Result<(), BrokerError> {
    if let Some(mode) = warren_protocol::properties::raw_delivery_mode(raw) {
        if mode != 1 && mode != 2 {
            return Err(BrokerError::DeliveryModeUnknown(mode));
        }
    }
    if properties::has_property(raw, properties::EXPIRATION) {
        let expiration = warren_protocol::BasicProperties::decode(raw).ok().and_then(|p| p.expiration);
        if let Some(value) = expiration {
            if let Err(reason) = parse_expiration(&value) {
                return Err(BrokerError::InvalidExpiration { value: value.to_string(), reason });
            }
        }
    }
    Ok(())
}

/// An expiration in milliseconds, or RabbitMQ's reason for refusing it.
fn parse_expiration(value: &str) -> Result<u64, String> {
    let digits_start = usize::from(value.starts_with(['-', '+']));
    let digits = value[digits_start..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("no_integer".to_owned());
    }
    let (number, rest) = value.split_at(digits_start + digits);
    if !rest.is_empty() {
        return Err(format!("{{leftover_string,\"{rest}\"}}"));
    }
    let n: i128 = number.parse().map_err(|_| "no_integer".to_owned())?;
    if n < 0 {
        return Err(format!("{{value_negative,{n}}}"));
    }
    u64::try_from(n).map_err(|_| "no_integer".to_owned())
}

/// basic.return for a mandatory message that reached no queue.
fn return_unroutable(conn: &mut Connection, channel: u16, message: &Message) {
    let ret = BasicReturn {
        reply_code: warren_connection::error::NO_ROUTE,
        reply_text: "NO_ROUTE".into(),
        exchange: message.exchange.clone(),
        routing_key: message.routing_key.clone(),
    };
    let frame_max = conn.frame_max();
    let out = conn.out();
    frame::write_method(out, channel, &Method::BasicReturn(ret));
    frame::write_content(out, channel, 60, &message.properties, &message.body, frame_max);
}

#[cfg(test)]
mod tests {
    use super::parse_expiration;

    #[test]
    fn expirations_are_checked_as_rabbitmq() {
        assert_eq!(parse_expiration("60000"), Ok(60000));
        assert_eq!(parse_expiration("0"), Ok(0));
        assert_eq!(parse_expiration("-1").unwrap_err(), "{value_negative,-1}");
        assert_eq!(parse_expiration("abc").unwrap_err(), "no_integer");
        assert_eq!(parse_expiration("").unwrap_err(), "no_integer");
        assert_eq!(parse_expiration("1.5").unwrap_err(), "{leftover_string,\".5\"}");
    }
}
