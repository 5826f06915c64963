//! Recovery from damaged files: torn tails, flipped bytes, corrupt ack files, foreign files.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use warren_store::QueueLog;

/// Encoded size of a record made by `msg(body)`: prefix, fixed fields, names, properties, body.
fn record_len(body: &str) -> usize {
    8 + 23 + "amq.direct".len() + "rk".len() + 3 + body.len()
}

const HEADER: usize = 8;

/// Writes `bodies` as persistent messages of a fresh durable queue; returns the queue's dir.
fn write_queue(root: &Path, bodies: &[String]) -> PathBuf {
    let store = open(root, small_config());
    let mut log = store.open_log("/", "q", true).unwrap();
    for b in bodies {
        log.append(msg(b), None, true).unwrap();
    }
    log.flush().unwrap();
    log.dir().to_owned()
}

fn recover_bodies(root: &Path) -> Vec<String> {
    let store = open(root, small_config());
    let mut log = store.open_log("/", "q", true).unwrap();
    let n = log.len();
    let got: Vec<String> = drain(&mut log).into_iter().map(|(_, b, _)| b).collect();
    assert_eq!(got.len(), n, "len() was exact");
    got
}

fn bodies(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("message-{i}-{}", "p".repeat(i))).collect()
}

#[test]
fn a_torn_last_record_is_cut_at_every_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let all = bodies(5);
    let dir = write_queue(tmp.path(), &all);
    let [seg] = files_with(&dir, "seg").try_into().unwrap();
    let original = fs::read(&seg).unwrap();
    let last_start = original.len() - record_len(&all[4]);
    assert_eq!(last_start, HEADER + all[..4].iter().map(|b| record_len(b)).sum::<usize>());
    for cut in last_start..original.len() {
        fs::write(&seg, &original[..cut]).unwrap();
        assert_eq!(recover_bodies(tmp.path()), all[..4], "cut at {cut}");
        assert_eq!(fs::metadata(&seg).unwrap().len() as usize, last_start, "the torn tail was truncated");
    }
    // And the whole file again: everything comes back.
    fs::write(&seg, &original).unwrap();
    assert_eq!(recover_bodies(tmp.path()), all);
}

#[test]
fn a_torn_header_leaves_an_empty_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let all = bodies(3);
    let dir = write_queue(tmp.path(), &all);
    let [seg] = files_with(&dir, "seg").try_into().unwrap();
    for cut in 0..HEADER {
        let original = fs::read(&seg).unwrap();
        fs::write(&seg, &original[..cut]).unwrap();
        assert!(recover_bodies(tmp.path()).is_empty(), "cut at {cut}");
        let store = open(tmp.path(), small_config());
        let mut log = store.open_log("/", "q", true).unwrap();
        log.append(msg("again"), None, true).unwrap();
        log.flush().unwrap();
        drop(log);
        drop(store);
        assert_eq!(recover_bodies(tmp.path()), ["again"]);
    }
}

#[test]
fn a_flipped_byte_costs_only_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    let all = bodies(6);
    let dir = write_queue(tmp.path(), &all);
    let [seg] = files_with(&dir, "seg").try_into().unwrap();
    let original = fs::read(&seg).unwrap();
    let k = 3;
    let start = HEADER + all[..k].iter().map(|b| record_len(b)).sum::<usize>();
    let mut expected = all.clone();
    expected.remove(k);
    for i in start..start + record_len(&all[k]) {
        let mut bad = original.clone();
        bad[i] ^= 0xFF;
        fs::write(&seg, &bad).unwrap();
        assert_eq!(recover_bodies(tmp.path()), expected, "flipped byte {i}");
        assert_eq!(fs::read(&seg).unwrap(), bad, "the damaged segment is not changed in place");
    }
    assert!(!files_with(&dir, "corrupt").is_empty(), "a copy is kept aside");
}

#[test]
fn corruption_in_one_segment_spares_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let all: Vec<String> = (0..300).map(|i| format!("{i:060}")).collect();
    let dir = write_queue(tmp.path(), &all);
    let segs = files_with(&dir, "seg");
    assert!(segs.len() >= 3);
    // Flip a byte in the middle of the second segment.
    let mut data = fs::read(&segs[1]).unwrap();
    let rec = record_len(&all[0]);
    let k = (data.len() - HEADER) / rec / 2;
    data[HEADER + k * rec + 20] ^= 1;
    fs::write(&segs[1], &data).unwrap();
    let per_segment = (fs::read(&segs[0]).unwrap().len() - HEADER) / rec;
    let got = recover_bodies(tmp.path());
    let mut expected = all.clone();
    expected.remove(per_segment + k);
    assert!(got == expected, "only the damaged record is lost");
}

