//! A connection's outgoing byte buffer, shared by everything that sends on it.
//!
//! Replies come from the connection's own task; deliveries come from whichever task routed the
//! message. Each writer appends whole frame sequences under the lock, so a delivery's method,
//! header and body frames never interleave with another's, and the connection's writer task
//! takes everything accumulated in one go: one write syscall per batch, not per frame.
//!
//! The buffer is bounded: past [`HIGH_WATER_MARK`] bytes not yet taken by the writer, channels
//! refuse deliveries (the messages wait in their queues, paged out as usual), and past
//! [`READ_PAUSE_MARK`] the connection stops reading its client's input. When the writer drains
//! a buffer that refused something, the connection is woken to offer its consumers more. So a
//! client that stops reading its socket costs a few MiB, whatever its ack mode or prefetch.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use bytes::BytesMut;
use parking_lot::Mutex;

/// Wakes a task.
pub type Waker = Box<dyn Fn() + Send + Sync>;

/// Deliveries stop while more than this many bytes wait to be written. Below 2 MiB a fast
/// consumer of a queue flooded by publishers loses throughput (1 MiB: a quarter, measured with
/// warren-perf at 1.4M msg/s published); the writer's batch in flight and the outbox together
/// hold about twice this for a consumer that stops reading.
pub const HIGH_WATER_MARK: usize = 2 * 1024 * 1024;
/// The connection stops reading input (requests whose replies would pile up) past this.
pub const READ_PAUSE_MARK: usize = 8 * 1024 * 1024;

/// See the module documentation.
pub struct Outbox {
    buf: Mutex<BytesMut>,
    /// Bytes in `buf` (read without the lock by deliverers).
    pending: AtomicUsize,
    /// Something was refused for want of room: wake the connection once the writer drains.
    throttled: AtomicBool,
    wake: Waker,
    drained: Waker,
    frame_max: AtomicU32,
    /// The client advertised consumer_cancel_notify: tell it when its consumer goes away.
    cancel_notify: AtomicBool,
    closed: AtomicBool,
}

impl Outbox {
    /// An outbox whose writer is woken by `wake`, and whose connection is woken by `drained`
    /// when a buffer that refused deliveries has been taken by the writer.
    pub fn new(wake: Waker, drained: Waker) -> Self {
        Outbox {
            buf: Mutex::new(BytesMut::new()),
            pending: AtomicUsize::new(0),
            throttled: AtomicBool::new(false),
            wake,
            drained,
            frame_max: AtomicU32::new(131_072),
            cancel_notify: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// Appends frames written by `write` and wakes the writer. Nothing is written once closed.
    pub fn write(&self, write: impl FnOnce(&mut BytesMut)) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let was_empty = {
            let mut buf = self.buf.lock();
            let was_empty = buf.is_empty();
            write(&mut buf);
            // Relaxed: a larger value can only make a deliverer back off, and a deliverer that
            // backs off sets the flag the writer checks after draining (see `has_room`).
            self.pending.store(buf.len(), Ordering::Relaxed);
            was_empty
        };
        // The writer drains everything it finds; a wake is only needed for the first bytes.
        if was_empty {
            (self.wake)();
        }
    }

    /// Whether no more than `mark` bytes wait. When more do, the connection is woken once the
    /// writer has drained them, so whoever was refused can try again.
    pub fn has_room(&self, mark: usize) -> bool {
        if self.pending.load(Ordering::SeqCst) <= mark {
            return true;
        }
        self.throttled.store(true, Ordering::SeqCst);
        // The writer may have drained between the two reads, before it could see the flag.
        self.pending.load(Ordering::SeqCst) <= mark
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Takes everything written so far (for the writer task).
    pub fn take(&self) -> BytesMut {
        let taken = {
            let mut buf = self.buf.lock();
            let taken = buf.split();
            self.pending.store(0, Ordering::SeqCst);
            taken
        };
        if self.throttled.swap(false, Ordering::SeqCst) {
            (self.drained)();
        }
        taken
    }

    /// Hands an emptied buffer back so its capacity is reused.
    pub fn recycle(&self, mut spare: BytesMut) {
        let mut buf = self.buf.lock();
        // A buffer grown by a burst is not kept: an idle connection should cost little.
        if buf.is_empty() && spare.capacity() > buf.capacity() && spare.capacity() <= 2 * HIGH_WATER_MARK {
            spare.clear();
            *buf = spare;
        }
    }

    /// The negotiated largest frame.
    pub fn frame_max(&self) -> u32 {
        self.frame_max.load(Ordering::Relaxed)
    }

    /// Sets the negotiated largest frame (once the connection is open).
    pub fn set_frame_max(&self, frame_max: u32) {
        self.frame_max.store(frame_max, Ordering::Relaxed);
    }

    /// Whether the client asked to be told of consumers the broker cancels.
    pub fn cancel_notify(&self) -> bool {
        self.cancel_notify.load(Ordering::Relaxed)
    }

    /// Records whether the client asked to be told of consumers the broker cancels.
    pub fn set_cancel_notify(&self, on: bool) {
        self.cancel_notify.store(on, Ordering::Relaxed);
    }

    /// Stops accepting frames (the socket is going away).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        (self.wake)();
    }

    /// Whether the socket is going away.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn a_full_outbox_refuses_until_drained_and_then_wakes_its_connection() {
        let drained = Arc::new(AtomicUsize::new(0));
        let d = drained.clone();
        let outbox = Outbox::new(Box::new(|| {}), Box::new(move || _ = d.fetch_add(1, Ordering::SeqCst)));
        outbox.write(|b| b.extend_from_slice(&vec![0; HIGH_WATER_MARK]));
        assert!(outbox.has_room(HIGH_WATER_MARK), "at the mark there is still room");
        outbox.write(|b| b.extend_from_slice(b"x"));
        assert!(!outbox.has_room(HIGH_WATER_MARK));
        assert_eq!(drained.load(Ordering::SeqCst), 0);
        let taken = outbox.take();
        assert_eq!(taken.len(), HIGH_WATER_MARK + 1);
        assert_eq!(drained.load(Ordering::SeqCst), 1, "the refusal is followed by a wake");
        assert!(outbox.has_room(HIGH_WATER_MARK));
        outbox.take();
        assert_eq!(drained.load(Ordering::SeqCst), 1, "no refusal, no wake");
    }
}
