//! A connection's outgoing byte buffer, shared by everything that sends on it.
//!
//! Replies come from the connection's own task; deliveries come from whichever task routed the
//! message. Each writer appends whole frame sequences under the lock, so a delivery's method,
//! header and body frames never interleave with another's, and the connection's writer task
//! takes everything accumulated in one go: one write syscall per batch, not per frame.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bytes::BytesMut;
use parking_lot::Mutex;

pub type Waker = Box<dyn Fn() + Send + Sync>;

pub struct Outbox {
    buf: Mutex<BytesMut>,
    wake: Waker,
    frame_max: AtomicU32,
    /// The client advertised consumer_cancel_notify: tell it when its consumer goes away.
    cancel_notify: AtomicBool,
    closed: AtomicBool,
}

impl Outbox {
    pub fn new(wake: Waker) -> Self {
        Outbox {
            buf: Mutex::new(BytesMut::new()),
            wake,
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
            was_empty
        };
        // The writer drains everything it finds; a wake is only needed for the first bytes.
        if was_empty {
            (self.wake)();
        }
    }

    /// Takes everything written so far (for the writer task).
    pub fn take(&self) -> BytesMut {
        self.buf.lock().split()
    }

    /// Hands an emptied buffer back so its capacity is reused.
    pub fn recycle(&self, mut spare: BytesMut) {
        let mut buf = self.buf.lock();
        if buf.is_empty() && spare.capacity() > buf.capacity() {
            spare.clear();
            *buf = spare;
        }
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max.load(Ordering::Relaxed)
    }

    pub fn set_frame_max(&self, frame_max: u32) {
        self.frame_max.store(frame_max, Ordering::Relaxed);
    }

    pub fn cancel_notify(&self) -> bool {
        self.cancel_notify.load(Ordering::Relaxed)
    }

    pub fn set_cancel_notify(&self, on: bool) {
        self.cancel_notify.store(on, Ordering::Relaxed);
    }

    /// Stops accepting frames (the socket is going away).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        (self.wake)();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
