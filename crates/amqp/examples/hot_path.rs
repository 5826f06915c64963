//! A deterministic workload for counting the instructions of the publish -> route -> deliver
//! path (run it under `valgrind --tool=callgrind`, as `bench/instructions.sh` does).
//!
//! One connection, driven as the server's loop drives it but without sockets or threads, so the
//! same binary executes the same instructions every run: batch sizes do not depend on thread
//! scheduling as they do when the real server is measured.
//!
//! Usage: `hot_path MODE MESSAGES` with MODE one of
//!   noack    a no-ack consumer
//!   ack      a consumer with prefetch 1000 acknowledging each batch with one multiple ack
//!   confirm  as ack, with publisher confirms
//!   fanout   a fanout exchange to 10 queues, each with a no-ack consumer
//!   topic    a topic exchange with 100 bindings, 1 of which matches, a no-ack consumer
//!   keyed    a fanout exchange to 1 queue, a no-ack consumer; every message carries a distinct
//!            `x-deduplication-header` (the baseline of `dedup`)
//!   dedup    as keyed, through an `x-message-deduplication` exchange (window in memory, of
//!            10,000 keys: full in both runs)
//!   dedup-queue
//!            as keyed, the queue deduplicating (`x-message-deduplication: true`, same window)
//!   keyed-disk, dedup-disk
//!            as keyed and dedup, on a disk store (not fsynced): durable exchange and queue,
//!            persistent messages, so the deduplication window is logged

#[path = "../tests/driven/mod.rs"]
mod driven;

use std::sync::Arc;

use bytes::BytesMut;
use driven::Client;
use warren_broker::Broker;
use warren_protocol::frame;
use warren_protocol::methods::*;
use warren_protocol::{BasicProperties, FieldTable, FieldValue, Method};
use warren_store::{DiskConfig, DiskStore, SyncMode};

/// Publishes per read batch (what one 64 KiB read of 16-byte messages holds, roughly).
const BATCH: usize = 500;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    NoAck,
    Ack,
    Confirm,
    Fanout,
    Topic,
    Keyed,
    Dedup,
    DedupQueue,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref() {
        Some("noack") => Mode::NoAck,
        Some("ack") => Mode::Ack,
        Some("confirm") => Mode::Confirm,
        Some("fanout") => Mode::Fanout,
        Some("topic") => Mode::Topic,
        Some("keyed" | "keyed-disk") => Mode::Keyed,
        Some("dedup" | "dedup-disk") => Mode::Dedup,
        Some("dedup-queue") => Mode::DedupQueue,
        _ => {
            eprintln!(
                "usage: hot_path noack|ack|confirm|fanout|topic|keyed|dedup|dedup-queue|keyed-disk|dedup-disk MESSAGES"
            );
            std::process::exit(2);
        }
    };
    let on_disk = std::env::args().nth(1).is_some_and(|m| m.ends_with("-disk"));
    let messages: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);

    let data = tempfile::tempdir().expect("a temporary directory");
    let broker = Arc::new(if on_disk {
        let config = DiskConfig { sync: SyncMode::Never, ..Default::default() };
        Broker::with_store(Arc::new(DiskStore::open(data.path(), config).expect("a disk store")))
    } else {
        Broker::new()
    });
    let mut c = Client::connect(&broker);
    let (exchange, routing_key) = declare(&mut c, mode, on_disk);
    let manual_ack = matches!(mode, Mode::Ack | Mode::Confirm);
    if mode == Mode::Confirm {
        c.send(1, ConfirmSelect::default());
    }
    c.drain_output();

    let keyed = matches!(mode, Mode::Keyed | Mode::Dedup | Mode::DedupQueue);
    let mut props = BytesMut::new();
    let delivery_mode = Some(if on_disk { 2 } else { 1 });
    BasicProperties { delivery_mode, ..Default::default() }.encode(&mut props);
    let publish: Method =
        BasicPublish { exchange: exchange.into(), routing_key: routing_key.into(), ..Default::default() }
            .into();
    let mut delivered_bytes = 0;
    let mut sent = 0;
    while sent < messages {
        let n = BATCH.min(messages - sent);
        for i in sent..sent + n {
            if keyed {
                props.clear();
                let mut headers = FieldTable::new();
                let key = format!("{i:016x}");
                headers.insert("x-deduplication-header", FieldValue::LongStr(key.into_bytes().into()));
                BasicProperties { delivery_mode, headers: Some(headers), ..Default::default() }
                    .encode(&mut props);
            }
            frame::write_method(&mut c.input, 1, &publish);
            frame::write_content(&mut c.input, 1, 60, &props, b"0123456789abcdef", 131_072);
        }
        sent += n;
        c.pump();
        delivered_bytes += c.drain_output();
        if manual_ack {
            c.send(1, BasicAck { delivery_tag: sent as u64, multiple: true });
        }
    }
    let per_message = if mode == Mode::Fanout { 10 } else { 1 };
    // A delivery of 16 bytes is well over 16 bytes of frames: this checks that they all went out.
    assert!(
        delivered_bytes > messages * per_message * 16,
        "{delivered_bytes} bytes delivered for {messages} messages"
    );
    println!("{messages} messages, {delivered_bytes} bytes delivered");
}

