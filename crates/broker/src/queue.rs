//! Queues: ready messages in offset order, consumers served round-robin within their
//! prefetch windows, requeue to the original position.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use warren_protocol::{FieldTable, ShortStr};

use crate::channel::{ChannelHandle, ConsumerRef, Unacked};
use warren_store::QueueLog;

use crate::deadletter::DeathReason;
use crate::message::{Message, QueuedMessage};

/// A subscription of a channel to a queue.
#[derive(Debug)]
pub struct Consumer {
    pub tag: ShortStr,
    pub channel: Arc<ChannelHandle>,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Per-consumer prefetch window (0 = unlimited).
    pub prefetch: u16,
    /// The `x-priority` consume argument: consumers of higher priority with credit go first.
    pub priority: i32,
    unacked: u32,
}

impl Consumer {
    pub fn new(
        tag: ShortStr,
        channel: Arc<ChannelHandle>,
        no_ack: bool,
        exclusive: bool,
        prefetch: u16,
    ) -> Self {
        Consumer { tag, channel, no_ack, exclusive, prefetch, priority: 0, unacked: 0 }
    }

    /// Applies the basic.consume arguments: `x-priority` (an integer, checked by the session).
    pub fn with_arguments(mut self, arguments: &FieldTable) -> Self {
        self.priority = arguments
            .get("x-priority")
            .and_then(warren_protocol::FieldValue::as_i64)
            .map_or(0, |p| p.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
        self
    }

    fn has_credit(&self) -> bool {
        self.no_ack || self.prefetch == 0 || self.unacked < u32::from(self.prefetch)
    }

    fn is(&self, channel: &Arc<ChannelHandle>, tag: &str) -> bool {
        Arc::ptr_eq(&self.channel, channel) && *self.tag == *tag
    }
}

#[derive(Debug)]
struct QueueState {
    ready: Box<dyn QueueLog>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    ever_consumed: bool,
    deleted: bool,
    /// Total body size of the ready messages (for `x-max-length-bytes`).
    ready_bytes: u64,
    /// A message that can expire was ever enqueued: [`Queue::expire_due`] has work to do.
    may_expire: bool,
    /// Expired messages waiting to be dead-lettered by [`Queue::expire_due`].
    expired: Vec<Message>,
    /// When the queue was last used (declared, read with basic.get, left by its last
    /// consumer), for `x-expires`.
    last_used: Instant,
    /// Some consumer has a non-zero `x-priority`.
    consumer_priorities: bool,
}

impl QueueState {
    /// Bookkeeping after consumers were removed.
    fn consumers_left(&mut self) {
        self.consumer_priorities = self.consumers.iter().any(|c| c.priority != 0);
        if self.consumers.is_empty() {
            self.last_used = Instant::now();
        }
    }

    /// Takes the head message, keeping the byte count.
    fn pop(&mut self) -> Option<QueuedMessage> {
        let m = self.ready.pop_front()?;
        self.ready_bytes = self.ready_bytes.saturating_sub(m.message.body.len() as u64);
        Some(m)
    }

    /// Drops expired messages from the head of the queue, as RabbitMQ does: a message behind one
    /// that lives longer waits until it reaches the head. With `keep` they are kept for
    /// dead-lettering.
    fn expire_head(&mut self, keep: bool) {
        let Some(first) = self.ready.front() else { return };
        if first.expires_at.is_none() {
            return;
        }
        let now = Instant::now();
        while self.ready.front().is_some_and(|m| m.expires_at.is_some_and(|at| at <= now)) {
            if let Some(expired) = self.pop() {
                self.ready.settle(expired.offset, expired.stored);
                if keep {
                    self.expired.push(expired.message);
                }
            }
        }
    }
}

/// `x-overflow`: what a queue at its length limit does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

/// What became of a published message in one queue.
#[derive(Debug, Default)]
pub struct Published {
    /// It went to disk for durability (its confirm waits for the store's next sync).
    pub stored: bool,
    /// The queue was full and refused it (`x-overflow` reject-publish*): a confirm nacks it.
    pub rejected: bool,
    /// Messages the queue gave up on to make room or because they expired; the caller
    /// dead-letters them (the queue had a dead-letter exchange).
    pub dead: Vec<(Message, DeathReason)>,
}

/// How an ack, nack or reject settles deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Requeue,
    Discard,
}

