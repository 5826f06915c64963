//! exchange.declare / delete / bind / unbind.

use warren_protocol::methods::*;

use crate::harness::{Ctx, Res};
use crate::raw::{QFlags, Raw};
use crate::wire::{Props, Table, Val};

fn declare(name: &str, kind: &str) -> ExchangeDeclare {
    ExchangeDeclare { exchange: name.into(), kind: kind.into(), ..Default::default() }
}

/// Every built-in type: declare, redeclare, passive; then an unknown type
/// (a connection error).
pub async fn exchange_declare_all_types(cx: Ctx) -> Res {
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    for kind in ["direct", "fanout", "topic", "headers"] {
        let x = cx.name(kind);
        c.exchange(1, &x, kind).await?;
        c.exchange(1, &x, kind).await?;
        c.call(1, ExchangeDeclare { passive: true, ..declare(&x, "") }).await?;
        // passive ignores the type
        c.call(1, ExchangeDeclare { passive: true, ..declare(&x, "fanout") }).await?;
    }
    let durable = cx.name("durable");
    c.call(1, ExchangeDeclare { durable: true, ..declare(&durable, "topic") }).await?;
    c.call(1, ExchangeDelete { exchange: durable.as_str().into(), ..Default::default() }).await?;
    c.exchange(1, &cx.name("bogus"), "x-no-such-type").await?;
    c.expect_eof().await
}

/// Passive declare of a missing exchange; delete of a missing exchange.
pub async fn exchange_passive_and_delete_missing(cx: Ctx) -> Res {
    let x = cx.name("missing");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.call(1, ExchangeDeclare { passive: true, ..declare(&x, "direct") }).await?;
    c.open(1).await?;
    c.call(1, ExchangeDelete { exchange: x.as_str().into(), ..Default::default() }).await?;
    c.call(1, ExchangeDelete { exchange: x.as_str().into(), if_unused: true, ..Default::default() }).await?;
    c.close().await
}

/// Redeclaring with different type / durable / auto-delete / internal /
/// arguments.
pub async fn exchange_inequivalent_declare(cx: Ctx) -> Res {
    let x = cx.name("x");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "direct").await?;
    let variants = [
        declare(&x, "fanout"),
        ExchangeDeclare { durable: true, ..declare(&x, "direct") },
        ExchangeDeclare { auto_delete: true, ..declare(&x, "direct") },
        ExchangeDeclare { internal: true, ..declare(&x, "direct") },
        ExchangeDeclare {
            arguments: Table::new().with("alternate-exchange", Val::str("ae")).to_field_table(),
            ..declare(&x, "direct")
        },
        ExchangeDeclare {
            arguments: Table::new().with("x-whatever", Val::str("v")).to_field_table(),
            ..declare(&x, "direct")
        },
    ];
    for v in variants {
        let r = c.call(1, v).await?;
        if r.is("channel.close") {
            c.open(1).await?;
        }
    }
    c.close().await
}

/// Names starting with `amq.` are reserved; the built-in exchanges exist.
pub async fn exchange_reserved_amq_names(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    for (name, kind) in [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.topic", "topic"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
    ] {
        c.call(1, ExchangeDeclare { passive: true, ..declare(name, kind) }).await?;
    }
    let attempts: Vec<warren_protocol::Method> = vec![
        declare("amq.dt-custom", "direct").into(),
        ExchangeDeclare { durable: true, ..declare("amq.direct", "direct") }.into(),
        ExchangeDelete { exchange: "amq.direct".into(), ..Default::default() }.into(),
        ExchangeDelete { exchange: "amq.dt-missing".into(), ..Default::default() }.into(),
    ];
    for m in attempts {
        let r = c.call(1, m).await?;
        if r.is("channel.close") {
            c.open(1).await?;
        }
    }
    // binding queues to amq.* exchanges is allowed
    c.queue(1, &q).await?;
    c.bind(1, &q, "amq.direct", "k", Table::new()).await?;
    c.publish(1, "amq.direct", "k", &Props::new(), b"via amq.direct").await;
    c.get(1, &q, true).await?;
    c.close().await
}

