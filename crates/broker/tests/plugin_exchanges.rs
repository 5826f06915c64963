//! The plugin exchange types, through the vhost API (definition commands, routing, ticks on
//! simulated time): `x-consistent-hash` and `x-delayed-message`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use warren_broker::{
    Actor, BindingSpec, Broker, BrokerError, Command, Counter, DestinationKind, Effects, ExchangeSpec,
    HeadersSource, Message, Now, QueueSpec, VHost,
};
use warren_message::{BasicProperties, FieldTable, FieldValue};

/// The tests' simulated start time.
fn start() -> Now {
    Now::new(Instant::now(), 1_767_225_600_000)
}

fn apply(v: &VHost, command: Command) -> Result<(), BrokerError> {
    v.apply(command, Actor::connection(1), start().instant, &mut Effects::default()).map(|_| ())
}

fn binding(queue: &str, exchange: &str, key: &str) -> BindingSpec {
    BindingSpec {
        source: exchange.into(),
        destination: queue.into(),
        destination_kind: DestinationKind::Queue,
        key: key.into(),
        arguments: FieldTable::new(),
    }
}

fn bind_queue(v: &VHost, queue: &str, exchange: &str, key: &str) -> Result<(), BrokerError> {
    apply(v, Command::Bind(binding(queue, exchange, key)))
}

fn unbind_queue(v: &VHost, queue: &str, exchange: &str, key: &str) -> Result<(), BrokerError> {
    apply(v, Command::Unbind(binding(queue, exchange, key)))
}

fn ready(v: &VHost, queue: &str) -> u64 {
    v.queue(queue).unwrap().stats().ready
}

fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in pairs {
        t.insert(*k, v.clone());
    }
    t
}

fn exchange(v: &VHost, name: &str, kind: &str, arguments: FieldTable) -> Result<(), BrokerError> {
    let spec = ExchangeSpec { name: name.into(), kind: kind.into(), arguments, ..Default::default() };
    apply(v, Command::DeclareExchange(spec))
}

fn queue(v: &VHost, name: &str) {
    apply(v, Command::DeclareQueue(QueueSpec { name: name.into(), ..Default::default() })).unwrap();
}

fn props(p: BasicProperties) -> Bytes {
    let mut out = BytesMut::new();
    p.encode(&mut out);
    out.freeze()
}

fn message(exchange: &str, key: &str, properties: Bytes) -> Message {
    Message { exchange: exchange.into(), routing_key: key.into(), properties, body: Bytes::from_static(b"m") }
}

fn routed(v: &VHost, m: &Message) -> Vec<String> {
    let mut out = Vec::new();
    v.route(&m.exchange, m, &[], start().instant, &mut out).unwrap();
    out.iter().map(|q| q.name.to_string()).collect()
}

fn setup() -> (Arc<Broker>, Arc<VHost>) {
    let b = Arc::new(Broker::new());
    let v = b.vhost("/").unwrap();
    (b, v)
}

/// The text of a plugin argument check's failure (a 406 PRECONDITION_FAILED on the wire).
fn precondition(e: BrokerError) -> String {
    assert!(matches!(e, BrokerError::PreconditionFailed(_) | BrokerError::Inequivalent(_)), "{e:?}");
    e.to_string()
}

// --- x-consistent-hash ---------------------------------------------------------------------

