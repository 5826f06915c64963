//! [`DiskLog`]: one queue's ready messages as a segment log on disk plus a bounded window of
//! them in memory.
//!
//! The ready messages, in offset order, are: the requeued ones (delivered earlier, put back;
//! always in memory), then the *window* (a read-ahead `VecDeque`, bounded by
//! [`DiskConfig`](crate::DiskConfig)'s `memory_window_*`), then `spilled` messages that wait only
//! on disk. While nothing is spilled an append goes to the window (and, when persistent on a
//! durable queue, to disk as well); once the window is full every append goes to disk only,
//! until the reader has read all of them back. Reading is sequential from a cursor (segment,
//! byte position), so the memory cost of a waiting message is nothing beyond per-segment
//! counters: the cursor points at the first spilled record, and every record after it was
//! appended after it.
//!
//! Per segment, `pending` counts the records the file is still needed for: persistent ones not
//! yet settled and non-persistent ones not yet read back. A segment that is not the one being
//! written is deleted (with its ack file) once `pending` reaches zero.
//!
//! Recovery: a durable queue's segments are read back in order, skipping acknowledged and
//! non-persistent records. Every recovered message comes back with `redelivered = true`: the log
//! writes no per-delivery marker (that would be a write per delivery), so it cannot tell which
//! ones were delivered before the crash, and the flag may err towards "possibly delivered" but
//! must never miss a message that was. (RabbitMQ's classic-queue v2 index keeps no delivered
//! marker either; Qpid documents the same rule: every recovered message is redelivered.)
//! Offsets continue above the highest one on disk; offsets of messages that never reached the
//! disk (transient ones held in memory) may be handed out again after a restart. Damage costs
//! only the damaged records: recovery reports the byte ranges it skipped (holes), and the reader
//! jumps over them, so the records behind them are still read back.
//!
//! The broker must call [`QueueLog::flush`] after each batch of appends and settles (records
//! and acks are only buffered until then), and only then take a sync ticket from the store.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::clock::Clock;
use crate::health::Health;
use crate::record;
use crate::segment::{self, Bits, ReadAt, SegmentReader, HEADER_LEN, SEGMENT_HEADER};
use crate::syncer::{FileKind, SyncMode, Syncer};
use crate::{AppendMark, DiskConfig, Message, QueueLog, QueuedMessage};

/// What every log of a store shares.
#[derive(Debug)]
pub(crate) struct LogContext {
    /// What recovery found damaged, over every log of the store.
    pub corruption: Arc<crate::corruption::CorruptionCounters>,
    pub config: DiskConfig,
    pub syncer: Arc<Syncer>,
    pub clock: Clock,
    pub health: Arc<Health>,
    /// Bytes that may be written before the disk reaches its free-space limit.
    pub space: Arc<crate::space::Space>,
    /// The transactions that committed before this run (recovery counts only their writes).
    pub committed: crate::commit_log::Committed,
    /// The data directory's lock, held while the store or any of its logs lives.
    pub _lock: File,
}

/// A write buffer that grew past this is given back after it is written out.
const KEEP_BUFFER: usize = 1 << 20;
/// A write buffer this full is written out without waiting for the next flush.
const WRITE_OUT_AT: usize = 4 << 20;

/// One segment file (and its ack file) as the log tracks it.
#[derive(Debug)]
struct Segment {
    first: u64,
    /// Bytes in the segment, buffered ones included.
    len: u64,
    records: u64,
    /// One past the offset of its last record (`first` while it has none).
    end_offset: u64,
    /// Records the file is still needed for (see the module doc).
    pending: u64,
    /// The latest transaction that settled one of its records: until its outcome is known the
    /// file stays, even with nothing pending (a crash may roll the settle back).
    tx_hold: u64,
    /// Some of its records carry bytes (see [`QueueLog::append_carrying`]).
    carries: bool,
    /// For a segment that carries: the lazy round it waits for before it may be deleted (0:
    /// none asked for yet; `u64::MAX`: recovered, waiting for [`QueueLog::release_recovered`]).
    lazy_hold: u64,
    /// For a segment recovered at open: records (by position) that are not to be read back.
    skip: Option<Bits>,
    /// For a segment recovered at open: damaged byte ranges between its valid records
    /// (ascending), which the reader jumps over.
    holes: Vec<(u64, u64)>,
    /// For a segment recovered at open: how often its waiting records had been returned to the
    /// queue, by offset (ascending; only records ever returned).
    returns: Vec<(u64, u32)>,
    ack_file: Option<Arc<File>>,
    /// Bytes of the ack file handed to the OS (a failed write is cut back to this, so entries
    /// stay aligned).
    ack_len: u64,
    ack_buf: Vec<u8>,
}

