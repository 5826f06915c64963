//! Queues: ready messages in offset order, consumers served round-robin within their
//! prefetch windows, requeue to the original position. Time comes in from the caller.

mod consumer;
mod consumers;
mod dispatch;
mod flow;
mod state;
mod ttl_marks;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use warren_message::{FieldTable, FieldValue, ShortStr};
use warren_store::QueueLog;

use crate::counters::{Counter, Counters};
use crate::deadletter::{DeadLetterTo, DeathReason};
use crate::policy::{self, AppliedPolicies, Settings};
use state::QueueState;
use warren_store::{Message, QueuedMessage};

pub use consumer::{notify_cancelled, Consumer, ConsumerRef, DeliveryTarget, TargetId};
pub use consumers::ConsumeRefused;
use flow::Flow;
pub use flow::{FlowBound, FlowWaker, STALL as FLOW_STALL};

/// `x-overflow`: what a queue at its length limit does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// The oldest messages make room (the default).
    DropHead,
    /// The new message is refused (a confirm nacks it).
    RejectPublish,
    /// As `RejectPublish`, and the refused message is dead-lettered.
    RejectPublishDlx,
}

impl Overflow {
    /// The value named as `x-overflow` or a policy's `overflow` names it.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "drop-head" => Some(Self::DropHead),
            "reject-publish" => Some(Self::RejectPublish),
            "reject-publish-dlx" => Some(Self::RejectPublishDlx),
            _ => None,
        }
    }
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
    /// Done with: the message leaves the queue.
    Ack,
    /// Back to the queue, at its original position, marked redelivered.
    Requeue,
    /// Rejected for good: dead-lettered if the queue has a dead-letter exchange.
    Discard,
}

impl Settle {
    /// basic.reject / basic.nack's meaning.
    pub fn reject(requeue: bool) -> Self {
        if requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        }
    }
}

/// The settings a queue applies: its declare arguments combined with the policies that apply
/// (see `policy::resolve`). Kept under the queue's lock and replaced when its policies change.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    /// `x-message-ttl`.
    message_ttl: Option<Duration>,
    has_dead_letter_exchange: bool,
    /// `x-max-length`.
    max_length: Option<usize>,
    /// `x-max-length-bytes`: the total body size of ready messages.
    max_length_bytes: Option<u64>,
    overflow: Option<Overflow>,
    /// `x-expires`: the queue is deleted after this long unused.
    expires: Option<Duration>,
    /// `x-delivery-limit`: a message returned more often than this is dropped or dead-lettered.
    delivery_limit: Option<u64>,
    /// Returns are counted and deliveries carry `x-delivery-count`: queues with a delivery limit,
    /// and those declared `x-queue-type: quorum` (RabbitMQ's quorum queues always count).
    counts_deliveries: bool,
    /// `x-consumer-timeout`: overrides the broker's consumer timeout for this queue's deliveries.
    consumer_timeout: Option<Duration>,
    /// Where dead letters go: `x-dead-letter-exchange` and `x-dead-letter-routing-key`.
    dead_letter: Option<DeadLetterTo>,
}

impl Limits {
    fn from_settings(settings: &Settings, quorum: bool) -> Limits {
        let dead_letter = settings.dead_letter_exchange.as_deref().map(|exchange| DeadLetterTo {
            exchange: ShortStr::from(exchange),
            routing_key: settings.dead_letter_routing_key.as_deref().map(ShortStr::from),
        });
        Limits {
            message_ttl: settings.message_ttl.map(Duration::from_millis),
            has_dead_letter_exchange: dead_letter.is_some(),
            max_length: settings.max_length.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_length_bytes: settings.max_length_bytes,
            overflow: settings.overflow,
            expires: settings.expires.map(Duration::from_millis),
            delivery_limit: settings.delivery_limit,
            counts_deliveries: settings.delivery_limit.is_some() || quorum,
            consumer_timeout: settings.consumer_timeout.map(Duration::from_millis),
            dead_letter,
        }
    }

