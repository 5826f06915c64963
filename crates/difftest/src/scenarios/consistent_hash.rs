//! The `x-consistent-hash` exchange (RabbitMQ's bundled `rabbitmq_consistent_hash_exchange`
//! plugin, enabled in the reference broker by `scripts/rabbitmq-ref.sh`): which queue each
//! message lands in, by routing key, header or property, as bindings come and go; and the
//! plugin's argument and weight errors.
//!
//! The messages of a batch are published quietly with confirms; then each queue is emptied
//! quietly and logged as one line naming the messages it held, so a transcript shows the
//! whole placement compactly.

use warren_protocol::methods::*;

use crate::harness::{Ctx, Res};
use crate::raw::Raw;
use crate::wire::{Props, Table, Val};

const CHX: &str = "x-consistent-hash";

/// A message to publish: routing key, properties, and the label its body carries (what the
/// placement lines show).
struct Outgoing {
    key: String,
    props: Props,
    label: String,
}

fn by_key(key: impl Into<String>, label: impl Into<String>) -> Outgoing {
    Outgoing { key: key.into(), props: Props::new(), label: label.into() }
}

fn with_props(props: Props, label: impl Into<String>) -> Outgoing {
    Outgoing { key: "rk".into(), props, label: label.into() }
}

/// 200 distinct routing keys, and a few unusual ones (empty, non-ASCII, long, numeric).
fn many_keys() -> Vec<Outgoing> {
    let mut out: Vec<Outgoing> = (0..200).map(|i| by_key(format!("key-{i}"), format!("k{i}"))).collect();
    out.push(by_key("", "empty"));
    out.push(by_key("café.ü", "utf8"));
    out.push(by_key("x".repeat(255), "long"));
    out.push(by_key("12345", "digits"));
    out.push(by_key("orders.created", "orders"));
    out
}

/// The channel that publishes with confirms, counting sequence numbers.
struct Publisher {
    cx: Ctx,
    ch: u16,
    next_seq: u64,
}

impl Publisher {
    async fn new(cx: &Ctx, c: &mut Raw, ch: u16) -> Res<Publisher> {
        c.open(ch).await?;
        c.confirm_select(ch).await?;
        Ok(Publisher { cx: cx.clone(), ch, next_seq: 1 })
    }

    /// Publishes every message to `x` without logging each, then waits for (and logs) their
    /// confirms, so they are all routed before anything is read back.
    async fn publish(&mut self, c: &mut Raw, x: &str, messages: &[Outgoing]) -> Res {
        let quiet = c.quiet;
        c.quiet = true;
        for m in messages {
            c.publish(self.ch, x, &m.key, &m.props, m.label.as_bytes()).await;
        }
        c.quiet = quiet;
        let first = self.next_seq;
        self.next_seq += messages.len() as u64;
        self.cx.log(format!("published {} messages", messages.len()));
        c.await_confirms(self.ch, first, self.next_seq - 1).await
    }
}

/// Empties each queue (basic.get, quietly) and logs one line per queue: how many messages it
/// held and their labels, in order.
async fn log_placement(cx: &Ctx, c: &mut Raw, ch: u16, queues: &[(&str, &str)]) -> Res {
    for (label, q) in queues {
        let quiet = c.quiet;
        c.quiet = true;
        let mut held = Vec::new();
        let outcome = loop {
            match c.get(ch, q, true).await {
                Ok(m) if m.is("basic.get-ok") => {
                    held.push(String::from_utf8_lossy(m.body().unwrap_or_default()).into_owned())
                }
                Ok(m) if m.is("basic.get-empty") => break Ok(()),
                Ok(m) => break Err(m.render()),
                Err(a) => break Err(a.0),
            }
        };
        c.quiet = quiet;
        match outcome {
            Ok(()) => cx.log(format!("queue {label} held {}: {}", held.len(), held.join(" "))),
            Err(e) => cx.log(format!("queue {label}: reading it failed after {}: {e}", held.len())),
        }
    }
    Ok(())
}

