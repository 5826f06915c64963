//! Message routing through every exchange type.

use crate::common::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

async fn exchange(ch: &Channel, kind: ExchangeKind) -> String {
    let name = uniq("x-route");
    within(ch.exchange_declare(
        name.as_str().into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    name
}

async fn queue(ch: &Channel) -> String {
    let q = uniq("q-route");
    declare_queue(ch, &q).await;
    q
}

async fn bind_args(ch: &Channel, q: &str, x: &str, key: &str, args: FieldTable) {
    within(ch.queue_bind(q.into(), x.into(), key.into(), QueueBindOptions::default(), args))
        .await
        .unwrap_or_else(|e| panic!("bind {q} to {x} with {key}: {e:?}"));
}

async fn bind(ch: &Channel, q: &str, x: &str, key: &str) {
    bind_args(ch, q, x, key, FieldTable::default()).await
}

/// Publishes a marker straight to each queue, waits for it, and returns the
/// bodies that arrived before it. The marker makes the "nothing else was
/// routed here" assertion deterministic without sleeping.
async fn received(ch: &Channel, q: &str) -> Vec<String> {
    publish(ch, "", q, b"<marker>").await;
    let mut out = Vec::new();
    loop {
        let body = eventually("marker arrives", || async { get_body(ch, q).await }).await;
        let s = text(&body);
        if s == "<marker>" {
            return out;
        }
        out.push(s);
    }
}

#[tokio::test]
async fn direct_exchange_routes_on_exact_key() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = exchange(&ch, ExchangeKind::Direct).await;
    let (q1, q2) = (queue(&ch).await, queue(&ch).await);
    bind(&ch, &q1, &x, "a").await;
    bind(&ch, &q2, &x, "a").await;
    bind(&ch, &q2, &x, "b").await;
    publish(&ch, &x, "a", b"to-a").await;
    publish(&ch, &x, "b", b"to-b").await;
    publish(&ch, &x, "A", b"case-sensitive").await;
    publish(&ch, &x, "", b"empty").await;
    assert_eq!(received(&ch, &q1).await, vec!["to-a"]);
    assert_eq!(received(&ch, &q2).await, vec!["to-a", "to-b"]);
}

#[tokio::test]
async fn fanout_exchange_ignores_routing_key() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = exchange(&ch, ExchangeKind::Fanout).await;
    let (q1, q2) = (queue(&ch).await, queue(&ch).await);
    bind(&ch, &q1, &x, "").await;
    bind(&ch, &q2, &x, "some-key").await;
    bind(&ch, &q2, &x, "other-key").await;
    publish(&ch, &x, "whatever", b"1").await;
    publish(&ch, &x, "", b"2").await;
    assert_eq!(received(&ch, &q1).await, vec!["1", "2"]);
    // two bindings to the same queue still deliver once
    assert_eq!(received(&ch, &q2).await, vec!["1", "2"]);
}

#[tokio::test]
async fn topic_exchange_wildcards() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = exchange(&ch, ExchangeKind::Topic).await;
    let patterns = ["a.b.c", "a.*.c", "a.#", "#.c", "*", "#", "a.*", "*.*.*", "a.#.c", "#.b.#", ""];
    let mut queues = Vec::new();
    for p in patterns {
        let q = queue(&ch).await;
        bind(&ch, &q, &x, p).await;
        queues.push((p, q));
    }
    let keys = ["a.b.c", "a", "a.b", "a.c", "a.x.y.c", "b", "", "x.b.y", "a.b.c.d"];
    for k in keys {
        publish(&ch, &x, k, k.as_bytes()).await;
    }
    let expect = |p: &str| -> Vec<&str> {
        let m: &[&str] = match p {
            "a.b.c" => &["a.b.c"],
            "a.*.c" => &["a.b.c"],
            "a.#" => &["a.b.c", "a", "a.b", "a.c", "a.x.y.c", "a.b.c.d"],
            "#.c" => &["a.b.c", "a.c", "a.x.y.c"],
            "*" => &["a", "b"],
            "#" => &keys,
            "a.*" => &["a.b", "a.c"],
            "*.*.*" => &["a.b.c", "x.b.y"],
            "a.#.c" => &["a.b.c", "a.c", "a.x.y.c"],
            "#.b.#" => &["a.b.c", "a.b", "b", "x.b.y", "a.b.c.d"],
            "" => &[""],
            _ => unreachable!(),
        };
        m.to_vec()
    };
    for (p, q) in &queues {
        assert_eq!(received(&ch, q).await, expect(p), "pattern {p:?}");
    }
}

