//! queue.declare / bind / unbind / purge / delete.

use crate::common::*;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions { passive: true, ..Default::default() }
}

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions { exclusive: true, ..Default::default() }
}

fn locked_text(q: &str) -> String {
    format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. \
         It could be originally declared on another connection or the exclusive property value \
         does not match that of the original declaration."
    )
}

fn no_queue(q: &str) -> String {
    format!("NOT_FOUND - no queue '{q}' in vhost '/'")
}

/// Polls (on fresh channels) until a passive declare of `q` fails with 404.
async fn wait_queue_gone(c: &Client, q: &str) {
    eventually(&format!("queue {q} deleted"), || async {
        let ch = c.channel().await;
        match ch.queue_declare(q.into(), passive(), FieldTable::default()).await {
            Err(e) => match amqp_error(&e).expect("amqp error") {
                (404, text) => {
                    assert_eq!(text, no_queue(q));
                    Some(())
                }
                // still owned by a connection that is going away
                (405, _) => None,
                other => panic!("unexpected error {other:?}"),
            },
            Ok(_) => None,
        }
    })
    .await
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
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange}: {e:?}"));
}

#[tokio::test]
async fn server_named_queue_and_declare_ok_counts() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = within(ch.queue_declare("".into(), exclusive(), FieldTable::default())).await.unwrap();
    let name = q.name().to_string();
    assert!(name.starts_with("amq.gen-"), "server-named queue {name}");
    assert_eq!(name.len(), "amq.gen-".len() + 22, "name {name}");
    assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    // another server-named queue gets a different name
    let q2 = within(ch.queue_declare("".into(), exclusive(), FieldTable::default())).await.unwrap();
    assert_ne!(q2.name().as_str(), name);

    for i in 0..3 {
        publish(&ch, "", &name, format!("m{i}").as_bytes()).await;
    }
    wait_message_count(&ch, &name, 3).await;
    let q = within(ch.queue_declare(name.as_str().into(), passive(), FieldTable::default())).await.unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (3, 0));

    // a consumer with prefetch 1 takes one message; the count reports ready
    // messages only
    let ch2 = c.channel().await;
    within(ch2.basic_qos(1, BasicQosOptions::default())).await.unwrap();
    let mut consumer = within(ch2.basic_consume(
        name.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"m0");
    wait_message_count(&ch, &name, 2).await;
    let q = within(ch.queue_declare(name.as_str().into(), passive(), FieldTable::default())).await.unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (2, 1));
}

#[tokio::test]
async fn redeclare_of_server_named_queue_is_403() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = within(ch.queue_declare("".into(), exclusive(), FieldTable::default())).await.unwrap();
    let name = q.name().to_string();
    // passive is fine
    within(ch.queue_declare(name.as_str().into(), passive(), FieldTable::default())).await.unwrap();
    // an active declare with the amq. prefix is refused even if it exists
    assert_err(
        ch.queue_declare(name.as_str().into(), exclusive(), FieldTable::default()),
        403,
        &format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'"),
    )
    .await;
    let ch = c.channel().await;
    let other = format!("amq.{}", uniq("q"));
    assert_err(
        ch.queue_declare(other.as_str().into(), Default::default(), FieldTable::default()),
        403,
        &format!("ACCESS_REFUSED - queue name '{other}' contains reserved prefix 'amq.*'"),
    )
    .await;
}

#[tokio::test]
async fn passive_declare_of_missing_queue_is_404() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-missing");
    assert_err(ch.queue_declare(q.as_str().into(), passive(), FieldTable::default()), 404, &no_queue(&q))
        .await;
}

#[tokio::test]
async fn redeclare_with_inequivalent_flags_is_406() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-ineq");
    declare_queue(&ch, &q).await;
    // identical redeclare is fine
    declare_queue(&ch, &q).await;
    for (field, opts) in [
        ("durable", QueueDeclareOptions { durable: true, ..Default::default() }),
        ("auto_delete", QueueDeclareOptions { auto_delete: true, ..Default::default() }),
    ] {
        let ch = c.channel().await;
        assert_err(
            ch.queue_declare(q.as_str().into(), opts, FieldTable::default()),
            406,
            &format!(
                "PRECONDITION_FAILED - inequivalent arg '{field}' for queue '{q}' in vhost '/': \
                 received 'true' but current is 'false'"
            ),
        )
        .await;
    }
    // exclusive mismatch on a non-exclusive queue is reported as locked
    let ch = c.channel().await;
    assert_err(
        ch.queue_declare(q.as_str().into(), exclusive(), FieldTable::default()),
        405,
        &locked_text(&q),
    )
    .await;
    // passive ignores the flags
    let ch = c.channel().await;
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions { passive: true, durable: true, auto_delete: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn redeclare_with_inequivalent_arguments_is_406() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let plain = uniq("q-args-plain");
    declare_queue(&ch, &plain).await;
    let mut ttl = FieldTable::default();
    ttl.insert("x-message-ttl".into(), AMQPValue::LongInt(2000));
    assert_err(
        ch.queue_declare(plain.as_str().into(), Default::default(), ttl),
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{plain}' in vhost \
             '/': received the value '2000' of type 'signedint' but current is none"
        ),
    )
    .await;

    let ch = c.channel().await;
    let limited = uniq("q-args-maxlen");
    let mut ten = FieldTable::default();
    ten.insert("x-max-length".into(), AMQPValue::LongInt(10));
    within(ch.queue_declare(limited.as_str().into(), Default::default(), ten.clone())).await.unwrap();
    within(ch.queue_declare(limited.as_str().into(), Default::default(), ten))
        .await
        .expect("equivalent redeclare");
    let mut twenty = FieldTable::default();
    twenty.insert("x-max-length".into(), AMQPValue::LongInt(20));
    assert_err(
        ch.queue_declare(limited.as_str().into(), Default::default(), twenty),
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{limited}' in \
             vhost '/': received '20' but current is '10'"
        ),
    )
    .await;
    let ch = c.channel().await;
    assert_err(
        ch.queue_declare(limited.as_str().into(), Default::default(), FieldTable::default()),
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{limited}' in \
             vhost '/': received none but current is the value '10' of type 'signedint'"
        ),
    )
    .await;
}

