//! Direct reply-to.

use crate::harness::*;

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Consumes from the reply pseudo-queue (no-ack) on `channel`; returns the consumer tag.
fn consume_replies(c: &mut TestClient, channel: u16, tag: &str) -> String {
    let consume =
        BasicConsume { queue: REPLY_TO.into(), consumer_tag: tag.into(), no_ack: true, ..Default::default() };
    match c.rpc(channel, consume, "basic.consume-ok").method {
        Method::BasicConsumeOk(ok) => ok.consumer_tag.to_string(),
        _ => unreachable!(),
    }
}

fn request_props() -> BasicProperties {
    BasicProperties { reply_to: Some(REPLY_TO.into()), correlation_id: Some("c1".into()), ..no_props() }
}

/// The requester publishes a request to queue "rpc"; the server takes it and returns its reply_to.
fn request(requester: &mut TestClient, channel: u16, server: &mut TestClient) -> String {
    requester.publish(channel, "", "rpc", &request_props(), b"request");
    let (_, item) = server.get(1, "rpc", true).expect("the request");
    item.props().reply_to.as_ref().expect("reply_to").to_string()
}

#[test]
fn direct_reply_to_round_trip() {
    let b = broker();
    let mut requester = client(&b);
    let mut server = client(&b);
    server.queue(1, "rpc");
    let tag = consume_replies(&mut requester, 1, "");
    assert!(tag.starts_with("amq.ctag-"), "{tag}");
    let reply_to = request(&mut requester, 1, &mut server);
    assert!(
        reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > REPLY_TO.len() + 20,
        "{reply_to}"
    );

    server.publish(
        1,
        "",
        &reply_to,
        &BasicProperties { correlation_id: Some("c1".into()), ..no_props() },
        b"r1",
    );
    server.publish(1, "", &reply_to, &no_props(), b"r2");
    server.expect_nothing();
    let items = requester.recv_items();
    // As in RabbitMQ, replies carry the channel's next delivery tag without taking it.
    let want = |body: &str| (tag.clone(), 1, body.to_owned());
    assert_eq!(deliveries(&items), [want("r1"), want("r2")]);
    let d = deliver(&items[0]);
    assert_eq!((&*d.exchange, &*d.routing_key), ("", reply_to.as_str()));
    assert_eq!(items[0].props().correlation_id.as_deref(), Some("c1"));

    // Both the pseudo-queue and the handed-out name exist, with one consumer.
    assert_eq!(server.counts(1, &reply_to), (0, 1));
    assert_eq!(server.counts(1, REPLY_TO), (0, 1));
    // The requester's channel is still free for ordinary deliveries, which take tags as usual.
    requester.queue(1, "work");
    requester.consume(1, "work", "w");
    requester.expect_one(1, "basic.consume-ok");
    requester.publish(1, "", "work", &no_props(), b"job");
    assert_eq!(deliveries(&requester.recv_items()), [("w".to_owned(), 1, "job".to_owned())]);
}

