//! Publish and consume.

use crate::harness::*;

#[test]
fn declare_bind_publish_consume_round_trip() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "orders", "direct");
    let ok = c.queue(1, "q");
    assert_eq!((&*ok.queue, ok.message_count, ok.consumer_count), ("q", 0, 0));
    c.bind(1, "q", "orders", "new");

    let props = BasicProperties {
        content_type: Some("text/plain".into()),
        delivery_mode: Some(2),
        headers: Some(table(&[("k", text("v"))])),
        ..Default::default()
    };
    c.publish(1, "orders", "new", &props, b"order 42");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (1, 0));

    c.consume(1, "q", "c1");
    let items = c.recv_items();
    assert_eq!(items.len(), 2, "{items:#?}");
    match &items[0].method {
        Method::BasicConsumeOk(ok) => assert_eq!(&*ok.consumer_tag, "c1"),
        other => panic!("consume-ok comes first, got {other:?}"),
    }
    let d = deliver(&items[1]);
    assert_eq!(items[1].channel, 1);
    assert_eq!(&*d.consumer_tag, "c1");
    assert_eq!(d.delivery_tag, 1);
    assert!(!d.redelivered);
    assert_eq!((&*d.exchange, &*d.routing_key), ("orders", "new"));
    assert_eq!(items[1].props(), &props, "properties travel byte for byte");
    assert_eq!(items[1].body(), b"order 42");

    // Later publishes go straight to the consumer.
    c.publish(1, "orders", "new", &no_props(), b"second");
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c1".into(), 2, "second".into())]);
    // Another key is not bound.
    c.publish(1, "orders", "old", &no_props(), b"lost");
    c.expect_nothing();

    c.ack(1, 2, true);
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (0, 1));
}

#[test]
fn default_exchange_routes_by_queue_name() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "direct-q");
    c.publish(1, "", "direct-q", &no_props(), b"hi");
    c.publish(1, "", "no-such-queue", &no_props(), b"dropped");
    let (ok, item) = c.get(1, "direct-q", true).expect("a message");
    assert_eq!((&*ok.exchange, &*ok.routing_key), ("", "direct-q"));
    assert_eq!(item.body(), b"hi");
    assert!(c.get(1, "direct-q", true).is_none());
}

#[test]
fn server_named_queue() {
    let b = broker();
    let mut c = client(&b);
    let ok = c.declare_queue(1, QueueDeclare { exclusive: true, ..Default::default() });
    assert!(ok.queue.starts_with("amq.gen-"), "{}", ok.queue);
    assert_eq!(ok.queue.len(), "amq.gen-".len() + 22);
    // "" names the last declared queue.
    c.publish(1, "", &ok.queue.clone(), &no_props(), b"x");
    c.send(1, BasicGet { queue: "".into(), no_ack: true, ..Default::default() });
    let item = c.expect_one(1, "basic.get-ok");
    assert_eq!(item.body(), b"x");
}

#[test]
fn empty_queue_name_means_the_last_declared_queue() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "first");
    c.queue(1, "last");
    c.publish(1, "", "last", &no_props(), b"x");
    c.rpc(1, QueueBind { exchange: "amq.fanout".into(), ..Default::default() }, "queue.bind-ok");
    c.publish(1, "amq.fanout", "", &no_props(), b"y");
    c.send(1, BasicGet { queue: "".into(), no_ack: true, ..Default::default() });
    assert_eq!(c.expect_one(1, "basic.get-ok").body(), b"x");
    assert_eq!(c.counts(1, "last").0, 1);
    assert_eq!(c.counts(1, "first").0, 0);
    // A fresh channel has no last queue.
    c.open_channel(2);
    c.send(2, BasicGet { queue: "".into(), ..Default::default() });
    let close = c.expect_channel_close(2);
    assert_eq!(close.reply_code, 404);
}

#[test]
fn large_bodies_are_split_to_frame_max() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "big");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.publish(1, "", "big", &no_props(), &body);
    c.send(1, BasicGet { queue: "big".into(), no_ack: true, ..Default::default() });
    let frames = c.recv();
    let body_frames: Vec<usize> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Body { payload, .. } => Some(payload.len()),
            _ => None,
        })
        .collect();
    assert_eq!(body_frames.len(), 3, "{body_frames:?}");
    assert!(body_frames.iter().all(|&n| n + 8 <= 131_072));
    let got: Vec<u8> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Body { payload, .. } => Some(payload.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(got, body);
}