/// Declares `x` (consistent-hash, with `args`) and a queue per (label, weight), bound in that
/// order. Returns the queue names.
async fn weighted_queues(
    cx: &Ctx,
    c: &mut Raw,
    x: &str,
    args: Table,
    weights: &[(&str, &str)],
) -> Res<Vec<String>> {
    c.call(
        1,
        ExchangeDeclare {
            exchange: x.into(),
            kind: CHX.into(),
            arguments: args.to_field_table(),
            ..Default::default()
        },
    )
    .await?;
    let mut names = Vec::new();
    for (label, weight) in weights {
        let q = cx.name(label);
        c.queue(1, &q).await?;
        c.bind(1, &q, x, weight, Table::new()).await?;
        names.push(q);
    }
    Ok(names)
}

fn labelled<'a>(weights: &[(&'a str, &str)], names: &'a [String]) -> Vec<(&'a str, &'a str)> {
    weights.iter().zip(names).map(|((label, _), q)| (*label, q.as_str())).collect()
}

/// Weights 3, 1, 10 and 2 (bound in that order, so not sorted): 205 routing keys, each in
/// exactly the queue the plugin picks. Before any binding a mandatory message comes back.
pub async fn consistent_hash_by_routing_key(cx: Ctx) -> Res {
    let x = cx.name("chx");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, CHX).await?;
    c.publish_mandatory(1, &x, "k", &Props::new(), b"no buckets yet").await;
    c.recv(1).await?;
    let weights = [("w3", "3"), ("w1", "1"), ("w10", "10"), ("w2", "2")];
    let names = weighted_queues(&cx, &mut c, &x, Table::new(), &weights).await?;
    let mut p = Publisher::new(&cx, &mut c, 2).await?;
    p.publish(&mut c, &x, &many_keys()).await?;
    log_placement(&cx, &mut c, 1, &labelled(&weights, &names)).await?;
    c.close().await
}

/// `hash-header`: the header's value as RabbitMQ decodes it (type and value) is hashed, not
/// the routing key; every field type, a repeated header, a missing one and no headers at all.
pub async fn consistent_hash_by_header(cx: Ctx) -> Res {
    let x = cx.name("chx");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let args = Table::new().with("hash-header", Val::str("shard"));
    let weights = [("a", "1"), ("b", "2"), ("c", "1"), ("d", "3")];
    let names = weighted_queues(&cx, &mut c, &x, args, &weights).await?;
    let shard = |v: Val| Props::new().headers(Table::new().with("other", Val::i32(1)).with("shard", v));
    let mut messages: Vec<Outgoing> =
        (0..100).map(|i| with_props(shard(Val::str(&format!("user-{i}"))), format!("s{i}"))).collect();
    messages.extend((0..20).map(|i| with_props(shard(Val::i32(i * 7 - 30)), format!("i{i}"))));
    let typed = [
        ("long", Val::i64(1 << 40)),
        ("long-neg", Val::i64(-(1 << 50))),
        ("byte", Val::i8(-5)),
        ("ubyte", Val::u8(200)),
        ("short", Val::i16(-300)),
        ("ushort", Val::u16(60000)),
        ("uint", Val::u32(4_000_000_000)),
        ("true", Val::bool(true)),
        ("false", Val::bool(false)),
        ("double", Val::f64(2.5)),
        ("float", Val::f32(0.5)),
        ("decimal", Val::decimal(2, 12345)),
        ("timestamp", Val::timestamp(1_662_000_000)),
        ("void", Val::void()),
        ("bytes", Val::byte_array(&[1, 2, 3, 255])),
        ("empty-str", Val::str("")),
        ("array", Val::array(vec![Val::str("x"), Val::i32(1), Val::array(vec![Val::bool(true)])])),
        ("table", Val::table(Table::new().with("k", Val::str("v")).with("n", Val::i64(3)))),
    ];
    messages.extend(typed.into_iter().map(|(label, v)| with_props(shard(v), label)));
    let twice = Table::new().with("shard", Val::str("first")).with("shard", Val::str("second"));
    messages.push(with_props(Props::new().headers(twice), "repeated"));
    messages.push(with_props(shard(Val::str("first")), "first-alone"));
    messages.push(with_props(Props::new().headers(Table::new().with("other", Val::str("v"))), "missing"));
    messages.push(with_props(Props::new(), "no-headers"));
    messages.push(with_props(Props::new().headers(Table::new()), "empty-headers"));
    let mut p = Publisher::new(&cx, &mut c, 2).await?;
    p.publish(&mut c, &x, &messages).await?;
    log_placement(&cx, &mut c, 1, &labelled(&weights, &names)).await?;
    c.close().await
}

