//! Dead-lettering: republishing a message a queue gave up on to its dead-letter exchange, with
//! the `x-death` history RabbitMQ records in its headers.

use bytes::{Bytes, BytesMut};
use warren_message::{BasicProperties, FieldTable, FieldValue, LenientTable, LenientValue, ShortStr};

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

/// Where a queue's dead letters go: its dead-letter exchange and, if it has one, the routing key
/// that replaces theirs (from its arguments or its policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetterTo {
    pub(crate) exchange: ShortStr,
    pub(crate) routing_key: Option<ShortStr>,
}

/// A message on its way to its queue's dead-letter exchange.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    /// The dead-letter exchange.
    pub(crate) exchange: ShortStr,
    /// The message as republished: `x-death` recorded, routing key replaced if the queue says so.
    pub(crate) message: Message,
    /// Keys it is routed by besides its routing key: its `CC` keys, unless the queue has a
    /// dead-letter routing key.
    pub(crate) extra_keys: Vec<ShortStr>,
    /// The `x-death` history, newest first, for cycle detection.
    deaths: Deaths,
    reason: DeathReason,
}

impl DeadLetter {
    /// The dead letter of `message`, given up on by queue `queue` (whose dead letters go `to`)
    /// for `reason` at `unix_secs`.
    pub(crate) fn new(
        queue: &str,
        to: DeadLetterTo,
        message: Message,
        reason: DeathReason,
        unix_secs: u64,
    ) -> DeadLetter {
        let DeadLetterTo { exchange, routing_key: dlrk } = to;
        let recorded = with_death_recorded(&message, queue, reason, dlrk.is_some(), unix_secs);
        // A dead-letter routing key replaces every key the message was published with; without
        // one the dead letter is routed as published, its CC keys included.
        let (routing_key, extra_keys) = match dlrk {
            Some(key) => (key, Vec::new()),
            None => (message.routing_key.clone(), recorded.cc),
        };
        let message = Message {
            exchange: exchange.clone(),
            routing_key,
            properties: recorded.properties,
            body: message.body,
        };
        DeadLetter { exchange, message, extra_keys, deaths: recorded.deaths, reason }
    }

    /// Whether the dead letter may enter `queue`: a message that would come back to a queue it
    /// died in, with no rejection anywhere in between, would cycle forever; RabbitMQ drops it
    /// for that queue.
    pub(crate) fn may_enter(&self, queue: &str) -> bool {
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

/// A message's properties with a death recorded (see [`with_death_recorded`]).
struct Recorded {
    properties: Bytes,
    /// The `x-death` history after this death.
    deaths: Deaths,
    /// The keys of the message's `CC` header, which route a dead letter that keeps its routing key.
    cc: Vec<ShortStr>,
}

/// The message's properties with this death added to `x-death` and the resulting history, as
/// RabbitMQ 3.10's `rabbit_dead_letter:make_msg` writes them: a new entry lists the routing key
/// and the `CC` keys (`BCC` was removed at publish), a repeated death only counts up, and
/// `x-first-death-*` is written when the message has no `x-death` yet. `x-last-death-*` is set
/// every time (see `last-death-headers` in docs/differences.md). A per-message expiration moves
/// into the record, so the copy does not expire again for the same reason. With `strip_cc` (the
/// queue has a dead-letter routing key, which alone routes the copy) the `CC` header goes.
/// Headers nested too deep to decode are kept as they came (an `x-death` among them counts as
/// one a client rewrote): decoding them whole would fail and lose every property.
fn with_death_recorded(
    message: &Message,
    queue: &str,
    reason: DeathReason,
    strip_cc: bool,
    unix_secs: u64,
) -> Recorded {
    // Properties that do not decode at all were never valid; the copy goes without them.
    let (mut props, headers) = BasicProperties::decode_lenient(&message.properties).unwrap_or_default();
    let mut headers = headers.unwrap_or_default();
    let original_expiration = props.expiration.take();
    let text = |s: &str| FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()));
    let cc = cc_keys(&headers);