#[test]
fn publish_to_missing_exchange_closes_the_channel_with_404() {
    let b = broker();
    let mut c = client(&b);
    c.publish(1, "nowhere", "k", &no_props(), b"x");
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no exchange 'nowhere' in vhost '/'");
    assert_eq!((close.class_id, close.method_id), (60, 40));
}

#[test]
fn round_robin_between_two_consumers() {
    let b = broker();
    let mut a = client(&b);
    let mut z = client(&b);
    a.queue(1, "work");
    a.consume(1, "work", "a");
    a.expect_one(1, "basic.consume-ok");
    z.consume(1, "work", "z");
    z.expect_one(1, "basic.consume-ok");

    for i in 0..6 {
        a.publish(1, "", "work", &no_props(), format!("m{i}").as_bytes());
    }
    assert_eq!(bodies(&a.recv_items()), vec!["m0", "m2", "m4"]);
    assert_eq!(bodies(&z.recv_items()), vec!["m1", "m3", "m5"]);
}

#[test]
fn round_robin_between_two_consumers_on_one_channel() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "work");
    c.consume(1, "work", "first");
    c.consume(1, "work", "second");
    c.recv();
    for i in 0..4 {
        c.publish(1, "", "work", &no_props(), format!("m{i}").as_bytes());
    }
    let got = deliveries(&c.recv_items());
    let tags: Vec<&str> = got.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(tags, vec!["first", "second", "first", "second"]);
    let delivery_tags: Vec<u64> = got.iter().map(|(_, d, _)| *d).collect();
    assert_eq!(delivery_tags, vec![1, 2, 3, 4], "delivery tags are per channel");
}

#[test]
fn per_consumer_prefetch_window() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for i in 1..=5 {
        c.publish(1, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    c.qos(1, 2, false);
    c.consume(1, "q", "c");
    let items = c.recv_items();
    assert_eq!(bodies(&items), vec!["m1", "m2"], "stops at the window");
    c.publish(1, "", "q", &no_props(), b"m6");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (4, 1));

    c.ack(1, 1, false);
    assert_eq!(deliveries(&c.recv_items()), vec![("c".into(), 3, "m3".into())]);
    c.ack(1, 3, true);
    assert_eq!(bodies(&c.recv_items()), vec!["m4", "m5"]);
    c.ack(1, 5, true);
    assert_eq!(bodies(&c.recv_items()), vec!["m6"]);
    c.ack(1, 6, false);
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (0, 1));
}

#[test]
fn prefetch_applies_per_consumer_not_per_channel() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q1");
    c.queue(1, "q2");
    c.qos(1, 1, false);
    c.consume(1, "q1", "c1");
    c.consume(1, "q2", "c2");
    c.recv();
    for q in ["q1", "q2", "q1", "q2"] {
        c.publish(1, "", q, &no_props(), q.as_bytes());
    }
    let got = deliveries(&c.recv_items());
    let tags: Vec<&str> = got.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(tags, vec!["c1", "c2"], "one unacked each");
}

#[test]
fn global_prefetch_limits_the_whole_channel() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q1");
    c.queue(1, "q2");
    c.qos(1, 2, true);
    c.consume(1, "q1", "c1");
    c.consume(1, "q2", "c2");
    c.recv();
    for q in ["q1", "q1", "q2", "q2"] {
        c.publish(1, "", q, &no_props(), q.as_bytes());
    }
    let first = deliveries(&c.recv_items());
    assert_eq!(first.len(), 2, "two unacked across the channel: {first:?}");
    assert_eq!(c.counts(1, "q1").0 + c.counts(1, "q2").0, 2);

    c.ack(1, first[0].1, false);
    let second = deliveries(&c.recv_items());
    assert_eq!(second.len(), 1, "one ack frees one slot: {second:?}");
    c.ack(1, 0, true);
    let third = deliveries(&c.recv_items());
    assert_eq!(third.len(), 1, "{third:?}");
    c.ack(1, 0, true);
    c.expect_nothing();
    assert_eq!(c.counts(1, "q1").0 + c.counts(1, "q2").0, 0);
}

