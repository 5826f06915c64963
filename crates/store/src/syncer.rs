//! Group commit: one thread makes flushed files durable for everyone at once.
//!
//! Logs register the files they wrote as dirty ([`Syncer::mark_dirty`]); the broker takes a
//! ticket ([`Syncer::ticket`]) covering every flush registered before it. The thread waits for a
//! ticket above what is durable, takes the dirty set and the highest ticket in one step,
//! `fdatasync`s each file once, then publishes the ticket as synced and calls the wakers whose
//! tickets it covers. Whatever arrives while an fsync runs waits for the next round, which covers
//! all of it at once: under load there is one fsync per file per round, not per message.
//!
//! A ticket has an outcome once a round covering it has run: durable, or *failed* when an fsync
//! in that round failed ([`Syncer::failed`]): the confirms waiting for it are nacked. A file
//! whose fsync failed is *poisoned*: after a failed fsync the kernel may have dropped its dirty
//! pages and marked them clean, so a later fsync that succeeds proves nothing about them (the
//! PostgreSQL "fsyncgate" lesson). Every later round that covers a poisoned file fails too; the
//! log that writes it rolls to a fresh segment file at its next write, so what it writes from then
//! on is trusted again. The failure is reported to [`Health`], which blocks publishers until a
//! probe write succeeds.
//!
//! *Lazy* files ([`Syncer::mark_lazy`]) are left out of rounds until someone asks for a lazy
//! round ([`Syncer::request_lazy`]): that round first has every registered [`LazyWriter`] hand
//! what it buffered to the OS, then fsyncs the lazy files with the rest. Logs whose records are
//! also kept elsewhere until then (deduplication windows whose keys travel in the messages'
//! records) are written so, off the confirms' critical path.
//!
//! Transactions ([`crate::transactions`]) commit in rounds too: a round takes the sealed ones
//! with its dirty set, fsyncs the files, then appends their commit records to the commit log and
//! fsyncs it, all before its ticket counts as durable.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use crate::commit_log::{CommitLog, EPOCH_SHIFT};
use crate::health::Health;
use crate::{LazyWriter, SyncWaker};

/// What a dirty file is, which decides how it is synced and what a failed fsync does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A segment: `fdatasync`; a failure poisons it (its log rolls to a fresh one).
    Segment,
    /// An ack file: `fdatasync`; a failure fails the round only (a lost ack redelivers a
    /// message, it never loses one).
    Ack,
    /// A directory whose entries changed: `fsync`.
    Dir,
}

/// Whether durability waits for fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Tickets are durable once their files are fsynced (`fdatasync`; directories `fsync`).
    #[default]
    Always,
    /// Tickets are durable at once; nothing is fsynced (the OS writes back when it likes).
    Never,
}

#[derive(Default)]
struct State {
    /// The last ticket handed out.
    issued: u64,
    /// The highest ticket someone waits for.
    requested: u64,
    /// Files written since the last round took the set, by address of their `Arc`.
    dirty: HashMap<usize, (Arc<File>, FileKind)>,
    /// Lazy files written since the last lazy round, likewise.
    lazy_dirty: HashMap<usize, (Arc<File>, FileKind)>,
    /// The highest ticket someone asked a lazy round for.
    lazy_wanted: u64,
    /// What a lazy round has write out first.
    lazy_writers: Vec<Weak<dyn LazyWriter>>,
    waiters: Vec<(u64, SyncWaker)>,
    /// A round has taken the dirty set and is fsyncing it.
    in_progress: bool,
    /// Ranges of tickets (inclusive) whose round failed, oldest first; a few at most (see
    /// [`MAX_FAILED_RANGES`]).
    failed: Vec<(u64, u64)>,
    /// Files whose fsync failed, by address of their `Arc`, until their log lets them go.
    poisoned: HashSet<usize>,
    shutdown: bool,
    tx: TxState,
}

