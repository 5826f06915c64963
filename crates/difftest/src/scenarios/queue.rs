//! queue.declare / purge / delete, exclusive and auto-delete queues.

use warren_protocol::methods::*;

use crate::harness::{Ctx, Res};
use crate::raw::{QFlags, Raw};
use crate::wire::{Props, Table, Val};

/// Server-named queues: names, counts, the "last declared queue" shortcut.
pub async fn queue_server_named(cx: Ctx) -> Res {
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    let a = c.declare_queue(1, "", QFlags::exclusive(), Table::new()).await?.queue()?;
    c.declare_queue(1, "", QFlags::default(), Table::new()).await?;
    c.passive(1, &a).await?;
    // "" means the queue last declared on this channel
    c.publish_to_queue(1, &a, b"to a").await;
    c.call(1, QueuePurge { queue: "".into(), ..Default::default() }).await?;
    c.get(1, "", true).await?;
    // ...and nothing on a channel that declared no queue
    c.get(2, "", true).await?;
    c.open(2).await?;
    c.call(2, QueuePurge { queue: "".into(), ..Default::default() }).await?;
    c.open(2).await?;
    c.call(2, QueueDelete { queue: "".into(), ..Default::default() }).await?;
    c.call(1, QueueDelete { queue: "".into(), ..Default::default() }).await?;
    c.passive(1, &a).await?;
    // the shortcut does not apply to queue.declare itself
    c.open(3).await?;
    c.declare_queue(3, "", QFlags::exclusive(), Table::new()).await?;
    c.passive(3, "").await?;
    c.close().await
}

/// An exclusive queue is locked to its connection: declare, passive,
/// get, consume, purge, delete and bind from another connection; gone
/// when the owner closes.
pub async fn queue_exclusive_other_connection(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c1 = Raw::connect(&cx, "c1").await?;
    let mut c2 = Raw::connect(&cx, "c2").await?;
    c1.open(1).await?;
    c1.declare_queue(1, &q, QFlags::exclusive(), Table::new()).await?;
    c1.declare_queue(1, &q, QFlags::exclusive(), Table::new()).await?;
    c1.publish_to_queue(1, &q, b"m").await;
    c1.await_count(1, &q, 1).await?;
    let attempts: Vec<warren_protocol::Method> = vec![
        QueueDeclare { queue: q.as_str().into(), ..Default::default() }.into(),
        QueueDeclare { queue: q.as_str().into(), exclusive: true, ..Default::default() }.into(),
        QueueDeclare { queue: q.as_str().into(), passive: true, ..Default::default() }.into(),
        BasicGet { queue: q.as_str().into(), no_ack: true, ..Default::default() }.into(),
        BasicConsume { queue: q.as_str().into(), ..Default::default() }.into(),
        QueuePurge { queue: q.as_str().into(), ..Default::default() }.into(),
        QueueDelete { queue: q.as_str().into(), ..Default::default() }.into(),
        QueueBind { queue: q.as_str().into(), exchange: "amq.fanout".into(), ..Default::default() }.into(),
        QueueUnbind { queue: q.as_str().into(), exchange: "amq.fanout".into(), ..Default::default() }.into(),
    ];
    for m in attempts {
        c2.open(1).await?;
        let r = c2.call(1, m).await?;
        if !r.is("channel.close") {
            c2.close_channel(1).await?;
        }
    }
    // the owner may redeclare non-exclusively? (no: inequivalent)
    c1.call(1, QueueDeclare { queue: q.as_str().into(), ..Default::default() }).await?;
    c1.close().await?;
    c2.await_queue_gone(&q).await?;
    c2.close().await
}

/// Auto-delete queues: kept until a consumer came and went.
pub async fn queue_auto_delete(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.declare_queue(1, &q, QFlags::auto_delete(), Table::new()).await?;
    c.passive(1, &q).await?;
    c.consume(1, &q, "a", false).await?;
    c.consume(1, &q, "b", false).await?;
    c.call(1, BasicCancel { consumer_tag: "a".into(), nowait: false }).await?;
    c.passive(1, &q).await?;
    c.call(1, BasicCancel { consumer_tag: "b".into(), nowait: false }).await?;
    c.await_queue_gone(&q).await?;
    // closing the channel of the last consumer deletes it too
    let q2 = cx.name("q2");
    c.open(2).await?;
    c.declare_queue(1, &q2, QFlags::auto_delete(), Table::new()).await?;
    c.consume(2, &q2, "c", false).await?;
    c.close_channel(2).await?;
    c.await_queue_gone(&q2).await?;
    c.close().await
}

/// message_count / consumer_count in declare-ok, get-ok and purge-ok.
pub async fn queue_counts(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(1, &q).await?;
    c.confirm_select(1).await?;
    for i in 0..5 {
        c.publish_to_queue(1, &q, format!("m{i}").as_bytes()).await;
    }
    c.await_confirms(1, 1, 5).await?;
    c.passive(1, &q).await?;
    c.queue(1, &q).await?;
    c.get(1, &q, false).await?;
    c.passive(1, &q).await?;
    c.qos(2, 1, false).await?;
    c.consume(2, &q, "one", false).await?;
    c.recv(2).await?;
    c.passive(1, &q).await?;
    c.call(1, QueuePurge { queue: q.as_str().into(), ..Default::default() }).await?;
    c.passive(1, &q).await?;
    c.call(1, QueueDelete { queue: q.as_str().into(), ..Default::default() }).await?;
    c.recv(2).await?;
    c.close().await
}

