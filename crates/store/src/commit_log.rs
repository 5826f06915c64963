//! The commit log: which transactions committed, the one fact that decides after a crash whether
//! a transaction's records and acks in the queue logs count (see [`crate::transactions`]).
//!
//! `<data_dir>/transactions.log` is a header, then fixed-size entries, all integers
//! little-endian:
//!
//! ```text
//! u32 kind     1: epoch (`low` is the epoch a run of the broker started), 2: committed
//!              (every transaction id from `low` to `high`, inclusive, that wrote anything
//!              committed: ids of transactions that wrote nothing need no record)
//! u32 crc32c   over kind, low and high
//! u64 low
//! u64 high
//! ```
//!
//! Entries are appended in commit order and read back up to the first one that is torn or
//! damaged: what follows it is cut, so the committed set is always a prefix of what was
//! written (a transaction that committed after another never survives without it). Each run
//! starts a new epoch, so a transaction id is never reused for another transaction. When the file
//! grows past [`COMPACT_AT`] it is rewritten (temporary file, fsync, rename, directory fsync) as
//! the ranges it stands for: one per epoch and per transaction that failed to commit.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "transactions.log";
const TEMP_NAME: &str = "transactions.log.tmp";
const HEADER: &[u8; 8] = b"WRNTXL\x00\x01";
const ENTRY_LEN: usize = 24;
const KIND_EPOCH: u32 = 1;
const KIND_COMMITTED: u32 = 2;
/// The file is rewritten as ranges once it is this long.
const COMPACT_AT: u64 = 1 << 20;
/// Bits of a transaction id that count transactions within an epoch (ids stay below 2^62,
/// what an ack entry can name).
pub(crate) const EPOCH_SHIFT: u32 = 30;
/// Epochs stay below this (2^32).
const EPOCH_LIMIT: u64 = 1 << 32;

/// The epoch after `last`: the clock's seconds when they are higher, so that a commit log lost
/// or damaged beyond reading still does not lead to an id being used twice.
fn next_epoch_after(last: u64) -> u64 {
    let seconds =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (last + 1).max(seconds).min(EPOCH_LIMIT - 1)
}

/// Transaction ids that committed, as sorted, disjoint, inclusive ranges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Committed(Vec<(u64, u64)>);

impl Committed {
    pub(crate) fn contains(&self, txid: u64) -> bool {
        let i = self.0.partition_point(|&(low, _)| low <= txid);
        i > 0 && txid <= self.0[i - 1].1
    }

    fn from_unsorted(mut ranges: Vec<(u64, u64)>) -> Committed {
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (low, high) in ranges {
            match merged.last_mut() {
                Some(last) if low <= last.1.saturating_add(1) => last.1 = last.1.max(high),
                _ => merged.push((low, high)),
            }
        }
        Committed(merged)
    }
}

/// The open commit log of a data directory.
#[derive(Debug)]
pub(crate) struct CommitLog {
    dir: PathBuf,
    file: File,
    len: u64,
    sync: bool,
    epoch: u64,
    /// Everything committed, as the ranges a rewrite would write: merged only within one epoch
    /// and never across a transaction that wrote something and then failed to commit.
    ranges: Vec<(u64, u64)>,
    /// Whether the last range belongs to this run's epoch (a new commit may extend it).
    last_range_current: bool,
    /// Failed transactions of this run above the last commit: a range must not cover them.
    failed_above: Vec<u64>,
    /// A write or fsync failed: what the file holds is not trusted; the next append rewrites it.
    rewrite: bool,
}

fn entry(kind: u32, low: u64, high: u64) -> [u8; ENTRY_LEN] {
    let mut e = [0u8; ENTRY_LEN];
    e[0..4].copy_from_slice(&kind.to_le_bytes());
    e[8..16].copy_from_slice(&low.to_le_bytes());
    e[16..24].copy_from_slice(&high.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&e[0..4]), &e[8..24]);
    e[4..8].copy_from_slice(&crc.to_le_bytes());
    e
}

fn parse(e: &[u8]) -> Option<(u32, u64, u64)> {
    let kind = u32::from_le_bytes(e.get(0..4)?.try_into().ok()?);
    let crc = u32::from_le_bytes(e.get(4..8)?.try_into().ok()?);
    let low = u64::from_le_bytes(e.get(8..16)?.try_into().ok()?);
    let high = u64::from_le_bytes(e.get(16..24)?.try_into().ok()?);
    let ok = crc32c::crc32c_append(crc32c::crc32c(&e[0..4]), &e[8..24]) == crc
        && matches!(kind, KIND_EPOCH | KIND_COMMITTED)
        && low <= high;
    ok.then_some((kind, low, high))
}

