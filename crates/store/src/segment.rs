//! One segment of a queue log on disk: its files, its read cursor and its recovery.
//!
//! A segment is `<first offset, 20 digits>.seg` (a header, then records) and, once something
//! in it is acknowledged, `<first offset>.ack` (a header, then fixed-size ack entries). Recovery
//! reads every whole record with a valid checksum and offsets that only grow; damage costs only
//! the damaged records: recovery scans forward to the next valid record and reports the skipped
//! bytes (see [`corruption`]). Bytes after the last valid record are a torn
//! write (cut from the segment being appended to). The ack file is loaded entry by entry the same
//! way, and recovery returns which records are still waiting.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::commit_log::Committed;
use crate::corruption::{self, CorruptionStats};
use crate::record::{self, Decoded, RecordRef, ACK_ENTRY_LEN};

/// Starts every segment file: magic and format version.
pub(crate) const SEGMENT_HEADER: &[u8; 8] = b"WRNSEG\x00\x01";
/// Starts every ack file.
pub(crate) const ACK_HEADER: &[u8; 8] = b"WRNACK\x00\x01";
pub(crate) const HEADER_LEN: u64 = 8;

pub(crate) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

pub(crate) fn ack_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.ack"))
}

fn parse_name(name: &str, ext: &str) -> Option<u64> {
    let digits = name.strip_suffix(ext)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The first offsets of the segments in `dir`, ascending, and of ack files without a segment.
pub(crate) fn list(dir: &Path) -> io::Result<(Vec<u64>, Vec<u64>)> {
    let mut segments = Vec::new();
    let mut acks = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if let Some(first) = parse_name(&name, ".seg") {
            segments.push(first);
        } else if let Some(first) = parse_name(&name, ".ack") {
            acks.push(first);
        }
    }
    segments.sort_unstable();
    acks.retain(|a| segments.binary_search(a).is_err());
    Ok((segments, acks))
}

/// A bitmap with one bit per record of a segment, by position in the segment.
#[derive(Debug, Default, Clone)]
pub(crate) struct Bits {
    words: Vec<u64>,
    len: u64,
}

impl Bits {
    pub(crate) fn push(&mut self, bit: bool) {
        let (word, shift) = ((self.len / 64) as usize, self.len % 64);
        if shift == 0 {
            self.words.push(0);
        }
        if bit {
            self.words[word] |= 1 << shift;
        }
        self.len += 1;
    }

