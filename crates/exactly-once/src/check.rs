//! The exactly-once verdict on what one output queue held: a pure function of the expected
//! events and the messages in the order they were consumed.
//!
//! Every delivery falls in exactly one class, so the counts add up and each names one fault:
//! * a *duplicate* is a second (third, ...) delivery of an event. Each output carries the
//!   publish attempt of the input it came from, which tells where a duplicate was born: two
//!   attempts of an event both got through (the broker did not deduplicate the producer's
//!   retry), or one input message was processed twice (a transaction's outputs outlived the
//!   ack of its input: the commit was not atomic, or not durable);
//! * an *out-of-order* delivery is the first delivery of an event that arrives after a later
//!   event of the same producer;
//! * an *unexpected* delivery is an unreadable body, an unknown producer, or a sequence number
//!   the producer never sent;
//! * everything else is in order; an expected event never delivered is *missing*.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::event::{Event, Stage};

/// How many examples of each fault a report prints.
const EXAMPLES: usize = 10;

/// One consumed message: its body and the publish attempt of the input it came from (the
/// [`crate::topology::ATTEMPT_HEADER`] header; absent if the worker did not copy it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub body: Vec<u8>,
    pub attempt: Option<u32>,
}

impl Delivered {
    pub fn new(body: impl Into<Vec<u8>>, attempt: Option<u32>) -> Delivered {
        Delivered { body: body.into(), attempt }
    }
}

/// The events a run was to deliver: producer id -> its count (sequence numbers `1..=count`).
pub type Expected = BTreeMap<String, u64>;

/// What one queue held, judged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueReport {
    pub queue: String,
    pub expected: u64,
    pub received: u64,
    pub distinct: u64,
    /// Events with the number of times each was delivered (2 or more), in first-seen order.
    pub duplicates: Vec<(Event, u32)>,
    /// Deliveries beyond the first of an event (the sum of `count - 1` over `duplicates`).
    pub duplicate_deliveries: u64,
    /// Of those: deliveries of a further publish attempt of an event (undeduplicated retries).
    pub duplicates_from_retries: u64,
    /// Of those: deliveries of an attempt delivered before (inputs processed twice).
    pub duplicates_from_reprocessing: u64,
    /// First deliveries that came after a later event of the same producer: (event, the
    /// largest sequence number of its producer seen before it).
    pub out_of_order: Vec<(Event, u64)>,
    /// Per producer, the missing sequence numbers as inclusive ranges.
    pub missing: BTreeMap<String, Vec<(u64, u64)>>,
    pub missing_count: u64,
    /// Deliveries that are no expected event, with why.
    pub unexpected: Vec<String>,
}

impl QueueReport {
    pub fn is_exactly_once_in_order(&self) -> bool {
        self.duplicate_deliveries == 0
            && self.out_of_order.is_empty()
            && self.missing_count == 0
            && self.unexpected.is_empty()
    }
}

