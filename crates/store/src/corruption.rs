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
    /// Ack files that ended in part of an entry (a write torn by a crash), cut back to their
    /// last whole entry.
    pub torn_ack_tails: u64,
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
            self.torn_ack_tails,
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
            torn_ack_tails: f[10],
        }
    }
}

const FIELDS: usize = 11;

/// The store-wide [`CorruptionStats`], as atomics: logs recovering on different threads add
/// to them without a lock. Readers (metrics) hold it through [`DiskStore::corruption_counters`]
/// without holding the store.
///
/// [`DiskStore::corruption_counters`]: crate::DiskStore::corruption_counters
#[derive(Debug, Default)]
pub struct CorruptionCounters {
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

    /// The counts so far.
    pub fn snapshot(&self) -> CorruptionStats {
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
    use crate::segment::HEADER_LEN;

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

    // ---- containment, end to end: damage a queue's files, reopen the store, read it back ----

    use crate::{DiskConfig, DiskStore, Message, QueueLog, SyncMode};
    use bytes::Bytes;

    fn config() -> DiskConfig {
        DiskConfig {
            segment_size: 4096,
            memory_window_bytes: 1 << 20,
            memory_window_messages: 4,
            sync: SyncMode::Never,
        }
    }

    fn msg(body: &str) -> Message {
        Message {
            exchange: "amq.direct".into(),
            routing_key: "rk".into(),
            properties: Bytes::from_static(&[0x10, 0x00, 2]),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    /// Encoded size of a record made by `msg(body)`.
    fn record_len(body: &str) -> usize {
        8 + 23 + "amq.direct".len() + "rk".len() + 3 + body.len()
    }

    fn bodies(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("message-{i}-{}", "p".repeat(i * 3))).collect()
    }

    /// A durable queue holding `all` as persistent messages, those at `acked` settled (the
    /// rest delivered but not settled, so they come back). Returns the queue's directory.
    fn queue(root: &Path, all: &[String], acked: &[usize]) -> PathBuf {
        let store = DiskStore::open(root, config()).unwrap();
        let mut log = store.open_log("/", "q", true).unwrap();
        for b in all {
            log.append(msg(b), None, true).unwrap();
        }
        for i in 0..all.len() {
            let m = log.pop_front().unwrap();
            if acked.contains(&i) {
                log.settle(m.offset, m.stored);
            }
        }
        log.flush().unwrap();
        log.dir().to_owned()
    }

    fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        v.sort();
        v
    }

    /// Removes the copies earlier rounds of a test kept aside.
    fn clear_copies(dir: &Path) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            if entry.file_name().to_string_lossy().contains(".corrupt") {
                fs::remove_file(entry.path()).unwrap();
            }
        }
    }

    fn copies(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt"))
            .count()
    }

    /// Opens the store on `root`, appends `extra` to the queue, and drains it (through the
    /// window: recovered messages are read back from disk as it empties) without settling.
    /// Returns the bodies in delivery order and the store's corruption stats.
    fn reopen(root: &Path, extra: &[&str]) -> (Vec<String>, CorruptionStats) {
        let store = DiskStore::open(root, config()).unwrap();
        let mut log = store.open_log("/", "q", true).unwrap();
        for b in extra {
            log.append(msg(b), None, true).unwrap();
        }
        log.flush().unwrap();
        let n = log.len();
        let got: Vec<String> = std::iter::from_fn(|| log.pop_front())
            .map(|m| String::from_utf8(m.message.body.to_vec()).unwrap())
            .collect();
        assert_eq!(got.len(), n, "len() counted exactly what was read back");
        (got, store.corruption_stats())
    }

    /// `all` without the indices in `lost`.
    fn except(all: &[String], lost: &[usize]) -> Vec<String> {
        all.iter().enumerate().filter(|(i, _)| !lost.contains(i)).map(|(_, b)| b.clone()).collect()
    }

    #[test]
    fn a_flipped_byte_anywhere_in_a_segment_costs_at_most_its_own_record() {
        let tmp = tempfile::tempdir().unwrap();
        let all = bodies(6);
        let acked = [1, 4];
        let dir = queue(tmp.path(), &all, &acked);
        let [seg] = files(&dir, "seg").try_into().unwrap();
        let [ack] = files(&dir, "ack").try_into().unwrap();
        let (seg_orig, ack_orig) = (fs::read(&seg).unwrap(), fs::read(&ack).unwrap());
        // Where each record starts, and the end of the last.
        let mut starts = vec![HEADER_LEN as usize];
        for b in &all {
            starts.push(starts.last().unwrap() + record_len(b));
        }
        assert_eq!(*starts.last().unwrap(), seg_orig.len());
        for i in 0..seg_orig.len() {
            fs::write(&seg, &seg_orig).unwrap();
            fs::write(&ack, &ack_orig).unwrap();
            clear_copies(&dir);
            let mut bad = seg_orig.clone();
            bad[i] ^= 0xFF;
            fs::write(&seg, &bad).unwrap();
            // The record holding byte i, if any (none for the header).
            let hit = starts.windows(2).position(|w| (w[0]..w[1]).contains(&i));
            let lost: Vec<usize> = acked.iter().copied().chain(hit).collect();
            let kept = except(&all, &lost);
            let (got, found) = reopen(tmp.path(), &["after"]);
            assert_eq!(got, [&kept[..], &["after".to_owned()]].concat(), "flipped byte {i}");
            match hit {
                None => assert_eq!(found.segment_headers_repaired, 1, "byte {i}"),
                Some(5) => assert_eq!(found.torn_tails, 1, "byte {i}: the last record"),
                Some(_) => {
                    assert_eq!(found.corrupt_records_skipped, 1, "byte {i}");
                    assert_eq!(found.corrupt_bytes_skipped, record_len(&all[hit.unwrap()]) as u64);
                    assert_eq!(fs::read(&seg).unwrap()[..bad.len()], bad[..], "not changed in place");
                }
            }
            assert!(copies(&dir) <= 1, "byte {i}");
            // Once more: the same damage (if it is still there) is found again, but not copied
            // again; what was appended after it is read back too.
            let (again, found) = reopen(tmp.path(), &[]);
            assert_eq!(again, got, "flipped byte {i}, second open");
            assert!(copies(&dir) <= 1, "byte {i}: no second copy of the same damage");
            assert_eq!(found.files_copied_aside, 0, "byte {i}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Several damaged bytes anywhere: exactly the records none of them touched survive.
        #[test]
        fn scattered_damage_costs_exactly_the_records_it_touches(
            damage in proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..5),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let all = bodies(8);
            let dir = queue(tmp.path(), &all, &[2, 5]);
            let [seg] = files(&dir, "seg").try_into().unwrap();
            let mut data = fs::read(&seg).unwrap();
            let mut starts = vec![HEADER_LEN as usize];
            for b in &all {
                starts.push(starts.last().unwrap() + record_len(b));
            }
            let mut lost = vec![2, 5];
            for (at, xor) in damage {
                let i = ((data.len() as f64 * at) as usize).min(data.len() - 1);
                data[i] ^= xor;
                lost.extend(starts.windows(2).position(|w| (w[0]..w[1]).contains(&i)));
            }
            fs::write(&seg, &data).unwrap();
            let (got, _) = reopen(tmp.path(), &[]);
            proptest::prop_assert_eq!(got, except(&all, &lost));
        }
    }

    #[test]
    fn a_flipped_byte_anywhere_in_an_ack_file_costs_at_most_its_own_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let all = bodies(6);
        let acked = [1, 3, 4];
        let dir = queue(tmp.path(), &all, &acked);
        let [ack] = files(&dir, "ack").try_into().unwrap();
        let ack_orig = fs::read(&ack).unwrap();
        assert_eq!(ack_orig.len(), HEADER_LEN as usize + 3 * crate::record::ACK_ENTRY_LEN);
        for i in 0..ack_orig.len() {
            fs::write(&ack, &ack_orig).unwrap();
            clear_copies(&dir);
            let mut bad = ack_orig.clone();
            bad[i] ^= 0xFF;
            fs::write(&ack, &bad).unwrap();
            // The entry holding byte i, if any: its message comes back.
            let entry =
                (i >= HEADER_LEN as usize).then(|| (i - HEADER_LEN as usize) / crate::record::ACK_ENTRY_LEN);
            let still_acked: Vec<usize> =
                acked.iter().enumerate().filter(|&(j, _)| Some(j) != entry).map(|(_, &a)| a).collect();
            let (got, found) = reopen(tmp.path(), &[]);
            assert_eq!(got, except(&all, &still_acked), "flipped byte {i}");
            match entry {
                None => assert_eq!(found.ack_headers_repaired, 1, "byte {i}"),
                Some(_) => assert_eq!(found.corrupt_ack_entries_skipped, 1, "byte {i}"),
            }
            assert_eq!(copies(&dir), 1, "byte {i}: the damaged ack file is copied aside");
            // Acks written after the damage still count at the next open.
            let store = DiskStore::open(tmp.path(), config()).unwrap();
            let mut log = store.open_log("/", "q", true).unwrap();
            let m = log.pop_front().unwrap();
            log.settle(m.offset, m.stored);
            log.flush().unwrap();
            drop((log, store));
            let (again, found) = reopen(tmp.path(), &[]);
            assert_eq!(again, got[1..], "flipped byte {i}, second open");
            assert_eq!((found.files_copied_aside, copies(&dir)), (0, 1), "byte {i}: copied once");
        }
    }

    #[test]
    fn a_torn_tail_of_the_active_segment_is_cut_and_appends_continue_after_it() {
        let tmp = tempfile::tempdir().unwrap();
        let all = bodies(5);
        let dir = queue(tmp.path(), &all, &[]);
        let [seg] = files(&dir, "seg").try_into().unwrap();
        let original = fs::read(&seg).unwrap();
        let last_start = original.len() - record_len(&all[4]);
        for cut in last_start + 1..original.len() {
            fs::write(&seg, &original[..cut]).unwrap();
            let (got, found) = reopen(tmp.path(), &["after"]);
            assert_eq!(got, [&all[..4], &["after".to_owned()]].concat(), "cut at {cut}");
            assert_eq!((found.torn_tails, found.torn_tail_bytes), (1, (cut - last_start) as u64));
            assert_eq!(fs::metadata(&seg).unwrap().len() as usize, last_start + record_len("after"));
            assert_eq!(copies(&dir), 0, "a torn write is no damage worth a copy");
            let (again, found) = reopen(tmp.path(), &[]);
            assert_eq!(again, got, "cut at {cut}, second open");
            assert!(found.is_clean(), "cut at {cut}: {found:?}");
        }
        // Zeros after the last record (the file was extended, its data never written): torn too.
        fs::write(&seg, [&original[..], &[0; 3000]].concat()).unwrap();
        let (got, found) = reopen(tmp.path(), &[]);
        assert_eq!(got, all);
        assert_eq!((found.torn_tails, found.torn_tail_bytes, found.files_copied_aside), (1, 3000, 0));
        assert_eq!(fs::read(&seg).unwrap(), original);
        // Garbage after it is damage: cut as well, but copied aside first.
        fs::write(&seg, [&original[..], b"this is no record, only garbage"].concat()).unwrap();
        let (got, found) = reopen(tmp.path(), &[]);
        assert_eq!(got, all);
        assert_eq!((found.torn_tails, found.files_copied_aside, copies(&dir)), (1, 1, 1));
        assert_eq!(fs::read(&seg).unwrap(), original);
    }

    #[test]
    fn reading_back_through_the_window_jumps_every_damaged_range() {
        let tmp = tempfile::tempdir().unwrap();
        // Several segments (4 KiB each), read back through a window of 4 messages.
        let all: Vec<String> = (0..200).map(|i| format!("{i:040}")).collect();
        let acked: Vec<usize> = (0..200).filter(|i| i % 7 == 3).collect();
        let dir = queue(tmp.path(), &all, &acked);
        let segs = files(&dir, "seg");
        assert!(segs.len() >= 3, "{segs:?}");
        let rec = record_len(&all[0]);
        let per_segment = (fs::metadata(&segs[0]).unwrap().len() as usize - HEADER_LEN as usize) / rec;
        // Damage: two adjacent records in the first segment, one in the middle of the second
        // and the last record of the second (a tail that is not the active segment's: kept).
        let mut lost = vec![10, 11, per_segment + 5, 2 * per_segment - 1];
        let mut first = fs::read(&segs[0]).unwrap();
        first[HEADER_LEN as usize + 10 * rec + 30] ^= 1;
        first[HEADER_LEN as usize + 11 * rec] ^= 0x80;
        fs::write(&segs[0], &first).unwrap();
        let mut second = fs::read(&segs[1]).unwrap();
        second[HEADER_LEN as usize + 5 * rec + 3] ^= 0x10; // a length field
        let n = second.len();
        second[n - 1] ^= 1;
        fs::write(&segs[1], &second).unwrap();
        let (got, found) = reopen(tmp.path(), &[]);
        lost.extend(&acked);
        assert_eq!(got, except(&all, &lost));
        assert_eq!((found.corrupt_records_skipped, found.torn_tails), (2, 1), "{found:?}");
        assert_eq!(found.corrupt_bytes_skipped, 3 * rec as u64);
        assert_eq!(fs::read(&segs[1]).unwrap(), second, "an earlier segment's tail is not cut");
    }

    #[test]
    fn a_damaged_segment_header_keeps_the_records_behind_it() {
        let tmp = tempfile::tempdir().unwrap();
        let all = bodies(4);
        let dir = queue(tmp.path(), &all, &[2]);
        let [seg] = files(&dir, "seg").try_into().unwrap();
        let original = fs::read(&seg).unwrap();
        let mut bad = original.clone();
        bad[..HEADER_LEN as usize].copy_from_slice(b"garbage!");
        fs::write(&seg, &bad).unwrap();
        let (got, found) = reopen(tmp.path(), &[]);
        assert_eq!(got, except(&all, &[2]));
        assert_eq!((found.segment_headers_repaired, found.files_copied_aside), (1, 1));
        assert_eq!(fs::read(&seg).unwrap(), original, "the header is rewritten, nothing else");
        assert_eq!(fs::read(aside_path(&seg, 1)).unwrap(), bad, "the damaged file is kept");
        // A file with no valid record behind its damaged header is set aside whole.
        fs::write(&seg, b"garbage!garbage!garbage!garbage!garbage!garbage!garbage!").unwrap();
        let (got, found) = reopen(tmp.path(), &[]);
        assert!(got.is_empty());
        assert_eq!((found.segments_set_aside, copies(&dir)), (1, 3), "segment and ack file set aside");
    }

    #[test]
    fn a_long_run_of_garbage_is_scanned_over() {
        // A megabyte of pseudo-random bytes between two records: recovery finds the second.
        let tmp = tempfile::tempdir().unwrap();
        let all = bodies(2);
        let dir = queue(tmp.path(), &all, &[]);
        let [seg] = files(&dir, "seg").try_into().unwrap();
        let data = fs::read(&seg).unwrap();
        let split = HEADER_LEN as usize + record_len(&all[0]);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let garbage: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(&seg, [&data[..split], &garbage, &data[split..]].concat()).unwrap();
        let (got, found) = reopen(tmp.path(), &[]);
        assert_eq!(got, all);
        assert_eq!((found.corrupt_records_skipped, found.corrupt_bytes_skipped), (1, 1 << 20));
    }
}
