//! Churn: how many connections, channels and queues came and went since the broker started,
//! as RabbitMQ's `churn_rates` report them. Counted where objects are created and removed (off
//! the message path); the management side samples them for rates.

use std::sync::atomic::{AtomicU64, Ordering};

/// What churn counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum ChurnEvent {
    /// A connection was accepted.
    ConnectionCreated,
    /// A connection ended.
    ConnectionClosed,
    /// A channel was opened.
    ChannelCreated,
    /// A channel was closed (or went with its connection).
    ChannelClosed,
    /// A queue.declare (or the API's equivalent) succeeded, creating the queue or not.
    QueueDeclared,
    /// A queue was created.
    QueueCreated,
    /// A queue was deleted (by a client, the API, expiry, or its owner leaving).
    QueueDeleted,
}

impl ChurnEvent {
    /// Every event, in index order.
    pub const ALL: [ChurnEvent; CHURN_EVENTS] = [
        ChurnEvent::ConnectionCreated,
        ChurnEvent::ConnectionClosed,
        ChurnEvent::ChannelCreated,
        ChurnEvent::ChannelClosed,
        ChurnEvent::QueueDeclared,
        ChurnEvent::QueueCreated,
        ChurnEvent::QueueDeleted,
    ];

    /// RabbitMQ's name for it in `churn_rates`.
    pub fn name(self) -> &'static str {
        match self {
            ChurnEvent::ConnectionCreated => "connection_created",
            ChurnEvent::ConnectionClosed => "connection_closed",
            ChurnEvent::ChannelCreated => "channel_created",
            ChurnEvent::ChannelClosed => "channel_closed",
            ChurnEvent::QueueDeclared => "queue_declared",
            ChurnEvent::QueueCreated => "queue_created",
            ChurnEvent::QueueDeleted => "queue_deleted",
        }
    }
}

const CHURN_EVENTS: usize = 7;

/// Churn counters.
#[derive(Debug, Default)]
pub struct Churn([AtomicU64; CHURN_EVENTS]);

impl Churn {
    /// Counts one event.
    pub fn count(&self, event: ChurnEvent) {
        self.0[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> ChurnValues {
        ChurnValues(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

/// Churn counts read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChurnValues(pub [u64; CHURN_EVENTS]);

impl ChurnValues {
    /// One event's count.
    pub fn get(&self, event: ChurnEvent) -> u64 {
        self.0[event as usize]
    }

    /// Adds another set of counts to these.
    pub fn add(&mut self, other: &ChurnValues) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}