/// Judges the messages consumed from `queue` (written at `stage`), in consumption order.
pub fn check_queue(queue: &str, stage: Stage, expected: &Expected, delivered: &[Delivered]) -> QueueReport {
    let mut report = QueueReport {
        queue: queue.to_owned(),
        expected: expected.values().sum(),
        received: delivered.len() as u64,
        ..QueueReport::default()
    };
    let mut seen: HashMap<Event, u32> = HashMap::new();
    let mut attempts_seen: HashSet<(Event, Option<u32>)> = HashSet::new();
    let mut duplicate_order: Vec<Event> = Vec::new();
    let mut highest: HashMap<&str, u64> = HashMap::new();
    for message in delivered {
        let event = match Event::parse(&message.body, stage) {
            Ok(e) => e,
            Err(why) => {
                report.unexpected.push(why);
                continue;
            }
        };
        let Some((producer, &count)) = expected.get_key_value(event.producer.as_str()) else {
            report.unexpected.push(format!("{event}: an unknown producer"));
            continue;
        };
        if event.seq == 0 || event.seq > count {
            report.unexpected.push(format!("{event}: producer {producer} sent only 1..={count}"));
            continue;
        }
        let new_attempt = attempts_seen.insert((event.clone(), message.attempt));
        let times = seen.entry(event.clone()).or_insert(0);
        *times += 1;
        if *times > 1 {
            report.duplicate_deliveries += 1;
            if new_attempt {
                report.duplicates_from_retries += 1;
            } else {
                report.duplicates_from_reprocessing += 1;
            }
            if *times == 2 {
                duplicate_order.push(event);
            }
            continue;
        }
        let top = highest.entry(producer.as_str()).or_insert(0);
        if event.seq < *top {
            report.out_of_order.push((event, *top));
        } else {
            *top = event.seq;
        }
    }
    report.distinct = seen.len() as u64;
    report.duplicates = duplicate_order.into_iter().map(|e| (e.clone(), seen[&e])).collect();
    for (producer, &count) in expected {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for seq in 1..=count {
            if seen.contains_key(&Event::new(producer.as_str(), seq)) {
                continue;
            }
            report.missing_count += 1;
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == seq => *end = seq,
                _ => ranges.push((seq, seq)),
            }
        }
        if !ranges.is_empty() {
            report.missing.insert(producer.clone(), ranges);
        }
    }
    report
}