/// Transactions between [`Syncer::begin_tx`] and their commit record.
#[derive(Default)]
struct TxState {
    /// The commit log's epoch: the high bits of transaction ids.
    epoch: u64,
    /// The epoch's transactions begun so far.
    counter: u64,
    /// Being applied (not yet sealed).
    open: BTreeSet<u64>,
    /// Sealed, waiting for a round to commit them; ascending.
    sealed: Vec<u64>,
}

impl TxState {
    /// Whether a sealed transaction began after one still being applied (its commit record must
    /// wait for that one's).
    fn held_back(&self) -> bool {
        matches!((self.sealed.last(), self.open.first()), (Some(s), Some(o)) if s > o)
    }

    /// Every transaction below this is resolved (committed durably, or never to commit).
    fn floor(&self, next: u64) -> u64 {
        let open = self.open.first().copied().unwrap_or(u64::MAX);
        let sealed = self.sealed.first().copied().unwrap_or(u64::MAX);
        open.min(sealed).min(next)
    }
}

/// Failed ranges kept; beyond this the oldest two merge. Merging can only fail a ticket that was
/// durable (its confirm becomes a nack, so the publisher sends it again): never the reverse.
const MAX_FAILED_RANGES: usize = 64;

pub(crate) struct Syncer {
    mode: SyncMode,
    state: Mutex<State>,
    wake: Condvar,
    synced: AtomicU64,
    rounds: AtomicU64,
    /// Bumped whenever a file is poisoned: a log compares it with what it saw last before
    /// asking (under the lock) whether its own file is one of them.
    poison_epoch: AtomicU64,
    /// The highest ticket of any failed round (0: none failed), so that asking about a ticket
    /// above it takes no lock.
    failed_through: AtomicU64,
    health: Arc<Health>,
    /// Where transactions commit (none: the store has no transactions to make durable).
    commit_log: Option<Mutex<CommitLog>>,
    /// Every transaction id below it is resolved (see [`Syncer::tx_floor`]).
    tx_floor: AtomicU64,
    /// The highest ticket of a lazy round that succeeded (see [`Syncer::lazy_synced`]).
    lazy_synced: AtomicU64,
    /// Tests hold this to keep a round from fsyncing until they let it.
    #[cfg(test)]
    gate: Mutex<()>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("mode", &self.mode)
            .field("synced", &self.synced())
            .field("rounds", &self.rounds())
            .finish()
    }
}

impl Syncer {
    /// A syncer and, for [`SyncMode::Always`], its running thread.
    pub(crate) fn start(
        mode: SyncMode,
        health: Arc<Health>,
        commit_log: Option<CommitLog>,
    ) -> std::io::Result<(Arc<Syncer>, Option<JoinHandle<()>>)> {
        let epoch = commit_log.as_ref().map_or(0, CommitLog::epoch);
        let tx = TxState { epoch, ..TxState::default() };
        let syncer = Arc::new(Syncer {
            mode,
            state: Mutex::new(State { tx, ..State::default() }),
            wake: Condvar::new(),
            synced: AtomicU64::new(if mode == SyncMode::Never { u64::MAX } else { 0 }),
            rounds: AtomicU64::new(0),
            poison_epoch: AtomicU64::new(0),
            failed_through: AtomicU64::new(0),
            health,
            commit_log: commit_log.map(Mutex::new),
            tx_floor: AtomicU64::new((epoch << EPOCH_SHIFT) + 1),
            lazy_synced: AtomicU64::new(0),
            #[cfg(test)]
            gate: Mutex::new(()),
        });
        let thread = match mode {
            SyncMode::Never => None,
            SyncMode::Always => {
                let s = Arc::clone(&syncer);
                Some(std::thread::Builder::new().name("warren-syncer".into()).spawn(move || s.run())?)
            }
        };
        Ok((syncer, thread))
    }