    fn overflow(&self) -> Overflow {
        self.overflow.unwrap_or(Overflow::DropHead)
    }
}

/// `consumer_timeout_ms` when there is none.
const NO_TIMEOUT: u64 = u64::MAX;

/// A queue: its definition, its messages (in a store log) and its consumers.
#[derive(Debug)]
pub struct Queue {
    /// Unique within its vhost.
    pub name: ShortStr,
    /// Survives a restart (with its persistent messages).
    pub durable: bool,
    /// The connection that declared an exclusive queue.
    pub exclusive_owner: Option<u64>,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// The declare arguments, as given.
    pub arguments: FieldTable,
    /// `x-single-active-consumer`: only the first registered consumer receives.
    single_active: bool,
    /// Its log keeps what a persistent message's record carries (see
    /// [`Queue::publish_carrying`]).
    carries: bool,
    /// Declared `x-queue-type: quorum`: deliveries are counted whatever the policies say.
    quorum: bool,
    /// Copies of two settings read outside the queue's lock: per delivery while the lock is
    /// held (`x-delivery-count`) and by channels checking timeouts (which must not take it).
    counts_deliveries: AtomicBool,
    consumer_timeout_ms: AtomicU64,
    counters: Counters,
    flow: Flow,
    /// The window of keys of a queue that deduplicates (`x-message-deduplication`).
    dedup: Option<Arc<crate::dedup::Deduplicator>>,
    state: Mutex<QueueState>,
}

impl Queue {
    /// A queue over `log` (which may hold recovered messages), declared at `now`.
    pub fn new(
        name: ShortStr,
        durable: bool,
        exclusive_owner: Option<u64>,
        auto_delete: bool,
        arguments: FieldTable,
        log: Box<dyn QueueLog>,
        now: Instant,
    ) -> Self {
        let single_active = matches!(arguments.get("x-single-active-consumer"), Some(FieldValue::Bool(true)));
        let quorum = arguments.get("x-queue-type").and_then(FieldValue::as_str) == Some("quorum");
        let limits = Limits::from_settings(&policy::queue_settings(&arguments), quorum);
        let ready_bytes = log.recovered_body_bytes();
        // Recovered messages may carry an expiry of their own (stored with them).
        let may_expire = limits.message_ttl.is_some() || !log.is_empty();
        // Arguments were checked at declare; bad ones from an old store deduplicate nothing.
        let dedup = crate::dedup::DedupConfig::for_queue(&arguments)
            .ok()
            .flatten()
            .map(|config| Arc::new(crate::dedup::Deduplicator::new(config)));
        let carries = durable && log.carries();
        let queue = Queue {
            name,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            single_active,
            carries,
            quorum,
            counts_deliveries: AtomicBool::new(false),
            consumer_timeout_ms: AtomicU64::new(NO_TIMEOUT),
            counters: Counters::default(),
            flow: Flow::default(),
            dedup,
            state: Mutex::new(QueueState::new(log, ready_bytes, may_expire, now)),
        };
        queue.publish_copies(&limits);
        queue.state.lock().limits = limits;
        queue.with_flow_bound(FlowBound::default())
    }

    /// Applies the policies that apply to a queue being created (or restored).
    pub(crate) fn with_policies(self, applied: AppliedPolicies, now: Instant) -> Self {
        // Only a restored queue holds messages yet; what its policy's limits leave out is
        // dropped as the queue's own arguments would have it (no exchange to route to yet).
        // Expired ones (their time ran out while the broker was down, or a policy TTL of 0)
        // wait for the first tick, which dead-letters them once the exchanges are back.
        let (expired, dropped): (Vec<_>, Vec<_>) =
            self.apply_policies(applied, now).into_iter().partition(|(_, why)| *why == DeathReason::Expired);
        self.state.lock().expired.extend(expired.into_iter().map(|(message, _)| message));
        if !dropped.is_empty() {
            tracing::info!(queue = %self.name, dropped = dropped.len(), "messages over the queue's policy limits dropped");
        }
        self
    }

