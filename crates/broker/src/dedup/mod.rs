//! Publish deduplication: an exchange or queue that deduplicates drops a message whose key it
//! has seen within its window (see `config` for the arguments, `key` for what the key is,
//! `cache` for the window).
//!
//! A durable exchange or queue keeps its window in a log of the store, under a reserved name
//! (see [`log_name`]): the keys a batch of publishes admitted (16 bytes of hash, 8 of expiry
//! each) are written as one record with the batch, so they are on disk before the messages they
//! admitted are confirmed; a record is settled once all of its entries have left the window, and
//! the store deletes a segment once all of its records are settled. A key admitted inside a
//! transaction gets a record of its own, tagged with the transaction. Opening the log replays
//! what it holds. Otherwise the window lives in memory only.

mod cache;
mod config;
mod key;

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;
use parking_lot::Mutex;
use warren_message::ShortStr;
use warren_store::{Message, QueueLog};

use crate::time::Now;
use cache::{DedupCache, Key, Seen, NEVER};
pub(crate) use config::DedupConfig;
pub use config::{DEFAULT_CACHE_SIZE, MAX_CACHE_SIZE};

/// The store log name of a durable exchange's (`exchange` true) or queue's window.
pub fn log_name(exchange: bool, name: &str) -> String {
    let kind = if exchange { "exchange" } else { "queue" };
    format!("amq.x-message-deduplication/{kind}/{name}")
}

/// The store log of a window, when it is durable.
struct Log {
    log: Box<dyn QueueLog>,
    /// The window's logged records, oldest first, each with how many of its entries are still
    /// in the window (in the cache's arrival order: the oldest entry is the front record's).
    records: VecDeque<(u64, u32)>,
    /// Entries admitted since the last flush, encoded: the flush writes them as one record, so
    /// a batch of publishes costs one record, not one per key.
    pending: Vec<u8>,
    /// Records all of whose entries left the window, not yet settled in the log: settled
    /// together once they cover [`SETTLE_BATCH`] entries, so the log's acknowledgements are
    /// written (and fsynced) once in a while rather than in every group-commit round.
    /// Unsettled ones are harmless: a replay takes them back and pushes them out again.
    evicted: Vec<u64>,
    evicted_entries: usize,
    /// Appended to since the last flush.
    unflushed: bool,
}

impl Log {
    /// The oldest entry left the window.
    fn evict_oldest(&mut self) {
        let Some(front) = self.records.front_mut() else { return };
        front.1 = front.1.saturating_sub(1);
        self.evicted_entries += 1;
        if front.1 == 0 {
            self.evicted.push(front.0);
            self.records.pop_front();
        }
        if self.evicted_entries >= SETTLE_BATCH {
            self.evicted_entries = 0;
            for old in self.evicted.drain(..) {
                self.log.settle(old, true);
            }
        }
    }

    /// Writes the pending entries as one record (for no transaction: they may be other
    /// publishers' keys), to go out with the next flush.
    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let body = Bytes::from(std::mem::take(&mut self.pending));
        self.append(body, false)
    }

    /// Appends a record of `body`'s entries; `in_transaction` when it belongs to the
    /// transaction the thread applies.
    fn append(&mut self, body: Bytes, in_transaction: bool) -> io::Result<()> {
        let entries = (body.len() / ENTRY_LEN) as u32;
        let entry = Message {
            exchange: ShortStr::default(),
            routing_key: ShortStr::default(),
            properties: Bytes::new(),
            body,
        };
        let offset = if in_transaction {
            self.log.append(entry, None, true)?
        } else {
            warren_store::outside_transaction(|| self.log.append(entry, None, true))?
        };
        // Taken at once: the log keeps it on disk only, until it leaves the window.
        self.log.pop_front();
        self.records.push_back((offset, entries));
        self.unflushed = true;
        Ok(())
    }
}

/// How many entries that left a durable window are settled at once (whole records at a time).
const SETTLE_BATCH: usize = if cfg!(test) { 64 } else { 4096 };

