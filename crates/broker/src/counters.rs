//! Message counters kept next to what they count (a queue, an exchange, a channel, a
//! connection): relaxed atomics, no locks, no allocation on the hot path. The management side
//! reads them with [`Counters::snapshot`] and computes rates by sampling; the core keeps no
//! timers for statistics.

use std::sync::atomic::{AtomicU64, Ordering};

/// What is counted. Every level has every counter; a counter that means nothing at a level
/// stays 0 there (an exchange delivers nothing, a queue confirms nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Messages published (to a channel, an exchange; enqueued, for a queue).
    Published,
    /// Messages an exchange routed on to at least one queue.
    Routed,
    /// Unroutable mandatory messages returned to their publisher.
    ReturnedUnroutable,
    /// Unroutable messages dropped.
    DroppedUnroutable,
    /// Deliveries to consumers that acknowledge.
    DeliveredAck,
    /// Deliveries to no-ack consumers.
    DeliveredNoAck,
    /// basic.get (or equivalent) answered with a message to acknowledge.
    GetAck,
    /// basic.get answered with a message, no-ack.
    GetNoAck,
    /// basic.get that found the queue empty.
    GetEmpty,
    /// Deliveries (and gets) of messages delivered before.
    Redelivered,
    /// Deliveries acknowledged.
    Acked,
    /// Deliveries negatively acknowledged or rejected (requeued or not).
    Rejected,
    /// Publishes confirmed to their publisher (acked or, when they could not be kept, nacked).
    Confirmed,
    /// Messages dead-lettered because they expired.
    DeadLetteredExpired,
    /// Messages dead-lettered because a consumer rejected them without requeue.
    DeadLetteredRejected,
    /// Messages dead-lettered by a length limit.
    DeadLetteredMaxLength,
    /// Messages dead-lettered by `x-delivery-limit`.
    DeadLetteredDeliveryLimit,
    /// Bytes received (by a connection, from its socket).
    BytesIn,
    /// Bytes sent (by a connection, to its socket).
    BytesOut,
    /// Logins refused, for any reason (counted for the node only: the connection goes at once).
    LoginsRefused,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; COUNTERS] = [
        Counter::Published,
        Counter::Routed,
        Counter::ReturnedUnroutable,
        Counter::DroppedUnroutable,
        Counter::DeliveredAck,
        Counter::DeliveredNoAck,
        Counter::GetAck,
        Counter::GetNoAck,
        Counter::GetEmpty,
        Counter::Redelivered,
        Counter::Acked,
        Counter::Rejected,
        Counter::Confirmed,
        Counter::DeadLetteredExpired,
        Counter::DeadLetteredRejected,
        Counter::DeadLetteredMaxLength,
        Counter::DeadLetteredDeliveryLimit,
        Counter::BytesIn,
        Counter::BytesOut,
        Counter::LoginsRefused,
    ];

    /// A stable snake_case name (for metrics and the management API).
    pub fn name(self) -> &'static str {
        match self {
            Counter::Published => "published",
            Counter::Routed => "routed",
            Counter::ReturnedUnroutable => "returned_unroutable",
            Counter::DroppedUnroutable => "dropped_unroutable",
            Counter::DeliveredAck => "delivered_ack",
            Counter::DeliveredNoAck => "delivered_no_ack",
            Counter::GetAck => "get_ack",
            Counter::GetNoAck => "get_no_ack",
            Counter::GetEmpty => "get_empty",
            Counter::Redelivered => "redelivered",
            Counter::Acked => "acked",
            Counter::Rejected => "rejected",
            Counter::Confirmed => "confirmed",
            Counter::DeadLetteredExpired => "dead_lettered_expired",
            Counter::DeadLetteredRejected => "dead_lettered_rejected",
            Counter::DeadLetteredMaxLength => "dead_lettered_maxlen",
            Counter::DeadLetteredDeliveryLimit => "dead_lettered_delivery_limit",
            Counter::BytesIn => "bytes_in",
            Counter::BytesOut => "bytes_out",
            Counter::LoginsRefused => "logins_refused",
        }
    }
}

/// How many counters there are.
pub(crate) const COUNTERS: usize = 20;

/// One set of counters.
#[derive(Default)]
pub struct Counters([AtomicU64; COUNTERS]);

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl Counters {
    /// Adds `n` where several threads may count at once.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        self.0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `n` where only one thread counts at a time (its owner, or whoever holds the lock
    /// that guards the counted thing): a plain load and store, without a locked instruction.
    #[inline]
    pub fn add_owned(&self, counter: Counter, n: u64) {
        let slot = &self.0[counter as usize];
        slot.store(slot.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// One counter's current value.
    #[inline]
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize].load(Ordering::Relaxed)
    }

    /// The current values.
    pub fn snapshot(&self) -> CounterValues {
        CounterValues(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }

    /// Adds a snapshot's values (keeping the totals of something that went away).
    pub fn absorb(&self, values: &CounterValues) {
        for (slot, v) in self.0.iter().zip(values.0) {
            slot.fetch_add(v, Ordering::Relaxed);
        }
    }
}

/// Counter values read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValues(pub [u64; COUNTERS]);

impl CounterValues {
    /// One counter's value.
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    /// Adds another set of values to these.
    pub fn add(&mut self, other: &CounterValues) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.wrapping_add(b);
        }
    }

    /// Every counter with its name.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c.name(), self.get(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_listed_once_in_index_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn counts_add_up_and_absorb() {
        let a = Counters::default();
        a.add(Counter::Published, 2);
        a.add_owned(Counter::Published, 3);
        a.add_owned(Counter::Acked, 1);
        let b = Counters::default();
        b.absorb(&a.snapshot());
        b.add(Counter::Acked, 1);
        let v = b.snapshot();
        assert_eq!(v.get(Counter::Published), 5);
        assert_eq!(v.get(Counter::Acked), 2);
        assert_eq!(v.get(Counter::Confirmed), 0);
        let mut sum = v;
        sum.add(&a.snapshot());
        assert_eq!(sum.get(Counter::Published), 10);
    }
}
