//! Direct reply-to, as RabbitMQ 3.10 does it: a client consumes from the pseudo-queue
//! `amq.rabbitmq.reply-to` (no-ack only) and publishes requests with that name as `reply_to`;
//! the broker rewrites it to `amq.rabbitmq.reply-to.<id>.<key>`, naming this channel's reply
//! consumer. A reply published to the default exchange with that routing key goes straight to
//! the consumer, through no queue; when the consumer is gone it is dropped.
//!
//! The `<id>` makes a name unique, the `<key>` (16 random bytes) makes it unguessable: only the
//! exact name the requester handed out reaches it (RabbitMQ encodes the channel's pid and a
//! random key the same way).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::Node;

use bytes::BytesMut;
use parking_lot::RwLock;
use warren_connection::{AmqpError, Connection};
use warren_protocol::frame::ContentHeader;
use warren_protocol::methods::{
    BasicCancel, BasicCancelOk, BasicConsume, BasicConsumeOk, QueueDeclare, QueueDeclareOk,
};
use warren_protocol::{properties, BasicProperties, ShortStr};

use warren_broker::{generated_name, BrokerError, Message};

use super::Session;
use crate::channel::ChannelHandle;
use crate::error::amqp_error;

/// The pseudo-queue a reply consumer consumes from, and the `reply_to` a request names it by.
pub const REPLY_QUEUE: &str = "amq.rabbitmq.reply-to";
/// The start of the names the broker hands out for a reply consumer.
pub const REPLY_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// The broker's reply consumers, by the name suffix that reaches them.
#[derive(Default)]
pub struct ReplyRegistry {
    next_id: AtomicU64,
    consumers: RwLock<HashMap<ShortStr, Target>>,
}

struct Target {
    tag: ShortStr,
    channel: Arc<ChannelHandle>,
}

impl ReplyRegistry {
    /// Delivers a reply published to the default exchange with routing key `amq.rabbitmq.reply-to.…`
    /// to the consumer that name belongs to; false (dropped) if there is none.
    pub fn deliver(&self, message: &Message) -> bool {
        let Some(suffix) = message.routing_key.strip_prefix(REPLY_PREFIX) else {
            return false;
        };
        let consumers = self.consumers.read();
        match consumers.get(suffix) {
            Some(target) => target.channel.deliver_reply(&target.tag, message),
            None => false,
        }
    }

    pub(super) fn exists(&self, suffix: &str) -> bool {
        self.consumers.read().contains_key(suffix)
    }

    fn register(node: &Arc<Node>, tag: ShortStr, channel: Arc<ChannelHandle>) -> ReplyConsumer {
        let registry = &node.replies;
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let key: [u8; 16] = rand::random();
        let suffix = ShortStr::from(format!("{}.{}", base64(&id.to_be_bytes()), base64(&key)));
        registry.consumers.write().insert(suffix.clone(), Target { tag: tag.clone(), channel });
        ReplyConsumer { node: node.clone(), tag, suffix }
    }
}

/// A channel's reply consumer; dropping it (cancel, channel or connection closed) unregisters it.
pub(super) struct ReplyConsumer {
    node: Arc<Node>,
    tag: ShortStr,
    suffix: ShortStr,
}

impl Drop for ReplyConsumer {
    fn drop(&mut self) {
        self.node.replies.consumers.write().remove(&self.suffix);
    }
}

impl Session {
    /// basic.consume from `amq.rabbitmq.reply-to`.
    pub(super) fn reply_consume(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &BasicConsume,
    ) -> Result<(), AmqpError> {
        let node = self.node.clone();
        let ch = self.channel_or_err(channel)?;
        if ch.handle.has_consumer(&m.consumer_tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{}'",
                m.consumer_tag
            )));
        }
        if !m.no_ack {
            return Err(AmqpError::precondition_failed("reply consumer cannot acknowledge"));
        }
        if ch.reply.is_some() {
            return Err(AmqpError::precondition_failed("reply consumer already set"));
        }
        let tag =
            if m.consumer_tag.is_empty() { generated_name("amq.ctag-") } else { m.consumer_tag.clone() };
        ch.reply = Some(ReplyRegistry::register(&node, tag.clone(), ch.handle.clone()));
        if !m.nowait {
            conn.send_method(channel, &BasicConsumeOk { consumer_tag: tag }.into());
        }
        Ok(())
    }

    /// basic.cancel of the channel's reply consumer; false if the tag names another consumer.
    pub(super) fn reply_cancel(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &BasicCancel,
    ) -> Result<bool, AmqpError> {
        let ch = self.channel_or_err(channel)?;
        if ch.reply.as_ref().is_none_or(|r| r.tag != m.consumer_tag) {
            return Ok(false);
        }
        ch.reply = None;
        if !m.nowait {
            conn.send_method(channel, &BasicCancelOk { consumer_tag: m.consumer_tag.clone() }.into());
        }
        Ok(true)
    }

    /// queue.declare (passive or not, as in RabbitMQ) of a name starting `amq.rabbitmq.reply-to`:
    /// the pseudo-queue itself and a name handed out for a live reply consumer exist (no messages,
    /// one consumer); any other is not found.
    pub(super) fn reply_declare(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: &QueueDeclare,
    ) -> Result<(), AmqpError> {
        let exists = match m.queue.strip_prefix(REPLY_PREFIX) {
            Some(suffix) => self.node.replies.exists(suffix),
            None => *m.queue == *REPLY_QUEUE,
        };
        if !exists {
            let vhost = self.vhost()?;
            return Err(amqp_error(BrokerError::QueueNotFound {
                name: m.queue.to_string(),
                vhost: vhost.name.clone(),
            }));
        }
        self.channel_or_err(channel)?.last_queue = Some(m.queue.clone());
        if !m.nowait {
            let ok = QueueDeclareOk { queue: m.queue.clone(), message_count: 0, consumer_count: 1 };
            conn.send_method(channel, &ok.into());
        }
        Ok(())
    }

    /// A request naming `amq.rabbitmq.reply-to` as its `reply_to` gets the name of this channel's
    /// reply consumer instead; without one it is an error.
    pub(super) fn rewrite_reply_to(
        &mut self,
        channel: u16,
        header: &mut ContentHeader,
    ) -> Result<(), AmqpError> {
        if !properties::has_property(&header.properties, properties::REPLY_TO) {
            return Ok(());
        }
        let Ok(mut props) = BasicProperties::decode(&header.properties) else {
            return Ok(());
        };
        if props.reply_to.as_deref() != Some(REPLY_QUEUE) {
            return Ok(());
        }
        let ch = self.channel_or_err(channel)?;
        let Some(reply) = &ch.reply else {
            return Err(AmqpError::precondition_failed("fast reply consumer does not exist"));
        };
        props.reply_to = Some(ShortStr::from(format!("{REPLY_PREFIX}{}", reply.suffix)));
        let mut out = BytesMut::new();
        props.encode(&mut out);
        header.properties = out.freeze();
        Ok(())
    }
}

/// Standard base64 with padding, as RabbitMQ's names use.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
