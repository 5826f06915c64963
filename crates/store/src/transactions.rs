//! Atomic transactions: a [`Transaction`]'s writes to any number of queue logs count after a
//! crash only if its commit record made it to the commit log ([`crate::commit_log`]).
//!
//! While a transaction is applied (between [`Store::begin_tx`](crate::Store::begin_tx) and
//! [`Transaction::end_writes`]), every durable write the applying thread makes is tagged with the
//! transaction's id: message records carry it, acks are written as transaction acks. The broker
//! then flushes the logs, [`Transaction::seal`]s it and takes a sync ticket; the syncer's next
//! round fsyncs the logs and only then appends the commit record (and fsyncs the commit log),
//! before the ticket counts as durable. Recovery ignores the tagged records and acks of a
//! transaction with no commit record: a crash anywhere before the record is durable leaves none
//! of the transaction, after it all of it.
//!
//! Commit records are written in the order transactions began, and a round waits for a
//! transaction that began earlier and is still being applied: a transaction that saw another's
//! effects began after it, so it never survives a crash without it. A segment holding a message a
//! transaction settled is kept until that transaction's outcome is known.

use std::cell::Cell;
use std::sync::Arc;

use crate::syncer::Syncer;

thread_local! {
    /// The transaction this thread is applying (0: none), and whether it wrote anything durable.
    static APPLYING: Cell<(u64, bool)> = const { Cell::new((0, false)) };
}

/// The transaction the calling thread is applying, if any; the caller is about to write a
/// durable record for it.
pub(crate) fn writing() -> Option<u64> {
    APPLYING.with(|a| {
        let (txid, _) = a.get();
        (txid != 0).then(|| {
            a.set((txid, true));
            txid
        })
    })
}

/// Whether the calling thread is applying a transaction (what it writes now would be part of
/// it).
pub fn applying() -> bool {
    APPLYING.with(|a| a.get().0 != 0)
}

/// Runs `f` with the calling thread's transaction, if any, set aside: what `f` writes belongs to
/// no transaction (for a write made on behalf of others, such as a buffer shared with them).
pub fn outside<T>(f: impl FnOnce() -> T) -> T {
    struct Restore((u64, bool));
    impl Drop for Restore {
        fn drop(&mut self) {
            APPLYING.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(APPLYING.with(|a| a.replace((0, false))));
    f()
}

/// A transaction being applied: see the module documentation. Dropping it before
/// [`Transaction::seal`] aborts it (its durable writes are ignored after a crash).
#[derive(Debug)]
pub struct Transaction {
    syncer: Option<Arc<Syncer>>,
    txid: u64,
    wrote: bool,
    applying: bool,
}

impl Transaction {
    /// A transaction of a store that does not need one (nothing it writes survives a restart).
    pub fn none() -> Transaction {
        Transaction { syncer: None, txid: 0, wrote: false, applying: false }
    }

    /// Begins a transaction on this thread: the durable writes it makes belong to it.
    pub(crate) fn begin(syncer: &Arc<Syncer>) -> Transaction {
        let Some(txid) = syncer.begin_tx() else { return Transaction::none() };
        APPLYING.with(|a| a.set((txid, false)));
        Transaction { syncer: Some(Arc::clone(syncer)), txid, wrote: false, applying: true }
    }

    /// The thread is done applying the transaction; returns whether it wrote anything durable
    /// (if not, there is nothing to commit and the transaction is finished already).
    pub fn end_writes(&mut self) -> bool {
        if self.applying {
            self.applying = false;
            self.wrote = APPLYING.with(|a| a.replace((0, false))).1;
        }
        if !self.wrote {
            self.finish(false);
        }
        self.wrote
    }

    /// The transaction's writes are flushed to the OS: it commits with the next sync round.
    /// Take the sync ticket to wait for after this.
    pub fn seal(mut self) {
        self.end_writes();
        if let Some(syncer) = self.syncer.take() {
            syncer.seal_tx(self.txid);
        }
    }

    fn finish(&mut self, wrote: bool) {
        if let Some(syncer) = self.syncer.take() {
            syncer.end_tx(self.txid, wrote);
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.applying {
            self.applying = false;
            self.wrote = APPLYING.with(|a| a.replace((0, false))).1;
        }
        let wrote = self.wrote;
        self.finish(wrote);
    }
}
