//! basic.consume / cancel / get / ack / nack / reject / recover / qos.

use crate::common::raw::RawConn;
use crate::common::*;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicQosOptions, BasicRecoverOptions, BasicRejectOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use warren_testkit::W;

async fn consume(ch: &Channel, q: &str, tag: &str, opts: BasicConsumeOptions) -> Consumer {
    within(ch.basic_consume(q.into(), tag.into(), opts, FieldTable::default()))
        .await
        .unwrap_or_else(|e| panic!("consume {q}: {e:?}"))
}

async fn publish_n(ch: &Channel, q: &str, n: usize) {
    for i in 0..n {
        publish(ch, "", q, format!("m{i}").as_bytes()).await;
    }
}

async fn new_queue(ch: &Channel, prefix: &str) -> String {
    let q = uniq(prefix);
    declare_queue(ch, &q).await;
    q
}

#[tokio::test]
async fn consume_with_server_generated_tag() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-ctag").await;
    let mut consumer = consume(&ch, &q, "", Default::default()).await;
    let tag = consumer.tag().to_string();
    assert!(tag.starts_with("amq.ctag-"), "tag {tag}");
    assert_eq!(tag.len(), "amq.ctag-".len() + 22, "tag {tag}");
    let other = consume(&ch, &q, "", Default::default()).await;
    assert_ne!(other.tag().as_str(), tag);
    within(ch.basic_cancel(other.tag(), BasicCancelOptions::default())).await.unwrap();
    publish(&ch, "", &q, b"hi").await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"hi");
    assert_eq!(d.delivery_tag, 1);
    assert!(!d.redelivered);
    assert_eq!(d.exchange.as_str(), "");
    assert_eq!(d.routing_key.as_str(), q);
    within(d.acker.ack(BasicAckOptions::default())).await.unwrap();
}

#[tokio::test]
async fn duplicate_consumer_tag_is_530_connection_error() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-dup-tag").await;
    let _first = consume(&ch, &q, "dup", Default::default()).await;
    let text = "NOT_ALLOWED - attempt to reuse consumer tag 'dup'";
    assert_err(
        ch.basic_consume(
            q.as_str().into(),
            "dup".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
        530,
        text,
    )
    .await;
    c.assert_next_error(530, text).await;
    // the same tag on another channel is fine
    let c2 = b.connect().await;
    let ch_a = c2.channel().await;
    let ch_b = c2.channel().await;
    let _a = consume(&ch_a, &q, "dup", Default::default()).await;
    let _b = consume(&ch_b, &q, "dup", Default::default()).await;
}

#[tokio::test]
async fn exclusive_consumer_conflicts_are_403() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-excl-cons").await;
    let text = format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use");
    let exclusive = BasicConsumeOptions { exclusive: true, ..Default::default() };
    let _ex = consume(&ch, &q, "", exclusive).await;
    let ch2 = c.channel().await;
    assert_err(
        ch2.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
        403,
        &text,
    )
    .await;
    // ...also on the same channel
    assert_err(
        ch.basic_consume(q.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()),
        403,
        &text,
    )
    .await;

    // exclusive consume on a queue that already has a consumer
    let ch3 = c.channel().await;
    let q2 = new_queue(&ch3, "q-excl-cons2").await;
    let _shared = consume(&ch3, &q2, "", Default::default()).await;
    let ch4 = c.channel().await;
    assert_err(
        ch4.basic_consume(q2.as_str().into(), "".into(), exclusive, FieldTable::default()),
        403,
        &format!("ACCESS_REFUSED - queue '{q2}' in vhost '/' in exclusive use"),
    )
    .await;
}

#[tokio::test]
async fn consume_or_get_on_missing_queue_is_404() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-nope");
    let text = format!("NOT_FOUND - no queue '{q}' in vhost '/'");
    assert_err(
        ch.basic_consume(q.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()),
        404,
        &text,
    )
    .await;
    let ch = c.channel().await;
    assert_err(ch.basic_get(q.as_str().into(), BasicGetOptions::default()), 404, &text).await;
}

#[tokio::test]
async fn cancel_stops_deliveries() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-cancel").await;
    let mut consumer =
        consume(&ch, &q, "to-cancel", BasicConsumeOptions { no_ack: true, ..Default::default() }).await;
    publish(&ch, "", &q, b"before").await;
    assert_eq!(next_delivery(&mut consumer).await.data, b"before");
    within(ch.basic_cancel("to-cancel".into(), BasicCancelOptions::default())).await.unwrap();
    // the stream ends after the cancel
    assert!(within(consumer.next()).await.is_none());
    publish_n(&ch, &q, 3).await;
    wait_message_count(&ch, &q, 3).await;
    // cancelling an unknown tag is not an error
    within(ch.basic_cancel("never-existed".into(), BasicCancelOptions::default()))
        .await
        .expect("cancel unknown tag");
    assert_eq!(message_count(&ch, &q).await, 3);
}