    /// Replaces the policies that apply, and with them the queue's settings, as RabbitMQ does
    /// when a policy changes (`process_args_policy`): the new limits trim the queue at once, the
    /// `x-expires` timer starts again, expired messages at the head go. Returns the messages
    /// to dead-letter (by the new dead-letter settings).
    pub(crate) fn apply_policies(
        &self,
        applied: AppliedPolicies,
        now: Instant,
    ) -> Vec<(Message, DeathReason)> {
        let limits = Limits::from_settings(
            &policy::resolve_queue(&policy::queue_settings(&self.arguments), &applied.settings()),
            self.quorum,
        );
        self.publish_copies(&limits);
        let mut dead = Vec::new();
        let mut st = self.state.lock();
        st.applied = applied;
        if st.deleted {
            return dead;
        }
        // RabbitMQ sets the new limits before the new overflow: a queue that was dropping at
        // the head is trimmed to them, whatever its new overflow.
        let trims = st.limits.overflow() == Overflow::DropHead || limits.overflow() == Overflow::DropHead;
        // Unlike RabbitMQ, a TTL set or lowered reaches the messages already waiting (issue #11;
        // see `ttl_marks`); a raised or cleared one extends no expiry.
        let ttl_took_effect = match (st.limits.message_ttl, limits.message_ttl) {
            (None, Some(new)) => Some(new),
            (Some(old), Some(new)) => (new < old).then_some(new),
            (_, None) => None,
        };
        st.limits = limits;
        if let Some(ttl) = ttl_took_effect {
            st.ttl_took_effect(ttl, now);
        }
        st.last_used = now;
        if trims {
            st.drop_head(&mut dead);
        }
        st.expire_head(now);
        dead.extend(st.expired.drain(..).map(|m| (m, DeathReason::Expired)));
        self.flow.after_drain(st.ready.len() as u64, st.ready_bytes);
        dead
    }

    /// Keeps the copies of the settings read outside the lock in step with `limits`.
    fn publish_copies(&self, limits: &Limits) {
        self.counts_deliveries.store(limits.counts_deliveries, Ordering::Relaxed);
        let timeout = limits.consumer_timeout.map_or(NO_TIMEOUT, |d| d.as_millis() as u64);
        self.consumer_timeout_ms.store(timeout, Ordering::Relaxed);
    }

    /// The policy and operator policy that apply to the queue now.
    pub fn applied_policies(&self) -> AppliedPolicies {
        self.state.lock().applied.clone()
    }

    /// Where the queue's dead letters go now (its argument, else its policy's).
    pub(crate) fn dead_letter_to(&self) -> Option<DeadLetterTo> {
        self.state.lock().limits.dead_letter.clone()
    }

    /// Sets the backlog past which the queue holds its publishers back (see [`FlowBound`]).
    pub fn with_flow_bound(self, bound: FlowBound) -> Self {
        self.flow.set_bound(bound);
        self
    }

    /// Changes the backlog past which the queue holds its publishers back.
    pub fn set_flow_bound(&self, bound: FlowBound) {
        self.flow.set_bound(bound);
        if bound.messages == 0 {
            self.flow.release_all();
        }
    }

    /// Whether the queue holds its publishers back now (flow control; one relaxed load).
    #[inline]
    pub fn flow_engaged(&self) -> bool {
        self.flow.is_engaged()
    }

    /// Registers `waker` to be called when the queue stops holding publishers back; false if
    /// it does not hold them back (any more).
    pub fn wait_for_flow(&self, waker: FlowWaker) -> bool {
        self.flow.wait(waker)
    }

    /// Messages handed out so far (deliveries and gets): flow control tells stalled consumers
    /// by it.
    fn taken(&self) -> u64 {
        [Counter::DeliveredAck, Counter::DeliveredNoAck, Counter::GetAck, Counter::GetNoAck]
            .into_iter()
            .map(|c| self.counters.get(c))
            .sum()
    }

