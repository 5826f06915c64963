//! Restart semantics: what a broker brings back from its data directory after a graceful stop
//! (SIGTERM) and after a crash (SIGKILL). Every scenario runs once per way of stopping.
//!
//! These tests always spawn their own `warren` (an external broker cannot be restarted).

use crate::common::durable::{files_with_ext, queue_dir, DurableBroker, Stop};
use crate::common::*;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use std::time::Duration;

/// Generates one test per way of stopping for a scenario `async fn(Stop)`.
macro_rules! on_term_and_kill {
    ($scenario:ident, $term:ident, $kill:ident) => {
        #[tokio::test]
        async fn $term() {
            $scenario(Stop::Term).await
        }
        #[tokio::test]
        async fn $kill() {
            $scenario(Stop::Kill).await
        }
    };
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn transient() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(1)
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn longstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

async fn confirm_channel(c: &Client) -> Channel {
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.expect("confirm.select");
    ch
}

/// Publishes on a channel in confirm mode and waits for the broker's ack.
async fn publish_confirmed(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    let confirmation = within(async {
        ch.basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), body, props)
            .await
            .expect("basic.publish")
            .await
            .expect("publisher confirm")
    })
    .await;
    assert!(
        matches!(confirmation, Confirmation::Ack(_)),
        "publish to '{exchange}'/'{key}' not acked: {confirmation:?}"
    );
}

async fn declare_exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    opts: ExchangeDeclareOptions,
    args: FieldTable,
) {
    within(ch.exchange_declare(name.into(), kind, opts, args))
        .await
        .unwrap_or_else(|e| panic!("declare exchange {name}: {e:?}"));
}

fn durable_x() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { durable: true, ..Default::default() }
}

fn passive_x() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { passive: true, ..Default::default() }
}

fn durable_q() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..Default::default() }
}

async fn declare_q(ch: &Channel, name: &str, opts: QueueDeclareOptions, args: FieldTable) -> lapin::Queue {
    within(ch.queue_declare(name.into(), opts, args))
        .await
        .unwrap_or_else(|e| panic!("declare queue {name}: {e:?}"))
}

async fn bind_q(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within(ch.queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), args))
        .await
        .unwrap_or_else(|e| panic!("bind {queue} to {exchange} with '{key}': {e:?}"));
}

