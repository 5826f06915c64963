//! Flow control: a flat-out publisher feeding a slow consumer is held to what the consumer
//! takes, so the queue's backlog, the broker's memory and its disk stay bounded; with flow
//! control off the same publisher buries the consumer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use crate::common::durable::{queue_dir, DurableBroker};
use crate::common::raw::RawConn;
use crate::common::*;
use warren_testkit::methods::publish;
use warren_testkit::{content_header_frame_with, frame, method_frame, FRAME_BODY};

const MIB: u64 = 1024 * 1024;
/// The memory window, and with it the flow bound: 256 messages of 1 KiB.
const QUEUE_MEMORY: u64 = 256 * 1024;
const PUBLISH_FOR: Duration = Duration::from_secs(3);

/// What one run saw.
struct Run {
    sent: u64,
    consumed: u64,
    deepest: u32,
    rss_growth: u64,
    queue_dir_bytes: u64,
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// basic.publish of a persistent message (delivery-mode 2) to `queue` on channel 1.
fn persistent_publish(queue: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = method_frame(1, 60, 40, &publish("", queue, false, false));
    bytes.extend(content_header_frame_with(1, body.len() as u64, 0x1000, &[2]));
    bytes.extend(frame(FRAME_BODY, 1, body));
    bytes
}

/// A raw publisher sends persistent 1 KiB messages flat out for PUBLISH_FOR while a consumer
/// acks at most about 5,000 a second; the queue's depth is sampled meanwhile.
async fn run(flow_control: &str) -> Run {
    let memory = QUEUE_MEMORY.to_string();
    let broker = DurableBroker::start(&[
        "--queue-memory",
        &memory,
        "--segment-size",
        "1048576",
        "--flow-control",
        flow_control,
    ])
    .await;
    let pid = broker.pid().expect("a spawned broker");
    let queue = uniq("flow");
    let client = broker.connect().await;
    let ch = client.channel().await;
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    within(ch.queue_declare(queue.as_str().into(), durable, FieldTable::default())).await.unwrap();
    let before = rss(pid);

    // The slow consumer: a round of 50 acks, then a pause, as a worker doing real work.
    within(ch.basic_qos(50, BasicQosOptions::default())).await.unwrap();
    let mut deliveries = within(ch.basic_consume(
        queue.as_str().into(),
        "slow".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let consumed = Arc::new(AtomicU64::new(0));
    let counted = consumed.clone();
    let consumer = tokio::spawn(async move {
        while let Some(Ok(d)) = deliveries.next().await {
            d.ack(BasicAckOptions::default()).await.unwrap();
            if counted.fetch_add(1, Ordering::Relaxed) % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    // The publisher: batches of 32 messages, as fast as the broker reads them.
    let sent = Arc::new(AtomicU64::new(0));
    let counted = sent.clone();
    let addr = broker.addr();
    let target = queue.clone();
    let publisher = tokio::spawn(async move {
        let mut raw = RawConn::handshake(addr).await;
        raw.open_channel(1).await;
        let body = vec![b'x'; 1024];
        let batch: Vec<u8> = (0..32).flat_map(|_| persistent_publish(&target, &body)).collect();
        let start = Instant::now();
        while start.elapsed() < PUBLISH_FOR {
            raw.send(&batch).await;
            counted.fetch_add(32, Ordering::Relaxed);
        }
        raw
    });

    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let watcher = client.channel().await;
    let mut deepest = 0;
    while !publisher.is_finished() {
        let q = within(watcher.queue_declare(queue.as_str().into(), passive, FieldTable::default()))
            .await
            .unwrap();
        deepest = deepest.max(q.message_count());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _publisher = publisher.await.unwrap();
    let run = Run {
        sent: sent.load(Ordering::Relaxed),
        consumed: consumed.load(Ordering::Relaxed),
        deepest,
        rss_growth: rss(pid).saturating_sub(before),
        queue_dir_bytes: dir_size(&queue_dir(broker.data_dir(), "/", &queue)),
    };
    consumer.abort();
    eprintln!(
        "flow_control={flow_control}: sent {} consumed {} deepest {} RSS +{:.1} MiB queue dir {:.1} MiB",
        run.sent,
        run.consumed,
        run.deepest,
        run.rss_growth as f64 / MIB as f64,
        run.queue_dir_bytes as f64 / MIB as f64
    );
    run
}

#[tokio::test]
async fn a_flat_out_publisher_is_held_to_what_a_slow_consumer_takes() {
    let held = run("true").await;
    // The backlog stays near the bound (256 messages) plus what one read takes in at once.
    assert!(held.deepest < 2_000, "the backlog grew to {} messages", held.deepest);
    // What the publisher got into its socket is what the consumer took, plus the backlog and
    // what the kernel's socket buffers hold (a few MiB).
    assert!(
        held.sent < held.consumed + 20_000,
        "the publisher was not slowed: sent {} for {} consumed",
        held.sent,
        held.consumed
    );
    assert!(held.consumed > 1_000, "the consumer starved: {} consumed", held.consumed);
    assert!(held.rss_growth < 64 * MIB, "RSS grew by {} MiB", held.rss_growth / MIB);
    assert!(held.queue_dir_bytes < 8 * MIB, "the queue's log holds {} MiB", held.queue_dir_bytes / MIB);
}

#[tokio::test]
async fn without_flow_control_the_same_publisher_buries_the_consumer() {
    let free = run("false").await;
    // Here it reached tens of thousands; well past what flow control allows (under 2,000).
    assert!(free.deepest > 5_000, "the backlog only reached {} messages", free.deepest);
}