    /// Releases flow control held for consumers that took nothing for [`FLOW_STALL`] (and
    /// lets it apply again once they take something). Called on every tick.
    pub(crate) fn check_flow(&self, now: Instant) {
        if self.flow.check_stall(self.taken(), now) {
            tracing::info!(
                queue = %self.name,
                "consumers took nothing for a second: publishers to the queue are no longer held back"
            );
        }
    }

    /// Ready messages after dropping the expired ones at the head (what declare-ok reports).
    pub fn message_count(&self, now: Instant) -> u32 {
        let mut st = self.state.lock();
        st.expire_head(now);
        st.ready.len() as u32
    }

    /// What a listing shows, read without changing anything.
    pub fn stats(&self) -> QueueStats {
        let st = self.state.lock();
        QueueStats {
            ready: st.ready.len() as u64,
            unacked: st.unacked,
            ready_bytes: st.ready_bytes,
            consumers: st.consumers.len() as u32,
        }
    }

    /// The queue's message counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How many consumers it has.
    pub fn consumer_count(&self) -> u32 {
        self.state.lock().consumers.len() as u32
    }

    /// Whether the queue has been deleted (a handle may outlive it).
    pub fn is_deleted(&self) -> bool {
        self.state.lock().deleted
    }

    /// Whether the queue has `x-single-active-consumer`.
    pub fn single_active(&self) -> bool {
        self.single_active
    }

    /// Whether deliveries carry `x-delivery-count` (see `Limits`).
    #[inline]
    pub fn counts_deliveries(&self) -> bool {
        self.counts_deliveries.load(Ordering::Relaxed)
    }

    /// The queue's consumer timeout (`x-consumer-timeout` or a policy's), if it has one.
    pub fn consumer_timeout(&self) -> Option<Duration> {
        let ms = self.consumer_timeout_ms.load(Ordering::Relaxed);
        (ms != NO_TIMEOUT).then(|| Duration::from_millis(ms))
    }

    /// Restarts the `x-expires` timer (a declare of the queue uses it).
    pub(crate) fn mark_used(&self, now: Instant) {
        self.state.lock().last_used = now;
    }

    /// Whether the queue has been unused for its `x-expires` time, and is to be deleted.
    pub(crate) fn unused_expired(&self, now: Instant) -> bool {
        let st = self.state.lock();
        let Some(expires) = st.limits.expires else { return false };
        !st.deleted && st.consumers.is_empty() && now.saturating_duration_since(st.last_used) >= expires
    }

    /// Appends a message and hands it to a consumer if one can take it, applying the queue's
    /// length limits and dropping it at once if it expires before anyone can take it.
    pub fn publish(self: &Arc<Self>, message: Message, now: Instant) -> std::io::Result<Published> {
        self.publish_carrying(message, now, &[])
    }

    /// Whether `message`, published here, is stored in a record that can carry bytes with it
    /// (a persistent message on a durable queue whose log carries).
    #[inline]
    pub(crate) fn can_carry(&self, message: &Message) -> bool {
        self.carries && warren_message::properties::raw_delivery_mode(&message.properties) == Some(2)
    }

