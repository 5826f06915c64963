//! TTL.

use crate::harness::*;

#[test]
fn message_ttl_zero_without_consumer_expires_at_once() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "ephemeral".into(),
            arguments: table(&[("x-message-ttl", FieldValue::I32(0))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "ephemeral", &no_props(), b"gone");
    assert!(c.get(1, "ephemeral", false).is_none());
    assert_eq!(c.counts(1, "ephemeral").0, 0);
}

#[test]
fn message_ttl_zero_with_a_consumer_still_delivers() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "ephemeral".into(),
            arguments: table(&[("x-message-ttl", FieldValue::I32(0))]),
            ..Default::default()
        },
    );
    c.consume(1, "ephemeral", "c");
    c.recv();
    c.publish(1, "", "ephemeral", &no_props(), b"caught");
    assert_eq!(bodies(&c.recv_items()), vec!["caught"]);
}

#[test]
fn per_message_expiration_zero_expires_at_once() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    let props = BasicProperties { expiration: Some("0".into()), ..Default::default() };
    c.publish(1, "", "q", &props, b"gone");
    c.publish(1, "", "q", &no_props(), b"stays");
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.message_count), (&b"stays"[..], 0));
}

#[test]
fn long_ttl_keeps_the_message() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "q".into(),
            arguments: table(&[("x-message-ttl", FieldValue::I32(60_000))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "q", &no_props(), b"kept");
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"kept");
}
