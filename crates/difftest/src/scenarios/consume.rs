//! basic.consume / cancel / get, acknowledgements, requeueing, qos,
//! recover, dispatch order.

use warren_protocol::methods::*;

use crate::harness::{Ctx, Res};
use crate::raw::{Login, Raw};
use crate::wire::{Props, Table};

fn cancel(tag: &str) -> BasicCancel {
    BasicCancel { consumer_tag: tag.into(), nowait: false }
}

async fn publish_n(c: &mut Raw, ch: u16, q: &str, from: usize, n: usize) {
    for i in from..from + n {
        c.publish_to_queue(ch, q, format!("m{i}").as_bytes()).await;
    }
}

/// Consume with explicit and generated tags, deliveries, cancel, cancel of
/// an unknown tag, and get after cancel.
pub async fn consume_and_cancel(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    publish_n(&mut c, 1, &q, 0, 2).await;
    c.consume(1, &q, "tag-1", false).await?;
    c.recv(1).await?;
    c.recv(1).await?;
    c.ack(1, 2, true).await;
    publish_n(&mut c, 1, &q, 2, 1).await;
    let t = c.recv(1).await?.delivery_tag()?;
    c.ack(1, t, false).await;
    c.call(1, cancel("tag-1")).await?;
    publish_n(&mut c, 1, &q, 3, 1).await;
    c.get(1, &q, true).await?;
    c.call(1, cancel("never-existed")).await?;
    let tag = c.consume(1, &q, "", true).await?.consumer_tag()?;
    publish_n(&mut c, 1, &q, 4, 1).await;
    c.recv(1).await?;
    c.call(1, cancel(&tag)).await?;
    c.close().await
}

/// Consume errors: missing queue (404), exclusive consumers (403), a
/// reused consumer tag on the same channel (530, connection error).
pub async fn consume_errors(cx: Ctx) -> Res {
    let q = cx.name("q");
    let q2 = cx.name("q2");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.consume(1, &cx.name("missing"), "", false).await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(1, &q).await?;
    c.queue(1, &q2).await?;
    c.call(
        1,
        BasicConsume {
            queue: q.as_str().into(),
            consumer_tag: "excl".into(),
            exclusive: true,
            ..Default::default()
        },
    )
    .await?;
    c.consume(2, &q, "second", false).await?;
    c.open(2).await?;
    c.consume(1, &q, "same-channel", false).await?;
    c.open(1).await?;
    c.consume(1, &q2, "shared", false).await?;
    c.call(
        2,
        BasicConsume {
            queue: q2.as_str().into(),
            consumer_tag: "excl2".into(),
            exclusive: true,
            ..Default::default()
        },
    )
    .await?;
    c.open(2).await?;
    c.consume(2, &q2, "dup", false).await?;
    c.consume(2, &q, "dup", false).await?;
    c.expect_eof().await
}

/// Deleting a queue cancels its consumers with a server-sent basic.cancel
/// (client announced consumer_cancel_notify); the channel stays usable.
pub async fn server_cancel_on_queue_delete(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c1 = Raw::connect(&cx, "c1").await?;
    let mut c2 = Raw::connect(&cx, "c2").await?;
    c1.open(1).await?;
    c2.open(1).await?;
    c1.queue(1, &q).await?;
    c1.consume(1, &q, "watch", false).await?;
    c1.consume(1, &q, "watch-2", true).await?;
    publish_n(&mut c2, 1, &q, 0, 2).await;
    c1.recv(1).await?;
    c1.recv(1).await?;
    c2.call(1, QueueDelete { queue: q.as_str().into(), ..Default::default() }).await?;
    c1.recv(1).await?;
    c1.recv(1).await?;
    c1.ack(1, 1, false).await;
    c1.passive(1, &q).await?;
    c1.close().await?;
    c2.close().await
}

