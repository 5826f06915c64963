//! Publish deduplication: an exchange or queue that deduplicates drops a message whose key it
//! has seen within its window (see `config` for the arguments, `key` for what the key is,
//! `cache` for the window).
//!
//! A durable exchange or queue keeps its window on disk, so that a message confirmed before a
//! crash is still recognised after it. Every key admitted gets a sequence number (its place in
//! the window's arrival order). Where the message it admitted goes to one durable queue as a
//! persistent message, the key travels *in the message's record* (see [`Carried`]): atomic
//! with the message, and on disk with it, with no write of its own. The window also keeps a
//! log of its own in the store, under a reserved name (see [`log_name`]): entries (key,
//! expiry, sequence number) written in batches as records, lazily (fsynced only when a queue
//! is about to delete a segment that carries keys: see [`warren_store::LazyWriter`]), so a key
//! outlives its message's segment. A key that cannot travel with its message (the message goes
//! to several queues, or none) is written to the window's log with the publish, in the
//! publish's store transaction (see `vhost::route`). A record is settled once every entry in
//! it has left the window. At startup the window is rebuilt from both: its log, and what the
//! queues' recovered records carried ([`Deduplicator::merge_recovered`]), by sequence number.
//! Otherwise the window lives in memory only.

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

/// One key of a window: what a log record or a message's record keeps of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    key: Key,
    expires_ms: u64,
    /// Its place in the window's arrival order.
    seq: u64,
}

/// A logged entry: the key's two words, its expiry (wall-clock ms) and its sequence number,
/// little-endian. Records of this layout have the routing key [`ENTRY_FORMAT`]; earlier ones
/// (an empty routing key) have no sequence number ([`OLD_ENTRY_LEN`] bytes each).
const ENTRY_LEN: usize = 32;
const OLD_ENTRY_LEN: usize = 24;
const ENTRY_FORMAT: &str = "2";

fn encode_entry(out: &mut Vec<u8>, e: &Entry) {
    out.extend_from_slice(&e.key[0].to_le_bytes());
    out.extend_from_slice(&e.key[1].to_le_bytes());
    out.extend_from_slice(&e.expires_ms.to_le_bytes());
    out.extend_from_slice(&e.seq.to_le_bytes());
}

fn word(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The entries of a log record; `None` if it is not a whole number of them. Entries of the old
/// layout get sequence numbers from `next_old` on.
fn decode_entries(body: &[u8], new_format: bool, next_old: &mut u64) -> Option<Vec<Entry>> {
    let len = if new_format { ENTRY_LEN } else { OLD_ENTRY_LEN };
    (!body.is_empty() && body.len().is_multiple_of(len)).then_some(())?;
    body.chunks_exact(len)
        .map(|e| {
            let seq = if new_format {
                word(e, 24)?
            } else {
                *next_old += 1;
                *next_old - 1
            };
            Some(Entry { key: [word(e, 0)?, word(e, 8)?], expires_ms: word(e, 16)?, seq })
        })
        .collect()
}

/// Keys that travel in a message's record: for each, the window it belongs to and the entry.
///
/// ```text
/// u8 window   0: the queue's own; 1: an exchange's, followed by u8 length and its name
/// 32 bytes    the entry, as in a log record
/// ```
#[derive(Debug, Default)]
pub(crate) struct Carried(Vec<u8>);

/// Which window a carried entry belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WindowOf {
    /// The queue the record is in.
    Queue,
    /// The exchange of this name (in the queue's vhost).
    Exchange(ShortStr),
}

impl Carried {
    /// Adds `entry` of `window`.
    pub(crate) fn push(&mut self, window: &WindowOf, entry: &Entry) {
        match window {
            WindowOf::Queue => self.0.push(0),
            WindowOf::Exchange(name) => {
                self.0.push(1);
                self.0.push(name.len() as u8);
                self.0.extend_from_slice(name.as_bytes());
            }
        }
        encode_entry(&mut self.0, entry);
    }

