//! Group commit: one thread makes flushed files durable for everyone at once.
//!
//! Logs register the files they wrote as dirty ([`Syncer::mark_dirty`]); the broker takes a
//! ticket ([`Syncer::ticket`]) covering every flush registered before it. The thread waits for a
//! ticket above what is durable, takes the dirty set and the highest ticket in one step,
//! `fdatasync`s each file once, then publishes the ticket as synced and calls the wakers whose
//! tickets it covers. Whatever arrives while an fsync runs waits for the next round, which covers
//! all of it at once: under load there is one fsync per file per round, not per message.
//!
//! If an fsync fails, no later ticket is ever reported durable (after a failed fsync the kernel
//! may have dropped the dirty pages, so a retry that succeeds proves nothing); the error is kept
//! for [`Syncer::failure`].

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::SyncWaker;

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
    dirty: HashMap<usize, (Arc<File>, bool)>,
    waiters: Vec<(u64, SyncWaker)>,
    /// A round has taken the dirty set and is fsyncing it.
    in_progress: bool,
    failure: Option<String>,
    shutdown: bool,
}

pub(crate) struct Syncer {
    mode: SyncMode,
    state: Mutex<State>,
    wake: Condvar,
    synced: AtomicU64,
    rounds: AtomicU64,
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
    pub(crate) fn start(mode: SyncMode) -> std::io::Result<(Arc<Syncer>, Option<JoinHandle<()>>)> {
        let syncer = Arc::new(Syncer {
            mode,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            synced: AtomicU64::new(if mode == SyncMode::Never { u64::MAX } else { 0 }),
            rounds: AtomicU64::new(0),
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

    /// Registers a file written since the last sync (`is_dir`: a directory whose entries
    /// changed). A no-op with [`SyncMode::Never`].
    pub(crate) fn mark_dirty(&self, file: &Arc<File>, is_dir: bool) {
        if self.mode == SyncMode::Never {
            return;
        }
        let key = Arc::as_ptr(file) as usize;
        self.lock().dirty.entry(key).or_insert_with(|| (Arc::clone(file), is_dir));
    }

    /// A ticket covering every file registered so far.
    pub(crate) fn ticket(&self) -> u64 {
        let mut st = self.lock();
        if self.mode == SyncMode::Never {
            st.issued += 1;
            return st.issued;
        }
        if st.dirty.is_empty() && !st.in_progress && st.failure.is_none() {
            // Everything registered so far was synced by a finished round.
            return self.synced();
        }
        st.issued += 1;
        st.requested = st.issued;
        self.wake.notify_one();
        st.issued
    }

    /// The highest ticket known durable.
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

    /// The fsync error that stopped durability, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Asks the thread to finish its work and exit.
    pub(crate) fn shut_down(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    fn run(&self) {
        let mut st = self.lock();
        loop {
            while !st.shutdown && (st.requested <= self.synced() || st.failure.is_some()) {
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.requested <= self.synced() || st.failure.is_some() {
                return; // shut down with nothing left to do
            }
            let target = st.requested;
            let files: Vec<(Arc<File>, bool)> = st.dirty.drain().map(|(_, f)| f).collect();
            st.in_progress = true;
            drop(st);

            #[cfg(test)]
            drop(self.gate.lock().unwrap_or_else(|e| e.into_inner()));
            let mut failure = None;
            for (file, is_dir) in &files {
                let result = if *is_dir { file.sync_all() } else { file.sync_data() };
                if let Err(e) = result {
                    tracing::error!(error = %e, "fsync failed: no further message will be confirmed as durable");
                    failure = Some(e.to_string());
                    break;
                }
            }
            drop(files);

            st = self.lock();
            st.in_progress = false;
            if failure.is_some() {
                st.failure = failure;
                continue;
            }
            self.synced.store(target, Ordering::Release);
            self.rounds.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

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
        let (syncer, thread) = Syncer::start(SyncMode::Always).unwrap();
        // Nothing dirty: the ticket is durable already.
        let t0 = syncer.ticket();
        assert!(syncer.synced() >= t0);
        let f = temp_file(&dir, "a");
        syncer.mark_dirty(&f, false);
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
        let (syncer, thread) = Syncer::start(SyncMode::Always).unwrap();
        let gate = syncer.gate.lock().unwrap();
        let first = temp_file(&dir, "first");
        syncer.mark_dirty(&first, false);
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
            syncer.mark_dirty(f, false);
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
    fn never_mode_is_durable_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (syncer, thread) = Syncer::start(SyncMode::Never).unwrap();
        assert!(thread.is_none());
        syncer.mark_dirty(&temp_file(&dir, "a"), false);
        let t = syncer.ticket();
        assert!(syncer.synced() >= t);
        wait_for(&syncer, t);
        assert_eq!(syncer.rounds(), 0);
    }

    #[test]
    fn shutdown_finishes_the_requested_round() {
        let dir = tempfile::tempdir().unwrap();
        let (syncer, thread) = Syncer::start(SyncMode::Always).unwrap();
        let gate = syncer.gate.lock().unwrap();
        syncer.mark_dirty(&temp_file(&dir, "a"), false);
        let t = syncer.ticket();
        syncer.shut_down();
        drop(gate);
        thread.unwrap().join().unwrap();
        assert!(syncer.synced() >= t);
    }
}