#[tokio::test]
async fn server_cancels_consumer_when_queue_is_deleted() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-srv-cancel").await;
    let mut consumer = consume(&ch, &q, "", Default::default()).await;
    let other = c.channel().await;
    within(other.queue_delete(q.as_str().into(), QueueDeleteOptions::default())).await.unwrap();
    // lapin advertises consumer_cancel_notify; the broker's basic.cancel
    // ends the consumer stream
    assert!(within(consumer.next()).await.is_none());
    // the channel stays usable
    let q2 = new_queue(&ch, "q-after-cancel").await;
    publish(&ch, "", &q2, b"still ok").await;
    wait_message_count(&ch, &q2, 1).await;
}

#[tokio::test]
async fn server_cancel_frame_carries_consumer_tag() {
    let b = Broker::start().await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    let q = uniq("q-raw-cancel");
    // queue.declare (non-exclusive so that another connection may delete it)
    raw.send_method(
        1,
        50,
        10,
        &W::new().u16(0).shortstr(&q).bits(&[false, false, false, false, false]).empty_table().build(),
    )
    .await;
    raw.expect_method(1, (50, 11)).await;
    raw.send_method(
        1,
        60,
        20,
        &W::new()
            .u16(0)
            .shortstr(&q)
            .shortstr("my-tag")
            .bits(&[false, false, false, false])
            .empty_table()
            .build(),
    )
    .await;
    let ok = raw.expect_method(1, (60, 21)).await;
    assert_eq!(ok.args().shortstr(), "my-tag");

    let c = b.connect().await;
    let ch = c.channel().await;
    within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())).await.unwrap();
    let cancel = raw.expect_method(1, (60, 30)).await;
    let mut a = cancel.args();
    assert_eq!(a.shortstr(), "my-tag");
    // RabbitMQ sets no-wait on the basic.cancel it sends
    assert_eq!(a.u8(), 1, "no-wait bit of server basic.cancel");
}

#[tokio::test]
async fn get_and_get_empty() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-get").await;
    assert!(get(&ch, &q).await.is_none(), "get-empty on an empty queue");
    publish_n(&ch, &q, 3).await;
    wait_message_count(&ch, &q, 3).await;
    for i in 0..3u32 {
        let m = get(&ch, &q).await.expect("get-ok");
        assert_eq!(m.delivery.data, format!("m{i}").as_bytes());
        assert_eq!(m.message_count, 2 - i, "remaining count in get-ok");
        assert_eq!(m.delivery.delivery_tag, u64::from(i) + 1);
        assert!(!m.delivery.redelivered);
        within(m.delivery.acker.ack(BasicAckOptions::default())).await.unwrap();
    }
    assert!(get(&ch, &q).await.is_none());
}

#[tokio::test]
async fn delivery_tags_are_per_channel_and_shared_by_get_and_consume() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch1 = c.channel().await;
    let ch2 = c.channel().await;
    let q = new_queue(&ch1, "q-tags").await;
    publish_n(&ch1, &q, 4).await;
    wait_message_count(&ch1, &q, 4).await;
    let a = get(&ch1, &q).await.unwrap();
    let b2 = get(&ch2, &q).await.unwrap();
    assert_eq!((a.delivery.delivery_tag, b2.delivery.delivery_tag), (1, 1));
    let mut consumer = consume(&ch1, &q, "", Default::default()).await;
    let d1 = next_delivery(&mut consumer).await;
    let d2 = next_delivery(&mut consumer).await;
    assert_eq!((d1.delivery_tag, d2.delivery_tag), (2, 3));
    within(ch1.basic_ack(3, BasicAckOptions { multiple: true })).await.unwrap();
    within(ch2.basic_ack(1, BasicAckOptions::default())).await.unwrap();
    assert_eq!(message_count(&ch1, &q).await, 0);
}