impl Segment {
    fn new(first: u64) -> Segment {
        Segment {
            first,
            len: HEADER_LEN,
            records: 0,
            end_offset: first,
            pending: 0,
            tx_hold: 0,
            carries: false,
            lazy_hold: 0,
            skip: None,
            holes: Vec::new(),
            returns: Vec::new(),
            ack_file: None,
            ack_len: 0,
            ack_buf: Vec::new(),
        }
    }
}

/// The segment being appended to.
#[derive(Debug)]
struct Writer {
    first: u64,
    file: Arc<File>,
    /// Bytes handed to the OS.
    flushed: u64,
    buf: Vec<u8>,
    /// The syncer's poison epoch when this writer last checked that its file is trusted.
    poison_epoch: u64,
}

/// Where the reader stands: the next record to read back is at or after it.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    segment: u64,
    pos: u64,
    /// Position of the record at `pos` among the segment's records.
    ordinal: u64,
}

/// Memory use of a log's window, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Messages in the read-ahead window.
    pub window_messages: usize,
    /// Bytes (body, properties, exchange and routing key) of the window's messages.
    pub window_bytes: usize,
    /// The most the window has held since the log was opened.
    pub peak_window_messages: usize,
    /// The most bytes the window has held since the log was opened.
    pub peak_window_bytes: usize,
    /// Requeued messages (held in memory until delivered again).
    pub requeued_messages: usize,
    /// Ready messages waiting only on disk.
    pub on_disk_messages: u64,
}

/// A queue's log: see the module documentation.
#[derive(Debug)]
pub struct DiskLog {
    ctx: Arc<LogContext>,
    dir: PathBuf,
    durable: bool,
    /// The directory exists (a non-durable queue's is made on its first page-out).
    dir_exists: bool,
    /// The directory itself, to fsync after files come and go (durable queues, `SyncMode::Always`).
    dir_file: Option<Arc<File>>,
    segments: VecDeque<Segment>,
    writer: Option<Writer>,
    /// Segments with buffered ack entries.
    acks_buffered: Vec<u64>,
    /// Segments with nothing pending kept for a transaction whose outcome is not known yet, or
    /// for a lazy round (see [`Segment::lazy_hold`]).
    held: Vec<u64>,
    /// What the records recovered at open carried, until taken.
    recovered_carried: Vec<bytes::Bytes>,
    /// The flush under way is [`QueueLog::flush_lazily`]'s: files are marked lazy.
    flushing_lazily: bool,
    /// A transaction wrote a record or an ack since the last flush.
    tx_written: bool,
    next_offset: u64,
    /// Records with smaller offsets were written before this log was opened (recovered).
    recovered_below: u64,
    /// Body bytes of the messages recovered at open.
    recovered_body_bytes: u64,
    requeued: VecDeque<QueuedMessage>,
    window: VecDeque<QueuedMessage>,
    window_bytes: usize,
    spilled: u64,
    cursor: Cursor,
    reader: Option<(u64, SegmentReader)>,
    peak_messages: usize,
    peak_bytes: usize,
    deleted: bool,
}

fn message_size(m: &Message) -> usize {
    m.body.len() + m.properties.len() + m.exchange.len() + m.routing_key.len()
}

/// The end of the hole in `holes` (ascending, disjoint) that `pos` is in, if any.
fn hole_at(holes: &[(u64, u64)], pos: u64) -> Option<u64> {
    let i = holes.partition_point(|&(start, _)| start <= pos).checked_sub(1)?;
    let (_, end) = holes[i];
    (pos < end).then_some(end)
}

fn corrupt(dir: &Path, segment: u64, pos: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: segment {segment} at byte {pos}: {what}", dir.display()),
    )
}

