//! basic.publish: routing, mandatory returns, properties byte for byte,
//! user_id validation, alternate exchanges, sender-selected distribution.

use warren_protocol::methods::*;

use crate::harness::{Ctx, Res};
use crate::raw::Raw;
use crate::wire::{Props, Table, Val};

/// Unroutable mandatory messages come back as basic.return 312 NO_ROUTE
/// with their properties and body; non-mandatory ones vanish; a missing
/// exchange is a channel error.
pub async fn mandatory_no_route(cx: Ctx) -> Res {
    let x = cx.name("x");
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "direct").await?;
    c.queue(1, &q).await?;
    c.bind(1, &q, &x, "bound", Table::new()).await?;
    let props = Props::new()
        .content_type("text/plain")
        .message_id("m-1")
        .headers(Table::new().with("h", Val::i32(7)));
    c.publish_mandatory(1, &x, "unbound", &props, b"returned").await;
    c.recv(1).await?;
    c.publish(1, &x, "unbound", &props, b"dropped").await;
    c.publish_mandatory(1, &x, "bound", &props, b"routed").await;
    c.publish_mandatory(1, "", &cx.name("no-such-queue"), &Props::new(), b"default exchange").await;
    c.recv(1).await?;
    c.publish_mandatory(1, &x, "unbound", &Props::new(), b"").await;
    c.recv(1).await?;
    c.drain(1, &q).await?;
    c.publish(1, &cx.name("missing"), "k", &Props::new(), b"to nowhere").await;
    c.recv(1).await?;
    c.open(1).await?;
    c.publish_mandatory(1, &cx.name("missing"), "k", &Props::new(), b"to nowhere").await;
    c.recv(1).await?;
    c.close().await
}

/// Direct (several keys, several queues) and fanout (key ignored).
pub async fn routing_direct_and_fanout(cx: Ctx) -> Res {
    let d = cx.name("direct");
    let f = cx.name("fanout");
    let q1 = cx.name("q1");
    let q2 = cx.name("q2");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &d, "direct").await?;
    c.exchange(1, &f, "fanout").await?;
    c.queue(1, &q1).await?;
    c.queue(1, &q2).await?;
    c.bind(1, &q1, &d, "a", Table::new()).await?;
    c.bind(1, &q1, &d, "b", Table::new()).await?;
    c.bind(1, &q2, &d, "b", Table::new()).await?;
    c.bind(1, &q2, &d, "", Table::new()).await?;
    c.bind(1, &q1, &f, "ignored", Table::new()).await?;
    c.bind(1, &q2, &f, "", Table::new()).await?;
    for key in ["a", "b", "", "c", "A"] {
        c.publish(1, &d, key, &Props::new(), format!("direct:{key}").as_bytes()).await;
    }
    c.publish(1, &f, "anything", &Props::new(), b"fanout").await;
    c.drain(1, &q1).await?;
    c.drain(1, &q2).await?;
    c.close().await
}

/// Topic patterns with `*` and `#` (including empty words and `#` alone).
pub async fn routing_topic(cx: Ctx) -> Res {
    let x = cx.name("topic");
    let patterns = ["a.*", "a.#", "#", "*.b", "#.b", "a.*.c", "a.#.c", "*", "", "*.*", "a..c", "#.#"];
    let keys = ["a", "a.b", "a.b.c", "a.x.y.c", "b", "x.b", "", "a..c", "a.c", ".b", "ab.c"];
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "topic").await?;
    let mut queues = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        let q = cx.name(&format!("q{i}"));
        c.queue(1, &q).await?;
        c.bind(1, &q, &x, p, Table::new()).await?;
        queues.push(q);
    }
    for k in keys {
        c.publish(1, &x, k, &Props::new(), format!("key:{k}").as_bytes()).await;
    }
    for q in &queues {
        c.drain(1, q).await?;
    }
    c.close().await
}

