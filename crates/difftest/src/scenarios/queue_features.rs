//! Queue and consumer features: queue expiry (`x-expires`), priority queues
//! (`x-max-priority`), single active consumer, consumer priorities (`x-priority`).

use warren_protocol::methods::*;

use crate::harness::{Ctx, Res};
use crate::raw::{QFlags, Raw};
use crate::wire::{Props, Table, Val};

/// Lets at least `ms` milliseconds pass without touching any other queue: a message with
/// that TTL is dead-lettered from one helper queue into another, which is polled.
async fn wait_ms(c: &mut Raw, cx: &Ctx, suffix: &str, ms: i32) -> Res {
    let timer = cx.name(&format!("timer-{suffix}"));
    let done = cx.name(&format!("timer-done-{suffix}"));
    c.queue(1, &done).await?;
    let args = Table::new()
        .with("x-message-ttl", Val::i32(ms))
        .with("x-dead-letter-exchange", Val::str(""))
        .with("x-dead-letter-routing-key", Val::str(&done));
    c.declare_queue(1, &timer, QFlags::default(), args).await?;
    c.publish_to_queue(1, &timer, b"tick").await;
    c.await_count(1, &done, 1).await
}

fn consume_with(queue: &str, tag: &str, args: Table) -> BasicConsume {
    BasicConsume {
        queue: queue.into(),
        consumer_tag: tag.into(),
        arguments: args.to_field_table(),
        ..Default::default()
    }
}

/// x-expires: an unused queue (messages or not) is deleted after the time; a queue with a
/// consumer is not, and its timer starts when the last consumer leaves.
pub async fn queue_expires(cx: Ctx) -> Res {
    let kept = cx.name("kept");
    let gone = cx.name("gone");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let expires = |ms: i32| Table::new().with("x-expires", Val::i32(ms));
    c.declare_queue(1, &kept, QFlags::default(), expires(150)).await?;
    c.consume(1, &kept, "keep", false).await?;
    c.declare_queue(1, &gone, QFlags::default(), expires(100)).await?;
    c.publish_to_queue(1, &gone, b"lost with its queue").await;
    wait_ms(&mut c, &cx, "a", 500).await?;
    c.passive(1, &kept).await?;
    c.open(3).await?;
    c.passive(3, &gone).await?;
    c.call(1, BasicCancel { consumer_tag: "keep".into(), nowait: false }).await?;
    wait_ms(&mut c, &cx, "b", 500).await?;
    c.open(4).await?;
    c.passive(4, &kept).await?;
    c.close().await
}

/// x-max-priority: higher priorities first, FIFO within a priority, priorities above the
/// maximum count as the maximum; requeued messages go back to their place.
pub async fn priority_queue_order(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.declare_queue(1, &q, QFlags::default(), Table::new().with("x-max-priority", Val::i32(5))).await?;
    for (i, p) in [Some(1), Some(5), Some(9), None, Some(3), Some(5), Some(0), Some(1)].iter().enumerate() {
        let props = match p {
            Some(p) => Props::new().priority(*p),
            None => Props::new(),
        };
        c.publish(1, "", &q, &props, format!("m{i} p{p:?}").as_bytes()).await;
    }
    c.get(1, &q, false).await?;
    c.get(1, &q, false).await?;
    c.get(1, &q, false).await?;
    c.send(1, BasicNack { delivery_tag: 0, multiple: true, requeue: true }).await;
    c.drain(1, &q).await?;
    // a consumer with a prefetch window sees the same order
    for (i, p) in [0u8, 2, 4, 2].iter().enumerate() {
        c.publish(1, "", &q, &Props::new().priority(*p), format!("n{i}").as_bytes()).await;
    }
    c.qos(1, 1, false).await?;
    c.consume(1, &q, "c", false).await?;
    for _ in 0..4 {
        let t = c.recv(1).await?.delivery_tag()?;
        c.ack(1, t, false).await;
    }
    c.close().await
}

/// x-single-active-consumer: only the first consumer receives; when it cancels or its
/// channel closes the next registered one takes over (unacked messages requeued first).
pub async fn single_active_consumer(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    for ch in 1..=4 {
        c.open(ch).await?;
    }
    let sac = Table::new().with("x-single-active-consumer", Val::bool(true));
    c.declare_queue(1, &q, QFlags::default(), sac).await?;
    c.consume(1, &q, "a", false).await?;
    c.consume(2, &q, "b", false).await?;
    c.consume(3, &q, "c", false).await?;
    c.passive(4, &q).await?;
    c.confirm_select(4).await?;
    for i in 0..3 {
        c.publish_to_queue(4, &q, format!("m{i}").as_bytes()).await;
    }
    c.await_confirms(4, 1, 3).await?;
    for _ in 0..3 {
        c.recv(1).await?;
    }
    c.ack(1, 0, true).await;
    c.call(1, BasicCancel { consumer_tag: "a".into(), nowait: false }).await?;
    for i in 3..5 {
        c.publish_to_queue(4, &q, format!("m{i}").as_bytes()).await;
    }
    c.await_confirms(4, 4, 5).await?;
    c.recv(2).await?;
    c.recv(2).await?;
    // b leaves with two unacked messages: c gets them back, then the rest
    c.close_channel(2).await?;
    c.publish_to_queue(4, &q, b"m5").await;
    c.await_confirms(4, 6, 6).await?;
    for _ in 0..3 {
        c.recv(3).await?;
    }
    c.ack(3, 0, true).await;
    // an exclusive consumer is refused on such a queue
    c.call(4, BasicConsume { queue: q.as_str().into(), exclusive: true, ..Default::default() }).await?;
    c.close().await
}

/// x-priority: higher-priority consumers with credit get the messages; round-robin
/// among equal priorities; lower ones get messages when the higher have no credit.
pub async fn consumer_priorities(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    for ch in 1..=4 {
        c.open(ch).await?;
    }
    c.queue(1, &q).await?;
    c.qos(1, 2, false).await?;
    c.qos(3, 2, false).await?;
    let prio = |p: i32| Table::new().with("x-priority", Val::i32(p));
    c.call(1, consume_with(&q, "hi1", prio(5))).await?;
    c.call(2, consume_with(&q, "lo", Table::new())).await?;
    c.call(3, consume_with(&q, "hi2", prio(5))).await?;
    c.confirm_select(4).await?;
    for i in 0..6 {
        c.publish_to_queue(4, &q, format!("m{i}").as_bytes()).await;
    }
    c.await_confirms(4, 1, 6).await?;
    c.recv(1).await?;
    c.recv(3).await?;
    c.recv(1).await?;
    c.recv(3).await?;
    c.recv(2).await?;
    c.recv(2).await?;
    // credit back on hi1: the next message is its own. The ack is known processed once a later
    // synchronous method on its channel is answered; without that, RabbitMQ may take the
    // publish on ch4 before the ack on ch1 and give m6 to "lo".
    c.ack(1, 0, true).await;
    c.qos(1, 2, false).await?;
    c.publish_to_queue(4, &q, b"m6").await;
    c.await_confirms(4, 7, 7).await?;
    c.recv(1).await?;
    // settle before closing (requeues while the connection closes would reach others)
    for ch in 1..=3 {
        c.ack(ch, 0, true).await;
    }
    c.close().await
}
