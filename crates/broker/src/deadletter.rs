//! Dead-lettering: republishing a message a queue gave up on to its dead-letter exchange, with
//! the `x-death` history RabbitMQ records in its headers.

use bytes::{Bytes, BytesMut};
use warren_protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};

use warren_store::Message;

/// Why a message was dead-lettered, as written in `x-death`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    /// A consumer rejected it without requeue.
    Rejected,
    /// Its TTL ran out.
    Expired,
    /// A length limit pushed it out (or refused it, with `reject-publish-dlx`).
    MaxLength,
    /// It was returned more often than `x-delivery-limit` allows.
    DeliveryLimit,
}

impl DeathReason {
    /// The counter that counts dead letters of this reason.
    pub fn counter(self) -> crate::counters::Counter {
        use crate::counters::Counter;
        match self {
            DeathReason::Rejected => Counter::DeadLetteredRejected,
            DeathReason::Expired => Counter::DeadLetteredExpired,
            DeathReason::MaxLength => Counter::DeadLetteredMaxLength,
            DeathReason::DeliveryLimit => Counter::DeadLetteredDeliveryLimit,
        }
    }

    /// The reason as `x-death` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLength => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message on its way to its queue's dead-letter exchange.
#[derive(Debug)]
pub struct DeadLetter {
    /// The dead-letter exchange.
    pub exchange: ShortStr,
    /// The message as republished: `x-death` recorded, routing key replaced if the queue says so.
    pub message: Message,
    /// The `x-death` history, newest first, for cycle detection.
    deaths: Deaths,
    reason: DeathReason,
}

impl DeadLetter {
    /// The dead letter of `message`, given up on by queue `queue` (declared with `arguments`)
    /// for `reason` at `unix_secs`, if the queue has a dead-letter exchange.
    pub fn new(
        queue: &str,
        arguments: &FieldTable,
        message: Message,
        reason: DeathReason,
        unix_secs: u64,
    ) -> Option<DeadLetter> {
        let dlx = arguments.get("x-dead-letter-exchange").and_then(FieldValue::as_str)?;
        let routing_key = match arguments.get("x-dead-letter-routing-key").and_then(FieldValue::as_str) {
            Some(key) => ShortStr::from(key),
            None => message.routing_key.clone(),
        };
        let (properties, deaths) = with_death_recorded(&message, queue, reason, unix_secs);
        let exchange = ShortStr::from(dlx);
        let message = Message { exchange: exchange.clone(), routing_key, properties, body: message.body };
        Some(DeadLetter { exchange, message, deaths, reason })
    }

