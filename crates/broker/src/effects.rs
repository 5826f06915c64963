//! What an operation leaves for its caller to do once it is done: queues to wake, logs to flush,
//! consumers to tell they were cancelled. Operations deep in the core (dead-lettering, delayed
//! delivery, expiry, deletes) record these here instead of reaching up to a session; the caller
//! applies them in one place, in a fixed order, after its replies are out.

use std::sync::Arc;

use crate::dedup::Deduplicator;
use crate::queue::{notify_cancelled, Consumer, Queue};

/// What flushing a batch's logs found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Something was written that a confirm or commit-ok must wait for a sync of.
    pub needs_sync: bool,
    /// A write failed: what the batch stored is not on disk and must not be confirmed.
    pub failed: bool,
}

/// Effects gathered while applying client events or a timer tick.
#[derive(Default, Debug)]
pub struct Effects {
    /// Durable queue logs written to: flushed to the OS together at the end of the batch.
    dirty: Vec<Arc<Queue>>,
    /// A durable log other than a queue's (a delayed-message exchange's) was written: the
    /// batch needs a sync ticket even if no queue was touched.
    stored_elsewhere: bool,
    /// Deduplication windows whose logs were appended to: flushed with the queues' logs.
    dedup_logs: Vec<Arc<Deduplicator>>,
    /// Queues whose consumers may take messages now (a consumer was added, credit freed).
    wake: Vec<Arc<Queue>>,
    /// Consumers the broker removed (their queue was deleted).
    cancelled: Vec<Consumer>,
    /// A queue this batch published to holds its publishers back (flow control).
    held_back_by: Option<Arc<Queue>>,
    /// Store transactions publishes were applied in (see [`Effects::take_transactions`]).
    transactions: Vec<warren_store::Transaction>,
}

impl Effects {
    /// Marks a queue's log as written to in this batch (only durable queues write records).
    #[inline]
    pub fn dirty(&mut self, queue: &Arc<Queue>) {
        if queue.durable && self.dirty.last().is_none_or(|last| !Arc::ptr_eq(last, queue)) {
            self.dirty.push(queue.clone());
        }
    }

    /// Notes that a deduplication window's log was appended to: it is flushed with the batch,
    /// which then needs a sync.
    #[inline]
    pub(crate) fn dedup_logged(&mut self, dedup: &Arc<Deduplicator>) {
        self.stored_elsewhere = true;
        if self.dedup_logs.last().is_none_or(|last| !Arc::ptr_eq(last, dedup)) {
            self.dedup_logs.push(dedup.clone());
        }
    }

    /// Notes that a log other than a queue's was written and must be synced.
    pub fn stored_elsewhere(&mut self) {
        self.stored_elsewhere = true;
    }

    /// Asks for `queue` to be woken once the current replies are out.
    pub fn wake(&mut self, queue: &Arc<Queue>) {
        if !self.wake.iter().any(|q| Arc::ptr_eq(q, queue)) {
            self.wake.push(queue.clone());
        }
    }

    /// Notes that a queue published to holds its publishers back (the first one is kept: the
    /// publisher waits for it, then finds out about the others when it publishes again).
    #[cold]
    pub fn held_back_by(&mut self, queue: &Arc<Queue>) {
        if self.held_back_by.is_none() {
            self.held_back_by = Some(queue.clone());
        }
    }

    /// The queue that holds this batch's publisher back, if any.
    pub fn take_held_back(&mut self) -> Option<Arc<Queue>> {
        self.held_back_by.take()
    }

    /// Consumers to tell they were cancelled.
    pub fn cancelled(&mut self, consumers: Vec<Consumer>) {
        self.cancelled.extend(consumers);
    }

    /// Tells cancelled consumers (a client hears of its consumer's cancellation before the
    /// reply to the queue.delete that caused it, as from RabbitMQ).
    #[inline]
    pub fn notify_cancelled(&mut self) {
        if !self.cancelled.is_empty() {
            notify_cancelled(std::mem::take(&mut self.cancelled));
        }
    }

    /// Wakes the queues asked for (which may mark their logs dirty: a no-ack delivery settles a
    /// stored message). Replies to the client must be out before (consume-ok before the first
    /// delivery).
    #[inline]
    pub fn wake_queues(&mut self, now: std::time::Instant) {
        if !self.wake.is_empty() {
            self.wake_all(now);
        }
    }

    fn wake_all(&mut self, now: std::time::Instant) {
        for queue in std::mem::take(&mut self.wake) {
            queue.wake(now);
            self.dirty(&queue);
        }
    }

    /// Hands what the dirty logs buffered to the OS, once each. A failed write means the
    /// batch's stored messages must not be confirmed: the caller nacks them (the store's health
    /// has logged the cause and raised the alarm).
    pub fn flush_dirty(&mut self) -> Flushed {
        let mut flushed =
            Flushed { needs_sync: !self.dirty.is_empty() || self.stored_elsewhere, failed: false };
        self.stored_elsewhere = false;
        if self.dirty.len() > 1 {
            self.dirty.sort_unstable_by_key(|q| Arc::as_ptr(q) as usize);
            self.dirty.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
        for q in self.dirty.drain(..) {
            if let Err(error) = q.flush() {
                tracing::debug!(queue = %q.name, %error, "writing to the queue's log failed");
                flushed.failed = true;
            }
        }
        if !self.dedup_logs.is_empty() {
            self.flush_dedup_logs(&mut flushed);
        }
        flushed
    }

    fn flush_dedup_logs(&mut self, flushed: &mut Flushed) {
        if self.dedup_logs.len() > 1 {
            self.dedup_logs.sort_unstable_by_key(|d| Arc::as_ptr(d) as usize);
            self.dedup_logs.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
        for d in self.dedup_logs.drain(..) {
            if let Err(error) = d.flush() {
                tracing::debug!(%error, "writing to a deduplication log failed");
                flushed.failed = true;
            }
        }
    }

    /// Applies everything at once (timer ticks and other callers with no replies to order).
    pub fn apply(&mut self, now: std::time::Instant) {
        self.notify_cancelled();
        self.wake_queues(now);
        let flushed = self.flush_dirty();
        for transaction in self.transactions.drain(..) {
            if !flushed.failed {
                transaction.seal();
            }
        }
    }

    /// A publish was applied as store transaction `transaction` (its writes done): it must be
    /// sealed once the batch's writes are flushed, before the batch's sync ticket is taken.
    pub(crate) fn applied_in(&mut self, transaction: warren_store::Transaction) {
        self.transactions.push(transaction);
    }

    /// The transactions publishes of this batch were applied in, for the caller to seal after
    /// [`Effects::flush_dirty`] (a publish admitted by a deduplication window that keeps its keys
    /// on disk is one: its records and its key's count together after a crash).
    pub fn take_transactions(&mut self) -> impl Iterator<Item = warren_store::Transaction> + '_ {
        self.transactions.drain(..)
    }
}
