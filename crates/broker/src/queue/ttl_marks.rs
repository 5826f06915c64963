//! A message TTL set or lowered by a policy reaches the messages already waiting: they expire
//! at the latest that TTL after the change (their own, earlier expiry still wins).
//!
//! Nothing stored is rewritten and the queue is not walked (it may hold millions of messages,
//! most on disk): per change the queue keeps an append mark (where its log's appends stood) and
//! a deadline (the time of the change plus the TTL). A message appended before a mark expires by
//! that deadline at the latest. Marks are taken in append order, so a message appended before
//! one mark is before every later one too, and its deadline is the earliest of theirs; the list
//! keeps, for each mark, that earliest deadline, so deadlines grow along it. Expiry stays at the
//! head (see `QueueState::expire_head`): the messages before a mark are the oldest of the queue.

use std::time::Instant;

use warren_store::{AppendMark, QueueLog};

/// The (append mark, deadline) pairs of a queue's TTL changes, deadlines growing along the list.
#[derive(Debug, Default)]
pub(super) struct TtlMarks {
    marks: Vec<(AppendMark, Instant)>,
}

impl TtlMarks {
    /// Whether no change reaches a waiting message (the common case: one branch).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// A TTL took effect: the messages appended before `mark` expire by `deadline` at the
    /// latest. Earlier marks with a later deadline are covered by this one (their messages are
    /// before it too), so they go: several changes in a row collapse.
    pub(super) fn add(&mut self, mark: AppendMark, deadline: Instant) {
        while self.marks.last().is_some_and(|(_, later)| *later >= deadline) {
            self.marks.pop();
        }
        self.marks.push((mark, deadline));
    }

    /// The latest a message at `offset` of `log` may live by the changes since it was appended
    /// (none for one appended after them all).
    pub(super) fn deadline(&self, log: &dyn QueueLog, offset: u64) -> Option<Instant> {
        // The first mark the message is before has the earliest deadline of those it is before.
        self.marks.iter().find(|(mark, _)| log.appended_before(offset, mark)).map(|&(_, deadline)| deadline)
    }

    /// Forgets every change: the queue holds nothing they could reach (what comes later is
    /// appended after them all).
    pub(super) fn clear(&mut self) {
        self.marks.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use warren_store::{MemoryLog, Message};

    use super::*;

    fn append(log: &mut MemoryLog) -> u64 {
        let m = Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: Bytes::new(),
            body: Bytes::new(),
        };
        log.append(m, None, false).unwrap()
    }

    #[test]
    fn a_message_gets_the_earliest_deadline_of_the_changes_after_it() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut log = MemoryLog::default();
        let mut marks = TtlMarks::default();
        let a = append(&mut log);
        marks.add(log.append_mark(), at(1000));
        let b = append(&mut log);
        marks.add(log.append_mark(), at(2000));
        let c = append(&mut log);
        assert_eq!(marks.deadline(&log, a), Some(at(1000)));
        assert_eq!(marks.deadline(&log, b), Some(at(2000)));
        assert_eq!(marks.deadline(&log, c), None, "appended after every change");
        // A change with an earlier deadline covers the messages before the earlier marks too.
        marks.add(log.append_mark(), at(500));
        assert_eq!(marks.marks.len(), 1, "collapsed into one");
        for offset in [a, b, c] {
            assert_eq!(marks.deadline(&log, offset), Some(at(500)));
        }
        marks.clear();
        assert!(marks.is_empty());
        assert_eq!(marks.deadline(&log, a), None);
    }
}
