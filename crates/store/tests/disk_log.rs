//! DiskLog behaviour: ordering, paging, recovery, segment deletion, directories and locking.

mod common;

use std::time::{Duration, Instant};

use common::*;
use warren_store::{DiskConfig, DiskStore, QueueLog, Store, SyncMode};

#[test]
fn append_pop_requeue_settle_keep_offset_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), small_config());
    for durable in [true, false] {
        let mut log = store.open_log("/", &format!("q-{durable}"), durable).unwrap();
        for (i, b) in ["a", "b", "c", "d"].iter().enumerate() {
            assert_eq!(log.append(msg(b), None, i % 2 == 0).unwrap(), i as u64);
        }
        assert_eq!(log.len(), 4);
        let a = log.pop_front().unwrap();
        let b = log.pop_front().unwrap();
        assert_eq!(
            (a.stored, b.stored),
            (durable, false),
            "only persistent messages of durable queues are stored"
        );
        assert_eq!(log.len(), 2);
        log.requeue(b);
        log.requeue(a);
        assert_eq!(log.len(), 4);
        assert_eq!(body(log.front().unwrap()), "a");
        let a = log.pop_front().unwrap();
        log.push_front(a);
        let order: Vec<_> = drain(&mut log).into_iter().map(|(o, b, _)| (o, b)).collect();
        assert_eq!(order, [(0, "a"), (1, "b"), (2, "c"), (3, "d")].map(|(o, b)| (o, b.to_owned())));
        assert!(log.is_empty());
        for o in 0..4 {
            log.settle(o, durable && o % 2 == 0);
        }
        log.flush().unwrap();
        assert_eq!(log.append(msg("e"), None, true).unwrap(), 4, "offsets only grow");
    }
}

#[test]
fn paging_keeps_memory_flat_and_order_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let config = DiskConfig {
        memory_window_messages: 50,
        memory_window_bytes: 4000,
        segment_size: 16 << 10,
        ..small_config()
    };
    let store = open(tmp.path(), config.clone());
    for durable in [false, true] {
        let mut log = store.open_log("/", &format!("deep-{durable}"), durable).unwrap();
        let n = 5000;
        let mut expected = std::collections::VecDeque::new();
        let mut got = Vec::new();
        for i in 0..n {
            // Bodies of varying size, mixed persistence.
            let b = format!("{i:05}-{}", "x".repeat(i % 97));
            log.append(msg(&b), None, i % 3 == 0).unwrap();
            expected.push_back(b);
            if i % 100 == 99 {
                log.flush().unwrap();
            }
            // Drain a little now and then, so appends and reads interleave.
            if i % 1000 == 999 {
                for _ in 0..300 {
                    let m = log.pop_front().unwrap();
                    log.settle(m.offset, m.stored);
                    got.push(body(&m));
                }
            }
            assert_eq!(log.len(), expected.len() - got.len());
        }
        log.flush().unwrap();
        let stats = log.memory_stats();
        assert!(stats.on_disk_messages > 3000, "{stats:?}");
        got.extend(drain_settle(&mut log));
        assert_eq!(got, Vec::from(expected));
        let stats = log.memory_stats();
        assert!(stats.peak_window_messages <= config.memory_window_messages, "{stats:?}");
        assert!(stats.peak_window_bytes <= config.memory_window_bytes + 200, "{stats:?}");
        assert_eq!(stats.window_messages + stats.requeued_messages, 0);
        log.flush().unwrap();
        assert_eq!(log.segment_count(), 1, "every segment but the active one was deleted once settled");
        assert_eq!(segment_files(&log).len(), 1);
    }
}

