//! Publisher confirms (confirm.select) and transactions (tx.*).

use crate::common::raw::RawConn;
use crate::common::*;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use warren_testkit::W;

async fn new_queue(ch: &Channel, prefix: &str) -> String {
    let q = uniq(prefix);
    declare_queue(ch, &q).await;
    q
}

#[tokio::test]
async fn confirms_ack_every_publish() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-confirm").await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    // confirm.select is idempotent
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..50 {
        let confirm = within(ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        ))
        .await
        .unwrap();
        pending.push(confirm);
    }
    // unroutable publishes are confirmed too
    let unroutable = within(ch.basic_publish(
        "".into(),
        uniq("no-such-queue").as_str().into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    ))
    .await
    .unwrap();
    pending.push(unroutable);
    for confirm in pending {
        assert_eq!(within(confirm).await.unwrap(), Confirmation::Ack(None));
    }
    assert!(within(ch.wait_for_confirms()).await.unwrap().is_empty());
    assert_eq!(message_count(&ch, &q).await, 50);
}

#[tokio::test]
async fn confirm_delivery_tags_start_at_one_and_are_ordered() {
    // lapin hides confirm delivery tags, so check them on the wire.
    let b = Broker::start().await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send_method(1, 85, 10, &W::new().bits(&[false]).build()).await;
    raw.expect_method(1, (85, 11)).await;
    let q = uniq("q-raw-confirm");
    raw.send_method(
        1,
        50,
        10,
        &W::new().u16(0).shortstr(&q).bits(&[false, false, true, true, false]).empty_table().build(),
    )
    .await;
    raw.expect_method(1, (50, 11)).await;
    // all routed to one queue: acks (possibly coalesced with multiple=true)
    // cover 1..=N in order
    const N: u64 = 30;
    for i in 0..N {
        raw.publish(1, "", &q, format!("m{i}").as_bytes()).await;
    }
    let mut confirmed = 0u64;
    while confirmed < N {
        let f = raw.expect_method(1, (60, 80)).await;
        let mut a = f.args();
        let tag = a.u64();
        let multiple = a.u8() & 1 == 1;
        assert!(tag > confirmed, "ack tag {tag} after {confirmed}");
        if !multiple {
            assert_eq!(tag, confirmed + 1, "single ack must be the next tag");
        }
        assert!(tag <= N);
        confirmed = tag;
    }
    // mixed routed/unroutable: RabbitMQ may confirm unroutable messages
    // ahead of routed ones, but every tag is confirmed exactly once
    let mut outstanding: std::collections::BTreeSet<u64> = (N + 1..=2 * N).collect();
    for i in 0..N {
        let key = if i % 3 == 0 { "no-such-queue" } else { q.as_str() };
        raw.publish(1, "", key, format!("x{i}").as_bytes()).await;
    }
    while !outstanding.is_empty() {
        let f = raw.expect_method(1, (60, 80)).await;
        let mut a = f.args();
        let tag = a.u64();
        let multiple = a.u8() & 1 == 1;
        if multiple {
            let covered: Vec<u64> = outstanding.range(..=tag).copied().collect();
            assert!(!covered.is_empty(), "multiple ack {tag} covers nothing");
            for t in covered {
                outstanding.remove(&t);
            }
        } else {
            assert!(outstanding.remove(&tag), "tag {tag} confirmed twice or unknown");
        }
    }
}

#[tokio::test]
async fn confirm_then_tx_and_tx_then_confirm_are_406() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    assert_err(ch.tx_select(), 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode").await;
    let ch = c.channel().await;
    within(ch.tx_select()).await.unwrap();
    assert_err(
        ch.confirm_select(ConfirmSelectOptions::default()),
        406,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
    )
    .await;
}

#[tokio::test]
async fn publish_to_missing_exchange_in_confirm_mode_fails_the_confirm() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    let x = uniq("x-missing");
    let confirm = within(ch.basic_publish(
        x.as_str().into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    ))
    .await
    .unwrap();
    let text = format!("NOT_FOUND - no exchange '{x}' in vhost '/'");
    let err = within(confirm).await.expect_err("confirm must fail");
    assert_eq!(amqp_error(&err), Some((404, text.clone())));
    c.assert_next_error(404, &text).await;
}