impl CommitLog {
    /// Opens (creating it if needed) the commit log of `dir`: reads what committed, cuts what
    /// follows the first bad entry, and starts a new epoch (durable before this returns when
    /// `sync`).
    pub(crate) fn open(dir: &Path, sync: bool) -> io::Result<(CommitLog, Committed)> {
        let path = dir.join(FILE_NAME);
        let _ = fs::remove_file(dir.join(TEMP_NAME));
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let mut ranges = Vec::new();
        let mut last_epoch = 0;
        let mut valid = HEADER.len();
        if data.get(..HEADER.len()) == Some(&HEADER[..]) {
            for e in data[HEADER.len()..].chunks(ENTRY_LEN) {
                let Some((kind, low, high)) = parse(e) else { break };
                match kind {
                    KIND_EPOCH => last_epoch = last_epoch.max(low),
                    _ => ranges.push((low, high)),
                }
                valid += ENTRY_LEN;
            }
        } else if !data.is_empty() {
            tracing::error!(path = %path.display(), bytes = data.len(), "the commit log has a bad header: transactions written before are taken as not committed");
        }
        if valid < data.len() && data.len() >= HEADER.len() {
            tracing::warn!(path = %path.display(), at = valid, bytes = data.len() - valid, "cutting the commit log after its last whole entry");
        }
        let committed = Committed::from_unsorted(ranges);
        let mut log = CommitLog {
            dir: dir.to_owned(),
            file,
            len: 0,
            sync,
            epoch: next_epoch_after(last_epoch),
            ranges: committed.0.clone(),
            last_range_current: false,
            failed_above: Vec::new(),
            rewrite: false,
        };
        if data.get(..HEADER.len()) == Some(&HEADER[..]) {
            log.file.set_len(valid as u64)?;
            log.len = valid as u64;
            log.write(&entry(KIND_EPOCH, log.epoch, log.epoch))?;
        } else {
            log.rewrite_file()?;
        }
        if sync {
            File::open(dir)?.sync_all()?;
        }
        Ok((log, committed))
    }

    /// The epoch of this run: the high bits of its transaction ids.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Starts a new epoch (this run used up the ids of its current one).
    pub(crate) fn next_epoch(&mut self) -> io::Result<u64> {
        self.epoch = next_epoch_after(self.epoch);
        self.last_range_current = false;
        self.failed_above.clear();
        self.write(&entry(KIND_EPOCH, self.epoch, self.epoch))?;
        Ok(self.epoch)
    }

    /// Transaction `txid` wrote to the queue logs and will never commit.
    pub(crate) fn failed(&mut self, txid: u64) {
        self.failed_above.push(txid);
    }

    /// Records that `txids` (ascending, each above every id committed before) committed:
    /// durable when this returns, if the log syncs.
    /// On an error they did not commit (and a later rewrite leaves them out).
    pub(crate) fn commit(&mut self, txids: &[u64]) -> io::Result<()> {
        let ranges_before = (self.ranges.len(), self.ranges.last().copied(), self.last_range_current);
        let (len, _, current) = ranges_before;
        let failed_before = self.failed_above.clone();
        for &txid in txids {
            self.note_committed(txid);
        }
        // Each entry names the whole range its commits extend: ids in the range that did not
        // commit wrote nothing, so the file stays as compact as the ranges.
        let first_changed = if current { len.saturating_sub(1) } else { len };
        let first_changed = first_changed.min(self.ranges.len());
        let entries: Vec<u8> = self.ranges[first_changed..]
            .iter()
            .flat_map(|&(low, high)| entry(KIND_COMMITTED, low, high))
            .collect();
        let result = if self.rewrite || self.len + entries.len() as u64 > COMPACT_AT {
            self.rewrite_file()
        } else {
            self.write(&entries)
        };
        if result.is_err() {
            let (len, last, current) = ranges_before;
            self.ranges.truncate(len);
            if let (Some(range), Some(last)) = (self.ranges.last_mut(), last) {
                *range = last;
            }
            self.last_range_current = current;
            self.failed_above = failed_before;
            self.failed_above.extend_from_slice(txids);
        }
        result
    }

    fn note_committed(&mut self, txid: u64) {
        let crosses_failure = self.failed_above.iter().any(|&f| f < txid);
        self.failed_above.retain(|&f| f > txid);
        match self.ranges.last_mut() {
            Some(last) if self.last_range_current && !crosses_failure => last.1 = txid,
            _ => self.ranges.push((txid, txid)),
        }
        self.last_range_current = true;
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let result = (|| {
            crate::faults::inject("store::commit_log")?;
            self.file.write_all(bytes)?;
            if self.sync {
                self.file.sync_data()?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // After a failed write or fsync the file's pages are not trusted: rewrite it whole.
                self.rewrite = true;
                Err(e)
            }
        }
    }

    /// Replaces the file with one holding the current epoch and the committed ranges.
    fn rewrite_file(&mut self) -> io::Result<()> {
        let temp = self.dir.join(TEMP_NAME);
        let mut bytes = Vec::with_capacity(HEADER.len() + (self.ranges.len() + 1) * ENTRY_LEN);
        bytes.extend_from_slice(HEADER);
        bytes.extend_from_slice(&entry(KIND_EPOCH, self.epoch, self.epoch));
        for &(low, high) in &self.ranges {
            bytes.extend_from_slice(&entry(KIND_COMMITTED, low, high));
        }
        let result = (|| {
            crate::faults::inject("store::commit_log")?;
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
            file.write_all(&bytes)?;
            if self.sync {
                file.sync_data()?;
            }
            fs::rename(&temp, self.dir.join(FILE_NAME))?;
            if self.sync {
                File::open(&self.dir)?.sync_all()?;
            }
            OpenOptions::new().append(true).open(self.dir.join(FILE_NAME))
        })();
        match result {
            Ok(file) => {
                self.file = file;
                self.len = bytes.len() as u64;
                self.rewrite = false;
                Ok(())
            }
            Err(e) => {
                self.rewrite = true;
                Err(e)
            }
        }
    }
}

/// The path of the commit log in `dir`, for tests that damage it.
#[cfg(test)]
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txid(epoch: u64, n: u64) -> u64 {
        epoch << EPOCH_SHIFT | n
    }