#[test]
fn nack_requeue_restores_the_original_position_marked_redelivered() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for m in ["a", "b", "c"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    let (a, _) = c.get(1, "q", false).unwrap();
    let (b_ok, _) = c.get(1, "q", false).unwrap();
    assert_eq!((a.delivery_tag, b_ok.delivery_tag), (1, 2));
    assert_eq!(c.counts(1, "q").0, 1);

    // b first, then a: both go back ahead of c, in publish order.
    c.send(1, BasicNack { delivery_tag: 2, multiple: false, requeue: true });
    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: true });
    c.expect_nothing();
    let mut order = Vec::new();
    while let Some((ok, item)) = c.get(1, "q", true) {
        order.push((String::from_utf8_lossy(item.body()).into_owned(), ok.redelivered));
    }
    assert_eq!(order, vec![("a".into(), true), ("b".into(), true), ("c".into(), false)]);
}

#[test]
fn nack_requeue_redelivers_to_the_consumer() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.qos(1, 1, false);
    c.consume(1, "q", "c");
    c.recv();
    c.publish(1, "", "q", &no_props(), b"one");
    c.publish(1, "", "q", &no_props(), b"two");
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 1, "one".into())]);
    assert!(!deliver(&items[0]).redelivered);

    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: true });
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 2, "one".into())], "back at the head");
    assert!(deliver(&items[0]).redelivered);

    c.send(1, BasicReject { delivery_tag: 2, requeue: false });
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 3, "two".into())]);
    assert!(!deliver(&items[0]).redelivered);
}

#[test]
fn nack_multiple_requeues_everything_up_to_the_tag() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for m in ["a", "b", "c", "d"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    for _ in 0..3 {
        c.get(1, "q", false).unwrap();
    }
    c.send(1, BasicNack { delivery_tag: 2, multiple: true, requeue: true });
    assert_eq!(c.counts(1, "q").0, 3, "a and b back, d still there");
    c.ack(1, 3, false);
    c.expect_nothing();
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.redelivered, ok.message_count), (&b"a"[..], true, 2));
}

#[test]
fn closing_a_channel_requeues_its_unacked_deliveries() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    for m in ["a", "b"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    c.consume(2, "q", "c");
    assert_eq!(bodies(&c.recv_items()), vec!["a", "b"]);
    assert_eq!(c.counts(1, "q"), (0, 1));
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert_eq!(c.counts(1, "q"), (2, 0));
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.redelivered), (&b"a"[..], true));
}

#[test]
fn reject_without_requeue_dead_letters_with_x_death() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "fanout");
    c.queue(1, "dlq");
    c.bind(1, "dlq", "dlx", "");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "work".into(),
            arguments: table(&[("x-dead-letter-exchange", text("dlx"))]),
            ..Default::default()
        },
    );
    let props = BasicProperties { message_id: Some("m-1".into()), ..Default::default() };
    c.publish(1, "", "work", &props, b"payload");
    let (ok, _) = c.get(1, "work", false).unwrap();
    c.send(1, BasicReject { delivery_tag: ok.delivery_tag, requeue: false });
    c.expect_nothing();
    assert_eq!(c.counts(1, "work").0, 0);

    let (dead, item) = c.get(1, "dlq", true).expect("the message reached the dead-letter queue");
    assert_eq!(item.body(), b"payload");
    assert_eq!(&*dead.exchange, "dlx");
    assert_eq!(&*dead.routing_key, "work", "the original routing key is kept");
    assert_eq!(item.props().message_id.as_deref(), Some("m-1"));
    let headers = item.props().headers.as_ref().expect("headers");
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
        panic!("no x-death array in {headers:?}");
    };
    assert_eq!(deaths.len(), 1);
    let FieldValue::Table(death) = &deaths[0] else { panic!("x-death entry is a table") };
    assert_eq!(death.get("reason").and_then(FieldValue::as_str), Some("rejected"));
    assert_eq!(death.get("queue").and_then(FieldValue::as_str), Some("work"));
    assert_eq!(death.get("exchange").and_then(FieldValue::as_str), Some(""));
    assert_eq!(death.get("count").and_then(FieldValue::as_i64), Some(1));
    assert_eq!(death.get("routing-keys"), Some(&FieldValue::Array(vec![text("work")])));
    assert!(matches!(death.get("time"), Some(FieldValue::Timestamp(_))));
    assert_eq!(headers.get("x-first-death-reason").and_then(FieldValue::as_str), Some("rejected"));
    assert_eq!(headers.get("x-first-death-queue").and_then(FieldValue::as_str), Some("work"));
}

