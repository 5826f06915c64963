//! Scenarios through lapin, as applications see the broker: what the
//! library reports (results, deliveries, confirmations, asynchronous
//! errors).

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, ExchangeKind};

use crate::harness::{within, Abort, Ctx, Res};
use crate::lapin_client::{delivery_line, outcome, Lapin};

fn props_line(p: &BasicProperties) -> String {
    format!(
        "content_type={:?} delivery_mode={:?} priority={:?} message_id={:?} headers={:?}",
        p.content_type().as_ref().map(|s| s.as_str().to_string()),
        p.delivery_mode(),
        p.priority(),
        p.message_id().as_ref().map(|s| s.as_str().to_string()),
        p.headers()
            .as_ref()
            .map(|h| { h.inner().iter().map(|(k, v)| format!("{}={v:?}", k.as_str())).collect::<Vec<_>>() })
    )
}

/// Declare, bind, publish with properties, consume, ack, cancel.
pub async fn lapin_publish_consume_ack(cx: Ctx) -> Res {
    let x = cx.name("x");
    let q = cx.name("q");
    let c = Lapin::connect(&cx, "c1").await?;
    let ch = c.channel().await?;
    let r = ch
        .exchange_declare(x.as_str().into(), ExchangeKind::Topic, Default::default(), FieldTable::default())
        .await;
    c.note("exchange.declare", r)?;
    let r = ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default()).await;
    c.note("queue.declare", r)?;
    let r = ch
        .queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            "a.#".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await;
    c.note("queue.bind", r)?;
    let mut headers = FieldTable::default();
    headers.insert("k".into(), AMQPValue::LongString("v".into()));
    headers.insert("n".into(), AMQPValue::LongInt(42));
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_delivery_mode(2)
        .with_priority(3)
        .with_message_id("lapin-1".into())
        .with_headers(headers);
    for key in ["a", "a.b.c", "b.a"] {
        let r = within(
            "publish",
            ch.basic_publish(
                x.as_str().into(),
                key.into(),
                Default::default(),
                key.as_bytes(),
                props.clone(),
            ),
        )
        .await?;
        c.note(&format!("publish {key}"), r)?;
    }
    let mut consumer = within(
        "consume",
        ch.basic_consume(
            q.as_str().into(),
            "lapin-consumer".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await??;
    c.log(format!("consumer tag {}", consumer.tag().as_str()));
    for _ in 0..2 {
        let d = c.next_delivery(&mut consumer).await?;
        c.log(props_line(&d.properties));
        let r = within("ack", d.acker.ack(BasicAckOptions::default())).await?;
        c.note("ack", r)?;
    }
    let r = within("cancel", ch.basic_cancel(consumer.tag(), Default::default())).await?;
    c.note("cancel", r)?;
    let r = within(
        "passive",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await?
    .map(|q| (q.message_count(), q.consumer_count()));
    c.log(format!("passive: {} {:?}", outcome(&r), r.ok()));
    c.close().await
}

/// Publisher confirms through lapin: acks, a returned mandatory message,
/// wait_for_confirms.
pub async fn lapin_confirms_and_returns(cx: Ctx) -> Res {
    let q = cx.name("q");
    let c = Lapin::connect(&cx, "c1").await?;
    let ch = c.channel().await?;
    c.note("confirm.select", within("confirm", ch.confirm_select(Default::default())).await?)?;
    c.note(
        "queue.declare",
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default()).await,
    )?;
    let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
    for (rk, body) in [(q.as_str(), "routed"), ("dt-nowhere", "returned")] {
        let confirm = within(
            "publish",
            ch.basic_publish("".into(), rk.into(), mandatory, body.as_bytes(), BasicProperties::default()),
        )
        .await??;
        let conf = within("confirm", confirm).await??;
        let ack = conf.is_ack();
        let returned = match conf.take_message() {
            Some(m) => {
                format!(
                    "returned {} {} body={:?}",
                    m.reply_code,
                    m.reply_text.as_str(),
                    String::from_utf8_lossy(&m.delivery.data)
                )
            }
            None => "not returned".to_string(),
        };
        c.log(format!("publish {body}: ack={ack} {returned}"));
    }
    for i in 0..5 {
        within(
            "publish",
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                Default::default(),
                format!("b{i}").as_bytes(),
                BasicProperties::default(),
            ),
        )
        .await??;
    }
    let r = within("wait_for_confirms", ch.wait_for_confirms()).await?.map(|v| v.len());
    c.log(format!("wait_for_confirms: {} returned={:?}", outcome(&r), r.ok()));
    let r = within(
        "passive",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await?
    .map(|q| q.message_count());
    c.log(format!("passive: {} {:?}", outcome(&r), r.ok()));
    c.close().await
}

/// A consumer whose queue is deleted sees its stream end (server-sent
/// basic.cancel), and the channel keeps working.
pub async fn lapin_consumer_cancelled_by_server(cx: Ctx) -> Res {
    let q = cx.name("q");
    let c = Lapin::connect(&cx, "c1").await?;
    let ch = c.channel().await?;
    let other = c.channel().await?;
    c.note(
        "queue.declare",
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default()).await,
    )?;
    let mut consumer = within(
        "consume",
        ch.basic_consume(
            q.as_str().into(),
            "doomed".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await??;
    within(
        "publish",
        other.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"last words",
            BasicProperties::default(),
        ),
    )
    .await??;
    c.next_delivery(&mut consumer).await?;
    let r = within("delete", other.queue_delete(q.as_str().into(), Default::default())).await?;
    c.note("queue.delete", r)?;
    let end = within("consumer end", consumer.next()).await?;
    c.log(format!(
        "consumer stream after delete: {}",
        match end {
            None => "ended".to_string(),
            Some(Ok(d)) => delivery_line(&d),
            Some(Err(e)) => format!("error {}", crate::lapin_client::describe_error(&e)),
        }
    ));
    let r = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
    c.log(format!("channel still usable: {}", outcome(&r)));
    c.close().await
}

/// Asynchronous channel errors as lapin reports them: ack of an unknown
/// tag (406), publish to a missing exchange (404).
pub async fn lapin_async_channel_errors(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Lapin::connect(&cx, "c1").await?;
    let ch = c.channel().await?;
    c.note(
        "queue.declare",
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default()).await,
    )?;
    within(
        "publish",
        ch.basic_publish("".into(), q.as_str().into(), Default::default(), b"m", BasicProperties::default()),
    )
    .await??;
    let m = within("get", ch.basic_get(q.as_str().into(), Default::default())).await??;
    let m = m.ok_or_else(|| Abort("get-empty".into()))?;
    c.log(delivery_line(&m.delivery));
    let r = within("ack", ch.basic_ack(m.delivery.delivery_tag + 10, Default::default())).await?;
    c.note("ack unknown tag (sent)", r)?;
    c.next_error().await?;
    let ch2 = c.channel().await?;
    let r = within(
        "publish",
        ch2.basic_publish(
            ShortString::from(cx.name("missing")),
            "k".into(),
            Default::default(),
            b"x",
            BasicProperties::default(),
        ),
    )
    .await?;
    c.note("publish to missing exchange (sent)", r)?;
    c.next_error().await?;
    let ch3 = c.channel().await?;
    // the message got with ch (closed by the error) is requeued
    c.await_count(&ch3, &q, 1).await?;
    c.close().await
}

