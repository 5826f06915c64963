//! [`DiskStore`]: the data directory, its lock, and one [`DiskLog`] per queue.
//!
//! ```text
//! <data_dir>/LOCK                                  held (flock) while a broker uses the directory
//! <data_dir>/transactions.log                      which transactions committed (see commit_log)
//! <data_dir>/queues/<vhost dir>/<queue dir>/       a durable queue's segments and ack files
//! <data_dir>/transient/<n>/                        a non-durable queue's page-out (removed at open)
//! ```
//!
//! Directory names come from [`names`](crate::names).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::clock::Clock;
use crate::commit_log::CommitLog;
use crate::corruption::{CorruptionCounters, CorruptionStats};
use crate::disk_log::{DiskLog, LogContext};
use crate::health::Health;
use crate::names;
use crate::space::Space;
use crate::syncer::{SyncMode, Syncer};
use crate::{QueueLog, Store, SyncWaker, Transaction};

/// How a [`DiskStore`] lays out and syncs its logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// A segment file is rolled once it would grow past this (a larger record gets a segment of
    /// its own).
    pub segment_size: u64,
    /// Per queue: the most message bytes (body, properties, exchange, routing key) the read-ahead
    /// window holds in memory; the rest waits on disk.
    pub memory_window_bytes: usize,
    /// Per queue: the most messages the read-ahead window holds in memory.
    pub memory_window_messages: usize,
    /// Whether sync tickets wait for fsync.
    pub sync: SyncMode,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            segment_size: 8 << 20,
            memory_window_bytes: 4 << 20,
            memory_window_messages: 10_000,
            sync: SyncMode::Always,
        }
    }
}

const LOCK_FILE: &str = "LOCK";
const QUEUES_DIR: &str = "queues";
const TRANSIENT_DIR: &str = "transient";

/// Durable queue logs in a data directory: see the module documentation.
pub struct DiskStore {
    data_dir: PathBuf,
    ctx: Arc<LogContext>,
    syncer_thread: Option<JoinHandle<()>>,
    next_transient: AtomicU64,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("data_dir", &self.data_dir)
            .field("config", &self.ctx.config)
            .finish()
    }
}

