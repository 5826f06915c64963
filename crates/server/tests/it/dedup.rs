//! Publish deduplication with a real client: the RabbitMQ plugin's `x-message-deduplication`
//! exchange type and LavinMQ's `x-message-deduplication` argument on exchanges and queues,
//! duplicates dropped but confirmed, keys from a header or the message-id, windows that survive
//! a restart and a kill -9 when durable and are forgotten when kept in memory, bad arguments
//! refused.

use crate::common::durable::{DurableBroker, Stop};
use crate::common::*;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn longstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Persistent properties with the deduplication header `header` set to `key`.
fn keyed(header: &str, key: &str) -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).with_headers(table(&[(header, longstr(key))]))
}

fn with_key(key: &str) -> BasicProperties {
    keyed("x-deduplication-header", key)
}

async fn declare_x(
    ch: &Channel,
    name: &str,
    kind: &str,
    durable: bool,
    args: FieldTable,
) -> lapin::Result<()> {
    within(ch.exchange_declare(
        name.into(),
        ExchangeKind::Custom(kind.to_owned()),
        ExchangeDeclareOptions { durable, ..Default::default() },
        args,
    ))
    .await
}

async fn declare_q(ch: &Channel, name: &str, durable: bool, args: FieldTable) -> lapin::Result<lapin::Queue> {
    within(ch.queue_declare(name.into(), QueueDeclareOptions { durable, ..Default::default() }, args)).await
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
}

/// Publishes and expects a plain ack (no return).
async fn acked(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    match confirmed(ch, exchange, key, body, props, false).await {
        Confirmation::Ack(None) => {}
        other => panic!("expected an ack for {}, got {other:?}", text(body)),
    }
}

async fn confirming_channel(c: &Client) -> Channel {
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    ch
}

#[tokio::test]
async fn the_plugins_exchange_type_drops_duplicates_confirms_them_and_routes_as_fanout() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = confirming_channel(&c).await;
    let x = uniq("dedup-x");
    declare_x(&ch, &x, "x-message-deduplication", false, table(&[("x-cache-size", AMQPValue::LongInt(100))]))
        .await
        .unwrap();
    let (q1, q2) = (uniq("q1"), uniq("q2"));
    for (q, key) in [(&q1, "one"), (&q2, "two")] {
        declare_queue(&ch, q).await;
        bind(&ch, q, &x, key).await;
    }
    acked(&ch, &x, "anything", b"a", with_key("a")).await;
    acked(&ch, &x, "anything", b"a again", with_key("a")).await;
    acked(&ch, &x, "", b"b", with_key("b")).await;
    // A mandatory duplicate is returned, as the plugin (and LavinMQ) do, and still acked.
    match confirmed(&ch, &x, "", b"b again", with_key("b"), true).await {
        Confirmation::Ack(Some(r)) => assert_eq!(r.reply_code, 312),
        other => panic!("expected the duplicate back with the ack, got {other:?}"),
    }
    // Without the header a message is not checked.
    acked(&ch, &x, "", b"plain", BasicProperties::default()).await;
    acked(&ch, &x, "", b"plain", BasicProperties::default()).await;
    for q in [&q1, &q2] {
        assert_eq!(bodies(&drain(&ch, q).await), ["a", "b", "plain", "plain"], "queue {q}");
    }
}

