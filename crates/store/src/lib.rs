//! Warren's storage boundary.
//!
//! A queue keeps its ready messages in a [`QueueLog`]: appended with an offset that only grows,
//! taken from the front for delivery, put back by offset on requeue, and settled (acknowledged or
//! dropped for good) by offset. A [`Store`] opens one log per queue. [`MemoryStore`] keeps
//! everything in memory; [`DiskStore`] keeps each queue in a segment log on disk (durable
//! queues survive a restart, and deep queues page out so memory stays flat). Both sit behind the
//! same traits, so the broker and protocol layers do not change with the choice.
//!
//! With a [`DiskStore`], appends and settles are only buffered: after each batch of input the
//! broker calls [`QueueLog::flush`] on every log the batch touched, then takes one
//! [`Store::sync_ticket`] and sends the batch's publisher confirms from [`Store::on_synced`]
//! (group commit: one fsync round covers every batch that arrived while the previous ran).
//!
//! A transaction's writes, to any number of logs, become durable together or not at all: see
//! [`Store::begin_tx`].
//!
//! [`definitions`] keeps the rest of what survives a restart (vhosts, users, durable exchanges,
//! queues and bindings) in a file of its own.

#![warn(missing_docs, unreachable_pub)]

mod clock;
mod commit_log;
mod corruption;
pub mod definitions;
mod disk_log;
mod disk_store;
mod faults;
mod health;
mod memory;
mod message;
mod names;
mod record;
mod segment;
mod space;
mod syncer;
mod transactions;

use std::io;
use std::time::Instant;

pub use corruption::{CorruptionCounters, CorruptionStats};
pub use disk_log::{DiskLog, MemoryStats};
pub use disk_store::{DiskConfig, DiskStore};
pub use health::Health;
pub use memory::{MemoryLog, MemoryStore};
pub use message::{Message, QueuedMessage};
pub use space::{Space, SpaceMark, SpaceWaker};
pub use syncer::SyncMode;
pub use transactions::{applying as applying_transaction, outside as outside_transaction, Transaction};

/// Called from the store's syncing thread once a sync ticket is durable.
pub type SyncWaker = Box<dyn FnOnce() + Send>;

/// Something that buffers writes to logs it flushes with [`QueueLog::flush_lazily`]: before the
/// store relies on those logs being durable it has the writer write out (see
/// [`Store::register_lazy_writer`]).
pub trait LazyWriter: Send + Sync {
    /// Hands what is buffered to the logs and flushes them (lazily). Called from the store's
    /// syncing thread, which holds no lock while it calls.
    fn write_lazily(&self);
}