#[tokio::test]
async fn topic_exchange_multiple_matching_bindings_deliver_once() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = exchange(&ch, ExchangeKind::Topic).await;
    let q = queue(&ch).await;
    bind(&ch, &q, &x, "#").await;
    bind(&ch, &q, &x, "a.*").await;
    bind(&ch, &q, &x, "a.b").await;
    publish(&ch, &x, "a.b", b"once").await;
    assert_eq!(received(&ch, &q).await, vec!["once"]);
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

async fn publish_headers(ch: &Channel, x: &str, body: &str, headers: FieldTable) {
    publish_with(ch, x, "ignored", body.as_bytes(), BasicProperties::default().with_headers(headers)).await
}

#[tokio::test]
async fn headers_exchange_all_and_any() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = exchange(&ch, ExchangeKind::Headers).await;
    let q_all = queue(&ch).await;
    let q_any = queue(&ch).await;
    let q_default = queue(&ch).await;
    let q_empty = queue(&ch).await;
    bind_args(
        &ch,
        &q_all,
        &x,
        "",
        table(&[("x-match", s("all")), ("format", s("pdf")), ("type", s("report"))]),
    )
    .await;
    bind_args(
        &ch,
        &q_any,
        &x,
        "",
        table(&[("x-match", s("any")), ("format", s("pdf")), ("type", s("report"))]),
    )
    .await;
    // no x-match means "all"
    bind_args(&ch, &q_default, &x, "", table(&[("format", s("pdf"))])).await;
    // no arguments at all matches everything under "all"
    bind_args(&ch, &q_empty, &x, "", FieldTable::default()).await;

    publish_headers(&ch, &x, "both", table(&[("format", s("pdf")), ("type", s("report"))])).await;
    publish_headers(&ch, &x, "format-only", table(&[("format", s("pdf"))])).await;
    publish_headers(&ch, &x, "wrong-value", table(&[("format", s("zip")), ("type", s("log"))])).await;
    publish_headers(&ch, &x, "none", FieldTable::default()).await;
    publish_headers(
        &ch,
        &x,
        "extra",
        table(&[("format", s("pdf")), ("type", s("report")), ("other", AMQPValue::LongInt(1))]),
    )
    .await;

    assert_eq!(received(&ch, &q_all).await, vec!["both", "extra"]);
    assert_eq!(received(&ch, &q_any).await, vec!["both", "format-only", "extra"]);
    assert_eq!(received(&ch, &q_default).await, vec!["both", "format-only", "extra"]);
    assert_eq!(received(&ch, &q_empty).await, vec!["both", "format-only", "wrong-value", "none", "extra"]);
}

#[tokio::test]
async fn headers_exchange_value_types_and_x_headers() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = exchange(&ch, ExchangeKind::Headers).await;
    let q_all = queue(&ch).await;
    let q_any = queue(&ch).await;
    let q_all_x = queue(&ch).await;
    let q_any_x = queue(&ch).await;
    let q_int = queue(&ch).await;
    // plain all/any ignore binding keys starting with "x-"
    bind_args(&ch, &q_all, &x, "", table(&[("x-match", s("all")), ("x-tag", s("t"))])).await;
    bind_args(&ch, &q_any, &x, "", table(&[("x-match", s("any")), ("x-tag", s("t"))])).await;
    // all-with-x / any-with-x (RabbitMQ 3.10) take them into account
    bind_args(&ch, &q_all_x, &x, "", table(&[("x-match", s("all-with-x")), ("x-tag", s("t"))])).await;
    bind_args(
        &ch,
        &q_any_x,
        &x,
        "",
        table(&[("x-match", s("any-with-x")), ("x-tag", s("t")), ("k", s("v"))]),
    )
    .await;
    // a typed (integer) value
    bind_args(&ch, &q_int, &x, "", table(&[("x-match", s("all")), ("n", AMQPValue::LongInt(42))])).await;

    publish_headers(&ch, &x, "tagged", table(&[("x-tag", s("t"))])).await;
    publish_headers(&ch, &x, "untagged", table(&[("k", s("v"))])).await;
    publish_headers(&ch, &x, "n42", table(&[("n", AMQPValue::LongInt(42))])).await;
    publish_headers(&ch, &x, "n43", table(&[("n", AMQPValue::LongInt(43))])).await;

    // "all" with only x- keys has nothing to match: everything matches
    assert_eq!(received(&ch, &q_all).await, vec!["tagged", "untagged", "n42", "n43"]);
    // "any" with only x- keys has nothing to match: nothing matches
    assert_eq!(received(&ch, &q_any).await, Vec::<String>::new());
    assert_eq!(received(&ch, &q_all_x).await, vec!["tagged"]);
    assert_eq!(received(&ch, &q_any_x).await, vec!["tagged", "untagged"]);
    assert_eq!(received(&ch, &q_int).await, vec!["n42"]);
}

