//! Containing corruption: what recovery found damaged and worked around, counted for the store,
//! and damaged files copied aside for inspection.
//!
//! Recovery never gives up more than the damage costs: a record that fails its checksum is
//! skipped and reading resumes at the next valid record, a damaged header is rewritten, a damaged
//! ack entry costs that entry only. What it skipped is logged and counted here; before a damaged
//! file is changed in place (its header rewritten, its tail cut), a copy is kept next to it.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What the recovery of durable queue logs found damaged and worked around, since the store was
/// opened (every queue log opened so far counts; damage that stays on disk is found and counted
/// again by each open). Kept for the management API and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorruptionStats {
    /// Stretches of damaged segment data skipped to resume at the next valid record. Each held
    /// at least one lost record: the damaged one, or several adjacent ones.
    pub corrupt_records_skipped: u64,
    /// Bytes in those stretches.
    pub corrupt_bytes_skipped: u64,
    /// Segments whose data ended in bytes that are no whole, valid record, with no valid record
    /// after them: a write torn by a crash, or damage to the last records. The active segment's
    /// tail is truncated so appends continue at a record boundary.
    pub torn_tails: u64,
    /// Bytes in those tails.
    pub torn_tail_bytes: u64,
    /// Segment files with a damaged header whose records were recovered (the header rewritten).
    pub segment_headers_repaired: u64,
    /// Segment files with no valid record at all, set aside as `*.corrupt` with their ack file
    /// (the queue goes on without them).
    pub segments_set_aside: u64,
    /// Ack-file entries that failed their checksum and were skipped: the message each named may
    /// come back (at most one per entry).
    pub corrupt_ack_entries_skipped: u64,
    /// Ack files with a damaged header whose entries were kept (the header rewritten).
    pub ack_headers_repaired: u64,
    /// Ack files with a damaged header and no valid entry, set aside as `*.corrupt`.
    pub ack_files_set_aside: u64,
    /// Damaged files copied aside (`*.corrupt`, `*.corrupt.2`, ...) for inspection.
    pub files_copied_aside: u64,
}

impl CorruptionStats {
    /// Whether nothing was found damaged.
    pub fn is_clean(&self) -> bool {
        *self == CorruptionStats::default()
    }

    fn fields(&self) -> [u64; FIELDS] {
        [
            self.corrupt_records_skipped,
            self.corrupt_bytes_skipped,
            self.torn_tails,
            self.torn_tail_bytes,
            self.segment_headers_repaired,
            self.segments_set_aside,
            self.corrupt_ack_entries_skipped,
            self.ack_headers_repaired,
            self.ack_files_set_aside,
            self.files_copied_aside,
        ]
    }

    fn from_fields(f: [u64; FIELDS]) -> CorruptionStats {
        CorruptionStats {
            corrupt_records_skipped: f[0],
            corrupt_bytes_skipped: f[1],
            torn_tails: f[2],
            torn_tail_bytes: f[3],
            segment_headers_repaired: f[4],
            segments_set_aside: f[5],
            corrupt_ack_entries_skipped: f[6],
            ack_headers_repaired: f[7],
            ack_files_set_aside: f[8],
            files_copied_aside: f[9],
        }
    }
}

const FIELDS: usize = 10;

/// The store-wide [`CorruptionStats`], as atomics: logs recovering on different threads add
/// to them without a lock.
#[derive(Debug, Default)]
pub(crate) struct CorruptionCounters {
    counts: [AtomicU64; FIELDS],
}

impl CorruptionCounters {
    /// Adds what one recovery found.
    pub(crate) fn add(&self, found: &CorruptionStats) {
        for (counter, n) in self.counts.iter().zip(found.fields()) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> CorruptionStats {
        CorruptionStats::from_fields(std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)))
    }
}

/// `<path>.corrupt` for `n == 1`, `<path>.corrupt.<n>` after it.
fn aside_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    if n > 1 {
        name.push(format!(".{n}"));
    }
    PathBuf::from(name)
}

/// Copies more than this many are not kept: a file damaged again and again (or a bug that
/// makes every restart see new damage) must not fill the disk with copies.
const MAX_COPIES: u32 = 8;

