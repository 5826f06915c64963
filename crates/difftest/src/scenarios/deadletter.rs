//! Dead-lettering (x-death headers) and message TTL.

use crate::harness::{Ctx, Res};
use crate::raw::{QFlags, Raw};
use crate::wire::{Props, Table, Val};

/// A queue dead-lettering to `dlx` (fanout) which feeds `dlq`.
async fn setup(c: &mut Raw, q: &str, dlx: &str, dlq: &str, extra: Table) -> Res {
    c.exchange(1, dlx, "fanout").await?;
    c.queue(1, dlq).await?;
    c.bind(1, dlq, dlx, "", Table::new()).await?;
    c.declare_queue(1, q, QFlags::default(), extra).await?;
    Ok(())
}

/// reject / nack with requeue=false dead-letter with an x-death header
/// (count, reason, queue, exchange, routing-keys; time normalized) and
/// x-first-death-*; the original properties are kept byte for byte.
pub async fn dead_letter_on_reject(cx: Ctx) -> Res {
    let q = cx.name("q");
    let dlx = cx.name("dlx");
    let dlq = cx.name("dlq");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    setup(&mut c, &q, &dlx, &dlq, Table::new().with("x-dead-letter-exchange", Val::str(&dlx))).await?;
    let props = Props::new()
        .content_type("text/plain")
        .headers(Table::new().with("app", Val::str("kept")).with("n", Val::i32(1)))
        .delivery_mode(2)
        .message_id("dl-1")
        .timestamp(1_600_000_000);
    c.publish(1, "", &q, &props, b"rejected").await;
    c.publish(1, "", &q, &Props::new(), b"nacked").await;
    c.publish(1, "", &q, &Props::new().expiration("60000"), b"nacked with expiration").await;
    let t1 = c.get(1, &q, false).await?.delivery_tag()?;
    c.send(1, warren_protocol::methods::BasicReject { delivery_tag: t1, requeue: false }).await;
    c.get(1, &q, false).await?;
    let t3 = c.get(1, &q, false).await?.delivery_tag()?;
    c.send(1, warren_protocol::methods::BasicNack { delivery_tag: t3, multiple: true, requeue: false }).await;
    c.await_count(1, &dlq, 3).await?;
    c.drain(1, &dlq).await?;
    c.close().await
}

/// Dead-lettering twice through the same queue increments x-death count;
/// x-dead-letter-routing-key replaces the routing key.
pub async fn dead_letter_twice_and_routing_key(cx: Ctx) -> Res {
    let q = cx.name("q");
    let dlx = cx.name("dlx");
    let dlq = cx.name("dlq");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &dlx, "direct").await?;
    c.queue(1, &dlq).await?;
    // the dead-letter queue routes back to q by its routing key
    c.bind(1, &dlq, &dlx, "to-dlq", Table::new()).await?;
    let args = Table::new()
        .with("x-dead-letter-exchange", Val::str(&dlx))
        .with("x-dead-letter-routing-key", Val::str("to-dlq"));
    c.declare_queue(1, &q, QFlags::default(), args).await?;
    c.publish(1, "", &q, &Props::new().headers(Table::new().with("h", Val::bool(true))), b"twice").await;
    let t = c.get(1, &q, false).await?.delivery_tag()?;
    c.send(1, warren_protocol::methods::BasicReject { delivery_tag: t, requeue: false }).await;
    c.await_count(1, &dlq, 1).await?;
    // move it back to q by hand, keeping its headers (as received)
    let m = c.get(1, &dlq, true).await?;
    let content = m.content.clone().ok_or_else(|| crate::harness::Abort("no content".into()))?;
    let p = warren_protocol::methods::BasicPublish {
        exchange: "".into(),
        routing_key: q.as_str().into(),
        ..Default::default()
    };
    c.publish_raw(1, p, &content.props, &content.body).await;
    let t = c.get(1, &q, false).await?.delivery_tag()?;
    c.send(1, warren_protocol::methods::BasicReject { delivery_tag: t, requeue: false }).await;
    c.await_count(1, &dlq, 1).await?;
    c.get(1, &dlq, true).await?;
    c.close().await
}