    pub(crate) fn mode(&self) -> SyncMode {
        self.mode
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A waker that panicked poisons nothing we rely on: the state stays consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a file written since the last sync. A no-op with [`SyncMode::Never`].
    pub(crate) fn mark_dirty(&self, file: &Arc<File>, kind: FileKind) {
        if self.mode == SyncMode::Never {
            return;
        }
        let key = Arc::as_ptr(file) as usize;
        self.lock().dirty.entry(key).or_insert_with(|| (Arc::clone(file), kind));
    }

    /// Registers a lazy file written since the last lazy round (see the module doc). A no-op
    /// with [`SyncMode::Never`].
    pub(crate) fn mark_lazy(&self, file: &Arc<File>, kind: FileKind) {
        if self.mode == SyncMode::Never {
            return;
        }
        let key = Arc::as_ptr(file) as usize;
        self.lock().lazy_dirty.entry(key).or_insert_with(|| (Arc::clone(file), kind));
    }

    /// Has `writer` write out what it buffered before every lazy round, while it lives.
    pub(crate) fn register_lazy_writer(&self, writer: Weak<dyn LazyWriter>) {
        let mut st = self.lock();
        st.lazy_writers.retain(|w| w.strong_count() > 0);
        st.lazy_writers.push(writer);
    }

    /// Asks for a lazy round; returns its ticket: once [`Syncer::lazy_synced`] reaches it,
    /// everything the lazy writers had buffered and every lazy file written before this call is
    /// durable. With [`SyncMode::Never`] the writers write out at once (nothing is fsynced).
    pub(crate) fn request_lazy(&self) -> u64 {
        let mut st = self.lock();
        st.issued += 1;
        let ticket = st.issued;
        if self.mode == SyncMode::Never {
            let writers = st.lazy_writers.clone();
            drop(st);
            write_lazily(&writers);
            self.lazy_synced.fetch_max(ticket, Ordering::AcqRel);
            return ticket;
        }
        st.requested = ticket;
        st.lazy_wanted = ticket;
        self.wake.notify_one();
        ticket
    }

    /// The highest ticket of a lazy round that succeeded.
    pub(crate) fn lazy_synced(&self) -> u64 {
        self.lazy_synced.load(Ordering::Acquire)
    }

    /// A ticket covering every file registered so far.
    pub(crate) fn ticket(&self) -> u64 {
        let mut st = self.lock();
        if self.mode == SyncMode::Never {
            st.issued += 1;
            return st.issued;
        }
        if st.dirty.is_empty() && !st.in_progress && st.tx.sealed.is_empty() {
            // Everything registered so far was synced by a finished round.
            return self.synced();
        }
        st.issued += 1;
        st.requested = st.issued;
        self.wake.notify_one();
        st.issued
    }

    /// The highest ticket whose outcome is known (durable unless [`Syncer::failed`] says so).
    pub(crate) fn synced(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }

    /// Calls `waker` once `ticket` is durable: at once if it is, else from the syncer thread.
    pub(crate) fn on_synced(&self, ticket: u64, waker: SyncWaker) {
        let mut st = self.lock();
        if self.synced() >= ticket {
            drop(st);
            waker();
        } else {
            st.waiters.push((ticket, waker));
        }
    }

    /// How many fsync rounds have run.
    pub(crate) fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Whether `ticket`'s round failed (meaningful once `synced() >= ticket`).
    pub(crate) fn failed(&self, ticket: u64) -> bool {
        // Every confirm batch asks: without a failure above it, no lock.
        if ticket == 0 || ticket > self.failed_through.load(Ordering::Acquire) {
            return false;
        }
        self.lock().failed.iter().any(|&(low, high)| (low..=high).contains(&ticket))
    }

    /// Changes whenever a file is poisoned; see [`Syncer::is_poisoned`].
    pub(crate) fn poison_epoch(&self) -> u64 {
        self.poison_epoch.load(Ordering::Acquire)
    }

    /// Whether an fsync of `file` failed (nothing written to it is trusted any more).
    pub(crate) fn is_poisoned(&self, file: &Arc<File>) -> bool {
        self.lock().poisoned.contains(&(Arc::as_ptr(file) as usize))
    }

    /// The log stopped writing `file`: it is no longer dirtied, so it need not be remembered.
    pub(crate) fn forget(&self, file: &Arc<File>) {
        self.lock().poisoned.remove(&(Arc::as_ptr(file) as usize));
    }

    fn commit_log(&self) -> Option<MutexGuard<'_, CommitLog>> {
        let log = self.commit_log.as_ref()?;
        Some(log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Allocates the id of a transaction about to be applied (None: no commit log).
    pub(crate) fn begin_tx(&self) -> Option<u64> {
        self.commit_log.as_ref()?;
        let mut st = self.lock();
        st.tx.counter += 1;
        if st.tx.counter >= 1 << EPOCH_SHIFT {
            let mut log = self.commit_log()?;
            match log.next_epoch() {
                Ok(epoch) => {
                    st.tx.epoch = epoch;
                    st.tx.counter = 1;
                }
                Err(e) => {
                    self.health.failed("writing the commit log", &e);
                    return None;
                }
            }
        }
        let txid = st.tx.epoch << EPOCH_SHIFT | st.tx.counter;
        st.tx.open.insert(txid);
        self.update_tx_floor(&st);
        Some(txid)
    }

    /// Transaction `txid` is flushed: the next round commits it.
    pub(crate) fn seal_tx(&self, txid: u64) {
        let mut st = self.lock();
        st.tx.open.remove(&txid);
        if self.mode == SyncMode::Never {
            // Nothing is fsynced: the record goes to the OS now, after the data it covers.
            if let Some(Err(e)) = self.commit_log().map(|mut log| log.commit(&[txid])) {
                self.health.failed("writing the commit log", &e);
            }
        } else {
            let at = st.tx.sealed.partition_point(|&s| s < txid);
            st.tx.sealed.insert(at, txid);
        }
        self.update_tx_floor(&st);
        self.wake.notify_all();
    }

    /// Transaction `txid` will not commit: it wrote nothing durable, or (`wrote`) it did and its
    /// writes failed or were abandoned.
    pub(crate) fn end_tx(&self, txid: u64, wrote: bool) {
        let mut st = self.lock();
        st.tx.open.remove(&txid);
        if wrote {
            if let Some(mut log) = self.commit_log() {
                log.failed(txid);
            }
        }
        self.update_tx_floor(&st);
        self.wake.notify_all();
    }

    /// Every transaction id below this has its outcome: a segment kept for one of them may go.
    pub(crate) fn tx_floor(&self) -> u64 {
        self.tx_floor.load(Ordering::Acquire)
    }

    fn update_tx_floor(&self, st: &State) {
        let next = (st.tx.epoch << EPOCH_SHIFT | st.tx.counter) + 1;
        self.tx_floor.store(st.tx.floor(next), Ordering::Release);
    }

    /// Asks the thread to finish its work and exit.
    pub(crate) fn shut_down(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    fn run(&self) {
        let mut helpers = SyncHelpers::default();
        let mut st = self.lock();
        loop {
            while !st.shutdown && st.requested <= self.synced() {
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.requested <= self.synced() {
                return; // shut down with nothing left to do
            }
            // Transactions commit in the order they began: wait for those still being applied
            // (they are sealed or dropped at the end of their batch, moments from now).
            while st.tx.held_back() {
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            let lazy = (st.lazy_wanted > self.lazy_synced()).then_some(st.lazy_wanted);
            if lazy.is_some() {
                let writers = st.lazy_writers.clone();
                drop(st);
                write_lazily(&writers);
                st = self.lock();
            }
            let commits = std::mem::take(&mut st.tx.sealed);
            let target = st.requested;
            let mut files: Vec<DirtyFile> =
                st.dirty.drain().map(|(key, (file, kind))| (key, file, kind)).collect();
            if lazy.is_some() {
                let taken: HashSet<usize> = files.iter().map(|(key, ..)| *key).collect();
                let lazy_files = st.lazy_dirty.drain().filter(|(key, _)| !taken.contains(key));
                files.extend(lazy_files.map(|(key, (file, kind))| (key, file, kind)).collect::<Vec<_>>());
            }
            // A poisoned file's data is not trusted whatever its next fsync says.
            let mut failed = files.iter().any(|(key, ..)| st.poisoned.contains(key));
            st.in_progress = true;
            drop(st);

            #[cfg(test)]
            drop(self.gate.lock().unwrap_or_else(|e| e.into_inner()));
            let mut newly_poisoned = Vec::new();
            for ((key, _, kind), result) in files.iter().zip(helpers.sync_all(&files)) {
                if let Err(e) = result {
                    self.health.failed("fsync", &e);
                    if *kind == FileKind::Segment {
                        newly_poisoned.push(*key);
                    }
                    failed = true;
                }
            }
            drop(files);
            if !commits.is_empty() {
                if let Some(mut log) = self.commit_log() {
                    if failed {
                        commits.iter().for_each(|&txid| log.failed(txid));
                    } else if let Err(e) = log.commit(&commits) {
                        self.health.failed("writing the commit log", &e);
                        failed = true;
                    }
                }
            }

            st = self.lock();
            self.update_tx_floor(&st);
            st.in_progress = false;
            if !newly_poisoned.is_empty() {
                st.poisoned.extend(newly_poisoned);
                self.poison_epoch.fetch_add(1, Ordering::AcqRel);
            }
            if failed {
                let low = self.synced() + 1;
                record_failed(&mut st.failed, low, target);
                self.failed_through.store(target, Ordering::Release);
                tracing::debug!(low, high = target, "sync round failed: its confirms are nacked");
            } else {
                self.rounds.fetch_add(1, Ordering::Relaxed);
                if let Some(lazy) = lazy {
                    self.lazy_synced.fetch_max(lazy, Ordering::AcqRel);
                }
            }
            self.synced.store(target, Ordering::Release);
            let (ready, waiting): (Vec<_>, Vec<_>) =
                std::mem::take(&mut st.waiters).into_iter().partition(|(t, _)| *t <= target);
            st.waiters = waiting;
            drop(st);
            for (_, waker) in ready {
                waker();
            }
            st = self.lock();
        }
    }
}

/// Has every living lazy writer write out what it buffered.
fn write_lazily(writers: &[Weak<dyn LazyWriter>]) {
    for writer in writers.iter().filter_map(Weak::upgrade) {
        writer.write_lazily();
    }
}

/// The most fsyncs a round runs at once.
const PARALLEL_SYNCS: usize = 8;

/// A file of a round: its key, the file, and what it is.
type DirtyFile = (usize, Arc<File>, FileKind);

/// Helper threads that fsync some of a round's files while the syncer thread does the rest:
/// each fsync waits for the device (and, on a journaling file system, for a journal commit that
/// concurrent ones share), so a round that touched several files (a transaction's queues, the
/// ack file of a consumed queue and the segment of the queue it publishes to, a deduplication
/// window) costs about one fsync's latency instead of one per file. Started as rounds first need
/// them and kept: starting a thread per round would cost more than some of the fsyncs.
#[derive(Default)]
struct SyncHelpers {
    helpers: Vec<std::sync::mpsc::Sender<SyncJob>>,
}

/// Files for a helper to sync, and where its outcomes go (with the chunk's index).
type SyncJob =
    (usize, Vec<(Arc<File>, FileKind)>, std::sync::mpsc::Sender<(usize, Vec<std::io::Result<()>>)>);

impl SyncHelpers {
    /// Makes every file of a round durable; returns each one's outcome, in order.
    fn sync_all(&mut self, files: &[DirtyFile]) -> Vec<std::io::Result<()>> {
        if files.len() <= 1 {
            return files.iter().map(|(_, file, kind)| sync_file(file, *kind)).collect();
        }
        let per_chunk = files.len().div_ceil(PARALLEL_SYNCS);
        let chunks: Vec<&[DirtyFile]> = files.chunks(per_chunk).collect();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let mut sent = 0;
        for (i, chunk) in chunks.iter().enumerate().skip(1) {
            let job: Vec<_> = chunk.iter().map(|(_, file, kind)| (Arc::clone(file), *kind)).collect();
            if self.send(i - 1, (i, job, done_tx.clone())) {
                sent += 1;
            } else {
                // No helper (it could not be started): this thread syncs the chunk itself.
                let outcomes = chunk.iter().map(|(_, file, kind)| sync_file(file, *kind)).collect();
                let _ = done_tx.send((i, outcomes));
                sent += 1;
            }
        }
        drop(done_tx);
        let mut outcomes: Vec<Option<Vec<std::io::Result<()>>>> = (0..chunks.len()).map(|_| None).collect();
        outcomes[0] = Some(chunks[0].iter().map(|(_, file, kind)| sync_file(file, *kind)).collect());
        for _ in 0..sent {
            match done_rx.recv() {
                Ok((i, result)) => outcomes[i] = Some(result),
                Err(_) => break, // a helper died with its job: its files count as failed below
            }
        }
        outcomes
            .into_iter()
            .zip(&chunks)
            .flat_map(|(result, chunk)| {
                result.unwrap_or_else(|| {
                    chunk.iter().map(|_| Err(std::io::Error::other("an fsync helper thread died"))).collect()
                })
            })
            .collect()
    }

    /// Hands `job` to helper `index`, starting it if need be; false if it cannot run.
    fn send(&mut self, index: usize, job: SyncJob) -> bool {
        if index >= self.helpers.len() {
            let (tx, rx) = std::sync::mpsc::channel::<SyncJob>();
            let started = std::thread::Builder::new().name("warren-fsync".into()).spawn(move || {
                for (i, files, done) in rx {
                    let outcomes = files.iter().map(|(file, kind)| sync_file(file, *kind)).collect();
                    let _ = done.send((i, outcomes));
                }
            });
            if started.is_err() {
                return false;
            }
            self.helpers.push(tx);
        }
        match self.helpers[index].send(job) {
            Ok(()) => true,
            Err(_) => false,
        }
    }
}

/// Makes one file durable (`fdatasync`; a directory `fsync`), unless a failure is injected.
fn sync_file(file: &File, kind: FileKind) -> std::io::Result<()> {
    crate::faults::inject("store::fsync")?;
    if kind == FileKind::Dir {
        file.sync_all()
    } else {
        file.sync_data()
    }
}

/// Adds the failed range `low..=high`, merging the oldest two when there are too many.
fn record_failed(failed: &mut Vec<(u64, u64)>, low: u64, high: u64) {
    match failed.last_mut() {
        Some(last) if last.1 + 1 >= low => last.1 = last.1.max(high),
        _ => failed.push((low, high)),
    }
    if failed.len() > MAX_FAILED_RANGES {
        let (_, second_high) = failed.remove(1);
        failed[0].1 = second_high;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn test_health() -> Arc<Health> {
        Arc::new(Health::new(&std::env::temp_dir()))
    }

    fn temp_file(dir: &tempfile::TempDir, name: &str) -> Arc<File> {
        Arc::new(File::create(dir.path().join(name)).unwrap())
    }

    fn wait_for(syncer: &Syncer, ticket: u64) {
        let (tx, rx) = mpsc::channel();
        syncer.on_synced(ticket, Box::new(move || tx.send(()).unwrap()));
        rx.recv_timeout(Duration::from_secs(10)).expect("ticket never became durable");
    }

    #[test]
    fn tickets_become_durable_and_wakers_run() {
        let dir = tempfile::tempdir().unwrap();
        let (syncer, thread) = Syncer::start(SyncMode::Always, test_health(), None).unwrap();
        // Nothing dirty: the ticket is durable already.
        let t0 = syncer.ticket();
        assert!(syncer.synced() >= t0);
        let f = temp_file(&dir, "a");
        syncer.mark_dirty(&f, FileKind::Segment);
        let t1 = syncer.ticket();
        assert!(t1 > t0);
        wait_for(&syncer, t1);
        assert!(syncer.synced() >= t1);
        assert_eq!(syncer.rounds(), 1);
        // A waker for a durable ticket runs at once, on the caller's thread.
        let called = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&called);
        syncer.on_synced(
            t1,
            Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }),
        );
        assert_eq!(called.load(Ordering::SeqCst), 1);
        syncer.shut_down();
        thread.unwrap().join().unwrap();
    }

    #[test]
    fn everything_that_arrives_during_an_fsync_shares_the_next_round() {
        let dir = tempfile::tempdir().unwrap();
        let (syncer, thread) = Syncer::start(SyncMode::Always, test_health(), None).unwrap();
        let gate = syncer.gate.lock().unwrap();
        let first = temp_file(&dir, "first");
        syncer.mark_dirty(&first, FileKind::Segment);
        let t1 = syncer.ticket();
        // Wait until the round has taken its set and stands at the gate.
        while !syncer.lock().in_progress {
            std::thread::yield_now();
        }
        let (tx, rx) = mpsc::channel();
        let files: Vec<_> = (0..10).map(|i| temp_file(&dir, &format!("f{i}"))).collect();
        let mut tickets = vec![t1];
        for i in 0..100 {
            let f = &files[i % files.len()];
            syncer.mark_dirty(f, FileKind::Segment);
            let t = syncer.ticket();
            let tx = tx.clone();
            syncer.on_synced(t, Box::new(move || tx.send(t).unwrap()));
            tickets.push(t);
        }
        assert_eq!(syncer.lock().dirty.len(), files.len(), "each file is registered once");
        drop(gate);
        let mut woken: Vec<u64> =
            (0..100).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
        woken.sort_unstable();
        assert_eq!(woken, tickets[1..]);
        assert_eq!(syncer.rounds(), 2, "one round for the first ticket, one for all the others");
        assert_eq!(syncer.synced(), *tickets.last().unwrap());
        syncer.shut_down();
        thread.unwrap().join().unwrap();
    }

    #[test]
    fn a_transaction_sealed_early_commits_only_with_the_one_that_began_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = CommitLog::open(dir.path(), true).unwrap();
        let (syncer, thread) = Syncer::start(SyncMode::Always, test_health(), Some(log)).unwrap();
        let first = syncer.begin_tx().unwrap();
        let second = syncer.begin_tx().unwrap();
        assert!(first < second);
        syncer.seal_tx(second);
        let ticket = syncer.ticket();
        // The round waits for `first` (still being applied): the ticket is not durable yet.
        std::thread::sleep(Duration::from_millis(50));
        assert!(syncer.synced() < ticket, "second committed before first was sealed");
        assert!(syncer.tx_floor() <= first);
        syncer.seal_tx(first);
        wait_for(&syncer, ticket);
        assert!(syncer.tx_floor() > second, "both resolved");
        syncer.shut_down();
        thread.unwrap().join().unwrap();
        let (_, committed) = CommitLog::open(dir.path(), true).unwrap();
        assert!(committed.contains(first) && committed.contains(second));
        // A transaction that wrote nothing resolves at once, with no record.
        let (log, _) = CommitLog::open(dir.path(), true).unwrap();
        let (syncer, thread) = Syncer::start(SyncMode::Always, test_health(), Some(log)).unwrap();
        let idle = syncer.begin_tx().unwrap();
        syncer.end_tx(idle, false);
        assert!(syncer.tx_floor() > idle);
        syncer.shut_down();
        thread.unwrap().join().unwrap();
    }

    #[test]
    fn never_mode_is_durable_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (syncer, thread) = Syncer::start(SyncMode::Never, test_health(), None).unwrap();
        assert!(thread.is_none());
        syncer.mark_dirty(&temp_file(&dir, "a"), FileKind::Segment);
        let t = syncer.ticket();
        assert!(syncer.synced() >= t);
        wait_for(&syncer, t);
        assert_eq!(syncer.rounds(), 0);
    }

    #[test]
    fn shutdown_finishes_the_requested_round() {
        let dir = tempfile::tempdir().unwrap();
        let (syncer, thread) = Syncer::start(SyncMode::Always, test_health(), None).unwrap();
        let gate = syncer.gate.lock().unwrap();
        syncer.mark_dirty(&temp_file(&dir, "a"), FileKind::Segment);
        let t = syncer.ticket();
        syncer.shut_down();
        drop(gate);
        thread.unwrap().join().unwrap();
        assert!(syncer.synced() >= t);
    }
}