/// Transactions through lapin.
pub async fn lapin_transactions(cx: Ctx) -> Res {
    let q = cx.name("q");
    let c = Lapin::connect(&cx, "c1").await?;
    let ch = c.channel().await?;
    let probe = c.channel().await?;
    c.note(
        "queue.declare",
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default()).await,
    )?;
    c.note("tx.select", within("tx.select", ch.tx_select()).await?)?;
    let count = |probe: lapin::Channel, q: String| async move {
        within(
            "passive",
            probe.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            ),
        )
        .await
        .map(|r| r.map(|q| q.message_count()))
    };
    within(
        "publish",
        ch.basic_publish("".into(), q.as_str().into(), Default::default(), b"t", BasicProperties::default()),
    )
    .await??;
    c.log(format!("count before commit: {:?}", count(probe.clone(), q.clone()).await?.ok()));
    c.note("tx.commit", within("tx.commit", ch.tx_commit()).await?)?;
    c.await_count(&probe, &q, 1).await?;
    within(
        "publish",
        ch.basic_publish("".into(), q.as_str().into(), Default::default(), b"r", BasicProperties::default()),
    )
    .await??;
    c.note("tx.rollback", within("tx.rollback", ch.tx_rollback()).await?)?;
    c.log(format!("count after rollback: {:?}", count(probe.clone(), q.clone()).await?.ok()));
    let r = within("confirm.select", ch.confirm_select(Default::default())).await?;
    c.note("confirm.select on tx channel", r).ok();
    c.close().await
}
