//! Declare rules.

use crate::harness::*;

#[test]
fn redeclare_with_different_durable_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.send(1, QueueDeclare { queue: "q".into(), durable: true, ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(
        &*close.reply_text,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'"
    );
    assert_eq!((close.class_id, close.method_id), (50, 10));
    // An equivalent redeclare is fine, and reports the counts.
    c.open_channel(1);
    c.publish(1, "", "q", &no_props(), b"x");
    let ok = c.queue(1, "q");
    assert_eq!(ok.message_count, 1);
}

#[test]
fn redeclare_with_different_ttl_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    let args = |ms: i32| table(&[("x-message-ttl", FieldValue::I32(ms))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments: args(1000), ..Default::default() });
    // Same value in another integer width is equivalent.
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "q".into(),
            arguments: table(&[("x-message-ttl", FieldValue::I64(1000))]),
            ..Default::default()
        },
    );
    c.send(1, QueueDeclare { queue: "q".into(), arguments: args(2000), ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert!(close.reply_text.contains("inequivalent arg 'x-message-ttl'"), "{}", close.reply_text);
}

#[test]
fn redeclare_exchange_with_different_type_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "x", "direct");
    c.exchange(1, "x", "direct");
    c.send(1, ExchangeDeclare { exchange: "x".into(), kind: "topic".into(), ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(
        &*close.reply_text,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': received 'topic' but current is 'direct'"
    );
}

#[test]
fn declaring_a_reserved_exchange_name_is_access_refused() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, ExchangeDeclare { exchange: "amq.foo".into(), kind: "direct".into(), ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 403);
    assert_eq!(
        &*close.reply_text,
        "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'"
    );
    assert_eq!((close.class_id, close.method_id), (40, 10));
    // The predeclared amq.* exchanges redeclare fine with their own type.
    c.open_channel(1);
    c.send(
        1,
        ExchangeDeclare {
            exchange: "amq.topic".into(),
            kind: "topic".into(),
            durable: true,
            ..Default::default()
        },
    );
    c.expect_one(1, "exchange.declare-ok");
}

#[test]
fn declaring_a_reserved_queue_name_is_access_refused() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, QueueDeclare { queue: "amq.q".into(), ..Default::default() });
    assert_eq!(c.expect_channel_close(1).reply_code, 403);
}

#[test]
fn unknown_exchange_type_closes_the_connection_with_503() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, ExchangeDeclare { exchange: "x".into(), kind: "nonsense".into(), ..Default::default() });
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 503);
    assert!(close.reply_text.starts_with("COMMAND_INVALID - "), "{}", close.reply_text);
    assert!(close.reply_text.contains("exchange type 'nonsense'"), "{}", close.reply_text);
    assert_eq!((close.class_id, close.method_id), (40, 10));
    assert!(b.vhost("/").unwrap().exchange("x").is_err());
}

#[test]
fn passive_declare_of_missing_exchange_is_404() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, ExchangeDeclare { exchange: "ghost".into(), passive: true, ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no exchange 'ghost' in vhost '/'");
}