/// The default exchange: cannot be declared by name, deleted or bound;
/// routes by queue name.
pub async fn default_exchange_rules(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    let attempts: Vec<warren_protocol::Method> = vec![
        ExchangeDeclare { passive: true, ..declare("", "direct") }.into(),
        declare("", "direct").into(),
        declare("amq.default", "direct").into(),
        ExchangeDelete { exchange: "".into(), ..Default::default() }.into(),
        QueueBind {
            queue: q.as_str().into(),
            exchange: "".into(),
            routing_key: "k".into(),
            ..Default::default()
        }
        .into(),
        QueueUnbind {
            queue: q.as_str().into(),
            exchange: "".into(),
            routing_key: q.as_str().into(),
            ..Default::default()
        }
        .into(),
        ExchangeBind { destination: "".into(), source: "amq.direct".into(), ..Default::default() }.into(),
        ExchangeBind { destination: "amq.fanout".into(), source: "".into(), ..Default::default() }.into(),
    ];
    for m in attempts {
        let r = c.call(1, m).await?;
        if r.is("channel.close") {
            c.open(1).await?;
        }
    }
    c.publish(1, "", &q, &Props::new(), b"by name").await;
    c.publish(1, "amq.default", &q, &Props::new(), b"via amq.default").await;
    c.drain(1, &q).await?;
    c.close().await
}

/// Exchange-to-exchange bindings: routing through a chain, unbind,
/// missing source/destination.
pub async fn exchange_to_exchange_bindings(cx: Ctx) -> Res {
    let src = cx.name("src");
    let mid = cx.name("mid");
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &src, "topic").await?;
    c.exchange(1, &mid, "fanout").await?;
    c.queue(1, &q).await?;
    c.bind(1, &q, &mid, "", Table::new()).await?;
    let bind = ExchangeBind {
        destination: mid.as_str().into(),
        source: src.as_str().into(),
        routing_key: "a.*".into(),
        ..Default::default()
    };
    c.call(1, bind.clone()).await?;
    c.call(1, bind.clone()).await?;
    // a cycle back to the source must not loop or duplicate
    let back = ExchangeBind {
        destination: src.as_str().into(),
        source: mid.as_str().into(),
        routing_key: "".into(),
        ..Default::default()
    };
    c.call(1, back.clone()).await?;
    c.publish(1, &src, "a.b", &Props::new(), b"routed").await;
    c.publish(1, &src, "b.b", &Props::new(), b"not routed").await;
    c.publish(1, &mid, "zzz", &Props::new(), b"into mid").await;
    c.drain(1, &q).await?;
    let unbind = ExchangeUnbind {
        destination: mid.as_str().into(),
        source: src.as_str().into(),
        routing_key: "a.*".into(),
        ..Default::default()
    };
    c.call(1, unbind.clone()).await?;
    c.call(1, unbind).await?;
    c.publish_mandatory(1, &src, "a.b", &Props::new(), b"after unbind").await;
    c.recv(1).await?;
    c.drain(1, &q).await?;
    let missing = cx.name("missing");
    c.call(1, ExchangeBind { source: missing.as_str().into(), ..bind.clone() }).await?;
    c.open(1).await?;
    c.call(1, ExchangeBind { destination: missing.as_str().into(), ..bind }).await?;
    c.close().await
}

/// exchange.delete if-unused with queue bindings and with exchange
/// bindings (as source and as destination).
pub async fn exchange_delete_if_unused(cx: Ctx) -> Res {
    let x = cx.name("x");
    let y = cx.name("y");
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "direct").await?;
    c.exchange(1, &y, "direct").await?;
    c.queue(1, &q).await?;
    c.bind(1, &q, &x, "k", Table::new()).await?;
    let del = |name: &str| ExchangeDelete { exchange: name.into(), if_unused: true, ..Default::default() };
    c.call(1, del(&x)).await?;
    c.open(1).await?;
    c.call(
        1,
        QueueUnbind {
            queue: q.as_str().into(),
            exchange: x.as_str().into(),
            routing_key: "k".into(),
            ..Default::default()
        },
    )
    .await?;
    c.call(
        1,
        ExchangeBind {
            destination: y.as_str().into(),
            source: x.as_str().into(),
            routing_key: "r".into(),
            ..Default::default()
        },
    )
    .await?;
    // y is only a destination: unused as a source
    c.call(1, del(&y)).await?;
    c.exchange(1, &y, "direct").await?;
    c.call(
        1,
        ExchangeBind {
            destination: y.as_str().into(),
            source: x.as_str().into(),
            routing_key: "r".into(),
            ..Default::default()
        },
    )
    .await?;
    c.call(1, del(&x)).await?;
    c.open(1).await?;
    c.call(1, ExchangeDelete { exchange: x.as_str().into(), ..Default::default() }).await?;
    c.call(1, ExchangeDeclare { passive: true, ..declare(&x, "direct") }).await?;
    c.open(1).await?;
    c.call(1, ExchangeDeclare { passive: true, ..declare(&y, "direct") }).await?;
    c.close().await
}