/// Without consumer_cancel_notify in the client capabilities, a deleted
/// queue's consumers disappear silently.
pub async fn server_cancel_needs_capability(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c1 = Raw::tcp(&cx, "c1").await?;
    c1.handshake(&Login { cancel_notify: false, ..Default::default() }).await?;
    c1.open(1).await?;
    c1.queue(1, &q).await?;
    c1.consume(1, &q, "watch", false).await?;
    c1.call(1, QueueDelete { queue: q.as_str().into(), ..Default::default() }).await?;
    c1.close().await
}

/// basic.get on an empty queue, message counts in get-ok, ack of a get.
pub async fn get_and_get_empty(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    c.get(1, &q, false).await?;
    publish_n(&mut c, 1, &q, 0, 3).await;
    let t = c.get(1, &q, false).await?.delivery_tag()?;
    c.get(1, &q, true).await?;
    c.get(1, &q, false).await?;
    c.get(1, &q, false).await?;
    c.ack(1, t, false).await;
    c.passive(1, &q).await?;
    c.get(1, &cx.name("missing"), false).await?;
    c.close().await
}

/// ack, ack multiple, nack, nack multiple, reject, with and without
/// requeue, on a consumer.
pub async fn ack_nack_reject(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    publish_n(&mut c, 1, &q, 0, 8).await;
    c.consume(1, &q, "acker", false).await?;
    for _ in 0..8 {
        c.recv(1).await?;
    }
    c.ack(1, 1, false).await;
    c.ack(1, 3, true).await;
    c.send(1, BasicNack { delivery_tag: 4, multiple: false, requeue: false }).await;
    c.send(1, BasicReject { delivery_tag: 5, requeue: true }).await;
    c.recv(1).await?;
    c.send(1, BasicNack { delivery_tag: 7, multiple: true, requeue: true }).await;
    c.recv(1).await?;
    c.recv(1).await?;
    c.send(1, BasicReject { delivery_tag: 8, requeue: false }).await;
    c.ack(1, 0, true).await;
    c.passive(1, &q).await?;
    c.call(1, cancel("acker")).await?;
    c.passive(1, &q).await?;
    c.close().await
}

/// Requeued messages go back to their original position, flagged
/// redelivered; closing a channel requeues its unacked messages.
pub async fn requeue_order_and_redelivered(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(1, &q).await?;
    publish_n(&mut c, 1, &q, 0, 6).await;
    let mut tags = Vec::new();
    for _ in 0..4 {
        tags.push(c.get(1, &q, false).await?.delivery_tag()?);
    }
    // requeue the 2nd and 4th individually, then the rest together
    c.send(1, BasicReject { delivery_tag: tags[3], requeue: true }).await;
    c.send(1, BasicReject { delivery_tag: tags[1], requeue: true }).await;
    c.send(1, BasicNack { delivery_tag: tags[2], multiple: true, requeue: true }).await;
    c.await_count(1, &q, 6).await?;
    c.drain(1, &q).await?;
    // unacked deliveries of a closed channel are requeued
    publish_n(&mut c, 1, &q, 6, 3).await;
    c.consume(2, &q, "c", false).await?;
    for _ in 0..3 {
        c.recv(2).await?;
    }
    c.ack(2, 2, false).await;
    c.close_channel(2).await?;
    c.await_count(1, &q, 2).await?;
    c.drain(1, &q).await?;
    c.close().await
}

/// Acking an unknown or already acked tag is a channel error (406), so is
/// rejecting one; multiple with tag 0 acks everything outstanding.
pub async fn unknown_and_double_ack(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    publish_n(&mut c, 1, &q, 0, 3).await;
    let t = c.get(1, &q, false).await?.delivery_tag()?;
    c.ack(1, t, false).await;
    c.ack(1, t, false).await;
    c.recv(1).await?;
    c.open(1).await?;
    c.ack(1, 99, false).await;
    c.recv(1).await?;
    c.open(1).await?;
    c.send(1, BasicReject { delivery_tag: 5, requeue: false }).await;
    c.recv(1).await?;
    c.open(1).await?;
    c.send(1, BasicNack { delivery_tag: 5, multiple: true, requeue: false }).await;
    c.recv(1).await?;
    c.open(1).await?;
    c.get(1, &q, false).await?;
    c.get(1, &q, false).await?;
    c.ack(1, 0, true).await;
    c.ack(1, 0, true).await;
    c.passive(1, &q).await?;
    // a delivery tag from another channel is unknown here
    c.open(2).await?;
    publish_n(&mut c, 1, &q, 3, 1).await;
    let t = c.get(1, &q, false).await?.delivery_tag()?;
    c.ack(2, t + 1, false).await;
    c.recv(2).await?;
    c.close().await
}

