//! One segment of a queue log on disk: its files, its read cursor and its recovery.
//!
//! A segment is `<first offset, 20 digits>.seg` (a header, then records) and, once something
//! in it is acknowledged, `<first offset>.ack` (a header, then fixed-size ack entries). Recovery
//! reads a segment up to its last whole record with a valid checksum and offsets that only grow,
//! truncates whatever follows (a torn write or corruption), loads the ack file the same way, and
//! returns which records are still waiting.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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
    /// Bytes of valid data (header included): the file's length after recovery.
    pub len: u64,
    /// Whole valid records.
    pub records: u64,
    /// The highest offset of a record in the segment.
    pub last_offset: Option<u64>,
    /// Records to skip when reading it back (by position): acknowledged or not persistent.
    pub skip: Bits,
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
}

/// Recovers segment `first` of `dir`, whose records must have offsets of at least
/// `min_offset`. Returns `None` when the file is not a segment at all (it is set aside as
/// `*.corrupt` with its ack file, and the queue goes on without it).
pub(crate) fn recover(dir: &Path, first: u64, min_offset: u64) -> io::Result<Option<Recovered>> {
    let path = segment_path(dir, first);
    let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
    let file_len = file.metadata()?.len();
    let mut header = [0u8; HEADER_LEN as usize];
    if file_len < HEADER_LEN {
        // Created, but the crash came before its header was written: an empty segment.
        file.set_len(0)?;
        file.write_all(SEGMENT_HEADER)?;
        let mut skip = Bits::default();
        let acks = load_acks(dir, first, &[], &mut skip)?;
        return Ok(Some(Recovered {
            len: HEADER_LEN,
            records: 0,
            last_offset: None,
            skip,
            pending: 0,
            pending_body_bytes: 0,
            returns: Vec::new(),
            highest_acked: acks.highest_acked,
        }));
    }
    file.read_exact(&mut header)?;
    if &header != SEGMENT_HEADER {
        tracing::warn!(path = %path.display(), "not a segment file (bad header); set aside as .corrupt");
        set_aside(&path)?;
        let ack = ack_path(dir, first);
        if ack.exists() {
            set_aside(&ack)?;
        }
        return Ok(None);
    }

    // Records: offsets and persistence, in order, up to the first one that is not whole and valid.
    let mut reader = SegmentReader::new(file.try_clone()?);
    let mut offsets = Vec::new();
    let mut body_lens: Vec<u32> = Vec::new();
    let mut skip = Bits::default();
    let mut pos = HEADER_LEN;
    let mut floor = min_offset.max(first);
    let cut_reason = loop {
        match reader.read_at(pos, file_len) {
            Ok(ReadAt::Record(r, len)) => {
                if r.offset < floor {
                    break Some("record offsets do not grow");
                }
                floor = r.offset + 1;
                offsets.push(r.offset);
                body_lens.push(r.body.len() as u32);
                skip.push(!r.persistent());
                pos += len as u64;
            }
            Ok(ReadAt::End) => break None,
            Ok(ReadAt::Torn) => break Some("torn record at the end"),
            Ok(ReadAt::Corrupt(why)) => break Some(why),
            Err(e) => return Err(e),
        }
    };
    if let Some(reason) = cut_reason {
        tracing::warn!(
            path = %path.display(),
            valid_bytes = pos,
            cut_bytes = file_len - pos,
            reason,
            "truncating segment after its last valid record"
        );
        file.set_len(pos)?;
    }

    // Acks: mark acknowledged records to skip.
    let acks = load_acks(dir, first, &offsets, &mut skip)?;
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
        len: pos,
        records,
        last_offset: offsets.last().copied(),
        skip,
        pending,
        pending_body_bytes,
        returns,
        highest_acked: acks.highest_acked,
    }))
}

fn set_aside(path: &Path) -> io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    fs::rename(path, aside)
}

/// What a segment's ack file says beyond the skip bits.
#[derive(Default)]
struct Acks {
    highest_acked: Option<u64>,
    /// Returns per offset, ascending (records of the segment only).
    returns: Vec<(u64, u32)>,
}

/// Reads `first`'s ack file (if any), truncating a torn or corrupt tail, sets the skip bit
/// of every acknowledged record and counts the returns of each.
fn load_acks(dir: &Path, first: u64, offsets: &[u64], skip: &mut Bits) -> io::Result<Acks> {
    let path = ack_path(dir, first);
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Acks::default()),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    if data.len() < HEADER_LEN as usize || data[..HEADER_LEN as usize] != ACK_HEADER[..] {
        tracing::warn!(path = %path.display(), "ack file has no valid header; its acks are lost");
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(ACK_HEADER)?;
        return Ok(Acks::default());
    }
    let mut valid = HEADER_LEN as usize;
    let mut acks = Acks::default();
    let mut returned: Vec<u64> = Vec::new();
    for entry in data[valid..].chunks(ACK_ENTRY_LEN) {
        let Ok(entry) = <&[u8; ACK_ENTRY_LEN]>::try_from(entry) else { break };
        match record::decode_ack(entry) {
            None => break,
            Some(record::AckEntry::Settled(offset)) => {
                acks.highest_acked = acks.highest_acked.max(Some(offset));
                match offsets.binary_search(&offset) {
                    Ok(i) => skip.set(i as u64),
                    Err(_) => {
                        tracing::warn!(path = %path.display(), offset, "ack of an offset not in its segment; ignored")
                    }
                }
            }
            Some(record::AckEntry::Returned(offset)) => returned.push(offset),
        }
        valid += ACK_ENTRY_LEN;
    }
    returned.sort_unstable();
    for offset in returned {
        match acks.returns.last_mut() {
            Some((last, n)) if *last == offset => *n = n.saturating_add(1),
            _ => acks.returns.push((offset, 1)),
        }
    }
    if valid < data.len() {
        tracing::warn!(
            path = %path.display(),
            valid_bytes = valid,
            cut_bytes = data.len() - valid,
            "truncating ack file after its last valid entry"
        );
        file.set_len(valid as u64)?;
    }
    Ok(acks)
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
        record::encode(&mut data, 0, true, 0, &message(b"small".to_vec()));
        record::encode(&mut data, 1, true, 0, &message(body.clone()));
        record::encode(&mut data, 2, false, 0, &message(b"after".to_vec()));
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
        let r = recover(tmp.path(), 0, 0).unwrap().unwrap();
        assert_eq!((r.records, r.pending, r.last_offset, r.len), (3, 2, Some(2), end));
    }

    #[test]
    fn offsets_that_do_not_grow_are_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let mut data = SEGMENT_HEADER.to_vec();
        for offset in [5, 6, 6, 7] {
            record::encode(&mut data, offset, true, 0, &message(Vec::new()));
        }
        fs::write(segment_path(tmp.path(), 5), &data).unwrap();
        let r = recover(tmp.path(), 5, 0).unwrap().unwrap();
        assert_eq!((r.records, r.last_offset), (2, Some(6)));
        // Records below where the previous segment ended: the segment is cut whole.
        let r = recover(tmp.path(), 5, 100).unwrap().unwrap();
        assert_eq!((r.records, r.len), (0, HEADER_LEN));
    }
}