#[tokio::test]
async fn tx_publishes_are_invisible_until_commit() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-tx-commit").await;
    let tx = c.channel().await;
    within(tx.tx_select()).await.unwrap();
    // tx.select is idempotent
    within(tx.tx_select()).await.unwrap();
    for i in 0..3 {
        publish(&tx, "", &q, format!("t{i}").as_bytes()).await;
    }
    // a synchronous round trip on the tx channel proves the publishes
    // reached the broker, yet they are not enqueued
    assert_eq!(message_count(&tx, &q).await, 0);
    assert_eq!(message_count(&ch, &q).await, 0);
    within(tx.tx_commit()).await.unwrap();
    wait_message_count(&ch, &q, 3).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["t0", "t1", "t2"]);
    // the channel stays transactional: a new transaction starts
    publish(&tx, "", &q, b"second").await;
    assert_eq!(message_count(&ch, &q).await, 0);
    within(tx.tx_commit()).await.unwrap();
    wait_message_count(&ch, &q, 1).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["second"]);
}

#[tokio::test]
async fn tx_rollback_discards_publishes() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-tx-rollback").await;
    within(ch.tx_select()).await.unwrap();
    publish(&ch, "", &q, b"discarded").await;
    within(ch.tx_rollback()).await.unwrap();
    within(ch.tx_commit()).await.unwrap();
    assert_eq!(message_count(&ch, &q).await, 0);
    publish(&ch, "", &q, b"kept").await;
    within(ch.tx_commit()).await.unwrap();
    wait_message_count(&ch, &q, 1).await;
    // an empty commit/rollback is fine
    within(ch.tx_commit()).await.unwrap();
    within(ch.tx_rollback()).await.unwrap();
}

#[tokio::test]
async fn tx_acks_apply_only_on_commit() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-tx-ack").await;
    for i in 0..3 {
        publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
    }
    wait_message_count(&ch, &q, 3).await;
    let tx = c.channel().await;
    within(tx.tx_select()).await.unwrap();
    let mut consumer = within(tx.basic_consume(
        q.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let mut tags = Vec::new();
    for _ in 0..3 {
        tags.push(next_delivery(&mut consumer).await.delivery_tag);
    }
    // ack everything, then roll back: the acks are forgotten, the messages
    // stay unacked (not requeued)
    within(tx.basic_ack(tags[2], BasicAckOptions { multiple: true })).await.unwrap();
    within(tx.tx_rollback()).await.unwrap();
    assert_eq!(message_count(&ch, &q).await, 0);
    // ack one and commit
    within(tx.basic_ack(tags[0], BasicAckOptions::default())).await.unwrap();
    within(tx.tx_commit()).await.unwrap();
    // closing the channel requeues the two still unacked
    within(tx.close(200, "bye".into())).await.unwrap();
    wait_message_count(&ch, &q, 2).await;
    let m = get(&ch, &q).await.unwrap();
    assert_eq!((text(&m.delivery.data).as_str(), m.delivery.redelivered), ("m1", true));
}

#[tokio::test]
async fn tx_commit_or_rollback_without_select_is_406() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_err(ch.tx_commit(), 406, "PRECONDITION_FAILED - channel is not transactional").await;
    let ch = c.channel().await;
    assert_err(ch.tx_rollback(), 406, "PRECONDITION_FAILED - channel is not transactional").await;
}

#[tokio::test]
async fn tx_uncommitted_publishes_are_dropped_when_channel_closes() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-tx-close").await;
    let tx = c.channel().await;
    within(tx.tx_select()).await.unwrap();
    publish(&tx, "", &q, b"never").await;
    within(tx.close(200, "bye".into())).await.unwrap();
    publish(&ch, "", &q, b"marker").await;
    wait_message_count(&ch, &q, 1).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["marker"]);
}
