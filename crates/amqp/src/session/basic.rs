//! basic.* methods: publish, consumers, get, acknowledgements, qos, recover.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_broker::{
    generated_name, validate_consume_args, BrokerError, ConsumeRefused, Consumer, Counter, DeliveryTarget,
    Effects, Message, Now, Permission, PublishResult, Queue, Resource, Settle, VHost,
};
use warren_connection::{AmqpError, Connection, PublishOutcome};
use warren_protocol::frame::{self, ContentHeader};
use warren_protocol::methods::*;
use warren_protocol::{properties, FieldValue, LenientValue, Method, ShortStr};

use super::modes::Mode;
use super::reply_to::{REPLY_PREFIX, REPLY_QUEUE};
use super::Session;
use crate::channel::{ChannelHandle, Unacked};
use crate::error::amqp_error;

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
        self.check_publish(&publish.exchange, &publish.routing_key)?;
        self.rewrite_reply_to(channel, &mut header)?;
        self.check_user_id(&header)?;
        check_properties(&header.properties).map_err(amqp_error)?;
        let ch = self.channel_or_err(channel)?;
        ch.handle.entry.counters().add_owned(Counter::Published, 1);
        if let Some(buffered) = ch.mode.buffer_publish(&publish, &header, &body) {
            return buffered;
        }
        let result = self.route_message(conn, channel, publish, header, body)?;
        let outcome = outcome(&result);
        match self.channel(channel) {
            // A queue at its limit with x-overflow reject-publish refused it: a nack, as RabbitMQ.
            Some(ch) if matches!(ch.mode, Mode::Confirm(_)) => {
                ch.mode.published(if result.rejected { PublishOutcome::Failed } else { outcome })
            }
            // Without confirms there is nobody to nack: a message we could not keep is an error.
            _ if outcome == PublishOutcome::Failed => {
                return Err(AmqpError::internal_error("the message could not be stored"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Routes a publish to its queues through the core (returning it to the publisher if
    /// mandatory and unroutable, handing a direct reply to its consumer).
    pub(super) fn route_message(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        publish: BasicPublish,
        header: ContentHeader,
        body: Bytes,
    ) -> Result<PublishResult, AmqpError> {
        let vhost = self.vhost()?;
        let publish_mandatory = publish.mandatory;
        let mut message = Message {
            exchange: publish.exchange,
            routing_key: publish.routing_key,
            properties: header.properties,
            body,
        };
        let extra_keys = if properties::has_property(&message.properties, properties::HEADERS) {
            sender_selected_keys(&mut message)
        } else {
            Vec::new()
        };
        if message.exchange.is_empty() && message.routing_key.starts_with(REPLY_PREFIX) {
            // Direct reply-to: no queue takes it, so it is returned if mandatory, as in RabbitMQ.
            self.node.replies.deliver(&message);
        }
        let mut routed = std::mem::take(&mut self.routed);
        let published = vhost.publish(message, &extra_keys, self.now, &mut self.effects, &mut routed);
        self.routed = routed;
        let (result, unrouted) = published.map_err(amqp_error)?;
        // A held delayed message reaches no queue now: a mandatory one is returned, as with the
        // plugin, though it is delivered later. So is a duplicate an exchange dropped (as the
        // deduplication plugin and LavinMQ do), and it is confirmed all the same.
        if let Some(message) = unrouted {
            let counters = self.channel_or_err(channel)?.handle.entry.counters();
            if publish_mandatory {
                counters.add_owned(Counter::ReturnedUnroutable, 1);
                return_unroutable(conn, channel, &message);
            } else if !result.held && !result.duplicate {
                counters.add_owned(Counter::DroppedUnroutable, 1);
            }
        }
        Ok(result)
    }

    /// A publisher may only claim its own identity in the user_id property.
    fn check_user_id(&mut self, header: &ContentHeader) -> Result<(), AmqpError> {
        if !properties::has_property(&header.properties, properties::USER_ID) {
            return Ok(());
        }
        let claimed = header.decode_properties().ok().and_then(|p| p.user_id);
        match claimed {
            Some(claimed) if *claimed != *self.username && !self.may_impersonate() => {
                Err(amqp_error(BrokerError::UserIdMismatch {
                    claimed: claimed.to_string(),
                    user: self.username.clone(),
                }))
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
            ch.handle.entry.set_prefetch(ch.consumer_prefetch, m.prefetch_count);
        } else {
            // As RabbitMQ: a per-consumer limit also lifts an earlier channel-wide one.
            ch.consumer_prefetch = m.prefetch_count;
            ch.handle.set_global_prefetch(0);
            ch.handle.entry.set_prefetch(m.prefetch_count, 0);
        }
        let queues = ch.handle.consumer_queues();
        conn.send_method(channel, &BasicQosOk {}.into());
        for q in queues {
            self.effects.wake(&q);
        }
        Ok(())
    }

    /// The queue a method names, or for "" the last queue declared on the channel.
    pub(super) fn named_queue(&mut self, channel: u16, name: &ShortStr) -> Result<ShortStr, AmqpError> {
        if !name.is_empty() {
            return Ok(name.clone());
        }
        let ch = self.channel_or_err(channel)?;
        ch.last_queue.clone().ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    /// The queue named `name` (see [`Session::named_queue`]), if this connection may use it.
    fn usable_queue(&mut self, channel: u16, name: &ShortStr) -> Result<(Arc<VHost>, Arc<Queue>), AmqpError> {
        let vhost = self.vhost()?;
        let name = self.named_queue(channel, name)?;
        self.check(Permission::Read, Resource::Queue, &name)?;
        let queue = vhost.queue(&name).map_err(amqp_error)?;
        vhost.check_exclusive_access(&queue, self.id()).map_err(amqp_error)?;
        Ok((vhost, queue))
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
        let (vhost, queue) = self.usable_queue(channel, &m.queue)?;
        if let Err((arg, reason)) = validate_consume_args(&m.arguments) {
            let (queue, vhost) = (queue.name.to_string(), vhost.name.clone());
            return Err(amqp_error(BrokerError::InvalidArg { arg: arg.to_owned(), queue, vhost, reason }));
        }
        let now = self.now.instant;
        let ch = self.channel_or_err(channel)?;
        let tag =
            if m.consumer_tag.is_empty() { generated_name("amq.ctag-") } else { m.consumer_tag.clone() };
        if !ch.handle.register_consumer(tag.clone(), queue.clone()) {
            return Err(AmqpError::not_allowed(format!("attempt to reuse consumer tag '{tag}'")));
        }
        let consumer = Consumer::new(
            tag.clone(),
            ch.handle.clone(),
            m.no_ack,
            m.exclusive,
            ch.consumer_prefetch,
            m.arguments.clone(),
        );
        let added = queue.add_consumer(consumer, now);
        if added.is_err() {
            ch.handle.unregister_consumer(&tag);
        }
        match added {
            Ok(()) => {}
            Err(ConsumeRefused::ExclusiveUse) => {
                let (name, vhost) = (queue.name.to_string(), vhost.name.clone());
                return Err(amqp_error(BrokerError::ExclusiveConsumer { name, vhost }));
            }
            Err(ConsumeRefused::Deleted) => {
                let (name, vhost) = (queue.name.to_string(), vhost.name.clone());
                return Err(amqp_error(BrokerError::QueueNotFound { name, vhost }));
            }
        }
        if !m.nowait {
            conn.send_method(channel, &BasicConsumeOk { consumer_tag: tag }.into());
        }
        // Deliveries start once consume-ok is out.
        self.effects.wake(&queue);
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
        let now = self.now.instant;
        let ch = self.channel_or_err(channel)?;
        let target = ch.handle.id();
        if let Some(queue) = ch.handle.unregister_consumer(&m.consumer_tag) {
            if queue.remove_consumer(target, &m.consumer_tag, now) {
                self.auto_delete_queue(&queue);
            } else if queue.single_active() {
                // The next consumer of a single-active-consumer queue takes over, after cancel-ok.
                self.effects.wake(&queue);
            }
        }
        if !m.nowait {
            conn.send_method(channel, &BasicCancelOk { consumer_tag: m.consumer_tag.clone() }.into());
        }
        Ok(())
    }

    pub(super) fn basic_get(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &BasicGet,
    ) -> Result<(), AmqpError> {
        let (_, queue) = self.usable_queue(channel, &m.queue)?;
        let frame_max = conn.frame_max();
        if m.no_ack {
            // A no-ack get settles a stored message at once: its ack record goes with the batch.
            self.effects.dirty(&queue);
        }
        let now = self.now.instant;
        let ch = self.channel_or_err(channel)?;
        match queue.get(m.no_ack, now) {
            Some((message, remaining)) => {
                ch.handle.deliver_get(&queue, message, remaining, m.no_ack, conn.out(), frame_max)
            }
            None => {
                ch.handle.entry.counters().add_owned(Counter::GetEmpty, 1);
                conn.send_method(channel, &BasicGetEmpty { cluster_id: Default::default() }.into())
            }
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
        let counter = if how == Settle::Ack { Counter::Acked } else { Counter::Rejected };
        ch.handle.entry.counters().add_owned(counter, settled.len() as u64);
        // In a transaction the deliveries wait for commit.
        let Err(settled) = ch.mode.buffer_settle(settled, how) else {
            return Ok(());
        };
        let handle = ch.handle.clone();
        if handle.has_global_prefetch() {
            // Credit freed channel-wide: every queue the channel consumes from may deliver.
            for q in handle.consumer_queues() {
                self.effects.wake(&q);
            }
        }
        apply_settle(self.vhost.as_deref(), &handle, settled, how, self.now, &mut self.effects, true);
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
        // Only messages over an `x-delivery-limit` are dead-lettered by a requeue. The
        // redeliveries go out after recover-ok.
        let vhost = self.vhost.as_deref();
        apply_settle(vhost, &handle, outstanding, Settle::Requeue, self.now, &mut self.effects, false);
        Ok(())
    }
}

/// Whether a publish's confirm may go now, must wait for the store, or must be a nack.
fn outcome(result: &PublishResult) -> PublishOutcome {
    if result.failed {
        PublishOutcome::Failed
    } else if result.stored {
        PublishOutcome::Stored
    } else {
        PublishOutcome::Done
    }
}

/// Frees consumer credit for settled deliveries and requeues, dead-letters or drops them; the
/// queues' consumers are offered more at once (`dispatch_now`) or once the event's replies are
/// out, and their logs are marked dirty in `effects`. True when a stored message was settled
/// (its ack or return record must be synced before a commit-ok).
pub(super) fn apply_settle(
    vhost: Option<&VHost>,
    handle: &Arc<ChannelHandle>,
    settled: Vec<Unacked>,
    how: Settle,
    now: Now,
    effects: &mut Effects,
    dispatch_now: bool,
) -> bool {
    let target = handle.id();
    let mut wrote = false;
    for_each_queue_run(settled, |queue, run| {
        let stored = run.iter().any(|u| u.message.stored);
        wrote |= stored;
        // Deliveries the settle makes room for may settle stored messages too (no-ack consumers).
        if stored || dispatch_now {
            effects.dirty(queue);
        }
        let settled = run.into_iter().map(|u| (u.consumer, u.message));
        let dead = queue.settle(settled, target, how, dispatch_now.then_some(now.instant));
        if !dispatch_now {
            effects.wake(queue);
        }
        if let Some(vhost) = vhost {
            for (message, reason) in dead {
                vhost.dead_letter(queue, message, reason, now, effects);
            }
        }
    });
    wrote
}

/// Calls `f` once per run of consecutive deliveries from the same queue.
fn for_each_queue_run(unacked: Vec<Unacked>, mut f: impl FnMut(&Arc<Queue>, Vec<Unacked>)) {
    let mut run: Vec<Unacked> = Vec::new();
    for u in unacked {
        if run.last().is_some_and(|last| !Arc::ptr_eq(&last.queue, &u.queue)) {
            let queue = run[0].queue.clone();
            f(&queue, std::mem::take(&mut run));
        }
        run.push(u);
    }
    if let Some(first) = run.first() {
        let queue = first.queue.clone();
        f(&queue, run);
    }
}

/// The extra routing keys of a message that has headers: sender-selected distribution routes
/// it with each key of its `CC` and `BCC` headers as well, and `BCC` is removed from every copy.
fn sender_selected_keys(message: &mut Message) -> Vec<ShortStr> {
    // Most messages with headers have neither: a look at the names in place says so without
    // decoding the table (an unreadable table is decoded, as below).
    if let Some(table) = warren_protocol::raw::headers(&message.properties) {
        let cc_or_bcc =
            |f: &Result<(&[u8], u8, &[u8]), ()>| f.map_or(true, |(name, ..)| name == b"CC" || name == b"BCC");
        if !warren_protocol::raw::fields(table).any(|f| cc_or_bcc(&f)) {
            return Vec::new();
        }
    }
    // Leniently: a header nested too deep to decode must not hide CC and BCC (nor keep BCC in
    // the copies delivered).
    let Ok((props, Some(mut headers))) =
        warren_protocol::BasicProperties::decode_lenient(&message.properties)
    else {
        return Vec::new();
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
    if let Some(LenientValue::Decoded(value)) = &bcc {
        add_keys(Some(value));
    }
    if bcc.is_some() {
        let mut out = BytesMut::new();
        props.encode_lenient(Some(&headers), &mut out);
        message.properties = out.freeze();
    }
    keys
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
    use super::{parse_expiration, sender_selected_keys};
    use bytes::BytesMut;
    use warren_broker::Message;
    use warren_protocol::{BasicProperties, FieldTable, FieldValue};

    #[test]
    fn cc_and_bcc_are_found_and_bcc_removed_beside_headers_nested_too_deep() {
        let keys = |k: &str| FieldValue::Array(vec![FieldValue::LongStr(k.as_bytes().to_vec().into())]);
        let mut deep = FieldValue::I32(7);
        for _ in 0..100 {
            let mut t = FieldTable::new();
            t.insert("n", deep);
            deep = FieldValue::Table(t);
        }
        let mut headers = FieldTable::new();
        headers.insert("deep", deep);
        headers.insert("CC", keys("k1"));
        headers.insert("BCC", keys("k2"));
        let props = BasicProperties { delivery_mode: Some(2), headers: Some(headers), ..Default::default() };
        let mut raw = BytesMut::new();
        props.encode(&mut raw);
        let raw = raw.freeze();
        assert!(BasicProperties::decode(&raw).is_err(), "too deep for the plain decoder");
        let mut message = Message {
            exchange: "x".into(),
            routing_key: "k0".into(),
            properties: raw.clone(),
            body: bytes::Bytes::new(),
        };
        let found: Vec<String> = sender_selected_keys(&mut message).iter().map(|k| k.to_string()).collect();
        assert_eq!(found, ["k1", "k2"]);
        let kept = &message.properties;
        assert!(!kept.windows(3).any(|w| w == b"BCC"), "BCC is removed");
        assert_eq!(kept.len(), raw.len() - (1 + 3 + 1 + 4 + 1 + 4 + 2), "only the BCC entry went");
        assert_eq!(warren_protocol::properties::raw_delivery_mode(kept), Some(2));
    }

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