impl Settle {
    pub fn reject(requeue: bool) -> Self {
        if requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        }
    }
}

/// Why a consumer could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeRefused {
    /// The queue has an exclusive consumer, or others when an exclusive one was asked for.
    ExclusiveUse,
    Deleted,
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub durable: bool,
    /// The connection that declared an exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// `x-message-ttl`.
    message_ttl: Option<Duration>,
    has_dead_letter_exchange: bool,
    /// `x-max-length`.
    max_length: Option<usize>,
    /// `x-max-length-bytes`: the total body size of ready messages.
    max_length_bytes: Option<u64>,
    overflow: Overflow,
    /// `x-expires`: the queue is deleted after this long unused.
    expires: Option<Duration>,
    /// `x-single-active-consumer`: only the first registered consumer receives.
    single_active: bool,
    /// `x-delivery-limit`: a message returned more often than this is dropped or dead-lettered.
    delivery_limit: Option<u64>,
    /// Returns are counted and deliveries carry `x-delivery-count`: queues with a delivery limit,
    /// and those declared `x-queue-type: quorum` (RabbitMQ's quorum queues always count).
    counts_deliveries: bool,
    /// `x-consumer-timeout`: overrides the broker's consumer timeout for this queue's deliveries.
    consumer_timeout: Option<Duration>,
    state: Mutex<QueueState>,
}

