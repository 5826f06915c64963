//! Crash safety: a child process (this test binary, re-run with an environment variable)
//! appends, flushes and syncs in a loop, reporting each message once its sync ticket is
//! durable, and acknowledges some of what it recovered; the parent SIGKILLs it at a random
//! moment, reopens the store and checks that every message reported durable is there (unless
//! the child had begun to acknowledge it), that no acknowledgement reported durable is undone,
//! and that nothing else appears.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::*;
use warren_store::{DiskConfig, DiskStore, QueueLog, Store, SyncMode};

const CHILD_ENV: &str = "WARREN_STORE_CRASH_CHILD";

fn config() -> DiskConfig {
    DiskConfig {
        segment_size: 32 << 10,
        memory_window_messages: 200,
        memory_window_bytes: 1 << 20,
        sync: SyncMode::Always,
    }
}

fn wait_durable(store: &DiskStore) {
    let ticket = store.sync_ticket();
    let (tx, rx) = mpsc::channel();
    store.on_synced(
        ticket,
        Box::new(move || {
            let _ = tx.send(());
        }),
    );
    rx.recv().unwrap();
}

/// The child's work; a no-op when run as an ordinary test.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (dir, run) = spec.split_once('|').unwrap();
    let store = DiskStore::open(dir.as_ref(), config()).unwrap();
    let mut log = store.open_log("/", "crash", true).unwrap();
    let mut out = std::io::stdout().lock();
    // Acknowledge every other recovered message (some of them before the next crash).
    let mut i = 0;
    while let Some(m) = log.pop_front() {
        if i % 2 == 0 {
            // Once settled, the ack may be durable before it is reported.
            writeln!(out, "acking {}", body(&m)).unwrap();
            out.flush().unwrap();
            log.settle(m.offset, m.stored);
            log.flush().unwrap();
            wait_durable(&store);
            writeln!(out, "acked {}", body(&m)).unwrap();
            out.flush().unwrap();
        }
        i += 1;
    }
    for batch in 0.. {
        let mut bodies = Vec::new();
        for j in 0..(1 + batch % 7) {
            let b = format!("{run}-{batch}-{j}-{}", "z".repeat((batch * 31 + j) % 300));
            log.append(msg(&b), None, true).unwrap();
            bodies.push(b);
        }
        log.flush().unwrap();
        wait_durable(&store);
        for b in bodies {
            writeln!(out, "durable {b}").unwrap();
        }
        out.flush().unwrap();
    }
}

#[test]
fn messages_reported_durable_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let mut durable = BTreeSet::new();
    let mut acked = BTreeSet::new();
    let mut acking = BTreeSet::new();
    let mut seed = 0x9E37_79B9_u64;
    for run in 0..6 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = 20 + (seed % 400) as usize;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}|{run}", tmp.path().display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        let mut killed = false;
        // Everything the child printed counts, including what it printed after the line that
        // made us kill it: read to the end of the pipe.
        for line in stdout.lines() {
            let line = line.unwrap();
            // The test harness starts the first line with the test's name.
            let line = line.strip_prefix("test crash_child ... ").unwrap_or(&line);
            if let Some(b) = line.strip_prefix("durable ") {
                durable.insert(b.to_owned());
            } else if let Some(b) = line.strip_prefix("acked ") {
                acked.insert(b.to_owned());
            } else if let Some(b) = line.strip_prefix("acking ") {
                acking.insert(b.to_owned());
            } else {
                continue;
            }
            seen += 1;
            if seen >= kill_after && !killed {
                child.kill().unwrap(); // SIGKILL
                killed = true;
            }
        }
        child.wait().unwrap();
        assert!(seen >= kill_after, "run {run}: the child stopped early");

        // Check what a restart finds. Take nothing: the next child does that.
        let store = DiskStore::open(tmp.path(), config()).unwrap();
        let mut log = store.open_log("/", "crash", true).unwrap();
        let mut found = Vec::new();
        while let Some(m) = log.pop_front() {
            assert!(m.redelivered);
            found.push((m.offset, body(&m)));
        }
        assert!(found.windows(2).all(|w| w[0].0 < w[1].0), "offsets ascend");
        let found_set: BTreeSet<String> = found.iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(found_set.len(), found.len(), "no duplicates");
        for b in &durable {
            assert!(acking.contains(b) || found_set.contains(b), "run {run}: durable message {b} lost");
        }
        for b in &acked {
            assert!(!found_set.contains(b), "run {run}: acked message {b} came back");
        }
        for b in &found_set {
            assert!(b.split('-').count() == 4, "run {run}: garbage message {b}");
        }
        println!("run {run}: killed after {kill_after} reports; {} messages recovered", found.len());
    }
}