impl DiskLog {
    /// Opens the log in `dir`, recovering what a durable queue's directory holds. A
    /// non-durable log starts empty (its directory is made when first needed).
    pub(crate) fn open(ctx: Arc<LogContext>, dir: PathBuf, durable: bool) -> io::Result<DiskLog> {
        let mut log = DiskLog {
            ctx,
            dir,
            durable,
            dir_exists: false,
            dir_file: None,
            segments: VecDeque::new(),
            writer: None,
            acks_buffered: Vec::new(),
            held: Vec::new(),
            recovered_carried: Vec::new(),
            flushing_lazily: false,
            tx_written: false,
            next_offset: 0,
            recovered_below: 0,
            recovered_body_bytes: 0,
            requeued: VecDeque::new(),
            window: VecDeque::new(),
            window_bytes: 0,
            spilled: 0,
            cursor: Cursor { segment: 0, pos: HEADER_LEN, ordinal: 0 },
            reader: None,
            peak_messages: 0,
            peak_bytes: 0,
            deleted: false,
        };
        if durable {
            log.dir_exists = true;
            if log.ctx.syncer.mode() == SyncMode::Always {
                log.dir_file = Some(Arc::new(File::open(&log.dir)?));
            }
            log.recover()?;
        }
        Ok(log)
    }

