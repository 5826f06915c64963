//! Flow control as a session sees it: held back while a queue with consumers has a backlog past
//! its bound, woken when the backlog is half drained; never held back by a queue it consumes
//! from itself.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use warren_broker::FlowBound;

use crate::harness::*;

fn watched(c: &mut TestClient) -> Arc<AtomicUsize> {
    let woken = Arc::new(AtomicUsize::new(0));
    let w = woken.clone();
    c.session.set_flow_waker(Arc::new(move || _ = w.fetch_add(1, SeqCst)));
    woken
}

#[test]
fn a_publisher_is_held_back_until_the_backlog_is_half_drained() {
    let b = broker();
    b.set_flow_bound(FlowBound { messages: 4, bytes: u64::MAX });
    let mut consumer = client(&b);
    consumer.queue(1, "q");
    consumer.qos(1, 1, false);
    consumer.consume(1, "q", "c");
    let mut publisher = client(&b);
    let woken = watched(&mut publisher);
    for i in 0..5 {
        publisher.publish(1, "", "q", &no_props(), format!("m{i}").as_bytes());
        assert!(!publisher.session.held_back(), "one delivered, {} waiting: within the bound", i);
    }
    publisher.publish(1, "", "q", &no_props(), b"m5");
    assert!(publisher.session.held_back(), "five waiting: past the bound");
    let id = publisher.session.id();
    let shown = |b: &TestBroker| {
        let conn = b.registry().connection(id).unwrap().state();
        let channel = b.registry().channel_snapshots().into_iter().find(|c| c.connection == id).unwrap();
        (conn.as_str(), channel.state)
    };
    assert_eq!(shown(&b), ("flow", "flow"));
    // The consumer takes them one by one; at two waiting the publisher is woken.
    let mut tag = 0;
    for _ in 0..2 {
        consumer.recv_items();
        tag += 1;
        consumer.ack(1, tag, false);
        assert_eq!(woken.load(SeqCst), 0);
    }
    consumer.recv_items();
    tag += 1;
    consumer.ack(1, tag, false);
    assert_eq!(woken.load(SeqCst), 1, "woken once the backlog is down to half the bound");
    publisher.session.flow_released();
    assert!(!publisher.session.held_back());
    assert_eq!(shown(&b), ("running", "running"));
}

#[test]
fn a_queue_without_consumers_or_with_stalled_ones_holds_no_one() {
    let b = broker();
    b.set_flow_bound(FlowBound { messages: 2, bytes: u64::MAX });
    let mut publisher = client(&b);
    watched(&mut publisher);
    publisher.queue(1, "q");
    for _ in 0..10 {
        publisher.publish(1, "", "q", &no_props(), b"m");
    }
    assert!(!publisher.session.held_back(), "no consumers: the queue is a buffer");

    // A consumer that takes one and never acknowledges: held back, then let go after a second.
    let mut consumer = client(&b);
    consumer.qos(1, 1, false);
    consumer.consume(1, "q", "c");
    publisher.publish(1, "", "q", &no_props(), b"m");
    assert!(publisher.session.held_back());
    advance(1_000);
    tick(&b);
    publisher.session.flow_released();
    publisher.publish(1, "", "q", &no_props(), b"m");
    assert!(!publisher.session.held_back(), "stalled consumers do not hold publishers back");
}

#[test]
fn a_connection_that_consumes_is_not_held_back() {
    let b = broker();
    b.set_flow_bound(FlowBound { messages: 2, bytes: u64::MAX });
    let mut c = client(&b);
    watched(&mut c);
    c.queue(1, "q");
    c.qos(1, 1, false);
    c.consume(1, "q", "c");
    for _ in 0..10 {
        c.publish(1, "", "q", &no_props(), b"m");
    }
    assert!(!c.session.held_back());
}