/// Redeclaring a queue with different properties or arguments.
pub async fn queue_inequivalent_declare(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let args = Table::new().with("x-message-ttl", Val::i32(60000)).with("x-max-length", Val::i64(10));
    c.declare_queue(1, &q, QFlags::default(), args.clone()).await?;
    c.declare_queue(1, &q, QFlags::default(), args).await?;
    let same_other_types =
        Table::new().with("x-message-ttl", Val::i64(60000)).with("x-max-length", Val::i32(10));
    c.declare_queue(1, &q, QFlags::default(), same_other_types).await?;
    let variants = vec![
        (
            QFlags::durable(),
            Table::new().with("x-message-ttl", Val::i32(60000)).with("x-max-length", Val::i64(10)),
        ),
        (
            QFlags::auto_delete(),
            Table::new().with("x-message-ttl", Val::i32(60000)).with("x-max-length", Val::i64(10)),
        ),
        (
            QFlags::default(),
            Table::new().with("x-message-ttl", Val::i32(1000)).with("x-max-length", Val::i64(10)),
        ),
        (QFlags::default(), Table::new().with("x-max-length", Val::i64(10))),
        (QFlags::default(), Table::new().with("x-message-ttl", Val::i32(60000))),
        (
            QFlags::default(),
            Table::new()
                .with("x-message-ttl", Val::i32(60000))
                .with("x-max-length", Val::i64(10))
                .with("x-dead-letter-exchange", Val::str("dlx")),
        ),
        (
            QFlags::default(),
            Table::new()
                .with("x-message-ttl", Val::i32(60000))
                .with("x-max-length", Val::i64(10))
                .with("x-custom", Val::str("ignored")),
        ),
    ];
    for (flags, args) in variants {
        let r = c.declare_queue(1, &q, flags, args).await?;
        if r.is("channel.close") {
            c.open(1).await?;
        }
    }
    c.close().await
}

/// Invalid x- arguments at declare.
pub async fn queue_argument_validation(cx: Ctx) -> Res {
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let cases = vec![
        ("ttl-negative", Table::new().with("x-message-ttl", Val::i32(-1))),
        ("ttl-string", Table::new().with("x-message-ttl", Val::str("1000"))),
        ("expires-zero", Table::new().with("x-expires", Val::i32(0))),
        ("maxlen-negative", Table::new().with("x-max-length", Val::i64(-1))),
        ("maxlen-bytes-string", Table::new().with("x-max-length-bytes", Val::str("x"))),
        ("dlrk-without-dlx", Table::new().with("x-dead-letter-routing-key", Val::str("rk"))),
        ("overflow-bogus", Table::new().with("x-overflow", Val::str("bogus"))),
        ("max-priority-big", Table::new().with("x-max-priority", Val::i32(300))),
        ("queue-type-bogus", Table::new().with("x-queue-type", Val::str("bogus"))),
        ("ttl-ok-long", Table::new().with("x-message-ttl", Val::i64(5000))),
        ("unknown-arg", Table::new().with("x-not-a-thing", Val::i32(1))),
    ];
    for (suffix, args) in cases {
        let r = c.declare_queue(1, &cx.name(suffix), QFlags::default(), args).await?;
        if r.is("channel.close") {
            c.open(1).await?;
        }
    }
    c.close().await
}

/// queue.purge leaves unacked messages alone; purge of a missing queue.
pub async fn queue_purge(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    for i in 0..4 {
        c.publish_to_queue(1, &q, format!("m{i}").as_bytes()).await;
    }
    let tag = c.get(1, &q, false).await?.delivery_tag()?;
    c.call(1, QueuePurge { queue: q.as_str().into(), ..Default::default() }).await?;
    c.call(1, QueuePurge { queue: q.as_str().into(), ..Default::default() }).await?;
    c.send(1, BasicReject { delivery_tag: tag, requeue: true }).await;
    c.await_count(1, &q, 1).await?;
    c.get(1, &q, true).await?;
    c.call(1, QueuePurge { queue: cx.name("missing").as_str().into(), ..Default::default() }).await?;
    c.close().await
}

/// queue.delete with if-empty / if-unused, message counts, missing queue.
pub async fn queue_delete_conditions(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(1, &q).await?;
    c.publish_to_queue(1, &q, b"one").await;
    c.publish_to_queue(1, &q, b"two").await;
    let del = |if_empty, if_unused| QueueDelete {
        queue: q.as_str().into(),
        if_empty,
        if_unused,
        ..Default::default()
    };
    c.call(1, del(true, false)).await?;
    c.open(1).await?;
    c.consume(2, &q, "busy", true).await?;
    c.recv(2).await?;
    c.recv(2).await?;
    c.call(1, del(false, true)).await?;
    c.open(1).await?;
    c.call(2, BasicCancel { consumer_tag: "busy".into(), nowait: false }).await?;
    c.publish_to_queue(1, &q, b"three").await;
    c.call(1, del(false, true)).await?;
    c.call(1, QueueDelete { queue: q.as_str().into(), ..Default::default() }).await?;
    c.call(
        1,
        QueueDelete { queue: q.as_str().into(), if_empty: true, if_unused: true, ..Default::default() },
    )
    .await?;
    c.close().await
}

/// Queue names starting with `amq.` are reserved for the server.
pub async fn queue_reserved_names(cx: Ctx) -> Res {
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, "amq.dt-queue").await?;
    c.open(1).await?;
    c.passive(1, "amq.dt-queue").await?;
    c.open(1).await?;
    // an over-long name (256 bytes cannot be sent; 255 can)
    let long = format!("dt.{}", "x".repeat(252));
    c.queue(1, &long).await?;
    c.call(1, QueueDelete { queue: long.as_str().into(), ..Default::default() }).await?;
    c.publish(1, "", "amq.dt-nowhere", &Props::new(), b"x").await;
    c.passive(1, "amq.dt-nowhere").await?;
    c.close().await
}