#[tokio::test]
async fn ack_multiple_and_requeue_on_channel_close() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-ack-multi").await;
    publish_n(&ch, &q, 5).await;
    let cch = c.channel().await;
    let mut consumer = consume(&cch, &q, "", Default::default()).await;
    let mut tags = Vec::new();
    for i in 0..5 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, format!("m{i}").as_bytes());
        tags.push(d.delivery_tag);
    }
    assert_eq!(tags, vec![1, 2, 3, 4, 5]);
    within(cch.basic_ack(3, BasicAckOptions { multiple: true })).await.unwrap();
    within(cch.close(200, "done".into())).await.unwrap();
    // m3 and m4 were unacked: back in the queue, flagged redelivered
    wait_message_count(&ch, &q, 2).await;
    for expected in ["m3", "m4"] {
        let m = get(&ch, &q).await.unwrap();
        assert_eq!(text(&m.delivery.data), expected);
        assert!(m.delivery.redelivered, "{expected} must be redelivered");
    }
}

#[tokio::test]
async fn nack_multiple_requeues_to_original_positions() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-nack-multi").await;
    publish_n(&ch, &q, 7).await;
    wait_message_count(&ch, &q, 7).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(get(&ch, &q).await.unwrap());
    }
    // nack m0..m2 with requeue, discard m3, ack m4
    within(ch.basic_nack(3, BasicNackOptions { multiple: true, requeue: true })).await.unwrap();
    within(ch.basic_nack(4, BasicNackOptions { multiple: false, requeue: false })).await.unwrap();
    within(ch.basic_ack(5, BasicAckOptions::default())).await.unwrap();
    wait_message_count(&ch, &q, 5).await;
    let mut order = Vec::new();
    while let Some(m) = get(&ch, &q).await {
        order.push((text(&m.delivery.data), m.delivery.redelivered));
        within(m.delivery.acker.ack(BasicAckOptions::default())).await.unwrap();
    }
    let expected: Vec<(String, bool)> =
        [("m0", true), ("m1", true), ("m2", true), ("m5", false), ("m6", false)]
            .iter()
            .map(|(s, r)| (s.to_string(), *r))
            .collect();
    assert_eq!(order, expected);
}

#[tokio::test]
async fn reject_requeue_returns_message_to_its_original_position() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-reject").await;
    for body in ["a", "b", "c", "d"] {
        publish(&ch, "", &q, body.as_bytes()).await;
    }
    wait_message_count(&ch, &q, 4).await;
    let a = get(&ch, &q).await.unwrap();
    let bm = get(&ch, &q).await.unwrap();
    let cm = get(&ch, &q).await.unwrap();
    // reject b (requeue) first, then a: order must be restored a, b, d
    within(ch.basic_reject(bm.delivery.delivery_tag, BasicRejectOptions { requeue: true })).await.unwrap();
    within(ch.basic_reject(a.delivery.delivery_tag, BasicRejectOptions { requeue: true })).await.unwrap();
    // reject c without requeue: dropped
    within(ch.basic_reject(cm.delivery.delivery_tag, BasicRejectOptions { requeue: false })).await.unwrap();
    wait_message_count(&ch, &q, 3).await;
    let mut order = Vec::new();
    while let Some(m) = get(&ch, &q).await {
        order.push((text(&m.delivery.data), m.delivery.redelivered));
        within(m.delivery.acker.ack(BasicAckOptions::default())).await.unwrap();
    }
    assert_eq!(order, vec![("a".to_string(), true), ("b".to_string(), true), ("d".to_string(), false)]);
}

#[tokio::test]
async fn ack_of_unknown_delivery_tag_is_406() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    within(ch.basic_ack(99, BasicAckOptions::default())).await.unwrap();
    c.assert_next_error(406, "PRECONDITION_FAILED - unknown delivery tag 99").await;
    let ch = c.channel().await;
    within(ch.basic_nack(7, BasicNackOptions::default())).await.unwrap();
    c.assert_next_error(406, "PRECONDITION_FAILED - unknown delivery tag 7").await;
    let ch = c.channel().await;
    within(ch.basic_reject(8, BasicRejectOptions::default())).await.unwrap();
    c.assert_next_error(406, "PRECONDITION_FAILED - unknown delivery tag 8").await;
    let ch = c.channel().await;
    within(ch.basic_ack(5, BasicAckOptions { multiple: true })).await.unwrap();
    c.assert_next_error(406, "PRECONDITION_FAILED - unknown delivery tag 5").await;
}