    fn recover(&mut self) -> io::Result<()> {
        let (firsts, orphan_acks) = segment::list(&self.dir)?;
        for first in orphan_acks {
            // Left by a crash between deleting a segment and its ack file: it must not apply
            // to a later segment of the same name.
            segment::remove(&self.dir, first)?;
        }
        let mut min_offset = 0;
        let mut found = crate::corruption::CorruptionStats::default();
        for (k, &first) in firsts.iter().enumerate() {
            let next_first = firsts.get(k + 1).copied();
            let committed = &self.ctx.committed;
            let Some(r) = segment::recover(&self.dir, first, min_offset, next_first, committed, &mut found)?
            else {
                continue;
            };
            min_offset = min_offset
                .max(first)
                .max(r.last_offset.map_or(0, |o| o + 1))
                .max(r.highest_acked.map_or(0, |o| o + 1));
            let skip = (r.skip.count_ones() > 0).then_some(r.skip);
            self.recovered_body_bytes += r.pending_body_bytes;
            let carries = !r.carried.is_empty();
            self.recovered_carried.extend(r.carried);
            self.segments.push_back(Segment {
                first,
                len: r.len,
                records: r.records,
                end_offset: r.last_offset.map_or(first, |o| o + 1),
                pending: r.pending,
                skip,
                holes: r.holes,
                returns: r.returns,
                carries,
                lazy_hold: if carries { u64::MAX } else { 0 },
                ..Segment::new(first)
            });
        }
        self.next_offset = min_offset;
        self.recovered_below = min_offset;
        if let Some(last) = self.segments.back() {
            // Appends continue at the end of its valid data, not after a torn tail.
            segment::cut_tail(&self.dir, last.first, last.len)?;
        }
        if !found.is_clean() {
            tracing::warn!(dir = %self.dir.display(), ?found, "recovered a damaged queue log");
            self.ctx.corruption.add(&found);
        }
        // Segments with nothing left to deliver go now; the last one stays to be appended to
        // (and to remember, by its name, where offsets had got to).
        // Those that carry wait for whoever takes what they carried.
        let mut i = 0;
        while i + 1 < self.segments.len() {
            if self.segments[i].pending == 0 && self.delete_or_hold(i) {
                continue;
            }
            i += 1;
        }
        if let Some(last) = self.segments.back() {
            let file = segment::open_append(&self.dir, last.first)?;
            self.writer = Some(Writer {
                first: last.first,
                file: Arc::new(file),
                flushed: last.len,
                buf: Vec::new(),
                poison_epoch: self.ctx.syncer.poison_epoch(),
            });
            self.cursor = Cursor { segment: self.segments[0].first, pos: HEADER_LEN, ordinal: 0 };
        }
        self.spilled = self.segments.iter().map(|s| s.pending).sum();
        if self.spilled > 0 {
            tracing::info!(dir = %self.dir.display(), messages = self.spilled, segments = self.segments.len(), "recovered queue log");
        }
        Ok(())
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The offset the next append gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// How many segment files the log has.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// How much of the log is in memory now, and the most it has been.
    pub fn memory_stats(&self) -> MemoryStats {
        MemoryStats {
            window_messages: self.window.len(),
            window_bytes: self.window_bytes,
            peak_window_messages: self.peak_messages,
            peak_window_bytes: self.peak_bytes,
            requeued_messages: self.requeued.len(),
            on_disk_messages: self.spilled,
        }
    }

    fn config(&self) -> &DiskConfig {
        &self.ctx.config
    }

    fn note_peak(&mut self) {
        self.peak_messages = self.peak_messages.max(self.window.len());
        self.peak_bytes = self.peak_bytes.max(self.window_bytes);
    }

    /// Marks a file written: for the next sync, or the next lazy round while flushing lazily.
    fn mark_written(&self, file: &Arc<File>, kind: FileKind) {
        if self.flushing_lazily {
            self.ctx.syncer.mark_lazy(file, kind);
        } else {
            self.ctx.syncer.mark_dirty(file, kind);
        }
    }

    fn mark_dir_dirty(&self) {
        if let Some(dir) = &self.dir_file {
            self.ctx.syncer.mark_dirty(dir, FileKind::Dir);
        }
    }

    fn is_active(&self, first: u64) -> bool {
        self.writer.as_ref().is_some_and(|w| w.first == first)
    }

    /// The index of the segment that holds `offset`.
    fn segment_of(&self, offset: u64) -> Option<usize> {
        self.segments.partition_point(|s| s.first <= offset).checked_sub(1)
    }

    /// The index of the segment whose records include `offset`.
    fn segment_holding(&self, offset: u64) -> Option<usize> {
        self.segment_of(offset).filter(|&i| offset < self.segments[i].end_offset)
    }

    /// Segment `i`'s buffer of ack-file entries, registered to be written out at the next flush.
    fn ack_buf(&mut self, i: usize) -> &mut Vec<u8> {
        let seg = &mut self.segments[i];
        if seg.ack_buf.is_empty() {
            self.acks_buffered.push(seg.first);
        }
        &mut seg.ack_buf
    }

    // ---- writing ----

    /// Appends a record to the write buffer (rolling to a new segment when the active one is
    /// full); returns where it went.
    fn write_record(
        &mut self,
        offset: u64,
        persistent: bool,
        expires_at: Option<Instant>,
        message: &Message,
        carried: &[u8],
    ) -> io::Result<Cursor> {
        // Only what survives a restart belongs to a transaction, or carries.
        let txid = if persistent { crate::transactions::writing() } else { None };
        let carried = if persistent { carried } else { &[] };
        if carried.len() > record::MAX_CARRIED {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "too much carried with a record"));
        }
        let size = record::encoded_len(message, txid.is_some(), carried) as u64;
        if size > record::PREFIX_LEN as u64 + u64::from(record::MAX_LEN) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "message too large for the queue log"));
        }
        let roll = match self.segments.back() {
            Some(last) if self.writer.is_some() => {
                (last.len > HEADER_LEN && last.len + size > self.config().segment_size)
                    || self.writer_poisoned()
            }
            _ => true,
        };
        if roll {
            if let Err(e) = self.roll(offset) {
                self.ctx.health.failed("starting a queue log segment", &e);
                return Err(e);
            }
        }
        let expiry_ms = self.ctx.clock.expiry_ms(expires_at);
        let (Some(writer), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("queue log has no segment to write to"));
        };
        let at = Cursor { segment: seg.first, pos: seg.len, ordinal: seg.records };
        let written = record::encode(&mut writer.buf, offset, persistent, expiry_ms, txid, message, carried);
        self.tx_written |= txid.is_some();
        seg.carries |= !carried.is_empty();
        seg.len += written as u64;
        seg.records += 1;
        seg.end_offset = offset + 1;
        seg.pending += 1;
        Ok(at)
    }

    /// Whether an fsync of the active segment failed: nothing more is written to it (see
    /// [`Syncer`]'s doc on poisoned files). One atomic load unless some file was poisoned.
    fn writer_poisoned(&mut self) -> bool {
        let epoch = self.ctx.syncer.poison_epoch();
        let Some(w) = self.writer.as_mut() else { return false };
        if w.poison_epoch == epoch {
            return false;
        }
        if self.ctx.syncer.is_poisoned(&w.file) {
            return true;
        }
        w.poison_epoch = epoch;
        false
    }

    /// Starts segment `first` (the offset of the record about to be written).
    fn roll(&mut self, first: u64) -> io::Result<()> {
        self.write_out()?;
        if !self.dir_exists {
            fs::create_dir_all(&self.dir)?;
            self.dir_exists = true;
        }
        crate::faults::inject("store::create")?;
        let file = segment::create(&self.dir, first)?;
        self.mark_dir_dirty();
        let mut buf = self.writer.as_mut().map(|w| std::mem::take(&mut w.buf)).unwrap_or_default();
        buf.extend_from_slice(SEGMENT_HEADER);
        let poison_epoch = self.ctx.syncer.poison_epoch();
        let old = self.writer.replace(Writer { first, file: Arc::new(file), flushed: 0, buf, poison_epoch });
        self.segments.push_back(Segment::new(first));
        if let Some(old) = old {
            self.ctx.syncer.forget(&old.file);
            let i = self.segments.len() - 2;
            if self.segments[i].first == old.first && self.segments[i].pending == 0 {
                self.delete_or_hold(i);
            }
        }
        Ok(())
    }

    /// Hands the write buffer to the OS in one write and registers the file for the next sync.
    fn write_out(&mut self) -> io::Result<()> {
        let Some(w) = self.writer.as_mut() else { return Ok(()) };
        if w.buf.is_empty() {
            return Ok(());
        }
        self.ctx.space.charge(w.buf.len());
        if let Err(e) = crate::faults::write_all("store::write", &w.file, &w.buf) {
            // Keep the file ending at a record boundary; the buffer stays for a retry.
            let _ = w.file.set_len(w.flushed);
            self.ctx.health.failed("writing a queue log", &e);
            return Err(e);
        }
        w.flushed += w.buf.len() as u64;
        w.buf.clear();
        if w.buf.capacity() > KEEP_BUFFER {
            w.buf.shrink_to(KEEP_BUFFER);
        }
        if self.durable {
            let file = Arc::clone(&w.file);
            self.mark_written(&file, FileKind::Segment);
        }
        Ok(())
    }

    fn write_acks(&mut self) -> io::Result<()> {
        while let Some(&first) = self.acks_buffered.last() {
            if let Some(i) = self.segment_of(first).filter(|&i| self.segments[i].first == first) {
                if self.segments[i].ack_file.is_none() {
                    let (file, created) = match segment::open_ack(&self.dir, first) {
                        Ok(opened) => opened,
                        Err(e) => {
                            self.ctx.health.failed("opening an ack file", &e);
                            return Err(e);
                        }
                    };
                    if created {
                        self.mark_dir_dirty();
                    }
                    self.segments[i].ack_len = file.metadata()?.len();
                    self.segments[i].ack_file = Some(Arc::new(file));
                }
                let seg = &mut self.segments[i];
                if let Some(file) = &seg.ack_file {
                    self.ctx.space.charge(seg.ack_buf.len());
                    if let Err(e) = crate::faults::write_all("store::ack_write", file, &seg.ack_buf) {
                        // Whole entries only: a retry appends the buffer again from here.
                        let _ = file.set_len(seg.ack_len);
                        self.ctx.health.failed("writing an ack file", &e);
                        return Err(e);
                    }
                    seg.ack_len += seg.ack_buf.len() as u64;
                    seg.ack_buf.clear();
                    if self.durable {
                        let file = Arc::clone(file);
                        self.mark_written(&file, FileKind::Ack);
                    }
                }
            }
            self.acks_buffered.pop();
        }
        Ok(())
    }

    /// Deletes segment `i` (with nothing pending, not the active one) unless it must stay a
    /// while: a transaction whose outcome is not known yet settled one of its records, or it
    /// carries and its lazy round has not run (asked for here the first time). Returns whether
    /// it was deleted.
    fn delete_or_hold(&mut self, i: usize) -> bool {
        if self.may_delete(i) {
            self.delete_segment(i);
            return true;
        }
        let first = self.segments[i].first;
        if !self.held.contains(&first) {
            self.held.push(first);
        }
        false
    }

    /// Whether nothing keeps segment `i` (settled) any more; asks for its lazy round if it
    /// carries and has not asked yet.
    fn may_delete(&mut self, i: usize) -> bool {
        let syncer = &self.ctx.syncer;
        let seg = &mut self.segments[i];
        if seg.tx_hold != 0 && seg.tx_hold >= syncer.tx_floor() {
            return false;
        }
        if seg.carries {
            let failed = seg.lazy_hold != u64::MAX && syncer.synced() >= seg.lazy_hold;
            if seg.lazy_hold == 0 || (failed && syncer.lazy_synced() < seg.lazy_hold) {
                // Not asked yet, or its round failed: (again) for a round from now.
                seg.lazy_hold = syncer.request_lazy();
            }
            if syncer.lazy_synced() < seg.lazy_hold {
                return false;
            }
        }
        true
    }

    /// Deletes the held segments nothing keeps any more.
    fn release_held(&mut self) {
        for first in std::mem::take(&mut self.held) {
            let Some(i) = self.segment_of(first).filter(|&i| self.segments[i].first == first) else {
                continue;
            };
            if self.segments[i].pending != 0 || self.is_active(first) {
                continue;
            }
            self.delete_or_hold(i);
        }
    }

    /// Deletes segment `i` and its ack file.
    fn delete_segment(&mut self, i: usize) {
        let Some(seg) = self.segments.remove(i) else { return };
        if self.reader.as_ref().is_some_and(|(first, _)| *first == seg.first) {
            self.reader = None;
        }
        self.acks_buffered.retain(|&f| f != seg.first);
        if let Err(e) = segment::remove(&self.dir, seg.first) {
            tracing::warn!(dir = %self.dir.display(), segment = seg.first, error = %e, "could not delete a settled segment");
        }
        self.mark_dir_dirty();
    }

    // ---- reading ----

    /// Reads the next spilled message back from disk.
    fn read_next(&mut self) -> io::Result<Option<QueuedMessage>> {
        loop {
            let i = self.segments.partition_point(|s| s.first < self.cursor.segment);
            let Some(&Segment { first, len: seg_len, .. }) = self.segments.get(i) else { return Ok(None) };
            if first != self.cursor.segment {
                self.cursor = Cursor { segment: first, pos: HEADER_LEN, ordinal: 0 };
            }
            if let Some(end) = hole_at(&self.segments[i].holes, self.cursor.pos) {
                // Damage recovery skipped: no record starts in it (the ordinal stays).
                self.cursor.pos = end;
            }
            let active = self.is_active(first);
            if self.cursor.pos >= seg_len {
                if active {
                    return Ok(None);
                }
                // Done with this segment: what is left of it is only waiting for acks.
                self.segments[i].skip = None;
                self.segments[i].holes = Vec::new();
                self.segments[i].returns = Vec::new();
                self.reader = None;
                let Some(next) = self.segments.get(i + 1) else { return Ok(None) };
                self.cursor = Cursor { segment: next.first, pos: HEADER_LEN, ordinal: 0 };
                continue;
            }
            let end = if active {
                if self.writer.as_ref().is_some_and(|w| self.cursor.pos >= w.flushed)
                    && self.write_out().is_err()
                {
                    // The record waits in a write buffer that cannot be written now (a full
                    // disk): it is read back once a write succeeds.
                    return Ok(None);
                }
                self.writer.as_ref().map_or(seg_len, |w| w.flushed)
            } else {
                seg_len
            };
            if self.reader.as_ref().is_none_or(|(f, _)| *f != first) {
                let file = File::open(segment::segment_path(&self.dir, first))?;
                self.reader = Some((first, SegmentReader::new(file)));
            }
            let Some((_, reader)) = self.reader.as_mut() else { return Ok(None) };
            let Cursor { pos, ordinal, .. } = self.cursor;
            let found = match reader.read_at(pos, end)? {
                ReadAt::Record(r, len) => {
                    self.cursor.pos += len as u64;
                    self.cursor.ordinal += 1;
                    let recovered = r.offset < self.recovered_below;
                    let skip = self.segments[i].skip.as_ref().is_some_and(|s| s.get(ordinal));
                    if recovered && (skip || !r.persistent()) {
                        continue;
                    }
                    let Some(message) = r.to_message() else {
                        return Err(corrupt(&self.dir, first, pos, "record names are not UTF-8"));
                    };
                    let returns = &self.segments[i].returns;
                    let delivery_count = match returns.binary_search_by_key(&r.offset, |&(o, _)| o) {
                        Ok(j) if recovered => returns[j].1,
                        _ => 0,
                    };
                    QueuedMessage {
                        offset: r.offset,
                        redelivered: recovered,
                        delivery_count,
                        expires_at: self.ctx.clock.expiry(r.expiry_ms),
                        stored: r.persistent(),
                        message,
                    }
                }
                ReadAt::End | ReadAt::Torn => return Err(corrupt(&self.dir, first, pos, "record missing")),
                ReadAt::Corrupt(why) => return Err(corrupt(&self.dir, first, pos, why)),
            };
            if !found.stored {
                // A paged-out message is back in memory: its record is no longer needed.
                let seg = &mut self.segments[i];
                seg.pending = seg.pending.saturating_sub(1);
                if seg.pending == 0 && !active {
                    self.delete_or_hold(i);
                }
            }
            return Ok(Some(found));
        }
    }

    /// Tops the window up from disk once it has drained to half (or is empty).
    fn refill(&mut self) {
        if self.spilled == 0 {
            return;
        }
        let (max_messages, max_bytes) =
            (self.config().memory_window_messages, self.config().memory_window_bytes);
        let low = self.window.len() <= max_messages / 2 && self.window_bytes <= max_bytes / 2;
        if !low && !self.window.is_empty() {
            return;
        }
        while self.spilled > 0
            && (self.window.is_empty() || (self.window.len() < max_messages && self.window_bytes < max_bytes))
        {
            match self.read_next() {
                Ok(Some(m)) => {
                    self.spilled -= 1;
                    self.window_bytes += message_size(&m.message);
                    self.window.push_back(m);
                }
                Ok(None) if self.writer.as_ref().is_some_and(|w| !w.buf.is_empty()) => break,
                Ok(None) => {
                    tracing::error!(dir = %self.dir.display(), lost = self.spilled, "queue log ended before its last message");
                    self.spilled = 0;
                }
                Err(e) => {
                    tracing::error!(dir = %self.dir.display(), lost = self.spilled, error = %e, "cannot read queue log back; dropping what remains");
                    self.spilled = 0;
                }
            }
        }
        self.note_peak();
    }

    /// Whether the head of the ready messages is the head of `requeued` (rather than the window).
    fn head_is_requeued(&mut self) -> bool {
        match self.requeued.front() {
            None => {
                self.refill();
                false
            }
            Some(r) => self.window.front().is_none_or(|w| r.offset < w.offset),
        }
    }
}