    /// The encoded bytes (empty when nothing is carried).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// What a record carried; stops at the first malformed entry.
    pub(crate) fn decode(mut bytes: &[u8]) -> Vec<(WindowOf, Entry)> {
        let mut out = Vec::new();
        let mut next_old = 0;
        while let Some((&kind, rest)) = bytes.split_first() {
            let (window, rest) = match kind {
                0 => (WindowOf::Queue, rest),
                1 => {
                    let Some((&n, rest)) = rest.split_first() else { break };
                    let Some((name, rest)) = rest.split_at_checked(usize::from(n)) else { break };
                    let Ok(name) = ShortStr::try_from(Bytes::copy_from_slice(name)) else { break };
                    (WindowOf::Exchange(name), rest)
                }
                _ => break,
            };
            let Some((entry, rest)) = rest.split_at_checked(ENTRY_LEN) else { break };
            let Some(mut entries) = decode_entries(entry, true, &mut next_old) else { break };
            out.push((window, entries.remove(0)));
            bytes = rest;
        }
        out
    }
}

/// The store log of a window, when it is durable.
struct Log {
    log: Box<dyn QueueLog>,
    /// The window's logged records, oldest first: offset, the highest sequence number of its
    /// entries, and how many entries it has. A record is settled once its highest sequence
    /// number left the window (the window keeps the newest entries by sequence number).
    records: VecDeque<(u64, u64, u32)>,
    /// Entries admitted since the last write, encoded: written as one record, so a batch of
    /// publishes costs one record, not one per key.
    pending: Vec<u8>,
    /// The highest sequence number in `pending`.
    pending_max_seq: u64,
    /// Records that left the window, not yet settled in the log: settled together once they
    /// cover [`SETTLE_BATCH`] entries, so the log's acknowledgements are written (and fsynced)
    /// once in a while rather than in every round. Unsettled ones are harmless: a replay takes
    /// them back and they leave the window again.
    evicted: Vec<u64>,
    evicted_entries: usize,
    /// Appended to since the last flush, for a write that must be durable with the next sync
    /// (the entries of a publish that could not carry them).
    unflushed: bool,
    /// What the log held when attached (until [`Deduplicator::merge_recovered`]).
    replayed: Vec<Entry>,
}

impl Log {
    /// Settles the records all of whose entries are older than `oldest_live`.
    fn settle_older_than(&mut self, oldest_live: u64) {
        while let Some(&(offset, max_seq, entries)) = self.records.front() {
            if max_seq >= oldest_live {
                break;
            }
            self.records.pop_front();
            self.evicted.push(offset);
            self.evicted_entries += entries as usize;
        }
        if self.evicted_entries >= SETTLE_BATCH {
            self.evicted_entries = 0;
            for old in self.evicted.drain(..) {
                self.log.settle(old, true);
            }
        }
    }

    fn push_pending(&mut self, entry: &Entry) {
        encode_entry(&mut self.pending, entry);
        self.pending_max_seq = self.pending_max_seq.max(entry.seq);
    }

    /// Writes the pending entries as one record (for no transaction: they may be other
    /// publishers' keys).
    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let body = Bytes::from(std::mem::take(&mut self.pending));
        let max_seq = std::mem::take(&mut self.pending_max_seq);
        self.append(body, max_seq, false)
    }

    /// Appends a record of `body`'s entries; `in_transaction` when it belongs to the
    /// transaction the thread applies.
    fn append(&mut self, body: Bytes, max_seq: u64, in_transaction: bool) -> io::Result<()> {
        let entries = (body.len() / ENTRY_LEN) as u32;
        let entry = Message {
            exchange: ShortStr::default(),
            routing_key: ShortStr::from(ENTRY_FORMAT),
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
        self.records.push_back((offset, max_seq, entries));
        Ok(())
    }
}

/// How many entries that left a durable window are settled at once (whole records at a time).
const SETTLE_BATCH: usize = if cfg!(test) { 64 } else { 4096 };

/// Pending entries written out (to the log's buffer) once they take this many bytes.
const PENDING_WRITE_AT: usize = 64 << 10;

struct State {
    cache: DedupCache,
    /// The sequence number of the next key admitted.
    next_seq: u64,
    log: Option<Log>,
}