/// The ready messages of one queue, in offset order.
///
/// A log keeps a bounded window of messages in memory; what does not fit waits on disk and is
/// read back as the window drains, so memory stays flat however deep the queue gets.
pub trait QueueLog: Send + std::fmt::Debug {
    /// Appends a published message; returns its offset. A `persistent` message of a durable
    /// queue is written to the log (durable once a sync ticket taken after the next
    /// [`QueueLog::flush`] completes); other messages stay in memory until the window is full,
    /// then page out to disk.
    fn append(&mut self, message: Message, expires_at: Option<Instant>, persistent: bool) -> io::Result<u64>;
    /// The next ready message (requeued ones first), reading it from disk if needed.
    fn front(&mut self) -> Option<&QueuedMessage>;
    /// Takes the next ready message out of the log (for delivery); it stays unsettled until
    /// [`QueueLog::settle`] or [`QueueLog::requeue`].
    fn pop_front(&mut self) -> Option<QueuedMessage>;
    /// Returns a message just taken with `pop_front` that could not be delivered.
    fn push_front(&mut self, message: QueuedMessage);
    /// Puts a delivered, unsettled message back at its original position.
    fn requeue(&mut self, message: QueuedMessage);
    /// The message at `offset` left the queue for good (acknowledged, dropped or dead-lettered):
    /// a `stored` one gets an ack record, and a segment whose messages are all settled is deleted.
    fn settle(&mut self, offset: u64, stored: bool);
    /// A delivered message was returned to the queue and counts one more delivery
    /// (`x-delivery-limit`): a `stored` one gets a return record, so that
    /// [`QueuedMessage::delivery_count`] is recovered after a restart. Written with the next
    /// [`QueueLog::flush`], like acks.
    fn note_return(&mut self, _offset: u64, _stored: bool) {}
    /// Body bytes of the messages recovered when the log was opened (what `x-max-length-bytes`
    /// counts); 0 for a log that starts empty.
    fn recovered_body_bytes(&self) -> u64 {
        0
    }
    /// Ready messages (delivered but unsettled ones are not counted).
    fn len(&self) -> usize;
    /// Whether no message is ready.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Settles every ready message; returns how many there were.
    fn purge(&mut self) -> usize;
    /// Hands buffered records to the OS and marks their files for the next sync. The broker
    /// calls this once per batch of input for every queue the batch touched.
    fn flush(&mut self) -> io::Result<()>;
    /// Like [`QueueLog::flush`], but what it wrote is fsynced only by the store's next *lazy*
    /// round, which comes when a log that carries (see [`QueueLog::append_carrying`]) is about
    /// to delete a segment. Records and acks of a transaction are still marked for the next
    /// sync (its commit depends on them).
    fn flush_lazily(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// Whether [`QueueLog::append_carrying`] keeps carried bytes with a persistent message
    /// (a durable log on disk).
    fn carries(&self) -> bool {
        false
    }
    /// Appends like [`QueueLog::append`], keeping `carried` (at most 65,535 bytes) in the
    /// persistent message's record, atomically with it: after a restart it comes back from
    /// [`QueueLog::take_recovered_carried`] for as long as the record's segment is kept,
    /// acknowledged or not. A segment with such records is deleted only after a lazy round
    /// (see [`LazyWriter`]) that began after it was settled, so whoever keeps the same data
    /// in a lazily flushed log has it on disk first. Only for a log that [`QueueLog::carries`].
    fn append_carrying(
        &mut self,
        message: Message,
        expires_at: Option<Instant>,
        persistent: bool,
        carried: &[u8],
    ) -> io::Result<u64> {
        if carried.is_empty() {
            return self.append(message, expires_at, persistent);
        }
        Err(io::Error::new(io::ErrorKind::Unsupported, "this queue log keeps nothing with its records"))
    }
    /// What the records recovered at open carried (acknowledged ones included), oldest first;
    /// taken once. Their segments stay until [`QueueLog::release_recovered`].
    fn take_recovered_carried(&mut self) -> Vec<bytes::Bytes> {
        Vec::new()
    }
    /// Whoever took [`QueueLog::take_recovered_carried`] has it safe elsewhere (or needs it no
    /// longer): the recovered segments that carried it may go once settled, as any other.
    fn release_recovered(&mut self) {}
    /// Removes the log's files: the queue is gone.
    fn delete(&mut self);
    /// Where appends stand now: every message appended so far (ready or delivered) is
    /// [`QueueLog::appended_before`] the mark, every later one is not.
    fn append_mark(&self) -> AppendMark;
    /// Whether the message at `offset` was appended before `mark` was taken. A log with one
    /// offset order compares with the mark's first offset; one made of several (a priority
    /// queue) says which of the mark's offsets applies.
    fn appended_before(&self, offset: u64, mark: &AppendMark) -> bool {
        offset < mark.next_offset(0)
    }
}

/// Where a log's appends stood at one moment (see [`QueueLog::append_mark`]): for each of the
/// offset orders the log keeps (one, or one per priority level), the offset its next append
/// was to get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMark(Box<[u64]>);

impl AppendMark {
    /// A mark of a log with one offset order.
    pub fn single(next_offset: u64) -> Self {
        AppendMark(Box::new([next_offset]))
    }

    /// A mark of a log with several offset orders, one next offset each.
    pub fn several(next_offsets: impl IntoIterator<Item = u64>) -> Self {
        AppendMark(next_offsets.into_iter().collect())
    }

    /// The next offset of order `order` when the mark was taken (0 for one it does not know:
    /// nothing was appended before).
    pub fn next_offset(&self, order: usize) -> u64 {
        self.0.get(order).copied().unwrap_or(0)
    }
}

/// Opens queue logs and makes what they wrote durable, in groups.
pub trait Store: Send + Sync {
    /// Opens (creating or recovering) the log of a queue.
    fn open_queue(&self, vhost: &str, queue: &str, durable: bool) -> io::Result<Box<dyn QueueLog>>;
    /// A ticket covering everything flushed so far; it has an outcome once `synced() >= ticket`:
    /// durable unless [`Store::ticket_failed`].
    fn sync_ticket(&self) -> u64;
    /// The highest ticket whose outcome is known.
    fn synced(&self) -> u64;
    /// Calls `waker` once `ticket` has an outcome (at once if it already has).
    fn on_synced(&self, ticket: u64, waker: SyncWaker);
    /// Whether `ticket` failed to become durable (an fsync failed): what waits for it is nacked,
    /// never confirmed. Meaningful once `synced() >= ticket`.
    fn ticket_failed(&self, _ticket: u64) -> bool {
        false
    }
    /// Begins applying a transaction on the calling thread: the durable writes the thread makes
    /// until [`Transaction::end_writes`] survive a crash only if the transaction commits, which
    /// it does with the first sync round after [`Transaction::seal`] (so a sync ticket taken
    /// after sealing covers the commit). A store that keeps nothing across a restart needs no
    /// transaction.
    fn begin_tx(&self) -> Transaction {
        Transaction::none()
    }
    /// Has `writer` write out before every lazy round (see [`QueueLog::flush_lazily`]), while
    /// it lives. A store that keeps nothing across a restart needs none.
    fn register_lazy_writer(&self, _writer: std::sync::Weak<dyn LazyWriter>) {}
}