#[test]
fn consistent_hash_routes_each_message_to_one_queue_by_weight() {
    let (_b, v) = setup();
    exchange(&v, "chx", "x-consistent-hash", FieldTable::new()).unwrap();
    for (q, w) in [("q1", "1"), ("q2", "1"), ("q3", "2")] {
        queue(&v, q);
        bind_queue(&v, q, "chx", w).unwrap();
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..8000 {
        let key = format!("order-{i}");
        let first = routed(&v, &message("chx", &key, Bytes::new()));
        assert_eq!(first.len(), 1, "exactly one queue");
        assert_eq!(routed(&v, &message("chx", &key, Bytes::new())), first, "same key, same queue");
        *counts.entry(first[0].clone()).or_default() += 1;
    }
    for (q, expected) in [("q1", 2000.0), ("q2", 2000.0), ("q3", 4000.0)] {
        let got = counts[q] as f64;
        assert!((got - expected).abs() < expected * 0.25, "{q}: {got} vs {expected}: {counts:?}");
    }
}

#[test]
fn consistent_hash_with_no_bindings_routes_nowhere() {
    let (_b, v) = setup();
    exchange(&v, "chx", "x-consistent-hash", FieldTable::new()).unwrap();
    assert!(routed(&v, &message("chx", "k", Bytes::new())).is_empty());
}

#[test]
fn consistent_hash_weights_must_be_positive_integers() {
    let (_b, v) = setup();
    exchange(&v, "chx", "x-consistent-hash", FieldTable::new()).unwrap();
    queue(&v, "q");
    let bind = |key: &str| bind_queue(&v, "q", "chx", key);
    assert_eq!(precondition(bind("abc").unwrap_err()), "The binding key must be an integer: <<\"abc\">>");
    assert_eq!(precondition(bind("0").unwrap_err()), "The binding key must be greater than 0");
    assert_eq!(precondition(bind("-2").unwrap_err()), "The binding key must be greater than 0");
    bind("10").unwrap();
    assert_eq!(routed(&v, &message("chx", "k", Bytes::new())), ["q"]);
}

#[test]
fn consistent_hash_on_a_header_or_property() {
    let (_b, v) = setup();
    exchange(&v, "by-header", "x-consistent-hash", args(&[("hash-header", text("user"))])).unwrap();
    exchange(&v, "by-id", "x-consistent-hash", args(&[("hash-property", text("message_id"))])).unwrap();
    for q in ["a", "b", "c", "d"] {
        queue(&v, q);
        bind_queue(&v, q, "by-header", "1").unwrap();
        bind_queue(&v, q, "by-id", "1").unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for i in 0..200 {
        let user = format!("user-{i}");
        let h =
            props(BasicProperties { headers: Some(args(&[("user", text(&user))])), ..Default::default() });
        let one = routed(&v, &message("by-header", "rk-1", h.clone()));
        // The routing key does not matter, the header does.
        assert_eq!(routed(&v, &message("by-header", "rk-2", h)), one);
        seen.insert(one[0].clone());

        let p = props(BasicProperties { message_id: Some(user.as_str().into()), ..Default::default() });
        let one = routed(&v, &message("by-id", "x", p.clone()));
        assert_eq!(routed(&v, &message("by-id", "y", p)), one);
    }
    assert_eq!(seen.len(), 4, "the header spreads messages over every queue");
}

#[test]
fn consistent_hash_arguments_are_checked() {
    let (_b, v) = setup();
    let both = args(&[("hash-header", text("h")), ("hash-property", text("message_id"))]);
    let e = exchange(&v, "x1", "x-consistent-hash", both).unwrap_err();
    assert_eq!(precondition(e), "hash-header and hash-property are mutually exclusive");
    let e = exchange(&v, "x2", "x-consistent-hash", args(&[("hash-property", text("app_id"))])).unwrap_err();
    assert_eq!(precondition(e), "Unsupported property: app_id");
    // Not a string: the plugin crashes, and RabbitMQ closes the connection with INTERNAL_ERROR.
    let e =
        exchange(&v, "x3", "x-consistent-hash", args(&[("hash-header", FieldValue::I32(5))])).unwrap_err();
    assert!(matches!(e, BrokerError::ExchangeTypeFailure(_)), "{e:?}");
    assert!(v.exchange("x3").is_err(), "not declared");
}

fn bind_weights(v: &VHost, x: &str, queues: &[(&str, &str)]) {
    for (q, w) in queues {
        if v.queue(q).is_err() {
            queue(v, q);
        }
        bind_queue(v, q, x, w).unwrap();
    }
}

fn placed(v: &VHost, x: &str, key: &str) -> Vec<String> {
    routed(v, &message(x, key, Bytes::new()))
}

/// Keys land where RabbitMQ's plugin puts them. The buckets come from the plugin's own
/// `route/2` (RabbitMQ 3.10.8 on OTP 25): with ten one-bucket destinations, "" takes bucket
/// 9, "a" 6, "orders.created" 7, "key-2" 7 and "key-17" 0.
#[test]
fn consistent_hash_places_keys_as_the_plugin_does() {
    let (_b, v) = setup();
    exchange(&v, "ten", "x-consistent-hash", FieldTable::new()).unwrap();
    let names: Vec<String> = (0..10).map(|i| format!("q{i}")).collect();
    let weights: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    bind_weights(&v, "ten", &weights);
    for (key, bucket) in [("", 9), ("a", 6), ("orders.created", 7), ("key-2", 7), ("key-17", 0)] {
        assert_eq!(placed(&v, "ten", key), [format!("q{bucket}")], "{key:?}");
    }
    // Weights 3 and 7 own buckets 0-2 and 3-9 of the same ten.
    exchange(&v, "two", "x-consistent-hash", FieldTable::new()).unwrap();
    bind_weights(&v, "two", &[("light", "3"), ("heavy", "7")]);
    for (key, q) in [("", "heavy"), ("a", "heavy"), ("key-2", "heavy"), ("key-17", "light")] {
        assert_eq!(placed(&v, "two", key), [q], "{key:?}");
    }
}

/// Unbinding removes the destination's buckets and moves the later ones down; binding again
/// puts it at the end. With three buckets "" takes 0, "a" 1 and "key-0" 2; with two, 0, 1, 1.
#[test]
fn consistent_hash_unbind_and_rebind_renumber_buckets() {
    let (_b, v) = setup();
    exchange(&v, "chx", "x-consistent-hash", FieldTable::new()).unwrap();
    bind_weights(&v, "chx", &[("q0", "1"), ("q1", "1"), ("q2", "1")]);
    let placement = |v: &VHost| ["", "a", "key-0"].map(|k| placed(v, "chx", k).concat());
    assert_eq!(placement(&v), ["q0", "q1", "q2"]);
    unbind_queue(&v, "q0", "chx", "1").unwrap();
    assert_eq!(placement(&v), ["q1", "q2", "q2"]);
    bind_weights(&v, "chx", &[("q0", "1")]);
    assert_eq!(placement(&v), ["q1", "q2", "q0"]);
}

/// As in the plugin, a second binding to a destination adds no buckets, and removing either
/// of its bindings removes all of them.
#[test]
fn consistent_hash_counts_one_binding_per_destination() {
    let (_b, v) = setup();
    exchange(&v, "chx", "x-consistent-hash", FieldTable::new()).unwrap();
    bind_weights(&v, "chx", &[("q0", "1"), ("q1", "1"), ("q0", "5")]);
    // Still two buckets, q0's first: "" takes bucket 0 and "a" bucket 1 of two.
    assert_eq!(placed(&v, "chx", ""), ["q0"]);
    assert_eq!(placed(&v, "chx", "a"), ["q1"]);
    unbind_queue(&v, "q0", "chx", "5").unwrap();
    assert_eq!(placed(&v, "chx", ""), ["q1"], "q0 keeps a binding but has no buckets");
}

/// Sender-selected keys (`CC`) do not count: the plugin hashes the first routing key only, so a
/// message still reaches one queue.
#[test]
fn consistent_hash_routes_by_the_first_key_only() {
    let (_b, v) = setup();
    exchange(&v, "chx", "x-consistent-hash", FieldTable::new()).unwrap();
    bind_weights(&v, "chx", &[("q0", "1"), ("q1", "1"), ("q2", "1")]);
    let x = v.exchange("chx").unwrap();
    let no_props = Bytes::new();
    let mut out = Vec::new();
    x.route_message("key-0", &["a".into(), "".into()], &mut HeadersSource::new(&no_props), &mut out);
    let names: Vec<&str> = out.iter().map(|q| &*q.name).collect();
    assert_eq!(names, ["q2", "q2", "q2"], "every key routes as \"key-0\"");
}

#[test]
fn plugin_types_redeclare_as_themselves_only() {
    let (_b, v) = setup();
    exchange(&v, "chx", "x-consistent-hash", FieldTable::new()).unwrap();
    exchange(&v, "chx", "x-consistent-hash", FieldTable::new()).unwrap();
    let e = exchange(&v, "chx", "direct", FieldTable::new()).unwrap_err();
    assert!(precondition(e).contains("inequivalent arg 'type'"));
    let delayed = args(&[("x-delayed-type", text("direct"))]);
    exchange(&v, "dx", "x-delayed-message", delayed.clone()).unwrap();
    exchange(&v, "dx", "x-delayed-message", delayed).unwrap();
    let e = exchange(&v, "dx", "x-consistent-hash", FieldTable::new()).unwrap_err();
    assert!(precondition(e).contains("received 'x-consistent-hash' but current is 'x-delayed-message'"));
}

// --- x-delayed-message ---------------------------------------------------------------------

fn delayed_props(delay: FieldValue) -> Bytes {
    props(BasicProperties { headers: Some(args(&[("x-delay", delay)])), ..Default::default() })
}

#[test]
fn delayed_type_is_required_and_must_exist() {
    let (_b, v) = setup();
    let e = exchange(&v, "d", "x-delayed-message", FieldTable::new()).unwrap_err();
    assert_eq!(precondition(e), "Invalid argument, 'x-delayed-type' must be an existing exchange type");
    let e = exchange(&v, "d", "x-delayed-message", args(&[("x-delayed-type", text("nope"))])).unwrap_err();
    assert_eq!(e, BrokerError::UnknownExchangeType("nope".into()));
    let e = exchange(&v, "d", "x-delayed-message", args(&[("x-delayed-type", text("x-delayed-message"))]))
        .unwrap_err();
    precondition(e);
}

#[test]
fn delayed_messages_route_after_their_delay() {
    let (b, v) = setup();
    exchange(&v, "d", "x-delayed-message", args(&[("x-delayed-type", text("topic"))])).unwrap();
    queue(&v, "q");
    bind_queue(&v, "q", "d", "orders.*").unwrap();
    let q = v.queue("q").unwrap();

    // No delay, a negative one or zero: routed at once, with the topic routing.
    for p in [Bytes::new(), delayed_props(FieldValue::I32(-5)), delayed_props(FieldValue::I32(0))] {
        assert_eq!(routed(&v, &message("d", "orders.new", p)), ["q"]);
    }
    assert!(routed(&v, &message("d", "other", Bytes::new())).is_empty());

    // Delayed: reaches nothing now, the queue later.
    assert!(routed(&v, &message("d", "orders.late", delayed_props(FieldValue::I32(150)))).is_empty());
    assert!(routed(&v, &message("d", "nowhere", delayed_props(FieldValue::I32(1)))).is_empty());
    b.tick(start().later(Duration::from_millis(149)));
    assert_eq!(q.stats().ready, 0);
    let delayed = v.exchange("d").unwrap();
    assert_eq!(delayed.delayed().unwrap().len(), 1, "the 1 ms one fell due and reached no queue");
    b.tick(start().later(Duration::from_millis(150)));
    assert_eq!(q.stats().ready, 1);
    assert!(delayed.delayed().unwrap().is_empty());
    // Counted once, when published: releasing a held message does not count it again.
    assert_eq!(delayed.counters().snapshot().get(Counter::Published), 6);
    let (m, _) = q.get(true, start().instant).unwrap();
    assert_eq!(&*m.message.routing_key, "orders.late");
    let headers = BasicProperties::decode(&m.message.properties).unwrap().headers.unwrap();
    assert_eq!(
        headers.get("x-delay"),
        Some(&FieldValue::I32(-150)),
        "the delay is negated, as the plugin does"
    );
}

#[test]
fn deleting_a_delayed_exchange_drops_what_it_held() {
    let (b, v) = setup();
    exchange(&v, "d", "x-delayed-message", args(&[("x-delayed-type", text("fanout"))])).unwrap();
    queue(&v, "q");
    bind_queue(&v, "q", "d", "").unwrap();
    assert!(routed(&v, &message("d", "", delayed_props(FieldValue::I32(1)))).is_empty());
    let held = v.exchange("d").unwrap();
    apply(&v, Command::DeleteExchange { name: "d".into(), if_unused: false }).unwrap();
    assert!(held.delayed().unwrap().is_empty());
    b.tick(start().later(Duration::from_millis(5)));
    assert_eq!(ready(&v, "q"), 0);
}

#[test]
fn a_delayed_exchange_can_route_by_consistent_hash() {
    let (b, v) = setup();
    exchange(&v, "d", "x-delayed-message", args(&[("x-delayed-type", text("x-consistent-hash"))])).unwrap();
    queue(&v, "a");
    queue(&v, "b");
    bind_queue(&v, "a", "d", "1").unwrap();
    bind_queue(&v, "b", "d", "1").unwrap();
    assert!(bind_queue(&v, "b", "d", "w").is_err(), "weights are checked");
    assert!(routed(&v, &message("d", "k", delayed_props(FieldValue::I32(1)))).is_empty());
    b.tick(start().later(Duration::from_millis(5)));
    let total = ready(&v, "a") + ready(&v, "b");
    assert_eq!(total, 1);
}