#[tokio::test]
async fn exclusive_queue_is_locked_for_other_connections() {
    let b = Broker::start().await;
    let owner = b.connect().await;
    let other = b.connect().await;
    let och = owner.channel().await;
    let q = uniq("q-excl");
    within(och.queue_declare(q.as_str().into(), exclusive(), FieldTable::default())).await.unwrap();
    // the owner can use it freely
    within(och.queue_declare(q.as_str().into(), exclusive(), FieldTable::default())).await.unwrap();
    within(och.queue_declare(q.as_str().into(), passive(), FieldTable::default())).await.unwrap();

    let text = locked_text(&q);
    let ch = other.channel().await;
    assert_err(ch.queue_declare(q.as_str().into(), exclusive(), FieldTable::default()), 405, &text).await;
    let ch = other.channel().await;
    assert_err(ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default()), 405, &text)
        .await;
    let ch = other.channel().await;
    assert_err(ch.queue_declare(q.as_str().into(), passive(), FieldTable::default()), 405, &text).await;
    let ch = other.channel().await;
    assert_err(
        ch.basic_consume(q.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()),
        405,
        &text,
    )
    .await;
    let ch = other.channel().await;
    assert_err(ch.basic_get(q.as_str().into(), Default::default()), 405, &text).await;
    let ch = other.channel().await;
    assert_err(ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default()), 405, &text).await;
    let ch = other.channel().await;
    assert_err(
        ch.queue_bind(
            q.as_str().into(),
            "amq.fanout".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        405,
        &text,
    )
    .await;
    let ch = other.channel().await;
    assert_err(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()), 405, &text).await;
    // publishing into it from another connection is allowed
    let ch = other.channel().await;
    publish(&ch, "", &q, b"from other").await;
    wait_message_count(&och, &q, 1).await;
    assert_eq!(bodies(&drain(&och, &q).await), vec!["from other"]);
}

#[tokio::test]
async fn exclusive_queue_is_deleted_when_its_connection_closes() {
    let b = Broker::start().await;
    let owner = b.connect().await;
    let observer = b.connect().await;
    let ch = owner.channel().await;
    let q = uniq("q-excl-close");
    within(ch.queue_declare(q.as_str().into(), exclusive(), FieldTable::default())).await.unwrap();
    publish(&ch, "", &q, b"lost").await;
    wait_message_count(&ch, &q, 1).await;
    owner.close().await;
    wait_queue_gone(&observer, &q).await;
    // the name is free again
    let ch = observer.channel().await;
    let ok = within(ch.queue_declare(q.as_str().into(), exclusive(), FieldTable::default())).await.unwrap();
    assert_eq!(ok.message_count(), 0);
}