#[tokio::test]
async fn double_ack_is_406() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-double-ack").await;
    publish_n(&ch, &q, 2).await;
    wait_message_count(&ch, &q, 2).await;
    let m1 = get(&ch, &q).await.unwrap();
    let m2 = get(&ch, &q).await.unwrap();
    assert_eq!((m1.delivery.delivery_tag, m2.delivery.delivery_tag), (1, 2));
    within(ch.basic_ack(2, BasicAckOptions::default())).await.unwrap();
    within(ch.basic_ack(2, BasicAckOptions::default())).await.unwrap();
    c.assert_next_error(406, "PRECONDITION_FAILED - unknown delivery tag 2").await;
    // the unacked m1 went back to the queue with the channel
    let ch = c.channel().await;
    wait_message_count(&ch, &q, 1).await;
    let m = get(&ch, &q).await.unwrap();
    assert_eq!((text(&m.delivery.data).as_str(), m.delivery.redelivered), ("m0", true));
}

#[tokio::test]
async fn ack_of_no_ack_delivery_is_406() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-noack-ack").await;
    publish_n(&ch, &q, 1).await;
    wait_message_count(&ch, &q, 1).await;
    let m = within(ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    assert_eq!(m.delivery.delivery_tag, 1);
    within(ch.basic_ack(1, BasicAckOptions::default())).await.unwrap();
    c.assert_next_error(406, "PRECONDITION_FAILED - unknown delivery tag 1").await;
}

#[tokio::test]
async fn recover_requeues_unacked_messages() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-recover").await;
    publish_n(&ch, &q, 3).await;
    let mut consumer = consume(&ch, &q, "", Default::default()).await;
    for i in 0..3 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, format!("m{i}").as_bytes());
        assert!(!d.redelivered);
    }
    within(ch.basic_recover(BasicRecoverOptions { requeue: true })).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut consumer).await;
        assert!(d.redelivered, "recovered message must be redelivered");
        assert!(d.delivery_tag > 3, "new delivery tags after recover");
        seen.push(text(&d.data));
        within(d.acker.ack(BasicAckOptions::default())).await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, vec!["m0", "m1", "m2"]);
    assert_eq!(message_count(&ch, &q).await, 0);
}

#[tokio::test]
async fn qos_prefetch_count_limits_each_consumer() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-qos").await;
    publish_n(&ch, &q, 5).await;
    let cch = c.channel().await;
    within(cch.basic_qos(2, BasicQosOptions::default())).await.unwrap();
    let mut consumer = consume(&cch, &q, "", Default::default()).await;
    let d0 = next_delivery(&mut consumer).await;
    let d1 = next_delivery(&mut consumer).await;
    assert_eq!((text(&d0.data), text(&d1.data)), ("m0".into(), "m1".into()));
    // the window is full: three stay ready in the queue
    wait_message_count(&ch, &q, 3).await;
    assert!(try_delivery(&mut consumer).await.is_none());
    within(d0.acker.ack(BasicAckOptions::default())).await.unwrap();
    let d2 = next_delivery(&mut consumer).await;
    assert_eq!(d2.data, b"m2");
    wait_message_count(&ch, &q, 2).await;
    // acking both outstanding opens two slots
    within(cch.basic_ack(d2.delivery_tag, BasicAckOptions { multiple: true })).await.unwrap();
    assert_eq!(next_delivery(&mut consumer).await.data, b"m3");
    assert_eq!(next_delivery(&mut consumer).await.data, b"m4");
    wait_message_count(&ch, &q, 0).await;
}

#[tokio::test]
async fn qos_global_limits_the_whole_channel() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q1 = new_queue(&ch, "q-qos-g1").await;
    let q2 = new_queue(&ch, "q-qos-g2").await;
    publish_n(&ch, &q1, 4).await;
    publish_n(&ch, &q2, 4).await;
    let cch = c.channel().await;
    within(cch.basic_qos(3, BasicQosOptions { global: true })).await.unwrap();
    let mut c1 = consume(&cch, &q1, "", Default::default()).await;
    let mut c2 = consume(&cch, &q2, "", Default::default()).await;
    // 3 in flight for the whole channel: 8 - 3 = 5 stay ready
    let what = "5 ready messages across both queues";
    eventually(what, || async {
        let n = message_count(&ch, &q1).await + message_count(&ch, &q2).await;
        (n == 5).then_some(())
    })
    .await;
    let mut got = Vec::new();
    while got.len() < 3 {
        tokio::select! {
            Some(Ok(d)) = c1.next() => got.push(d),
            Some(Ok(d)) = c2.next() => got.push(d),
        }
    }
    // acking one lets exactly one more through
    within(got[0].acker.ack(BasicAckOptions::default())).await.unwrap();
    eventually("4 ready messages", || async {
        let n = message_count(&ch, &q1).await + message_count(&ch, &q2).await;
        (n == 4).then_some(())
    })
    .await;
}