impl fmt::Display for QueueReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_exactly_once_in_order() { "OK" } else { "VIOLATED" };
        writeln!(
            f,
            "queue {}: {verdict}: {} expected, {} received, {} distinct; {} missing, {} duplicate deliveries \
             (of {} events; {} from retried publishes, {} from inputs processed twice), {} out of order, \
             {} unexpected",
            self.queue,
            self.expected,
            self.received,
            self.distinct,
            self.missing_count,
            self.duplicate_deliveries,
            self.duplicates.len(),
            self.duplicates_from_retries,
            self.duplicates_from_reprocessing,
            self.out_of_order.len(),
            self.unexpected.len()
        )?;
        for (producer, ranges) in &self.missing {
            let shown: Vec<String> = ranges
                .iter()
                .take(EXAMPLES)
                .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
                .collect();
            let more = if ranges.len() > EXAMPLES { ", ..." } else { "" };
            writeln!(f, "  missing {producer}: {}{more}", shown.join(", "))?;
        }
        if !self.duplicates.is_empty() {
            let shown: Vec<String> =
                self.duplicates.iter().take(EXAMPLES).map(|(e, n)| format!("{e} x{n}")).collect();
            let more = if self.duplicates.len() > EXAMPLES { ", ..." } else { "" };
            writeln!(f, "  duplicated: {}{more}", shown.join(", "))?;
        }
        if !self.out_of_order.is_empty() {
            let shown: Vec<String> = self
                .out_of_order
                .iter()
                .take(EXAMPLES)
                .map(|(e, top)| format!("{e} after {}:{top}", e.producer))
                .collect();
            let more = if self.out_of_order.len() > EXAMPLES { ", ..." } else { "" };
            writeln!(f, "  out of order: {}{more}", shown.join(", "))?;
        }
        for why in self.unexpected.iter().take(EXAMPLES) {
            writeln!(f, "  unexpected: {why}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(pairs: &[(&str, u64)]) -> Expected {
        pairs.iter().map(|&(p, n)| (p.to_owned(), n)).collect()
    }

    fn delivered(events: &[(&str, u64)]) -> Vec<Delivered> {
        events.iter().map(|&(p, s)| Delivered::new(Event::new(p, s).body(Stage::Output), Some(1))).collect()
    }

    fn check(exp: &[(&str, u64)], got: &[(&str, u64)]) -> QueueReport {
        check_queue("out", Stage::Output, &expected(exp), &delivered(got))
    }

    #[test]
    fn interleaved_producers_each_in_order_pass() {
        let r = check(&[("a", 3), ("b", 2)], &[("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)]);
        assert!(r.is_exactly_once_in_order(), "{r}");
        assert_eq!((r.expected, r.received, r.distinct), (5, 5, 5));
        assert!(r.to_string().starts_with("queue out: OK"));
    }

    #[test]
    fn a_redelivered_batch_counts_as_duplicates_not_disorder() {
        // 2 and 3 were processed, the crash lost their acks, and they came again
        let r = check(&[("a", 4)], &[("a", 1), ("a", 2), ("a", 3), ("a", 2), ("a", 3), ("a", 4)]);
        assert!(!r.is_exactly_once_in_order());
        assert_eq!(r.duplicate_deliveries, 2);
        assert_eq!((r.duplicates_from_retries, r.duplicates_from_reprocessing), (0, 2));
        assert_eq!(r.duplicates, vec![(Event::new("a", 2), 2), (Event::new("a", 3), 2)]);
        assert!(r.out_of_order.is_empty());
        assert_eq!(r.missing_count, 0);
        let text = r.to_string();
        assert!(text.contains("VIOLATED") && text.contains("duplicated: a:2 x2, a:3 x2"), "{text}");
    }

    #[test]
    fn an_event_delivered_three_times_is_one_duplicate_with_two_extra_deliveries() {
        let r = check(&[("a", 1)], &[("a", 1), ("a", 1), ("a", 1)]);
        assert_eq!(r.duplicates, vec![(Event::new("a", 1), 3)]);
        assert_eq!(r.duplicate_deliveries, 2);
        assert_eq!(r.distinct, 1);
    }

    #[test]
    fn a_duplicate_is_blamed_on_the_retry_or_on_reprocessing_by_its_attempt() {
        let out =
            |seq: u64, attempt: u32| Delivered::new(Event::new("a", seq).body(Stage::Output), Some(attempt));
        // a:1 got through twice (attempts 1 and 2), a:2 was processed twice (attempt 1 both
        // times), a:3 both: attempts 1, 2, 2
        let got = [out(1, 1), out(1, 2), out(2, 1), out(2, 1), out(3, 1), out(3, 2), out(3, 2)];
        let r = check_queue("out", Stage::Output, &expected(&[("a", 3)]), &got);
        assert_eq!(r.duplicate_deliveries, 4);
        assert_eq!((r.duplicates_from_retries, r.duplicates_from_reprocessing), (2, 2));
        assert!(r.to_string().contains("2 from retried publishes, 2 from inputs processed twice"), "{r}");
    }

    #[test]
    fn missing_events_are_summarised_as_ranges() {
        let r = check(&[("a", 10), ("b", 1)], &[("a", 1), ("a", 4), ("a", 5), ("a", 9)]);
        assert_eq!(r.missing_count, 7);
        assert_eq!(r.missing["a"], vec![(2, 3), (6, 8), (10, 10)]);
        assert_eq!(r.missing["b"], vec![(1, 1)]);
        let text = r.to_string();
        assert!(text.contains("missing a: 2-3, 6-8, 10") && text.contains("missing b: 1"), "{text}");
    }

    #[test]
    fn a_late_first_delivery_is_out_of_order() {
        let r = check(&[("a", 4), ("b", 1)], &[("a", 1), ("a", 3), ("b", 1), ("a", 2), ("a", 4)]);
        assert_eq!(r.out_of_order, vec![(Event::new("a", 2), 3)]);
        assert_eq!(r.duplicate_deliveries, 0);
        assert_eq!(r.missing_count, 0);
        assert!(r.to_string().contains("out of order: a:2 after a:3"));
    }

    #[test]
    fn foreign_bodies_unknown_producers_and_unsent_numbers_are_unexpected() {
        let mut got = delivered(&[("a", 1), ("z", 1), ("a", 0), ("a", 3)]);
        got.push(Delivered::new(Event::new("a", 2).body(Stage::Audit), Some(1)));
        let r = check_queue("out", Stage::Output, &expected(&[("a", 2)]), &got);
        assert_eq!(r.unexpected.len(), 4, "{r}");
        assert_eq!(r.missing["a"], vec![(2, 2)]);
        assert!(!r.is_exactly_once_in_order());
    }

    #[test]
    fn nothing_received_is_all_missing() {
        let r = check(&[("a", 3)], &[]);
        assert_eq!(r.missing_count, 3);
        assert!(!r.is_exactly_once_in_order());
    }
}