#[tokio::test]
async fn a_window_reached_through_a_binding_or_as_alternate_exchange_checks_too() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = confirming_channel(&c).await;
    let (front, window, fallback) = (uniq("front"), uniq("window"), uniq("fallback"));
    let (deduped, direct, alternated) = (uniq("deduped"), uniq("direct"), uniq("alternated"));
    declare_x(&ch, &window, "x-message-deduplication", false, FieldTable::default()).await.unwrap();
    declare_x(&ch, &fallback, "x-message-deduplication", false, FieldTable::default()).await.unwrap();
    let ae = table(&[("alternate-exchange", longstr(&fallback))]);
    declare_x(&ch, &front, "direct", false, ae).await.unwrap();
    for q in [&deduped, &direct, &alternated] {
        declare_queue(&ch, q).await;
    }
    // front --"k"--> window --> deduped; front --"k"--> direct; front's alternate --> alternated
    within(ch.exchange_bind(
        window.as_str().into(),
        front.as_str().into(),
        "k".into(),
        lapin::options::ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    bind(&ch, &deduped, &window, "").await;
    bind(&ch, &direct, &front, "k").await;
    bind(&ch, &alternated, &fallback, "").await;
    for body in [b"first".as_slice(), b"again"] {
        acked(&ch, &front, "k", body, with_key("bound")).await;
        // Unroutable at front: the alternate exchange deduplicates.
        acked(&ch, &front, "nowhere", body, with_key("alternate")).await;
    }
    assert_eq!(bodies(&drain(&ch, &deduped).await), ["first"], "the window behind the binding");
    assert_eq!(bodies(&drain(&ch, &direct).await), ["first", "again"], "no window on this path");
    assert_eq!(bodies(&drain(&ch, &alternated).await), ["first"], "the alternate exchange's window");
}

#[tokio::test]
async fn lavinmqs_arguments_on_an_exchange_and_a_queue() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = confirming_channel(&c).await;
    // A direct exchange that deduplicates by the header its arguments name, and routes as direct.
    let x = uniq("direct-dedup");
    let args = table(&[
        ("x-message-deduplication", AMQPValue::Boolean(true)),
        ("x-deduplication-header", longstr("event-id")),
    ]);
    declare_x(&ch, &x, "direct", false, args).await.unwrap();
    let (qa, qb) = (uniq("qa"), uniq("qb"));
    declare_queue(&ch, &qa).await;
    declare_queue(&ch, &qb).await;
    bind(&ch, &qa, &x, "a").await;
    bind(&ch, &qb, &x, "b").await;
    acked(&ch, &x, "a", b"1", keyed("event-id", "e1")).await;
    acked(&ch, &x, "b", b"1 again", keyed("event-id", "e1")).await;
    acked(&ch, &x, "b", b"2", keyed("event-id", "e2")).await;
    acked(&ch, &x, "b", b"other header", keyed("x-deduplication-header", "e2")).await;
    assert_eq!(bodies(&drain(&ch, &qa).await), ["1"]);
    assert_eq!(bodies(&drain(&ch, &qb).await), ["2", "other header"]);

    // A queue that deduplicates: a duplicate reaches it (so it is not returned) and is dropped.
    let q = uniq("dedup-q");
    declare_q(&ch, &q, false, table(&[("x-message-deduplication", AMQPValue::Boolean(true))])).await.unwrap();
    match confirmed(&ch, "", &q, b"k", with_key("k"), true).await {
        Confirmation::Ack(None) => {}
        other => panic!("{other:?}"),
    }
    match confirmed(&ch, "", &q, b"k again", with_key("k"), true).await {
        Confirmation::Ack(None) => {}
        other => panic!("a queue's duplicate was routed: not returned; got {other:?}"),
    }
    assert_eq!(bodies(&drain(&ch, &q).await), ["k"]);
    // Once consumed, the key still counts (a window, not what the queue holds).
    acked(&ch, "", &q, b"k after", with_key("k")).await;
    assert_eq!(message_count(&ch, &q).await, 0);
}

#[tokio::test]
async fn a_per_message_ttl_lets_the_key_through_again_once_it_expires() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = confirming_channel(&c).await;
    let q = uniq("ttl-q");
    let args = table(&[
        ("x-message-deduplication", AMQPValue::Boolean(true)),
        ("x-cache-ttl", AMQPValue::LongInt(60_000)),
    ]);
    declare_q(&ch, &q, false, args).await.unwrap();
    let short = |key: &str| {
        BasicProperties::default().with_headers(table(&[
            ("x-deduplication-header", longstr(key)),
            ("x-cache-ttl", AMQPValue::LongInt(300)),
        ]))
    };
    acked(&ch, "", &q, b"short", short("s")).await;
    acked(&ch, "", &q, b"long", with_key("l")).await;
    acked(&ch, "", &q, b"short dup", with_key("s")).await;
    assert_eq!(bodies(&drain(&ch, &q).await), ["short", "long"]);
    // Retried until the short key has expired (300 ms): then it is taken again.
    eventually("the short key expires", || async {
        acked(&ch, "", &q, b"short later", with_key("s")).await;
        (message_count(&ch, &q).await == 1).then_some(())
    })
    .await;
    // The queue's own TTL (a minute) still holds the other key.
    acked(&ch, "", &q, b"long dup", with_key("l")).await;
    assert_eq!(bodies(&drain(&ch, &q).await), ["short later"]);
}

#[tokio::test]
async fn keys_may_come_from_the_message_id() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = confirming_channel(&c).await;
    let q = uniq("mid-q");
    let args = table(&[
        ("x-message-deduplication", AMQPValue::Boolean(true)),
        ("x-deduplication-key", longstr("message-id")),
    ]);
    declare_q(&ch, &q, false, args).await.unwrap();
    let id = |id: &str| BasicProperties::default().with_message_id(id.into());
    acked(&ch, "", &q, b"m1", id("m1")).await;
    acked(&ch, "", &q, b"m1 again", id("m1")).await;
    acked(&ch, "", &q, b"m2", id("m2")).await;
    // The header is not the key now.
    acked(&ch, "", &q, b"header m2", with_key("m2")).await;
    acked(&ch, "", &q, b"header m2 again", with_key("m2")).await;
    assert_eq!(bodies(&drain(&ch, &q).await), ["m1", "m2", "header m2", "header m2 again"]);
}

