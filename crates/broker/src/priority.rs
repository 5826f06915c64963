//! Priority queues (`x-max-priority`): a [`QueueLog`] that keeps the ready messages of the
//! queue's own log ordered by message priority (highest first), then by offset, so requeued
//! messages go back to their original position within their priority.
//!
//! The inner log still stores, settles and recovers the messages; this wrapper takes every
//! message out of it as soon as it is appended (or recovered), so the ready messages of a
//! priority queue stay in memory.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::io;
use std::time::Instant;

use warren_protocol::BasicProperties;
use warren_store::QueueLog;

use crate::message::{Message, QueuedMessage};

#[derive(Debug)]
pub struct PriorityLog {
    inner: Box<dyn QueueLog>,
    max: u8,
    ready: BTreeMap<(Reverse<u8>, u64), QueuedMessage>,
}

impl PriorityLog {
    /// Wraps `inner`, ordering what it recovered by priority.
    pub fn new(inner: Box<dyn QueueLog>, max: u8) -> Self {
        let mut log = PriorityLog { inner, max, ready: BTreeMap::new() };
        log.take_inner();
        log
    }

    fn priority(&self, m: &Message) -> u8 {
        BasicProperties::decode(&m.properties).ok().and_then(|p| p.priority).unwrap_or(0).min(self.max)
    }

    fn insert(&mut self, m: QueuedMessage) {
        let key = (Reverse(self.priority(&m.message)), m.offset);
        self.ready.insert(key, m);
    }

    fn take_inner(&mut self) {
        while let Some(m) = self.inner.pop_front() {
            self.insert(m);
        }
    }
}

impl QueueLog for PriorityLog {
    fn append(&mut self, message: Message, expires_at: Option<Instant>, persistent: bool) -> io::Result<u64> {
        let offset = self.inner.append(message, expires_at, persistent)?;
        self.take_inner();
        Ok(offset)
    }

    fn front(&mut self) -> Option<&QueuedMessage> {
        self.ready.values().next()
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.ready.pop_first().map(|(_, m)| m)
    }

    fn push_front(&mut self, message: QueuedMessage) {
        self.insert(message);
    }

    fn requeue(&mut self, message: QueuedMessage) {
        self.insert(message);
    }

    fn settle(&mut self, offset: u64, stored: bool) {
        self.inner.settle(offset, stored);
    }

    fn note_return(&mut self, offset: u64, stored: bool) {
        self.inner.note_return(offset, stored);
    }

    fn recovered_body_bytes(&self) -> u64 {
        self.inner.recovered_body_bytes()
    }

    fn len(&self) -> usize {
        self.ready.len()
    }

    fn purge(&mut self) -> usize {
        let n = self.ready.len();
        for (_, m) in std::mem::take(&mut self.ready) {
            self.inner.settle(m.offset, m.stored);
        }
        n + self.inner.purge()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn delete(&mut self) {
        self.ready.clear();
        self.inner.delete();
    }
}
