//! A channel's delivery side, shared between its connection and the queues that deliver to it:
//! delivery tags, the unacknowledged deliveries, channel-wide prefetch. It is the core's
//! [`DeliveryTarget`] for AMQP: it encodes `basic.deliver` into its connection's outbox.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use warren_connection::AmqpError;
use warren_protocol::frame;
use warren_protocol::methods::{BasicCancel, BasicDeliver, BasicGetOk};
use warren_protocol::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use warren_broker::{
    ChannelEntry, ConsumerRef, Counter, DeliveryTarget, Message, Queue, QueuedMessage, TargetId,
};

use crate::outbox::{Outbox, SharedWriter, HIGH_WATER_MARK, READ_PAUSE_MARK, SHARE_BODIES_FROM};

/// A delivery the client has not yet acknowledged.
#[derive(Debug)]
pub struct Unacked {
    /// Its delivery tag.
    pub tag: u64,
    /// The queue it came from.
    pub queue: Arc<Queue>,
    /// The message.
    pub message: QueuedMessage,
    /// None for basic.get deliveries.
    pub consumer: Option<ShortStr>,
    /// When the consumer-timeout check first saw it outstanding (it runs every second): the
    /// timeout counts from then, so it fires up to a check period late, never early. Taking
    /// the time at each delivery would put a clock read on the delivery path.
    pub delivered_at: Option<Instant>,
}

#[derive(Debug)]
struct DeliveryState {
    next_tag: u64,
    /// Ordered by tag, since tags only grow.
    unacked: VecDeque<Unacked>,
    /// basic.qos with global=true: limit on unacked consumer deliveries across the channel.
    global_prefetch: u16,
    consumer_unacked: u32,
    /// The channel's consumers by tag. Shared, so a queue deleted elsewhere can forget them.
    consumers: HashMap<ShortStr, Arc<Queue>>,
    closed: bool,
    /// The consumer timeout (in ms) an outstanding delivery exceeded: the connection is to close
    /// the channel. Set by [`ChannelHandle::check_timeout`], taken by the session.
    timed_out: Option<u64>,
}

/// A channel's delivery side (see the module documentation).
pub struct ChannelHandle {
    /// The channel number.
    pub number: u16,
    /// The connection's outbox.
    pub outbox: Arc<Outbox>,
    /// The channel in the broker's registry: its counters and what listings show.
    pub entry: Arc<ChannelEntry>,
    state: Mutex<DeliveryState>,
    /// Wakes the connection's task (to close the channel when a delivery timed out).
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for ChannelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelHandle").field("number", &self.number).finish()
    }
}

impl ChannelHandle {
    /// A channel writing to `outbox`, registered as `entry`; `wake` wakes the connection's task.
    pub fn new(
        number: u16,
        outbox: Arc<Outbox>,
        entry: Arc<ChannelEntry>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        ChannelHandle {
            number,
            outbox,
            entry,
            wake,
            state: Mutex::new(DeliveryState {
                next_tag: 1,
                unacked: VecDeque::new(),
                global_prefetch: 0,
                consumer_unacked: 0,
                consumers: HashMap::new(),
                closed: false,
                timed_out: None,
            }),
        }
    }

    /// The consumer timeout: as RabbitMQ, the oldest outstanding delivery is checked against its
    /// queue's `x-consumer-timeout`, or else `default_ms` (0 = none), counting from the first
    /// check that saw it. When it is over, the channel is marked timed out and its connection
    /// woken to close it; true then.
    fn timeout_check(&self, now: Instant, default_ms: u64) -> bool {
        let mut st = self.state.lock();
        if st.closed || st.timed_out.is_some() {
            return false;
        }
        // Deliveries since the last check are the ones at the back without a time.
        for u in st.unacked.iter_mut().rev() {
            if u.delivered_at.is_some() {
                break;
            }
            u.delivered_at = Some(now);
        }
        let Some(oldest) = st.unacked.front_mut() else { return false };
        // (One put back in the middle, by a rolled-back transaction, is timed once it is oldest.)
        let seen = *oldest.delivered_at.get_or_insert(now);
        let ms = oldest.queue.consumer_timeout().map_or(default_ms, |d| d.as_millis() as u64);
        if ms == 0 || now.saturating_duration_since(seen) < Duration::from_millis(ms) {
            return false;
        }
        st.timed_out = Some(ms);
        drop(st);
        (self.wake)();
        true
    }

    /// The timeout (ms) the channel exceeded, once: the session then closes the channel.
    pub fn take_timed_out(&self) -> Option<u64> {
        self.state.lock().timed_out.take()
    }

