//! The plugin exchange types over the wire: `x-consistent-hash` and `x-delayed-message`,
//! including what a restart (graceful or a crash) brings back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::durable::{DurableBroker, Stop};
use crate::common::*;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn longstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn delayed_args(kind: &str) -> FieldTable {
    table(&[("x-delayed-type", longstr(kind))])
}

fn with_delay(ms: i32) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(table(&[("x-delay", AMQPValue::LongInt(ms))]))
}

async fn declare_x(
    ch: &Channel,
    name: &str,
    kind: &str,
    durable: bool,
    args: FieldTable,
) -> lapin::Result<()> {
    within(ch.exchange_declare(
        name.into(),
        ExchangeKind::Custom(kind.to_owned()),
        ExchangeDeclareOptions { durable, ..Default::default() },
        args,
    ))
    .await
}

async fn durable_queue(ch: &Channel, name: &str) {
    within(ch.queue_declare(
        name.into(),
        QueueDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap_or_else(|e| panic!("declare queue {name}: {e:?}"));
}

/// Which queue each body is in (draining them).
async fn placement(ch: &Channel, queues: &[&str]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for q in queues {
        for body in drain(ch, q).await {
            out.insert(text(&body), (*q).to_owned());
        }
    }
    out
}

#[tokio::test]
async fn declare_errors_are_those_of_the_plugins() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    let x = uniq("dx");
    declare_x(&ch, &x, "x-delayed-message", false, FieldTable::default()).await.unwrap_err();
    c.assert_next_error(
        406,
        "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type",
    )
    .await;
    let ch = c.channel().await;
    let x = uniq("chx");
    declare_x(&ch, &x, "x-consistent-hash", false, FieldTable::default()).await.unwrap();
    let q = uniq("q");
    declare_queue(&ch, &q).await;
    let bound = within(ch.queue_bind(
        q.as_str().into(),
        x.as_str().into(),
        "heavy".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;
    assert!(bound.is_err());
    c.assert_next_error(406, "PRECONDITION_FAILED - The binding key must be an integer: <<\"heavy\">>").await;
}

/// A mandatory delayed message is returned at once (the exchange routes it nowhere yet) and
/// still delivered after its delay, as with the plugin.
#[tokio::test]
async fn mandatory_delayed_messages_are_returned_and_still_delivered() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    let x = uniq("dx");
    declare_x(&ch, &x, "x-delayed-message", false, delayed_args("direct")).await.unwrap();
    let q = uniq("q");
    declare_queue(&ch, &q).await;
    within(ch.queue_bind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    match confirmed(&ch, &x, "k", b"later", with_delay(200), true).await {
        Confirmation::Ack(Some(r)) => assert_eq!(r.reply_code, 312),
        other => panic!("expected the message back with the ack, got {other:?}"),
    }
    assert_eq!(message_count(&ch, &q).await, 0);
    wait_message_count(&ch, &q, 1).await;
    assert_eq!(bodies(&drain(&ch, &q).await), ["later"]);
}

async fn plugin_exchanges_survive_a_restart(how: Stop) {
    let mut b = DurableBroker::start(&[]).await;
    let queues = ["ch-a", "ch-b", "ch-c"];
    let keys: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    let (before, published_at) = {
        let c = b.connect().await;
        let ch = c.channel().await;
        within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
        declare_x(&ch, "chx", "x-consistent-hash", true, FieldTable::default()).await.unwrap();
        for (q, w) in queues.iter().zip(["1", "2", "3"]) {
            durable_queue(&ch, q).await;
            within(ch.queue_bind(
                (*q).into(),
                "chx".into(),
                w.into(),
                Default::default(),
                FieldTable::default(),
            ))
            .await
            .unwrap();
        }
        for key in &keys {
            confirmed(&ch, "chx", key, key.as_bytes(), BasicProperties::default(), false).await;
        }
        let before = placement(&ch, &queues).await;
        assert_eq!(before.len(), keys.len());

        declare_x(&ch, "delayed", "x-delayed-message", true, delayed_args("direct")).await.unwrap();
        durable_queue(&ch, "dq").await;
        within(ch.queue_bind(
            "dq".into(),
            "delayed".into(),
            "k".into(),
            Default::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        let published_at = Instant::now();
        confirmed(&ch, "delayed", "k", b"after-restart", with_delay(3000), false).await;
        confirmed(
            &ch,
            "delayed",
            "k",
            b"right-away",
            BasicProperties::default().with_delivery_mode(2),
            false,
        )
        .await;
        assert_eq!(bodies(&drain(&ch, "dq").await), ["right-away"]);
        (before, published_at)
    };
    if how == Stop::Kill {
        // A crash right after the confirm: what the delay log handed the OS is there.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = b.restart(how).await;
    if how == Stop::Term {
        assert!(status.success(), "warren exited with {status}; log:\n{}", b.all_logs());
    }

    let c = b.connect().await;
    let ch = c.channel().await;
    // Both come back as themselves: equivalent redeclares succeed.
    declare_x(&ch, "chx", "x-consistent-hash", true, FieldTable::default()).await.unwrap();
    declare_x(&ch, "delayed", "x-delayed-message", true, delayed_args("direct")).await.unwrap();

    // Same keys, same queues after the restart.
    for key in &keys {
        within(ch.basic_publish(
            "chx".into(),
            key.as_str().into(),
            Default::default(),
            key.as_bytes(),
            BasicProperties::default(),
        ))
        .await
        .unwrap();
    }
    wait_for_total(&ch, &queues, keys.len() as u32).await;
    assert_eq!(placement(&ch, &queues).await, before, "consistent hashing is stable across a restart");

    // The delayed message is still held, then delivered when due (not before).
    if published_at.elapsed() < Duration::from_millis(2500) {
        assert_eq!(message_count(&ch, "dq").await, 0, "released before its delay");
    }
    wait_message_count(&ch, "dq", 1).await;
    assert!(
        published_at.elapsed() >= Duration::from_millis(2900),
        "released early: {:?}",
        published_at.elapsed()
    );
    assert_eq!(bodies(&drain(&ch, "dq").await), ["after-restart"]);

    // Released means gone from the delay log: another restart does not bring it back.
    drop(c);
    b.restart(Stop::Term).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(message_count(&ch, "dq").await, 0);
}

async fn wait_for_total(ch: &Channel, queues: &[&str], n: u32) {
    eventually("all messages routed", || async {
        let mut total = 0;
        for q in queues {
            total += message_count(ch, q).await;
        }
        (total == n).then_some(())
    })
    .await
}

#[tokio::test]
async fn plugin_exchanges_survive_a_graceful_restart() {
    plugin_exchanges_survive_a_restart(Stop::Term).await
}

#[tokio::test]
async fn plugin_exchanges_survive_a_crash() {
    plugin_exchanges_survive_a_restart(Stop::Kill).await
}

/// Binds `queues` (durable) to `x` with their weights, in the given order.
async fn bind_weights(ch: &Channel, x: &str, weights: &[(&str, &str)]) {
    for (q, w) in weights {
        durable_queue(ch, q).await;
        within(ch.queue_bind((*q).into(), x.into(), (*w).into(), Default::default(), FieldTable::default()))
            .await
            .unwrap();
    }
}

/// Publishes each key (body = key) to `x` with confirms, then says which queue each went to.
async fn place_keys(ch: &Channel, x: &str, keys: &[String], queues: &[&str]) -> HashMap<String, String> {
    for key in keys {
        confirmed(ch, x, key, key.as_bytes(), BasicProperties::default(), false).await;
    }
    placement(ch, queues).await
}

/// A restart rebuilds the bucket row from the stored bindings sorted by binding key as text,
/// then destination, as RabbitMQ's recovery usually re-adds them: bindings made with weights
/// 2, 10, 1 come back as 1, 10, 2, and keys land as on an exchange bound in that order.
#[tokio::test]
async fn consistent_hash_restart_rebuilds_in_sorted_binding_order() {
    let mut b = DurableBroker::start(&[]).await;
    let keys: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    let queues = ["q-a", "q-b", "q-c"];
    let (sorted_order, before) = {
        let c = b.connect().await;
        let ch = c.channel().await;
        within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
        declare_x(&ch, "sorted", "x-consistent-hash", false, FieldTable::default()).await.unwrap();
        bind_weights(&ch, "sorted", &[("q-c", "1"), ("q-a", "10"), ("q-b", "2")]).await;
        let sorted_order = place_keys(&ch, "sorted", &keys, &queues).await;
        within(ch.exchange_delete("sorted".into(), Default::default())).await.unwrap();

        declare_x(&ch, "chx", "x-consistent-hash", true, FieldTable::default()).await.unwrap();
        bind_weights(&ch, "chx", &[("q-b", "2"), ("q-a", "10"), ("q-c", "1")]).await;
        (sorted_order, place_keys(&ch, "chx", &keys, &queues).await)
    };
    assert_ne!(before, sorted_order, "the order of the bindings matters");
    b.restart(Stop::Term).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    assert_eq!(place_keys(&ch, "chx", &keys, &queues).await, sorted_order);
}
