//! Consumers.

use crate::harness::*;

#[test]
fn exclusive_consumer_blocks_others() {
    let b = broker();
    let mut a = client(&b);
    let mut z = client(&b);
    a.queue(1, "q");
    a.send(
        1,
        BasicConsume { queue: "q".into(), consumer_tag: "a".into(), exclusive: true, ..Default::default() },
    );
    a.expect_one(1, "basic.consume-ok");
    z.consume(1, "q", "z");
    let close = z.expect_channel_close(1);
    assert_eq!(close.reply_code, 403);
    assert_eq!(&*close.reply_text, "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use");
}

#[test]
fn reusing_a_consumer_tag_on_a_channel_is_not_allowed() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.consume(1, "q", "same");
    c.recv();
    c.consume(1, "q", "same");
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 530);
    assert_eq!(&*close.reply_text, "NOT_ALLOWED - attempt to reuse consumer tag 'same'");
}

#[test]
fn no_ack_consumer_gets_everything_and_needs_no_acks() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.qos(1, 1, false);
    c.send(
        1,
        BasicConsume { queue: "q".into(), consumer_tag: "fast".into(), no_ack: true, ..Default::default() },
    );
    c.recv();
    for i in 0..3 {
        c.publish(1, "", "q", &no_props(), format!("{i}").as_bytes());
    }
    assert_eq!(bodies(&c.recv_items()), vec!["0", "1", "2"], "prefetch does not apply to no-ack");
    c.rpc(1, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    c.open_channel(1);
    assert_eq!(c.counts(1, "q").0, 0, "nothing to requeue");
}

#[test]
fn server_generated_consumer_tag() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.consume(1, "q", "");
    let item = c.expect_one(1, "basic.consume-ok");
    let Method::BasicConsumeOk(ok) = item.method else { unreachable!() };
    assert!(ok.consumer_tag.starts_with("amq.ctag-"), "{}", ok.consumer_tag);
    c.publish(1, "", "q", &no_props(), b"x");
    let items = c.recv_items();
    assert_eq!(deliver(&items[0]).consumer_tag, ok.consumer_tag);
}

#[test]
fn cancelled_consumer_gets_no_more_deliveries() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.consume(1, "q", "c");
    c.recv();
    c.rpc(1, BasicCancel { consumer_tag: "c".into(), nowait: false }, "basic.cancel-ok");
    c.publish(1, "", "q", &no_props(), b"x");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (1, 0));
}

#[test]
fn deliveries_go_to_the_consumers_channel() {
    let b = broker();
    let mut c = client(&b);
    c.open_channel(5);
    c.queue(1, "q");
    c.consume(5, "q", "c");
    c.recv();
    c.publish(1, "", "q", &no_props(), b"x");
    let items = c.recv_items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].channel, 5);
}

#[test]
fn disconnect_requeues_unacked_for_other_consumers() {
    let b = broker();
    let mut a = client(&b);
    let mut z = client(&b);
    a.queue(1, "q");
    a.publish(1, "", "q", &no_props(), b"x");
    a.consume(1, "q", "a");
    assert_eq!(bodies(&a.recv_items()), vec!["x"]);
    z.consume(1, "q", "z");
    z.expect_one(1, "basic.consume-ok");
    a.disconnect();
    let items = z.recv_items();
    assert_eq!(bodies(&items), vec!["x"]);
    assert!(deliver(&items[0]).redelivered);
}

#[test]
fn consumer_tag_is_free_again_after_the_server_cancelled_it() {
    let b = broker();
    let mut a = TestClient::connect_with(&b, with_capabilities(&["consumer_cancel_notify"]));
    a.open_channel(1);
    let mut admin = client(&b);
    a.queue(1, "q");
    a.consume(1, "q", "c");
    a.expect_one(1, "basic.consume-ok");
    admin.rpc(1, QueueDelete { queue: "q".into(), ..Default::default() }, "queue.delete-ok");
    a.expect_one(1, "basic.cancel");
    // The client was told consumer "c" is gone; subscribing again under that tag is legitimate.
    a.queue(1, "q");
    a.consume(1, "q", "c");
    a.expect_one(1, "basic.consume-ok");
    assert!(a.conn.is_open());
}

