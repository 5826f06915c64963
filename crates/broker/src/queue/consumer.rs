//! Consumers: subscriptions of a delivery target (an AMQP channel today; an MQTT session or a
//! stream reader later) to a queue. The core hands messages to a target through the small
//! [`DeliveryTarget`] trait and never encodes a protocol's delivery itself.

use std::sync::Arc;
use std::time::Instant;

use warren_message::{FieldTable, FieldValue, ShortStr};

use super::Queue;
use warren_store::QueuedMessage;

/// Identifies a delivery target within the broker (unique for the broker's lifetime).
pub type TargetId = u64;

/// What a queue delivers to: a protocol's channel or session.
pub trait DeliveryTarget: Send + Sync {
    /// The target's identity, unique for the broker's lifetime (a registry channel's id).
    fn id(&self) -> TargetId;

    /// Offers `message` from `queue` to the target's consumer `consumer`. `Ok` when taken: unless
    /// the consumer is no-ack, the target keeps it outstanding until it hands it back to
    /// [`Queue::settle`]. `Err` hands it back untouched: the target cannot take it now (it is
    /// closed, its prefetch window is full, or its connection's outbox is over its high-water
    /// mark); the target wakes the queue once it can.
    #[allow(clippy::result_large_err)] // handing the message back by value allocates nothing
    fn deliver(
        &self,
        queue: &Arc<Queue>,
        consumer: ConsumerRef<'_>,
        message: QueuedMessage,
    ) -> Result<(), QueuedMessage>;

    /// The broker ended subscription `tag` (its queue was deleted): the client should be told.
    fn cancelled(&self, tag: &ShortStr);

    /// Checks time limits on outstanding deliveries (the consumer timeout) at `now`, with
    /// `default_ms` for queues without their own (0 = none); true when the target timed out and
    /// was told to close.
    fn check_timeout(&self, _now: Instant, _default_ms: u64) -> bool {
        false
    }
}

/// What a delivery says about the consumer it is for.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerRef<'a> {
    /// The consumer tag.
    pub tag: &'a ShortStr,
    /// Deliveries are settled at once, never acknowledged.
    pub no_ack: bool,
}

/// A subscription of a delivery target to a queue.
pub struct Consumer {
    /// The consumer tag, unique within its target.
    pub tag: ShortStr,
    /// Where deliveries go.
    pub target: Arc<dyn DeliveryTarget>,
    /// The target's identity (see [`TargetId`]).
    pub target_id: TargetId,
    /// Deliveries are settled at once, never acknowledged.
    pub no_ack: bool,
    /// No other consumer may use the queue.
    pub exclusive: bool,
    /// Per-consumer prefetch window (0 = unlimited).
    pub prefetch: u16,
    /// The `x-priority` consume argument: consumers of higher priority with credit go first.
    pub priority: i32,
    /// The consume arguments, as given.
    pub arguments: FieldTable,
    /// Deliveries outstanding (not yet settled) from this consumer.
    pub(crate) unacked: u32,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("tag", &self.tag).field("target", &self.target_id).finish()
    }
}

impl Consumer {
    /// A consumer of `target`; the consume arguments set its priority (`x-priority`, an integer
    /// checked beforehand by [`crate::args::validate_consume_args`]).
    pub fn new(
        tag: ShortStr,
        target: Arc<dyn DeliveryTarget>,
        no_ack: bool,
        exclusive: bool,
        prefetch: u16,
        arguments: FieldTable,
    ) -> Self {
        let priority = arguments
            .get("x-priority")
            .and_then(FieldValue::as_i64)
            .map_or(0, |p| p.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
        let target_id = target.id();
        Consumer { tag, target, target_id, no_ack, exclusive, prefetch, priority, arguments, unacked: 0 }
    }

    pub(crate) fn has_credit(&self) -> bool {
        self.no_ack || self.prefetch == 0 || self.unacked < u32::from(self.prefetch)
    }

    pub(crate) fn is(&self, target: TargetId, tag: &str) -> bool {
        self.target_id == target && *self.tag == *tag
    }

    /// Deliveries outstanding from this consumer.
    pub fn unacked(&self) -> u32 {
        self.unacked
    }
}

/// Tells the targets of consumers the broker removed (their queue was deleted).
pub fn notify_cancelled(consumers: Vec<Consumer>) {
    for c in consumers {
        c.target.cancelled(&c.tag);
    }
}