    pub(crate) fn set(&mut self, i: u64) {
        if i < self.len {
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
    }

    /// Bit `i`; false past the end.
    pub(crate) fn get(&self, i: u64) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    pub(crate) fn count_ones(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// What recovery found in one segment.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Where the valid data ends (header included): the end of its last valid record. Bytes
    /// after it hold no valid record (a torn tail); see [`cut_tail`].
    pub len: u64,
    /// Whole valid records.
    pub records: u64,
    /// The highest offset of a record in the segment.
    pub last_offset: Option<u64>,
    /// Records to skip when reading it back (by position among the valid records):
    /// acknowledged or not persistent.
    pub skip: Bits,
    /// Damaged byte ranges between valid records, ascending: reading back jumps over them.
    pub holes: Vec<(u64, u64)>,
    /// Records still waiting: persistent and not acknowledged.
    pub pending: u64,
    /// Body bytes of the waiting records (for `x-max-length-bytes`).
    pub pending_body_bytes: u64,
    /// How often each waiting record that was ever returned to its queue was, by offset
    /// (ascending): queues with `x-delivery-limit` keep counting after a restart.
    pub returns: Vec<(u64, u32)>,
    /// The highest offset the segment's ack file names, whether or not its record survived:
    /// offsets up to it must never be handed out again, or a stale ack would hide a new message.
    pub highest_acked: Option<u64>,
    /// What its valid persistent records (of committed transactions, if written by one) carry,
    /// acknowledged ones included, in offset order (see [`crate::QueueLog::append_carrying`]).
    pub carried: Vec<bytes::Bytes>,
}

/// Offsets never reach bit 62 (see [`record`]'s ack entries): the bound of the last segment.
const OFFSET_LIMIT: u64 = record::WORD_VALUE + 1;

/// Recovers segment `first` of `dir`, whose records must have offsets of at least `min_offset`
/// and below `next_first` (the next segment's first offset, if there is one).
///
/// A record that is damaged (or whose offset does not grow) is skipped: recovery resumes at the
/// next valid record and reports the skipped bytes as a hole. Bytes after the last valid record
/// that hold no valid record are a torn tail: not part of [`Recovered::len`], and only cut (by
/// [`cut_tail`]) if this turns out to be the segment appended to. A damaged header is rewritten
/// when records follow it. Damage is logged and counted in `found`, and the file copied aside
/// (`*.corrupt`) before anything in it changes. Returns `None` when the file holds no valid
/// record and not even a valid header: it is set aside as `*.corrupt` with its ack file, and the
/// queue goes on without it.
pub(crate) fn recover(
    dir: &Path,
    first: u64,
    min_offset: u64,
    next_first: Option<u64>,
    committed: &Committed,
    found: &mut CorruptionStats,
) -> io::Result<Option<Recovered>> {
    let path = segment_path(dir, first);
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let file_len = file.metadata()?.len();
    if file_len < HEADER_LEN {
        // Created, but the crash came before its header was written: an empty segment.
        file.set_len(0)?;
        file.write_all_at(SEGMENT_HEADER, 0)?;
        let mut skip = Bits::default();
        let acks = load_acks(dir, first, &[], committed, &mut skip, found)?;
        return Ok(Some(Recovered {
            len: HEADER_LEN,
            records: 0,
            last_offset: None,
            skip,
            holes: Vec::new(),
            pending: 0,
            pending_body_bytes: 0,
            returns: Vec::new(),
            highest_acked: acks.highest_acked,
            carried: Vec::new(),
        }));
    }
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)?;
    let header_ok = &header == SEGMENT_HEADER;
    let floor = min_offset.max(first);
    // A bound at or below the floor cannot be right (names only grow): ignore it rather than
    // reject every record.
    let bound = next_first.filter(|&n| n > floor).unwrap_or(OFFSET_LIMIT);
    let scan = scan_records(file.try_clone()?, file_len, floor..bound, committed)?;
    if !header_ok && scan.offsets.is_empty() {
        set_segment_aside(dir, first, found)?;
        return Ok(None);
    }
    note_damage(dir, &path, header_ok, &scan, file_len, found);
    if !header_ok {
        file.write_all_at(SEGMENT_HEADER, 0)?;
    }

    // Acks: mark acknowledged records to skip.
    let Scan { offsets, body_lens, mut skip, end, holes, carried, .. } = scan;
    let acks = load_acks(dir, first, &offsets, committed, &mut skip, found)?;
    let records = offsets.len() as u64;
    let pending = records - skip.count_ones();
    let waiting = |i: usize| !skip.get(i as u64);
    let pending_body_bytes =
        body_lens.iter().enumerate().filter(|&(i, _)| waiting(i)).map(|(_, &n)| u64::from(n)).sum();
    let returns = acks
        .returns
        .into_iter()
        .filter(|(offset, _)| offsets.binary_search(offset).is_ok_and(waiting))
        .collect();
    Ok(Some(Recovered {
        len: end,
        records,
        last_offset: offsets.last().copied(),
        skip,
        holes: holes.iter().map(|h| (h.start, h.end)).collect(),
        pending,
        pending_body_bytes,
        returns,
        highest_acked: acks.highest_acked,
        carried,
    }))
}

/// Cuts segment `first` back to `len`, the end of its valid data, if it is longer: the segment
/// about to be appended to must end at a record boundary.
pub(crate) fn cut_tail(dir: &Path, first: u64, len: u64) -> io::Result<()> {
    let path = segment_path(dir, first);
    let file = OpenOptions::new().write(true).open(&path)?;
    let file_len = file.metadata()?.len();
    if file_len > len {
        tracing::warn!(
            dir = %dir.display(),
            file = %file_name(&path),
            at = len,
            bytes = file_len - len,
            "truncating the active segment after its last valid record"
        );
        file.set_len(len)?;
    }
    Ok(())
}

fn file_name(path: &Path) -> std::borrow::Cow<'_, str> {
    path.file_name().unwrap_or(path.as_os_str()).to_string_lossy()
}

/// A damaged stretch of a segment, between valid records.
#[derive(Debug)]
struct Hole {
    start: u64,
    end: u64,
    why: &'static str,
}

