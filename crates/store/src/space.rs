//! [`Space`]: how many bytes the store may still write before the data directory's disk reaches
//! its free-space limit.
//!
//! Checking free space once in a while is too slow on its own: at a few hundred MB/s a disk goes
//! from the limit to full between two checks. So the store counts what it writes. Whoever reads
//! the free space (the broker's disk alarm) sets the *budget*, the bytes above the limit; every
//! write charges its size against it first, and the write that uses the budget up calls the
//! waker at once, without waiting for the next reading. The count errs on the safe side: it
//! never sees space freed (deleted segments) until the next reading.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

/// Called (from whichever thread wrote) when the budget runs out.
pub type SpaceWaker = Box<dyn Fn() + Send + Sync>;

/// The store's write budget; see the module documentation.
pub struct Space {
    /// Bytes left; at or below zero the disk is (about to be) below the limit. Starts unlimited
    /// until a first reading is taken.
    budget: AtomicI64,
    waker: OnceLock<SpaceWaker>,
}

/// The budget as it stood when a free-space reading began (see [`Space::mark`]).
#[derive(Debug, Clone, Copy)]
pub struct SpaceMark(i64);

impl std::fmt::Debug for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Space").field("budget", &self.budget()).finish()
    }
}

impl Default for Space {
    fn default() -> Self {
        Space { budget: AtomicI64::new(i64::MAX), waker: OnceLock::new() }
    }
}

impl Space {
    /// Charges a write of `bytes` about to be made. One atomic add; the write that takes the
    /// budget to zero or below wakes whoever watches it.
    pub(crate) fn charge(&self, bytes: usize) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let before = self.budget.fetch_sub(bytes, Ordering::Relaxed);
        if before > 0 && before <= bytes {
            self.wake();
        }
    }

    /// Bytes that may still be written before the disk is at its limit (negative: past it).
    pub fn budget(&self) -> i64 {
        self.budget.load(Ordering::Relaxed)
    }

    /// Whether the budget is used up: the disk is at or below its limit by the store's count.
    pub fn is_exhausted(&self) -> bool {
        self.budget() <= 0
    }

    /// Sets the function called when a write uses the budget up (the first call wins).
    pub fn set_waker(&self, waker: SpaceWaker) {
        let _ = self.waker.set(waker);
    }

    /// Call before reading the free space; pass the mark to [`Space::set_available`].
    pub fn mark(&self) -> SpaceMark {
        SpaceMark(self.budget())
    }

    /// A reading taken after `mark` says `available` bytes may be written. Writes charged since
    /// the mark may not show in the reading yet, so they stay charged. Returns the new budget.
    pub fn set_available(&self, mark: SpaceMark, available: i64) -> i64 {
        let delta = available.saturating_sub(mark.0);
        let before = self.budget.fetch_add(delta, Ordering::Relaxed);
        before.saturating_add(delta)
    }

    /// Back to unlimited: nothing watches the free space.
    pub fn set_unlimited(&self) {
        self.budget.store(i64::MAX, Ordering::Relaxed);
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.get() {
            waker();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    fn counted() -> (Space, Arc<AtomicUsize>) {
        let space = Space::default();
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        space.set_waker(Box::new(move || {
            w.fetch_add(1, Ordering::Relaxed);
        }));
        (space, wakes)
    }

    #[test]
    fn unlimited_until_a_reading() {
        let (space, wakes) = counted();
        space.charge(1 << 40);
        assert!(!space.is_exhausted());
        assert_eq!(wakes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_write_that_uses_the_budget_up_wakes_once() {
        let (space, wakes) = counted();
        let mark = space.mark();
        assert_eq!(space.set_available(mark, 100), 100);
        space.charge(60);
        assert!(!space.is_exhausted());
        space.charge(40);
        assert!(space.is_exhausted());
        space.charge(10);
        assert_eq!(wakes.load(Ordering::Relaxed), 1, "woken on the crossing only");
        assert_eq!(space.budget(), -10);
    }

    #[test]
    fn writes_during_a_reading_stay_charged() {
        let (space, _) = counted();
        space.set_available(space.mark(), 1000);
        let mark = space.mark();
        space.charge(300); // made while free space was being read: maybe not in the reading
        assert_eq!(space.set_available(mark, 500), 200);
        space.set_unlimited();
        assert_eq!(space.budget(), i64::MAX);
    }

    /// Every byte the logs write is charged: messages and acks.
    #[test]
    fn disk_logs_charge_what_they_write() {
        use crate::{DiskConfig, DiskStore, Message, QueueLog};
        let tmp = tempfile::tempdir().unwrap();
        let store = DiskStore::open(tmp.path(), DiskConfig::default()).unwrap();
        let space = store.space().clone();
        space.set_available(space.mark(), 1 << 20);
        let mut log = store.open_log("/", "q", true).unwrap();
        let message = Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: bytes::Bytes::from_static(&[0x10, 0x00, 2]),
            body: bytes::Bytes::from(vec![7u8; 1000]),
        };
        let offset = log.append(message, None, true).unwrap();
        log.flush().unwrap();
        let after_write = space.budget();
        assert!((1 << 20) - after_write > 1000, "the record was not charged: {after_write}");
        let taken = log.pop_front().unwrap();
        log.settle(taken.offset, taken.stored);
        assert_eq!(taken.offset, offset);
        log.flush().unwrap();
        assert!(space.budget() < after_write, "the ack was not charged");
    }
}