#[test]
fn a_message_larger_than_the_window_still_goes_through() {
    let tmp = tempfile::tempdir().unwrap();
    let config = DiskConfig { memory_window_bytes: 100, segment_size: 1000, ..small_config() };
    let store = open(tmp.path(), config);
    let mut log = store.open_log("/", "big", true).unwrap();
    let big = "B".repeat(5000);
    for b in ["small", &big, "after"] {
        log.append(msg(b), None, true).unwrap();
    }
    log.flush().unwrap();
    assert_eq!(drain_settle(&mut log), ["small", big.as_str(), "after"]);
}

#[test]
fn non_durable_queues_write_nothing_until_they_page_out() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), small_config());
    let mut log = store.open_log("/", "t", false).unwrap();
    for i in 0..16 {
        log.append(msg(format!("{i}")), None, true).unwrap();
    }
    log.flush().unwrap();
    assert!(!log.dir().exists(), "the window holds everything: no file");
    log.append(msg("16"), None, false).unwrap();
    log.flush().unwrap();
    assert!(log.dir().starts_with(tmp.path().join("transient")));
    assert_eq!(segment_files(&log).len(), 1);
    assert_eq!(drain_settle(&mut log).len(), 17);
}

#[test]
fn recovery_restores_persistent_unacked_messages_as_redelivered() {
    let tmp = tempfile::tempdir().unwrap();
    let expires = Instant::now() + Duration::from_secs(3600);
    {
        let store = open(tmp.path(), small_config());
        let mut log = store.open_log("/", "orders", true).unwrap();
        for i in 0..10u64 {
            let at = (i == 4).then_some(expires);
            log.append(msg(format!("m{i}")), at, i != 7).unwrap(); // m7 is transient
        }
        // Deliver m0..m2: ack m0, leave m1 and m2 unacked (delivered before the "crash").
        let m0 = log.pop_front().unwrap();
        let _m1 = log.pop_front().unwrap();
        let _m2 = log.pop_front().unwrap();
        log.settle(m0.offset, m0.stored);
        log.flush().unwrap();
    }
    let store = open(tmp.path(), small_config());
    let mut log = store.open_log("/", "orders", true).unwrap();
    assert_eq!(log.len(), 8);
    let recovered = std::iter::from_fn(|| log.pop_front()).collect::<Vec<_>>();
    let bodies: Vec<_> = recovered.iter().map(body).collect();
    assert_eq!(bodies, ["m1", "m2", "m3", "m4", "m5", "m6", "m8", "m9"]);
    assert!(recovered.iter().all(|m| m.redelivered && m.stored));
    assert_eq!(recovered.iter().map(|m| m.offset).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 8, 9]);
    let m4 = &recovered[3];
    let back = m4.expires_at.expect("expiry survives a restart");
    assert!(back <= expires + Duration::from_millis(1) && expires - back < Duration::from_secs(5));
    assert!(recovered.iter().filter(|m| m.offset != 4).all(|m| m.expires_at.is_none()));
    // New messages continue the offsets and are not redelivered.
    assert_eq!(log.append(msg("new"), None, true).unwrap(), 10);
    let new = log.pop_front().unwrap();
    assert!(!new.redelivered);
    // Ack a few recovered ones, requeue another: the next recovery agrees.
    for m in &recovered[..3] {
        log.settle(m.offset, m.stored);
    }
    for m in recovered.into_iter().skip(3) {
        log.requeue(m);
    }
    log.requeue(new);
    log.flush().unwrap();
    drop(log);
    drop(store);
    let store = open(tmp.path(), small_config());
    let mut log = store.open_log("/", "orders", true).unwrap();
    let bodies: Vec<_> = drain(&mut log).into_iter().map(|(_, b, _)| b).collect();
    assert_eq!(bodies, ["m4", "m5", "m6", "m8", "m9", "new"]);
    assert_eq!(log.append(msg("x"), None, true).unwrap(), 11);
}