/// Bytes after the last valid record with no valid record in them.
#[derive(Debug)]
struct Tail {
    start: u64,
    /// The data ends inside a record that claims more bytes than there are, or in zeros: a
    /// write cut short by a crash (or a damaged length field, which looks the same), not
    /// evidence worth a copy.
    torn: bool,
    why: &'static str,
}

/// What [`scan_records`] found.
#[derive(Debug)]
struct Scan {
    offsets: Vec<u64>,
    body_lens: Vec<u32>,
    /// One bit per valid record: set for a non-persistent one, and for one written by a
    /// transaction that did not commit.
    skip: Bits,
    /// The end of the last valid record (the header's end if there is none).
    end: u64,
    holes: Vec<Hole>,
    tail: Option<Tail>,
    /// What the records that count carry (see [`Recovered::carried`]).
    carried: Vec<bytes::Bytes>,
}

/// Reads every valid record of a segment whose offsets grow within `offsets`, skipping damaged
/// stretches: at a position where no acceptable record starts, it scans forward for the next
/// one.
fn scan_records(file: File, file_len: u64, offsets: Range<u64>, committed: &Committed) -> io::Result<Scan> {
    let mut reader = SegmentReader::new(file);
    let mut scan = Scan {
        offsets: Vec::new(),
        body_lens: Vec::new(),
        skip: Bits::default(),
        end: HEADER_LEN,
        holes: Vec::new(),
        tail: None,
        carried: Vec::new(),
    };
    let mut pos = HEADER_LEN;
    let mut floor = offsets.start;
    loop {
        let (torn, why) = match reader.read_at(pos, file_len)? {
            ReadAt::End => break,
            ReadAt::Record(r, len) if (floor..offsets.end).contains(&r.offset) => {
                floor = r.offset + 1;
                scan.offsets.push(r.offset);
                scan.body_lens.push(r.body.len() as u32);
                let counts = r.persistent() && r.txid.is_none_or(|txid| committed.contains(txid));
                scan.skip.push(!counts);
                if counts && !r.carried.is_empty() {
                    scan.carried.push(bytes::Bytes::copy_from_slice(r.carried));
                }
                pos += len as u64;
                scan.end = pos;
                continue;
            }
            ReadAt::Record(..) => (false, "record offset out of order"),
            ReadAt::Torn => (true, "record runs past the end of the file"),
            ReadAt::Corrupt(why) => (false, why),
        };
        match reader.resync(pos + 1, file_len, floor..offsets.end)? {
            Some(next) => {
                scan.holes.push(Hole { start: pos, end: next, why });
                pos = next;
            }
            None => {
                // Zeros are what a crash leaves where a write had extended the file but its
                // data never reached the disk: torn, like a record cut short.
                let torn = torn || reader.all_zero(pos, file_len)?;
                scan.tail = Some(Tail { start: pos, torn, why });
                break;
            }
        }
    }
    Ok(scan)
}

/// Logs and counts the damage a scan found, and copies the file aside if any of it is more than
/// a write torn by a crash.
fn note_damage(
    dir: &Path,
    path: &Path,
    header_ok: bool,
    scan: &Scan,
    file_len: u64,
    found: &mut CorruptionStats,
) {
    let (dir_shown, file) = (dir.display(), file_name(path));
    let mut damaged = Vec::new();
    if !header_ok {
        tracing::warn!(dir = %dir_shown, %file, "damaged segment header; its records are kept and the header rewritten");
        found.segment_headers_repaired += 1;
        damaged.push((0, HEADER_LEN));
    }
    for hole in &scan.holes {
        let bytes = hole.end - hole.start;
        tracing::error!(
            dir = %dir_shown,
            %file,
            at = hole.start,
            bytes,
            reason = hole.why,
            "skipped damaged records; recovery resumes at the next valid record"
        );
        found.corrupt_records_skipped += 1;
        found.corrupt_bytes_skipped += bytes;
        damaged.push((hole.start, hole.end));
    }
    if let Some(tail) = &scan.tail {
        let bytes = file_len - tail.start;
        tracing::warn!(
            dir = %dir_shown,
            %file,
            at = tail.start,
            bytes,
            reason = tail.why,
            "no valid record after the last one; a torn tail (cut if this is the active segment)"
        );
        found.torn_tails += 1;
        found.torn_tail_bytes += bytes;
        if !tail.torn {
            damaged.push((tail.start, file_len));
        }
    }
    if !damaged.is_empty() {
        corruption::copy_aside(path, &damaged, found);
    }
}

