//! The events that flow through the pipeline and how they are written in message bodies.
//!
//! An event is `(producer, seq)`: producer `p1` publishes `p1:1`, `p1:2`, ... in order. The body
//! names the stage that wrote it, so the checker notices a message that reached the wrong
//! queue: `p1:7` on `in`, `p1:7:out` on `out`, `p1:7:audit` on `audit`.

use std::fmt;

/// One numbered event of one producer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Event {
    pub producer: String,
    pub seq: u64,
}

/// Where a body was written: by the producer, or by the worker to one of its two outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Input,
    Output,
    Audit,
}

impl Stage {
    fn suffix(self) -> &'static str {
        match self {
            Stage::Input => "",
            Stage::Output => ":out",
            Stage::Audit => ":audit",
        }
    }
}

impl Event {
    pub fn new(producer: impl Into<String>, seq: u64) -> Event {
        Event { producer: producer.into(), seq }
    }

    /// The deduplication key the producer sends in the `x-deduplication-header` header (and as
    /// message-id): the same for every retry of this event, different for every other event.
    pub fn dedup_key(&self) -> String {
        format!("{}-{}", self.producer, self.seq)
    }

    pub fn body(&self, stage: Stage) -> Vec<u8> {
        format!("{}:{}{}", self.producer, self.seq, stage.suffix()).into_bytes()
    }

    /// Reads a body written at `stage`; the error says what is wrong with it.
    pub fn parse(body: &[u8], stage: Stage) -> Result<Event, String> {
        let text = std::str::from_utf8(body).map_err(|_| format!("a body that is not UTF-8: {body:?}"))?;
        let bad = || format!("a body that is not a {stage:?} event: {text:?}");
        let core = text.strip_suffix(stage.suffix()).ok_or_else(bad)?;
        let (producer, seq) = core.split_once(':').ok_or_else(bad)?;
        let seq = seq.parse().map_err(|_| bad())?;
        if !valid_producer_id(producer) {
            return Err(bad());
        }
        Ok(Event::new(producer, seq))
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.producer, self.seq)
    }
}

/// A producer id is a non-empty word of letters, digits, `-` and `_` (it is part of a body and
/// of a deduplication key, so it cannot hold the separators).
pub fn valid_producer_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_per_stage() {
        let e = Event::new("p-1", 42);
        for stage in [Stage::Input, Stage::Output, Stage::Audit] {
            assert_eq!(Event::parse(&e.body(stage), stage), Ok(e.clone()));
        }
        assert_eq!(e.body(Stage::Output), b"p-1:42:out");
        assert_eq!(e.dedup_key(), "p-1-42");
    }

    #[test]
    fn a_body_of_another_stage_or_garbage_is_refused() {
        let e = Event::new("p1", 3);
        assert!(Event::parse(&e.body(Stage::Output), Stage::Audit).is_err());
        assert!(Event::parse(&e.body(Stage::Output), Stage::Input).is_err());
        assert!(Event::parse(b"p1:x", Stage::Input).is_err());
        assert!(Event::parse(b":3", Stage::Input).is_err());
        assert!(Event::parse(&[0xff, 0xfe], Stage::Input).is_err());
    }

    #[test]
    fn producer_ids_exclude_separators() {
        assert!(valid_producer_id("p_1-a"));
        assert!(!valid_producer_id(""));
        assert!(!valid_producer_id("p:1"));
        assert!(!valid_producer_id("p 1"));
    }
}