/// Per-consumer prefetch (global=false): a consumer holds at most N
/// unacked; acking frees a slot; no-ack consumers ignore it.
pub async fn qos_prefetch_per_consumer(cx: Ctx) -> Res {
    let q = cx.name("q");
    let q2 = cx.name("q2");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(1, &q).await?;
    c.queue(1, &q2).await?;
    c.confirm_select(1).await?;
    publish_n(&mut c, 1, &q, 0, 5).await;
    publish_n(&mut c, 1, &q2, 0, 3).await;
    c.await_confirms(1, 1, 8).await?;
    c.qos(2, 2, false).await?;
    c.consume(2, &q, "limited", false).await?;
    c.recv(2).await?;
    c.recv(2).await?;
    c.passive(1, &q).await?;
    c.ack(2, 1, false).await;
    c.recv(2).await?;
    c.passive(1, &q).await?;
    c.ack(2, 3, true).await;
    c.recv(2).await?;
    c.recv(2).await?;
    c.passive(1, &q).await?;
    c.consume(2, &q2, "no-ack", true).await?;
    for _ in 0..3 {
        c.recv(2).await?;
    }
    c.passive(1, &q2).await?;
    c.close().await
}

/// global=true limits the whole channel: two consumers share the window.
pub async fn qos_global_channel_limit(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(1, &q).await?;
    c.confirm_select(1).await?;
    publish_n(&mut c, 1, &q, 0, 6).await;
    c.await_confirms(1, 1, 6).await?;
    c.qos(2, 3, true).await?;
    c.consume(2, &q, "a", false).await?;
    for _ in 0..3 {
        c.recv(2).await?;
    }
    c.consume(2, &q, "b", false).await?;
    c.passive(1, &q).await?;
    c.ack(2, 1, false).await;
    c.recv(2).await?;
    c.passive(1, &q).await?;
    c.ack(2, 4, true).await;
    c.recv(2).await?;
    c.recv(2).await?;
    c.passive(1, &q).await?;
    c.close().await
}

/// basic.recover (requeue) and recover-async redeliver unacked messages
/// flagged redelivered.
pub async fn basic_recover(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    publish_n(&mut c, 1, &q, 0, 3).await;
    c.consume(1, &q, "r", false).await?;
    for _ in 0..3 {
        c.recv(1).await?;
    }
    c.ack(1, 2, false).await;
    c.call(1, BasicRecover { requeue: true }).await?;
    c.recv(1).await?;
    c.recv(1).await?;
    c.send(1, BasicRecoverAsync { requeue: true }).await;
    c.recv(1).await?;
    c.recv(1).await?;
    c.ack(1, 0, true).await;
    c.passive(1, &q).await?;
    c.call(1, BasicRecover { requeue: false }).await?;
    c.close().await
}

/// Round-robin dispatch between consumers, on one channel and across
/// channels.
pub async fn round_robin_dispatch(cx: Ctx) -> Res {
    let q = cx.name("q");
    let q2 = cx.name("q2");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.open(3).await?;
    c.queue(1, &q).await?;
    c.queue(1, &q2).await?;
    c.consume(1, &q, "first", true).await?;
    c.consume(1, &q, "second", true).await?;
    c.consume(1, &q, "third", true).await?;
    c.confirm_select(3).await?;
    for i in 0..7 {
        c.publish_to_queue(3, &q, format!("m{i}").as_bytes()).await;
    }
    c.await_confirms(3, 1, 7).await?;
    for _ in 0..7 {
        c.recv(1).await?;
    }
    c.consume(1, &q2, "x", false).await?;
    c.consume(2, &q2, "y", false).await?;
    for i in 0..6 {
        c.publish_to_queue(3, &q2, format!("n{i}").as_bytes()).await;
    }
    c.await_confirms(3, 8, 13).await?;
    for _ in 0..3 {
        c.recv(1).await?;
        c.recv(2).await?;
    }
    // settle before closing (requeues while the connection closes would
    // be delivered to the other channel or not, depending on timing)
    c.ack(1, 0, true).await;
    c.ack(2, 0, true).await;
    c.passive(3, &q2).await?;
    c.close().await
}