/// Sets aside a segment file that holds nothing usable, and its ack file (whose entries could
/// only name records of that file).
fn set_segment_aside(dir: &Path, first: u64, found: &mut CorruptionStats) -> io::Result<()> {
    let path = segment_path(dir, first);
    let aside = corruption::set_aside(&path)?;
    tracing::error!(
        dir = %dir.display(),
        file = %file_name(&path),
        aside = %aside.display(),
        "not a segment file (bad header, no valid record); set aside"
    );
    found.segments_set_aside += 1;
    let ack = ack_path(dir, first);
    if ack.exists() {
        corruption::set_aside(&ack)?;
    }
    Ok(())
}

/// What a segment's ack file says beyond the skip bits.
#[derive(Default)]
struct Acks {
    highest_acked: Option<u64>,
    /// Returns per offset, ascending (records of the segment only).
    returns: Vec<(u64, u32)>,
}

/// Reads `first`'s ack file (if any), sets the skip bit of every acknowledged record and counts
/// the returns of each. Entries are fixed-size, so a damaged one costs that entry only: it is
/// skipped and reading goes on at the next. Only a partial entry at the end (a torn write) is
/// cut. A damaged header is rewritten, unless no entry is valid (the file is set aside).
fn load_acks(
    dir: &Path,
    first: u64,
    offsets: &[u64],
    committed: &Committed,
    skip: &mut Bits,
    found: &mut CorruptionStats,
) -> io::Result<Acks> {
    let path = ack_path(dir, first);
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Acks::default()),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let header_len = HEADER_LEN as usize;
    if data.len() < header_len {
        // Created, but the crash came before its header was written: it holds no entry.
        file.set_len(0)?;
        file.write_all_at(ACK_HEADER, 0)?;
        return Ok(Acks::default());
    }
    let header_ok = data[..header_len] == ACK_HEADER[..];
    let whole = header_len + (data.len() - header_len) / ACK_ENTRY_LEN * ACK_ENTRY_LEN;
    let (entries, bad) = read_ack_entries(&data[header_len..whole]);
    let skipped: u64 = bad.iter().map(|(start, end)| (end - start) / ACK_ENTRY_LEN as u64).sum();
    found.corrupt_ack_entries_skipped += skipped;
    let (dir_shown, name) = (dir.display(), file_name(&path));
    if !header_ok && entries.is_empty() {
        let aside = corruption::set_aside(&path)?;
        tracing::error!(dir = %dir_shown, file = %name, aside = %aside.display(), skipped, "not an ack file (bad header, no valid entry); set aside");
        found.ack_files_set_aside += 1;
        return Ok(Acks::default());
    }
    let mut damaged = Vec::new();
    for &(start, end) in &bad {
        let (at, end) = (start + HEADER_LEN, end + HEADER_LEN);
        let entries = (end - at) / ACK_ENTRY_LEN as u64;
        tracing::error!(dir = %dir_shown, file = %name, at, entries, "skipped damaged ack entries; the messages they named may come back");
        damaged.push((at, end));
    }
    if !header_ok {
        tracing::warn!(dir = %dir_shown, file = %name, "damaged ack file header; its entries are kept and the header rewritten");
        found.ack_headers_repaired += 1;
        damaged.push((0, HEADER_LEN));
    }
    if !damaged.is_empty() {
        corruption::copy_aside(&path, &damaged, found);
    }
    if !header_ok {
        file.write_all_at(ACK_HEADER, 0)?;
    }
    if whole < data.len() {
        tracing::warn!(dir = %dir_shown, file = %name, at = whole, bytes = data.len() - whole, "truncating a torn ack entry at the end");
        found.torn_ack_tails += 1;
        file.set_len(whole as u64)?;
    }
    Ok(apply_acks(&path, entries, offsets, committed, skip))
}

