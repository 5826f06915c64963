//! Exclusive and auto-delete queues, queue.delete.

use crate::harness::*;

#[test]
fn exclusive_queue_is_locked_to_its_connection() {
    let b = broker();
    let mut owner = client(&b);
    let mut other = client(&b);
    owner.declare_queue(1, QueueDeclare { queue: "mine".into(), exclusive: true, ..Default::default() });

    other.send(1, QueueDeclare { queue: "mine".into(), exclusive: true, ..Default::default() });
    let close = other.expect_channel_close(1);
    assert_eq!(close.reply_code, 405);
    assert!(
        close.reply_text.starts_with(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine' in vhost '/'"
        ),
        "{}",
        close.reply_text
    );
    assert_eq!((close.class_id, close.method_id), (50, 10));

    other.open_channel(1);
    other.send(1, QueueDeclare { queue: "mine".into(), passive: true, ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    other.open_channel(1);
    other.consume(1, "mine", "thief");
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    other.open_channel(1);
    other.send(1, BasicGet { queue: "mine".into(), ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);

    // The owner uses it from any of its channels.
    owner.open_channel(2);
    owner.consume(2, "mine", "me");
    owner.expect_one(2, "basic.consume-ok");
}

#[test]
fn exclusive_queue_is_deleted_when_its_session_closes() {
    let b = broker();
    let mut owner = client(&b);
    let mut other = client(&b);
    owner.declare_queue(1, QueueDeclare { queue: "temp".into(), exclusive: true, ..Default::default() });
    owner.bind(1, "temp", "amq.fanout", "");
    assert!(queue_exists(&b, "temp"));

    owner.session.close();
    assert!(!queue_exists(&b, "temp"));
    other.send(1, QueueDeclare { queue: "temp".into(), passive: true, ..Default::default() });
    let close = other.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no queue 'temp' in vhost '/'");
    // Its binding went with it; the name is free for anyone.
    other.open_channel(1);
    other.declare_queue(1, QueueDeclare { queue: "temp".into(), exclusive: true, ..Default::default() });
    other.publish(1, "amq.fanout", "", &no_props(), b"x");
    assert_eq!(other.counts(1, "temp").0, 0, "the old binding is gone");
}

#[test]
fn non_exclusive_queue_survives_its_declaring_connection() {
    let b = broker();
    let owner = client(&b);
    let mut other = client(&b);
    let mut owner = owner;
    owner.queue(1, "shared");
    owner.publish(1, "", "shared", &no_props(), b"x");
    owner.disconnect();
    assert_eq!(other.counts(1, "shared").0, 1);
}

#[test]
fn auto_delete_queue_goes_when_its_last_consumer_cancels() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(1, QueueDeclare { queue: "ad".into(), auto_delete: true, ..Default::default() });
    c.consume(1, "ad", "one");
    c.consume(1, "ad", "two");
    c.recv();
    c.rpc(1, BasicCancel { consumer_tag: "one".into(), nowait: false }, "basic.cancel-ok");
    assert!(queue_exists(&b, "ad"), "one consumer left");
    let ok = c.rpc(1, BasicCancel { consumer_tag: "two".into(), nowait: false }, "basic.cancel-ok");
    assert_eq!(ok.method, Method::BasicCancelOk(BasicCancelOk { consumer_tag: "two".into() }));
    assert!(!queue_exists(&b, "ad"));
    c.send(1, QueueDeclare { queue: "ad".into(), passive: true, ..Default::default() });
    assert_eq!(c.expect_channel_close(1).reply_code, 404);
}

#[test]
fn auto_delete_queue_without_consumers_stays() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(1, QueueDeclare { queue: "ad".into(), auto_delete: true, ..Default::default() });
    c.rpc(1, BasicCancel { consumer_tag: "never".into(), nowait: false }, "basic.cancel-ok");
    assert!(queue_exists(&b, "ad"));
}

#[test]
fn auto_delete_queue_goes_when_its_consumers_channel_closes() {
    let b = broker();
    let mut c = client(&b);
    c.open_channel(2);
    c.declare_queue(1, QueueDeclare { queue: "ad".into(), auto_delete: true, ..Default::default() });
    c.consume(2, "ad", "c");
    c.recv();
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert!(!queue_exists(&b, "ad"));
}

#[test]
fn queue_delete_notifies_consumers_that_asked() {
    let b = broker();
    let mut notified = TestClient::connect_with(&b, with_capabilities(&["consumer_cancel_notify"]));
    notified.open_channel(1);
    let mut silent = client(&b);
    let mut admin = client(&b);
    admin.queue(1, "doomed");
    admin.publish(1, "", "doomed", &no_props(), b"a");
    admin.publish(1, "", "doomed", &no_props(), b"b");
    notified.qos(1, 1, false);
    notified.consume(1, "doomed", "n");
    assert_eq!(notified.recv_items().len(), 2, "consume-ok and one delivery");
    silent.qos(1, 1, false);
    silent.consume(1, "doomed", "s");
    assert_eq!(silent.recv_items().len(), 2, "consume-ok and one delivery");

    admin.publish(1, "", "doomed", &no_props(), b"c");
    // a and b are out (unacked); c is ready.
    let ok = admin.rpc(1, QueueDelete { queue: "doomed".into(), ..Default::default() }, "queue.delete-ok");
    assert_eq!(ok.method, Method::QueueDeleteOk(QueueDeleteOk { message_count: 1 }));

    let cancel = notified.expect_one(1, "basic.cancel");
    assert_eq!(cancel.method, Method::BasicCancel(BasicCancel { consumer_tag: "n".into(), nowait: true }));
    silent.expect_nothing();
    assert!(!queue_exists(&b, "doomed"));
    // Acks of deliveries from the deleted queue are still accepted.
    notified.ack(1, 1, false);
    notified.expect_nothing();
}

#[test]
fn queue_delete_of_own_consumer_queue_notifies_first() {
    let b = broker();
    let mut c = TestClient::connect_with(&b, with_capabilities(&["consumer_cancel_notify"]));
    c.open_channel(1);
    c.queue(1, "q");
    c.consume(1, "q", "mine");
    c.recv();
    c.send(1, QueueDelete { queue: "q".into(), ..Default::default() });
    let names: Vec<&str> = c.recv_items().iter().map(|i| i.method.name()).collect();
    assert_eq!(names, vec!["basic.cancel", "queue.delete-ok"]);
    // The consumer is forgotten: its tag may be reused.
    c.queue(1, "q");
    c.consume(1, "q", "mine");
    c.expect_one(1, "basic.consume-ok");
}

#[test]
fn queue_delete_if_empty_and_if_unused() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.send(1, QueueDelete { queue: "q".into(), if_empty: true, ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty");
    c.open_channel(1);
    c.consume(1, "q", "c");
    c.recv();
    c.open_channel(2);
    c.send(2, QueueDelete { queue: "q".into(), if_unused: true, ..Default::default() });
    let close = c.expect_channel_close(2);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - queue 'q' in vhost '/' in use");
    assert!(queue_exists(&b, "q"));
}

#[test]
fn queue_purge_counts_and_drops_ready_messages() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for _ in 0..3 {
        c.publish(1, "", "q", &no_props(), b"x");
    }
    let ok = c.rpc(1, QueuePurge { queue: "q".into(), ..Default::default() }, "queue.purge-ok");
    assert_eq!(ok.method, Method::QueuePurgeOk(QueuePurgeOk { message_count: 3 }));
    assert_eq!(c.counts(1, "q").0, 0);
}