impl State {
    /// The oldest sequence number the window may still hold (every older one left it).
    fn oldest_live(&self) -> u64 {
        self.next_seq.saturating_sub(self.cache.ring_len() as u64)
    }
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

/// What [`Deduplicator::check`] made of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// As [`Admission::NoKey`].
    NoKey,
    /// As [`Admission::Duplicate`].
    Duplicate {
        /// The window is on disk.
        durable: bool,
    },
    /// The key is new and now in the window; for a window on disk, the entry still to be
    /// kept: carried by the message ([`Deduplicator::log_carried`]) or written
    /// ([`Deduplicator::log_now`]).
    Admitted(Option<Entry>),
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

impl Deduplicator {
    /// An empty in-memory window.
    pub(crate) fn new(config: DedupConfig) -> Self {
        let cache = DedupCache::new(config.size);
        Deduplicator {
            config,
            state: Mutex::new(State { cache, next_seq: 0, log: None }),
            logged: Default::default(),
        }
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
    /// entries come back too: they no longer count, and leave in their turn. What the queues'
    /// records carried joins with [`Deduplicator::merge_recovered`].
    pub(crate) fn attach_log(&self, mut log: Box<dyn QueueLog>) {
        let mut st = self.state.lock();
        let mut records: VecDeque<(u64, u64, u32)> = VecDeque::new();
        let mut replayed = Vec::new();
        let mut next_old = 0;
        let mut settled = false;
        while let Some(m) = log.pop_front() {
            let new_format = m.message.routing_key.as_bytes() == ENTRY_FORMAT.as_bytes();
            let Some(entries) = decode_entries(&m.message.body, new_format, &mut next_old) else {
                log.settle(m.offset, true);
                settled = true;
                continue;
            };
            let max_seq = entries.iter().map(|e| e.seq).max().unwrap_or(0);
            records.push_back((m.offset, max_seq, entries.len() as u32));
            replayed.extend(entries);
        }
        let mut state_log = Log {
            log,
            records,
            pending: Vec::new(),
            pending_max_seq: 0,
            evicted: Vec::new(),
            evicted_entries: 0,
            unflushed: false,
            replayed: Vec::new(),
        };
        rebuild(&mut st, &replayed);
        settled |= settle_left(&st, &mut state_log);
        if settled {
            if let Err(error) = state_log.log.flush() {
                tracing::error!(%error, "writing to a deduplication log failed");
            }
        }
        state_log.replayed = replayed;
        self.logged.store(true, std::sync::atomic::Ordering::Relaxed);
        st.log = Some(state_log);
    }

    /// Joins what the queues' recovered records carried for this window with what its log
    /// replayed, by sequence number: the window is the newest entries of both. Entries found
    /// only in records go to the log (lazily, before any queue deletes a segment that carries
    /// them: see [`warren_store::QueueLog::release_recovered`]). Called once after startup's
    /// restore, with nothing when no record carried anything for it.
    pub(crate) fn merge_recovered(&self, mut carried: Vec<Entry>) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let Some(mut log) = st.log.take() else { return };
        let replayed = std::mem::take(&mut log.replayed);
        if carried.is_empty() {
            st.log = Some(log);
            return;
        }
        let known: std::collections::HashSet<(Key, u64)> = replayed.iter().map(|e| (e.key, e.seq)).collect();
        carried.retain(|e| !known.contains(&(e.key, e.seq)));
        let mut all = replayed;
        all.extend(carried.iter().copied());
        st.cache = DedupCache::new(self.config.size);
        st.next_seq = 0;
        rebuild(st, &all);
        settle_left(st, &mut log);
        let oldest_live = st.oldest_live();
        carried.sort_by_key(|e| e.seq);
        for e in carried.iter().filter(|e| e.seq >= oldest_live) {
            log.push_pending(e);
        }
        st.log = Some(log);
    }

