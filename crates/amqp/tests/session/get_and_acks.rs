//! basic.get and acknowledgements.

use crate::harness::*;

#[test]
fn basic_get_reports_the_remaining_message_count() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    assert!(c.get(1, "q", false).is_none(), "get-empty on an empty queue");
    for m in ["a", "b", "c"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    let mut seen = Vec::new();
    while let Some((ok, item)) = c.get(1, "q", false) {
        seen.push((ok.delivery_tag, ok.message_count, String::from_utf8_lossy(item.body()).into_owned()));
    }
    assert_eq!(seen, vec![(1, 2, "a".into()), (2, 1, "b".into()), (3, 0, "c".into())]);
    assert_eq!(c.counts(1, "q").0, 0);
}

#[test]
fn basic_get_from_missing_queue_is_404() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, BasicGet { queue: "ghost".into(), ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no queue 'ghost' in vhost '/'");
    assert_eq!((close.class_id, close.method_id), (60, 70));
}

#[test]
fn ack_of_unknown_tag_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.ack(1, 9, false);
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - unknown delivery tag 9");
    assert_eq!((close.class_id, close.method_id), (60, 80));
    assert!(c.conn.is_open());
}

#[test]
fn double_ack_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.get(1, "q", false).unwrap();
    c.ack(1, 1, false);
    c.expect_nothing();
    c.ack(1, 1, false);
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - unknown delivery tag 1");
}

#[test]
fn ack_of_a_no_ack_delivery_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    let (ok, _) = c.get(1, "q", true).unwrap();
    c.ack(1, ok.delivery_tag, false);
    assert_eq!(c.expect_channel_close(1).reply_code, 406);
}

#[test]
fn multiple_ack_settles_every_earlier_tag() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    for m in ["a", "b", "c"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    for _ in 0..3 {
        c.get(2, "q", false).unwrap();
    }
    c.ack(2, 2, true);
    c.expect_nothing();
    c.ack(2, 1, false);
    let close = c.expect_channel_close(2);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - unknown delivery tag 1", "1 went with 2");
    // Closing channel 2 requeued only the unacknowledged c.
    assert_eq!(c.counts(1, "q").0, 1);
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.redelivered), (&b"c"[..], true));
}

#[test]
fn multiple_ack_with_tag_zero_settles_everything() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for m in ["a", "b"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    c.get(1, "q", false).unwrap();
    c.get(1, "q", false).unwrap();
    c.ack(1, 0, true);
    c.expect_nothing();
    c.rpc(1, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    c.open_channel(1);
    assert_eq!(c.counts(1, "q").0, 0, "nothing left to requeue");
}

#[test]
fn basic_recover_requeues_outstanding_deliveries() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.get(1, "q", false).unwrap();
    c.rpc(1, BasicRecover { requeue: true }, "basic.recover-ok");
    let (ok, _) = c.get(1, "q", false).unwrap();
    assert!(ok.redelivered);
    assert_eq!(ok.delivery_tag, 2);
}
