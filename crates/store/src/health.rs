//! [`Health`]: whether the store can keep its promises right now.
//!
//! A failed write or fsync raises the *write fault*: the broker blocks publishers (a resource
//! alarm) until a probe write and fsync in the data directory succeed again. The fault is logged
//! once when it rises, with its cause, and once when it clears: under a full disk every batch
//! fails, and a line per failure would fill the log (and the disk) faster than the messages did.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The name of the probe file in the data directory.
const PROBE_FILE: &str = ".write-probe";

/// The store's fault state, shared by its logs and its syncer.
#[derive(Debug)]
pub struct Health {
    probe_path: PathBuf,
    faulted: AtomicBool,
    cause: Mutex<Option<String>>,
    /// Write and fsync failures seen since the store opened.
    failures: AtomicU64,
}

impl Health {
    pub(crate) fn new(data_dir: &Path) -> Health {
        Health {
            probe_path: data_dir.join(PROBE_FILE),
            faulted: AtomicBool::new(false),
            cause: Mutex::new(None),
            failures: AtomicU64::new(0),
        }
    }

    /// Records a failed write or fsync (`what` says which, `error` why).
    pub(crate) fn failed(&self, what: &str, error: &io::Error) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.faulted.swap(true, Ordering::AcqRel) {
            return;
        }
        let cause = format!("{what}: {error}");
        tracing::error!(
            %cause,
            "the store cannot write: publishers are blocked and nothing more is confirmed until writes succeed again"
        );
        *self.cause.lock().unwrap_or_else(|e| e.into_inner()) = Some(cause);
    }

    /// The cause of the standing write fault, if there is one.
    pub fn write_fault(&self) -> Option<String> {
        if !self.faulted.load(Ordering::Acquire) {
            return None;
        }
        self.cause.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether a write fault stands (one atomic load).
    pub fn is_faulted(&self) -> bool {
        self.faulted.load(Ordering::Acquire)
    }

    /// Write and fsync failures seen since the store opened (a metric).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// While a write fault stands: writes and fsyncs a small file in the data directory and
    /// clears the fault if that works. Returns whether the fault stands afterwards.
    pub fn probe(&self) -> bool {
        if !self.is_faulted() {
            return false;
        }
        match self.probe_write() {
            Ok(()) => {
                self.faulted.store(false, Ordering::Release);
                let cause = self.cause.lock().unwrap_or_else(|e| e.into_inner()).take();
                tracing::info!(
                    cause = cause.as_deref().unwrap_or(""),
                    "the store can write again: publishers may resume"
                );
                false
            }
            Err(_) => true,
        }
    }

    fn probe_write(&self) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&self.probe_path)?;
        // As much as a small batch of records: a disk with room for nothing more stays faulted.
        file.write_all(&[0u8; 64 * 1024])?;
        file.sync_data()?;
        drop(file);
        fs::remove_file(&self.probe_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_stands_until_a_probe_succeeds() {
        let tmp = tempfile::tempdir().unwrap();
        let health = Health::new(tmp.path());
        assert!(!health.probe(), "nothing to probe without a fault");
        health.failed("writing a queue log", &io::Error::other("disk full"));
        health.failed("writing a queue log", &io::Error::other("disk full"));
        assert_eq!(health.failures(), 2);
        assert_eq!(health.write_fault().as_deref(), Some("writing a queue log: disk full"));
        assert!(!health.probe(), "the directory is writable");
        assert_eq!(health.write_fault(), None);
        assert!(!tmp.path().join(PROBE_FILE).exists());
    }

    #[test]
    fn a_probe_that_cannot_write_keeps_the_fault() {
        let tmp = tempfile::tempdir().unwrap();
        let health = Health::new(&tmp.path().join("missing"));
        health.failed("fsync", &io::Error::other("EIO"));
        assert!(health.probe());
        assert!(health.is_faulted());
    }
}
