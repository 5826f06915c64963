//! Priority queues (`x-max-priority`): a [`QueueLog`] made of one store log per priority, as
//! RabbitMQ's classic priority queues keep one backing queue per priority. The head of the
//! queue is the head of the highest non-empty level; within a level messages keep offset order,
//! so requeued messages go back to their original position within their priority.
//!
//! Each level is an ordinary log: it stores, pages out, settles and recovers its messages, so a
//! deep priority queue costs no more memory than a deep ordinary one. Level 0 is the queue's own
//! log; level N is the store log named by [`level_log_name`]. The queue sees one offset space:
//! a level's offset shifted left by 8 bits, or'ed with the level.

use std::io;
use std::time::Instant;

use warren_message::BasicProperties;
use warren_store::{AppendMark, QueueLog};

use warren_store::{Message, QueuedMessage};

/// The store log that holds priority `level` (1 and up) of queue `queue`; `amq.` names cannot be
/// declared by clients, so it never meets a queue.
pub(crate) fn level_log_name(queue: &str, level: u8) -> String {
    format!("amq.x-max-priority/{level}/{queue}")
}

/// The store logs of a queue's priority levels above 0 (none for an ordinary queue).
pub fn level_log_names<'a>(
    queue: &'a str,
    arguments: &warren_message::FieldTable,
) -> impl Iterator<Item = String> + 'a {
    (1..=max_priority(arguments).unwrap_or(0)).map(move |level| level_log_name(queue, level))
}

/// The `x-max-priority` of a queue's arguments: a priority queue has 1 to 255 levels above 0.
pub(crate) fn max_priority(arguments: &warren_message::FieldTable) -> Option<u8> {
    let n = arguments.get("x-max-priority").and_then(warren_message::FieldValue::as_i64)?;
    u8::try_from(n).ok().filter(|&max| max > 0)
}

const LEVEL_BITS: u32 = 8;

fn queue_offset(level: u8, offset: u64) -> u64 {
    (offset << LEVEL_BITS) | u64::from(level)
}

fn split(offset: u64) -> (usize, u64) {
    ((offset & 0xff) as usize, offset >> LEVEL_BITS)
}

#[derive(Debug)]
pub(crate) struct PriorityLog {
    /// One log per priority, index = priority, `0..=max`.
    levels: Vec<Box<dyn QueueLog>>,
    /// The head message, taken out of its level (with its queue-wide offset) while the queue
    /// looks at it: [`QueueLog::front`] hands out a reference.
    head: Option<(u8, QueuedMessage)>,
}

impl PriorityLog {
    /// A priority queue over `levels` (index = priority; the queue's own log first).
    pub(crate) fn new(levels: Vec<Box<dyn QueueLog>>) -> Self {
        assert!(!levels.is_empty() && levels.len() <= 256, "1 to 256 priority levels");
        PriorityLog { levels, head: None }
    }

    fn max(&self) -> u8 {
        (self.levels.len() - 1) as u8
    }

    fn priority(&self, m: &Message) -> u8 {
        if !warren_message::properties::has_property(&m.properties, warren_message::properties::PRIORITY) {
            return 0;
        }
        BasicProperties::decode(&m.properties).ok().and_then(|p| p.priority).unwrap_or(0).min(self.max())
    }

    /// Puts the cached head back at the front of its level.
    fn return_head(&mut self) {
        if let Some((level, mut m)) = self.head.take() {
            m.offset = split(m.offset).1;
            self.levels[usize::from(level)].push_front(m);
        }
    }

    /// Takes the head of the highest non-empty level into `head`.
    fn fill_head(&mut self) {
        if self.head.is_some() {
            return;
        }
        for level in (0..self.levels.len()).rev() {
            if let Some(mut m) = self.levels[level].pop_front() {
                m.offset = queue_offset(level as u8, m.offset);
                self.head = Some((level as u8, m));
                return;
            }
        }
    }

    /// The level of a queue-wide offset and the message with its level's offset.
    fn to_level(message: QueuedMessage) -> (usize, QueuedMessage) {
        let (level, offset) = split(message.offset);
        (level, QueuedMessage { offset, ..message })
    }
}

impl QueueLog for PriorityLog {
    fn append(&mut self, message: Message, expires_at: Option<Instant>, persistent: bool) -> io::Result<u64> {
        let level = self.priority(&message);
        if self.head.as_ref().is_some_and(|(head, _)| *head < level) {
            self.return_head();
        }
        let offset = self.levels[usize::from(level)].append(message, expires_at, persistent)?;
        Ok(queue_offset(level, offset))
    }

    fn front(&mut self) -> Option<&QueuedMessage> {
        self.fill_head();
        self.head.as_ref().map(|(_, m)| m)
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.fill_head();
        self.head.take().map(|(_, m)| m)
    }

    fn push_front(&mut self, message: QueuedMessage) {
        self.return_head();
        let (level, m) = Self::to_level(message);
        self.levels[level].push_front(m);
    }