#[tokio::test]
async fn auto_delete_queue_is_deleted_after_last_consumer_cancels() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-autodel");
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions { auto_delete: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    // without ever having had a consumer it stays
    publish(&ch, "", &q, b"x").await;
    wait_message_count(&ch, &q, 1).await;

    let c1 = within(ch.basic_consume(
        q.as_str().into(),
        "c1".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let c2 = within(ch.basic_consume(
        q.as_str().into(),
        "c2".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    within(ch.basic_cancel("c1".into(), BasicCancelOptions::default())).await.unwrap();
    // one consumer left: still there
    let ok = within(ch.queue_declare(q.as_str().into(), passive(), FieldTable::default())).await.unwrap();
    assert_eq!(ok.consumer_count(), 1);
    within(ch.basic_cancel("c2".into(), BasicCancelOptions::default())).await.unwrap();
    drop((c1, c2));
    wait_queue_gone(&c, &q).await;
}

#[tokio::test]
async fn bind_to_missing_exchange_or_queue_is_404() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-bind");
    let x = uniq("x-bind");
    let missing_q = uniq("q-nope");
    let missing_x = uniq("x-nope");
    declare_queue(&ch, &q).await;
    within(ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    assert_err(
        ch.queue_bind(
            q.as_str().into(),
            missing_x.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        404,
        &format!("NOT_FOUND - no exchange '{missing_x}' in vhost '/'"),
    )
    .await;
    let ch = c.channel().await;
    assert_err(
        ch.queue_bind(
            missing_q.as_str().into(),
            x.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        404,
        &no_queue(&missing_q),
    )
    .await;
    // both missing: the exchange is reported
    let ch = c.channel().await;
    assert_err(
        ch.queue_bind(
            missing_q.as_str().into(),
            missing_x.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        404,
        &format!("NOT_FOUND - no exchange '{missing_x}' in vhost '/'"),
    )
    .await;
}

#[tokio::test]
async fn unbind_is_idempotent_even_for_missing_objects() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-unbind");
    let x = uniq("x-unbind");
    declare_queue(&ch, &q).await;
    within(ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    bind(&ch, &q, &x, "k").await;
    // binding twice is a no-op (one delivery per message)
    bind(&ch, &q, &x, "k").await;
    publish(&ch, &x, "k", b"bound").await;
    wait_message_count(&ch, &q, 1).await;
    for (queue, exchange, key) in [
        (q.clone(), x.clone(), "k"),
        (q.clone(), x.clone(), "k"),
        (q.clone(), x.clone(), "never-bound"),
        (uniq("q-nope"), x.clone(), "k"),
        (q.clone(), uniq("x-nope"), "k"),
    ] {
        within(ch.queue_unbind(
            queue.as_str().into(),
            exchange.as_str().into(),
            key.into(),
            FieldTable::default(),
        ))
        .await
        .unwrap_or_else(|e| panic!("unbind {queue} from {exchange}/{key}: {e:?}"));
    }
    publish(&ch, &x, "k", b"unbound").await;
    publish(&ch, "", &q, b"marker").await;
    wait_message_count(&ch, &q, 2).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["bound", "marker"]);
}

#[tokio::test]
async fn purge_returns_count_and_keeps_unacked() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-purge");
    declare_queue(&ch, &q).await;
    for i in 0..5 {
        publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
    }
    wait_message_count(&ch, &q, 5).await;
    // take one unacked
    let held = get(&ch, &q).await.expect("message");
    let n = within(ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())).await.unwrap();
    assert_eq!(n, 4);
    assert_eq!(message_count(&ch, &q).await, 0);
    let n = within(ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())).await.unwrap();
    assert_eq!(n, 0);
    // the unacked one comes back when rejected
    within(ch.basic_reject(held.delivery.delivery_tag, lapin::options::BasicRejectOptions { requeue: true }))
        .await
        .unwrap();
    wait_message_count(&ch, &q, 1).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["m0"]);
    // purge of a missing queue
    let missing = uniq("q-nope");
    assert_err(
        ch.queue_purge(missing.as_str().into(), QueuePurgeOptions::default()),
        404,
        &no_queue(&missing),
    )
    .await;
}

#[tokio::test]
async fn delete_if_empty_and_if_unused() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-del-cond");
    declare_queue(&ch, &q).await;
    publish(&ch, "", &q, b"x").await;
    wait_message_count(&ch, &q, 1).await;
    assert_err(
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions { if_empty: true, ..Default::default() }),
        406,
        &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"),
    )
    .await;
    let ch = c.channel().await;
    let _consumer = within(ch.basic_consume(
        q.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let ch2 = c.channel().await;
    assert_err(
        ch2.queue_delete(q.as_str().into(), QueueDeleteOptions { if_unused: true, ..Default::default() }),
        406,
        &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"),
    )
    .await;
    // an empty, unused queue can be deleted conditionally
    let ch3 = c.channel().await;
    let q2 = uniq("q-del-ok");
    declare_queue(&ch3, &q2).await;
    let n = within(ch3.queue_delete(
        q2.as_str().into(),
        QueueDeleteOptions { if_empty: true, if_unused: true, ..Default::default() },
    ))
    .await
    .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn delete_returns_message_count_and_missing_is_ok() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-del-count");
    declare_queue(&ch, &q).await;
    for i in 0..7 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    wait_message_count(&ch, &q, 7).await;
    let n = within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())).await.unwrap();
    assert_eq!(n, 7);
    // deleting a missing queue succeeds with 0 in RabbitMQ 3.10
    let n = within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())).await.unwrap();
    assert_eq!(n, 0);
    assert_err(ch.queue_declare(q.as_str().into(), passive(), FieldTable::default()), 404, &no_queue(&q))
        .await;
}

#[tokio::test]
async fn delete_removes_its_bindings() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-del-bind");
    declare_queue(&ch, &q).await;
    bind(&ch, &q, "amq.direct", &q).await;
    within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())).await.unwrap();
    declare_queue(&ch, &q).await;
    publish(&ch, "amq.direct", &q, b"old binding").await;
    publish(&ch, "", &q, b"marker").await;
    wait_message_count(&ch, &q, 1).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["marker"]);
}

#[tokio::test]
async fn durable_queue_declare_and_delete() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-durable");
    let ok = within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    assert_eq!(ok.name().as_str(), q);
    within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())).await.unwrap();
}