#[test]
fn a_queue_with_a_foreign_segment_file_still_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let all = bodies(3);
    let dir = write_queue(tmp.path(), &all);
    let [seg] = files_with(&dir, "seg").try_into().unwrap();
    fs::write(&seg, b"this is not a segment file at all").unwrap();
    assert!(recover_bodies(tmp.path()).is_empty());
    assert!(files_with(&dir, "corrupt").len() == 1, "set aside, not deleted");
    // Other queues are not affected, and this one works again.
    let store = open(tmp.path(), small_config());
    let mut other = store.open_log("/", "other", true).unwrap();
    other.append(msg("fine"), None, true).unwrap();
    let mut log = store.open_log("/", "q", true).unwrap();
    log.append(msg("new"), None, true).unwrap();
    log.flush().unwrap();
    drop(log);
    drop(other);
    drop(store);
    assert_eq!(recover_bodies(tmp.path()), ["new"]);
}

/// Writes 6 messages and acks the first 3: returns the queue's dir.
fn acked_queue(root: &Path, all: &[String]) -> PathBuf {
    let store = open(root, small_config());
    let mut log = store.open_log("/", "q", true).unwrap();
    for b in all {
        log.append(msg(b), None, true).unwrap();
    }
    for _ in 0..3 {
        let m = log.pop_front().unwrap();
        log.settle(m.offset, m.stored);
    }
    log.flush().unwrap();
    log.dir().to_owned()
}

#[test]
fn a_torn_ack_file_tail_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let all = bodies(6);
    let dir = acked_queue(tmp.path(), &all);
    let [ack] = files_with(&dir, "ack").try_into().unwrap();
    let original = fs::read(&ack).unwrap();
    assert_eq!(original.len(), HEADER + 3 * 12);
    // A partial fourth entry: ignored and cut.
    for extra in 1..12 {
        let mut torn = original.clone();
        torn.extend_from_slice(&[0x5A; 12][..extra]);
        fs::write(&ack, &torn).unwrap();
        assert_eq!(recover_bodies(tmp.path()), all[3..], "{extra} stray bytes");
        assert_eq!(fs::read(&ack).unwrap(), original);
    }
    // A corrupt last entry: that ack is lost (the message comes back), the others hold; the
    // entry is whole, so it is skipped, not cut.
    let mut bad = original.clone();
    let n = bad.len();
    bad[n - 3] ^= 0xFF;
    fs::write(&ack, &bad).unwrap();
    assert_eq!(recover_bodies(tmp.path()), all[2..]);
    assert_eq!(fs::read(&ack).unwrap(), bad);
    // A torn ack header: no acks at all.
    fs::write(&ack, &original[..5]).unwrap();
    assert_eq!(recover_bodies(tmp.path()), all);
}

#[test]
fn an_ack_file_without_its_segment_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let all = bodies(6);
    let dir = acked_queue(tmp.path(), &all);
    let [ack] = files_with(&dir, "ack").try_into().unwrap();
    let orphan = dir.join(format!("{:020}.ack", 1_000_000));
    fs::copy(&ack, &orphan).unwrap();
    assert_eq!(recover_bodies(tmp.path()), all[3..]);
    assert!(!orphan.exists());
}

#[test]
fn garbage_anywhere_never_panics() {
    // Random damage to every byte position of a small log (segment and ack file): recovery
    // returns a prefix of the messages that were not acked, never panics.
    let tmp = tempfile::tempdir().unwrap();
    let all = bodies(6);
    let dir = acked_queue(tmp.path(), &all);
    let [seg] = files_with(&dir, "seg").try_into().unwrap();
    let [ack] = files_with(&dir, "ack").try_into().unwrap();
    let (seg_orig, ack_orig) = (fs::read(&seg).unwrap(), fs::read(&ack).unwrap());
    for (file, orig) in [(&seg, &seg_orig), (&ack, &ack_orig)] {
        for i in (0..orig.len()).step_by(3) {
            fs::write(&seg, &seg_orig).unwrap();
            fs::write(&ack, &ack_orig).unwrap();
            let mut bad = orig.clone();
            bad[i] = bad[i].wrapping_add(0x3D);
            fs::write(file, &bad).unwrap();
            let got = recover_bodies(tmp.path());
            assert!(got.iter().all(|b| all.contains(b)), "byte {i}: {got:?}");
        }
    }
}
