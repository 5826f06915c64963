//! Bounds on what a client can make the broker spend, measured as the broker process's
//! resident memory: what high channel numbers cost, and what a consumer that stops reading its
//! socket costs while hundreds of MiB are published to its queue.

use std::time::Duration;

use crate::common::raw::RawConn;
use crate::common::*;
use warren_testkit::methods::publish_frames;
use warren_testkit::W;

const MIB: u64 = 1024 * 1024;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// queue.declare arguments: a plain, non-durable queue.
fn declare_args(queue: &str) -> Vec<u8> {
    W::new().u16(0).shortstr(queue).bits(&[false, false, false, false, false]).empty_table().build()
}

/// basic.consume arguments: a no-ack consumer.
fn consume_no_ack(queue: &str, tag: &str) -> Vec<u8> {
    W::new().u16(0).shortstr(queue).shortstr(tag).bits(&[false, true, false, false]).empty_table().build()
}

#[tokio::test]
async fn channel_numbers_cost_nothing() {
    let broker = Broker::start().await;
    let Some(before) = broker.rss() else {
        eprintln!("skipped: needs a broker process this test spawned");
        return;
    };
    // RabbitMQ counts open channels against channel_max, not their numbers: 65535 is allowed.
    let mut conns = Vec::new();
    for _ in 0..50 {
        let mut c = RawConn::handshake(broker.addr()).await;
        c.open_channel(65535).await;
        conns.push(c);
    }
    let after = broker.rss().unwrap();
    let growth = after.saturating_sub(before);
    eprintln!("50 connections on channel 65535: RSS {:.1} -> {:.1} MiB", mib(before), mib(after));
    // Slots indexed by channel number cost about 28 MiB per connection here (1.4 GiB in all).
    assert!(growth < 16 * MIB, "RSS grew by {:.1} MiB", mib(growth));
    for c in &mut conns {
        c.open_channel(1).await;
    }
}

#[tokio::test]
async fn a_consumer_that_stops_reading_costs_bounded_memory() {
    let broker = Broker::start().await;
    if broker.rss().is_none() {
        eprintln!("skipped: needs a broker process this test spawned");
        return;
    }
    let queue = uniq("stalled");
    let mut consumer = RawConn::handshake(broker.addr()).await;
    consumer.open_channel(1).await;
    consumer.send_method(1, 50, 10, &declare_args(&queue)).await;
    consumer.expect_method(1, (50, 11)).await;
    consumer.send_method(1, 60, 20, &consume_no_ack(&queue, "stalled")).await;
    consumer.expect_method(1, (60, 21)).await;
    // From here on the consumer reads nothing.

    let before = broker.rss().unwrap();
    let mut publisher = RawConn::handshake(broker.addr()).await;
    publisher.open_channel(1).await;
    const MESSAGES: usize = 4096;
    let body = vec![b'x'; 64 * 1024];
    let batch: Vec<u8> = (0..64).flat_map(|_| publish_frames(1, "", &queue, &body)).collect();
    for _ in 0..MESSAGES / 64 {
        publisher.send(&batch).await;
    }
    // A reply on the same channel comes after every publish before it was applied.
    publisher.send_method(1, 50, 10, &declare_args(&queue)).await;
    let ok = publisher.expect_method(1, (50, 11)).await;
    let mut args = ok.args();
    let _ = args.shortstr();
    let waiting = args.u32();
    let after = broker.rss().unwrap();
    let growth = after.saturating_sub(before);
    eprintln!(
        "{} MiB published to a stalled no-ack consumer: {waiting} messages wait in the queue, \
         RSS {:.1} -> {:.1} MiB",
        MESSAGES / 16,
        mib(before),
        mib(after)
    );
    assert!(waiting as usize > MESSAGES / 2, "most messages wait in the queue, not in the outbox");
    // The queue keeps 4 MiB in memory and pages the rest out; the outbox stops at 2 MiB.
    assert!(growth < 64 * MIB, "RSS grew by {:.1} MiB", mib(growth));

    // Once the consumer reads again, everything arrives.
    let mut delivered = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while delivered < MESSAGES {
        assert!(tokio::time::Instant::now() < deadline, "only {delivered} of {MESSAGES} arrived");
        if consumer.next_frame().await.method_id() == Some((60, 60)) {
            delivered += 1;
        }
    }
}