#[test]
fn recovery_counts_returns_and_body_bytes_of_what_waits() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(tmp.path(), small_config());
        let mut log = store.open_log("/", "limited", true).unwrap();
        for i in 0..100u64 {
            log.append(msg(format!("body-{i:02}")), None, i != 5).unwrap(); // m5 is transient
        }
        assert_eq!(log.recovered_body_bytes(), 0, "nothing was recovered");
        // m0 returned three times then acked; m1 returned twice; m2 acked; m99 (in the last
        // segment) returned once.
        let mut taken: Vec<_> = std::iter::from_fn(|| log.pop_front()).collect();
        let m99 = taken.pop().unwrap();
        for _ in 0..3 {
            log.note_return(taken[0].offset, true);
        }
        log.note_return(taken[1].offset, true);
        log.note_return(taken[1].offset, true);
        log.note_return(m99.offset, true);
        log.settle(taken[0].offset, true);
        log.settle(taken[2].offset, true);
        log.flush().unwrap();
        assert!(segment_files(&log).len() > 1, "the messages span segments");
    }
    let store = open(tmp.path(), small_config());
    let mut log = store.open_log("/", "limited", true).unwrap();
    // 100 messages of 7 bytes, less m0 and m2 (acked) and m5 (transient).
    assert_eq!(log.len(), 97);
    assert_eq!(log.recovered_body_bytes(), 97 * 7);
    let recovered: Vec<_> = std::iter::from_fn(|| log.pop_front()).collect();
    let count = |b: &str| recovered.iter().find(|m| body(m) == b).map(|m| m.delivery_count);
    assert_eq!(count("body-01"), Some(2));
    assert_eq!(count("body-03"), Some(0));
    assert_eq!(count("body-99"), Some(1));
    assert_eq!(count("body-00"), None, "acked after its returns");
    assert_eq!(recovered.iter().filter(|m| m.delivery_count > 0).count(), 2);
}

#[test]
fn offsets_keep_growing_after_everything_was_acked() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(tmp.path(), small_config());
        let mut log = store.open_log("/", "q", true).unwrap();
        for i in 0..500 {
            log.append(msg(format!("{i:040}")), None, true).unwrap();
        }
        log.flush().unwrap();
        assert!(log.segment_count() > 3);
        assert_eq!(drain_settle(&mut log).len(), 500);
        log.flush().unwrap();
        assert_eq!(log.segment_count(), 1);
    }
    let store = open(tmp.path(), small_config());
    let mut log = store.open_log("/", "q", true).unwrap();
    assert!(log.is_empty());
    assert_eq!(log.append(msg("next"), None, true).unwrap(), 500);
}

#[test]
fn recovery_deletes_segments_that_are_all_settled() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 400;
    {
        let store = open(tmp.path(), small_config());
        let mut log = store.open_log("/", "q", true).unwrap();
        for i in 0..n {
            log.append(msg(format!("{i:040}")), None, true).unwrap();
        }
        log.flush().unwrap();
        // Take everything, ack all but the last message. Settling in the active segment
        // writes ack entries; earlier segments go as soon as they are fully acked.
        let all: Vec<_> = std::iter::from_fn(|| log.pop_front()).collect();
        for m in &all[..n - 1] {
            log.settle(m.offset, m.stored);
        }
        log.flush().unwrap();
        assert_eq!(log.segment_count(), 1);
    }
    let store = open(tmp.path(), small_config());
    let mut log = store.open_log("/", "q", true).unwrap();
    assert_eq!(drain(&mut log).into_iter().map(|(o, _, _)| o).collect::<Vec<_>>(), [n as u64 - 1]);
    assert_eq!(segment_files(&log).len(), 1);
}