/// The valid entries of an ack file's body, and the byte ranges (relative to the body) of runs
/// of damaged entries.
fn read_ack_entries(body: &[u8]) -> (Vec<record::AckEntry>, Vec<(u64, u64)>) {
    let mut entries = Vec::with_capacity(body.len() / ACK_ENTRY_LEN);
    let mut bad: Vec<(u64, u64)> = Vec::new();
    for (i, entry) in body.chunks_exact(ACK_ENTRY_LEN).enumerate() {
        let decoded = <&[u8; ACK_ENTRY_LEN]>::try_from(entry).ok().and_then(record::decode_ack);
        if let Some(entry) = decoded {
            entries.push(entry);
            continue;
        }
        let at = (i * ACK_ENTRY_LEN) as u64;
        match bad.last_mut() {
            Some((_, end)) if *end == at => *end += ACK_ENTRY_LEN as u64,
            _ => bad.push((at, at + ACK_ENTRY_LEN as u64)),
        }
    }
    (entries, bad)
}

/// Sets the skip bit of every acknowledged record (by a transaction: only if it committed) and
/// counts returns per offset.
fn apply_acks(
    path: &Path,
    entries: Vec<record::AckEntry>,
    offsets: &[u64],
    committed: &Committed,
    skip: &mut Bits,
) -> Acks {
    let mut acks = Acks::default();
    let mut returned: Vec<u64> = Vec::new();
    // Acks of records lost to damage or a torn tail: one line per file, not one per ack.
    let mut stray: (u64, Option<u64>) = (0, None);
    let mut in_committed_tx = false;
    for entry in entries {
        match entry {
            record::AckEntry::TxMarker(txid) => in_committed_tx = committed.contains(txid),
            record::AckEntry::TxSettled(offset) if !in_committed_tx => {
                // Never to be handed out again, but the message stays.
                acks.highest_acked = acks.highest_acked.max(Some(offset));
            }
            record::AckEntry::Settled(offset) | record::AckEntry::TxSettled(offset) => {
                acks.highest_acked = acks.highest_acked.max(Some(offset));
                match offsets.binary_search(&offset) {
                    Ok(i) => skip.set(i as u64),
                    Err(_) => {
                        stray.0 += 1;
                        stray.1.get_or_insert(offset);
                    }
                }
            }
            record::AckEntry::Returned(offset) => returned.push(offset),
        }
    }
    if let (count, Some(first_offset)) = stray {
        tracing::warn!(path = %path.display(), first_offset, count, "acks of offsets not in their segment; ignored");
    }
    returned.sort_unstable();
    for offset in returned {
        match acks.returns.last_mut() {
            Some((last, n)) if *last == offset => *n = n.saturating_add(1),
            _ => acks.returns.push((offset, 1)),
        }
    }
    acks
}

/// Creates an empty segment file (`create_new`: a leftover of that name is an error). The
/// caller writes the header.
pub(crate) fn create(dir: &Path, first: u64) -> io::Result<File> {
    OpenOptions::new().append(true).create_new(true).open(segment_path(dir, first))
}

/// Opens a recovered segment to append to it.
pub(crate) fn open_append(dir: &Path, first: u64) -> io::Result<File> {
    OpenOptions::new().append(true).open(segment_path(dir, first))
}

/// Opens (creating with its header if needed) the ack file of segment `first`; true when it
/// was created.
pub(crate) fn open_ack(dir: &Path, first: u64) -> io::Result<(File, bool)> {
    let mut file = OpenOptions::new().append(true).create(true).open(ack_path(dir, first))?;
    let created = file.metadata()?.len() == 0;
    if created {
        file.write_all(ACK_HEADER)?;
    }
    Ok((file, created))
}

