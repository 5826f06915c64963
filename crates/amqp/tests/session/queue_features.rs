//! Queue and consumer features: x-expires, x-max-priority, single active consumer, x-priority.

use crate::harness::*;

fn declare_with(c: &mut TestClient, name: &str, args: &[(&str, FieldValue)]) {
    c.declare_queue(1, QueueDeclare { queue: name.into(), arguments: table(args), ..Default::default() });
}

fn consume_with(c: &mut TestClient, channel: u16, queue: &str, tag: &str, args: FieldTable) {
    let consume =
        BasicConsume { queue: queue.into(), consumer_tag: tag.into(), arguments: args, ..Default::default() };
    c.rpc(channel, consume, "basic.consume-ok");
}

#[test]
fn unused_queue_expires_and_use_restarts_the_timer() {
    let b = broker();
    let mut c = client(&b);
    let expires = [("x-expires", FieldValue::I32(150))];
    declare_with(&mut c, "idle", &expires);
    declare_with(&mut c, "consumed", &expires);
    declare_with(&mut c, "polled", &expires);
    c.publish(1, "", "idle", &no_props(), b"goes with its queue");
    consume_with(&mut c, 1, "consumed", "keep", FieldTable::new());
    tick(&b);
    assert!(queue_exists(&b, "idle"), "not due yet");
    advance(100);
    assert!(c.get(1, "polled", true).is_none(), "basic.get uses the queue");
    advance(100);
    tick(&b);
    assert!(!queue_exists(&b, "idle"), "unused for longer than x-expires");
    assert!(queue_exists(&b, "consumed"), "a queue with a consumer is in use");
    assert!(queue_exists(&b, "polled"), "basic.get restarted the timer");
    // a redeclare restarts it too
    declare_with(&mut c, "polled", &expires);
    c.rpc(1, BasicCancel { consumer_tag: "keep".into(), nowait: false }, "basic.cancel-ok");
    advance(100);
    tick(&b);
    assert!(queue_exists(&b, "consumed"), "the timer starts when the last consumer leaves");
    assert!(queue_exists(&b, "polled"));
    advance(100);
    tick(&b);
    assert!(!queue_exists(&b, "consumed"));
    assert!(!queue_exists(&b, "polled"));
}

#[test]
fn priority_queue_delivers_highest_first_and_requeues_in_place() {
    let b = broker();
    let mut c = client(&b);
    declare_with(&mut c, "q", &[("x-max-priority", FieldValue::I32(5))]);
    let with = |p: Option<u8>| BasicProperties { priority: p, ..Default::default() };
    for (i, p) in [Some(1), Some(5), Some(9), None, Some(3), Some(5)].into_iter().enumerate() {
        c.publish(1, "", "q", &with(p), format!("m{i}").as_bytes());
    }
    let (_, item) = c.get(1, "q", false).unwrap();
    assert_eq!(item.body(), b"m1");
    let (_, item) = c.get(1, "q", false).unwrap();
    assert_eq!(item.body(), b"m2", "a priority above the maximum counts as the maximum");
    c.send(1, BasicNack { delivery_tag: 0, multiple: true, requeue: true });
    let mut got = Vec::new();
    while let Some((ok, item)) = c.get(1, "q", true) {
        got.push((String::from_utf8_lossy(item.body()).into_owned(), ok.redelivered));
    }
    let want = [("m1", true), ("m2", true), ("m5", false), ("m4", false), ("m0", false), ("m3", false)];
    assert_eq!(got, want.map(|(b, r)| (b.to_owned(), r)));
    // consumers see the same order
    for (i, p) in [0u8, 2, 4, 2].into_iter().enumerate() {
        c.publish(1, "", "q", &with(Some(p)), format!("n{i}").as_bytes());
    }
    c.consume(1, "q", "c");
    assert_eq!(bodies(&c.recv_items()), ["n2", "n1", "n3", "n0"]);
}

#[test]
fn single_active_consumer_hands_over_in_registration_order() {
    let b = broker();
    let mut c = client(&b);
    for ch in 2..=4 {
        c.open_channel(ch);
    }
    declare_with(&mut c, "q", &[("x-single-active-consumer", FieldValue::Bool(true))]);
    consume_with(&mut c, 1, "q", "a", FieldTable::new());
    consume_with(&mut c, 2, "q", "b", FieldTable::new());
    consume_with(&mut c, 3, "q", "c", FieldTable::new());
    assert_eq!(c.counts(4, "q"), (0, 3));
    for i in 0..3 {
        c.publish(4, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    let got = deliveries(&c.recv_items());
    assert_eq!(got.iter().map(|(t, _, _)| t.as_str()).collect::<Vec<_>>(), ["a", "a", "a"]);
    c.ack(1, 0, true);
    c.send(1, BasicCancel { consumer_tag: "a".into(), nowait: false });
    let items = c.recv_items();
    assert_eq!(items.len(), 1, "no cancel notification to the others: {items:#?}");
    c.publish(4, "", "q", &no_props(), b"m3");
    let got = deliveries(&c.recv_items());
    assert_eq!(got, [("b".to_owned(), 1, "m3".to_owned())]);
    // b's channel closes with m3 unacked: c gets it back, then the next one
    c.send(2, ChannelClose::default());
    let mut items = c.recv_items();
    assert!(items.iter().any(|i| i.channel == 2 && i.method.name() == "channel.close-ok"));
    c.publish(4, "", "q", &no_props(), b"m4");
    items.extend(c.recv_items());
    let got: Vec<_> = deliveries(&items).into_iter().map(|(t, _, b)| (t, b)).collect();
    assert_eq!(got, [("c".to_owned(), "m3".to_owned()), ("c".to_owned(), "m4".to_owned())]);
    // an exclusive consumer is refused on such a queue
    c.send(4, BasicConsume { queue: "q".into(), exclusive: true, ..Default::default() });
    let close = c.expect_channel_close(4);
    assert_eq!(&*close.reply_text, "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use");
}

#[test]
fn consumer_priorities_prefer_higher_priority_with_credit() {
    let b = broker();
    let mut c = client(&b);
    for ch in 2..=4 {
        c.open_channel(ch);
    }
    c.queue(1, "q");
    c.qos(1, 2, false);
    c.qos(3, 2, false);
    let prio = |p: i32| table(&[("x-priority", FieldValue::I32(p))]);
    consume_with(&mut c, 1, "q", "hi1", prio(5));
    consume_with(&mut c, 2, "q", "lo", FieldTable::new());
    consume_with(&mut c, 3, "q", "hi2", prio(5));
    for i in 0..6 {
        c.publish(4, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    let got: Vec<_> = deliveries(&c.recv_items()).into_iter().map(|(t, _, b)| format!("{t}:{b}")).collect();
    assert_eq!(got, ["hi1:m0", "hi2:m1", "hi1:m2", "hi2:m3", "lo:m4", "lo:m5"]);
    c.ack(1, 0, true);
    c.publish(4, "", "q", &no_props(), b"m6");
    assert_eq!(deliveries(&c.recv_items()), [("hi1".to_owned(), 3, "m6".to_owned())]);
}