#[test]
fn recovered_segments_left_without_pending_messages_are_deleted_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir;
    {
        let store = open(tmp.path(), small_config());
        let mut log = store.open_log("/", "q", true).unwrap();
        // A first segment of transient (paged-out) records only, then persistent ones.
        for i in 0..100 {
            log.append(msg(format!("{i:040}")), None, false).unwrap();
        }
        for i in 0..100 {
            log.append(msg(format!("{i:040}")), None, true).unwrap();
        }
        log.flush().unwrap();
        dir = log.dir().to_owned();
        assert!(segment_files(&log).len() >= 3);
    }
    let before = files_with(&dir, "seg").len();
    let store = open(tmp.path(), small_config());
    let mut log = store.open_log("/", "q", true).unwrap();
    assert_eq!(log.len(), 100);
    assert!(segment_files(&log).len() < before, "the transient-only segments are gone");
    assert_eq!(drain_settle(&mut log).len(), 100);
}

#[test]
fn purge_settles_what_waits_on_disk_too() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(tmp.path(), small_config());
        let mut log = store.open_log("/", "q", true).unwrap();
        for i in 0..300 {
            log.append(msg(format!("{i:040}")), None, i % 2 == 0).unwrap();
        }
        let m = log.pop_front().unwrap();
        log.requeue(m);
        assert_eq!(log.purge(), 300);
        assert!(log.is_empty());
        assert!(log.pop_front().is_none());
        log.flush().unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.append(msg("after"), None, true).unwrap(), 300);
        log.flush().unwrap();
    }
    let store = open(tmp.path(), small_config());
    let mut log = store.open_log("/", "q", true).unwrap();
    assert_eq!(drain(&mut log).into_iter().map(|(_, b, _)| b).collect::<Vec<_>>(), ["after"]);
}

#[test]
fn delete_removes_the_queue_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), small_config());
    for durable in [true, false] {
        let mut log = store.open_log("v", "gone", durable).unwrap();
        for i in 0..100 {
            log.append(msg(format!("{i:040}")), None, true).unwrap();
        }
        log.flush().unwrap();
        let dir = log.dir().to_owned();
        assert!(dir.exists());
        log.delete();
        assert!(!dir.exists());
        assert!(log.is_empty());
        log.flush().unwrap();
        assert!(log.append(msg("x"), None, true).is_err());
    }
    assert!(store.durable_queue_dirs().is_empty());
}

#[test]
fn durable_queue_dirs_lists_and_removes_queues() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "q".repeat(255);
    {
        let store = open(tmp.path(), small_config());
        for (v, q) in [("/", "a"), ("/", long.as_str()), ("other", "b/c"), ("/", "")] {
            let mut log = store.open_log(v, q, true).unwrap();
            log.append(msg("m"), None, true).unwrap();
            log.flush().unwrap();
        }
        store.open_log("/", "transient", false).unwrap();
    }
    let store = open(tmp.path(), small_config());
    let mut expected = vec![
        ("/".to_owned(), "".to_owned()),
        ("/".to_owned(), "a".to_owned()),
        ("/".to_owned(), long.clone()),
        ("other".to_owned(), "b/c".to_owned()),
    ];
    expected.sort();
    assert_eq!(store.durable_queue_dirs(), expected);
    store.remove_queue_dir("other", "b/c").unwrap();
    store.remove_queue_dir("/", &long).unwrap();
    store.remove_queue_dir("/", "never-existed").unwrap();
    assert_eq!(
        store.durable_queue_dirs(),
        [("/".to_owned(), "".to_owned()), ("/".to_owned(), "a".to_owned())]
    );
    let mut log = store.open_log("/", "a", true).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(drain(&mut log)[0].1, "m");
}

#[test]
fn the_data_directory_takes_one_broker_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), small_config());
    let err = DiskStore::open(tmp.path(), small_config()).unwrap_err();
    assert!(err.to_string().contains("is in use by another process"), "{err}");
    let log = store.open_log("/", "q", true).unwrap();
    drop(store);
    // A log still open keeps the directory locked.
    assert!(DiskStore::open(tmp.path(), small_config()).is_err());
    drop(log);
    DiskStore::open(tmp.path(), small_config()).unwrap();
}