#[tokio::test]
async fn bad_arguments_are_refused_as_the_plugin_refuses_them() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let cases: [(&str, FieldTable, &str); 4] = [
        (
            "x-message-deduplication",
            table(&[("x-cache-size", AMQPValue::LongInt(0))]),
            "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an integer greater than 0",
        ),
        (
            "x-message-deduplication",
            table(&[("x-cache-ttl", longstr("soon"))]),
            "PRECONDITION_FAILED - Invalid argument, 'x-cache-ttl' must be an integer greater than 0",
        ),
        (
            "x-message-deduplication",
            table(&[("x-cache-persistence", longstr("tape"))]),
            "PRECONDITION_FAILED - Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'",
        ),
        (
            "topic",
            table(&[("x-message-deduplication", AMQPValue::Boolean(true)), ("x-deduplication-key", longstr("body"))]),
            "PRECONDITION_FAILED - Invalid argument, 'x-deduplication-key' must be either 'header' or 'message-id'",
        ),
    ];
    for (kind, args, reply) in cases {
        let ch = c.channel().await;
        declare_x(&ch, &uniq("bad"), kind, false, args).await.unwrap_err();
        c.assert_next_error(406, reply).await;
    }
    let ch = c.channel().await;
    let q = uniq("bad-q");
    declare_q(&ch, &q, false, table(&[("x-message-deduplication", longstr("yes"))])).await.unwrap_err();
    c.assert_next_error(
        406,
        "PRECONDITION_FAILED - Invalid argument, 'x-message-deduplication' must be a boolean",
    )
    .await;
    let ch = c.channel().await;
    let args = table(&[
        ("x-message-deduplication", AMQPValue::Boolean(true)),
        ("x-cache-size", AMQPValue::LongInt(-1)),
    ]);
    declare_q(&ch, &q, false, args).await.unwrap_err();
    c.assert_next_error(
        406,
        "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an integer greater than 0",
    )
    .await;
}

/// Declares, on `b`, the durable exchange `dx` (the plugin's type) bound to the durable queue
/// `dq`, the durable queue `qq` that deduplicates, and the durable exchange `mx` that keeps its
/// window in memory only, bound to the durable queue `mq`.
async fn declare_durable_setup(ch: &Channel) {
    let size = ("x-cache-size", AMQPValue::LongInt(1000));
    declare_x(ch, "dx", "x-message-deduplication", true, table(std::slice::from_ref(&size))).await.unwrap();
    declare_q(ch, "dq", true, FieldTable::default()).await.unwrap();
    bind(ch, "dq", "dx", "").await;
    declare_q(ch, "qq", true, table(&[("x-message-deduplication", AMQPValue::Boolean(true))])).await.unwrap();
    let memory = table(&[size, ("x-cache-persistence", longstr("memory"))]);
    declare_x(ch, "mx", "x-message-deduplication", true, memory).await.unwrap();
    declare_q(ch, "mq", true, FieldTable::default()).await.unwrap();
    bind(ch, "mq", "mx", "").await;
}

/// Publishes keys `range` to `dx`, `qq` and `mx`, each confirmed.
async fn publish_keys(ch: &Channel, range: std::ops::Range<u32>) {
    for i in range {
        let key = format!("k{i}");
        acked(ch, "dx", "", key.as_bytes(), with_key(&key)).await;
        acked(ch, "", "qq", key.as_bytes(), with_key(&key)).await;
        acked(ch, "mx", "", key.as_bytes(), with_key(&key)).await;
    }
}

async fn counts(b: &DurableBroker) -> [u32; 3] {
    let c = b.connect().await;
    let ch = c.channel().await;
    let mut out = [0; 3];
    for (n, q) in out.iter_mut().zip(["dq", "qq", "mq"]) {
        *n = message_count(&ch, q).await;
    }
    c.close().await;
    out
}

async fn durable_windows_survive(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    {
        let c = b.connect().await;
        let ch = confirming_channel(&c).await;
        declare_durable_setup(&ch).await;
        publish_keys(&ch, 0..50).await;
    }
    assert_eq!(counts(&b).await, [50, 50, 50]);
    b.restart(how).await;
    assert_eq!(counts(&b).await, [50, 50, 50], "the messages survived");
    {
        let c = b.connect().await;
        let ch = confirming_channel(&c).await;
        // Every key confirmed before the stop is still known, where the window is on disk.
        publish_keys(&ch, 0..60).await;
    }
    assert_eq!(counts(&b).await, [60, 60, 110], "durable windows remembered, the memory one forgot");
    // And again: the keys written since the first restart are on disk too.
    b.restart(how).await;
    {
        let c = b.connect().await;
        let ch = confirming_channel(&c).await;
        publish_keys(&ch, 55..61).await;
    }
    assert_eq!(counts(&b).await, [61, 61, 116]);
    // A deleted exchange's or queue's window goes with it.
    {
        let c = b.connect().await;
        let ch = c.channel().await;
        within(ch.exchange_delete("dx".into(), Default::default())).await.unwrap();
        within(ch.queue_delete("qq".into(), Default::default())).await.unwrap();
        declare_durable_setup(&ch).await;
        let ch = confirming_channel(&c).await;
        acked(&ch, "dx", "", b"k1", with_key("k1")).await;
        acked(&ch, "", "qq", b"k1", with_key("k1")).await;
    }
    assert_eq!(counts(&b).await, [62, 1, 116]);
}

#[tokio::test]
async fn durable_windows_survive_a_restart() {
    durable_windows_survive(Stop::Term).await;
}

#[tokio::test]
async fn durable_windows_survive_kill_9() {
    durable_windows_survive(Stop::Kill).await;
}