/// Queue TTL (x-message-ttl) and per-message expiration dead-letter with
/// reason expired; the expiration property is removed and recorded as
/// original-expiration.
pub async fn dead_letter_on_expiry(cx: Ctx) -> Res {
    let q = cx.name("q");
    let q2 = cx.name("q2");
    let dlx = cx.name("dlx");
    let dlq = cx.name("dlq");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let args = Table::new().with("x-dead-letter-exchange", Val::str(&dlx)).with("x-message-ttl", Val::i32(0));
    setup(&mut c, &q, &dlx, &dlq, args).await?;
    c.publish(1, "", &q, &Props::new().message_id("queue-ttl"), b"expires by queue ttl").await;
    c.await_count(1, &dlq, 1).await?;
    c.get(1, &dlq, true).await?;
    let args = Table::new().with("x-dead-letter-exchange", Val::str(&dlx));
    c.declare_queue(1, &q2, QFlags::default(), args).await?;
    c.publish(1, "", &q2, &Props::new().expiration("0").message_id("msg-ttl"), b"expires by expiration")
        .await;
    c.await_count(1, &dlq, 1).await?;
    c.get(1, &dlq, true).await?;
    c.passive(1, &q).await?;
    c.passive(1, &q2).await?;
    c.close().await
}

/// x-max-length with the default overflow (drop-head) dead-letters the
/// oldest message with reason maxlen.
pub async fn dead_letter_on_max_length(cx: Ctx) -> Res {
    let q = cx.name("q");
    let dlx = cx.name("dlx");
    let dlq = cx.name("dlq");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let args = Table::new().with("x-dead-letter-exchange", Val::str(&dlx)).with("x-max-length", Val::i32(2));
    setup(&mut c, &q, &dlx, &dlq, args).await?;
    for i in 0..4 {
        c.publish(1, "", &q, &Props::new(), format!("m{i}").as_bytes()).await;
    }
    c.await_count(1, &dlq, 2).await?;
    c.drain(1, &q).await?;
    c.drain(1, &dlq).await?;
    c.close().await
}

/// Message TTL without dead-lettering: expired messages are dropped, live
/// ones keep their expiration property; invalid expirations are refused.
pub async fn message_ttl(cx: Ctx) -> Res {
    let q = cx.name("q");
    let ttlq = cx.name("ttlq");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    c.publish(1, "", &q, &Props::new().expiration("0"), b"expired at once").await;
    c.publish(1, "", &q, &Props::new().expiration("600000"), b"lives").await;
    c.await_count(1, &q, 1).await?;
    c.get(1, &q, true).await?;
    c.declare_queue(1, &ttlq, QFlags::default(), Table::new().with("x-message-ttl", Val::i32(0))).await?;
    c.publish(1, "", &ttlq, &Props::new(), b"queue ttl 0").await;
    c.await_count(1, &ttlq, 0).await?;
    c.get(1, &ttlq, true).await?;
    // a consumer that is ready gets even a ttl-0 message
    c.consume(1, &ttlq, "ready", true).await?;
    c.publish(1, "", &ttlq, &Props::new(), b"delivered before expiry").await;
    c.recv(1).await?;
    for bad in ["-1", "abc", "1.5", ""] {
        c.publish(1, "", &q, &Props::new().expiration(bad), b"bad expiration").await;
        c.recv(1).await?;
        c.open(1).await?;
    }
    c.close().await
}

/// x-delivery-limit, which RabbitMQ 3.10 has on quorum queues: each return of a delivery adds
/// to the x-delivery-count header of the next one, and the return past the limit dead-letters
/// the message with reason delivery_limit.
pub async fn delivery_limit_dead_letters(cx: Ctx) -> Res {
    let q = cx.name("q");
    let dlx = cx.name("dlx");
    let dlq = cx.name("dlq");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.exchange(1, &dlx, "fanout").await?;
    c.queue(1, &dlq).await?;
    c.bind(1, &dlq, &dlx, "", Table::new()).await?;
    let args = Table::new()
        .with("x-queue-type", Val::str("quorum"))
        .with("x-delivery-limit", Val::i32(2))
        .with("x-dead-letter-exchange", Val::str(&dlx));
    c.declare_queue(1, &q, QFlags { durable: true, ..QFlags::default() }, args).await?;
    c.publish(1, "", &q, &Props::new().message_id("poison-1").delivery_mode(2), b"poison").await;
    for _ in 0..3 {
        // A quorum queue applies a return asynchronously: wait until the message is ready again.
        c.await_count(1, &q, 1).await?;
        let tag = c.get(1, &q, false).await?.delivery_tag()?;
        c.send(1, warren_protocol::methods::BasicNack { delivery_tag: tag, multiple: false, requeue: true })
            .await;
    }
    c.await_count(1, &dlq, 1).await?;
    c.drain(1, &dlq).await?;
    c.get(1, &q, true).await?;
    c.call(1, warren_protocol::methods::QueueDelete { queue: q.as_str().into(), ..Default::default() })
        .await?;
    c.close().await
}