    fn requeue(&mut self, message: QueuedMessage) {
        self.return_head();
        let (level, m) = Self::to_level(message);
        self.levels[level].requeue(m);
    }

    fn settle(&mut self, offset: u64, stored: bool) {
        let (level, offset) = split(offset);
        if let Some(log) = self.levels.get_mut(level) {
            log.settle(offset, stored);
        }
    }

    fn note_return(&mut self, offset: u64, stored: bool) {
        let (level, offset) = split(offset);
        if let Some(log) = self.levels.get_mut(level) {
            log.note_return(offset, stored);
        }
    }

    fn recovered_body_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.recovered_body_bytes()).sum()
    }

    fn len(&self) -> usize {
        self.levels.iter().map(|l| l.len()).sum::<usize>() + usize::from(self.head.is_some())
    }

    fn purge(&mut self) -> usize {
        self.return_head();
        self.levels.iter_mut().map(|l| l.purge()).sum()
    }

    fn flush(&mut self) -> io::Result<()> {
        // Every level is flushed even if one fails; the first error is reported.
        let mut result = Ok(());
        for log in &mut self.levels {
            let flushed = log.flush();
            if result.is_ok() {
                result = flushed;
            }
        }
        result
    }

    fn delete(&mut self) {
        self.head = None;
        for log in &mut self.levels {
            log.delete();
        }
    }

    /// One next offset per level: offsets are ordered within a level, not across levels.
    fn append_mark(&self) -> AppendMark {
        AppendMark::several(self.levels.iter().map(|l| l.append_mark().next_offset(0)))
    }

    fn appended_before(&self, offset: u64, mark: &AppendMark) -> bool {
        let (level, offset) = split(offset);
        offset < mark.next_offset(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use warren_store::MemoryLog;

    fn message(priority: Option<u8>, body: &'static str) -> Message {
        let mut props = BytesMut::new();
        BasicProperties { priority, ..Default::default() }.encode(&mut props);
        Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: props.freeze(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn log(max: u8) -> PriorityLog {
        PriorityLog::new((0..=max).map(|_| Box::new(MemoryLog::default()) as Box<dyn QueueLog>).collect())
    }

    fn body(m: &QueuedMessage) -> &str {
        std::str::from_utf8(&m.message.body).unwrap()
    }

    #[test]
    fn highest_priority_first_then_publish_order() {
        let mut l = log(5);
        for (p, b) in [(None, "a0"), (Some(3), "b3"), (Some(9), "c5"), (Some(3), "d3"), (Some(0), "e0")] {
            l.append(message(p, b), None, false).unwrap();
        }
        assert_eq!(l.len(), 5);
        let order: Vec<String> = std::iter::from_fn(|| l.pop_front()).map(|m| body(&m).to_owned()).collect();
        assert_eq!(order, ["c5", "b3", "d3", "a0", "e0"]);
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn a_higher_message_overtakes_a_head_being_looked_at() {
        let mut l = log(9);
        l.append(message(Some(1), "low"), None, false).unwrap();
        assert_eq!(body(l.front().unwrap()), "low");
        assert_eq!(l.len(), 1);
        l.append(message(Some(7), "high"), None, false).unwrap();
        assert_eq!(body(l.front().unwrap()), "high");
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn requeue_returns_to_the_original_position_within_the_level() {
        let mut l = log(3);
        for (p, b) in [(Some(2), "x1"), (Some(2), "x2"), (Some(1), "y1"), (Some(2), "x3")] {
            l.append(message(p, b), None, false).unwrap();
        }
        let x1 = l.pop_front().unwrap();
        let x2 = l.pop_front().unwrap();
        assert_ne!(x1.offset, x2.offset, "offsets are unique across the queue");
        l.requeue(x2);
        l.requeue(x1);
        let order: Vec<String> = std::iter::from_fn(|| l.pop_front()).map(|m| body(&m).to_owned()).collect();
        assert_eq!(order, ["x1", "x2", "x3", "y1"]);
    }

    #[test]
    fn offsets_name_their_level() {
        let mut l = log(255);
        let low = l.append(message(Some(0), "a"), None, false).unwrap();
        let high = l.append(message(Some(255), "b"), None, false).unwrap();
        assert_eq!(split(low).0, 0);
        assert_eq!(split(high).0, 255);
        assert_eq!(l.pop_front().unwrap().offset, high);
        assert_eq!(l.purge(), 1);
        assert!(l.is_empty());
    }

    #[test]
    fn an_append_mark_tells_earlier_messages_from_later_ones_in_every_level() {
        let mut l = log(3);
        let early: Vec<u64> =
            [Some(0), Some(3), Some(3)].map(|p| l.append(message(p, "early"), None, false).unwrap()).into();
        let mark = l.append_mark();
        let late: Vec<u64> =
            [Some(3), Some(1), Some(0)].map(|p| l.append(message(p, "late"), None, false).unwrap()).into();
        assert!(early.iter().all(|&o| l.appended_before(o, &mark)));
        assert!(late.iter().all(|&o| !l.appended_before(o, &mark)));
    }
}
