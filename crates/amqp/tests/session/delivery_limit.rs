//! x-delivery-limit.

use crate::harness::*;

fn delivery_count(item: &Item) -> Option<i64> {
    item.props().headers.as_ref().and_then(|h| h.get("x-delivery-count")).and_then(FieldValue::as_i64)
}

#[test]
fn delivery_limit_counts_requeues_and_dead_letters_past_the_limit() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "fanout");
    c.queue(1, "dlq");
    c.bind(1, "dlq", "dlx", "");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "work".into(),
            arguments: table(&[
                ("x-delivery-limit", FieldValue::I32(2)),
                ("x-dead-letter-exchange", text("dlx")),
            ]),
            ..Default::default()
        },
    );
    let props = BasicProperties { message_id: Some("m".into()), ..Default::default() };
    c.publish(1, "", "work", &props, b"x");
    c.consume(1, "work", "c");
    let items = c.recv_items();
    let items: Vec<_> = items.iter().filter(|i| matches!(i.method, Method::BasicDeliver(_))).collect();
    assert_eq!(items.len(), 1);
    assert_eq!(delivery_count(items[0]), Some(0), "the first delivery counts 0, as RabbitMQ 3.10");
    assert_eq!(items[0].props().message_id.as_deref(), Some("m"));

    // Two requeues (nack, then reject) are within the limit: the count goes up each time.
    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: true });
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 2, "x".into())]);
    assert_eq!(delivery_count(&items[0]), Some(1));
    assert_eq!(items[0].props().message_id.as_deref(), Some("m"), "other properties kept");
    assert!(deliver(&items[0]).redelivered);
    c.send(1, BasicReject { delivery_tag: 2, requeue: true });
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 3, "x".into())]);
    assert_eq!(delivery_count(&items[0]), Some(2));

    // The third return exceeds the limit: dead-lettered with reason delivery_limit.
    c.send(1, BasicNack { delivery_tag: 3, multiple: false, requeue: true });
    c.expect_nothing();
    assert_eq!(c.counts(1, "work").0, 0);
    let (_, item) = c.get(1, "dlq", true).expect("dead-lettered");
    let headers = item.props().headers.as_ref().expect("headers");
    assert_eq!(headers.get("x-first-death-reason").and_then(FieldValue::as_str), Some("delivery_limit"));
    assert_eq!(headers.get("x-first-death-queue").and_then(FieldValue::as_str), Some("work"));
    assert_eq!(delivery_count(&item), None, "the count belongs to the queue, not the message");
}

#[test]
fn delivery_limit_applies_to_channel_close_and_recover_and_drops_without_dlx() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "q".into(),
            arguments: table(&[("x-delivery-limit", FieldValue::I64(1))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "q", &no_props(), b"x");
    // basic.get, then recover: count 1.
    c.get(1, "q", false).unwrap();
    c.rpc(1, BasicRecover { requeue: true }, "basic.recover-ok");
    // A consumer on another channel, then the channel closes: count 2 > 1, dropped.
    c.open_channel(2);
    c.consume(2, "q", "c");
    let items = c.recv_items();
    let d: Vec<_> = items.iter().filter(|i| matches!(i.method, Method::BasicDeliver(_))).collect();
    assert_eq!(d.len(), 1);
    assert_eq!(delivery_count(d[0]), Some(1));
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert_eq!(c.counts(1, "q"), (0, 0), "over the limit without a dead-letter exchange: dropped");
}

#[test]
fn delivery_limit_zero_allows_a_single_delivery_and_get_carries_the_count() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "once".into(),
            arguments: table(&[("x-delivery-limit", FieldValue::I32(0))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "once", &no_props(), b"x");
    c.get(1, "once", false).unwrap();
    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: true });
    assert!(c.get(1, "once", true).is_none());

    c.declare_queue(
        1,
        QueueDeclare {
            queue: "twice".into(),
            arguments: table(&[("x-delivery-limit", FieldValue::I32(5))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "twice", &no_props(), b"y");
    let (ok, _) = c.get(1, "twice", false).unwrap();
    c.send(1, BasicNack { delivery_tag: ok.delivery_tag, multiple: false, requeue: true });
    let (ok, item) = c.get(1, "twice", true).unwrap();
    assert!(ok.redelivered);
    assert_eq!(delivery_count(&item), Some(1));
}

#[test]
fn quorum_queues_count_deliveries_without_a_limit_and_classic_ones_do_not() {
    let b = broker();
    let mut c = client(&b);
    let quorum = table(&[("x-queue-type", text("quorum"))]);
    c.declare_queue(
        1,
        QueueDeclare { queue: "qq".into(), durable: true, arguments: quorum, ..Default::default() },
    );
    c.queue(1, "classic");
    for q in ["qq", "classic"] {
        c.publish(1, "", q, &no_props(), b"m");
    }
    let counts = |c: &mut TestClient, q: &str| {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (ok, item) = c.get(1, q, false).unwrap();
            seen.push(delivery_count(&item));
            c.send(1, BasicNack { delivery_tag: ok.delivery_tag, multiple: false, requeue: true });
        }
        seen
    };
    assert_eq!(counts(&mut c, "qq"), [Some(0), Some(1), Some(2)], "never dropped without a limit");
    assert_eq!(counts(&mut c, "classic"), [None, None, None]);
}

#[test]
fn delivery_limit_must_be_a_non_negative_integer() {
    let b = broker();
    let mut c = client(&b);
    c.send(
        1,
        QueueDeclare {
            queue: "bad".into(),
            arguments: table(&[("x-delivery-limit", FieldValue::I32(-1))]),
            ..Default::default()
        },
    );
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert!(close.reply_text.contains("invalid arg 'x-delivery-limit'"), "{close:?}");
    c.open_channel(1);
    c.send(
        1,
        QueueDeclare {
            queue: "bad".into(),
            arguments: table(&[("x-consumer-timeout", text("soon"))]),
            ..Default::default()
        },
    );
    let close = c.expect_channel_close(1);
    assert!(close.reply_text.contains("invalid arg 'x-consumer-timeout'"), "{close:?}");
}