    /// Sends a message to a consumer if the channel can take it now; hands it back otherwise.
    // Handing the message back by value keeps the hot path free of allocation.
    #[allow(clippy::result_large_err)]
    fn try_deliver(
        &self,
        queue: &Arc<Queue>,
        consumer: ConsumerRef<'_>,
        message: QueuedMessage,
    ) -> Result<(), QueuedMessage> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(message);
        }
        if !consumer.no_ack && st.global_prefetch != 0 && st.consumer_unacked >= u32::from(st.global_prefetch)
        {
            return Err(message);
        }
        if !self.outbox.has_room(HIGH_WATER_MARK) {
            return Err(message);
        }
        let tag = st.next_tag;
        st.next_tag += 1;
        let frame_max = self.outbox.frame_max();
        let counted = queue.counts_deliveries();
        self.outbox
            .write_shared(|w| write_deliver(w, self.number, consumer.tag, tag, &message, counted, frame_max));
        // Deliveries to this channel are made under its lock: one counter writer at a time.
        let counters = self.entry.delivery_counters();
        counters.add_owned(if consumer.no_ack { Counter::DeliveredNoAck } else { Counter::DeliveredAck }, 1);
        if message.redelivered {
            counters.add_owned(Counter::Redelivered, 1);
        }
        if !consumer.no_ack {
            st.consumer_unacked += 1;
            st.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                message,
                consumer: Some(consumer.tag.clone()),
                delivered_at: None,
            });
            self.entry.set_unacked(st.unacked.len() as u64);
        }
        Ok(())
    }

    /// Records a basic.get delivery and writes its get-ok into `out` (the connection's replies).
    pub fn deliver_get(
        &self,
        queue: &Arc<Queue>,
        message: QueuedMessage,
        message_count: u32,
        no_ack: bool,
        out: &mut BytesMut,
        frame_max: u32,
    ) {
        let mut st = self.state.lock();
        let tag = st.next_tag;
        st.next_tag += 1;
        let get_ok = BasicGetOk {
            delivery_tag: tag,
            redelivered: message.redelivered,
            exchange: message.message.exchange.clone(),
            routing_key: message.message.routing_key.clone(),
            message_count,
        };
        frame::write_method(out, self.number, &Method::BasicGetOk(get_ok));
        let properties = delivered_properties(&message, queue.counts_deliveries());
        frame::write_content(out, self.number, 60, &properties, &message.message.body, frame_max);
        let counters = self.entry.delivery_counters();
        counters.add_owned(if no_ack { Counter::GetNoAck } else { Counter::GetAck }, 1);
        if message.redelivered {
            counters.add_owned(Counter::Redelivered, 1);
        }
        if !no_ack {
            st.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                message,
                consumer: None,
                delivered_at: None,
            });
            self.entry.set_unacked(st.unacked.len() as u64);
        }
    }

    /// Removes the deliveries an ack, nack or reject names. The tag must be outstanding, as in
    /// RabbitMQ; `multiple` also takes every earlier one; tag 0 with `multiple` takes all.
    pub fn take_settled(&self, tag: u64, multiple: bool) -> Result<Vec<Unacked>, AmqpError> {
        let mut st = self.state.lock();
        let taken: Vec<Unacked> = if multiple && tag == 0 {
            st.unacked.drain(..).collect()
        } else {
            let pos = st
                .unacked
                .binary_search_by_key(&tag, |u| u.tag)
                .map_err(|_| AmqpError::precondition_failed(format!("unknown delivery tag {tag}")))?;
            if multiple {
                st.unacked.drain(..=pos).collect()
            } else {
                st.unacked.remove(pos).into_iter().collect()
            }
        };
        let from_consumers = taken.iter().filter(|u| u.consumer.is_some()).count() as u32;
        st.consumer_unacked = st.consumer_unacked.saturating_sub(from_consumers);
        self.entry.set_unacked(st.unacked.len() as u64);
        Ok(taken)
    }

    /// Takes every outstanding delivery (channel close, basic.recover).
    pub fn take_all(&self) -> Vec<Unacked> {
        self.take_settled(0, true).unwrap_or_default()
    }

    /// Puts deliveries back among the outstanding ones (a rolled-back transaction's acks).
    pub fn restore(&self, deliveries: Vec<Unacked>) {
        let mut st = self.state.lock();
        for u in deliveries {
            if u.consumer.is_some() {
                st.consumer_unacked += 1;
            }
            let pos = st.unacked.partition_point(|x| x.tag < u.tag);
            st.unacked.insert(pos, u);
        }
        self.entry.set_unacked(st.unacked.len() as u64);
    }

    /// Records a consumer; false if the tag is already in use on this channel.
    pub fn register_consumer(&self, tag: ShortStr, queue: Arc<Queue>) -> bool {
        let mut st = self.state.lock();
        if st.consumers.contains_key(&tag) {
            return false;
        }
        st.consumers.insert(tag, queue);
        self.entry.set_consumers(st.consumers.len() as u32);
        true
    }

    /// Whether `tag` names one of the channel's consumers.
    pub fn has_consumer(&self, tag: &str) -> bool {
        self.state.lock().consumers.contains_key(tag)
    }

    /// A direct reply-to delivery: never acknowledged, and as in RabbitMQ it carries the
    /// channel's next delivery tag without taking it. False if the channel is closed.
    pub fn deliver_reply(&self, consumer_tag: &ShortStr, message: &Message) -> bool {
        let st = self.state.lock();
        // Replies nobody reads are dropped rather than piled up without bound.
        if st.closed || !self.outbox.has_room(READ_PAUSE_MARK) {
            return false;
        }
        let deliver = BasicDeliver {
            consumer_tag: consumer_tag.clone(),
            delivery_tag: st.next_tag,
            redelivered: false,
            exchange: message.exchange.clone(),
            routing_key: message.routing_key.clone(),
        };
        let frame_max = self.outbox.frame_max();
        self.outbox.write_shared(|w| {
            frame::write_method(w.buf(), self.number, &Method::BasicDeliver(deliver));
            w.write_content(self.number, 60, &message.properties, &message.body, frame_max);
        });
        true
    }

    /// Forgets consumer `tag`; returns its queue.
    pub fn unregister_consumer(&self, tag: &str) -> Option<Arc<Queue>> {
        let mut st = self.state.lock();
        let queue = st.consumers.remove(tag);
        self.entry.set_consumers(st.consumers.len() as u32);
        queue
    }

    /// The queues this channel consumes from.
    pub fn consumer_queues(&self) -> Vec<Arc<Queue>> {
        self.state.lock().consumers.values().cloned().collect()
    }

    /// Whether the channel has a consumer.
    pub fn has_consumers(&self) -> bool {
        !self.state.lock().consumers.is_empty()
    }

    /// Forgets every consumer; returns them with their queues.
    pub fn take_consumers(&self) -> Vec<(ShortStr, Arc<Queue>)> {
        let taken = self.state.lock().consumers.drain().collect();
        self.entry.set_consumers(0);
        taken
    }

    /// Whether a channel-wide prefetch limit is set.
    pub fn has_global_prefetch(&self) -> bool {
        self.state.lock().global_prefetch != 0
    }

    /// Sets the channel-wide prefetch limit (0 = none).
    pub fn set_global_prefetch(&self, count: u16) {
        self.state.lock().global_prefetch = count;
    }

    /// Stops deliveries for good; returns what was outstanding, to be requeued.
    pub fn close(&self) -> Vec<Unacked> {
        self.state.lock().closed = true;
        self.take_all()
    }

    /// How many deliveries are outstanding.
    pub fn unacked_count(&self) -> usize {
        self.state.lock().unacked.len()
    }
}

