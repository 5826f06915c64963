//! Routing.

use crate::harness::*;

#[test]
fn exchange_to_exchange_binding_routes() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "front", "direct");
    c.exchange(1, "back", "fanout");
    c.queue(1, "q");
    c.bind(1, "q", "back", "");
    let bind = ExchangeBind {
        destination: "back".into(),
        source: "front".into(),
        routing_key: "k".into(),
        ..Default::default()
    };
    c.rpc(1, bind, "exchange.bind-ok");

    c.publish(1, "front", "k", &no_props(), b"through");
    c.publish(1, "front", "other", &no_props(), b"not bound");
    c.publish(1, "back", "anything", &no_props(), b"direct to back");
    let mut got = Vec::new();
    while let Some((ok, item)) = c.get(1, "q", true) {
        got.push((ok.exchange.to_string(), String::from_utf8_lossy(item.body()).into_owned()));
    }
    assert_eq!(got, vec![("front".into(), "through".into()), ("back".into(), "direct to back".into())]);

    let unbind = ExchangeUnbind {
        destination: "back".into(),
        source: "front".into(),
        routing_key: "k".into(),
        ..Default::default()
    };
    c.rpc(1, unbind, "exchange.unbind-ok");
    c.publish(1, "front", "k", &no_props(), b"after unbind");
    assert!(c.get(1, "q", true).is_none());
}

#[test]
fn a_message_reaching_a_queue_twice_is_stored_once() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "e1", "fanout");
    c.queue(1, "q");
    c.bind(1, "q", "e1", "");
    c.bind(1, "q", "amq.fanout", "");
    c.rpc(
        1,
        ExchangeBind { destination: "e1".into(), source: "amq.fanout".into(), ..Default::default() },
        "exchange.bind-ok",
    );
    c.publish(1, "amq.fanout", "", &no_props(), b"once");
    assert_eq!(c.counts(1, "q").0, 1);
}

#[test]
fn topic_routing() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "orders");
    c.queue(1, "errors");
    c.queue(1, "all");
    c.bind(1, "orders", "amq.topic", "orders.*");
    c.bind(1, "errors", "amq.topic", "#.error");
    c.bind(1, "all", "amq.topic", "#");
    for key in ["orders.created", "orders.eu.created", "app.db.error", "error", "orders.error", "orders"] {
        c.publish(1, "amq.topic", key, &no_props(), key.as_bytes());
    }
    let mut drain = |q: &str| {
        let mut keys = Vec::new();
        while let Some((ok, _)) = c.get(1, q, true) {
            keys.push(ok.routing_key.to_string());
        }
        keys
    };
    assert_eq!(drain("orders"), vec!["orders.created", "orders.error"]);
    assert_eq!(drain("errors"), vec!["app.db.error", "error", "orders.error"]);
    assert_eq!(drain("all").len(), 6);
}

#[test]
fn headers_routing() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "all-of");
    c.queue(1, "any-of");
    c.bind_args(1, "all-of", "amq.headers", "", table(&[("format", text("pdf")), ("type", text("report"))]));
    c.bind_args(
        1,
        "any-of",
        "amq.headers",
        "",
        table(&[("x-match", text("any")), ("format", text("pdf")), ("type", text("report"))]),
    );
    let with =
        |pairs: &[(&str, FieldValue)]| BasicProperties { headers: Some(table(pairs)), ..Default::default() };
    c.publish(1, "amq.headers", "", &with(&[("format", text("pdf")), ("type", text("report"))]), b"both");
    c.publish(1, "amq.headers", "", &with(&[("format", text("pdf"))]), b"format only");
    c.publish(1, "amq.headers", "", &with(&[("format", text("zip")), ("type", text("log"))]), b"neither");
    c.publish(1, "amq.headers", "", &no_props(), b"no headers");
    let mut drain = |q: &str| {
        let mut bodies = Vec::new();
        while let Some((_, item)) = c.get(1, q, true) {
            bodies.push(String::from_utf8_lossy(item.body()).into_owned());
        }
        bodies
    };
    assert_eq!(drain("all-of"), vec!["both"]);
    assert_eq!(drain("any-of"), vec!["both", "format only"]);
}

#[test]
fn fanout_ignores_the_routing_key() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q1");
    c.queue(1, "q2");
    c.bind(1, "q1", "amq.fanout", "ignored");
    c.bind(1, "q2", "amq.fanout", "");
    c.publish(1, "amq.fanout", "whatever", &no_props(), b"x");
    assert_eq!((c.counts(1, "q1").0, c.counts(1, "q2").0), (1, 1));
}

#[test]
fn queue_unbind_stops_routing() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.bind(1, "q", "amq.direct", "k");
    c.publish(1, "amq.direct", "k", &no_props(), b"1");
    let unbind = QueueUnbind {
        queue: "q".into(),
        exchange: "amq.direct".into(),
        routing_key: "k".into(),
        ..Default::default()
    };
    c.rpc(1, unbind, "queue.unbind-ok");
    c.publish(1, "amq.direct", "k", &no_props(), b"2");
    assert_eq!(c.counts(1, "q").0, 1);
}