#[test]
fn transient_page_files_do_not_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(tmp.path(), small_config());
        let mut log = store.open_log("/", "t", false).unwrap();
        for i in 0..100 {
            log.append(msg(format!("{i}")), None, false).unwrap();
        }
        log.flush().unwrap();
        assert!(tmp.path().join("transient").read_dir().unwrap().next().is_some());
        // Closing a log leaves its files behind, as a crash would.
    }
    let store = open(tmp.path(), small_config());
    assert!(!tmp.path().join("transient").exists());
    let mut log = store.open_log("/", "t", false).unwrap();
    assert!(log.is_empty());
    log.append(msg("fresh"), None, false).unwrap();
}

#[test]
fn tickets_cover_flushed_messages_with_sync_always() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), DiskConfig { sync: SyncMode::Always, ..small_config() });
    let mut log = store.open_queue("/", "q", true).unwrap();
    let t0 = store.sync_ticket();
    assert!(store.synced() >= t0, "nothing written yet: durable at once");
    log.append(msg("m"), None, true).unwrap();
    log.flush().unwrap();
    let t = store.sync_ticket();
    let (tx, rx) = std::sync::mpsc::channel();
    store.on_synced(t, Box::new(move || tx.send(()).unwrap()));
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(store.synced() >= t);
    assert!(store.sync_rounds() >= 1);
    assert_eq!(store.health().write_fault(), None);
}