/// Headers exchange: x-match all / any (default all), typed values,
/// x- keys in the message, missing headers.
pub async fn routing_headers(cx: Ctx) -> Res {
    let x = cx.name("headers");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "headers").await?;
    let bindings = vec![
        (
            "all",
            Table::new().with("x-match", Val::str("all")).with("a", Val::str("1")).with("b", Val::str("2")),
        ),
        (
            "any",
            Table::new().with("x-match", Val::str("any")).with("a", Val::str("1")).with("b", Val::str("2")),
        ),
        ("default", Table::new().with("a", Val::str("1"))),
        ("int", Table::new().with("n", Val::i32(5))),
        ("empty", Table::new()),
        ("void", Table::new().with("x-match", Val::str("any")).with("v", Val::void())),
        ("xkey", Table::new().with("x-match", Val::str("all")).with("x-k", Val::str("v"))),
    ];
    let mut queues = Vec::new();
    for (suffix, args) in bindings {
        let q = cx.name(suffix);
        c.queue(1, &q).await?;
        c.bind(1, &q, &x, "ignored", args).await?;
        queues.push(q);
    }
    let messages = vec![
        ("a1b2", Some(Table::new().with("a", Val::str("1")).with("b", Val::str("2")))),
        ("a1", Some(Table::new().with("a", Val::str("1")))),
        ("b2", Some(Table::new().with("b", Val::str("2")))),
        ("a2", Some(Table::new().with("a", Val::str("2")))),
        ("n5-int", Some(Table::new().with("n", Val::i32(5)))),
        ("n5-long", Some(Table::new().with("n", Val::i64(5)))),
        ("n5-str", Some(Table::new().with("n", Val::str("5")))),
        ("v-void", Some(Table::new().with("v", Val::void()))),
        ("xk", Some(Table::new().with("x-k", Val::str("v")))),
        ("empty-headers", Some(Table::new())),
        ("no-headers", None),
    ];
    for (body, headers) in messages {
        let props = match headers {
            Some(h) => Props::new().headers(h),
            None => Props::new(),
        };
        c.publish(1, &x, "", &props, body.as_bytes()).await;
    }
    for q in &queues {
        c.drain(1, q).await?;
    }
    c.close().await
}

fn all_field_types() -> Table {
    Table::new()
        .with("bool", Val::bool(true))
        .with("i8", Val::i8(-8))
        .with("u8", Val::u8(200))
        .with("i16", Val::i16(-16000))
        .with("u16", Val::u16(60000))
        .with("i32", Val::i32(-2_000_000_000))
        .with("u32", Val::u32(4_000_000_000))
        .with("i64", Val::i64(-9_000_000_000_000))
        .with("f32", Val::f32(1.25))
        .with("f64", Val::f64(-2.5e100))
        .with("dec", Val::decimal(2, 12345))
        .with("str", Val::bytes_str(b"caf\xc3\xa9 \x00 bin"))
        .with("bytes", Val::byte_array(&[0, 1, 2, 255]))
        .with("ts", Val::timestamp(1_700_000_000))
        .with("void", Val::void())
        .with(
            "array",
            Val::array(vec![Val::i32(1), Val::str("two"), Val::array(vec![]), Val::table(Table::new())]),
        )
        .with(
            "table",
            Val::table(Table::new().with("nested", Val::table(Table::new().with("deep", Val::bool(false))))),
        )
}

/// Every property and every field type arrive byte for byte, via
/// basic.get and basic.deliver; also no properties, an empty body and a
/// body larger than frame_max.
pub async fn properties_byte_for_byte(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    let full = Props::new()
        .content_type("application/json")
        .content_encoding("gzip")
        .headers(all_field_types())
        .delivery_mode(2)
        .priority(9)
        .correlation_id("corr")
        .reply_to("reply-queue")
        .expiration("600000")
        .message_id("id-1")
        .timestamp(1_234_567_890)
        .kind("type-x")
        .user_id("guest")
        .app_id("difftest")
        .cluster_id("cluster-x");
    c.publish(1, "", &q, &full, b"full").await;
    c.publish(1, "", &q, &Props::new(), b"no properties").await;
    c.publish(1, "", &q, &Props::new().delivery_mode(1), b"").await;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.publish(1, "", &q, &Props::new().content_type("application/octet-stream"), &big).await;
    // priority out of range
    c.publish(1, "", &q, &Props::new().priority(200), b"priority 200").await;
    c.get(1, &q, true).await?;
    c.get(1, &q, true).await?;
    c.consume(1, &q, "props", true).await?;
    c.recv(1).await?;
    c.recv(1).await?;
    c.recv(1).await?;
    // delivery-mode other than 1 and 2
    c.publish(1, "", &q, &Props::new().delivery_mode(7), b"delivery mode 7").await;
    c.recv(1).await?;
    c.open(2).await?;
    c.consume(2, &q, "props-2", true).await?;
    c.publish(2, "", &q, &Props::new().delivery_mode(0), b"delivery mode 0").await;
    c.recv(2).await?;
    c.close().await
}