/// An auto-delete exchange goes away when its last binding is removed
/// (by unbind, or by deleting the bound queue), not before it had one.
pub async fn exchange_auto_delete(cx: Ctx) -> Res {
    let x = cx.name("x");
    let x2 = cx.name("x2");
    let q = cx.name("q");
    let q2 = cx.name("q2");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let ad = |name: &str| ExchangeDeclare { auto_delete: true, ..declare(name, "fanout") };
    c.call(1, ad(&x)).await?;
    c.call(1, ExchangeDeclare { passive: true, ..declare(&x, "fanout") }).await?;
    c.queue(1, &q).await?;
    c.bind(1, &q, &x, "a", Table::new()).await?;
    c.bind(1, &q, &x, "b", Table::new()).await?;
    c.call(
        1,
        QueueUnbind {
            queue: q.as_str().into(),
            exchange: x.as_str().into(),
            routing_key: "a".into(),
            ..Default::default()
        },
    )
    .await?;
    c.call(1, ExchangeDeclare { passive: true, ..declare(&x, "fanout") }).await?;
    c.call(
        1,
        QueueUnbind {
            queue: q.as_str().into(),
            exchange: x.as_str().into(),
            routing_key: "b".into(),
            ..Default::default()
        },
    )
    .await?;
    c.call(1, ExchangeDeclare { passive: true, ..declare(&x, "fanout") }).await?;
    c.open(1).await?;
    c.call(1, ad(&x2)).await?;
    c.queue(1, &q2).await?;
    c.bind(1, &q2, &x2, "", Table::new()).await?;
    c.call(1, QueueDelete { queue: q2.as_str().into(), ..Default::default() }).await?;
    c.call(1, ExchangeDeclare { passive: true, ..declare(&x2, "fanout") }).await?;
    c.close().await
}

/// Internal exchanges refuse direct publishes but take routed messages.
pub async fn exchange_internal(cx: Ctx) -> Res {
    let front = cx.name("front");
    let inner = cx.name("inner");
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &front, "fanout").await?;
    c.call(1, ExchangeDeclare { internal: true, ..declare(&inner, "fanout") }).await?;
    c.queue(1, &q).await?;
    c.bind(1, &q, &inner, "", Table::new()).await?;
    c.call(
        1,
        ExchangeBind {
            destination: inner.as_str().into(),
            source: front.as_str().into(),
            ..Default::default()
        },
    )
    .await?;
    c.publish(1, &front, "", &Props::new(), b"through front").await;
    c.drain(1, &q).await?;
    c.publish(1, &inner, "", &Props::new(), b"direct to internal").await;
    c.recv(1).await?;
    c.open(1).await?;
    c.drain(1, &q).await?;
    c.close().await
}

