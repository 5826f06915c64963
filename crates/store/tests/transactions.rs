//! Atomic transactions across queue logs: a commit survives a crash whole, an unfinished one
//! leaves nothing, whichever byte of its writes the crash cut.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use warren_store::{DiskConfig, DiskLog, DiskStore, QueueLog, Store, SyncMode};

fn config(sync: SyncMode) -> DiskConfig {
    DiskConfig { sync, ..small_config() }
}

fn wait_durable(store: &DiskStore) {
    let ticket = store.sync_ticket();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.synced() < ticket {
        assert!(Instant::now() < deadline, "ticket {ticket} never became durable");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!store.ticket_failed(ticket));
}

/// Every file under `dir` (but the lock) by path relative to it.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "LOCK") {
                files.insert(path.strip_prefix(dir).unwrap().to_owned(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn write_snapshot(dir: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) {
    for (path, data) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

/// What the three queues hold after recovery: the input queue's and both outputs' bodies.
fn recovered(dir: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let store = open(dir, config(SyncMode::Never));
    let bodies = |name: &str| -> Vec<String> {
        let mut log = store.open_log("/", name, true).unwrap();
        drain(&mut log).into_iter().map(|(_, b, _)| b).collect()
    };
    (bodies("in"), bodies("out-1"), bodies("out-2"))
}

struct Queues {
    input: DiskLog,
    out1: DiskLog,
    out2: DiskLog,
}

/// A store whose `in` queue holds one durable message, "job", taken for delivery.
fn with_input(dir: &Path) -> (DiskStore, Queues, u64) {
    let store = open(dir, config(SyncMode::Always));
    let mut input = store.open_log("/", "in", true).unwrap();
    input.append(msg("job"), None, true).unwrap();
    input.flush().unwrap();
    let out1 = store.open_log("/", "out-1", true).unwrap();
    let out2 = store.open_log("/", "out-2", true).unwrap();
    wait_durable(&store);
    let job = input.pop_front().unwrap();
    (store, Queues { input, out1, out2 }, job.offset)
}

/// The consume-transform-publish step: publish to both outputs and ack the input, in one
/// transaction; flushed, not yet sealed.
fn transform(store: &DiskStore, q: &mut Queues, job: u64) -> warren_store::Transaction {
    let mut tx = store.begin_tx();
    q.out1.append(msg("result"), None, true).unwrap();
    q.out2.append(msg("audit"), None, true).unwrap();
    q.input.settle(job, true);
    assert!(tx.end_writes(), "the transaction wrote durable records");
    for log in [&mut q.input, &mut q.out1, &mut q.out2] {
        log.flush().unwrap();
    }
    tx
}

fn none() -> (Vec<String>, Vec<String>, Vec<String>) {
    (vec!["job".into()], vec![], vec![])
}

fn all() -> (Vec<String>, Vec<String>, Vec<String>) {
    (vec![], vec!["result".into()], vec!["audit".into()])
}

#[test]
fn a_committed_transaction_survives_whole() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (store, mut q, job) = with_input(tmp.path());
        let tx = transform(&store, &mut q, job);
        tx.seal();
        wait_durable(&store);
    }
    assert_eq!(recovered(tmp.path()), all());
    // And again: the commit log keeps it across later runs.
    assert_eq!(recovered(tmp.path()), all());
}

#[test]
fn a_transaction_dropped_before_its_seal_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (store, mut q, job) = with_input(tmp.path());
        let tx = transform(&store, &mut q, job);
        drop(tx);
        wait_durable(&store);
    }
    let (input, out1, out2) = recovered(tmp.path());
    assert_eq!((input, out1, out2), none());
}

#[test]
fn a_crash_cutting_a_multi_queue_commit_anywhere_recovers_all_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let (before, after) = {
        let (store, mut q, job) = with_input(&live);
        let before = snapshot(&live);
        let tx = transform(&store, &mut q, job);
        tx.seal();
        wait_durable(&store);
        (before, snapshot(&live))
    };
    // The bytes the commit added, in the order they reach the disk: the queue logs' records and
    // acks (fsynced first, in any order among them), then the commit record.
    let mut writes: Vec<(PathBuf, usize, usize)> = Vec::new(); // file, from, to
    let is_commit_log = |p: &Path| p.file_name().is_some_and(|n| n == "transactions.log");
    let mut files: Vec<&PathBuf> = after.keys().collect();
    files.sort_by_key(|p| is_commit_log(p));
    for path in files {
        let old = before.get(path).map_or(0, Vec::len);
        let new = &after[path];
        assert_eq!(&new[..old], before.get(path).map_or(&[][..], Vec::as_slice), "{path:?} only grew");
        if new.len() > old {
            writes.push((path.clone(), old, new.len()));
        }
    }
    let total: usize = writes.iter().map(|(_, from, to)| to - from).sum();
    assert!(writes.len() >= 4, "two segments, an ack file and the commit log: {writes:?}");
    assert!(is_commit_log(&writes.last().unwrap().0));
    for order in [false, true] {
        // Also with the queue logs' writes landing in the reverse order.
        let mut writes = writes.clone();
        if order {
            let commit = writes.pop().unwrap();
            writes.reverse();
            writes.push(commit);
        }
        for cut in 0..=total {
            let trial = tmp.path().join(format!("cut-{order}-{cut}"));
            let mut files = before.clone();
            let mut left = cut;
            for (path, from, to) in &writes {
                let take = left.min(to - from);
                left -= take;
                let data = files.entry(path.clone()).or_default();
                data.extend_from_slice(&after[path][*from..from + take]);
            }
            files.retain(|_, data| !data.is_empty());
            write_snapshot(&trial, &files);
            let expected = if cut == total { all() } else { none() };
            assert_eq!(recovered(&trial), expected, "crash after {cut} of {total} bytes (reversed: {order})");
            std::fs::remove_dir_all(&trial).unwrap();
        }
    }
}

#[test]
fn a_segment_a_transaction_emptied_stays_until_the_outcome_is_known() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let store = open(&live, config(SyncMode::Always));
    let mut input = store.open_log("/", "in", true).unwrap();
    // The job fills the first segment; the next message starts another (segments are 4 KiB).
    input.append(msg(vec![b'j'; 4000]), None, true).unwrap();
    input.append(msg("next"), None, true).unwrap();
    input.flush().unwrap();
    wait_durable(&store);
    assert_eq!(segment_files(&input).len(), 2);
    let job = input.pop_front().unwrap();
    let mut tx = store.begin_tx();
    input.settle(job.offset, true);
    assert!(tx.end_writes());
    input.flush().unwrap();
    assert_eq!(segment_files(&input).len(), 2, "kept while the transaction is undecided");
    // A crash now: the job is still there.
    let crashed = tmp.path().join("crashed");
    write_snapshot(&crashed, &snapshot(&live));
    {
        let store = open(&crashed, config(SyncMode::Never));
        let mut log = store.open_log("/", "in", true).unwrap();
        assert_eq!(drain(&mut log).len(), 2, "the uncommitted ack is not applied");
    }
    tx.seal();
    wait_durable(&store);
    input.flush().unwrap();
    assert_eq!(segment_files(&input).len(), 1, "the commit is durable: the segment goes");
    drop(input);
    drop(store);
    let store = open(&live, config(SyncMode::Never));
    let mut log = store.open_log("/", "in", true).unwrap();
    assert_eq!(drain(&mut log).into_iter().map(|(_, b, _)| b).collect::<Vec<_>>(), ["next"]);
}
