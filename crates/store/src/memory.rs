//! The in-memory queue log: a deque ordered by offset.

use std::collections::VecDeque;
use std::time::Instant;

use std::io;

use crate::{AppendMark, Message, QueueLog, QueuedMessage, Store, SyncWaker};

/// A queue log that keeps every message in memory and writes nothing.
#[derive(Debug, Default)]
pub struct MemoryLog {
    ready: VecDeque<QueuedMessage>,
    next_offset: u64,
}

impl QueueLog for MemoryLog {
    fn append(
        &mut self,
        message: Message,
        expires_at: Option<Instant>,
        _persistent: bool,
    ) -> io::Result<u64> {
        let offset = self.next_offset;
        self.next_offset += 1;
        self.ready.push_back(QueuedMessage {
            offset,
            redelivered: false,
            delivery_count: 0,
            expires_at,
            stored: false,
            message,
        });
        Ok(offset)
    }

    fn front(&mut self) -> Option<&QueuedMessage> {
        self.ready.front()
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.ready.pop_front()
    }

    fn push_front(&mut self, message: QueuedMessage) {
        self.ready.push_front(message);
    }

    fn requeue(&mut self, message: QueuedMessage) {
        // Requeued messages usually belong near the front; the binary search finds the spot.
        let pos = self.ready.partition_point(|r| r.offset < message.offset);
        self.ready.insert(pos, message);
    }

    fn settle(&mut self, _offset: u64, _stored: bool) {}

    fn len(&self) -> usize {
        self.ready.len()
    }

    fn purge(&mut self) -> usize {
        let n = self.ready.len();
        self.ready.clear();
        n
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn delete(&mut self) {
        self.ready.clear();
    }

    fn append_mark(&self) -> AppendMark {
        AppendMark::single(self.next_offset)
    }
}

/// Keeps every queue in memory.
#[derive(Debug, Default)]
pub struct MemoryStore;

/// Nothing is ever waiting to be synced: every ticket is durable at once.
impl Store for MemoryStore {
    fn open_queue(&self, _vhost: &str, _queue: &str, _durable: bool) -> io::Result<Box<dyn QueueLog>> {
        Ok(Box::new(MemoryLog::default()))
    }

    fn sync_ticket(&self) -> u64 {
        0
    }

    fn synced(&self) -> u64 {
        u64::MAX
    }

    fn on_synced(&self, _ticket: u64, waker: SyncWaker) {
        waker();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(body: &'static str) -> Message {
        Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: Bytes::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn requeue_restores_the_original_position() {
        let mut log = MemoryLog::default();
        for b in ["a", "b", "c", "d"] {
            log.append(msg(b), None, false).unwrap();
        }
        let a = log.pop_front().unwrap();
        let b = log.pop_front().unwrap();
        log.requeue(b);
        log.requeue(a);
        let order: Vec<_> = std::iter::from_fn(|| log.pop_front()).map(|m| m.message.body).collect();
        assert_eq!(order, ["a", "b", "c", "d"].map(|s| Bytes::from_static(s.as_bytes())));
    }

    #[test]
    fn offsets_only_grow_and_purge_counts() {
        let mut log = MemoryLog::default();
        assert_eq!(log.append(msg("a"), None, false).unwrap(), 0);
        assert_eq!(log.append(msg("b"), None, false).unwrap(), 1);
        assert_eq!(log.purge(), 2);
        assert_eq!(log.append(msg("c"), None, false).unwrap(), 2);
        assert_eq!(log.len(), 1);
    }
}