impl DiskLog {
    fn append_record(
        &mut self,
        message: Message,
        expires_at: Option<Instant>,
        persistent: bool,
        carried: &[u8],
    ) -> io::Result<u64> {
        if self.deleted {
            return Err(io::Error::other("queue log deleted"));
        }
        let persistent = persistent && self.durable;
        let offset = self.next_offset;
        let size = message_size(&message);
        let (max_messages, max_bytes) =
            (self.config().memory_window_messages, self.config().memory_window_bytes);
        let to_window = self.spilled == 0
            && (self.window.is_empty()
                || (self.window.len() < max_messages && self.window_bytes + size <= max_bytes));
        if persistent || !to_window {
            let at = self.write_record(offset, persistent, expires_at, &message, carried)?;
            if !to_window && self.spilled == 0 {
                self.cursor = at;
            }
            if self.writer.as_ref().is_some_and(|w| w.buf.len() >= WRITE_OUT_AT) {
                // A long batch of page-outs: keep the buffer bounded. The record is buffered
                // and counted either way; a failure shows again at the next flush.
                if let Err(e) = self.write_out() {
                    tracing::debug!(dir = %self.dir.display(), error = %e, "queue log write failed");
                }
            }
        }
        self.next_offset += 1;
        if to_window {
            self.window_bytes += size;
            self.window.push_back(QueuedMessage {
                offset,
                redelivered: false,
                delivery_count: 0,
                expires_at,
                stored: persistent,
                message,
            });
            self.note_peak();
        } else {
            self.spilled += 1;
        }
        Ok(offset)
    }
}