    #[test]
    fn commits_survive_reopening_and_each_run_gets_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, committed) = CommitLog::open(dir.path(), true).unwrap();
        assert_eq!(committed, Committed::default());
        let e = log.epoch();
        log.commit(&[txid(e, 1), txid(e, 2)]).unwrap();
        log.failed(txid(e, 3));
        log.commit(&[txid(e, 5)]).unwrap();
        drop(log);
        let (log, committed) = CommitLog::open(dir.path(), true).unwrap();
        assert!(log.epoch() > e);
        assert!(committed.contains(txid(e, 1)) && committed.contains(txid(e, 2)));
        assert!(!committed.contains(txid(e, 3)), "failed");
        assert!(!committed.contains(txid(e, 4)), "a range never reaches across a failed one");
        assert!(committed.contains(txid(e, 5)));
        assert!(!committed.contains(txid(e, 6)) && !committed.contains(txid(log.epoch(), 1)));
    }

    #[test]
    fn a_torn_or_damaged_entry_ends_the_committed_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = CommitLog::open(dir.path(), false).unwrap();
        log.commit(&[txid(1, 1)]).unwrap();
        log.commit(&[txid(1, 3)]).unwrap();
        log.commit(&[txid(1, 5)]).unwrap();
        drop(log);
        let full = fs::read(path(dir.path())).unwrap();
        // Every cut: the commits whose entries are whole survive, nothing after a cut does.
        for cut in HEADER.len()..full.len() {
            fs::write(path(dir.path()), &full[..cut]).unwrap();
            let (_, committed) = CommitLog::open(dir.path(), false).unwrap();
            let whole = (cut - HEADER.len()) / ENTRY_LEN; // the epoch entry, then one per commit
            for (k, n) in [1, 3, 5].into_iter().enumerate() {
                assert_eq!(committed.contains(txid(1, n)), whole > k + 1, "cut at {cut}");
            }
        }
        // A damaged middle entry hides what follows it too.
        let mut bad = full.clone();
        bad[HEADER.len() + 2 * ENTRY_LEN + 9] ^= 1;
        fs::write(path(dir.path()), &bad).unwrap();
        let (_, committed) = CommitLog::open(dir.path(), false).unwrap();
        assert!(committed.contains(txid(1, 1)));
        assert!(!committed.contains(txid(1, 3)) && !committed.contains(txid(1, 5)));
    }

    #[test]
    fn compaction_keeps_every_commit_and_no_failed_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = CommitLog::open(dir.path(), false).unwrap();
        // Commit 1, 3, 5, ... (the even ones wrote nothing) and fail 40_001: far past COMPACT_AT.
        let mut n = 1;
        while n < 100_000 {
            if n == 40_001 {
                log.failed(txid(1, n));
            } else {
                log.commit(&[txid(1, n)]).unwrap();
            }
            n += 2;
        }
        assert!(fs::metadata(path(dir.path())).unwrap().len() < COMPACT_AT);
        drop(log);
        let (log, committed) = CommitLog::open(dir.path(), false).unwrap();
        assert!(committed.contains(txid(1, 1)) && committed.contains(txid(1, 99_999)));
        assert!(committed.contains(txid(1, 39_999)) && committed.contains(txid(1, 40_003)));
        assert!(!committed.contains(txid(1, 40_001)), "a failed transaction stays uncommitted");
        assert!(!committed.contains(txid(1, 100_001)) && !committed.contains(txid(2, 1)));
        assert!(log.ranges.len() <= 3, "{:?}", log.ranges);
    }

    #[test]
    fn a_bad_header_starts_a_fresh_log() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(path(dir.path()), b"garbage!garbage!garbage!").unwrap();
        let (mut log, committed) = CommitLog::open(dir.path(), false).unwrap();
        assert_eq!(committed, Committed::default());
        log.commit(&[txid(1, 7)]).unwrap();
        drop(log);
        let (_, committed) = CommitLog::open(dir.path(), false).unwrap();
        assert!(committed.contains(txid(1, 7)));
    }
}