    /// Checks a published message against the window at `now`, adding its key if new. For a
    /// window on disk the new entry is returned, to be kept as the caller decides.
    pub(crate) fn check(&self, raw_properties: &Bytes, now: Now) -> Checked {
        let Some(mk) = key::message_key(raw_properties, &self.config.key) else {
            return Checked::NoKey;
        };
        let ttl = mk.ttl_ms.or(self.config.ttl_ms);
        let expires_ms = ttl.map_or(NEVER, |t| now.unix_ms.saturating_add(t));
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let durable = st.log.is_some();
        if st.cache.admit(mk.key, expires_ms, now.unix_ms) == Seen::Duplicate {
            return Checked::Duplicate { durable };
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        if !durable {
            return Checked::Admitted(None);
        }
        let oldest_live = st.oldest_live();
        let log = st.log.as_mut().expect("durable");
        log.settle_older_than(oldest_live);
        Checked::Admitted(Some(Entry { key: mk.key, expires_ms, seq }))
    }

    /// Keeps an entry [`Deduplicator::check`] returned whose message cannot carry it: in the
    /// transaction the thread applies, if any, as a record of its own (it counts only if the
    /// transaction commits); otherwise with the next flush, for the next sync.
    pub(crate) fn log_now(&self, entry: &Entry) -> io::Result<()> {
        let mut st = self.state.lock();
        let Some(log) = st.log.as_mut() else { return Ok(()) };
        if warren_store::applying_transaction() {
            // After the entries pending before it, to keep the log in arrival order.
            log.write_pending()?;
            let mut body = Vec::with_capacity(ENTRY_LEN);
            encode_entry(&mut body, entry);
            log.append(body.into(), entry.seq, true)?;
        } else {
            log.push_pending(entry);
        }
        log.unflushed = true;
        Ok(())
    }

    /// Keeps an entry [`Deduplicator::check`] returned whose message carries it (now on disk,
    /// or to be with the message): the log gets it lazily.
    pub(crate) fn log_carried(&self, entry: &Entry) {
        let mut st = self.state.lock();
        let Some(log) = st.log.as_mut() else { return };
        log.push_pending(entry);
        if log.pending.len() >= PENDING_WRITE_AT {
            if let Err(error) = log.write_pending() {
                tracing::debug!(%error, "writing deduplication keys failed");
            }
        }
    }

    /// Checks a published message against the window at `now`, adding its key if new and
    /// writing it to the log (see [`Deduplicator::log_now`]).
    pub(crate) fn admit(&self, raw_properties: &Bytes, now: Now) -> io::Result<Admission> {
        Ok(match self.check(raw_properties, now) {
            Checked::NoKey => Admission::NoKey,
            Checked::Duplicate { durable } => Admission::Duplicate { durable },
            Checked::Admitted(None) => Admission::Admitted { logged: false },
            Checked::Admitted(Some(entry)) => {
                self.log_now(&entry)?;
                Admission::Admitted { logged: true }
            }
        })
    }

    /// Hands what the log buffered for the next sync to the OS, marking it for that sync.
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

impl warren_store::LazyWriter for Deduplicator {
    fn write_lazily(&self) {
        let mut st = self.state.lock();
        let Some(log) = st.log.as_mut() else { return };
        let written = log.write_pending().and_then(|()| log.log.flush_lazily());
        if let Err(error) = written {
            tracing::error!(%error, "writing deduplication keys failed");
        }
    }
}

/// Settles at once the records whose entries all left the window (after a rebuild); true if
/// there were any.
fn settle_left(st: &State, log: &mut Log) -> bool {
    let before = log.records.len();
    log.settle_older_than(st.oldest_live());
    log.evicted_entries = 0;
    let settled = !log.evicted.is_empty() || log.records.len() != before;
    for old in log.evicted.drain(..) {
        log.log.settle(old, true);
    }
    settled
}

/// Fills the (empty) window with `entries`' newest, in sequence order: a key's latest entry
/// counts; the window keeps the newest [`DedupConfig::size`] of them.
fn rebuild(st: &mut State, entries: &[Entry]) {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.seq);
    for e in sorted {
        st.cache.restore(e.key, e.expires_ms);
        st.next_seq = st.next_seq.max(e.seq + 1);
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