/// Declares the queues and consumers of `mode`; returns where to publish.
fn declare(c: &mut Client, mode: Mode, durable: bool) -> (&'static str, &'static str) {
    let consume = |c: &mut Client, queue: &str, no_ack: bool| {
        c.send(1, BasicConsume { queue: queue.into(), no_ack, ..Default::default() });
    };
    match mode {
        Mode::NoAck | Mode::Ack | Mode::Confirm => {
            c.send(1, QueueDeclare { queue: "q".into(), ..Default::default() });
            if mode != Mode::NoAck {
                c.send(1, BasicQos { prefetch_count: 1000, ..Default::default() });
            }
            consume(c, "q", mode == Mode::NoAck);
            ("", "q")
        }
        Mode::Fanout => {
            c.send(
                1,
                ExchangeDeclare { exchange: "fan".into(), kind: "fanout".into(), ..Default::default() },
            );
            for i in 0..10 {
                let queue = format!("f{i}");
                c.send(1, QueueDeclare { queue: queue.as_str().into(), ..Default::default() });
                c.send(
                    1,
                    QueueBind { queue: queue.as_str().into(), exchange: "fan".into(), ..Default::default() },
                );
                consume(c, &queue, true);
            }
            ("fan", "")
        }
        Mode::Topic => {
            c.send(
                1,
                ExchangeDeclare { exchange: "events".into(), kind: "topic".into(), ..Default::default() },
            );
            c.send(1, QueueDeclare { queue: "t".into(), ..Default::default() });
            for i in 0..99 {
                let key = format!("service{i}.*.created");
                c.send(
                    1,
                    QueueBind {
                        queue: "t".into(),
                        exchange: "events".into(),
                        routing_key: key.as_str().into(),
                        ..Default::default()
                    },
                );
            }
            c.send(
                1,
                QueueBind {
                    queue: "t".into(),
                    exchange: "events".into(),
                    routing_key: "orders.#".into(),
                    ..Default::default()
                },
            );
            consume(c, "t", true);
            ("events", "orders.eu.created")
        }
        Mode::Keyed | Mode::Dedup | Mode::DedupQueue => {
            let kind = if mode == Mode::Dedup { "x-message-deduplication" } else { "fanout" };
            // A window smaller than either run, so that both measure the steady state (every
            // new key evicts the oldest).
            let mut window = FieldTable::new();
            window.insert("x-cache-size", FieldValue::I32(10_000));
            let (exchange_args, mut queue_args) = match mode {
                Mode::DedupQueue => (FieldTable::new(), window),
                _ => (window, FieldTable::new()),
            };
            if mode == Mode::DedupQueue {
                queue_args.insert("x-message-deduplication", FieldValue::Bool(true));
            }
            c.send(
                1,
                ExchangeDeclare {
                    exchange: "keyed".into(),
                    kind: kind.into(),
                    durable,
                    arguments: exchange_args,
                    ..Default::default()
                },
            );
            c.send(
                1,
                QueueDeclare { queue: "k".into(), durable, arguments: queue_args, ..Default::default() },
            );
            c.send(1, QueueBind { queue: "k".into(), exchange: "keyed".into(), ..Default::default() });
            consume(c, "k", true);
            ("keyed", "")
        }
    }
}