#[test]
fn direct_reply_to_errors_match_rabbitmq() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "rpc");
    c.send(1, BasicConsume { queue: REPLY_TO.into(), no_ack: false, ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!((close.reply_code, close.class_id, close.method_id), (406, 60, 20));
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - reply consumer cannot acknowledge");

    c.open_channel(1);
    c.publish(1, "", "rpc", &request_props(), b"request");
    let close = c.expect_channel_close(1);
    assert_eq!((close.reply_code, close.class_id, close.method_id), (406, 60, 40));
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - fast reply consumer does not exist");

    c.open_channel(1);
    consume_replies(&mut c, 1, "r1");
    c.send(
        1,
        BasicConsume {
            queue: REPLY_TO.into(),
            consumer_tag: "r2".into(),
            no_ack: true,
            ..Default::default()
        },
    );
    let close = c.expect_channel_close(1);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - reply consumer already set");

    c.open_channel(1);
    c.send(
        1,
        QueueDeclare { queue: "amq.rabbitmq.reply-to.bogus".into(), passive: true, ..Default::default() },
    );
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no queue 'amq.rabbitmq.reply-to.bogus' in vhost '/'");

    // A tag in use on the channel: a connection error, as for any consumer.
    c.open_channel(1);
    c.consume(1, "rpc", "taken");
    c.expect_one(1, "basic.consume-ok");
    c.send(
        1,
        BasicConsume {
            queue: REPLY_TO.into(),
            consumer_tag: "taken".into(),
            no_ack: true,
            ..Default::default()
        },
    );
    let close = c.expect_connection_close();
    assert_eq!(&*close.reply_text, "NOT_ALLOWED - attempt to reuse consumer tag 'taken'");
}

#[test]
fn direct_reply_to_drops_replies_nobody_waits_for() {
    let b = broker();
    let mut requester = client(&b);
    requester.open_channel(2);
    let mut server = client(&b);
    server.queue(1, "rpc");
    consume_replies(&mut requester, 1, "one");
    let tag_two = consume_replies(&mut requester, 2, "two");
    let first = request(&mut requester, 1, &mut server);
    let second = request(&mut requester, 2, &mut server);
    assert_ne!(first, second);
    let mandatory =
        |key: &str| BasicPublish { routing_key: key.into(), mandatory: true, ..Default::default() };

    // A forged name (the second one with another key) reaches nobody.
    let (head, _) = second.rsplit_once('.').unwrap();
    let forged = format!("{head}.AAAAAAAAAAAAAAAAAAAAAA==");
    server.publish_with(1, mandatory(&forged), &no_props(), b"forged");
    let ret = server.expect_one(1, "basic.return");
    assert!(
        matches!(&ret.method, Method::BasicReturn(r) if r.reply_code == 312 && &*r.reply_text == "NO_ROUTE")
    );
    requester.expect_nothing();

    // Cancelled consumer: dropped, returned when mandatory.
    requester.rpc(1, BasicCancel { consumer_tag: "one".into(), nowait: false }, "basic.cancel-ok");
    server.publish_with(1, mandatory(&first), &no_props(), b"late");
    server.expect_one(1, "basic.return");
    server.send(1, QueueDeclare { queue: first.as_str().into(), passive: true, ..Default::default() });
    assert_eq!(server.expect_channel_close(1).reply_code, 404);
    server.open_channel(1);
    requester.expect_nothing();

    // A delivered mandatory reply is returned all the same, as in RabbitMQ (no queue took it).
    server.publish_with(1, mandatory(&second), &no_props(), b"delivered");
    server.expect_one(1, "basic.return");
    assert_eq!(deliveries(&requester.recv_items()), [(tag_two, 1, "delivered".to_owned())]);

    // The requester's connection goes: dropped.
    requester.disconnect();
    server.publish(1, "", &second, &no_props(), b"gone");
    server.expect_nothing();
    assert_eq!(server.counts(1, REPLY_TO), (0, 1));
}

#[test]
fn direct_reply_to_in_a_transaction_is_rewritten_at_publish() {
    let b = broker();
    let mut requester = client(&b);
    let mut server = client(&b);
    server.queue(1, "rpc");
    consume_replies(&mut requester, 1, "r");
    requester.rpc(1, TxSelect {}, "tx.select-ok");
    requester.publish(1, "", "rpc", &request_props(), b"request");
    requester.rpc(1, TxCommit {}, "tx.commit-ok");
    let (_, item) = server.get(1, "rpc", true).expect("the request");
    let reply_to = item.props().reply_to.as_ref().unwrap().to_string();
    assert!(reply_to.starts_with("amq.rabbitmq.reply-to."));
    server.publish(1, "", &reply_to, &no_props(), b"reply");
    assert_eq!(bodies(&requester.recv_items()), ["reply"]);
}