    let previous = headers.remove("x-death");
    let first_death = previous.is_none();
    // An x-death that is not an array (a client rewrote it) is started afresh; only entries
    // added to an existing history are sorted, as RabbitMQ does.
    let (mut deaths, sort_new) = match previous {
        Some(LenientValue::Decoded(FieldValue::Array(items))) => (items, true),
        _ => (Vec::new(), false),
    };
    let same = |entry: &FieldValue| match entry {
        FieldValue::Table(t) => {
            t.get("queue").and_then(FieldValue::as_str) == Some(queue)
                && t.get("reason").and_then(FieldValue::as_str) == Some(reason.as_str())
        }
        _ => false,
    };
    let entry = match deaths.iter().position(same) {
        // Only the count changes: `time`, `exchange` and `routing-keys` stay those of the first
        // such death.
        Some(pos) => {
            let FieldValue::Table(mut t) = deaths.remove(pos) else { unreachable!("matched a table") };
            let count = t.get("count").and_then(FieldValue::as_i64).unwrap_or(0) + 1;
            t.insert("count", FieldValue::I64(count));
            sort_table(&mut t);
            t
        }
        None => {
            let mut keys = Vec::with_capacity(1 + cc.len());
            keys.push(text(&message.routing_key));
            keys.extend(cc.iter().map(|k| text(k)));
            let mut t = FieldTable::new();
            t.insert("count", FieldValue::I64(1));
            t.insert("reason", text(reason.as_str()));
            t.insert("queue", text(queue));
            t.insert("time", FieldValue::Timestamp(unix_secs));
            t.insert("exchange", text(&message.exchange));
            t.insert("routing-keys", FieldValue::Array(keys));
            if let Some(expiration) = &original_expiration {
                t.insert("original-expiration", text(expiration));
            }
            if sort_new {
                sort_table(&mut t);
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
    if first_death {
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
    if strip_cc {
        headers.remove("CC");
    }
    headers.sort_by_key();
    let mut out = BytesMut::new();
    props.encode_lenient(Some(&headers), &mut out);
    Recorded { properties: out.freeze(), deaths: history, cc }
}

/// The string keys of a `CC` header array; other items route nowhere, as at publish.
fn cc_keys(headers: &LenientTable) -> Vec<ShortStr> {
    match headers.get("CC") {
        Some(FieldValue::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                FieldValue::LongStr(key) => Some(ShortStr::from(String::from_utf8_lossy(key).as_ref())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
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

    fn record(m: &Message, queue: &str, reason: DeathReason) -> Bytes {
        with_death_recorded(m, queue, reason, false, 1).properties
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
        let props = record(&message(), "q", DeathReason::Rejected);
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
        m.properties = record(&m, "q", DeathReason::Rejected);
        m.properties = record(&m, "other", DeathReason::Expired);
        m.properties = record(&m, "q", DeathReason::Rejected);
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
        m.properties = record(&m, "a", DeathReason::Rejected);
        m.exchange = "dlx".into();
        m.properties = record(&m, "b", DeathReason::Expired);
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
        m.properties = record(&m, "a", DeathReason::Expired);
        let deaths = with_death_recorded(&m, "b", DeathReason::Expired, false, 1).deaths;
        assert!(is_cycle(&deaths, "a"));
        assert!(is_cycle(&deaths, "b"));
        assert!(!is_cycle(&deaths, "c"));
        // A rejection in the cycle makes it a client's doing: allowed.
        let deaths = with_death_recorded(&m, "b", DeathReason::Rejected, false, 1).deaths;
        assert!(!is_cycle(&deaths, "a"));
        // A rejection before the cycle does not count.
        let mut m = message();
        m.properties = record(&m, "x", DeathReason::Rejected);
        m.properties = record(&m, "a", DeathReason::Expired);
        let deaths = with_death_recorded(&m, "b", DeathReason::MaxLength, false, 1).deaths;
        assert!(is_cycle(&deaths, "a"));
        assert!(!is_cycle(&deaths, "x"));
    }

    fn with_headers(headers: FieldTable) -> Message {
        let mut out = BytesMut::new();
        BasicProperties { headers: Some(headers), ..Default::default() }.encode(&mut out);
        Message { properties: out.freeze(), ..message() }
    }

    fn cc(keys: Vec<FieldValue>) -> FieldTable {
        let mut h = FieldTable::new();
        h.insert("CC", FieldValue::Array(keys));
        h
    }

    fn text(s: &str) -> FieldValue {
        FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn headers(props: &Bytes) -> FieldTable {
        BasicProperties::decode(props).unwrap().headers.unwrap()
    }

    fn entry_keys(entry: &FieldValue) -> Vec<String> {
        let FieldValue::Table(t) = entry else { panic!("not a table: {entry:?}") };
        t.0.iter().map(|(k, _)| k.to_string()).collect()
    }

    #[test]
    fn routing_keys_list_the_routing_key_then_the_cc_keys() {
        let m = with_headers(cc(vec![text("k1"), FieldValue::I32(7), text("k2")]));
        let recorded = with_death_recorded(&m, "q", DeathReason::Rejected, false, 1);
        assert_eq!(recorded.cc, vec![ShortStr::from("k1"), ShortStr::from("k2")]);
        let (_, d) = deaths(&recorded.properties);
        let FieldValue::Table(t) = &d[0] else { panic!() };
        assert_eq!(t.get("routing-keys"), Some(&FieldValue::Array(vec![text("rk"), text("k1"), text("k2")])));
        assert!(headers(&recorded.properties).get("CC").is_some(), "CC stays without a dead-letter key");
        // With a dead-letter routing key the CC header goes, but x-death still lists its keys.
        let stripped = with_death_recorded(&m, "q", DeathReason::Rejected, true, 1);
        let (_, d) = deaths(&stripped.properties);
        let FieldValue::Table(t) = &d[0] else { panic!() };
        assert_eq!(t.get("routing-keys"), Some(&FieldValue::Array(vec![text("rk"), text("k1"), text("k2")])));
        assert_eq!(headers(&stripped.properties).get("CC"), None);
    }

    #[test]
    fn a_repeated_death_changes_only_the_count() {
        let mut m = with_headers(cc(vec![text("k1")]));
        m.properties = record(&m, "q", DeathReason::Rejected);
        // Back-date the entry, so a rewritten time would show.
        let mut h = headers(&m.properties);
        let Some(FieldValue::Array(mut d)) = h.remove("x-death") else { panic!() };
        let FieldValue::Table(t) = &mut d[0] else { panic!() };
        t.insert("time", FieldValue::Timestamp(1));
        h.insert("x-death", FieldValue::Array(d));
        h.insert("CC", FieldValue::Array(vec![text("k2")]));
        m = with_headers(h);
        m.routing_key = "other".into();
        m.exchange = "dlx".into();
        m.properties = record(&m, "q", DeathReason::Rejected);
        let (_, d) = deaths(&m.properties);
        let FieldValue::Table(t) = &d[0] else { panic!() };
        assert_eq!(t.get("count"), Some(&FieldValue::I64(2)));
        assert_eq!(t.get("time"), Some(&FieldValue::Timestamp(1)));
        assert_eq!(t.get("exchange").and_then(FieldValue::as_str), Some("ex"));
        assert_eq!(t.get("routing-keys"), Some(&FieldValue::Array(vec![text("rk"), text("k1")])));
    }

    #[test]
    fn entries_added_to_a_history_are_sorted() {
        let mut m = message();
        m.properties = record(&m, "a", DeathReason::Rejected);
        m.properties = record(&m, "b", DeathReason::Rejected);
        let (_, d) = deaths(&m.properties);
        // (The expiration moved into the first entry.)
        assert_eq!(entry_keys(&d[0]), ["count", "exchange", "queue", "reason", "routing-keys", "time"]);
        // The first entry keeps the order it was written in.
        let written = ["count", "reason", "queue", "time", "exchange", "routing-keys", "original-expiration"];
        assert_eq!(entry_keys(&d[1]), written);
    }

    #[test]
    fn first_death_headers_only_come_with_the_first_x_death() {
        // A client's x-death without x-first-death-*: none is added.
        let mut h = FieldTable::new();
        h.insert("x-death", FieldValue::Array(vec![]));
        let out = headers(&record(&with_headers(h), "q", DeathReason::Expired));
        assert_eq!(out.get("x-first-death-queue"), None);
        // A client's x-first-death-* without x-death: overwritten.
        let mut h = FieldTable::new();
        h.insert("x-first-death-queue", text("made-up"));
        let out = headers(&record(&with_headers(h), "q", DeathReason::Expired));
        assert_eq!(out.get("x-first-death-queue").and_then(FieldValue::as_str), Some("q"));
        // An x-death that is not an array is replaced by this death alone, as first written.
        let mut h = FieldTable::new();
        h.insert("x-death", text("rewritten by a client"));
        let props = record(&with_headers(h), "q", DeathReason::Expired);
        let (_, d) = deaths(&props);
        assert_eq!(d.len(), 1);
        assert_eq!(entry_keys(&d[0])[..3], ["count", "reason", "queue"]);
        assert_eq!(headers(&props).get("x-first-death-queue"), None);
    }

    /// Raw headers: `app` = "kept", `deep` = a table nested `depth` levels.
    fn deep_headers(depth: usize) -> (Bytes, Bytes) {
        let value = warren_testkit::methods::nested_table_value(depth);
        let mut body = b"\x03appS\x00\x00\x00\x04kept\x04deep".to_vec();
        body.extend_from_slice(&value);
        let mut table = (body.len() as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&body);
        (Bytes::from(table), Bytes::from(value))
    }

    #[test]
    fn headers_too_deep_to_decode_keep_every_property() {
        let (table, deep) = deep_headers(100);
        // flags: headers, delivery-mode, message-id; then the list in order.
        let flags = warren_message::properties::HEADERS
            | warren_message::properties::DELIVERY_MODE
            | warren_message::properties::MESSAGE_ID;
        let raw = [&flags.to_be_bytes()[..], &table, b"\x02", b"\x02id"].concat();
        let m = Message { properties: Bytes::from(raw), ..message() };
        assert!(BasicProperties::decode(&m.properties).is_err(), "too deep to decode whole");
        let recorded = with_death_recorded(&m, "q", DeathReason::Rejected, false, 1);
        let (p, headers) = BasicProperties::decode_lenient(&recorded.properties).unwrap();
        assert_eq!(p.delivery_mode, Some(2));
        assert_eq!(p.message_id.as_deref(), Some("id"));
        let headers = headers.unwrap();
        assert_eq!(headers.get("app").and_then(FieldValue::as_str), Some("kept"));
        let kept = headers.0.iter().find(|(k, _)| k == "deep").map(|(_, v)| v.clone());
        assert_eq!(kept, Some(LenientValue::Kept(deep)));
        let Some(FieldValue::Array(d)) = headers.get("x-death") else { panic!("no x-death") };
        assert_eq!(d.len(), 1);
        assert_eq!(headers.get("x-first-death-queue").and_then(FieldValue::as_str), Some("q"));
        // A second death finds the first in x-death, as with any message.
        let again = Message { properties: recorded.properties, ..m };
        let recorded = with_death_recorded(&again, "q", DeathReason::Rejected, false, 1);
        let (_, headers) = BasicProperties::decode_lenient(&recorded.properties).unwrap();
        let Some(FieldValue::Array(d)) = headers.unwrap().get("x-death").cloned() else { panic!() };
        let FieldValue::Table(t) = &d[0] else { panic!() };
        assert_eq!(t.get("count"), Some(&FieldValue::I64(2)));
    }
}