    /// Whether the dead letter may enter `queue`: a message that would come back to a queue it
    /// died in, with no rejection anywhere in between, would cycle forever; RabbitMQ drops it
    /// for that queue.
    pub fn may_enter(&self, queue: &str) -> bool {
        self.reason == DeathReason::Rejected || !is_cycle(&self.deaths, queue)
    }
}

/// The `x-death` history, newest first: (queue, whether the death was automatic, i.e. a
/// well-formed entry with a reason other than `rejected`).
type Deaths = Vec<(Option<String>, bool)>;

/// Whether dead-lettering to `target` closes a cycle as RabbitMQ sees it: `target` is in the
/// history, and neither it nor any death since was a rejection (or an entry a client made up).
fn is_cycle(deaths: &Deaths, target: &str) -> bool {
    let Some(pos) = deaths.iter().position(|(q, _)| q.as_deref() == Some(target)) else {
        return false;
    };
    deaths[..=pos].iter().all(|&(_, automatic)| automatic)
}

/// The message's properties with this death added to `x-death`, `x-first-death-*` set the first
/// time and `x-last-death-*` every time, and the resulting history; a per-message expiration
/// moves into the death record, so the copy does not expire again for the same reason.
fn with_death_recorded(
    message: &Message,
    queue: &str,
    reason: DeathReason,
    unix_secs: u64,
) -> (Bytes, Deaths) {
    let mut props = BasicProperties::decode(&message.properties).unwrap_or_default();
    let mut headers = props.headers.take().unwrap_or_default();
    let original_expiration = props.expiration.take();
    let text = |s: &str| FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()));

    let mut deaths = match headers.remove("x-death") {
        Some(FieldValue::Array(items)) => items,
        _ => Vec::new(),
    };
    let same = |entry: &FieldValue| match entry {
        FieldValue::Table(t) => {
            t.get("queue").and_then(FieldValue::as_str) == Some(queue)
                && t.get("reason").and_then(FieldValue::as_str) == Some(reason.as_str())
        }
        _ => false,
    };
    let entry = match deaths.iter().position(same) {
        Some(pos) => {
            let FieldValue::Table(mut t) = deaths.remove(pos) else { unreachable!("matched a table") };
            let count = t.get("count").and_then(FieldValue::as_i64).unwrap_or(0) + 1;
            t.insert("count", FieldValue::I64(count));
            t.insert("time", FieldValue::Timestamp(unix_secs));
            sort_table(&mut t);
            t
        }
        None => {
            let mut t = FieldTable::new();
            t.insert("count", FieldValue::I64(1));
            t.insert("reason", text(reason.as_str()));
            t.insert("queue", text(queue));
            t.insert("time", FieldValue::Timestamp(unix_secs));
            t.insert("exchange", text(&message.exchange));
            t.insert("routing-keys", FieldValue::Array(vec![text(&message.routing_key)]));
            if let Some(expiration) = &original_expiration {
                t.insert("original-expiration", text(expiration));
            }
            t
        }
    };
    deaths.insert(0, FieldValue::Table(entry));
    let history = deaths
        .iter()
        .map(|d| match d {
            FieldValue::Table(t) => (
                t.get("queue").and_then(FieldValue::as_str).map(str::to_owned),
                t.get("reason").and_then(FieldValue::as_str).is_some_and(|r| r != "rejected"),
            ),
            _ => (None, false),
        })
        .collect();
    if headers.get("x-first-death-reason").is_none() {
        headers.insert("x-first-death-exchange", text(&message.exchange));
        headers.insert("x-first-death-queue", text(queue));
        headers.insert("x-first-death-reason", text(reason.as_str()));
    }
    // RabbitMQ 3.13 and later also name the latest death, so a consumer of the dead-letter queue
    // need not search the x-death array for it.
    headers.insert("x-last-death-exchange", text(&message.exchange));
    headers.insert("x-last-death-queue", text(queue));
    headers.insert("x-last-death-reason", text(reason.as_str()));
    headers.insert("x-death", FieldValue::Array(deaths));
    sort_table(&mut headers);
    props.headers = Some(headers);
    let mut out = BytesMut::new();
    props.encode(&mut out);
    (out.freeze(), history)
}