/// Consumers with qos 1 take turns as they ack (work queue pattern); a
/// message rejected with requeue goes to the next consumer in turn.
pub async fn work_queue_fairness(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.open(3).await?;
    c.queue(3, &q).await?;
    c.qos(1, 1, false).await?;
    c.qos(2, 1, false).await?;
    c.consume(1, &q, "w1", false).await?;
    c.consume(2, &q, "w2", false).await?;
    publish_n(&mut c, 3, &q, 0, 5).await;
    let t1 = c.recv(1).await?.delivery_tag()?;
    let t2 = c.recv(2).await?.delivery_tag()?;
    c.send(1, BasicReject { delivery_tag: t1, requeue: true }).await;
    let t1 = c.recv(1).await?.delivery_tag()?;
    c.ack(2, t2, false).await;
    let t2 = c.recv(2).await?.delivery_tag()?;
    // one channel at a time: acks from two channels reach the queue in
    // no particular order
    c.ack(1, t1, false).await;
    let t1 = c.recv(1).await?.delivery_tag()?;
    c.ack(2, t2, false).await;
    let t2 = c.recv(2).await?.delivery_tag()?;
    c.ack(1, t1, false).await;
    c.ack(2, t2, false).await;
    c.passive(3, &q).await?;
    c.close().await
}

/// A publish on the consuming channel and deliveries interleave per
/// channel order: consume-ok comes before the first delivery.
pub async fn consume_existing_backlog(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    let props = Props::new().headers(Table::new()).priority(1);
    for i in 0..3 {
        c.publish(1, "", &q, &props, format!("b{i}").as_bytes()).await;
    }
    c.send(
        1,
        BasicConsume {
            queue: q.as_str().into(),
            consumer_tag: "late".into(),
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for _ in 0..4 {
        c.recv(1).await?;
    }
    c.close().await
}

/// Consume arguments: `x-cancel-on-ha-failover` (asking for a basic.cancel when a mirrored
/// queue fails over; a single node never does, so it never fires) must be a bool and
/// `x-priority` an integer, or the channel closes with 406; the consumer otherwise works as any
/// other, and a queue deletion cancels it.
pub async fn consume_argument_types(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    let consume = |tag: &str, key: &str, value: crate::wire::Val| BasicConsume {
        queue: q.as_str().into(),
        consumer_tag: tag.into(),
        no_ack: true,
        arguments: Table::new().with(key, value).to_field_table(),
        ..Default::default()
    };
    use crate::wire::Val;
    c.call(1, consume("ha-bool", "x-cancel-on-ha-failover", Val::bool(true))).await?;
    c.call(1, consume("prio-long", "x-priority", Val::i64(-2))).await?;
    c.open(2).await?;
    c.call(2, consume("ha-string", "x-cancel-on-ha-failover", Val::str("yes"))).await?;
    c.open(2).await?;
    c.call(2, consume("prio-string", "x-priority", Val::str("high"))).await?;
    c.open(2).await?;
    c.call(2, consume("prio-bool", "x-priority", Val::bool(true))).await?;
    publish_n(&mut c, 1, &q, 0, 2).await;
    c.recv(1).await?;
    c.recv(1).await?;
    let mut other = Raw::connect(&cx, "c2").await?;
    other.open(1).await?;
    other.call(1, QueueDelete { queue: q.as_str().into(), ..Default::default() }).await?;
    c.recv(1).await?;
    c.recv(1).await?;
    other.close().await?;
    c.close().await
}