/// The user_id property must match the authenticated user.
pub async fn user_id_validation(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    c.publish(1, "", &q, &Props::new().user_id("guest"), b"mine").await;
    c.get(1, &q, true).await?;
    c.publish(1, "", &q, &Props::new().user_id("bob"), b"someone else").await;
    c.recv(1).await?;
    c.open(1).await?;
    c.publish(1, "", &q, &Props::new().user_id(""), b"empty").await;
    c.recv(1).await?;
    c.open(1).await?;
    c.get(1, &q, true).await?;
    c.close().await
}

/// Alternate exchanges: unroutable messages go to the AE (and are not
/// returned); a missing AE; AE chains.
pub async fn alternate_exchange(cx: Ctx) -> Res {
    let main = cx.name("main");
    let ae = cx.name("ae");
    let ae2 = cx.name("ae2");
    let lost = cx.name("lost");
    let q = cx.name("q");
    let qae = cx.name("qae");
    let qae2 = cx.name("qae2");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.call(
        1,
        ExchangeDeclare {
            exchange: ae.as_str().into(),
            kind: "direct".into(),
            arguments: Table::new().with("alternate-exchange", Val::str(&ae2)).to_field_table(),
            ..Default::default()
        },
    )
    .await?;
    c.exchange(1, &ae2, "fanout").await?;
    c.call(
        1,
        ExchangeDeclare {
            exchange: main.as_str().into(),
            kind: "direct".into(),
            arguments: Table::new().with("alternate-exchange", Val::str(&ae)).to_field_table(),
            ..Default::default()
        },
    )
    .await?;
    c.call(
        1,
        ExchangeDeclare {
            exchange: lost.as_str().into(),
            kind: "direct".into(),
            arguments: Table::new()
                .with("alternate-exchange", Val::str(&cx.name("no-such-ae")))
                .to_field_table(),
            ..Default::default()
        },
    )
    .await?;
    c.queue(1, &q).await?;
    c.queue(1, &qae).await?;
    c.queue(1, &qae2).await?;
    c.bind(1, &q, &main, "k", Table::new()).await?;
    c.bind(1, &qae, &ae, "other", Table::new()).await?;
    c.bind(1, &qae2, &ae2, "", Table::new()).await?;
    c.publish_mandatory(1, &main, "k", &Props::new(), b"routed normally").await;
    c.publish_mandatory(1, &main, "other", &Props::new(), b"via ae").await;
    c.publish_mandatory(1, &main, "zzz", &Props::new(), b"via ae2").await;
    c.publish_mandatory(1, &lost, "zzz", &Props::new(), b"ae missing").await;
    c.recv(1).await?;
    c.drain(1, &q).await?;
    c.drain(1, &qae).await?;
    c.drain(1, &qae2).await?;
    c.close().await
}

/// Sender-selected distribution: CC and BCC headers add routing keys; BCC
/// is removed from the delivered message.
pub async fn cc_bcc_headers(cx: Ctx) -> Res {
    let x = cx.name("x");
    let names: Vec<String> = ["main", "cc1", "cc2", "bcc"].iter().map(|s| cx.name(s)).collect();
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "direct").await?;
    for (i, q) in names.iter().enumerate() {
        c.queue(1, q).await?;
        c.bind(1, q, &x, &format!("k{i}"), Table::new()).await?;
    }
    let headers = Table::new()
        .with("before", Val::i32(1))
        .with("CC", Val::array(vec![Val::str("k1"), Val::str("k2")]))
        .with("BCC", Val::array(vec![Val::str("k3")]))
        .with("after", Val::str("x"));
    c.publish(1, &x, "k0", &Props::new().headers(headers).message_id("ccbcc"), b"to many").await;
    for q in &names {
        c.drain(1, q).await?;
    }
    c.close().await
}
