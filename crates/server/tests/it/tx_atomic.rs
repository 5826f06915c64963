//! Atomic transactions under kill -9: a worker moves each message of `in` to two durable queues
//! and acknowledges it in one transaction, while the broker is killed at random moments. After
//! every restart each message is in exactly one place (still in `in`, or in both outputs), every
//! commit answered commit-ok is in both outputs, and at the end each output holds every message
//! exactly once.
//!
//! Knobs: `WARREN_TX_CYCLES` (kill/restart cycles, default 6), `WARREN_TX_SEED`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::common::durable::DurableBroker;
use crate::common::within;

const QUEUES: [&str; 3] = ["tx-in", "tx-out-1", "tx-out-2"];

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

async fn declare(ch: &Channel) {
    for q in QUEUES {
        let options = QueueDeclareOptions { durable: true, ..Default::default() };
        within(ch.queue_declare(q.into(), options, FieldTable::default())).await.unwrap();
    }
}

async fn counts(ch: &Channel) -> [u32; 3] {
    let mut out = [0; 3];
    for (i, q) in QUEUES.iter().enumerate() {
        let options = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
        out[i] = within(ch.queue_declare((*q).into(), options, FieldTable::default()))
            .await
            .unwrap()
            .message_count();
    }
    out
}

/// Consumes `tx-in` and, per message, publishes it to both outputs, acks it and commits;
/// records each id whose commit-ok arrived. Returns at the first error (the broker died).
async fn worker(url: String, committed: Arc<Mutex<BTreeSet<u64>>>) -> lapin::Result<()> {
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(20, BasicQosOptions::default()).await?;
    ch.tx_select().await?;
    let mut consumer = ch
        .basic_consume("tx-in".into(), "worker".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let id: u64 = String::from_utf8_lossy(&delivery.data).parse().expect("an id");
        for out in ["tx-out-1", "tx-out-2"] {
            ch.basic_publish(
                "".into(),
                out.into(),
                BasicPublishOptions::default(),
                &delivery.data,
                persistent(),
            )
            .await?;
        }
        delivery.ack(BasicAckOptions::default()).await?;
        ch.tx_commit().await?;
        committed.lock().unwrap().insert(id);
    }
    Ok(())
}

async fn drain_ids(ch: &Channel, queue: &str) -> Vec<u64> {
    crate::common::drain(ch, queue)
        .await
        .iter()
        .map(|b| String::from_utf8_lossy(b).parse().unwrap())
        .collect()
}

#[tokio::test]
async fn each_commit_survives_a_kill_whole_or_not_at_all() {
    let cycles = knob("WARREN_TX_CYCLES", 6);
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let seed = knob("WARREN_TX_SEED", clock);
    // Enough messages that every cycle has commits to cut (each cycle lets 15 through).
    let messages = (cycles * 25).max(100);
    println!("tx_atomic: {cycles} cycles, {messages} messages, WARREN_TX_SEED={seed}");
    let mut b = DurableBroker::start(&[]).await;
    {
        let client = b.connect().await;
        let ch = client.channel().await;
        declare(&ch).await;
        within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
        for id in 0..messages {
            let body = id.to_string();
            within(ch.basic_publish(
                "".into(),
                "tx-in".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                persistent(),
            ))
            .await
            .unwrap();
        }
        assert!(within(ch.wait_for_confirms()).await.unwrap().is_empty());
    }
    let committed = Arc::new(Mutex::new(BTreeSet::new()));
    let mut rng = seed;
    for cycle in 0..cycles {
        let worker = tokio::spawn(worker(b.url(), committed.clone()));
        // Let some commits through, then kill the broker at a moment that falls anywhere in a
        // commit's life (the delay is random, not a wait for a condition).
        let target = committed.lock().unwrap().len() + 15;
        let deadline = Instant::now() + Duration::from_secs(30);
        while committed.lock().unwrap().len() < target.min(messages as usize) && !worker.is_finished() {
            assert!(Instant::now() < deadline, "cycle {cycle}: commits stalled");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_micros((rng >> 33) % 3000)).await;
        b.kill();
        worker.abort();
        b.spawn().await;
        let client = b.connect().await;
        let ch = client.channel().await;
        let [input, out1, out2] = counts(&ch).await;
        assert_eq!(out1, out2, "cycle {cycle}: the outputs differ: a commit survived in part");
        assert_eq!(
            u64::from(input + out1),
            messages,
            "cycle {cycle}: {input} in the input and {out1} in each output (a commit lost or duplicated)"
        );
        assert!(
            out1 as usize >= committed.lock().unwrap().len(),
            "cycle {cycle}: a commit-ok'd move was lost"
        );
    }
    // Finish the work (a commit that was durable before a kill but never answered is done too:
    // count the outputs, not the commit-oks), then check each output holds every id once.
    let worker = tokio::spawn(worker(b.url(), committed.clone()));
    let client = b.connect().await;
    let ch = client.channel().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let [input, out1, _] = counts(&ch).await;
        if u64::from(out1) >= messages {
            break;
        }
        assert!(Instant::now() < deadline, "the last cycle stalled at {input} in the input, {out1} moved");
        assert!(!worker.is_finished(), "the worker stopped: {:?}", worker.await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.abort();
    for out in ["tx-out-1", "tx-out-2"] {
        let mut ids = drain_ids(&ch, out).await;
        ids.sort_unstable();
        assert_eq!(ids, (0..messages).collect::<Vec<_>>(), "{out} holds each id exactly once");
    }
    assert_eq!(counts(&ch).await[0], 0);
}
