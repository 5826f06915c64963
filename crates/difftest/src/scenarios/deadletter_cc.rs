//! Dead-lettering messages published with sender-selected distribution (`CC` and `BCC`
//! headers): which keys the dead letter is routed by, what `x-death` records as its
//! routing keys, and what happens to the `CC` header.

use warren_protocol::methods::BasicReject;

use crate::harness::{Ctx, Res};
use crate::raw::{QFlags, Raw};
use crate::wire::{Props, Table, Val};

/// Headers routing a message by `k0` (its routing key, given at publish) and `k1`, `k2` (`CC`),
/// and `k3` (`BCC`), between two plain headers; the integer in `CC` is no key.
fn cc_bcc_headers() -> Table {
    Table::new()
        .with("before", Val::i32(1))
        .with("CC", Val::array(vec![Val::str("k1"), Val::i32(7), Val::str("k2")]))
        .with("BCC", Val::array(vec![Val::str("k3")]))
        .with("after", Val::str("x"))
}

/// Rejects (without requeue) the message at the head of `queue`.
async fn reject_head(c: &mut Raw, queue: &str) -> Res {
    let tag = c.get(1, queue, false).await?.delivery_tag()?;
    c.send(1, BasicReject { delivery_tag: tag, requeue: false }).await;
    Ok(())
}

/// Without `x-dead-letter-routing-key` the dead letter is routed by the message's routing key
/// and its `CC` keys, and `x-death` lists them (not the `BCC` key, removed at publish).
///
/// No queue is bound to the `BCC` key here: RabbitMQ routes the dead letter by it as well (the
/// message keeps every key it was published with), while Warren keeps no `BCC` keys once the
/// message is in a queue.
pub async fn dead_letter_cc_without_routing_key(cx: Ctx) -> Res {
    let x = cx.name("x");
    let q = cx.name("q");
    let dlx = cx.name("dlx");
    let targets: Vec<(String, &str)> = [("main", "k0"), ("cc1", "k1"), ("cc2", "k2"), ("other", "k9")]
        .into_iter()
        .map(|(suffix, key)| (cx.name(suffix), key))
        .collect();
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "direct").await?;
    c.exchange(1, &dlx, "direct").await?;
    for (queue, key) in &targets {
        c.queue(1, queue).await?;
        c.bind(1, queue, &dlx, key, Table::new()).await?;
    }
    c.declare_queue(1, &q, QFlags::default(), Table::new().with("x-dead-letter-exchange", Val::str(&dlx)))
        .await?;
    c.bind(1, &q, &x, "k0", Table::new()).await?;
    c.publish(1, &x, "k0", &Props::new().headers(cc_bcc_headers()).message_id("cc"), b"cc").await;
    reject_head(&mut c, &q).await?;
    for (queue, _) in &targets[..3] {
        c.await_count(1, queue, 1).await?;
    }
    for (queue, _) in &targets {
        c.drain(1, queue).await?;
    }
    c.close().await
}

/// With `x-dead-letter-routing-key` the dead letter is routed by that key alone (neither the
/// `CC` nor the `BCC` keys) and loses its `CC` header; `x-death` still lists the routing and
/// `CC` keys it was published with.
pub async fn dead_letter_cc_with_routing_key(cx: Ctx) -> Res {
    let x = cx.name("x");
    let q = cx.name("q");
    let dlx = cx.name("dlx");
    let targets: Vec<(String, &str)> = [("main", "k0"), ("cc1", "k1"), ("bcc", "k3"), ("dlrk", "k9")]
        .into_iter()
        .map(|(suffix, key)| (cx.name(suffix), key))
        .collect();
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "direct").await?;
    c.exchange(1, &dlx, "direct").await?;
    for (queue, key) in &targets {
        c.queue(1, queue).await?;
        c.bind(1, queue, &dlx, key, Table::new()).await?;
    }
    let args = Table::new()
        .with("x-dead-letter-exchange", Val::str(&dlx))
        .with("x-dead-letter-routing-key", Val::str("k9"));
    c.declare_queue(1, &q, QFlags::default(), args).await?;
    c.bind(1, &q, &x, "k0", Table::new()).await?;
    c.publish(1, &x, "k0", &Props::new().headers(cc_bcc_headers()).message_id("cc"), b"cc").await;
    reject_head(&mut c, &q).await?;
    c.await_count(1, &targets[3].0, 1).await?;
    for (queue, _) in &targets {
        c.drain(1, queue).await?;
    }
    c.close().await
}

/// A message rejected around two queues twice: q1 dead-letters to a direct exchange where only
/// a `CC` key reaches q2, and q2 dead-letters back to the exchange the message was published
/// to, where its routing key reaches q1 again. Each `x-death` entry keeps the routing keys of
/// its first death and counts the later ones (an entry added to the history is sorted by key).
/// No queue is bound to the `BCC` key (see `dead_letter_cc_without_routing_key`).
pub async fn dead_letter_cc_rejected_twice(cx: Ctx) -> Res {
    let x = cx.name("x");
    let dlx = cx.name("dlx");
    let q1 = cx.name("q1");
    let q2 = cx.name("q2");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &x, "direct").await?;
    c.exchange(1, &dlx, "direct").await?;
    c.declare_queue(1, &q1, QFlags::default(), Table::new().with("x-dead-letter-exchange", Val::str(&dlx)))
        .await?;
    c.declare_queue(1, &q2, QFlags::default(), Table::new().with("x-dead-letter-exchange", Val::str(&x)))
        .await?;
    c.bind(1, &q1, &x, "k0", Table::new()).await?;
    c.bind(1, &q2, &dlx, "k1", Table::new()).await?;
    let headers = Table::new()
        .with("CC", Val::array(vec![Val::str("k1")]))
        .with("BCC", Val::array(vec![Val::str("k3")]));
    c.publish(1, &x, "k0", &Props::new().headers(headers).message_id("twice"), b"twice").await;
    reject_head(&mut c, &q1).await?;
    c.await_count(1, &q2, 1).await?;
    reject_head(&mut c, &q2).await?;
    c.await_count(1, &q1, 1).await?;
    reject_head(&mut c, &q1).await?;
    c.await_count(1, &q2, 1).await?;
    reject_head(&mut c, &q2).await?;
    c.await_count(1, &q1, 1).await?;
    c.drain(1, &q1).await?;
    c.drain(1, &q2).await?;
    c.close().await
}