impl Queue {
    pub fn new(
        name: ShortStr,
        durable: bool,
        exclusive_owner: Option<u64>,
        auto_delete: bool,
        arguments: FieldTable,
        log: Box<dyn QueueLog>,
    ) -> Self {
        let message_ttl = arguments
            .get("x-message-ttl")
            .and_then(warren_protocol::FieldValue::as_i64)
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis);
        let has_dead_letter_exchange = arguments.get("x-dead-letter-exchange").is_some();
        let non_negative = |key: &str| {
            arguments
                .get(key)
                .and_then(warren_protocol::FieldValue::as_i64)
                .and_then(|n| u64::try_from(n).ok())
        };
        let max_length = non_negative("x-max-length").map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let max_length_bytes = non_negative("x-max-length-bytes");
        let overflow = match arguments.get("x-overflow").and_then(warren_protocol::FieldValue::as_str) {
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            _ => Overflow::DropHead,
        };
        let expires = non_negative("x-expires").filter(|&ms| ms > 0).map(Duration::from_millis);
        let single_active = matches!(
            arguments.get("x-single-active-consumer"),
            Some(warren_protocol::FieldValue::Bool(true))
        );
        let delivery_limit = non_negative("x-delivery-limit");
        let quorum =
            arguments.get("x-queue-type").and_then(warren_protocol::FieldValue::as_str) == Some("quorum");
        let counts_deliveries = delivery_limit.is_some() || quorum;
        let consumer_timeout = non_negative("x-consumer-timeout").map(Duration::from_millis);
        let ready_bytes = log.recovered_body_bytes();
        Queue {
            name,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            message_ttl,
            has_dead_letter_exchange,
            max_length,
            max_length_bytes,
            overflow,
            expires,
            single_active,
            delivery_limit,
            counts_deliveries,
            consumer_timeout,
            state: Mutex::new(QueueState {
                ready: log,
                consumers: Vec::new(),
                next_consumer: 0,
                ever_consumed: false,
                deleted: false,
                ready_bytes,
                may_expire: message_ttl.is_some(),
                expired: Vec::new(),
                last_used: Instant::now(),
                consumer_priorities: false,
            }),
        }
    }

    pub fn message_count(&self) -> u32 {
        let mut st = self.state.lock();
        st.expire_head(self.has_dead_letter_exchange);
        st.ready.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.state.lock().consumers.len() as u32
    }

    pub fn is_deleted(&self) -> bool {
        self.state.lock().deleted
    }

    /// Whether the queue has `x-single-active-consumer`.
    pub fn single_active(&self) -> bool {
        self.single_active
    }

    /// Whether deliveries carry `x-delivery-count` (see the field).
    pub fn counts_deliveries(&self) -> bool {
        self.counts_deliveries
    }

    /// The `x-consumer-timeout` argument, if set.
    pub fn consumer_timeout(&self) -> Option<Duration> {
        self.consumer_timeout
    }

    /// Restarts the `x-expires` timer (a declare of the queue uses it).
    pub fn mark_used(&self) {
        self.state.lock().last_used = Instant::now();
    }

    /// Whether the queue has been unused for its `x-expires` time, and is to be deleted.
    pub fn unused_expired(&self) -> bool {
        let Some(expires) = self.expires else { return false };
        let st = self.state.lock();
        !st.deleted && st.consumers.is_empty() && st.last_used.elapsed() >= expires
    }

    /// Appends a message and hands it to a consumer if one can take it, applying the queue's
    /// length limits and dropping it at once if it expires before anyone can take it.
    pub fn publish(self: &Arc<Self>, message: Message) -> std::io::Result<Published> {
        let mut out = Published::default();
        let mut st = self.state.lock();
        if st.deleted {
            return Ok(out);
        }
        let size = message.body.len() as u64;
        if self.overflow != Overflow::DropHead && self.would_overflow(&st, size) {
            out.rejected = true;
            if self.overflow == Overflow::RejectPublishDlx && self.has_dead_letter_exchange {
                out.dead.push((message, DeathReason::MaxLength));
            }
            return Ok(out);
        }
        let persistent =
            self.durable && warren_protocol::properties::raw_delivery_mode(&message.properties) == Some(2);
        let ttl = match (self.message_ttl, message.expiration()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let expires_at = ttl.map(|ttl| Instant::now() + ttl);
        let first_in_line = st.ready.is_empty();
        st.ready.append(message, expires_at, persistent)?;
        st.ready_bytes += size;
        if !st.consumers.is_empty() {
            self.dispatch(&mut st, !first_in_line);
        }
        if ttl.is_some() {
            st.may_expire = true;
            // A message nobody could take before it expired (a TTL of 0) goes at once.
            st.expire_head(self.has_dead_letter_exchange);
            out.dead.extend(st.expired.drain(..).map(|m| (m, DeathReason::Expired)));
        }
        if self.max_length.is_some() || self.max_length_bytes.is_some() {
            self.drop_head(&mut st, &mut out.dead);
        }
        out.stored = persistent;
        Ok(out)
    }

    /// Whether one more message of `size` bytes would take the queue over its limits.
    fn would_overflow(&self, st: &QueueState, size: u64) -> bool {
        self.max_length.is_some_and(|max| st.ready.len() >= max)
            || self.max_length_bytes.is_some_and(|max| st.ready_bytes + size > max)
    }

    /// Drops (or keeps for dead-lettering) the oldest ready messages until the queue is within
    /// its limits.
    fn drop_head(&self, st: &mut QueueState, dead: &mut Vec<(Message, DeathReason)>) {
        while self.max_length.is_some_and(|max| st.ready.len() > max)
            || self.max_length_bytes.is_some_and(|max| st.ready_bytes > max)
        {
            let Some(m) = st.pop() else { break };
            st.ready.settle(m.offset, m.stored);
            if self.has_dead_letter_exchange {
                dead.push((m.message, DeathReason::MaxLength));
            }
        }
    }

    /// Drops the expired messages at the head of the queue; returns those to dead-letter
    /// (the queue has a dead-letter exchange), including ones other operations found expired.
    pub fn expire_due(self: &Arc<Self>) -> Vec<Message> {
        let mut st = self.state.lock();
        if !st.may_expire && st.expired.is_empty() {
            return Vec::new();
        }
        st.expire_head(self.has_dead_letter_exchange);
        std::mem::take(&mut st.expired)
    }

    pub fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> Result<(), ConsumeRefused> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(ConsumeRefused::Deleted);
        }
        if st.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && (self.single_active || !st.consumers.is_empty()))
        {
            return Err(ConsumeRefused::ExclusiveUse);
        }
        st.consumer_priorities |= consumer.priority != 0;
        st.consumers.push(consumer);
        st.ever_consumed = true;
        st.last_used = Instant::now();
        // The caller wakes the queue once consume-ok is on its way.
        Ok(())
    }

    /// Removes a consumer; true when an auto-delete queue has just lost its last consumer.
    pub fn remove_consumer(&self, channel: &Arc<ChannelHandle>, tag: &str) -> bool {
        let mut st = self.state.lock();
        let before = st.consumers.len();
        st.consumers.retain(|c| !c.is(channel, tag));
        let removed = st.consumers.len() != before;
        st.consumers_left();
        removed && self.auto_delete && st.consumers.is_empty() && !st.deleted
    }

    /// Removes every consumer of a channel; true as for [`Queue::remove_consumer`].
    pub fn remove_channel_consumers(&self, channel: &Arc<ChannelHandle>) -> bool {
        let mut st = self.state.lock();
        let before = st.consumers.len();
        st.consumers.retain(|c| !Arc::ptr_eq(&c.channel, channel));
        let removed = st.consumers.len() != before;
        st.consumers_left();
        removed && self.auto_delete && st.consumers.is_empty() && !st.deleted
    }

    /// Settled deliveries free their consumers' prefetch credit; requeued ones go back to their
    /// original positions, marked redelivered. One lock, one dispatch for the lot.
    /// With `x-delivery-limit` a requeued message counts one more delivery, and one over the
    /// limit is dropped instead. Returns the messages that are to be dead-lettered.
    pub fn settle(
        self: &Arc<Self>,
        settled: Vec<Unacked>,
        channel: &Arc<ChannelHandle>,
        how: Settle,
    ) -> Vec<(Message, DeathReason)> {
        let mut dead = Vec::new();
        let mut st = self.state.lock();
        for u in settled {
            if let Some(tag) = &u.consumer {
                if let Some(c) = st.consumers.iter_mut().find(|c| c.is(channel, tag)) {
                    c.unacked = c.unacked.saturating_sub(1);
                }
            }
            if how == Settle::Requeue && !st.deleted {
                let mut m = u.message;
                if self.counts_deliveries {
                    m.delivery_count = m.delivery_count.saturating_add(1);
                    if self.delivery_limit.is_some_and(|limit| u64::from(m.delivery_count) > limit) {
                        st.ready.settle(m.offset, m.stored);
                        if self.has_dead_letter_exchange {
                            dead.push((m.message, DeathReason::DeliveryLimit));
                        }
                        continue;
                    }
                    st.ready.note_return(m.offset, m.stored);
                }
                m.redelivered = true;
                st.ready_bytes += m.message.body.len() as u64;
                st.ready.requeue(m);
            } else {
                st.ready.settle(u.message.offset, u.message.stored);
                if how == Settle::Discard && self.has_dead_letter_exchange {
                    dead.push((u.message.message, DeathReason::Rejected));
                }
            }
        }
        self.dispatch(&mut st, true);
        dead
    }

    /// Hands what this queue's log buffered to the OS (once per batch of input).
    pub fn flush(&self) -> std::io::Result<()> {
        self.state.lock().ready.flush()
    }

    /// Gives consumers with credit a try at the ready messages.
    pub fn wake(self: &Arc<Self>) {
        let mut st = self.state.lock();
        self.dispatch(&mut st, true);
    }

    /// basic.get: the next ready message and how many remain.
    /// With `no_ack` the message leaves the queue for good at once.
    pub fn get(&self, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        st.last_used = Instant::now();
        st.expire_head(self.has_dead_letter_exchange);
        let m = st.pop()?;
        if no_ack {
            st.ready.settle(m.offset, m.stored);
        }
        Some((m, st.ready.len() as u32))
    }

    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        st.ready_bytes = 0;
        st.ready.purge() as u32
    }

    /// Marks the queue deleted; returns its consumers (to notify) and how many messages it held.
    pub fn delete(&self) -> (Vec<Consumer>, u32) {
        let mut st = self.state.lock();
        if st.deleted {
            // Already gone (x-expires deleted it before its exclusive owner left, say).
            return (Vec::new(), 0);
        }
        st.deleted = true;
        let n = st.ready.len() as u32;
        st.ready_bytes = 0;
        st.expired.clear();
        st.ready.delete();
        (std::mem::take(&mut st.consumers), n)
    }

    /// Hands ready messages to consumers with credit. `expire` first drops expired messages
    /// from the head; a publish skips that so a message with a TTL of 0 still reaches a
    /// consumer that can take it at once, as in RabbitMQ.
    fn dispatch(self: &Arc<Self>, st: &mut QueueState, expire: bool) {
        let n = st.consumers.len();
        if n == 0 {
            return;
        }
        if expire {
            st.expire_head(self.has_dead_letter_exchange);
        }
        if self.single_active || st.consumer_priorities {
            self.dispatch_selected(st);
            return;
        }
        let QueueState { ready, consumers, next_consumer, ready_bytes, .. } = st;
        'messages: while let Some(mut message) = ready.pop_front() {
            for _ in 0..n {
                let idx = *next_consumer % n;
                *next_consumer = (idx + 1) % n;
                match self.offer(&mut consumers[idx], message, ready, ready_bytes) {
                    Ok(()) => continue 'messages,
                    Err(back) => message = back,
                }
            }
            ready.push_front(message);
            break;
        }
    }

    /// Dispatch for single-active-consumer queues (only the first registered consumer receives)
    /// and for consumers with `x-priority` (the highest priority with credit first, round-robin
    /// among equal priorities).
    fn dispatch_selected(self: &Arc<Self>, st: &mut QueueState) {
        let single_active = self.single_active;
        let QueueState { ready, consumers, next_consumer, ready_bytes, .. } = st;
        let n = if single_active { 1 } else { consumers.len() };
        'messages: while let Some(mut message) = ready.pop_front() {
            // Priority levels from the highest down, found by scanning (no list to allocate).
            let mut below: Option<i32> = None;
            while let Some(level) =
                consumers[..n].iter().map(|c| c.priority).filter(|&p| below.is_none_or(|b| p < b)).max()
            {
                for k in 0..n {
                    let idx = (*next_consumer + k) % n;
                    if consumers[idx].priority != level {
                        continue;
                    }
                    match self.offer(&mut consumers[idx], message, ready, ready_bytes) {
                        Ok(()) => {
                            *next_consumer = (idx + 1) % n;
                            continue 'messages;
                        }
                        Err(back) => message = back,
                    }
                }
                below = Some(level);
            }
            ready.push_front(message);
            break;
        }
    }

    /// Offers a message to one consumer: delivered if the consumer has credit and its channel
    /// takes it (then the queue's accounting follows), handed back otherwise.
    #[allow(clippy::result_large_err)] // handing the message back by value allocates nothing
    fn offer(
        self: &Arc<Self>,
        c: &mut Consumer,
        message: QueuedMessage,
        ready: &mut Box<dyn QueueLog>,
        ready_bytes: &mut u64,
    ) -> Result<(), QueuedMessage> {
        if !c.has_credit() {
            return Err(message);
        }
        let (offset, stored) = (message.offset, message.stored);
        let size = message.message.body.len() as u64;
        let who = ConsumerRef { tag: &c.tag, no_ack: c.no_ack };
        c.channel.try_deliver(self, who, message)?;
        *ready_bytes = ready_bytes.saturating_sub(size);
        if c.no_ack {
            ready.settle(offset, stored);
        } else {
            c.unacked += 1;
        }
        Ok(())
    }
}