#[test]
fn x_last_death_headers_name_the_latest_death() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "fanout");
    c.exchange(1, "dlx2", "fanout");
    c.queue(1, "dlq2");
    c.bind(1, "dlq2", "dlx2", "");
    c.queue_with(1, "dlq1", &[("x-dead-letter-exchange", text("dlx2"))]);
    c.bind(1, "dlq1", "dlx", "");
    c.queue_with(1, "work", &[("x-dead-letter-exchange", text("dlx"))]);
    c.publish(1, "", "work", &no_props(), b"twice");
    let (ok, _) = c.get(1, "work", false).unwrap();
    c.send(1, BasicReject { delivery_tag: ok.delivery_tag, requeue: false });
    let (ok, item) = c.get(1, "dlq1", false).expect("dead-lettered once");
    let once = item.props().headers.clone().expect("headers");
    c.send(1, BasicNack { delivery_tag: ok.delivery_tag, multiple: false, requeue: false });
    let (_, item) = c.get(1, "dlq2", true).expect("dead-lettered twice");
    let twice = item.props().headers.clone().expect("headers");
    let get = |h: &FieldTable, k: &str| h.get(k).and_then(FieldValue::as_str).map(str::to_owned);

    // After the first death, first and last are the same one.
    assert_eq!(get(&once, "x-last-death-queue").as_deref(), Some("work"));
    assert_eq!(get(&once, "x-last-death-reason").as_deref(), Some("rejected"));
    assert_eq!(get(&once, "x-last-death-exchange").as_deref(), Some(""));
    // After the second, first stays and last moves on (the exchange it was then published to).
    assert_eq!(get(&twice, "x-first-death-queue").as_deref(), Some("work"));
    assert_eq!(get(&twice, "x-first-death-exchange").as_deref(), Some(""));
    assert_eq!(get(&twice, "x-last-death-queue").as_deref(), Some("dlq1"));
    assert_eq!(get(&twice, "x-last-death-reason").as_deref(), Some("rejected"));
    assert_eq!(get(&twice, "x-last-death-exchange").as_deref(), Some("dlx"));
    let Some(FieldValue::Array(deaths)) = twice.get("x-death") else { panic!("no x-death in {twice:?}") };
    assert_eq!(deaths.len(), 2, "one entry per queue and reason");
}

#[test]
fn nack_without_requeue_uses_the_dead_letter_routing_key() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "direct");
    c.queue(1, "parked");
    c.bind(1, "parked", "dlx", "parking");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "work".into(),
            arguments: table(&[
                ("x-dead-letter-exchange", text("dlx")),
                ("x-dead-letter-routing-key", text("parking")),
            ]),
            ..Default::default()
        },
    );
    c.publish(1, "", "work", &no_props(), b"x");
    c.get(1, "work", false).unwrap();
    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: false });
    let (ok, _) = c.get(1, "parked", true).expect("dead-lettered with the configured key");
    assert_eq!(&*ok.routing_key, "parking");
}

#[test]
fn reject_without_dead_letter_exchange_drops_the_message() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.get(1, "q", false).unwrap();
    c.send(1, BasicReject { delivery_tag: 1, requeue: false });
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (0, 0));
    assert!(c.get(1, "q", true).is_none());
}

#[test]
fn ack_does_not_dead_letter() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "fanout");
    c.queue(1, "dlq");
    c.bind(1, "dlq", "dlx", "");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "work".into(),
            arguments: table(&[("x-dead-letter-exchange", text("dlx"))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "work", &no_props(), b"done");
    let (ok, _) = c.get(1, "work", false).unwrap();
    c.ack(1, ok.delivery_tag, false);
    c.expect_nothing();
    assert_eq!(c.counts(1, "dlq").0, 0, "an acknowledged message is not dead");
}
