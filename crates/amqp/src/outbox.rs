//! A connection's outgoing byte buffer, shared by everything that sends on it.
//!
//! Replies come from the connection's own task; deliveries come from whichever task routed the
//! message. Each writer appends whole frame sequences under the lock, so a delivery's method,
//! header and body frames never interleave with another's, and the connection's writer task
//! takes everything accumulated in one go: one write syscall per batch, not per frame.
//!
//! Large message bodies are not copied in: [`Outbox::write_shared`] queues a shared slice of the
//! body between the bytes written around it, and the writer sends the batch with one vectored
//! write ([`Batch`]).
//!
//! The buffer is bounded: past [`HIGH_WATER_MARK`] bytes not yet taken by the writer, channels
//! refuse deliveries (the messages wait in their queues, paged out as usual), and past
//! [`READ_PAUSE_MARK`] the connection stops reading its client's input. When the writer drains
//! a buffer that refused something, the connection is woken to offer its consumers more. So a
//! client that stops reading its socket costs a few MiB, whatever its ack mode or prefetch.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use warren_protocol::constants::FRAME_END;
use warren_protocol::frame;

/// Wakes a task.
pub type Waker = Box<dyn Fn() + Send + Sync>;

/// Deliveries stop while more than this many bytes wait to be written. Below 2 MiB a fast
/// consumer of a queue flooded by publishers loses throughput (1 MiB: a quarter, measured with
/// warren-perf at 1.4M msg/s published); the writer's batch in flight and the outbox together
/// hold about twice this for a consumer that stops reading.
pub const HIGH_WATER_MARK: usize = 2 * 1024 * 1024;
/// Bodies at least this large are not copied into the outbox (see
/// [`SharedWriter::write_content`]).
pub const SHARE_BODIES_FROM: usize = 32 * 1024;
/// The connection stops reading input (requests whose replies would pile up) past this.
pub const READ_PAUSE_MARK: usize = 8 * 1024 * 1024;

/// What waits to be written: `parts` (frozen stretches of written bytes and shared bodies, in
/// order), then `tail`.
#[derive(Default)]
struct Pending {
    parts: Vec<Bytes>,
    parts_len: usize,
    tail: BytesMut,
}

impl Pending {
    fn len(&self) -> usize {
        self.parts_len + self.tail.len()
    }

    fn is_empty(&self) -> bool {
        self.parts.is_empty() && self.tail.is_empty()
    }
}

/// Appends to an outbox, sharing large buffers instead of copying them (see
/// [`Outbox::write_shared`]).
pub struct SharedWriter<'a> {
    pending: &'a mut Pending,
}

impl SharedWriter<'_> {
    /// Where bytes are written.
    #[inline]
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.pending.tail
    }

    /// Writes a content header and the body frames; a body of [`SHARE_BODIES_FROM`] bytes or
    /// more goes out as shared slices of `body` instead of being copied.
    pub fn write_content(
        &mut self,
        channel: u16,
        class_id: u16,
        properties: &[u8],
        body: &Bytes,
        frame_max: u32,
    ) {
        if body.len() < SHARE_BODIES_FROM {
            frame::write_content(self.buf(), channel, class_id, properties, body, frame_max);
            return;
        }
        frame::write_header(self.buf(), channel, class_id, body.len() as u64, properties);
        let chunk = frame::max_body_chunk(frame_max);
        let mut at = 0;
        while at < body.len() {
            let end = body.len().min(at + chunk);
            frame::write_body_prefix(self.buf(), channel, end - at);
            self.share(body.slice(at..end));
            self.buf().extend_from_slice(&[FRAME_END]);
            at = end;
        }
    }

    /// Queues `bytes` after what was written so far, without copying them.
    pub fn share(&mut self, bytes: Bytes) {
        let p = &mut *self.pending;
        if !p.tail.is_empty() {
            let written = p.tail.split().freeze();
            p.parts_len += written.len();
            p.parts.push(written);
        }
        p.parts_len += bytes.len();
        p.parts.push(bytes);
    }
}

/// What the writer takes in one go: `parts` then `tail`, to be written in that order.
#[derive(Default)]
pub struct Batch {
    /// Shared bodies and the bytes written around them (empty unless something was shared).
    pub parts: Vec<Bytes>,
    /// The bytes written last (everything, when nothing was shared).
    pub tail: BytesMut,
}

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty() && self.tail.is_empty()
    }

    /// Bytes to write.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum::<usize>() + self.tail.len()
    }

    /// Everything in one buffer (copying the shared parts, if any: for tests and tools).
    pub fn into_contiguous(self) -> BytesMut {
        if self.parts.is_empty() {
            return self.tail;
        }
        let mut all = BytesMut::with_capacity(self.len());
        for part in &self.parts {
            all.extend_from_slice(part);
        }
        all.extend_from_slice(&self.tail);
        all
    }
}

/// See the module documentation.
pub struct Outbox {
    buf: Mutex<Pending>,
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
            buf: Mutex::new(Pending::default()),
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
        self.write_shared(|w| write(w.buf()));
    }

    /// As [`Outbox::write`], with a writer that can also queue shared buffers (large bodies)
    /// without copying them.
    #[inline]
    pub fn write_shared(&self, write: impl FnOnce(&mut SharedWriter<'_>)) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let was_empty = {
            let mut pending = self.buf.lock();
            let was_empty = pending.is_empty();
            write(&mut SharedWriter { pending: &mut pending });
            // Relaxed: a larger value can only make a deliverer back off, and a deliverer that
            // backs off sets the flag the writer checks after draining (see `has_room`).
            self.pending.store(pending.len(), Ordering::Relaxed);
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
    pub fn take(&self) -> Batch {
        let taken = {
            let mut pending = self.buf.lock();
            let taken = Batch { parts: std::mem::take(&mut pending.parts), tail: pending.tail.split() };
            pending.parts_len = 0;
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
        let mut pending = self.buf.lock();
        let buf = &mut pending.tail;
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

    #[test]
    fn shared_buffers_keep_their_place_between_written_bytes() {
        let outbox = Outbox::new(Box::new(|| {}), Box::new(|| {}));
        let body = Bytes::from(vec![7u8; 100_000]);
        outbox.write(|b| b.extend_from_slice(b"before"));
        outbox.write_shared(|w| {
            w.buf().extend_from_slice(b"[");
            w.share(body.slice(..60_000));
            w.buf().extend_from_slice(b"|");
            w.share(body.slice(60_000..));
            w.buf().extend_from_slice(b"]");
        });
        outbox.write(|b| b.extend_from_slice(b"after"));
        assert_eq!(outbox.pending(), 6 + 1 + 100_000 + 1 + 1 + 5, "shared bytes count against the marks");
        let batch = outbox.take();
        assert_eq!(outbox.pending(), 0);
        let mut all = Vec::new();
        for part in &batch.parts {
            all.extend_from_slice(part);
        }
        all.extend_from_slice(&batch.tail);
        let mut expected = b"before[".to_vec();
        expected.extend_from_slice(&body[..60_000]);
        expected.push(b'|');
        expected.extend_from_slice(&body[60_000..]);
        expected.extend_from_slice(b"]after");
        assert_eq!(all, expected);
        assert_eq!(batch.len(), expected.len());
        // The body was not copied: the shared parts point into it.
        assert!(batch.parts.iter().any(|p| p.as_ptr() == body.as_ptr()));
        // Without sharing, a batch is one buffer, as before.
        outbox.write(|b| b.extend_from_slice(b"small"));
        let batch = outbox.take();
        assert!(batch.parts.is_empty());
        assert_eq!(&batch.tail[..], b"small");
    }
}