struct State {
    cache: DedupCache,
    log: Option<Log>,
}

/// What deduplication made of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// It has no key: it goes on as if there were no deduplication.
    NoKey,
    /// Its key was new, and is now in the window; `logged` when written to the window's log
    /// (the batch must flush it and a confirm wait for the next sync).
    Admitted {
        /// Appended to the durable log.
        logged: bool,
    },
    /// Its key is in the window: it is dropped. `durable` when the window is on disk: its
    /// confirm waits for the next sync, so that it never overtakes the message it duplicates.
    Duplicate {
        /// The window is on disk.
        durable: bool,
    },
}

/// The deduplication window of one exchange or queue.
pub struct Deduplicator {
    config: DedupConfig,
    state: Mutex<State>,
    /// It keeps its keys in a log of the store (see [`Deduplicator::is_logged`]).
    logged: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Deduplicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deduplicator").field("config", &self.config).finish()
    }
}

/// A logged entry: the key's two words and its expiry (wall-clock ms), little-endian.
const ENTRY_LEN: usize = 24;

fn encode_entry(out: &mut Vec<u8>, key: Key, expires_ms: u64) {
    out.extend_from_slice(&key[0].to_le_bytes());
    out.extend_from_slice(&key[1].to_le_bytes());
    out.extend_from_slice(&expires_ms.to_le_bytes());
}

/// The entries of a logged record (one or more); `None` if it is not a whole number of them.
fn decode_entries(body: &[u8]) -> Option<impl Iterator<Item = (Key, u64)> + '_> {
    (!body.is_empty() && body.len().is_multiple_of(ENTRY_LEN)).then_some(())?;
    let word = |e: &[u8], at: usize| u64::from_le_bytes(e[at..at + 8].try_into().expect("8 bytes"));
    Some(body.chunks_exact(ENTRY_LEN).map(move |e| ([word(e, 0), word(e, 8)], word(e, 16))))
}

impl Deduplicator {
    /// An empty in-memory window.
    pub(crate) fn new(config: DedupConfig) -> Self {
        let cache = DedupCache::new(config.size);
        Deduplicator { config, state: Mutex::new(State { cache, log: None }), logged: Default::default() }
    }

