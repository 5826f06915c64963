//! Transactions and publisher confirms.

use crate::harness::*;

#[test]
fn tx_publishes_are_invisible_until_commit() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.rpc(2, TxSelect, "tx.select-ok");
    c.publish(2, "", "q", &no_props(), b"one");
    c.publish(2, "", "q", &no_props(), b"two");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q").0, 0, "not before commit");
    c.rpc(2, TxCommit, "tx.commit-ok");
    assert_eq!(c.counts(1, "q").0, 2);
    // The channel stays transactional: the next publish waits for the next commit.
    c.publish(2, "", "q", &no_props(), b"three");
    assert_eq!(c.counts(1, "q").0, 2);
    c.rpc(2, TxCommit, "tx.commit-ok");
    assert_eq!(c.counts(1, "q").0, 3);
}

#[test]
fn pipelined_commits_are_each_answered_in_order() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.rpc(1, TxSelect, "tx.select-ok");
    // Three commits (with publishes between them) arrive in one read: three commit-oks.
    for body in [b"one", b"two", b"six"] {
        c.push_publish(1, "", "q", &no_props(), body);
        c.push(1, TxCommit);
    }
    c.pump();
    let replies: Vec<_> = c.recv_items().into_iter().map(|i| i.method.name()).collect();
    assert_eq!(replies, ["tx.commit-ok"; 3]);
    assert_eq!(c.counts(1, "q").0, 3);
}

#[test]
fn tx_rollback_discards_publishes() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.rpc(1, TxSelect, "tx.select-ok");
    c.publish(1, "", "q", &no_props(), b"oops");
    c.rpc(1, TxRollback, "tx.rollback-ok");
    c.rpc(1, TxCommit, "tx.commit-ok");
    assert_eq!(c.counts(1, "q").0, 0);
    c.publish(1, "", "q", &no_props(), b"kept");
    c.rpc(1, TxCommit, "tx.commit-ok");
    let (_, item) = c.get(1, "q", true).unwrap();
    assert_eq!(item.body(), b"kept");
}

#[test]
fn tx_ack_applies_only_on_commit() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.publish(1, "", "q", &no_props(), b"x");
    c.rpc(2, TxSelect, "tx.select-ok");
    let (ok, _) = c.get(2, "q", false).unwrap();

    // Rolled back: the delivery is outstanding again and can be acked (again) later.
    c.ack(2, ok.delivery_tag, false);
    c.rpc(2, TxRollback, "tx.rollback-ok");
    c.ack(2, ok.delivery_tag, false);
    c.expect_nothing();
    c.rpc(2, TxCommit, "tx.commit-ok");
    // Committed: the tag is gone for good.
    c.ack(2, ok.delivery_tag, false);
    let close = c.expect_channel_close(2);
    assert_eq!(close.reply_code, 406);
    assert_eq!(c.counts(1, "q"), (0, 0), "the committed ack removed the message");
}

#[test]
fn tx_uncommitted_ack_keeps_the_message_on_rollback_and_close() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.publish(1, "", "q", &no_props(), b"x");
    c.rpc(2, TxSelect, "tx.select-ok");
    c.get(2, "q", false).unwrap();
    c.ack(2, 1, false);
    c.rpc(2, TxRollback, "tx.rollback-ok");
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert_eq!(c.counts(1, "q").0, 1, "rolled-back ack: the message is requeued on close");
}

#[test]
fn tx_uncommitted_ack_is_requeued_when_the_channel_closes() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.publish(1, "", "q", &no_props(), b"x");
    c.rpc(2, TxSelect, "tx.select-ok");
    c.get(2, "q", false).unwrap();
    c.ack(2, 1, false);
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert_eq!(c.counts(1, "q").0, 1, "an uncommitted ack never happened");
}

#[test]
fn tx_and_confirm_modes_exclude_each_other() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(1, TxSelect, "tx.select-ok");
    c.send(1, ConfirmSelect { nowait: false });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    c.open_channel(1);
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    c.send(1, TxSelect);
    assert_eq!(c.expect_channel_close(1).reply_code, 406);
}

#[test]
fn tx_commit_without_select_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, TxCommit);
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - channel is not transactional");
}

#[test]
fn confirms_one_multiple_ack_per_batch() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    for i in 0..5 {
        c.push_publish(1, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    c.pump();
    let items = c.recv_items();
    assert_eq!(items.len(), 1, "{items:#?}");
    match &items[0].method {
        Method::BasicAck(ack) => {
            assert_eq!(ack.delivery_tag, 5);
            assert!(ack.multiple);
        }
        other => panic!("expected basic.ack, got {other:?}"),
    }
    assert_eq!(c.counts(1, "q").0, 5);

    // The next batch continues the numbering; a single publish is acked alone.
    c.publish(1, "", "q", &no_props(), b"m5");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 6, multiple: false }));
    c.expect_nothing();
}

#[test]
fn confirm_select_nowait_sends_no_reply() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, ConfirmSelect { nowait: true });
    c.expect_nothing();
    c.publish(1, "amq.direct", "nobody", &no_props(), b"x");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 1, multiple: false }));
}

#[test]
fn mandatory_unroutable_is_returned_before_its_confirm() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    let publish = BasicPublish {
        exchange: "amq.direct".into(),
        routing_key: "nobody-home".into(),
        mandatory: true,
        ..Default::default()
    };
    let props = BasicProperties { correlation_id: Some("c-7".into()), ..Default::default() };
    c.publish_with(1, publish, &props, b"bounce");
    let items = c.recv_items();
    assert_eq!(items.len(), 2, "{items:#?}");
    match &items[0].method {
        Method::BasicReturn(r) => {
            assert_eq!(r.reply_code, 312);
            assert_eq!(&*r.reply_text, "NO_ROUTE");
            assert_eq!((&*r.exchange, &*r.routing_key), ("amq.direct", "nobody-home"));
        }
        other => panic!("basic.return comes first, got {other:?}"),
    }
    assert_eq!(items[0].body(), b"bounce");
    assert_eq!(items[0].props(), &props);
    assert_eq!(items[1].method, Method::BasicAck(BasicAck { delivery_tag: 1, multiple: false }));
}

#[test]
fn unroutable_without_mandatory_is_dropped_silently() {
    let b = broker();
    let mut c = client(&b);
    c.publish(1, "amq.direct", "nobody-home", &no_props(), b"x");
    c.expect_nothing();
    assert!(c.conn.channel_is_open(1));
}

#[test]
fn mandatory_routable_is_not_returned() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    let publish =
        BasicPublish { exchange: "".into(), routing_key: "q".into(), mandatory: true, ..Default::default() };
    c.publish_with(1, publish, &no_props(), b"x");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q").0, 1);
}
