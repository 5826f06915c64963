//! A micro benchmark (ignored by default): appends and drains of 1M 16-byte messages.
//!
//! `cargo test -p warren-store --release --test bench -- --ignored --nocapture`

mod common;

use std::time::Instant;

use bytes::Bytes;
use warren_store::{DiskConfig, DiskStore, MemoryLog, Message, QueueLog, Store, SyncMode};

const N: usize = 1_000_000;
/// Appends between flushes, as the broker flushes once per batch of input.
const BATCH: usize = 256;

fn message() -> Message {
    Message {
        exchange: "".into(),
        routing_key: "bench".into(),
        properties: Bytes::from_static(&[0x10, 0x00, 2]),
        body: Bytes::from_static(b"0123456789abcdef"),
    }
}

fn run(name: &str, log: &mut dyn QueueLog, persistent: bool, after_appends: impl FnOnce()) {
    let m = message();
    let start = Instant::now();
    for i in 0..N {
        log.append(m.clone(), None, persistent).unwrap();
        if i % BATCH == BATCH - 1 {
            log.flush().unwrap();
        }
    }
    log.flush().unwrap();
    let append = start.elapsed();
    after_appends();
    let start = Instant::now();
    let mut n = 0;
    while let Some(m) = log.pop_front() {
        log.settle(m.offset, m.stored);
        n += 1;
        if n % BATCH == 0 {
            log.flush().unwrap();
        }
    }
    log.flush().unwrap();
    let drain = start.elapsed();
    assert_eq!(n, N);
    println!(
        "{name:<40} append {:>6.2} M msg/s ({:>4} ms)   drain+settle {:>6.2} M msg/s ({:>4} ms)",
        N as f64 / append.as_secs_f64() / 1e6,
        append.as_millis(),
        N as f64 / drain.as_secs_f64() / 1e6,
        drain.as_millis(),
    );
}

#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn bench_append_and_drain() {
    let tmp = tempfile::tempdir().unwrap();
    run("memory log (baseline)", &mut MemoryLog::default(), false, || {});
    let always = DiskStore::open(&tmp.path().join("always"), DiskConfig::default()).unwrap();
    let mut log = always.open_log("/", "persistent", true).unwrap();
    run("durable, persistent, one fsync at end", &mut log, true, || {
        let start = Instant::now();
        let ticket = always.sync_ticket();
        let (tx, rx) = std::sync::mpsc::channel();
        always.on_synced(ticket, Box::new(move || tx.send(()).unwrap()));
        rx.recv().unwrap();
        println!("  (fsync of ~{} MB: {} ms)", N * 60 / 1_000_000, start.elapsed().as_millis());
    });
    let never = DiskStore::open(
        &tmp.path().join("never"),
        DiskConfig { sync: SyncMode::Never, ..DiskConfig::default() },
    )
    .unwrap();
    let mut log = never.open_log("/", "transient", false).unwrap();
    run("non-durable, paged out past 10k window", &mut log, false, || {});
    let mut log = never.open_log("/", "durable-transient", true).unwrap();
    run("durable, transient msgs, paged out", &mut log, false, || {});
    let stats = log.memory_stats();
    assert!(stats.peak_window_messages <= DiskConfig::default().memory_window_messages);
}