/// The first `*.corrupt[.n]` name not taken with `n <= limit`, and the ones taken.
fn free_aside_path(path: &Path, limit: u32) -> (Option<PathBuf>, Vec<PathBuf>) {
    let mut taken = Vec::new();
    for n in 1..=limit {
        let candidate = aside_path(path, n);
        if !candidate.exists() {
            return (Some(candidate), taken);
        }
        taken.push(candidate);
    }
    (None, taken)
}

/// Whether `copy` holds the same bytes as `file` in every range of `damaged`.
fn same_damage(file: &fs::File, copy: &Path, damaged: &[(u64, u64)]) -> io::Result<bool> {
    let copy = fs::File::open(copy)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for &(start, end) in damaged {
        let len = (end - start) as usize;
        a.resize(len, 0);
        b.resize(len, 0);
        file.read_exact_at(&mut a, start)?;
        if copy.read_exact_at(&mut b, start).is_err() || a != b {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Copies `path` aside for inspection before it is changed in place, unless an earlier copy
/// already holds the same bytes in every `damaged` range (the same damage, found again by a
/// later open). Returns the copy made, if any. A copy that cannot be made is logged, not an
/// error: containing the damage matters more than keeping evidence of it.
pub(crate) fn copy_aside(
    path: &Path,
    damaged: &[(u64, u64)],
    found: &mut CorruptionStats,
) -> Option<PathBuf> {
    let (free, taken) = free_aside_path(path, MAX_COPIES);
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read a damaged file to copy it aside");
            return None;
        }
    };
    if taken.iter().any(|copy| same_damage(&file, copy, damaged).unwrap_or(false)) {
        return None; // already kept
    }
    let Some(aside) = free else {
        tracing::warn!(path = %path.display(), copies = MAX_COPIES, "damaged file not copied aside: enough copies kept");
        return None;
    };
    match fs::copy(path, &aside) {
        Ok(_) => {
            tracing::warn!(path = %path.display(), copy = %aside.display(), "damaged file copied aside for inspection");
            found.files_copied_aside += 1;
            Some(aside)
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot copy a damaged file aside");
            let _ = fs::remove_file(&aside);
            None
        }
    }
}

/// Renames a file that holds nothing usable to the first free `*.corrupt[.n]` name (never over
/// an earlier copy). Unlike copies these cannot pile up: the file is gone from its place.
pub(crate) fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let (free, _) = free_aside_path(path, u32::MAX);
    let aside = free.unwrap_or_else(|| aside_path(path, u32::MAX));
    fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_every_field() {
        let counters = CorruptionCounters::default();
        let one = CorruptionStats::from_fields(std::array::from_fn(|i| i as u64 + 1));
        assert_eq!(one.fields(), std::array::from_fn(|i| i as u64 + 1));
        counters.add(&one);
        counters.add(&one);
        assert_eq!(counters.snapshot().fields(), std::array::from_fn(|i| 2 * (i as u64 + 1)));
        assert!(!counters.snapshot().is_clean());
        assert!(CorruptionStats::default().is_clean());
    }

    #[test]
    fn the_same_damage_is_copied_once_and_new_damage_again() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f.seg");
        fs::write(&path, b"0123456789").unwrap();
        let mut found = CorruptionStats::default();
        assert_eq!(copy_aside(&path, &[(2, 4)], &mut found), Some(aside_path(&path, 1)));
        // Found again after the file grew: its damaged bytes are the same, so no new copy.
        fs::write(&path, b"0123456789abc").unwrap();
        assert_eq!(copy_aside(&path, &[(2, 4)], &mut found), None);
        // New damage elsewhere: a second copy, beside the first.
        fs::write(&path, b"0123456789XYZ").unwrap();
        assert_eq!(copy_aside(&path, &[(2, 4), (10, 13)], &mut found), Some(aside_path(&path, 2)));
        assert_eq!(fs::read(aside_path(&path, 1)).unwrap(), b"0123456789");
        assert_eq!(found.files_copied_aside, 2);
        // Setting a file aside takes the next free name, never an earlier copy's.
        set_aside(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(fs::read(aside_path(&path, 3)).unwrap(), b"0123456789XYZ");
    }
}