impl DeliveryTarget for ChannelHandle {
    fn id(&self) -> TargetId {
        self.entry.id
    }

    fn deliver(
        &self,
        queue: &Arc<Queue>,
        consumer: ConsumerRef<'_>,
        message: QueuedMessage,
    ) -> Result<(), QueuedMessage> {
        self.try_deliver(queue, consumer, message)
    }

    /// Tells the client (when it asked to be told) that the broker cancelled its consumer.
    fn cancelled(&self, tag: &ShortStr) {
        self.unregister_consumer(tag);
        if self.outbox.cancel_notify() {
            let cancel = BasicCancel { consumer_tag: tag.clone(), nowait: true };
            self.outbox.write(|buf| frame::write_method(buf, self.number, &Method::BasicCancel(cancel)));
        }
    }

    fn check_timeout(&self, now: Instant, default_ms: u64) -> bool {
        self.timeout_check(now, default_ms)
    }
}

#[inline]
fn write_deliver(
    w: &mut SharedWriter<'_>,
    channel: u16,
    consumer_tag: &ShortStr,
    tag: u64,
    m: &QueuedMessage,
    counted: bool,
    frame_max: u32,
) {
    let deliver = BasicDeliver {
        consumer_tag: consumer_tag.clone(),
        delivery_tag: tag,
        redelivered: m.redelivered,
        exchange: m.message.exchange.clone(),
        routing_key: m.message.routing_key.clone(),
    };
    let buf = w.buf();
    frame::write_method(buf, channel, &Method::BasicDeliver(deliver));
    let properties = delivered_properties(m, counted);
    let body = &m.message.body;
    // `write_content` decides the same; deciding here keeps the small-body path a straight
    // write into the buffer (34 instructions a message less, bench/instructions.sh).
    if body.len() < SHARE_BODIES_FROM {
        frame::write_content(buf, channel, 60, &properties, body, frame_max);
    } else {
        w.write_content(channel, 60, &properties, body, frame_max);
    }
}

/// The properties a delivery carries: as published, plus, from a queue that counts deliveries,
/// the `x-delivery-count` header (a long: how often it was returned, 0 the first time), as
/// RabbitMQ's quorum queues send it. Other queues' deliveries decode nothing.
#[inline]
fn delivered_properties(m: &QueuedMessage, counted: bool) -> Cow<'_, Bytes> {
    if !counted {
        return Cow::Borrowed(&m.message.properties);
    }
    with_delivery_count(m)
}

fn with_delivery_count(m: &QueuedMessage) -> Cow<'_, Bytes> {
    let Ok(mut props) = BasicProperties::decode(&m.message.properties) else {
        return Cow::Borrowed(&m.message.properties);
    };
    props
        .headers
        .get_or_insert_with(FieldTable::new)
        .insert("x-delivery-count", FieldValue::I64(i64::from(m.delivery_count)));
    let mut out = BytesMut::new();
    props.encode(&mut out);
    Cow::Owned(out.freeze())
}