#[test]
fn ack_on_another_channel_is_unknown() {
    let b = broker();
    let mut c = client(&b);
    c.open_channel(2);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.get(1, "q", false).unwrap();
    c.ack(2, 1, false);
    assert_eq!(c.expect_channel_close(2).reply_code, 406);
    c.ack(1, 1, false);
    c.expect_nothing();
}

#[test]
fn immediate_publish_is_not_implemented() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    let publish =
        BasicPublish { exchange: "".into(), routing_key: "q".into(), immediate: true, ..Default::default() };
    c.publish_with(1, publish, &no_props(), b"x");
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 540);
    assert_eq!(&*close.reply_text, "NOT_IMPLEMENTED - immediate=true");
    assert_eq!((close.class_id, close.method_id), (60, 40));
    assert_eq!(b.vhost("/").unwrap().queue("q").unwrap().stats().ready, 0);
}

#[test]
fn publish_to_internal_exchange_is_refused() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(
        1,
        ExchangeDeclare {
            exchange: "inner".into(),
            kind: "fanout".into(),
            internal: true,
            ..Default::default()
        },
        "exchange.declare-ok",
    );
    c.publish(1, "inner", "", &no_props(), b"x");
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 403);
    assert_eq!(
        &*close.reply_text,
        "ACCESS_REFUSED - cannot publish to internal exchange 'inner' in vhost '/'"
    );
}

#[test]
fn internal_exchange_is_reachable_through_another_exchange() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(
        1,
        ExchangeDeclare {
            exchange: "inner".into(),
            kind: "fanout".into(),
            internal: true,
            ..Default::default()
        },
        "exchange.declare-ok",
    );
    c.queue(1, "q");
    c.bind(1, "q", "inner", "");
    c.rpc(
        1,
        ExchangeBind { destination: "inner".into(), source: "amq.fanout".into(), ..Default::default() },
        "exchange.bind-ok",
    );
    c.publish(1, "amq.fanout", "", &no_props(), b"x");
    assert_eq!(c.counts(1, "q").0, 1);
}

#[test]
fn auto_delete_exchange_goes_with_its_last_binding() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(
        1,
        ExchangeDeclare {
            exchange: "ax".into(),
            kind: "direct".into(),
            auto_delete: true,
            ..Default::default()
        },
        "exchange.declare-ok",
    );
    c.queue(1, "q1");
    c.queue(1, "q2");
    c.bind(1, "q1", "ax", "k");
    c.bind(1, "q2", "ax", "k");
    let vhost = b.vhost("/").unwrap();
    let unbind = |q: &str| QueueUnbind {
        queue: q.into(),
        exchange: "ax".into(),
        routing_key: "k".into(),
        ..Default::default()
    };
    c.rpc(1, unbind("q1"), "queue.unbind-ok");
    assert!(vhost.exchange("ax").is_ok(), "still bound to q2");
    c.rpc(1, QueueDelete { queue: "q2".into(), ..Default::default() }, "queue.delete-ok");
    assert!(vhost.exchange("ax").is_err(), "last binding gone with q2");
}

#[test]
fn exclusive_queue_cannot_be_bound_purged_or_deleted_by_others() {
    let b = broker();
    let mut owner = client(&b);
    let mut other = client(&b);
    owner.declare_queue(1, QueueDeclare { queue: "mine".into(), exclusive: true, ..Default::default() });
    other.send(1, QueueBind { queue: "mine".into(), exchange: "amq.fanout".into(), ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    other.open_channel(1);
    other.send(1, QueuePurge { queue: "mine".into(), ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    other.open_channel(1);
    other.send(1, QueueDelete { queue: "mine".into(), ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    assert!(queue_exists(&b, "mine"));
}

#[test]
fn deleting_a_missing_queue_or_exchange_succeeds() {
    let b = broker();
    let mut c = client(&b);
    let ok = c.rpc(1, QueueDelete { queue: "ghost".into(), ..Default::default() }, "queue.delete-ok");
    assert_eq!(ok.method, Method::QueueDeleteOk(QueueDeleteOk { message_count: 0 }));
    c.rpc(1, ExchangeDelete { exchange: "ghost".into(), ..Default::default() }, "exchange.delete-ok");
    c.send(1, ExchangeDelete { exchange: "amq.direct".into(), ..Default::default() });
    assert_eq!(c.expect_channel_close(1).reply_code, 403);
}
