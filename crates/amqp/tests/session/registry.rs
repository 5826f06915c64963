//! The broker's registry and counters, as the session keeps them: what the management API and
//! metrics will read.

use crate::harness::*;
use warren_broker::{ChannelMode, ConnectionState, Counter};

#[test]
fn connections_channels_and_consumers_are_listed_with_their_counters() {
    let b = broker();
    let mut c = TestClient::connect_with(&b, with_capabilities(&["publisher_confirms"]));
    c.open_channel(1);
    c.open_channel(7);
    c.queue(1, "q");
    c.qos(1, 10, false);
    c.consume(1, "q", "watcher");
    c.recv();
    c.rpc(7, ConfirmSelect { nowait: false }, "confirm.select-ok");
    for body in ["a", "b", "c"] {
        c.publish(7, "", "q", &no_props(), body.as_bytes());
    }
    let mandatory = BasicPublish { routing_key: "nowhere".into(), mandatory: true, ..Default::default() };
    c.publish_with(7, mandatory, &no_props(), b"lost");
    c.publish(7, "", "nowhere", &no_props(), b"dropped");
    c.recv();
    c.ack(1, 2, true);
    assert!(c.get(7, "q", false).is_none());

    let connections = b.registry().connection_snapshots();
    assert_eq!(connections.len(), 1);
    let conn = &connections[0];
    assert_eq!(conn.state, ConnectionState::Running);
    let details = conn.details.as_ref().unwrap();
    assert_eq!((details.user.as_str(), details.vhost.as_str()), ("guest", "/"));
    assert_eq!(conn.channels, 2);
    assert!(conn.counters.get(Counter::Published) == 5);

    let mut channels = b.registry().channel_snapshots();
    channels.sort_by_key(|ch| ch.number);
    let (consuming, publishing) = (&channels[0], &channels[1]);
    assert_eq!((consuming.number, publishing.number), (1, 7));
    assert_eq!((consuming.prefetch, consuming.consumers, consuming.unacked), (10, 1, 1));
    assert_eq!(consuming.counters.get(Counter::DeliveredAck), 3);
    assert_eq!(consuming.counters.get(Counter::Acked), 2);
    assert_eq!(publishing.mode, ChannelMode::Confirm);
    let p = publishing.counters;
    assert_eq!(p.get(Counter::Published), 5);
    assert_eq!(p.get(Counter::Confirmed), 5);
    assert_eq!(p.get(Counter::ReturnedUnroutable), 1);
    assert_eq!(p.get(Counter::DroppedUnroutable), 1);
    assert_eq!(p.get(Counter::GetEmpty), 1);

    let q = b.vhost("/").unwrap().queue("q").unwrap();
    let qc = q.counters().snapshot();
    assert_eq!(
        (qc.get(Counter::Published), qc.get(Counter::DeliveredAck), qc.get(Counter::Acked)),
        (3, 3, 2)
    );
    assert_eq!(qc.get(Counter::GetEmpty), 1);
    let stats = q.stats();
    assert_eq!((stats.ready, stats.unacked, stats.consumers), (0, 1, 1));
    let default = b.vhost("/").unwrap().default_exchange_counters().snapshot();
    assert_eq!(default.get(Counter::Published), 5);
    assert_eq!(default.get(Counter::Routed), 3);
    assert_eq!(default.get(Counter::DroppedUnroutable), 2);

    let consumers = b.consumer_snapshots();
    assert_eq!(consumers.len(), 1);
    assert_eq!((consumers[0].tag.as_str(), consumers[0].queue.as_str()), ("watcher", "q"));
    assert_eq!((consumers[0].target, consumers[0].prefetch, consumers[0].unacked), (consuming.id, 10, 1));

    // What a connection counted outlives it in the totals.
    c.disconnect();
    assert!(b.registry().connection_snapshots().is_empty());
    assert!(b.consumer_snapshots().is_empty());
    let totals = b.registry().channel_totals();
    assert_eq!(totals["/"].get(Counter::Published), 5);
    assert_eq!(totals["/"].get(Counter::Acked), 2);
}

#[test]
fn a_close_requested_through_the_registry_closes_the_connection_with_320() {
    let b = broker();
    let mut c = client(&b);
    let entry = b.registry().connections()[0].clone();
    entry.request_close("Closed via management plugin");
    c.pump();
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 320);
    assert_eq!(&*close.reply_text, "CONNECTION_FORCED - Closed via management plugin");
    c.send(0, ConnectionCloseOk);
    assert!(c.conn.is_closed());
}
