//! Handing ready messages to consumers, and taking settled deliveries back.

use std::sync::Arc;
use std::time::Instant;

use warren_message::ShortStr;
use warren_store::QueueLog;

use super::consumer::{Consumer, ConsumerRef, TargetId};
use super::state::QueueState;
use super::{Queue, Settle};
use crate::counters::Counter;
use crate::deadletter::DeathReason;
use warren_store::{Message, QueuedMessage};

impl Queue {
    /// Gives consumers with credit a try at the ready messages.
    pub fn wake(self: &Arc<Self>, now: Instant) {
        let mut st = self.state.lock();
        self.dispatch(&mut st, Some(now));
    }

    /// Settled deliveries of target `target` free their consumers' prefetch credit; requeued
    /// ones go back to their original positions, marked redelivered. With `dispatch_at`,
    /// consumers with credit are offered messages under the same lock (an ack on the hot path);
    /// without, the caller wakes the queue later (when a reply must go out first). With
    /// `x-delivery-limit` a requeued message counts one more delivery, and one over the limit is
    /// dropped instead. Returns the messages that are to be dead-lettered.
    pub fn settle(
        self: &Arc<Self>,
        settled: impl IntoIterator<Item = (Option<ShortStr>, QueuedMessage)>,
        target: TargetId,
        how: Settle,
        dispatch_at: Option<Instant>,
    ) -> Vec<(Message, DeathReason)> {
        let mut dead = Vec::new();
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let (counts_deliveries, delivery_limit) = (st.limits.counts_deliveries, st.limits.delivery_limit);
        let dead_letters = st.limits.has_dead_letter_exchange;
        let mut count = 0;
        for (consumer, message) in settled {
            count += 1;
            if let Some(tag) = &consumer {
                if let Some(c) = st.consumers.iter_mut().find(|c| c.is(target, tag)) {
                    c.unacked = c.unacked.saturating_sub(1);
                }
            }
            st.unacked = st.unacked.saturating_sub(1);
            if how == Settle::Requeue && !st.deleted {
                let mut m = message;
                if counts_deliveries {
                    m.delivery_count = m.delivery_count.saturating_add(1);
                    if delivery_limit.is_some_and(|limit| u64::from(m.delivery_count) > limit) {
                        st.ready.settle(m.offset, m.stored);
                        if dead_letters {
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
                st.ready.settle(message.offset, message.stored);
                if how == Settle::Discard && dead_letters {
                    dead.push((message.message, DeathReason::Rejected));
                }
            }
        }
        let counter = if how == Settle::Ack { Counter::Acked } else { Counter::Rejected };
        self.counters.add_owned(counter, count);
        if dispatch_at.is_some() {
            self.dispatch(st, dispatch_at);
        }
        dead
    }

    /// Hands ready messages to consumers with credit. With `expire_at` it first drops expired
    /// messages from the head; a publish skips that so a message with a TTL of 0 still reaches a
    /// consumer that can take it at once, as in RabbitMQ.
    pub(super) fn dispatch(self: &Arc<Self>, st: &mut QueueState, expire_at: Option<Instant>) {
        let n = st.consumers.len();
        if n == 0 {
            return;
        }
        if let Some(now) = expire_at {
            st.expire_head(now);
        }
        if self.single_active || st.consumer_priorities {
            self.dispatch_selected(st);
        } else {
            self.dispatch_round_robin(st);
        }
        self.flow.after_drain(st.ready.len() as u64, st.ready_bytes);
    }

    fn dispatch_round_robin(self: &Arc<Self>, st: &mut QueueState) {
        let n = st.consumers.len();
        let QueueState { ready, consumers, next_consumer, ready_bytes, unacked, .. } = st;
        'messages: while let Some(mut message) = ready.pop_front() {
            for _ in 0..n {
                let idx = *next_consumer % n;
                *next_consumer = (idx + 1) % n;
                match self.offer(&mut consumers[idx], message, ready, ready_bytes, unacked) {
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
        let QueueState { ready, consumers, next_consumer, ready_bytes, unacked, .. } = st;
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
                    match self.offer(&mut consumers[idx], message, ready, ready_bytes, unacked) {
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

    /// Offers a message to one consumer: delivered if the consumer has credit and its target
    /// takes it (then the queue's accounting follows), handed back otherwise.
    #[allow(clippy::result_large_err)] // handing the message back by value allocates nothing
    fn offer(
        self: &Arc<Self>,
        c: &mut Consumer,
        message: QueuedMessage,
        ready: &mut Box<dyn QueueLog>,
        ready_bytes: &mut u64,
        unacked: &mut u64,
    ) -> Result<(), QueuedMessage> {
        if !c.has_credit() {
            return Err(message);
        }
        let (offset, stored, redelivered) = (message.offset, message.stored, message.redelivered);
        let size = message.message.body.len() as u64;
        let who = ConsumerRef { tag: &c.tag, no_ack: c.no_ack };
        c.target.deliver(self, who, message)?;
        *ready_bytes = ready_bytes.saturating_sub(size);
        let counters = &self.counters;
        if c.no_ack {
            ready.settle(offset, stored);
            counters.add_owned(Counter::DeliveredNoAck, 1);
        } else {
            c.unacked += 1;
            *unacked += 1;
            counters.add_owned(Counter::DeliveredAck, 1);
        }
        if redelivered {
            counters.add_owned(Counter::Redelivered, 1);
        }
        Ok(())
    }
}