/// queue.bind / unbind errors and idempotence.
pub async fn queue_bind_unbind(cx: Ctx) -> Res {
    let x = cx.name("x");
    let q = cx.name("q");
    let missing = cx.name("missing");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "direct").await?;
    c.queue(1, &q).await?;
    c.bind(1, &q, &x, "k", Table::new()).await?;
    c.bind(1, &q, &x, "k", Table::new()).await?;
    c.bind(1, &q, &x, "k2", Table::new()).await?;
    c.publish(1, &x, "k", &Props::new(), b"k").await;
    c.publish(1, &x, "k2", &Props::new(), b"k2").await;
    let unbind = |key: &str, queue: &str, exchange: &str| QueueUnbind {
        queue: queue.into(),
        exchange: exchange.into(),
        routing_key: key.into(),
        ..Default::default()
    };
    c.call(1, unbind("k", &q, &x)).await?;
    c.call(1, unbind("k", &q, &x)).await?;
    c.call(1, unbind("never", &q, &x)).await?;
    c.publish(1, &x, "k", &Props::new(), b"k after unbind").await;
    c.publish(1, &x, "k2", &Props::new(), b"k2 again").await;
    c.drain(1, &q).await?;
    let attempts: Vec<warren_protocol::Method> = vec![
        QueueBind {
            queue: q.as_str().into(),
            exchange: missing.as_str().into(),
            routing_key: "k".into(),
            ..Default::default()
        }
        .into(),
        QueueBind {
            queue: missing.as_str().into(),
            exchange: x.as_str().into(),
            routing_key: "k".into(),
            ..Default::default()
        }
        .into(),
        unbind("k", &q, &missing).into(),
        unbind("k", &missing, &x).into(),
    ];
    for m in attempts {
        let r = c.call(1, m).await?;
        if r.is("channel.close") {
            c.open(1).await?;
        }
    }
    // a queue declared on this channel can be named "" in bind (the
    // last declared queue)
    c.declare_queue(1, "", QFlags::exclusive(), Table::new()).await?;
    c.bind(1, "", &x, "last", Table::new()).await?;
    c.publish(1, &x, "last", &Props::new(), b"to the last declared queue").await;
    c.get(1, "", true).await?;
    c.close().await
}

/// `alternate-exchange` must be a string when an exchange is created (any other type is a
/// channel error naming it); naming a missing exchange is fine. A redeclare only compares it.
/// The reserved-name check comes before it, the exchange type's own argument checks after.
pub async fn exchange_alternate_exchange_types(cx: Ctx) -> Res {
    let x = cx.name("x");
    let with_ae = |name: &str, kind: &str, ae: Val| ExchangeDeclare {
        arguments: Table::new().with("other", Val::i32(1)).with("alternate-exchange", ae).to_field_table(),
        ..declare(name, kind)
    };
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let bad = [
        Val::i32(5),
        Val::i64(5),
        Val::u8(5),
        Val::i8(-5),
        Val::i16(5),
        Val::bool(true),
        Val::f64(1.5),
        Val::decimal(1, 15),
        Val::timestamp(7),
        Val::void(),
        Val::byte_array(b"ae"),
        Val::array(vec![Val::str("ae")]),
        Val::table(Table::new().with("name", Val::str("ae"))),
    ];
    for ae in bad {
        c.call(1, with_ae(&x, "direct", ae)).await?;
        c.open(1).await?;
    }
    // Nothing was created.
    c.call(1, ExchangeDeclare { passive: true, ..declare(&x, "direct") }).await?;
    c.open(1).await?;
    // A missing alternate exchange is accepted; redeclares compare the argument.
    c.call(1, with_ae(&x, "direct", Val::str(&cx.name("missing")))).await?;
    c.call(1, with_ae(&x, "direct", Val::str(&cx.name("missing")))).await?;
    for ae in [Val::str(&cx.name("other")), Val::i32(5), Val::table(Table::new())] {
        c.call(1, with_ae(&x, "direct", ae)).await?;
        c.open(1).await?;
    }
    c.call(1, declare(&x, "direct")).await?;
    c.open(1).await?;
    c.call(1, ExchangeDeclare { passive: true, ..with_ae(&x, "fanout", Val::i32(5)) }).await?;
    // Reserved names and other-argument checks of the type: which error comes first.
    c.call(1, with_ae("amq.dt-ae", "direct", Val::i32(5))).await?;
    c.open(1).await?;
    let both = Table::new()
        .with("hash-header", Val::str("h"))
        .with("hash-property", Val::str("message_id"))
        .with("alternate-exchange", Val::i32(5));
    let chx = cx.name("chx");
    c.call(1, ExchangeDeclare { arguments: both.to_field_table(), ..declare(&chx, "x-consistent-hash") })
        .await?;
    c.open(1).await?;
    // The type's own checks apply on creation only: a redeclare compares alternate-exchange alone.
    c.exchange(1, &chx, "x-consistent-hash").await?;
    let both = Table::new().with("hash-header", Val::str("h")).with("hash-property", Val::str("message_id"));
    c.call(1, ExchangeDeclare { arguments: both.to_field_table(), ..declare(&chx, "x-consistent-hash") })
        .await?;
    // An unknown type is a connection error, ahead of the argument.
    c.call(1, with_ae(&cx.name("bogus"), "x-no-such-type", Val::i32(5))).await?;
    c.expect_eof().await
}
