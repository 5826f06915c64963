//! Write and fsync failures injected at each of the store's write sites (the `fail` crate):
//! nothing the store reported durable is missing after recovery, failures are never reported
//! durable, and the store recovers once the fault clears.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use fail::FailScenario;
use warren_store::{DiskConfig, DiskStore, QueueLog, Store, SyncMode};

/// Batches of publishes before, during and after the fault.
const BATCHES: usize = 36;
const FAULT_FROM: usize = 10;
const FAULT_UNTIL: usize = 22;
const PER_BATCH: usize = 8;

fn config() -> DiskConfig {
    DiskConfig {
        segment_size: 4096,
        memory_window_messages: 16,
        memory_window_bytes: 1 << 20,
        sync: SyncMode::Always,
    }
}

/// Waits for `ticket`'s outcome; true if durable.
fn durable(store: &DiskStore, ticket: u64) -> bool {
    let (tx, rx) = mpsc::channel();
    store.on_synced(ticket, Box::new(move || tx.send(()).unwrap()));
    rx.recv_timeout(Duration::from_secs(10)).expect("a ticket never got an outcome");
    !store.ticket_failed(ticket)
}

/// What a run of the model publisher saw.
struct Run {
    confirmed: BTreeSet<String>,
    acked: BTreeSet<String>,
    refused: usize,
    faulted_during: bool,
}

/// Publishes batches as a confirming publisher does (a batch is confirmed only if every append,
/// the flush and the sync succeeded), acking a few messages per batch, with `site` failing as
/// `action` says from batch FAULT_FROM to FAULT_UNTIL. Returns the run and a crash snapshot of
/// the data directory (the files as they are, without the log's buffers).
fn run(site: &str, action: &str, data: &Path, snapshot: &Path) -> Run {
    let store = DiskStore::open(data, config()).unwrap();
    let mut log = store.open_log("/", "q", true).unwrap();
    let mut run =
        Run { confirmed: BTreeSet::new(), acked: BTreeSet::new(), refused: 0, faulted_during: false };
    for batch in 0..BATCHES {
        if batch == FAULT_FROM {
            fail::cfg(site, action).unwrap();
        }
        if batch == FAULT_UNTIL {
            fail::remove(site);
            assert!(!store.health().probe(), "the fault clears once writes succeed");
        }
        let bodies: Vec<String> =
            (0..PER_BATCH).map(|i| format!("{batch:03}-{i}-{}", "x".repeat(200))).collect();
        let mut ok = true;
        for b in &bodies {
            ok &= log.append(msg(b), None, true).is_ok();
        }
        ok &= log.flush().is_ok();
        ok = ok && durable(&store, store.sync_ticket());
        if ok {
            run.confirmed.extend(bodies);
        } else {
            run.refused += 1;
            assert!(
                (FAULT_FROM..FAULT_UNTIL).contains(&batch),
                "batch {batch} failed with no fault injected"
            );
        }
        if (FAULT_FROM..FAULT_UNTIL).contains(&batch) {
            run.faulted_during |= store.health().is_faulted();
        }
        // A consumer takes and acks a few.
        for _ in 0..3 {
            if let Some(m) = log.pop_front() {
                log.settle(m.offset, m.stored);
                run.acked.insert(body(&m));
            }
        }
        let _ = log.flush();
    }
    copy_dir(data, snapshot);
    run
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs the scenario and checks the promise: every confirmed message not acked is recovered.
fn nothing_confirmed_is_lost(site: &str, action: &str) {
    let scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let (data, snapshot) = (tmp.path().join("data"), tmp.path().join("crash"));
    let run = run(site, action, &data, &snapshot);
    assert!(run.refused > 0, "{site}={action}: the injected fault refused nothing");
    assert!(run.faulted_during, "{site}={action}: the store never reported the fault");
    let after: Vec<_> =
        run.confirmed.iter().filter(|b| b.starts_with(&format!("{:03}", BATCHES - 1))).collect();
    assert!(!after.is_empty(), "{site}={action}: nothing was confirmed after the fault cleared");
    scenario.teardown();

    let store = DiskStore::open(&snapshot, config()).unwrap();
    let mut log = store.open_log("/", "q", true).unwrap();
    let recovered: BTreeSet<String> = drain(&mut log).into_iter().map(|(_, b, _)| b).collect();
    let lost: Vec<_> = run.confirmed.difference(&run.acked).filter(|b| !recovered.contains(*b)).collect();
    assert!(
        lost.is_empty(),
        "{site}={action}: {} confirmed messages lost, e.g. {:?}",
        lost.len(),
        &lost[..1]
    );
}

#[test]
fn segment_write_fails_with_enospc() {
    nothing_confirmed_is_lost("store::write", "return(enospc)");
}

#[test]
fn segment_write_fails_half_way() {
    nothing_confirmed_is_lost("store::write", "return(partial)");
}

#[test]
fn segment_write_fails_with_eio() {
    nothing_confirmed_is_lost("store::write", "return(eio)");
}

#[test]
fn a_new_segment_cannot_be_created() {
    nothing_confirmed_is_lost("store::create", "return(enospc)");
}

#[test]
fn fsync_fails() {
    nothing_confirmed_is_lost("store::fsync", "return(eio)");
}

#[test]
fn ack_writes_fail_half_way_and_entries_stay_aligned() {
    let scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let (data, snapshot) = (tmp.path().join("data"), tmp.path().join("crash"));
    let store = DiskStore::open(&data, config()).unwrap();
    let mut log = store.open_log("/", "q", true).unwrap();
    for i in 0..6 {
        log.append(msg(format!("m{i}")), None, true).unwrap();
    }
    log.flush().unwrap();
    // The first ack's write tears half-way; the retry writes it whole, then the second follows.
    let first = log.pop_front().unwrap();
    log.settle(first.offset, true);
    fail::cfg("store::ack_write", "1*return(partial)").unwrap();
    assert!(log.flush().is_err());
    assert!(store.health().is_faulted());
    log.flush().unwrap();
    let second = log.pop_front().unwrap();
    log.settle(second.offset, true);
    log.flush().unwrap();
    scenario.teardown();
    copy_dir(&data, &snapshot);
    drop((log, store));
    let store = DiskStore::open(&snapshot, config()).unwrap();
    let mut log = store.open_log("/", "q", true).unwrap();
    let left: Vec<_> = drain(&mut log).into_iter().map(|(_, b, _)| b).collect();
    assert_eq!(left, ["m2", "m3", "m4", "m5"], "both acks hold after the torn write");
}

#[test]
fn after_a_failed_fsync_the_log_writes_a_fresh_segment() {
    let scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let store = DiskStore::open(tmp.path(), config()).unwrap();
    let mut log = store.open_log("/", "q", true).unwrap();
    log.append(msg("before"), None, true).unwrap();
    log.flush().unwrap();
    assert!(durable(&store, store.sync_ticket()));
    fail::cfg("store::fsync", "1*return(eio)").unwrap();
    log.append(msg("during"), None, true).unwrap();
    log.flush().unwrap();
    assert!(!durable(&store, store.sync_ticket()), "a failed fsync is never reported durable");
    let segments = log.segment_count();
    // The fsync of the same file would now succeed, but its pages are not trusted: the next
    // record goes to a new segment, and only then is a ticket durable again.
    log.append(msg("after"), None, true).unwrap();
    log.flush().unwrap();
    assert_eq!(log.segment_count(), segments + 1);
    assert!(durable(&store, store.sync_ticket()));
    scenario.teardown();
}
