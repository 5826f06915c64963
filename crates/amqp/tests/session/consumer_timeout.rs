//! Consumer timeout.

use crate::harness::*;

const TIMEOUT_TEXT: &str = "This timeout value can be configured, see consumers doc guide to learn more";

#[test]
fn consumer_timeout_closes_the_channel_and_requeues() {
    let b = broker();
    b.set_consumer_timeout(5);
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.publish(1, "", "q", &no_props(), b"x");
    c.consume(2, "q", "c");
    assert_eq!(bodies(&c.recv_items()), vec!["x"]);
    // Not yet: nothing happens.
    assert_eq!(check_timeouts(&b), 0);
    advance(20);
    assert_eq!(check_timeouts(&b), 1);
    assert_eq!(check_timeouts(&b), 0, "marked once");
    c.pump();
    let close = c.expect_channel_close(2);
    assert_eq!(close.reply_code, 406);
    assert_eq!(
        &*close.reply_text,
        format!(
            "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. \
             Timeout value used: 5 ms. {TIMEOUT_TEXT}"
        )
    );
    assert_eq!(c.counts(1, "q"), (1, 0), "requeued, the consumer gone");
    // Channel 1 (no deliveries) is untouched.
    let (ok, _) = c.get(1, "q", true).unwrap();
    assert!(ok.redelivered);
}

#[test]
fn queue_consumer_timeout_overrides_the_broker_setting_and_zero_disables() {
    let b = broker();
    b.set_consumer_timeout(0);
    let mut c = client(&b);
    c.queue(1, "plain");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "short".into(),
            arguments: table(&[("x-consumer-timeout", FieldValue::I32(1))]),
            ..Default::default()
        },
    );
    c.open_channel(2);
    c.publish(1, "", "plain", &no_props(), b"p");
    c.publish(1, "", "short", &no_props(), b"s");
    c.consume(1, "plain", "c1");
    c.recv();
    advance(10);
    assert_eq!(check_timeouts(&b), 0, "the broker's timeout is off");

    // basic.get deliveries count too, as in RabbitMQ, from the first check that sees them.
    c.get(2, "short", false).unwrap();
    assert_eq!(check_timeouts(&b), 0, "just delivered");
    advance(10);
    assert_eq!(check_timeouts(&b), 1);
    c.pump();
    let close = c.expect_channel_close(2);
    assert!(close.reply_text.contains("channel 2 timed out. Timeout value used: 1 ms."), "{close:?}");
    assert_eq!(c.counts(1, "short").0, 1);
}

#[test]
fn acknowledged_deliveries_do_not_time_out() {
    let b = broker();
    b.set_consumer_timeout(1);
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.consume(1, "q", "c");
    c.recv();
    c.ack(1, 1, false);
    advance(5);
    assert_eq!(check_timeouts(&b), 0);
    c.pump();
    c.expect_nothing();
}

#[test]
fn broker_default_consumer_timeout_is_thirty_minutes() {
    assert_eq!(broker().consumer_timeout(), 1_800_000);
}

#[test]
fn the_broker_tick_checks_consumer_timeouts_once_a_second() {
    let b = broker();
    b.set_consumer_timeout(5);
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.publish(1, "", "q", &no_props(), b"x");
    c.consume(2, "q", "c");
    c.recv();
    tick(&b); // the first check sees the delivery
    advance(500);
    tick(&b); // within the second since the last check: not checked again
    c.pump();
    c.expect_nothing();
    advance(500);
    tick(&b);
    c.pump();
    let close = c.expect_channel_close(2);
    assert!(close.reply_text.contains("Timeout value used: 5 ms."), "{close:?}");
}
