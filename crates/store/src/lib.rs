//! Warren's storage boundary.
//!
//! A queue keeps its ready messages in a [`QueueLog`]: appended with an offset that only grows,
//! taken from the front for delivery, put back by offset on requeue, and settled (acknowledged or
//! dropped for good) by offset. A [`Store`] opens one log per queue. [`MemoryStore`] keeps
//! everything in memory; the durable segment-log store plugs in behind the same traits, so the
//! broker and protocol layers do not change with it.

pub mod memory;
pub mod message;

use std::time::Instant;

pub use memory::{MemoryLog, MemoryStore};
pub use message::{Message, QueuedMessage};

/// The ready messages of one queue, in offset order.
pub trait QueueLog: Send + std::fmt::Debug {
    /// Appends a published message; returns its offset.
    fn append(&mut self, message: Message, expires_at: Option<Instant>) -> u64;
    fn front(&self) -> Option<&QueuedMessage>;
    fn pop_front(&mut self) -> Option<QueuedMessage>;
    /// Returns a message just taken with `pop_front` that could not be delivered.
    fn push_front(&mut self, message: QueuedMessage);
    /// Puts a delivered, unsettled message back at its original position.
    fn requeue(&mut self, message: QueuedMessage);
    /// The message at `offset` left the queue for good (acknowledged, dropped or dead-lettered).
    fn settle(&mut self, offset: u64);
    /// Ready messages (delivered but unsettled ones are not counted).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Drops every ready message; returns how many there were.
    fn purge(&mut self) -> usize;
}

/// Opens queue logs.
pub trait Store: Send + Sync {
    fn open_queue(&self, vhost: &str, queue: &str, durable: bool) -> Box<dyn QueueLog>;
}