    /// Whether the window keeps its keys in a log of the store (it is attached to one).
    pub(crate) fn is_logged(&self) -> bool {
        self.logged.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a durable exchange or queue keeps this window on disk.
    pub(crate) fn wants_disk(&self) -> bool {
        self.config.on_disk
    }

    /// Keys in the window now (expired ones included until they are overwritten).
    pub fn len(&self) -> usize {
        self.state.lock().cache.len()
    }

    /// Whether the window holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys the window keeps.
    pub fn capacity(&self) -> usize {
        self.config.size
    }

    /// Keeps the window in `log` from now on, first replaying what it recovered. Expired
    /// entries come back too: they no longer count, and leave in their turn.
    pub(crate) fn attach_log(&self, mut log: Box<dyn QueueLog>) {
        let mut st = self.state.lock();
        let mut records: VecDeque<(u64, u32)> = VecDeque::new();
        let mut settled = false;
        while let Some(m) = log.pop_front() {
            let Some(entries) = decode_entries(&m.message.body) else {
                log.settle(m.offset, true);
                settled = true;
                continue;
            };
            records.push_back((m.offset, (m.message.body.len() / ENTRY_LEN) as u32));
            for (key, expires_ms) in entries {
                if st.cache.restore(key, expires_ms) {
                    let front = records.front_mut().expect("the record just pushed at least");
                    front.1 -= 1;
                    if front.1 == 0 {
                        log.settle(front.0, true);
                        records.pop_front();
                        settled = true;
                    }
                }
            }
        }
        if settled {
            if let Err(error) = log.flush() {
                tracing::error!(%error, "writing to a deduplication log failed");
            }
        }
        self.logged.store(true, std::sync::atomic::Ordering::Relaxed);
        st.log = Some(Log {
            log,
            records,
            pending: Vec::new(),
            evicted: Vec::new(),
            evicted_entries: 0,
            unflushed: false,
        });
    }

    /// Checks a published message against the window at `now`, adding its key if new.
    pub(crate) fn admit(&self, raw_properties: &Bytes, now: Now) -> io::Result<Admission> {
        let Some(mk) = key::message_key(raw_properties, &self.config.key) else {
            return Ok(Admission::NoKey);
        };
        let ttl = mk.ttl_ms.or(self.config.ttl_ms);
        let expires_ms = ttl.map_or(NEVER, |t| now.unix_ms.saturating_add(t));
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let durable = st.log.is_some();
        let evicted = match st.cache.admit(mk.key, expires_ms, now.unix_ms) {
            Seen::Duplicate => return Ok(Admission::Duplicate { durable }),
            Seen::New { evicted } => evicted,
        };
        let Some(log) = st.log.as_mut() else { return Ok(Admission::Admitted { logged: false }) };
        if evicted {
            log.evict_oldest();
        }
        if warren_store::applying_transaction() {
            // Its own record, tagged with the transaction (it counts only if the transaction
            // commits), after the entries admitted before it, to keep the log in window order.
            log.write_pending()?;
            let mut body = Vec::with_capacity(ENTRY_LEN);
            encode_entry(&mut body, mk.key, expires_ms);
            log.append(body.into(), true)?;
        } else {
            encode_entry(&mut log.pending, mk.key, expires_ms);
            log.unflushed = true;
        }
        Ok(Admission::Admitted { logged: true })
    }

    /// Hands what the log buffered to the OS, marking it for the store's next sync.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        match st.log.as_mut() {
            Some(log) if log.unflushed => {
                log.unflushed = false;
                log.write_pending()?;
                log.log.flush()
            }
            _ => Ok(()),
        }
    }

    /// The exchange or queue is gone: its log is removed.
    pub(crate) fn delete(&self) {
        let mut st = self.state.lock();
        st.cache = DedupCache::new(1);
        self.logged.store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(mut log) = st.log.take() {
            log.log.delete();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use warren_message::{BasicProperties, FieldTable, FieldValue};

    fn now() -> Now {
        Now::new(Instant::now(), 1_767_225_600_000)
    }

    fn with_key(key: &str, ttl: Option<i32>) -> Bytes {
        let mut h = FieldTable::new();
        h.insert("x-deduplication-header", FieldValue::LongStr(Bytes::copy_from_slice(key.as_bytes())));
        if let Some(ttl) = ttl {
            h.insert("x-cache-ttl", FieldValue::I32(ttl));
        }
        let mut out = bytes::BytesMut::new();
        BasicProperties { headers: Some(h), ..Default::default() }.encode(&mut out);
        out.freeze()
    }

    fn config(size: usize, ttl_ms: Option<u64>) -> DedupConfig {
        DedupConfig {
            size,
            ttl_ms,
            key: config::KeySource::Header(config::DEFAULT_HEADER.into()),
            on_disk: true,
        }
    }

    #[test]
    fn per_message_ttl_overrides_the_default() {
        let d = Deduplicator::new(config(10, Some(10_000)));
        let t0 = now();
        assert_eq!(d.admit(&with_key("a", Some(100)), t0).unwrap(), Admission::Admitted { logged: false });
        assert_eq!(d.admit(&with_key("b", None), t0).unwrap(), Admission::Admitted { logged: false });
        let later = t0.later(Duration::from_millis(100));
        assert_eq!(d.admit(&with_key("a", None), later).unwrap(), Admission::Admitted { logged: false });
        assert_eq!(d.admit(&with_key("b", None), later).unwrap(), Admission::Duplicate { durable: false });
        assert_eq!(d.admit(&Bytes::new(), later).unwrap(), Admission::NoKey);
    }

    #[test]
    fn a_logged_window_is_replayed_and_its_old_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let config_disk = warren_store::DiskConfig { segment_size: 4096, ..Default::default() };
        let store = Arc::new(warren_store::DiskStore::open(dir.path(), config_disk.clone()).unwrap());
        let t0 = now();
        let name = log_name(true, "x");
        {
            let d = Deduplicator::new(config(50, None));
            d.attach_log(warren_store::Store::open_queue(&*store, "/", &name, true).unwrap());
            for i in 0..1000 {
                assert!(matches!(
                    d.admit(&with_key(&i.to_string(), None), t0).unwrap(),
                    Admission::Admitted { logged: true }
                ));
                d.flush().unwrap();
            }
            assert!(matches!(
                d.admit(&with_key("999", Some(1)), t0).unwrap(),
                Admission::Duplicate { durable: true }
            ));
            d.admit(&with_key("short", Some(10)), t0).unwrap();
            d.flush().unwrap();
        }
        drop(store);
        let store = Arc::new(warren_store::DiskStore::open(dir.path(), config_disk).unwrap());
        let d = Deduplicator::new(config(50, None));
        let later = t0.later(Duration::from_millis(20));
        d.attach_log(warren_store::Store::open_queue(&*store, "/", &name, true).unwrap());
        assert_eq!(d.len(), 50, "the window's 50 entries");
        assert!(matches!(d.admit(&with_key("999", None), later).unwrap(), Admission::Duplicate { .. }));
        assert!(matches!(d.admit(&with_key("951", None), later).unwrap(), Admission::Duplicate { .. }));
        assert!(matches!(d.admit(&with_key("950", None), later).unwrap(), Admission::Admitted { .. }));
        assert!(matches!(d.admit(&with_key("short", None), later).unwrap(), Admission::Admitted { .. }));
        // 1000 entries of ~100 bytes in 4 KiB segments: only the window's last segments remain.
        let files = walk(dir.path());
        assert!(files < 8, "{files} files left");
        d.delete();
    }

    #[test]
    fn keys_admitted_in_a_transaction_count_only_if_it_commits() {
        let dir = tempfile::tempdir().unwrap();
        let config_disk = warren_store::DiskConfig::default();
        let name = log_name(false, "q");
        let t0 = now();
        {
            let store = warren_store::DiskStore::open(dir.path(), config_disk.clone()).unwrap();
            let d = Deduplicator::new(config(100, None));
            d.attach_log(warren_store::Store::open_queue(&store, "/", &name, true).unwrap());
            // Another publisher's key, still pending when the transaction admits its own.
            d.admit(&with_key("plain", None), t0).unwrap();
            let mut tx = warren_store::Store::begin_tx(&store);
            d.admit(&with_key("in-tx", None), t0).unwrap();
            d.flush().unwrap();
            assert!(tx.end_writes(), "the transaction wrote its key");
            drop(tx); // aborted: never sealed, so never committed
            let mut committed = warren_store::Store::begin_tx(&store);
            d.admit(&with_key("committed", None), t0).unwrap();
            d.flush().unwrap();
            committed.end_writes();
            committed.seal();
            // The next sync round writes the commit record.
            let ticket = warren_store::Store::sync_ticket(&store);
            let (tx, rx) = std::sync::mpsc::channel();
            warren_store::Store::on_synced(&store, ticket, Box::new(move || tx.send(()).unwrap()));
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        let store = warren_store::DiskStore::open(dir.path(), config_disk).unwrap();
        let d = Deduplicator::new(config(100, None));
        d.attach_log(warren_store::Store::open_queue(&store, "/", &name, true).unwrap());
        assert_eq!(d.len(), 2, "the plain key and the committed one");
        assert!(matches!(d.admit(&with_key("plain", None), t0).unwrap(), Admission::Duplicate { .. }));
        assert!(matches!(d.admit(&with_key("committed", None), t0).unwrap(), Admission::Duplicate { .. }));
        assert!(matches!(d.admit(&with_key("in-tx", None), t0).unwrap(), Admission::Admitted { .. }));
    }

    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 })
            .sum()
    }
}