impl QueueLog for DiskLog {
    fn append(&mut self, message: Message, expires_at: Option<Instant>, persistent: bool) -> io::Result<u64> {
        self.append_record(message, expires_at, persistent, &[])
    }

    fn carries(&self) -> bool {
        self.durable
    }

    fn append_carrying(
        &mut self,
        message: Message,
        expires_at: Option<Instant>,
        persistent: bool,
        carried: &[u8],
    ) -> io::Result<u64> {
        self.append_record(message, expires_at, persistent, carried)
    }

    fn take_recovered_carried(&mut self) -> Vec<bytes::Bytes> {
        std::mem::take(&mut self.recovered_carried)
    }

    fn release_recovered(&mut self) {
        for seg in &mut self.segments {
            if seg.lazy_hold == u64::MAX {
                seg.lazy_hold = 0;
            }
        }
        self.release_held();
    }

    fn flush_lazily(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.tx_written) {
            return self.flush();
        }
        self.flushing_lazily = true;
        let flushed = self.flush();
        self.flushing_lazily = false;
        flushed
    }

    fn front(&mut self) -> Option<&QueuedMessage> {
        if self.head_is_requeued() {
            self.requeued.front()
        } else {
            self.window.front()
        }
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        if self.head_is_requeued() {
            return self.requeued.pop_front();
        }
        let m = self.window.pop_front()?;
        self.window_bytes -= message_size(&m.message);
        Some(m)
    }

    fn push_front(&mut self, message: QueuedMessage) {
        self.requeue(message);
    }

    fn requeue(&mut self, message: QueuedMessage) {
        let pos = self.requeued.partition_point(|r| r.offset < message.offset);
        self.requeued.insert(pos, message);
    }

    fn settle(&mut self, offset: u64, stored: bool) {
        if self.deleted || !stored {
            return;
        }
        let Some(i) = self.segment_holding(offset) else {
            tracing::warn!(dir = %self.dir.display(), offset, "settled an offset with no segment");
            return;
        };
        let active = self.is_active(self.segments[i].first);
        let txid = crate::transactions::writing();
        let seg = &mut self.segments[i];
        seg.pending = seg.pending.saturating_sub(1);
        if let Some(txid) = txid {
            seg.tx_hold = seg.tx_hold.max(txid);
            self.tx_written = true;
        }
        if seg.pending == 0 && !active && self.delete_or_hold(i) {
            return;
        }
        match txid {
            Some(txid) => record::encode_tx_ack(self.ack_buf(i), txid, offset),
            None => record::encode_ack(self.ack_buf(i), offset),
        }
    }

    fn note_return(&mut self, offset: u64, stored: bool) {
        if self.deleted || !stored {
            return;
        }
        if let Some(i) = self.segment_holding(offset) {
            record::encode_return(self.ack_buf(i), offset);
        }
    }

    fn recovered_body_bytes(&self) -> u64 {
        self.recovered_body_bytes
    }

    fn len(&self) -> usize {
        self.requeued.len() + self.window.len() + self.spilled as usize
    }

    fn purge(&mut self) -> usize {
        let n = self.len();
        let in_memory: Vec<(u64, bool)> =
            self.requeued.drain(..).chain(self.window.drain(..)).map(|m| (m.offset, m.stored)).collect();
        self.window_bytes = 0;
        for (offset, stored) in in_memory {
            self.settle(offset, stored);
        }
        while self.spilled > 0 {
            match self.read_next() {
                Ok(Some(m)) => {
                    self.spilled -= 1;
                    self.settle(m.offset, m.stored);
                }
                Ok(None) => self.spilled = 0,
                Err(e) => {
                    tracing::error!(dir = %self.dir.display(), error = %e, "purge could not read the queue log back");
                    self.spilled = 0;
                }
            }
        }
        n
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.deleted {
            return Ok(());
        }
        if !self.flushing_lazily {
            self.tx_written = false;
        }
        self.write_out()?;
        self.write_acks()?;
        if !self.held.is_empty() {
            self.release_held();
        }
        Ok(())
    }

    fn append_mark(&self) -> AppendMark {
        AppendMark::single(self.next_offset)
    }

    fn delete(&mut self) {
        if self.deleted {
            return;
        }
        self.deleted = true;
        self.requeued.clear();
        self.window.clear();
        self.window_bytes = 0;
        self.spilled = 0;
        self.segments.clear();
        self.acks_buffered.clear();
        self.held.clear();
        self.writer = None;
        self.reader = None;
        self.dir_file = None;
        if self.dir_exists {
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a deleted queue's log");
            }
            if self.durable {
                // The vhost's directory goes too once its last queue has gone.
                if let Some(parent) = self.dir.parent() {
                    let _ = fs::remove_dir(parent);
                }
            }
        }
    }
}

impl Drop for DiskLog {
    /// Hands what is buffered to the OS (without waiting for a sync): a clean shutdown loses
    /// nothing that was appended.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not write a queue log's buffer on close");
        }
    }
}