#[tokio::test]
async fn headers_exchange_invalid_x_match_is_406() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = exchange(&ch, ExchangeKind::Headers).await;
    let q = queue(&ch).await;
    assert_err(
        ch.queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            table(&[("x-match", s("bogus"))]),
        ),
        406,
        "PRECONDITION_FAILED - Invalid x-match field value <<\"bogus\">>; expected all, any, \
         all-with-x, or any-with-x",
    )
    .await;
}

#[tokio::test]
async fn default_exchange_routes_by_queue_name() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = queue(&ch).await;
    publish(&ch, "", &q, b"hello").await;
    publish(&ch, "", &uniq("no-such-queue"), b"dropped silently").await;
    wait_message_count(&ch, &q, 1).await;
    let m = get(&ch, &q).await.expect("message");
    assert_eq!(m.delivery.data, b"hello");
    assert_eq!(m.delivery.exchange.as_str(), "");
    assert_eq!(m.delivery.routing_key.as_str(), q);
    assert!(!m.delivery.redelivered);
    // the channel is still fine after publishing to a missing queue
    assert_eq!(received(&ch, &q).await, Vec::<String>::new());
}

#[tokio::test]
async fn predeclared_amq_exchanges_route() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let qd = queue(&ch).await;
    let qf = queue(&ch).await;
    let qt = queue(&ch).await;
    let qh = queue(&ch).await;
    let qm = queue(&ch).await;
    bind(&ch, &qd, "amq.direct", &qd).await;
    bind(&ch, &qf, "amq.fanout", "").await;
    bind(&ch, &qt, "amq.topic", &format!("{qt}.#")).await;
    let tag = uniq("tag");
    bind_args(&ch, &qh, "amq.headers", "", table(&[("t", s(&tag))])).await;
    bind_args(&ch, &qm, "amq.match", "", table(&[("t", s(&tag))])).await;
    publish(&ch, "amq.direct", &qd, b"direct").await;
    publish(&ch, "amq.topic", &format!("{qt}.x.y"), b"topic").await;
    publish_headers(&ch, "amq.headers", "headers", table(&[("t", s(&tag))])).await;
    publish_headers(&ch, "amq.match", "match", table(&[("t", s(&tag))])).await;
    assert_eq!(received(&ch, &qd).await, vec!["direct"]);
    assert_eq!(received(&ch, &qt).await, vec!["topic"]);
    // amq.headers and amq.match are two distinct headers exchanges
    assert_eq!(received(&ch, &qh).await, vec!["headers"]);
    assert_eq!(received(&ch, &qm).await, vec!["match"]);
    // amq.fanout is shared with parallel tests: only check ours arrived
    publish(&ch, "amq.fanout", "", format!("fanout-{qf}").as_bytes()).await;
    let got = received(&ch, &qf).await;
    assert!(got.contains(&format!("fanout-{qf}")), "{got:?}");
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_with_312_no_route() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = exchange(&ch, ExchangeKind::Direct).await;
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_correlation_id("corr-1".into());
    within(async {
        ch.basic_publish(
            x.as_str().into(),
            "nowhere".into(),
            BasicPublishOptions { mandatory: true, ..Default::default() },
            b"bounce",
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap()
    })
    .await;
    let returned = eventually("basic.return arrives", || async {
        let v = ch.wait_for_confirms().await.unwrap();
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(returned.len(), 1);
    let r = &returned[0];
    assert_eq!(r.reply_code, 312);
    assert_eq!(r.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(r.delivery.exchange.as_str(), x);
    assert_eq!(r.delivery.routing_key.as_str(), "nowhere");
    assert_eq!(r.delivery.data, b"bounce");
    assert_eq!(r.delivery.properties.correlation_id().as_ref().map(|s| s.as_str()), Some("corr-1"));

    // non-mandatory unroutable messages are dropped silently; mandatory
    // routable ones are not returned
    let q = queue(&ch).await;
    bind(&ch, &q, &x, "somewhere").await;
    for (key, mandatory) in [("nowhere", false), ("somewhere", true)] {
        within(async {
            ch.basic_publish(
                x.as_str().into(),
                key.into(),
                BasicPublishOptions { mandatory, ..Default::default() },
                b"quiet",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap()
        })
        .await;
    }
    assert_eq!(received(&ch, &q).await, vec!["quiet"]);
    assert!(within(ch.wait_for_confirms()).await.unwrap().is_empty());
}

#[tokio::test]
async fn mandatory_return_precedes_confirm() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    let confirm = within(async {
        ch.basic_publish(
            "".into(),
            uniq("no-such-queue").as_str().into(),
            BasicPublishOptions { mandatory: true, ..Default::default() },
            b"bounce",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap()
    })
    .await;
    match confirm {
        Confirmation::Ack(Some(r)) => {
            assert_eq!(r.reply_code, 312);
            assert_eq!(r.reply_text.as_str(), "NO_ROUTE");
            assert_eq!(r.delivery.data, b"bounce");
        }
        other => panic!("expected an ack carrying the returned message, got {other:?}"),
    }
}

#[tokio::test]
async fn publish_to_missing_exchange_closes_channel_404() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    let x = uniq("x-missing");
    publish(&ch, &x, "k", b"lost").await;
    c.assert_next_error(404, &format!("NOT_FOUND - no exchange '{x}' in vhost '/'")).await;
    // only the channel is closed
    let ch = c.channel().await;
    let q = queue(&ch).await;
    assert_eq!(received(&ch, &q).await, Vec::<String>::new());
}

#[tokio::test]
async fn properties_and_headers_survive_routing() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = queue(&ch).await;
    let headers = table(&[
        ("str", s("v")),
        ("int", AMQPValue::LongInt(-7)),
        ("long", AMQPValue::LongLongInt(1 << 40)),
        ("bool", AMQPValue::Boolean(true)),
        ("nested", AMQPValue::FieldTable(table(&[("a", s("b"))]))),
    ]);
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("identity".into())
        .with_headers(headers.clone())
        .with_delivery_mode(2)
        .with_priority(3)
        .with_correlation_id("cid".into())
        .with_reply_to("rt".into())
        .with_expiration("60000".into())
        .with_message_id("mid".into())
        .with_timestamp(1_700_000_000)
        .with_type("kind".into())
        .with_user_id("guest".into())
        .with_app_id("app".into());
    publish_with(&ch, "", &q, b"{}", props.clone()).await;
    wait_message_count(&ch, &q, 1).await;
    let m = get(&ch, &q).await.expect("message");
    let p = &m.delivery.properties;
    assert_eq!(p.content_type(), props.content_type());
    assert_eq!(p.content_encoding(), props.content_encoding());
    assert_eq!(p.headers(), props.headers());
    assert_eq!(p.delivery_mode(), &Some(2));
    assert_eq!(p.priority(), &Some(3));
    assert_eq!(p.correlation_id(), props.correlation_id());
    assert_eq!(p.reply_to(), props.reply_to());
    assert_eq!(p.expiration(), props.expiration());
    assert_eq!(p.message_id(), props.message_id());
    assert_eq!(p.timestamp(), &Some(1_700_000_000));
    assert_eq!(p.kind(), props.kind());
    assert_eq!(p.user_id(), props.user_id());
    assert_eq!(p.app_id(), props.app_id());
}

#[tokio::test]
async fn user_id_must_match_authenticated_user() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    let q = queue(&ch).await;
    publish_with(&ch, "", &q, b"spoofed", BasicProperties::default().with_user_id("mallory".into())).await;
    c.assert_next_error(
        406,
        "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was \
         'guest'",
    )
    .await;
}