/// `hash-property` = `message_id`, `correlation_id` or `timestamp` (hashed as its decimal
/// text); a message without the property.
pub async fn consistent_hash_by_property(cx: Ctx) -> Res {
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let mut p = Publisher::new(&cx, &mut c, 2).await?;
    for property in ["message_id", "correlation_id", "timestamp"] {
        let x = cx.name(&format!("by-{property}"));
        let args = Table::new().with("hash-property", Val::str(property));
        let weights = [("p1", "1"), ("p2", "1"), ("p3", "2")];
        let weights: Vec<(String, &str)> =
            weights.iter().map(|(label, w)| (format!("{property}-{label}"), *w)).collect();
        let weights: Vec<(&str, &str)> = weights.iter().map(|(l, w)| (l.as_str(), *w)).collect();
        let names = weighted_queues(&cx, &mut c, &x, args, &weights).await?;
        let mut messages: Vec<Outgoing> = (0..60)
            .map(|i| {
                let value = format!("id-{i}");
                let props = match property {
                    "message_id" => Props::new().message_id(&value),
                    "correlation_id" => Props::new().correlation_id(&value),
                    _ => Props::new().timestamp(1_662_000_000 + i * 3600),
                };
                with_props(props, format!("v{i}"))
            })
            .collect();
        messages.push(with_props(Props::new().app_id("no such property set"), "unset"));
        p.publish(&mut c, &x, &messages).await?;
        log_placement(&cx, &mut c, 1, &labelled(&weights, &names)).await?;
    }
    c.close().await
}

/// Bindings change placement: unbinding removes a queue's buckets and renumbers the rest,
/// binding again appends, a second binding to a bound queue adds nothing (and unbinding it
/// removes the queue's buckets anyway), deleting a queue removes its buckets, and an exchange
/// can be a destination.
pub async fn consistent_hash_unbind_and_rebind(cx: Ctx) -> Res {
    let x = cx.name("chx");
    let fan = cx.name("fan");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let weights = [("q0", "1"), ("q1", "2"), ("q2", "1"), ("q3", "2")];
    let names = weighted_queues(&cx, &mut c, &x, Table::new(), &weights).await?;
    let via_fan = cx.name("via-fan");
    c.exchange(1, &fan, "fanout").await?;
    c.queue(1, &via_fan).await?;
    c.bind(1, &via_fan, &fan, "", Table::new()).await?;
    let mut queues = labelled(&weights, &names);
    queues.push(("via-fan", via_fan.as_str()));
    let keys: Vec<Outgoing> = (0..100).map(|i| by_key(format!("key-{i}"), format!("k{i}"))).collect();
    let mut p = Publisher::new(&cx, &mut c, 2).await?;
    let unbind = |q: &str, key: &str| QueueUnbind {
        queue: q.into(),
        exchange: x.as_str().into(),
        routing_key: key.into(),
        ..Default::default()
    };

    p.publish(&mut c, &x, &keys).await?;
    log_placement(&cx, &mut c, 1, &queues).await?;

    c.call(1, unbind(&names[1], "2")).await?;
    p.publish(&mut c, &x, &keys).await?;
    log_placement(&cx, &mut c, 1, &queues).await?;

    c.bind(1, &names[1], &x, "3", Table::new()).await?;
    p.publish(&mut c, &x, &keys).await?;
    log_placement(&cx, &mut c, 1, &queues).await?;

    // A second binding to q0 (weight 5) adds no buckets; unbinding it takes q0's buckets away
    // although q0's first binding stays.
    c.bind(1, &names[0], &x, "5", Table::new()).await?;
    p.publish(&mut c, &x, &keys).await?;
    log_placement(&cx, &mut c, 1, &queues).await?;
    c.call(1, unbind(&names[0], "5")).await?;
    p.publish(&mut c, &x, &keys).await?;
    log_placement(&cx, &mut c, 1, &queues).await?;

    // An exchange as a destination, then a queue deleted.
    c.call(
        1,
        ExchangeBind {
            destination: fan.as_str().into(),
            source: x.as_str().into(),
            routing_key: "2".into(),
            ..Default::default()
        },
    )
    .await?;
    c.call(1, QueueDelete { queue: names[2].as_str().into(), ..Default::default() }).await?;
    queues.retain(|(label, _)| *label != "q2");
    p.publish(&mut c, &x, &keys).await?;
    log_placement(&cx, &mut c, 1, &queues).await?;
    c.close().await
}