/// Deletes a segment and its ack file (the segment first: an ack file without its segment is
/// harmless, the reverse would bring acknowledged messages back).
pub(crate) fn remove(dir: &Path, first: u64) -> io::Result<()> {
    for path in [segment_path(dir, first), ack_path(dir, first)] {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What [`SegmentReader::read_at`] found.
#[derive(Debug)]
pub(crate) enum ReadAt<'a> {
    /// A valid record and its encoded length.
    Record(RecordRef<'a>, usize),
    /// `pos` is the end of the data.
    End,
    /// The data ends inside a record.
    Torn,
    /// No valid record starts at `pos`.
    Corrupt(&'static str),
}

/// Reads records from a segment file through a buffer, by position (positional reads: the
/// file may be appended to meanwhile).
#[derive(Debug)]
pub(crate) struct SegmentReader {
    file: File,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
}

const READ_CHUNK: usize = 256 * 1024;

impl SegmentReader {
    pub(crate) fn new(file: File) -> SegmentReader {
        SegmentReader { file, buf: Vec::new(), buf_pos: 0 }
    }

    /// The record at `pos`, reading no further than `end` (the length of the data to trust).
    pub(crate) fn read_at(&mut self, pos: u64, end: u64) -> io::Result<ReadAt<'_>> {
        if pos >= end {
            return Ok(ReadAt::End);
        }
        if !self.ensure(pos, record::PREFIX_LEN, end)? {
            return Ok(ReadAt::Torn);
        }
        let start = (pos - self.buf_pos) as usize;
        let len = record::peek_len(&self.buf[start..]).unwrap_or(0);
        if !(record::MIN_LEN..=record::MAX_LEN).contains(&len) {
            return Ok(ReadAt::Corrupt("record length out of range"));
        }
        let total = record::PREFIX_LEN + len as usize;
        if !self.ensure(pos, total, end)? {
            return Ok(ReadAt::Torn);
        }
        let start = (pos - self.buf_pos) as usize;
        Ok(match record::decode(&self.buf[start..start + total]) {
            Decoded::Record(r, len) => ReadAt::Record(r, len),
            Decoded::Corrupt(why) => ReadAt::Corrupt(why),
            Decoded::Incomplete { .. } => ReadAt::Torn,
        })
    }

    /// The first position in `from..end` where a whole, valid record with an offset in
    /// `offsets` starts, trying every byte: where to resume after damage. Plausibility checks
    /// ([`record::plausible`]) come before the checksum, so scanning garbage costs little more
    /// than reading it.
    pub(crate) fn resync(&mut self, from: u64, end: u64, offsets: Range<u64>) -> io::Result<Option<u64>> {
        let probe = record::PROBE_LEN as u64;
        let mut pos = from;
        while pos + probe <= end {
            if !self.ensure(pos, record::PROBE_LEN, end)? {
                break;
            }
            let start = (pos - self.buf_pos) as usize;
            if record::plausible(&self.buf[start..], end - pos, &offsets) {
                if let ReadAt::Record(r, _) = self.read_at(pos, end)? {
                    if offsets.contains(&r.offset) {
                        return Ok(Some(pos));
                    }
                }
            }
            pos += 1;
        }
        Ok(None)
    }

    /// Whether every byte in `from..end` is zero.
    pub(crate) fn all_zero(&mut self, from: u64, end: u64) -> io::Result<bool> {
        let mut pos = from;
        while pos < end {
            let n = (end - pos).min(READ_CHUNK as u64) as usize;
            if !self.ensure(pos, n, end)? {
                return Ok(false);
            }
            let start = (pos - self.buf_pos) as usize;
            if self.buf[start..start + n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            pos += n as u64;
        }
        Ok(true)
    }

    /// Makes `need` bytes from `pos` available in the buffer; false when the data (up to
    /// `end`) is shorter.
    fn ensure(&mut self, pos: u64, need: usize, end: u64) -> io::Result<bool> {
        let buffered = pos >= self.buf_pos && pos + need as u64 <= self.buf_pos + self.buf.len() as u64;
        if buffered {
            return Ok(true);
        }
        if pos + need as u64 > end {
            return Ok(false);
        }
        self.fill(pos, need.max(READ_CHUNK), end)?;
        Ok(self.buf.len() >= need)
    }

    /// Fills the buffer with up to `want` bytes from `pos`, not past `end`.
    fn fill(&mut self, pos: u64, want: usize, end: u64) -> io::Result<()> {
        let want = want.min((end - pos) as usize);
        self.buf.clear();
        self.buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut self.buf[got..], pos + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.truncate(got);
        self.buf_pos = pos;
        if self.buf.capacity() > 4 * READ_CHUNK && want <= READ_CHUNK {
            self.buf.shrink_to(READ_CHUNK); // after an unusually large record
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use bytes::Bytes;

    #[test]
    fn bits_set_get_count() {
        let mut bits = Bits::default();
        for i in 0..200 {
            bits.push(i % 3 == 0);
        }
        bits.set(1);
        bits.set(500); // past the end: ignored
        assert!(bits.get(0) && bits.get(1) && !bits.get(2) && bits.get(3));
        assert!(!bits.get(1000));
        assert_eq!(bits.count_ones(), 67 + 1);
    }

    #[test]
    fn names_sort_by_offset_and_foreign_files_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        for first in [10u64, 2, 300] {
            fs::write(segment_path(tmp.path(), first), SEGMENT_HEADER).unwrap();
        }
        fs::write(ack_path(tmp.path(), 2), ACK_HEADER).unwrap();
        fs::write(ack_path(tmp.path(), 7), ACK_HEADER).unwrap(); // orphan
        fs::write(tmp.path().join("12.seg"), b"").unwrap(); // not 20 digits
        fs::write(tmp.path().join("NAME"), b"q").unwrap();
        let (segments, orphans) = list(tmp.path()).unwrap();
        assert_eq!(segments, [2, 10, 300]);
        assert_eq!(orphans, [7]);
        assert_eq!(parse_name("00000000000000000042.seg", ".seg"), Some(42));
        assert_eq!(parse_name("0000000000000000004x.seg", ".seg"), None);
    }

    fn message(body: Vec<u8>) -> Message {
        Message {
            exchange: "x".into(),
            routing_key: "k".into(),
            properties: Bytes::new(),
            body: Bytes::from(body),
        }
    }

    #[test]
    fn the_reader_handles_records_larger_than_its_chunk() {
        let tmp = tempfile::tempdir().unwrap();
        let body = vec![7u8; READ_CHUNK * 2 + 5];
        let mut data = SEGMENT_HEADER.to_vec();
        record::encode(&mut data, 0, true, 0, None, &message(b"small".to_vec()), &[]);
        record::encode(&mut data, 1, true, 0, None, &message(body.clone()), &[]);
        record::encode(&mut data, 2, false, 0, None, &message(b"after".to_vec()), &[]);
        let path = segment_path(tmp.path(), 0);
        fs::write(&path, &data).unwrap();
        let mut reader = SegmentReader::new(File::open(&path).unwrap());
        let end = data.len() as u64;
        let mut pos = HEADER_LEN;
        let mut bodies = Vec::new();
        while let ReadAt::Record(r, len) = reader.read_at(pos, end).unwrap() {
            bodies.push(r.body.len());
            pos += len as u64;
        }
        assert_eq!(bodies, [5, body.len(), 5]);
        assert!(matches!(reader.read_at(pos, end).unwrap(), ReadAt::End));
        // Recovery agrees, and counts only the persistent records as pending.
        let r = recover(tmp.path(), 0, 0, None, &Committed::default(), &mut CorruptionStats::default())
            .unwrap()
            .unwrap();
        assert_eq!((r.records, r.pending, r.last_offset, r.len), (3, 2, Some(2), end));
    }

    #[test]
    fn records_whose_offsets_do_not_grow_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let mut data = SEGMENT_HEADER.to_vec();
        let mut starts = Vec::new();
        for offset in [5, 6, 6, 7, 9] {
            starts.push(data.len() as u64);
            record::encode(&mut data, offset, true, 0, None, &message(Vec::new()), &[]);
        }
        fs::write(segment_path(tmp.path(), 5), &data).unwrap();
        let mut found = CorruptionStats::default();
        let r = recover(tmp.path(), 5, 0, None, &Committed::default(), &mut found).unwrap().unwrap();
        assert_eq!((r.records, r.last_offset, r.pending), (4, Some(9), 4));
        assert_eq!(r.holes, [(starts[2], starts[3])]);
        assert_eq!((found.corrupt_records_skipped, found.corrupt_bytes_skipped), (1, starts[3] - starts[2]));
        // Offsets at or above the next segment's first are not this segment's.
        let r = recover(tmp.path(), 5, 0, Some(8), &Committed::default(), &mut found).unwrap().unwrap();
        assert_eq!((r.records, r.last_offset, r.len), (3, Some(7), starts[4]));
        // Records below where the previous segment ended: none is valid, so all of it is a
        // tail (not cut here: only the active segment's tail is cut, by `cut_tail`).
        let r = recover(tmp.path(), 5, 100, None, &Committed::default(), &mut found).unwrap().unwrap();
        assert_eq!((r.records, r.len), (0, HEADER_LEN));
        assert_eq!(fs::metadata(segment_path(tmp.path(), 5)).unwrap().len(), data.len() as u64);
        cut_tail(tmp.path(), 5, r.len).unwrap();
        assert_eq!(fs::metadata(segment_path(tmp.path(), 5)).unwrap().len(), HEADER_LEN);
    }
}
