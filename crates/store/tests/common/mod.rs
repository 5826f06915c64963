//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use warren_store::{DiskConfig, DiskLog, DiskStore, Message, QueueLog, QueuedMessage, SyncMode};

pub fn msg(body: impl AsRef<[u8]>) -> Message {
    Message {
        exchange: "amq.direct".into(),
        routing_key: "rk".into(),
        properties: Bytes::from_static(&[0x10, 0x00, 2]),
        body: Bytes::copy_from_slice(body.as_ref()),
    }
}

pub fn body(m: &QueuedMessage) -> String {
    String::from_utf8(m.message.body.to_vec()).unwrap()
}

pub fn small_config() -> DiskConfig {
    DiskConfig {
        segment_size: 4096,
        memory_window_bytes: 1 << 20,
        memory_window_messages: 16,
        sync: SyncMode::Never,
    }
}

pub fn open(dir: &Path, config: DiskConfig) -> DiskStore {
    DiskStore::open(dir, config).unwrap()
}

/// Pops everything ready, returning (offset, body, redelivered).
pub fn drain(log: &mut dyn QueueLog) -> Vec<(u64, String, bool)> {
    std::iter::from_fn(|| log.pop_front()).map(|m| (m.offset, body(&m), m.redelivered)).collect()
}

/// Pops and settles everything ready.
pub fn drain_settle(log: &mut dyn QueueLog) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = log.pop_front() {
        log.settle(m.offset, m.stored);
        out.push(body(&m));
    }
    out
}

/// The segment files of a log's directory, sorted.
pub fn segment_files(log: &DiskLog) -> Vec<PathBuf> {
    files_with(log.dir(), "seg")
}

pub fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => {
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect()
        }
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}