#[tokio::test]
async fn qos_per_consumer_and_global_combined() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-qos-both").await;
    publish_n(&ch, &q, 10).await;
    let cch = c.channel().await;
    // per consumer 2, then channel-wide 3: both limits apply
    within(cch.basic_qos(2, BasicQosOptions { global: false })).await.unwrap();
    within(cch.basic_qos(3, BasicQosOptions { global: true })).await.unwrap();
    let _c1 = consume(&cch, &q, "", Default::default()).await;
    // a single consumer is held by its own limit of 2
    wait_message_count(&ch, &q, 8).await;
    let _c2 = consume(&cch, &q, "", Default::default()).await;
    // a second one may take only one more: the channel limit is 3
    wait_message_count(&ch, &q, 7).await;
}

#[tokio::test]
async fn qos_per_consumer_after_global_clears_the_channel_limit() {
    // RabbitMQ quirk: basic.qos(global=false) removes a channel-wide limit
    // set earlier by basic.qos(global=true) on the same channel.
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-qos-order").await;
    publish_n(&ch, &q, 10).await;
    let cch = c.channel().await;
    within(cch.basic_qos(3, BasicQosOptions { global: true })).await.unwrap();
    within(cch.basic_qos(2, BasicQosOptions { global: false })).await.unwrap();
    let _c1 = consume(&cch, &q, "", Default::default()).await;
    wait_message_count(&ch, &q, 8).await;
    let _c2 = consume(&cch, &q, "", Default::default()).await;
    wait_message_count(&ch, &q, 6).await;
}

#[tokio::test]
async fn round_robin_between_two_consumers() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-rr").await;
    let ch1 = c.channel().await;
    let ch2 = c.channel().await;
    let mut c1 = consume(&ch1, &q, "c1", Default::default()).await;
    let mut c2 = consume(&ch2, &q, "c2", Default::default()).await;
    publish_n(&ch, &q, 10).await;
    let mut got1 = Vec::new();
    let mut got2 = Vec::new();
    for _ in 0..5 {
        got1.push(text(&next_delivery(&mut c1).await.data));
        got2.push(text(&next_delivery(&mut c2).await.data));
    }
    assert_eq!(got1, vec!["m0", "m2", "m4", "m6", "m8"]);
    assert_eq!(got2, vec!["m1", "m3", "m5", "m7", "m9"]);
}

#[tokio::test]
async fn no_ack_consumer_gets_everything_without_acks() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-noack").await;
    publish_n(&ch, &q, 20).await;
    let cch = c.channel().await;
    // prefetch does not apply to no-ack consumers
    within(cch.basic_qos(1, BasicQosOptions::default())).await.unwrap();
    let mut consumer =
        consume(&cch, &q, "", BasicConsumeOptions { no_ack: true, ..Default::default() }).await;
    for i in 0..20 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, format!("m{i}").as_bytes());
        assert_eq!(d.delivery_tag, i + 1);
    }
    within(cch.close(200, "done".into())).await.unwrap();
    // nothing was outstanding, so nothing comes back
    publish(&ch, "", &q, b"marker").await;
    wait_message_count(&ch, &q, 1).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["marker"]);
}

#[tokio::test]
async fn unacked_messages_are_requeued_when_consumer_connection_closes() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = new_queue(&ch, "q-requeue-close").await;
    publish_n(&ch, &q, 3).await;
    let other = b.connect().await;
    let och = other.channel().await;
    let mut consumer = consume(&och, &q, "", Default::default()).await;
    for _ in 0..3 {
        next_delivery(&mut consumer).await;
    }
    wait_message_count(&ch, &q, 0).await;
    other.close().await;
    wait_message_count(&ch, &q, 3).await;
    let m = get(&ch, &q).await.unwrap();
    assert_eq!((text(&m.delivery.data).as_str(), m.delivery.redelivered), ("m0", true));
}

#[tokio::test]
async fn qos_prefetch_size_is_not_implemented_540() {
    // lapin cannot send a non-zero prefetch_size: use the raw codec.
    let b = Broker::start().await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send_method(1, 60, 10, &W::new().u32(4096).u16(10).bits(&[false]).build()).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        (close.code, close.text.as_str(), close.class_id, close.method_id),
        (540, "NOT_IMPLEMENTED - prefetch_size!=0 (4096)", 60, 10)
    );
}