#[test]
fn group_commit_shares_fsync_rounds_between_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let store =
        std::sync::Arc::new(open(tmp.path(), DiskConfig { sync: SyncMode::Always, ..small_config() }));
    let threads = 4;
    let per_thread = 200;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                let mut log = store.open_queue("/", &format!("q{t}"), true).unwrap();
                for i in 0..per_thread {
                    log.append(msg(format!("{i}")), None, true).unwrap();
                    log.flush().unwrap();
                    let ticket = store.sync_ticket();
                    let (tx, rx) = std::sync::mpsc::channel();
                    store.on_synced(ticket, Box::new(move || tx.send(()).unwrap()));
                    rx.recv_timeout(Duration::from_secs(30)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let rounds = store.sync_rounds();
    let tickets = threads * per_thread;
    println!("{tickets} tickets, {rounds} fsync rounds");
    assert!(rounds > 0 && rounds <= tickets as u64);
}

/// Counts its calls; a lazy writer that writes nothing.
#[derive(Default)]
struct CountingWriter(std::sync::atomic::AtomicUsize);

impl warren_store::LazyWriter for CountingWriter {
    fn write_lazily(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Waits (polling, with a deadline) until `done` holds, flushing `log` each time.
fn flush_until(log: &mut dyn QueueLog, mut done: impl FnMut(&mut dyn QueueLog) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&mut *log) {
        assert!(Instant::now() < deadline, "timed out");
        log.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn carried_bytes_come_back_with_their_records_acknowledged_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let config = DiskConfig { sync: SyncMode::Always, ..small_config() };
    let n = 300;
    {
        let store = open(tmp.path(), config.clone());
        let mut log = store.open_log("/", "q", true).unwrap();
        assert!(log.carries());
        for i in 0..n {
            let carried = format!("key-{i}");
            // Every third one carries nothing; transient ones never do.
            let carried = if i % 3 == 0 { String::new() } else { carried };
            log.append_carrying(msg(format!("{i:040}")), None, i != 1, carried.as_bytes()).unwrap();
        }
        log.flush().unwrap();
        // Acknowledge the first 200 except one of the first segment: its segment stays.
        let all: Vec<_> = std::iter::from_fn(|| log.pop_front()).collect();
        for m in all.iter().take(200).skip(1) {
            log.settle(m.offset, m.stored);
        }
        log.flush().unwrap();
        let ticket = store.sync_ticket();
        let (tx, rx) = std::sync::mpsc::channel();
        store.on_synced(ticket, Box::new(move || tx.send(()).unwrap()));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    let store = open(tmp.path(), config);
    let mut log = store.open_log("/", "q", true).unwrap();
    let carried: Vec<String> =
        log.take_recovered_carried().iter().map(|b| String::from_utf8(b.to_vec()).unwrap()).collect();
    // Everything carried whose segment was still there: the acknowledged ones of the kept
    // segments too, and at least everything not acknowledged.
    let expected_tail: Vec<String> = (200..n).filter(|i| i % 3 != 0).map(|i| format!("key-{i}")).collect();
    assert!(carried.ends_with(&expected_tail), "{carried:?}");
    assert!(carried.contains(&"key-2".to_string()), "a record acknowledged in a kept segment");
    assert!(!carried.iter().any(|c| c == "key-1"), "a transient record carries nothing");
    assert!(log.take_recovered_carried().is_empty(), "taken once");
    assert_eq!(log.len(), n - 200 + 1);
}

#[test]
fn a_settled_segment_that_carries_waits_for_a_lazy_round() {
    let tmp = tempfile::tempdir().unwrap();
    let config = DiskConfig { sync: SyncMode::Always, ..small_config() };
    let writer = std::sync::Arc::new(CountingWriter::default());
    let snapshot = tempfile::tempdir().unwrap();
    let segments_at_crash;
    {
        let store = open(tmp.path(), config.clone());
        let weak: std::sync::Weak<dyn warren_store::LazyWriter> =
            std::sync::Arc::downgrade(&(writer.clone() as std::sync::Arc<dyn warren_store::LazyWriter>));
        store.register_lazy_writer(weak);
        let mut log = store.open_log("/", "q", true).unwrap();
        for i in 0..300 {
            log.append_carrying(msg(format!("{i:040}")), None, true, b"k").unwrap();
        }
        log.flush().unwrap();
        let before = log.segment_count();
        assert!(before >= 3);
        let all: Vec<_> = std::iter::from_fn(|| log.pop_front()).collect();
        for m in &all {
            log.settle(m.offset, m.stored);
        }
        log.flush().unwrap();
        // The lazy round runs in the background: the writer is called, then the settled
        // segments go at a later flush.
        flush_until(&mut log, |_| writer.0.load(std::sync::atomic::Ordering::SeqCst) > 0);
        let mut disk_log = log;
        flush_until(&mut disk_log, |l| l.is_empty());
        let deadline = Instant::now() + Duration::from_secs(10);
        while disk_log.segment_count() > 1 {
            assert!(Instant::now() < deadline, "settled segments never went");
            disk_log.flush().unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        // Now a settled segment that carries, left at a "crash": recovery keeps it.
        for i in 0..150 {
            disk_log.append_carrying(msg(format!("{i:040}")), None, true, b"late").unwrap();
        }
        disk_log.flush().unwrap();
        let all: Vec<_> = std::iter::from_fn(|| disk_log.pop_front()).collect();
        for m in &all[..100] {
            disk_log.settle(m.offset, m.stored);
        }
        disk_log.flush().unwrap();
        let ticket = store.sync_ticket();
        let (tx, rx) = std::sync::mpsc::channel();
        store.on_synced(ticket, Box::new(move || tx.send(()).unwrap()));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // A crash now: the settled segments are still held (only a flush deletes them).
        segments_at_crash = segment_files(&disk_log).len();
        copy_dir(tmp.path(), snapshot.path());
    }
    let store = open(snapshot.path(), config);
    let mut log = store.open_log("/", "q", true).unwrap();
    let carried = log.take_recovered_carried();
    assert!(carried.len() >= 50, "{} carried", carried.len());
    assert_eq!(segment_files(&log).len(), segments_at_crash, "nothing deleted before release_recovered");
    log.release_recovered();
    let deadline = Instant::now() + Duration::from_secs(10);
    while segment_files(&log).len() >= segments_at_crash {
        assert!(Instant::now() < deadline, "released segments never went");
        log.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(log.len(), 50);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