/// Sender-selected distribution: RabbitMQ hands the plugin the routing key and the `CC` / `BCC`
/// keys, and it hashes only the first, so each message still reaches exactly one queue.
pub async fn consistent_hash_with_cc(cx: Ctx) -> Res {
    let x = cx.name("chx");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let weights = [("a", "1"), ("b", "1"), ("c", "1")];
    let names = weighted_queues(&cx, &mut c, &x, Table::new(), &weights).await?;
    let cc = |keys: &[&str]| Val::array(keys.iter().map(|k| Val::str(k)).collect());
    let messages: Vec<Outgoing> = (0..30)
        .map(|i| {
            let headers = Table::new()
                .with("CC", cc(&[&format!("cc-{i}"), "x"]))
                .with("BCC", cc(&[&format!("bcc-{i}")]));
            Outgoing { key: format!("key-{i}"), props: Props::new().headers(headers), label: format!("k{i}") }
        })
        .collect();
    let mut p = Publisher::new(&cx, &mut c, 2).await?;
    p.publish(&mut c, &x, &messages).await?;
    log_placement(&cx, &mut c, 1, &labelled(&weights, &names)).await?;
    c.close().await
}

/// The plugin's checks: binding keys that are not positive integers, both hash arguments,
/// an unsupported property; and what equivalence on redeclare compares.
pub async fn consistent_hash_argument_errors(cx: Ctx) -> Res {
    let x = cx.name("chx");
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, CHX).await?;
    c.queue(1, &q).await?;
    for key in ["abc", "0", "-1", "", "1.5", " 2", "2 ", "0x10", "+3", "007", "99999999999999999999"] {
        let r = c.bind(1, &q, &x, key, Table::new()).await?;
        if r.is("channel.close") {
            c.open(1).await?;
        }
    }
    // Unbinding a key that is not a weight is not checked.
    c.call(
        1,
        QueueUnbind {
            queue: q.as_str().into(),
            exchange: x.as_str().into(),
            routing_key: "abc".into(),
            ..Default::default()
        },
    )
    .await?;
    let declares = [
        (
            "both",
            Table::new().with("hash-header", Val::str("h")).with("hash-property", Val::str("message_id")),
        ),
        ("app-id", Table::new().with("hash-property", Val::str("app_id"))),
        ("empty-property", Table::new().with("hash-property", Val::str(""))),
        ("header", Table::new().with("hash-header", Val::str("h"))),
        ("property", Table::new().with("hash-property", Val::str("timestamp"))),
    ];
    for (suffix, args) in declares {
        let m = ExchangeDeclare {
            exchange: cx.name(suffix).as_str().into(),
            kind: CHX.into(),
            arguments: args.to_field_table(),
            ..Default::default()
        };
        let r = c.call(1, m).await?;
        if r.is("channel.close") {
            c.open(1).await?;
        }
    }
    // Redeclaring with other hash arguments is equivalent (only alternate-exchange counts).
    let other = Table::new().with("hash-header", Val::str("other"));
    let m = ExchangeDeclare {
        exchange: cx.name("header").as_str().into(),
        kind: CHX.into(),
        arguments: other.to_field_table(),
        ..Default::default()
    };
    c.call(1, m).await?;
    c.close().await
}