    /// As [`Queue::publish`], `carried` kept in the message's record if it is stored
    /// (`Published::stored`; only for a message [`Queue::can_carry`]).
    pub(crate) fn publish_carrying(
        self: &Arc<Self>,
        message: Message,
        now: Instant,
        carried: &[u8],
    ) -> std::io::Result<Published> {
        let mut out = Published::default();
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if st.deleted {
            return Ok(out);
        }
        let size = message.body.len() as u64;
        let overflow = st.limits.overflow();
        if overflow != Overflow::DropHead && st.would_overflow(size) {
            out.rejected = true;
            if overflow == Overflow::RejectPublishDlx && st.limits.has_dead_letter_exchange {
                out.dead.push((message, DeathReason::MaxLength));
            }
            return Ok(out);
        }
        let persistent =
            self.durable && warren_message::properties::raw_delivery_mode(&message.properties) == Some(2);
        let ttl = match (st.limits.message_ttl, message.expiration()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let expires_at = ttl.map(|ttl| now + ttl);
        let first_in_line = st.ready.is_empty();
        st.ready.append_carrying(message, expires_at, persistent, carried)?;
        st.ready_bytes += size;
        self.counters.add_owned(Counter::Published, 1);
        if !st.consumers.is_empty() {
            self.dispatch(st, (!first_in_line).then_some(now));
            self.flow.after_publish(st.ready.len() as u64, st.ready_bytes, || self.taken(), now);
        }
        if ttl.is_some() {
            st.may_expire = true;
            // A message nobody could take before it expired (a TTL of 0) goes at once.
            st.expire_head(now);
            out.dead.extend(st.expired.drain(..).map(|m| (m, DeathReason::Expired)));
        }
        if st.limits.max_length.is_some() || st.limits.max_length_bytes.is_some() {
            st.drop_head(&mut out.dead);
        }
        out.stored = persistent;
        Ok(out)
    }

    /// Drops the expired messages at the head of the queue; returns those to dead-letter
    /// (the queue has a dead-letter exchange), including ones other operations found expired.
    pub(crate) fn expire_due(self: &Arc<Self>, now: Instant) -> Vec<Message> {
        let mut st = self.state.lock();
        if !st.may_expire && st.expired.is_empty() {
            return Vec::new();
        }
        st.expire_head(now);
        std::mem::take(&mut st.expired)
    }

    /// What the records its log recovered carried (taken once).
    pub(crate) fn take_recovered_carried(&self) -> Vec<bytes::Bytes> {
        self.state.lock().ready.take_recovered_carried()
    }

    /// What its recovered records carried is safe elsewhere (see
    /// [`warren_store::QueueLog::release_recovered`]).
    pub(crate) fn release_recovered(&self) {
        self.state.lock().ready.release_recovered();
    }

    /// Hands what this queue's log buffered to the OS (once per batch of input).
    pub fn flush(&self) -> std::io::Result<()> {
        self.state.lock().ready.flush()
    }

    /// basic.get: the next ready message and how many remain.
    /// With `no_ack` the message leaves the queue for good at once; otherwise the caller keeps
    /// it outstanding until it hands it to [`Queue::settle`].
    pub fn get(&self, no_ack: bool, now: Instant) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        st.last_used = now;
        st.expire_head(now);
        let Some(m) = st.pop() else {
            self.counters.add_owned(Counter::GetEmpty, 1);
            return None;
        };
        if no_ack {
            st.ready.settle(m.offset, m.stored);
        } else {
            st.unacked += 1;
        }
        self.counters.add_owned(if no_ack { Counter::GetNoAck } else { Counter::GetAck }, 1);
        if m.redelivered {
            self.counters.add_owned(Counter::Redelivered, 1);
        }
        self.flow.after_drain(st.ready.len() as u64, st.ready_bytes);
        Some((m, st.ready.len() as u32))
    }

    /// Drops every ready message; returns how many there were.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        st.ready_bytes = 0;
        let purged = st.ready.purge() as u32;
        self.flow.release_all();
        purged
    }

    /// The deduplication window of a queue that deduplicates.
    pub fn dedup(&self) -> Option<&Arc<crate::dedup::Deduplicator>> {
        self.dedup.as_ref()
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
        if let Some(dedup) = &self.dedup {
            dedup.delete();
        }
        self.flow.release_all();
        (std::mem::take(&mut st.consumers), n)
    }
}

/// A queue's sizes at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages waiting for a consumer.
    pub ready: u64,
    /// Messages delivered and not yet settled.
    pub unacked: u64,
    /// Body bytes of the ready messages.
    pub ready_bytes: u64,
    /// Consumers subscribed.
    pub consumers: u32,
}
