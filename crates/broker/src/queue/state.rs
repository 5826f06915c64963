//! A queue's mutable state, kept under one lock: the ready messages, the consumers and the
//! bookkeeping that limits and expiry read.

use std::time::Instant;

use warren_store::QueueLog;

use super::consumer::Consumer;
use super::ttl_marks::TtlMarks;
use super::Limits;
use crate::deadletter::DeathReason;
use crate::policy::AppliedPolicies;
use warren_store::{Message, QueuedMessage};

#[derive(Debug)]
pub(super) struct QueueState {
    pub(super) ready: Box<dyn QueueLog>,
    pub(super) consumers: Vec<Consumer>,
    pub(super) next_consumer: usize,
    pub(super) deleted: bool,
    /// Total body size of the ready messages (for `x-max-length-bytes`).
    pub(super) ready_bytes: u64,
    /// A message that can expire was ever enqueued (or recovered, or reached by a TTL change):
    /// [`super::Queue::expire_due`] has work to do.
    pub(super) may_expire: bool,
    /// The deadlines message TTL changes gave the messages waiting at the time.
    pub(super) ttl_marks: TtlMarks,
    /// Expired messages waiting to be dead-lettered by [`super::Queue::expire_due`].
    pub(super) expired: Vec<Message>,
    /// When the queue was last used (declared, read with basic.get, left by its last
    /// consumer), for `x-expires`.
    pub(super) last_used: Instant,
    /// Some consumer has a non-zero `x-priority`.
    pub(super) consumer_priorities: bool,
    /// Deliveries outstanding (delivered, not yet settled), for listings.
    pub(super) unacked: u64,
    /// The settings in force: arguments and policies combined.
    pub(super) limits: Limits,
    /// The policies that gave `limits`.
    pub(super) applied: AppliedPolicies,
}

impl QueueState {
    pub(super) fn new(ready: Box<dyn QueueLog>, ready_bytes: u64, may_expire: bool, now: Instant) -> Self {
        QueueState {
            ready,
            consumers: Vec::new(),
            next_consumer: 0,
            deleted: false,
            ready_bytes,
            may_expire,
            ttl_marks: TtlMarks::default(),
            expired: Vec::new(),
            last_used: now,
            consumer_priorities: false,
            unacked: 0,
            limits: Limits::default(),
            applied: AppliedPolicies::default(),
        }
    }

    /// Bookkeeping after consumers were removed.
    pub(super) fn consumers_left(&mut self, now: Instant) {
        self.consumer_priorities = self.consumers.iter().any(|c| c.priority != 0);
        if self.consumers.is_empty() {
            self.last_used = now;
        }
    }

    /// Takes the head message, keeping the byte count.
    pub(super) fn pop(&mut self) -> Option<QueuedMessage> {
        let m = self.ready.pop_front()?;
        self.ready_bytes = self.ready_bytes.saturating_sub(m.message.body.len() as u64);
        Some(m)
    }

    /// Whether one more message of `size` bytes would take the queue over its limits.
    pub(super) fn would_overflow(&self, size: u64) -> bool {
        self.limits.max_length.is_some_and(|max| self.ready.len() >= max)
            || self.limits.max_length_bytes.is_some_and(|max| self.ready_bytes + size > max)
    }

    /// Drops (or keeps for dead-lettering) the oldest ready messages until the queue is within
    /// its limits.
    pub(super) fn drop_head(&mut self, dead: &mut Vec<(Message, DeathReason)>) {
        let (max_length, max_bytes) = (self.limits.max_length, self.limits.max_length_bytes);
        while max_length.is_some_and(|max| self.ready.len() > max)
            || max_bytes.is_some_and(|max| self.ready_bytes > max)
        {
            let Some(m) = self.pop() else { break };
            self.ready.settle(m.offset, m.stored);
            if self.limits.has_dead_letter_exchange {
                dead.push((m.message, DeathReason::MaxLength));
            }
        }
    }

    /// Drops expired messages from the head of the queue, as RabbitMQ does: a message behind one
    /// that lives longer waits until it reaches the head. With a dead-letter exchange they are
    /// kept for dead-lettering.
    pub(super) fn expire_head(&mut self, now: Instant) {
        let keep = self.limits.has_dead_letter_exchange;
        while self.head_expired(now) {
            if let Some(expired) = self.pop() {
                self.ready.settle(expired.offset, expired.stored);
                if keep {
                    self.expired.push(expired.message);
                }
            }
        }
        if !self.ttl_marks.is_empty() && self.ready.is_empty() && self.unacked == 0 {
            // Nothing left that a past TTL change could reach (a delivered message could come back).
            self.ttl_marks.clear();
        }
    }

    /// Whether the head message's time is up: its own expiry (queue TTL at enqueue or its
    /// `expiration`), or the deadline a later TTL change gave it.
    fn head_expired(&mut self, now: Instant) -> bool {
        let Some(head) = self.ready.front() else { return false };
        if head.expires_at.is_some_and(|at| at <= now) {
            return true;
        }
        let offset = head.offset;
        !self.ttl_marks.is_empty()
            && self.ttl_marks.deadline(&*self.ready, offset).is_some_and(|at| at <= now)
    }

    /// A message TTL took effect at `now`: the messages waiting (ready or delivered) expire by
    /// `now + ttl` at the latest. Nothing to remember for a queue that holds none.
    pub(super) fn ttl_took_effect(&mut self, ttl: std::time::Duration, now: Instant) {
        if self.ready.is_empty() && self.unacked == 0 {
            return;
        }
        // A deadline past what an `Instant` can hold is none.
        let Some(deadline) = now.checked_add(ttl) else { return };
        let mark = self.ready.append_mark();
        self.ttl_marks.add(mark, deadline);
        self.may_expire = true;
    }
}