async fn bind_x(ch: &Channel, destination: &str, source: &str, key: &str) {
    within(ch.exchange_bind(
        destination.into(),
        source.into(),
        key.into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap_or_else(|e| panic!("bind exchange {destination} to {source}: {e:?}"));
}

/// Stops the broker as given (a graceful stop must exit 0) and starts it on the same directory.
async fn restart(b: &mut DurableBroker, how: Stop) {
    let status = b.restart(how).await;
    if how == Stop::Term {
        assert!(status.success(), "warren exited with {status} after SIGTERM; log:\n{}", b.all_logs());
    }
}

/// Basic.get (manual ack) of every ready message: (body, redelivered), acking each.
async fn get_all(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) =
        within(ch.basic_get(queue.into(), BasicGetOptions::default())).await.expect("basic.get")
    {
        out.push((text(&m.delivery.data), m.delivery.redelivered));
        within(m.delivery.acker.ack(BasicAckOptions::default())).await.expect("ack");
    }
    out
}

fn only_bodies(v: &[(String, bool)]) -> Vec<String> {
    v.iter().map(|(b, _)| b.clone()).collect()
}

fn strings(prefix: &str, range: impl IntoIterator<Item = usize>) -> Vec<String> {
    range.into_iter().map(|i| format!("{prefix}{i}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Exchanges

async fn exchanges_come_back(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    {
        let c = b.connect().await;
        let ch = c.channel().await;
        for (name, kind) in [
            ("dx-direct", ExchangeKind::Direct),
            ("dx-fanout", ExchangeKind::Fanout),
            ("dx-topic", ExchangeKind::Topic),
            ("dx-headers", ExchangeKind::Headers),
        ] {
            declare_exchange(&ch, name, kind, durable_x(), FieldTable::default()).await;
        }
        // with an argument that does something: unroutable messages go to the alternate exchange
        declare_exchange(&ch, "dx-ae", ExchangeKind::Fanout, durable_x(), FieldTable::default()).await;
        declare_q(&ch, "dq-ae", durable_q(), FieldTable::default()).await;
        bind_q(&ch, "dq-ae", "dx-ae", "", FieldTable::default()).await;
        let ae = table(&[("alternate-exchange", longstr("dx-ae"))]);
        declare_exchange(&ch, "dx-args", ExchangeKind::Topic, durable_x(), ae).await;
        // internal, reachable only through an exchange-to-exchange binding
        let internal = ExchangeDeclareOptions { durable: true, internal: true, ..Default::default() };
        declare_exchange(&ch, "dx-internal", ExchangeKind::Direct, internal, FieldTable::default()).await;
        declare_exchange(&ch, "dx-front", ExchangeKind::Fanout, durable_x(), FieldTable::default()).await;
        bind_x(&ch, "dx-internal", "dx-front", "").await;
        declare_q(&ch, "dq-internal", durable_q(), FieldTable::default()).await;
        bind_q(&ch, "dq-internal", "dx-internal", "k", FieldTable::default()).await;
        // durable and auto-delete (never bound, so it stays)
        let autodel = ExchangeDeclareOptions { durable: true, auto_delete: true, ..Default::default() };
        declare_exchange(&ch, "dx-autodel", ExchangeKind::Direct, autodel, FieldTable::default()).await;
        // not durable
        declare_exchange(&ch, "nx-plain", ExchangeKind::Direct, Default::default(), FieldTable::default())
            .await;
        let nd_autodel = ExchangeDeclareOptions { auto_delete: true, ..Default::default() };
        declare_exchange(&ch, "nx-autodel", ExchangeKind::Topic, nd_autodel, FieldTable::default()).await;
    }
    restart(&mut b, how).await;

    let c = b.connect().await;
    let ch = c.channel().await;
    for (name, kind) in [
        ("dx-direct", ExchangeKind::Direct),
        ("dx-fanout", ExchangeKind::Fanout),
        ("dx-topic", ExchangeKind::Topic),
        ("dx-headers", ExchangeKind::Headers),
    ] {
        declare_exchange(&ch, name, kind.clone(), passive_x(), FieldTable::default()).await;
        declare_exchange(&ch, name, kind, durable_x(), FieldTable::default()).await;
    }
    let ae = table(&[("alternate-exchange", longstr("dx-ae"))]);
    declare_exchange(&ch, "dx-args", ExchangeKind::Topic, durable_x(), ae).await;
    let internal = ExchangeDeclareOptions { durable: true, internal: true, ..Default::default() };
    declare_exchange(&ch, "dx-internal", ExchangeKind::Direct, internal, FieldTable::default()).await;
    let autodel = ExchangeDeclareOptions { durable: true, auto_delete: true, ..Default::default() };
    declare_exchange(&ch, "dx-autodel", ExchangeKind::Direct, autodel, FieldTable::default()).await;

    // redeclaring with other properties is refused, each with RabbitMQ's text
    let inequivalent = |field: &str, name: &str, received: &str, current: &str| {
        format!(
            "PRECONDITION_FAILED - inequivalent arg '{field}' for exchange '{name}' in vhost '/': \
             received {received} but current is {current}"
        )
    };
    let cases: Vec<(&str, ExchangeKind, ExchangeDeclareOptions, FieldTable, String)> = vec![
        (
            "dx-direct",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
            inequivalent("durable", "dx-direct", "'false'", "'true'"),
        ),
        (
            "dx-fanout",
            ExchangeKind::Direct,
            durable_x(),
            FieldTable::default(),
            inequivalent("type", "dx-fanout", "'direct'", "'fanout'"),
        ),
        (
            "dx-internal",
            ExchangeKind::Direct,
            durable_x(),
            FieldTable::default(),
            inequivalent("internal", "dx-internal", "'false'", "'true'"),
        ),
        (
            "dx-autodel",
            ExchangeKind::Direct,
            durable_x(),
            FieldTable::default(),
            inequivalent("auto_delete", "dx-autodel", "'false'", "'true'"),
        ),
        (
            "dx-args",
            ExchangeKind::Topic,
            durable_x(),
            FieldTable::default(),
            inequivalent("alternate-exchange", "dx-args", "none", "the value 'dx-ae' of type 'longstr'"),
        ),
    ];
    for (name, kind, opts, args, text) in cases {
        let ch = c.channel().await;
        assert_err(ch.exchange_declare(name.into(), kind, opts, args), 406, &text).await;
    }

    // non-durable exchanges are gone
    for name in ["nx-plain", "nx-autodel"] {
        let ch = c.channel().await;
        assert_err(
            ch.exchange_declare(name.into(), ExchangeKind::Direct, passive_x(), FieldTable::default()),
            404,
            &format!("NOT_FOUND - no exchange '{name}' in vhost '/'"),
        )
        .await;
    }

    // the properties still act: alternate exchange, internal, auto-delete
    let pub_ch = confirm_channel(&c).await;
    publish_confirmed(&pub_ch, "dx-args", "no.such.key", b"to-ae", persistent()).await;
    publish_confirmed(&pub_ch, "dx-front", "k", b"via-front", persistent()).await;
    let ch = c.channel().await;
    assert_eq!(bodies(&drain(&ch, "dq-ae").await), ["to-ae"]);
    assert_eq!(bodies(&drain(&ch, "dq-internal").await), ["via-front"]);

    let mut c2 = b.connect().await;
    let plain = c2.channel().await;
    within(plain.basic_publish(
        "dx-internal".into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"direct",
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish");
    c2.assert_next_error(
        403,
        "ACCESS_REFUSED - cannot publish to internal exchange 'dx-internal' in vhost '/'",
    )
    .await;

    let ch = c.channel().await;
    declare_q(&ch, "q-tmp", QueueDeclareOptions::default(), FieldTable::default()).await;
    bind_q(&ch, "q-tmp", "dx-autodel", "k", FieldTable::default()).await;
    within(ch.queue_unbind("q-tmp".into(), "dx-autodel".into(), "k".into(), FieldTable::default()))
        .await
        .expect("unbind");
    assert_err(
        ch.exchange_declare("dx-autodel".into(), ExchangeKind::Direct, passive_x(), FieldTable::default()),
        404,
        "NOT_FOUND - no exchange 'dx-autodel' in vhost '/'",
    )
    .await;
    c.close().await;

    // that deletion is durable too
    restart(&mut b, how).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_err(
        ch.exchange_declare("dx-autodel".into(), ExchangeKind::Direct, passive_x(), FieldTable::default()),
        404,
        "NOT_FOUND - no exchange 'dx-autodel' in vhost '/'",
    )
    .await;
    let ch = c.channel().await;
    declare_exchange(&ch, "dx-headers", ExchangeKind::Headers, passive_x(), FieldTable::default()).await;
}
on_term_and_kill!(exchanges_come_back, exchanges_come_back_after_sigterm, exchanges_come_back_after_sigkill);

// ---------------------------------------------------------------------------------------------
// Queues and their messages

fn queue_args() -> FieldTable {
    table(&[
        ("x-max-length", AMQPValue::LongInt(10)),
        ("x-message-ttl", AMQPValue::LongInt(3_600_000)),
        ("x-dead-letter-exchange", longstr("dlx")),
    ])
}

fn ttl_args() -> FieldTable {
    table(&[("x-message-ttl", AMQPValue::LongInt(200))])
}

async fn queues_come_back(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    let holder;
    let short_expiry_published;
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_q(&ch, "dq-args", durable_q(), queue_args()).await;
        // persistent and transient interleaved: only the persistent ones survive
        publish_confirmed(&ch, "", "dq-args", b"p1", persistent()).await;
        publish_confirmed(&ch, "", "dq-args", b"t1", transient()).await;
        publish_confirmed(&ch, "", "dq-args", b"p2", persistent()).await;
        publish_confirmed(&ch, "", "dq-args", b"t2", BasicProperties::default()).await;
        publish_confirmed(&ch, "", "dq-args", b"p3", persistent()).await;

        declare_q(&ch, "dq-plain", durable_q(), FieldTable::default()).await;
        for i in 0..50 {
            publish_confirmed(&ch, "", "dq-plain", format!("m{i}").as_bytes(), persistent()).await;
        }
        let autodel = QueueDeclareOptions { durable: true, auto_delete: true, ..Default::default() };
        declare_q(&ch, "dq-autodel", autodel, FieldTable::default()).await;
        publish_confirmed(&ch, "", "dq-autodel", b"a1", persistent()).await;
        publish_confirmed(&ch, "", "dq-autodel", b"a2", persistent()).await;

        declare_q(&ch, "nq", QueueDeclareOptions::default(), FieldTable::default()).await;
        publish_confirmed(&ch, "", "nq", b"n1", persistent()).await;
        let exclusive = QueueDeclareOptions { durable: true, exclusive: true, ..Default::default() };
        declare_q(&ch, "xq", exclusive, FieldTable::default()).await;
        publish_confirmed(&ch, "", "xq", b"x1", persistent()).await;
        let nd_autodel = QueueDeclareOptions { auto_delete: true, ..Default::default() };
        declare_q(&ch, "nq-autodel", nd_autodel, FieldTable::default()).await;
        // per-message expiry is stored with the message
        declare_q(&ch, "dq-expiry", durable_q(), FieldTable::default()).await;
        publish_confirmed(&ch, "", "dq-expiry", b"short-ttl", persistent().with_expiration("150".into()))
            .await;
        short_expiry_published = std::time::Instant::now();
        publish_confirmed(&ch, "", "dq-expiry", b"long-ttl", persistent().with_expiration("3600000".into()))
            .await;
        publish_confirmed(&ch, "", "dq-expiry", b"no-ttl", persistent()).await;
        // queue TTL: its message expires (at the latest) after the restart
        declare_q(&ch, "dq-ttl", durable_q(), ttl_args()).await;
        publish_confirmed(&ch, "", "dq-ttl", b"before", persistent()).await;
        // the connection stays open until the broker stops (the exclusive queue's owner)
        holder = c;
    }
    restart(&mut b, how).await;
    drop(holder);

    let c = b.connect().await;
    let ch = c.channel().await;
    let q = declare_q(&ch, "dq-args", durable_q(), queue_args()).await;
    assert_eq!(q.message_count(), 3, "persistent messages of dq-args");
    assert_eq!(message_count(&ch, "dq-plain").await, 50);
    assert_eq!(message_count(&ch, "dq-autodel").await, 2);
    let autodel = QueueDeclareOptions { durable: true, auto_delete: true, ..Default::default() };
    declare_q(&ch, "dq-autodel", autodel, FieldTable::default()).await;

    // inequivalent redeclarations
    let inequivalent = |field: &str, name: &str, received: &str, current: &str| {
        format!(
            "PRECONDITION_FAILED - inequivalent arg '{field}' for queue '{name}' in vhost '/': \
             received {received} but current is {current}"
        )
    };
    let ch2 = c.channel().await;
    assert_err(
        ch2.queue_declare("dq-args".into(), QueueDeclareOptions::default(), queue_args()),
        406,
        &inequivalent("durable", "dq-args", "'false'", "'true'"),
    )
    .await;
    let ch2 = c.channel().await;
    let mut other = queue_args();
    other.insert("x-max-length".into(), AMQPValue::LongInt(11));
    assert_err(
        ch2.queue_declare("dq-args".into(), durable_q(), other),
        406,
        &inequivalent("x-max-length", "dq-args", "'11'", "'10'"),
    )
    .await;
    let ch2 = c.channel().await;
    assert_err(
        ch2.queue_declare("dq-plain".into(), durable_q(), table(&[("x-max-length", AMQPValue::LongInt(5))])),
        406,
        &inequivalent("x-max-length", "dq-plain", "the value '5' of type 'signedint'", "none"),
    )
    .await;
    let ch2 = c.channel().await;
    assert_err(
        ch2.queue_declare("dq-autodel".into(), durable_q(), FieldTable::default()),
        406,
        &inequivalent("auto_delete", "dq-autodel", "'false'", "'true'"),
    )
    .await;

    // non-durable and exclusive queues are gone
    for name in ["nq", "xq", "nq-autodel"] {
        let ch2 = c.channel().await;
        assert_err(
            ch2.queue_declare(
                name.into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            ),
            404,
            &format!("NOT_FOUND - no queue '{name}' in vhost '/'"),
        )
        .await;
    }
    // x-max-length is only compared on redeclare (Warren does not enforce it); TTL and
    // dead-lettering act on what is published after the restart
    assert_eq!(only_bodies(&get_all(&ch, "dq-args").await), ["p1", "p2", "p3"]);
    assert_eq!(only_bodies(&get_all(&ch, "dq-plain").await), strings("m", 0..50));
    assert_eq!(only_bodies(&get_all(&ch, "dq-autodel").await), ["a1", "a2"]);
    // The short TTL must have run out: that is the point of the check, not a condition to poll.
    tokio::time::sleep_until((short_expiry_published + Duration::from_millis(200)).into()).await;
    let got = only_bodies(&get_all(&ch, "dq-expiry").await);
    assert_eq!(got, ["long-ttl", "no-ttl"], "per-message expiry after the restart");

    // the queue TTL is back: a message published now expires too
    let pch = confirm_channel(&c).await;
    declare_q(&ch, "dq-ttl", durable_q(), ttl_args()).await;
    wait_message_count(&ch, "dq-ttl", 0).await;
    publish_confirmed(&pch, "", "dq-ttl", b"to-expire", persistent()).await;
    wait_message_count(&ch, "dq-ttl", 0).await;
    assert!(get_all(&ch, "dq-ttl").await.is_empty());
}
on_term_and_kill!(queues_come_back, queues_come_back_after_sigterm, queues_come_back_after_sigkill);

// ---------------------------------------------------------------------------------------------
// Bindings

async fn bindings_come_back(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    {
        let c = b.connect().await;
        let ch = c.channel().await;
        for (name, kind) in [
            ("bx-direct", ExchangeKind::Direct),
            ("bx-topic", ExchangeKind::Topic),
            ("bx-headers", ExchangeKind::Headers),
            ("bx-src", ExchangeKind::Topic),
            ("bx-dst", ExchangeKind::Direct),
        ] {
            declare_exchange(&ch, name, kind, durable_x(), FieldTable::default()).await;
        }
        for q in ["dq-direct", "dq-topic", "dq-headers", "dq-e2e", "dq-from-nx"] {
            declare_q(&ch, q, durable_q(), FieldTable::default()).await;
        }
        bind_q(&ch, "dq-direct", "bx-direct", "d.key", FieldTable::default()).await;
        bind_q(&ch, "dq-topic", "bx-topic", "a.*.c", FieldTable::default()).await;
        bind_q(&ch, "dq-topic", "bx-topic", "x.#", FieldTable::default()).await;
        let match_all =
            table(&[("x-match", longstr("all")), ("color", longstr("red")), ("size", AMQPValue::LongInt(5))]);
        bind_q(&ch, "dq-headers", "bx-headers", "", match_all).await;
        bind_x(&ch, "bx-dst", "bx-src", "e2e.#").await;
        bind_q(&ch, "dq-e2e", "bx-dst", "e2e.one", FieldTable::default()).await;
        // a binding made and removed before the stop stays removed
        bind_q(&ch, "dq-direct", "bx-direct", "gone.key", FieldTable::default()).await;
        within(ch.queue_unbind(
            "dq-direct".into(),
            "bx-direct".into(),
            "gone.key".into(),
            FieldTable::default(),
        ))
        .await
        .expect("unbind");
        // bindings with a non-durable end
        declare_q(&ch, "nq-bound", QueueDeclareOptions::default(), FieldTable::default()).await;
        bind_q(&ch, "nq-bound", "bx-direct", "d.key", FieldTable::default()).await;
        declare_exchange(&ch, "nx-src", ExchangeKind::Direct, Default::default(), FieldTable::default())
            .await;
        bind_q(&ch, "dq-from-nx", "nx-src", "k", FieldTable::default()).await;
        declare_exchange(&ch, "nx-dst", ExchangeKind::Fanout, Default::default(), FieldTable::default())
            .await;
        bind_x(&ch, "nx-dst", "bx-direct", "to-nx").await;
    }
    restart(&mut b, how).await;

    let c = b.connect().await;
    let ch = c.channel().await;
    // the non-durable ends, declared again, have no bindings
    declare_q(&ch, "nq-bound", QueueDeclareOptions::default(), FieldTable::default()).await;
    declare_exchange(&ch, "nx-src", ExchangeKind::Direct, Default::default(), FieldTable::default()).await;
    declare_exchange(&ch, "nx-dst", ExchangeKind::Fanout, Default::default(), FieldTable::default()).await;
    declare_q(&ch, "nq-behind-nx", QueueDeclareOptions::default(), FieldTable::default()).await;
    bind_q(&ch, "nq-behind-nx", "nx-dst", "", FieldTable::default()).await;

    let pch = confirm_channel(&c).await;
    let headers = |entries: &[(&str, AMQPValue)]| persistent().with_headers(table(entries));
    let sends: Vec<(&str, &str, &str, BasicProperties)> = vec![
        ("bx-direct", "d.key", "direct-hit", persistent()),
        ("bx-direct", "other", "direct-miss", persistent()),
        ("bx-direct", "gone.key", "unbound-miss", persistent()),
        ("bx-direct", "to-nx", "to-nx-miss", persistent()),
        ("bx-topic", "a.b.c", "topic-star", persistent()),
        ("bx-topic", "x.y.z", "topic-hash", persistent()),
        ("bx-topic", "a.b", "topic-miss", persistent()),
        (
            "bx-headers",
            "",
            "headers-hit",
            headers(&[("color", longstr("red")), ("size", AMQPValue::LongInt(5))]),
        ),
        ("bx-headers", "", "headers-miss", headers(&[("color", longstr("red"))])),
        ("bx-src", "e2e.one", "e2e-hit", persistent()),
        ("bx-src", "e2e.two", "e2e-miss", persistent()),
        ("nx-src", "k", "nx-miss", persistent()),
    ];
    for (exchange, key, body, props) in sends {
        publish_confirmed(&pch, exchange, key, body.as_bytes(), props).await;
    }
    assert_eq!(only_bodies(&get_all(&ch, "dq-direct").await), ["direct-hit"]);
    assert_eq!(only_bodies(&get_all(&ch, "dq-topic").await), ["topic-star", "topic-hash"]);
    assert_eq!(only_bodies(&get_all(&ch, "dq-headers").await), ["headers-hit"]);
    assert_eq!(only_bodies(&get_all(&ch, "dq-e2e").await), ["e2e-hit"]);
    assert!(get_all(&ch, "nq-bound").await.is_empty(), "binding to a non-durable queue came back");
    assert!(get_all(&ch, "dq-from-nx").await.is_empty(), "binding from a non-durable exchange came back");
    assert!(get_all(&ch, "nq-behind-nx").await.is_empty(), "binding to a non-durable exchange came back");

    // unbinding a restored binding works, and is durable
    within(ch.queue_unbind("dq-topic".into(), "bx-topic".into(), "x.#".into(), FieldTable::default()))
        .await
        .expect("unbind restored binding");
    drop(c);
    restart(&mut b, how).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let pch = confirm_channel(&c).await;
    publish_confirmed(&pch, "bx-topic", "x.y.z", b"after-unbind", persistent()).await;
    publish_confirmed(&pch, "bx-topic", "a.q.c", b"still-bound", persistent()).await;
    assert_eq!(only_bodies(&get_all(&ch, "dq-topic").await), ["still-bound"]);
}
on_term_and_kill!(bindings_come_back, bindings_come_back_after_sigterm, bindings_come_back_after_sigkill);

// ---------------------------------------------------------------------------------------------
// Delivered, acked and unacked messages

async fn unacked_come_back_redelivered(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    let holder;
    {
        let c = b.connect().await;
        let pch = confirm_channel(&c).await;
        declare_q(&pch, "dq-unacked", durable_q(), FieldTable::default()).await;
        for i in 0..10 {
            publish_confirmed(&pch, "", "dq-unacked", format!("m{i}").as_bytes(), persistent()).await;
        }
        let ch = c.channel().await;
        let mut consumer = within(ch.basic_consume(
            "dq-unacked".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .expect("consume");
        let mut tags = Vec::new();
        for i in 0..10 {
            let d = next_delivery(&mut consumer).await;
            assert_eq!(text(&d.data), format!("m{i}"));
            assert!(!d.redelivered);
            tags.push(d.delivery_tag);
        }
        // m0 and m2 one by one, m1 and m3..m5 with one multiple ack, m8 alone
        let ack = |tag, multiple| ch.basic_ack(tag, BasicAckOptions { multiple });
        within(ack(tags[0], false)).await.unwrap();
        within(ack(tags[2], false)).await.unwrap();
        within(ack(tags[5], true)).await.unwrap();
        within(ack(tags[8], false)).await.unwrap();
        // a synchronous method after the acks: once its reply is in, the acks were processed
        within(ch.basic_qos(100, BasicQosOptions::default())).await.unwrap();
        // m6, m7 and m9 stay unacknowledged while the broker stops
        holder = (c, ch, consumer);
    }
    restart(&mut b, how).await;
    drop(holder);

    let c = b.connect().await;
    let ch = c.channel().await;
    let got = get_all(&ch, "dq-unacked").await;
    assert_eq!(only_bodies(&got), ["m6", "m7", "m9"], "after the restart");
    assert!(got.iter().all(|(_, redelivered)| *redelivered), "redelivered flags: {got:?}");
    drop(c);

    // the acks of recovered messages are durable too
    restart(&mut b, how).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(message_count(&ch, "dq-unacked").await, 0);
}
on_term_and_kill!(
    unacked_come_back_redelivered,
    unacked_come_back_redelivered_after_sigterm,
    unacked_come_back_redelivered_after_sigkill
);

/// Many messages over many small segments, transient ones among them and a scattered set
/// acknowledged: what comes back is exactly the unacknowledged persistent ones, in order.
async fn order_preserved_across_segments(how: Stop) {
    let mut b = DurableBroker::start(&["--segment-size", "4096"]).await;
    let n = 400;
    let mut want = Vec::new();
    {
        let c = b.connect().await;
        let pch = confirm_channel(&c).await;
        declare_q(&pch, "dq-order", durable_q(), FieldTable::default()).await;
        for i in 0..n {
            let persistent_one = i % 5 != 3;
            let body = format!("{i:05}-{}", "x".repeat(i % 90));
            let props = if persistent_one { persistent() } else { transient() };
            publish_confirmed(&pch, "", "dq-order", body.as_bytes(), props).await;
        }
        let ch = c.channel().await;
        within(ch.basic_qos(50, BasicQosOptions::default())).await.unwrap();
        let mut consumer = within(ch.basic_consume(
            "dq-order".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .expect("consume");
        // ack the first 150 and every 7th after that; reject nothing
        for i in 0..n {
            let d = next_delivery(&mut consumer).await;
            let body = text(&d.data);
            let idx: usize = body[..5].parse().unwrap();
            assert_eq!(idx, i, "delivery order before the restart");
            if i < 150 || i % 7 == 0 {
                within(d.acker.ack(BasicAckOptions::default())).await.unwrap();
            } else if i % 5 != 3 {
                want.push(body);
            }
            if i % 40 == 0 {
                within(ch.basic_qos(50, BasicQosOptions::default())).await.unwrap();
            }
            if want.len() > 40 {
                break;
            }
        }
        within(ch.basic_qos(50, BasicQosOptions::default())).await.unwrap();
        // everything not yet delivered is waiting too
        let delivered_up_to: usize = want.last().map(|b| b[..5].parse().unwrap()).unwrap();
        for i in delivered_up_to + 1..n {
            if i % 5 != 3 {
                want.push(format!("{i:05}-{}", "x".repeat(i % 90)));
            }
        }
        drop(consumer);
        if how == Stop::Kill {
            // leave the connection open: the crash takes it down
            std::mem::forget(c);
        }
    }
    let segments_before = files_with_ext(&queue_dir(b.data_dir(), "/", "dq-order"), "seg").len();
    assert!(segments_before > 3, "expected several segments, got {segments_before}");
    restart(&mut b, how).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let got = only_bodies(&get_all(&ch, "dq-order").await);
    assert_eq!(got.len(), want.len(), "message count after the restart");
    assert_eq!(got, want);
}
on_term_and_kill!(
    order_preserved_across_segments,
    order_preserved_across_segments_after_sigterm,
    order_preserved_across_segments_after_sigkill
);

/// Deliveries in no-ack mode settle the message at once. Once the broker has answered a later
/// synchronous method on the same channel, a crash must not bring those messages back (the
/// same rule as for basic.ack).
async fn no_ack_deliveries_survive_a_crash(use_get: bool) {
    let mut b = DurableBroker::start(&[]).await;
    let holder;
    {
        let c = b.connect().await;
        let pch = confirm_channel(&c).await;
        declare_q(&pch, "dq-noack", durable_q(), FieldTable::default()).await;
        for i in 0..5 {
            publish_confirmed(&pch, "", "dq-noack", format!("m{i}").as_bytes(), persistent()).await;
        }
        let ch = c.channel().await;
        let mut consumer = None;
        if use_get {
            for i in 0..3 {
                assert_eq!(get_body(&ch, "dq-noack").await.map(|b| text(&b)), Some(format!("m{i}")));
            }
        } else {
            within(ch.basic_qos(3, BasicQosOptions::default())).await.unwrap();
            let opts = BasicConsumeOptions { no_ack: true, ..Default::default() };
            let mut cons =
                within(ch.basic_consume("dq-noack".into(), "".into(), opts, FieldTable::default()))
                    .await
                    .unwrap();
            for i in 0..5 {
                assert_eq!(text(&next_delivery(&mut cons).await.data), format!("m{i}"));
            }
            consumer = Some(cons);
        }
        // replies to later synchronous methods on the same channel
        within(ch.basic_qos(10, BasicQosOptions::default())).await.unwrap();
        assert_eq!(message_count(&ch, "dq-noack").await, if use_get { 2 } else { 0 });
        holder = (c, ch, consumer);
    }
    restart(&mut b, Stop::Kill).await;
    drop(holder);
    let c = b.connect().await;
    let ch = c.channel().await;
    let want: &[&str] = if use_get { &["m3", "m4"] } else { &[] };
    assert_eq!(
        only_bodies(&get_all(&ch, "dq-noack").await),
        want,
        "no-ack deliveries came back after a crash"
    );
}

#[tokio::test]
async fn basic_get_no_ack_does_not_come_back_after_a_crash() {
    no_ack_deliveries_survive_a_crash(true).await
}

#[tokio::test]
async fn no_ack_consumer_deliveries_do_not_come_back_after_a_crash() {
    no_ack_deliveries_survive_a_crash(false).await
}

/// The same after a graceful stop (which flushes every log): nothing comes back.
#[tokio::test]
async fn no_ack_deliveries_do_not_come_back_after_sigterm() {
    let mut b = DurableBroker::start(&[]).await;
    {
        let c = b.connect().await;
        let pch = confirm_channel(&c).await;
        declare_q(&pch, "dq-get", durable_q(), FieldTable::default()).await;
        for i in 0..5 {
            publish_confirmed(&pch, "", "dq-get", format!("g{i}").as_bytes(), persistent()).await;
        }
        let ch = c.channel().await;
        for i in 0..3 {
            assert_eq!(get_body(&ch, "dq-get").await.map(|b| text(&b)), Some(format!("g{i}")));
        }
    }
    restart(&mut b, Stop::Term).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(only_bodies(&get_all(&ch, "dq-get").await), ["g3", "g4"]);
}

// ---------------------------------------------------------------------------------------------
// Users, vhosts, the data directory lock

async fn users_and_default_vhost_persist(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    assert!(b.data_dir().join("definitions.redb").is_file(), "definitions.redb missing");
    {
        let c = b.connect().await;
        let ch = c.channel().await;
        declare_q(&ch, "dq-marker", durable_q(), FieldTable::default()).await;
    }
    restart(&mut b, how).await;
    restart(&mut b, how).await;
    // guest still works on "/" and only with its password
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(message_count(&ch, "dq-marker").await, 0);
    let bad = format!("amqp://guest:wrong@{}/%2F", b.addr());
    let refused = within(lapin::Connection::connect(&bad, lapin::ConnectionProperties::default())).await;
    assert!(refused.is_err(), "a wrong password was accepted after the restart");
    let no_vhost = format!("amqp://guest:guest@{}/nope", b.addr());
    let refused = within(lapin::Connection::connect(&no_vhost, lapin::ConnectionProperties::default())).await;
    assert!(refused.is_err(), "an unknown vhost was accepted after the restart");
    // the first start created guest; later starts must not have reset anything
    let (out, err) = b.run_output(b.runs());
    assert!(!err.contains("ERROR") && !out.contains("ERROR"), "errors logged at restart:\n{out}{err}");
}
on_term_and_kill!(
    users_and_default_vhost_persist,
    users_and_default_vhost_persist_after_sigterm,
    users_and_default_vhost_persist_after_sigkill
);

#[tokio::test]
async fn second_broker_on_the_same_data_dir_fails_to_start() {
    let mut b = DurableBroker::start(&[]).await;
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_q(&ch, "dq-lock", durable_q(), FieldTable::default()).await;
        publish_confirmed(&ch, "", "dq-lock", b"before", persistent()).await;
    }
    let (status, out, err) = b.run_second();
    assert!(!status.success(), "a second broker on the same data dir exited with {status}");
    let dir = b.data_dir().display().to_string();
    assert!(
        err.contains("in use by another process") && err.contains(&dir),
        "the second broker's error does not say the data directory {dir} is in use:\nstderr:\n{err}\nstdout:\n{out}"
    );
    // the first one is unharmed, and its data stays valid after a crash and restart
    let c = b.connect().await;
    let ch = confirm_channel(&c).await;
    publish_confirmed(&ch, "", "dq-lock", b"after", persistent()).await;
    drop(c);
    restart(&mut b, Stop::Kill).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(only_bodies(&get_all(&ch, "dq-lock").await), ["before", "after"]);
    // the LOCK file names the running broker
    let lock = std::fs::read_to_string(b.data_dir().join("LOCK")).expect("LOCK file");
    assert_eq!(lock.trim(), b.pid().unwrap().to_string());
}

#[tokio::test]
async fn restart_on_a_new_port_keeps_everything() {
    let mut b = DurableBroker::start(&[]).await;
    let old = b.addr();
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_q(&ch, "dq-port", durable_q(), FieldTable::default()).await;
        for i in 0..5 {
            publish_confirmed(&ch, "", "dq-port", format!("m{i}").as_bytes(), persistent()).await;
        }
    }
    b.restart_on_new_port(Stop::Kill).await;
    assert_ne!(b.addr(), old);
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(only_bodies(&get_all(&ch, "dq-port").await), strings("m", 0..5));
}

/// A non-durable queue that paged out to `<data-dir>/transient/` leaves nothing behind for the
/// next start: the directory is wiped, and the queue is gone.
#[tokio::test]
async fn transient_page_files_are_wiped_at_start() {
    let mut b = DurableBroker::start(&["--queue-memory", "4096"]).await;
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_q(&ch, "nq-paged", QueueDeclareOptions::default(), FieldTable::default()).await;
        let body = vec![b'p'; 1000];
        for _ in 0..50 {
            publish_confirmed(&ch, "", "nq-paged", &body, transient()).await;
        }
        let transient_dir = b.data_dir().join("transient");
        let files = walk(&transient_dir);
        assert!(!files.is_empty(), "nothing paged out to {}", transient_dir.display());
        std::mem::forget(c);
    }
    restart(&mut b, Stop::Kill).await;
    let leftovers = walk(&b.data_dir().join("transient"));
    assert!(leftovers.is_empty(), "page files survived the restart: {leftovers:?}");
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_err(
        ch.queue_declare(
            "nq-paged".into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
        404,
        "NOT_FOUND - no queue 'nq-paged' in vhost '/'",
    )
    .await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Priority queues: recovered messages come back in priority order

async fn priority_queue_comes_back_in_order(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    let args =
        table(&[("x-max-priority", AMQPValue::LongInt(10)), ("x-expires", AMQPValue::LongInt(3_600_000))]);
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_q(&ch, "dq-prio", durable_q(), args.clone()).await;
        for (body, p) in [("p1", 1u8), ("p5a", 5), ("p3", 3), ("p5b", 5), ("p0", 0), ("p20", 20)] {
            publish_confirmed(&ch, "", "dq-prio", body.as_bytes(), persistent().with_priority(p)).await;
        }
        c.close().await;
    }
    restart(&mut b, how).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    declare_q(&ch, "dq-prio", durable_q(), args).await;
    let got = get_all(&ch, "dq-prio").await;
    // 20 is above the maximum: it counts as 10
    assert_eq!(only_bodies(&got), ["p20", "p5a", "p5b", "p3", "p1", "p0"]);
}
on_term_and_kill!(
    priority_queue_comes_back_in_order,
    priority_queue_comes_back_after_sigterm,
    priority_queue_comes_back_after_sigkill
);

// ---------------------------------------------------------------------------------------------
// Length limits in bytes count what a durable queue recovered

async fn max_length_bytes_counts_recovered_messages(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    let args =
        table(&[("x-max-length-bytes", AMQPValue::LongInt(100)), ("x-overflow", longstr("reject-publish"))]);
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_q(&ch, "dq-bytes", durable_q(), args.clone()).await;
        for i in 0..4 {
            publish_confirmed(
                &ch,
                "",
                "dq-bytes",
                format!("twenty-bytes-body-{i:02}").as_bytes(),
                persistent(),
            )
            .await;
        }
        c.close().await;
    }
    restart(&mut b, how).await;
    let c = b.connect().await;
    let ch = confirm_channel(&c).await;
    declare_q(&ch, "dq-bytes", durable_q(), args).await;
    // 80 bytes are back: 30 more would pass the limit of 100, 20 more reach it exactly.
    let confirm = |body: &'static [u8]| {
        let ch = ch.clone();
        async move {
            let published = within(ch.basic_publish(
                "".into(),
                "dq-bytes".into(),
                BasicPublishOptions::default(),
                body,
                persistent(),
            ))
            .await
            .expect("publish");
            within(published).await.expect("confirmation")
        }
    };
    assert!(confirm(b"thirty-bytes-body-too-many-xx!").await.is_nack(), "over the limit: refused");
    assert!(confirm(b"twenty-bytes-body-04").await.is_ack(), "up to the limit: taken");
    let got = get_all(&ch, "dq-bytes").await;
    let expected: Vec<String> = (0..5).map(|i| format!("twenty-bytes-body-{i:02}")).collect();
    assert_eq!(only_bodies(&got), expected);
}
on_term_and_kill!(
    max_length_bytes_counts_recovered_messages,
    max_length_bytes_counts_recovered_after_sigterm,
    max_length_bytes_counts_recovered_after_sigkill
);

// ---------------------------------------------------------------------------------------------
// x-delivery-limit: a message's delivery count survives a restart

fn delivery_count(m: &lapin::message::BasicGetMessage) -> Option<i64> {
    let headers = m.delivery.properties.headers().as_ref()?;
    match headers.inner().get("x-delivery-count")? {
        AMQPValue::LongLongInt(n) => Some(*n),
        other => panic!("x-delivery-count is {other:?}"),
    }
}

async fn delivery_count_survives(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    let args = table(&[("x-delivery-limit", AMQPValue::LongInt(2))]);
    let get = |ch: Channel| async move {
        within(ch.basic_get("dq-limit".into(), BasicGetOptions::default()))
            .await
            .expect("basic.get")
            .expect("a message is ready")
    };
    let nack = |m: lapin::message::BasicGetMessage| async move {
        let requeue = BasicNackOptions { requeue: true, ..Default::default() };
        within(m.delivery.acker.nack(requeue)).await.expect("nack");
    };
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_q(&ch, "dq-limit", durable_q(), args.clone()).await;
        publish_confirmed(&ch, "", "dq-limit", b"poison", persistent()).await;
        let first = get(ch.clone()).await;
        assert_eq!(delivery_count(&first), Some(0));
        nack(first).await;
        let second = get(ch.clone()).await;
        assert_eq!(delivery_count(&second), Some(1));
        nack(second).await;
        // Its confirm waits for a sync that covers the nack's return record.
        publish_confirmed(&ch, "", "dq-limit", b"next", persistent()).await;
        c.close().await;
    }
    restart(&mut b, how).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    declare_q(&ch, "dq-limit", durable_q(), args).await;
    let third = get(ch.clone()).await;
    assert_eq!(text(&third.delivery.data), "poison");
    assert_eq!(delivery_count(&third), Some(2), "two returns before the restart");
    assert!(third.delivery.redelivered);
    nack(third).await;
    // A third return passes the limit of 2: the message is dropped.
    let next = get(ch.clone()).await;
    assert_eq!(text(&next.delivery.data), "next");
    assert_eq!(delivery_count(&next), Some(0));
    within(next.delivery.acker.ack(BasicAckOptions::default())).await.expect("ack");
    assert!(within(ch.basic_get("dq-limit".into(), BasicGetOptions::default()))
        .await
        .expect("get")
        .is_none());
}
on_term_and_kill!(delivery_count_survives, delivery_count_survives_sigterm, delivery_count_survives_sigkill);