impl DiskStore {
    /// Opens (creating it if needed) a data directory: locks it against a second broker,
    /// removes the page files of non-durable queues from an earlier run, starts the syncer.
    pub fn open(data_dir: &Path, config: DiskConfig) -> io::Result<DiskStore> {
        fs::create_dir_all(data_dir)?;
        let lock_path = data_dir.join(LOCK_FILE);
        let mut lock =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!("data directory {} is in use by another process", data_dir.display()),
                ))
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(io::Error::new(e.kind(), format!("cannot lock {}: {e}", lock_path.display())))
            }
        }
        // Who holds it, for a person looking (the lock itself is what counts).
        lock.set_len(0)?;
        writeln!(lock, "{}", std::process::id())?;

        match fs::remove_dir_all(data_dir.join(TRANSIENT_DIR)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::create_dir_all(data_dir.join(QUEUES_DIR))?;
        if config.sync == SyncMode::Always {
            File::open(data_dir)?.sync_all()?;
        }
        let health = Arc::new(Health::new(data_dir));
        let (commit_log, committed) = CommitLog::open(data_dir, config.sync == SyncMode::Always)?;
        let (syncer, syncer_thread) = Syncer::start(config.sync, health.clone(), Some(commit_log))?;
        Ok(DiskStore {
            data_dir: data_dir.to_owned(),
            ctx: Arc::new(LogContext {
                corruption: Arc::new(CorruptionCounters::default()),
                config,
                syncer,
                clock: Clock::now(),
                health,
                space: Arc::default(),
                committed,
                _lock: lock,
            }),
            syncer_thread,
            next_transient: AtomicU64::new(0),
        })
    }

    /// The data directory the store was opened on.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether the store can write now (a failed write or fsync blocks publishers until a probe
    /// succeeds).
    pub fn health(&self) -> &Arc<Health> {
        &self.ctx.health
    }

    /// What the store may still write before the disk reaches its free-space limit: the disk
    /// alarm sets it from each free-space reading, every write is charged against it.
    pub fn space(&self) -> &Arc<Space> {
        &self.ctx.space
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &DiskConfig {
        &self.ctx.config
    }

    /// What the recovery of the durable queue logs opened so far found damaged and worked
    /// around (skipped records and ack entries, repaired headers, files set aside): for the
    /// management API and metrics. Each event is also logged.
    pub fn corruption_stats(&self) -> CorruptionStats {
        self.ctx.corruption.snapshot()
    }

    /// The counters behind [`DiskStore::corruption_stats`], to read them later without holding
    /// the store (metrics).
    pub fn corruption_counters(&self) -> Arc<CorruptionCounters> {
        self.ctx.corruption.clone()
    }

    /// Opens a queue's log as its concrete type (see [`Store::open_queue`]). At most one log
    /// may be open per durable queue at a time.
    pub fn open_log(&self, vhost: &str, queue: &str, durable: bool) -> io::Result<DiskLog> {
        let dir = if durable {
            let queues = self.data_dir.join(QUEUES_DIR);
            let vhost_dir = queues.join(names::encode(vhost));
            let new_vhost = !vhost_dir.exists();
            let vhost_dir = names::ensure_dir(&queues, vhost)?;
            let queue_dir = vhost_dir.join(names::encode(queue));
            let new_queue = !queue_dir.exists();
            let queue_dir = names::ensure_dir(&vhost_dir, queue)?;
            if self.ctx.config.sync == SyncMode::Always {
                // Make the new directories' entries durable before anything in them is.
                if new_queue {
                    File::open(&queue_dir)?.sync_all()?;
                    File::open(&vhost_dir)?.sync_all()?;
                }
                if new_vhost {
                    File::open(&queues)?.sync_all()?;
                }
            }
            queue_dir
        } else {
            let n = self.next_transient.fetch_add(1, Ordering::Relaxed);
            self.data_dir.join(TRANSIENT_DIR).join(n.to_string())
        };
        DiskLog::open(Arc::clone(&self.ctx), dir, durable)
    }

    /// The (vhost, queue) names of every durable queue directory, for the broker to remove the
    /// ones whose queues no longer exist. Entries that are not ours are skipped (and logged).
    pub fn durable_queue_dirs(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let queues = self.data_dir.join(QUEUES_DIR);
        let vhosts = match fs::read_dir(&queues) {
            Ok(entries) => entries,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(dir = %queues.display(), error = %e, "cannot list queue directories");
                }
                return found;
            }
        };
        for vhost_entry in vhosts.flatten() {
            let vhost_path = vhost_entry.path();
            let Some(vhost) = dir_name(&vhost_path).and_then(|n| names::decode(&n, &vhost_path)) else {
                tracing::warn!(path = %vhost_path.display(), "unexpected entry in the queues directory; ignored");
                continue;
            };
            let Ok(queue_entries) = fs::read_dir(&vhost_path) else { continue };
            for queue_entry in queue_entries.flatten() {
                let queue_path = queue_entry.path();
                if dir_name(&queue_path).as_deref() == Some(names::NAME_FILE) {
                    continue;
                }
                match dir_name(&queue_path).and_then(|n| names::decode(&n, &queue_path)) {
                    Some(queue) if queue_path.is_dir() => found.push((vhost.clone(), queue)),
                    _ => {
                        tracing::warn!(path = %queue_path.display(), "unexpected entry in a vhost directory; ignored")
                    }
                }
            }
        }
        found.sort();
        found
    }

    /// Removes a durable queue's directory (and its vhost's, once empty). The queue's log must
    /// not be open.
    pub fn remove_queue_dir(&self, vhost: &str, queue: &str) -> io::Result<()> {
        let vhost_dir = self.data_dir.join(QUEUES_DIR).join(names::encode(vhost));
        match fs::remove_dir_all(vhost_dir.join(names::encode(queue))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        if fs::read_dir(&vhost_dir)?.flatten().all(|e| e.file_name() == names::NAME_FILE) {
            fs::remove_dir_all(&vhost_dir)?;
        }
        if self.ctx.config.sync == SyncMode::Always {
            File::open(self.data_dir.join(QUEUES_DIR))?.sync_all()?;
        }
        Ok(())
    }

    /// How many fsync rounds the syncer has run (group commit makes this far smaller than the
    /// number of tickets under load).
    pub fn sync_rounds(&self) -> u64 {
        self.ctx.syncer.rounds()
    }
}

fn dir_name(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_owned)
}

impl Store for DiskStore {
    fn open_queue(&self, vhost: &str, queue: &str, durable: bool) -> io::Result<Box<dyn QueueLog>> {
        Ok(Box::new(self.open_log(vhost, queue, durable)?))
    }

    fn sync_ticket(&self) -> u64 {
        self.ctx.syncer.ticket()
    }

    fn synced(&self) -> u64 {
        self.ctx.syncer.synced()
    }

    fn on_synced(&self, ticket: u64, waker: SyncWaker) {
        self.ctx.syncer.on_synced(ticket, waker);
    }

    fn ticket_failed(&self, ticket: u64) -> bool {
        self.ctx.syncer.failed(ticket)
    }

    fn begin_tx(&self) -> Transaction {
        Transaction::begin(&self.ctx.syncer)
    }

    fn register_lazy_writer(&self, writer: std::sync::Weak<dyn crate::LazyWriter>) {
        self.ctx.syncer.register_lazy_writer(writer);
    }
}

impl Drop for DiskStore {
    /// Stops the syncer once it has synced what was asked of it.
    fn drop(&mut self) {
        self.ctx.syncer.shut_down();
        if let Some(thread) = self.syncer_thread.take() {
            let _ = thread.join();
        }
    }
}
