//! Flow control: a queue whose consumers fall behind holds back the connections that publish
//! to it, so publishers slow to what consumers take instead of burying them in a backlog that
//! pages to disk (RabbitMQ's credit flow serves the same end).
//!
//! A queue with consumers *engages* flow when its ready backlog passes its bound (the memory
//! window of its log, by default): publishers that route to it are told to stop reading their
//! sockets until it *releases*, once the backlog is back under half the bound. A queue without
//! consumers never engages (its backlog grows, as in RabbitMQ, up to the disk alarm), and one
//! whose consumers took nothing for [`STALL`] while engaged releases and stays released until
//! they take something again: a stuck consumer must not stop every publisher for good.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Wakes a publisher held back by a queue's flow control.
pub type FlowWaker = Arc<dyn Fn() + Send + Sync>;

/// How long consumers may take nothing before a queue stops holding its publishers back.
pub const STALL: Duration = Duration::from_secs(1);

/// The ready backlog past which a queue with consumers holds its publishers back. Zero
/// messages turns flow control off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowBound {
    /// Ready messages.
    pub messages: u64,
    /// Body bytes of ready messages.
    pub bytes: u64,
}

impl FlowBound {
    /// No flow control.
    pub const OFF: FlowBound = FlowBound { messages: 0, bytes: 0 };

    fn is_off(self) -> bool {
        self.messages == 0
    }
}

impl Default for FlowBound {
    /// The default memory window of a queue's log: 10,000 messages or 4 MiB.
    fn default() -> Self {
        FlowBound { messages: 10_000, bytes: 4 << 20 }
    }
}

/// One queue's flow state. Publishers read `engaged` (one relaxed load per routed queue); the
/// rest changes rarely, under its own small lock.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    bound: AtomicBound,
    engaged: AtomicBool,
    /// Released because consumers stalled: not engaged again until they take something.
    stalled: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct AtomicBound {
    messages: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Default)]
struct Inner {
    waiters: Vec<FlowWaker>,
    /// Deliveries counted when progress was last seen, and when.
    delivered: u64,
    progress_at: Option<Instant>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("waiters", &self.waiters.len()).finish()
    }
}

impl Flow {
    pub(crate) fn set_bound(&self, bound: FlowBound) {
        self.bound.messages.store(bound.messages, Ordering::Relaxed);
        self.bound.bytes.store(bound.bytes, Ordering::Relaxed);
    }

    fn bound(&self) -> FlowBound {
        FlowBound {
            messages: self.bound.messages.load(Ordering::Relaxed),
            bytes: self.bound.bytes.load(Ordering::Relaxed),
        }
    }

    /// Whether publishers to the queue should hold back now.
    #[inline]
    pub(crate) fn is_engaged(&self) -> bool {
        self.engaged.load(Ordering::Relaxed)
    }

    /// After a publish: engages if the backlog passed the bound (the queue has consumers that
    /// have not stalled). `delivered` reads the queue's delivery count, to tell progress later.
    #[inline]
    pub(crate) fn after_publish(
        &self,
        ready: u64,
        ready_bytes: u64,
        delivered: impl FnOnce() -> u64,
        now: Instant,
    ) {
        if self.is_engaged() || self.stalled.load(Ordering::Relaxed) {
            return;
        }
        let bound = self.bound();
        if bound.is_off() || (ready <= bound.messages && ready_bytes <= bound.bytes) {
            return;
        }
        let mut inner = self.inner.lock();
        inner.delivered = delivered();
        inner.progress_at = Some(now);
        self.engaged.store(true, Ordering::Relaxed);
    }

    /// After messages left the queue: releases once the backlog is under half the bound.
    #[inline]
    pub(crate) fn after_drain(&self, ready: u64, ready_bytes: u64) {
        if !self.is_engaged() {
            return;
        }
        let bound = self.bound();
        if ready <= bound.messages / 2 && ready_bytes <= bound.bytes / 2 {
            self.release(false);
        }
    }

    /// Releases at once (the queue lost its consumers or was deleted).
    pub(crate) fn release_all(&self) {
        if self.is_engaged() {
            self.release(false);
        }
    }