/// RabbitMQ sorts the tables it rewrites by key.
fn sort_table(table: &mut FieldTable) {
    table.0.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        let mut out = BytesMut::new();
        BasicProperties { expiration: Some("60000".into()), ..Default::default() }.encode(&mut out);
        Message {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            properties: out.freeze(),
            body: Bytes::from_static(b"body"),
        }
    }

    fn deaths(props: &Bytes) -> (BasicProperties, Vec<FieldValue>) {
        let p = BasicProperties::decode(props).unwrap();
        let Some(FieldValue::Array(d)) = p.headers.as_ref().unwrap().get("x-death").cloned() else {
            panic!("no x-death")
        };
        (p, d)
    }

    #[test]
    fn first_death_records_everything() {
        let (props, _) = with_death_recorded(&message(), "q", DeathReason::Rejected, 1);
        let (p, d) = deaths(&props);
        assert_eq!(p.expiration, None, "expiration moves into the death record");
        assert_eq!(d.len(), 1);
        let FieldValue::Table(t) = &d[0] else { panic!() };
        assert_eq!(t.get("count"), Some(&FieldValue::I64(1)));
        assert_eq!(t.get("reason").and_then(FieldValue::as_str), Some("rejected"));
        assert_eq!(t.get("original-expiration").and_then(FieldValue::as_str), Some("60000"));
        let h = p.headers.unwrap();
        assert_eq!(h.get("x-first-death-queue").and_then(FieldValue::as_str), Some("q"));
    }

    #[test]
    fn repeated_death_counts_up_and_moves_first() {
        let mut m = message();
        m.properties = with_death_recorded(&m, "q", DeathReason::Rejected, 1).0;
        m.properties = with_death_recorded(&m, "other", DeathReason::Expired, 1).0;
        m.properties = with_death_recorded(&m, "q", DeathReason::Rejected, 1).0;
        let (p, d) = deaths(&m.properties);
        assert_eq!(d.len(), 2);
        let FieldValue::Table(t) = &d[0] else { panic!() };
        assert_eq!(t.get("queue").and_then(FieldValue::as_str), Some("q"));
        assert_eq!(t.get("count"), Some(&FieldValue::I64(2)));
        let h = p.headers.unwrap();
        assert_eq!(h.get("x-first-death-reason").and_then(FieldValue::as_str), Some("rejected"));
        assert_eq!(h.get("x-first-death-queue").and_then(FieldValue::as_str), Some("q"));
        assert_eq!(h.get("x-last-death-queue").and_then(FieldValue::as_str), Some("q"));
        assert_eq!(h.get("x-last-death-reason").and_then(FieldValue::as_str), Some("rejected"));
    }

    #[test]
    fn last_death_names_the_latest_one() {
        let mut m = message();
        m.properties = with_death_recorded(&m, "a", DeathReason::Rejected, 1).0;
        m.exchange = "dlx".into();
        m.properties = with_death_recorded(&m, "b", DeathReason::Expired, 1).0;
        let h = BasicProperties::decode(&m.properties).unwrap().headers.unwrap();
        let get = |k: &str| h.get(k).and_then(FieldValue::as_str).map(str::to_owned);
        assert_eq!(get("x-first-death-queue").as_deref(), Some("a"));
        assert_eq!(get("x-first-death-reason").as_deref(), Some("rejected"));
        assert_eq!(get("x-first-death-exchange").as_deref(), Some("ex"));
        assert_eq!(get("x-last-death-queue").as_deref(), Some("b"));
        assert_eq!(get("x-last-death-reason").as_deref(), Some("expired"));
        assert_eq!(get("x-last-death-exchange").as_deref(), Some("dlx"));
        // Sorted by key, as RabbitMQ writes the tables it rewrites.
        let keys: Vec<&str> = h.0.iter().map(|(k, _)| &**k).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn cycles_are_automatic_returns_only() {
        let mut m = message();
        // expired in a, expired in b: back to a closes an automatic cycle; c is new.
        m.properties = with_death_recorded(&m, "a", DeathReason::Expired, 1).0;
        let (_, deaths) = with_death_recorded(&m, "b", DeathReason::Expired, 1);
        assert!(is_cycle(&deaths, "a"));
        assert!(is_cycle(&deaths, "b"));
        assert!(!is_cycle(&deaths, "c"));
        // A rejection in the cycle makes it a client's doing: allowed.
        let (_, deaths) = with_death_recorded(&m, "b", DeathReason::Rejected, 1);
        assert!(!is_cycle(&deaths, "a"));
        // A rejection before the cycle does not count.
        let mut m = message();
        m.properties = with_death_recorded(&m, "x", DeathReason::Rejected, 1).0;
        m.properties = with_death_recorded(&m, "a", DeathReason::Expired, 1).0;
        let (_, deaths) = with_death_recorded(&m, "b", DeathReason::MaxLength, 1);
        assert!(is_cycle(&deaths, "a"));
        assert!(!is_cycle(&deaths, "x"));
    }
}