    /// Called on every tick: releases an engaged queue whose consumers took nothing for
    /// [`STALL`], and lets a stalled one engage again once they take something. Returns true
    /// when it released for a stall.
    pub(crate) fn check_stall(&self, delivered: u64, now: Instant) -> bool {
        let stalled = self.stalled.load(Ordering::Relaxed);
        if !self.is_engaged() && !stalled {
            return false;
        }
        let mut inner = self.inner.lock();
        if delivered != inner.delivered {
            inner.delivered = delivered;
            inner.progress_at = Some(now);
            self.stalled.store(false, Ordering::Relaxed);
            return false;
        }
        let idle = inner.progress_at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        if self.is_engaged() && idle >= STALL {
            drop(inner);
            self.release(true);
            return true;
        }
        false
    }

    /// Registers `waker` to be called when the queue releases; false if it is not engaged
    /// (the publisher need not wait).
    pub(crate) fn wait(&self, waker: FlowWaker) -> bool {
        let mut inner = self.inner.lock();
        if !self.is_engaged() {
            return false;
        }
        if !inner.waiters.iter().any(|w| Arc::ptr_eq(w, &waker)) {
            inner.waiters.push(waker);
        }
        true
    }

    fn release(&self, stalled: bool) {
        let waiters = {
            let mut inner = self.inner.lock();
            self.engaged.store(false, Ordering::Relaxed);
            if stalled {
                self.stalled.store(true, Ordering::Relaxed);
            }
            std::mem::take(&mut inner.waiters)
        };
        for wake in waiters {
            wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn flow() -> Flow {
        let flow = Flow::default();
        flow.set_bound(FlowBound { messages: 100, bytes: 1000 });
        flow
    }

    fn counting_waker() -> (FlowWaker, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        (Arc::new(move || _ = c.fetch_add(1, Ordering::SeqCst)), count)
    }

    #[test]
    fn engages_past_the_bound_and_releases_under_half() {
        let now = Instant::now();
        let flow = flow();
        flow.after_publish(100, 1000, || 0, now);
        assert!(!flow.is_engaged(), "at the bound is not past it");
        flow.after_publish(101, 10, || 0, now);
        assert!(flow.is_engaged());
        let (waker, woken) = counting_waker();
        assert!(flow.wait(waker.clone()));
        assert!(flow.wait(waker), "a waker is registered once");
        flow.after_drain(51, 10);
        assert!(flow.is_engaged());
        flow.after_drain(50, 500);
        assert!(!flow.is_engaged());
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        let (waker, _) = counting_waker();
        assert!(!flow.wait(waker), "nothing to wait for once released");
        // Bytes count too.
        flow.after_publish(1, 1001, || 0, now);
        assert!(flow.is_engaged());
    }

    #[test]
    fn stalled_consumers_release_until_they_take_something() {
        let t0 = Instant::now();
        let flow = flow();
        flow.after_publish(200, 0, || 7, t0);
        let (waker, woken) = counting_waker();
        assert!(flow.wait(waker));
        // Progress keeps it engaged.
        assert!(!flow.check_stall(8, t0 + STALL));
        assert!(!flow.check_stall(8, t0 + STALL + STALL / 2));
        assert!(flow.is_engaged());
        // No delivery for STALL: released, and not engaged again by publishing.
        assert!(flow.check_stall(8, t0 + STALL * 2));
        assert!(!flow.is_engaged());
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        flow.after_publish(300, 0, || 8, t0 + STALL * 3);
        assert!(!flow.is_engaged());
        // Consumers take something: flow applies again.
        flow.check_stall(9, t0 + STALL * 3);
        flow.after_publish(300, 0, || 9, t0 + STALL * 3);
        assert!(flow.is_engaged());
    }

    #[test]
    fn a_zero_bound_turns_it_off() {
        let flow = Flow::default();
        flow.set_bound(FlowBound::OFF);
        flow.after_publish(u64::MAX, u64::MAX, || 0, Instant::now());
        assert!(!flow.is_engaged());
    }
}
