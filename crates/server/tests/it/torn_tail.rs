//! Damaged queue logs: with the broker stopped, segment and ack files are cut, extended with
//! garbage or have bytes flipped; the broker must start, lose only what the damage touched, say
//! in its log what it skipped or cut, keep a copy of each damaged file (`<name>.corrupt`) unless
//! the damage is only a write torn by a crash, and serve every queue normally afterwards.
//!
//! What recovery does (docs/storage.md, crates/store/src/segment.rs and corruption.rs): a record
//! that fails its checksum is skipped and recovery resumes at the next valid record; bytes after
//! the last valid record are a tail, cut only from the active (last) segment; a damaged segment
//! or ack-file header is rewritten and what follows it kept; a damaged ack entry costs that entry
//! only, a partial one at the end is cut; a file with nothing valid in it is set aside whole.
//!
//! Segment format (crates/store/src/record.rs, segment.rs): an 8-byte header `WRNSEG\0\1`, then
//! records `u32 len, u32 crc32c, payload`; ack files: `WRNACK\0\1`, then 12-byte entries.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::durable::{files_with_ext, queue_dir, record_spans, DurableBroker, Stop};
use crate::common::*;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};

const Q: &str = "tq";
const OTHER: &str = "other";

fn body(i: usize) -> String {
    // different lengths, so that records do not line up
    format!("m{i}-{}", "abcdefghij".repeat(1 + i % 4))
}

fn bodies_of(range: impl IntoIterator<Item = usize>) -> Vec<String> {
    range.into_iter().map(body).collect()
}

async fn confirm_channel(c: &Client) -> Channel {
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.expect("confirm.select");
    ch
}

async fn publish_persistent(ch: &Channel, queue: &str, body: &str) {
    let confirmation = within(async {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("basic.publish")
        .await
        .expect("confirm")
    })
    .await;
    assert!(matches!(confirmation, Confirmation::Ack(_)), "not confirmed: {confirmation:?}");
}

async fn declare_durable(ch: &Channel, name: &str) -> u32 {
    within(ch.queue_declare(
        name.into(),
        QueueDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap_or_else(|e| panic!("declare {name}: {e:?}"))
    .message_count()
}

/// Every ready message of `queue` via basic.get, acked: (body, redelivered).
async fn get_all(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) =
        within(ch.basic_get(queue.into(), BasicGetOptions::default())).await.expect("basic.get")
    {
        out.push((text(&m.delivery.data), m.delivery.redelivered));
        within(m.delivery.acker.ack(BasicAckOptions::default())).await.expect("ack");
    }
    // a reply after the acks: they have been processed
    within(ch.basic_qos(0, BasicQosOptions::default())).await.expect("qos");
    out
}

fn only_bodies(v: &[(String, bool)]) -> Vec<String> {
    v.iter().map(|(b, _)| b.clone()).collect()
}

/// A stopped broker whose queue `tq` holds `n` persistent messages (`body(0..n)`) and whose
/// queue `other` holds three.
async fn prepared(n: usize, args: &[&str]) -> DurableBroker {
    let mut b = DurableBroker::start(args).await;
    let c = b.connect().await;
    let ch = confirm_channel(&c).await;
    declare_durable(&ch, Q).await;
    declare_durable(&ch, OTHER).await;
    for i in 0..n {
        publish_persistent(&ch, Q, &body(i)).await;
    }
    for i in 0..3 {
        publish_persistent(&ch, OTHER, &format!("o{i}")).await;
    }
    drop(c);
    let status = b.stop(Stop::Term);
    assert!(status.success(), "SIGTERM exit: {status}");
    b
}

fn q_dir(b: &DurableBroker) -> PathBuf {
    queue_dir(b.data_dir(), "/", Q)
}

fn only_segment(b: &DurableBroker) -> PathBuf {
    let segs = files_with_ext(&q_dir(b), "seg");
    assert_eq!(segs.len(), 1, "expected one segment: {segs:?}");
    segs[0].clone()
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display())).len()
}

fn set_len(p: &Path, len: u64) {
    OpenOptions::new().write(true).open(p).unwrap().set_len(len).unwrap();
}

fn append(p: &Path, bytes: &[u8]) {
    OpenOptions::new().append(true).open(p).unwrap().write_all(bytes).unwrap();
}

fn flip(p: &Path, at: usize) {
    let mut data = std::fs::read(p).unwrap();
    data[at] ^= 0x5a;
    std::fs::write(p, data).unwrap();
}

/// Deterministic filler bytes.
fn garbage(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `<file>.corrupt` (`n == 1`) or `<file>.corrupt.<n>`: where the store keeps a copy of a damaged
/// file, or the file itself when nothing in it was usable.
fn aside(file: &Path, n: u32) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".corrupt");
    if n > 1 {
        name.push(format!(".{n}"));
    }
    PathBuf::from(name)
}

/// The copies of `file` kept aside (`<name>.corrupt*`), sorted.
fn copies_of(file: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.corrupt", file.file_name().unwrap().to_string_lossy());
    let dir = file.parent().unwrap();
    let mut copies: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    copies.sort();
    copies
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

// What the store logs (the stable part of each message): crates/store/src/segment.rs,
// corruption.rs and disk_log.rs.
const SKIPPED_RECORDS: &str = "skipped damaged records; recovery resumes at the next valid record";
const TAIL: &str = "no valid record after the last one";
const TAIL_CUT: &str = "truncating the active segment after its last valid record";
const SEGMENT_HEADER_REPAIRED: &str = "damaged segment header; its records are kept";
const SEGMENT_SET_ASIDE: &str = "not a segment file (bad header, no valid record); set aside";
const SKIPPED_ACKS: &str = "skipped damaged ack entries";
const ACK_TAIL_CUT: &str = "truncating a torn ack entry at the end";
const ACK_HEADER_REPAIRED: &str = "damaged ack file header; its entries are kept";
const ACK_SET_ASIDE: &str = "not an ack file (bad header, no valid entry); set aside";
const COPIED_ASIDE: &str = "damaged file copied aside for inspection";
const STRAY_ACK: &str = "acks of offsets not in their segment; ignored";
const DAMAGED_LOG: &str = "recovered a damaged queue log";

/// Whether a log line holds `detail`: a `field=value` (no spaces) must be one of its fields,
/// anything else must be part of it.
fn line_has(line: &str, detail: &str) -> bool {
    if detail.contains('=') && !detail.contains(' ') {
        line.split_whitespace().any(|field| field == detail)
    } else {
        line.contains(detail)
    }
}

/// The current run's log says `what` about `file`, on a line with every one of `details` (see
/// [`line_has`]).
fn assert_logged(b: &DurableBroker, what: &str, file: &Path, details: &[&str]) {
    let log = b.log();
    let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(what) && l.contains(&file_name)).collect();
    assert!(!lines.is_empty(), "the broker did not log \"{what}\" for {file_name}; log:\n{log}");
    assert!(
        lines.iter().any(|l| details.iter().all(|d| line_has(l, d))),
        "\"{what}\" for {file_name} is not logged with {details:?}: {lines:#?}"
    );
}

/// The current run's log says nothing about `what` for `file`.
fn assert_not_logged(b: &DurableBroker, what: &str, file: &Path) {
    let log = b.log();
    let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
    let line = log.lines().find(|l| l.contains(what) && l.contains(&file_name));
    assert!(line.is_none(), "unexpected \"{what}\" for {file_name}: {}", line.unwrap_or_default());
}

/// The current run's summary of the damage found in `tq`'s log holds these counts
/// (`name: value`, as the store's `CorruptionStats` prints them).
fn assert_found(b: &DurableBroker, counts: &[&str]) {
    let dir = format!("dir={}", q_dir(b).display());
    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains(DAMAGED_LOG) && line_has(l, &dir))
        .unwrap_or_else(|| panic!("no \"{DAMAGED_LOG}\" for {dir}; log:\n{log}"));
    for count in counts {
        let found = line.contains(&format!(" {count},")) || line.contains(&format!(" {count} }}"));
        assert!(found, "{count} not in: {line}");
    }
}

/// The other queue is untouched and the broker takes new work on both.
async fn assert_serves_normally(b: &DurableBroker, q_expected: &[String]) {
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(only_bodies(&get_all(&ch, OTHER).await), ["o0", "o1", "o2"]);
    assert_eq!(only_bodies(&get_all(&ch, Q).await), q_expected, "what {Q} holds after recovery");
    let pch = confirm_channel(&c).await;
    publish_persistent(&pch, Q, "fresh").await;
    publish_persistent(&pch, OTHER, "fresh-other").await;
    assert_eq!(only_bodies(&get_all(&ch, Q).await), ["fresh"]);
    assert_eq!(only_bodies(&get_all(&ch, OTHER).await), ["fresh-other"]);
}

/// Messages `0..n` without those at `lost`.
fn bodies_except(n: usize, lost: &[usize]) -> Vec<String> {
    (0..n).filter(|i| !lost.contains(i)).map(body).collect()
}

// ---------------------------------------------------------------------------------------------
// Segment tails

/// The last record cut short at several points (inside its 8-byte prefix, in the middle, one
/// byte short): it is dropped, the ones before it stay, the tail is logged and the file is cut
/// back to a record boundary (a torn write: no copy is kept), so a record appended after the
/// restart survives the next one.
#[tokio::test]
async fn truncated_last_record_is_dropped() {
    let n = 10;
    for (what, cut) in [("in the prefix", 0), ("in the middle", 1), ("one byte short", 2)] {
        let mut b = prepared(n, &[]).await;
        let seg = only_segment(&b);
        let spans = record_spans(&read(&seg));
        assert_eq!(spans.len(), n);
        let (start, len) = spans[n - 1];
        let keep = match cut {
            0 => start + 3,
            1 => start + len / 2,
            _ => start + len - 1,
        };
        set_len(&seg, keep as u64);
        b.spawn().await;
        let (at, bytes) = (format!("at={start}"), format!("bytes={}", keep - start));
        assert_logged(&b, TAIL, &seg, &[&at, &bytes, "reason=\"record runs past the end of the file\""]);
        assert_logged(&b, TAIL_CUT, &seg, &[&at, &bytes]);
        let tail_bytes = format!("torn_tail_bytes: {}", keep - start);
        assert_found(
            &b,
            &["torn_tails: 1", &tail_bytes, "corrupt_records_skipped: 0", "files_copied_aside: 0"],
        );
        assert_eq!(file_len(&seg), start as u64, "{what}: segment not cut back to its last whole record");
        assert_eq!(copies_of(&seg), Vec::<PathBuf>::new(), "{what}: a torn write is no damage worth a copy");

        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        assert_eq!(declare_durable(&ch, Q).await, (n - 1) as u32, "{what}");
        publish_persistent(&ch, Q, "appended").await;
        drop(c);
        b.restart(Stop::Kill).await;
        assert_not_logged(&b, TAIL, &seg);
        let c = b.connect().await;
        let ch = c.channel().await;
        let mut want = bodies_of(0..n - 1);
        want.push("appended".into());
        let got = get_all(&ch, Q).await;
        assert_eq!(only_bodies(&got), want, "{what}");
        assert_eq!(only_bodies(&get_all(&ch, OTHER).await), ["o0", "o1", "o2"]);
    }
}

/// Garbage after the last record (random bytes, zeros, bytes shaped like a record prefix with a
/// plausible length and a bad checksum, or with a length past the end of the file) is a tail of
/// the active segment: logged with its reason and size, and cut; every record stays. Bytes that
/// look like a write torn by a crash (zeros, a record claiming more than is there) are cut
/// without a copy; other garbage is copied aside first.
#[tokio::test]
async fn garbage_after_the_last_record_is_cut() {
    let n = 10;
    let mut plausible = Vec::new();
    plausible.extend_from_slice(&40u32.to_le_bytes());
    plausible.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    plausible.extend_from_slice(&garbage(40, 7));
    let shaped_torn = {
        let mut v = 500u32.to_le_bytes().to_vec();
        v.extend_from_slice(&garbage(20, 9));
        v
    };
    // (case, bytes, logged reason, copied aside)
    let cases: Vec<(&str, Vec<u8>, &str, bool)> = vec![
        // (its first four bytes are a length far out of range)
        ("random", garbage(100, 3), "record length out of range", true),
        ("zeros", vec![0u8; 64], "record length out of range", false),
        ("prefix with a bad checksum", plausible, "record checksum mismatch", true),
        ("prefix claiming more than is there", shaped_torn, "record runs past the end of the file", false),
    ];
    for (what, bytes, reason, copied) in cases {
        let mut b = prepared(n, &[]).await;
        let seg = only_segment(&b);
        let good_len = file_len(&seg);
        append(&seg, &bytes);
        b.spawn().await;
        let (at, cut) = (format!("at={good_len}"), format!("bytes={}", bytes.len()));
        assert_logged(&b, TAIL, &seg, &[&at, &cut, &format!("reason=\"{reason}\"")]);
        assert_logged(&b, TAIL_CUT, &seg, &[&at, &cut]);
        assert_eq!(file_len(&seg), good_len, "{what}: garbage not cut");
        if copied {
            assert_logged(&b, COPIED_ASIDE, &seg, &[]);
            assert_eq!(copies_of(&seg), [aside(&seg, 1)], "{what}");
            let copy = read(&aside(&seg, 1));
            assert_eq!(copy.len() as u64, good_len + bytes.len() as u64, "{what}: copy taken before the cut");
            assert_eq!(copy[good_len as usize..], bytes[..], "{what}: the copy holds the garbage");
            assert_found(&b, &["torn_tails: 1", "files_copied_aside: 1"]);
        } else {
            assert_not_logged(&b, COPIED_ASIDE, &seg);
            assert_eq!(copies_of(&seg), Vec::<PathBuf>::new(), "{what}: a torn write is not copied");
            assert_found(&b, &["torn_tails: 1", "files_copied_aside: 0"]);
        }
        {
            let c = b.connect().await;
            let ch = confirm_channel(&c).await;
            publish_persistent(&ch, Q, "appended").await;
        }
        b.restart(Stop::Kill).await;
        assert_not_logged(&b, TAIL, &seg);
        assert_eq!(copies_of(&seg).len(), usize::from(copied), "{what}: no further copy");
        let c = b.connect().await;
        let ch = c.channel().await;
        let mut want = bodies_of(0..n);
        want.push("appended".into());
        assert_eq!(only_bodies(&get_all(&ch, Q).await), want, "{what}");
        assert_eq!(only_bodies(&get_all(&ch, OTHER).await), ["o0", "o1", "o2"], "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Damage inside segments

/// A byte flipped inside a record in the middle of the segment (in its body, its checksum or
/// its length): only that record is lost. Recovery skips it (logged with where and how many
/// bytes), resumes at the next record, and the records after it come back; the segment is not
/// changed in place but copied aside. The same damage is found again at the next start, and not
/// copied again.
#[tokio::test]
async fn flipped_byte_in_a_middle_record_costs_only_that_record() {
    let n = 10;
    let bad = 5;
    // offsets within the record: 0 = length, 5 = checksum, len - 2 = body. A damaged length
    // may read as a checksum mismatch or as a record running past the end: no reason checked.
    let cases = [
        ("body", None, Some("record checksum mismatch")),
        ("checksum", Some(5usize), Some("record checksum mismatch")),
        ("length", Some(0usize), None),
    ];
    for (what, at_in_record, reason) in cases {
        let mut b = prepared(n, &[]).await;
        let seg = only_segment(&b);
        let (start, len) = record_spans(&read(&seg))[bad];
        flip(&seg, start + at_in_record.unwrap_or(len - 2));
        let damaged = read(&seg);
        b.spawn().await;
        let (at, bytes) = (format!("at={start}"), format!("bytes={len}"));
        let reason = reason.map(|r| format!("reason=\"{r}\""));
        let mut details = vec![at.as_str(), bytes.as_str()];
        details.extend(reason.as_deref());
        assert_logged(&b, SKIPPED_RECORDS, &seg, &details);
        assert_not_logged(&b, TAIL, &seg);
        assert_not_logged(&b, TAIL_CUT, &seg);
        let skipped_bytes = format!("corrupt_bytes_skipped: {len}");
        assert_found(
            &b,
            &["corrupt_records_skipped: 1", &skipped_bytes, "torn_tails: 0", "files_copied_aside: 1"],
        );
        assert_eq!(read(&seg), damaged, "{what}: the segment was changed in place");
        assert_logged(&b, COPIED_ASIDE, &seg, &[]);
        assert_eq!(copies_of(&seg), [aside(&seg, 1)], "{what}");
        assert_eq!(read(&aside(&seg, 1)), damaged, "{what}: the copy is the damaged file");
        assert_serves_normally(&b, &bodies_except(n, &[bad])).await;
        // and the result is stable across another crash: the damage is still there (and
        // skipped again), but not copied again
        b.restart(Stop::Kill).await;
        assert_logged(&b, SKIPPED_RECORDS, &seg, &[&at, &bytes]);
        assert_not_logged(&b, COPIED_ASIDE, &seg);
        assert_eq!(copies_of(&seg), [aside(&seg, 1)], "{what}: the same damage copied twice");
        let c = b.connect().await;
        let ch = c.channel().await;
        assert_eq!(declare_durable(&ch, Q).await, 0, "{what}");
        assert_eq!(declare_durable(&ch, OTHER).await, 0, "{what}");
    }
}

/// Recovery works segment by segment and record by record: a flipped byte in the middle of a
/// middle segment costs that record only, and one in the last record of the first segment costs
/// that record only. The first segment's damaged tail is not cut (only the active segment's
/// is); each damaged segment is copied aside, the others are not touched.
#[tokio::test]
async fn flipped_bytes_in_earlier_segments_cost_only_their_records() {
    let n = 40;
    let mut b = prepared(n, &["--segment-size", "1024"]).await;
    let segs = files_with_ext(&q_dir(&b), "seg");
    assert!(segs.len() >= 3, "expected at least 3 segments, got {}", segs.len());
    // which message each record of each segment holds (all are persistent: one record each)
    let mut index = 0;
    let mut per_segment = Vec::new();
    for s in &segs {
        let spans = record_spans(&read(s));
        per_segment.push((index, spans.clone()));
        index += spans.len();
    }
    assert_eq!(index, n);
    let victim = 1;
    let (first_index, spans) = &per_segment[victim];
    assert!(spans.len() >= 3, "segment too small for the test");
    let k = spans.len() / 2;
    let (start, len) = spans[k];
    flip(&segs[victim], start + len - 1);
    let first_spans = &per_segment[0].1;
    let (last_start, last_len) = *first_spans.last().unwrap();
    flip(&segs[0], last_start + last_len - 1);
    let first_len = file_len(&segs[0]);
    b.spawn().await;
    let (at, bytes) = (format!("at={start}"), format!("bytes={len}"));
    assert_logged(&b, SKIPPED_RECORDS, &segs[victim], &[&at, &bytes, "reason=\"record checksum mismatch\""]);
    let (at, bytes) = (format!("at={last_start}"), format!("bytes={last_len}"));
    assert_logged(&b, TAIL, &segs[0], &[&at, &bytes, "reason=\"record checksum mismatch\""]);
    assert_not_logged(&b, TAIL_CUT, &segs[0]);
    assert_eq!(file_len(&segs[0]), first_len, "the tail of a segment that is not the last was cut");
    assert_found(&b, &["corrupt_records_skipped: 1", "torn_tails: 1", "files_copied_aside: 2"]);
    for (i, s) in segs.iter().enumerate() {
        let want = if i == 0 || i == victim { vec![aside(s, 1)] } else { Vec::new() };
        assert_eq!(copies_of(s), want, "copies of segment {i}");
    }
    let lost = [first_spans.len() - 1, first_index + k];
    assert_serves_normally(&b, &bodies_except(n, &lost)).await;
}

/// A segment whose header is damaged keeps its records: the header is rewritten (after a copy
/// of the damaged file is kept aside) and every message comes back.
#[tokio::test]
async fn segment_with_a_bad_header_keeps_its_records() {
    let n = 10;
    let mut b = prepared(n, &[]).await;
    let seg = only_segment(&b);
    let original = read(&seg);
    flip(&seg, 2);
    let damaged = read(&seg);
    b.spawn().await;
    assert_logged(&b, SEGMENT_HEADER_REPAIRED, &seg, &[]);
    assert_logged(&b, COPIED_ASIDE, &seg, &[]);
    assert_found(&b, &["segment_headers_repaired: 1", "corrupt_records_skipped: 0", "files_copied_aside: 1"]);
    assert_eq!(read(&seg), original, "the header is rewritten and nothing else changed");
    assert_eq!(copies_of(&seg), [aside(&seg, 1)]);
    assert_eq!(read(&aside(&seg, 1)), damaged, "the copy is the damaged file");
    assert_serves_normally(&b, &bodies_of(0..n)).await;
    b.restart(Stop::Kill).await;
    assert_not_logged(&b, SEGMENT_HEADER_REPAIRED, &seg);
    assert_eq!(copies_of(&seg), [aside(&seg, 1)]);
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(declare_durable(&ch, Q).await, 0);
}

/// A segment with nothing valid in it (no header, no record) is set aside whole as `.corrupt`
/// with its ack file, and the queue goes on without it: the offsets it held are handed out
/// again, and the acks in the set-aside ack file do not hide the new messages that get them.
#[tokio::test]
async fn segment_with_nothing_valid_is_set_aside_with_its_ack_file() {
    let (mut b, ack) = prepared_with_acks().await;
    let seg = only_segment(&b);
    let damaged = garbage(file_len(&seg) as usize, 5);
    std::fs::write(&seg, &damaged).unwrap();
    let acks = read(&ack);
    b.spawn().await;
    assert_logged(&b, SEGMENT_SET_ASIDE, &seg, &[]);
    assert_found(&b, &["segments_set_aside: 1"]);
    assert!(!seg.exists() && !ack.exists(), "the segment and its ack file are still in place");
    assert_eq!(read(&aside(&seg, 1)), damaged);
    assert_eq!(read(&aside(&ack, 1)), acks);
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        assert_eq!(declare_durable(&ch, Q).await, 0);
        for i in 0..5 {
            publish_persistent(&ch, Q, &format!("new{i}")).await;
        }
    }
    b.restart(Stop::Kill).await;
    assert_not_logged(&b, SEGMENT_SET_ASIDE, &seg);
    assert_eq!((copies_of(&seg).len(), copies_of(&ack).len()), (1, 1));
    let new: Vec<String> = (0..5).map(|i| format!("new{i}")).collect();
    assert_serves_normally(&b, &new).await;
}

// ---------------------------------------------------------------------------------------------
// Ack files

/// `tq` holds body(0..10), of which 0..4 were acknowledged one by one (four ack entries), and
/// the broker is stopped.
async fn prepared_with_acks() -> (DurableBroker, PathBuf) {
    let mut b = prepared(10, &[]).await;
    b.spawn().await;
    {
        let c = b.connect().await;
        let ch = c.channel().await;
        for i in 0..4 {
            let m =
                within(ch.basic_get(Q.into(), BasicGetOptions::default())).await.unwrap().expect("message");
            assert_eq!(text(&m.delivery.data), body(i));
            within(m.delivery.acker.ack(BasicAckOptions::default())).await.unwrap();
        }
        within(ch.basic_qos(0, BasicQosOptions::default())).await.unwrap();
    }
    let status = b.stop(Stop::Term);
    assert!(status.success());
    let acks = files_with_ext(&q_dir(&b), "ack");
    assert_eq!(acks.len(), 1, "expected one ack file: {acks:?}");
    assert_eq!(file_len(&acks[0]), 8 + 4 * 12, "ack file size");
    (b, acks[0].clone())
}

/// After recovery: exactly the messages `remaining`, in order (and `redelivered` on those
/// taken, as every recovered message is), and acks written after the repair hold across
/// another crash.
async fn assert_ack_recovery(b: &mut DurableBroker, remaining: &[usize]) {
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(declare_durable(&ch, Q).await, remaining.len() as u32);
    // ack two more, then crash
    for &i in &remaining[..2] {
        let m = within(ch.basic_get(Q.into(), BasicGetOptions::default())).await.unwrap().expect("message");
        assert_eq!(text(&m.delivery.data), body(i));
        assert!(m.delivery.redelivered, "a recovered message is not flagged redelivered");
        within(m.delivery.acker.ack(BasicAckOptions::default())).await.unwrap();
    }
    within(ch.basic_qos(0, BasicQosOptions::default())).await.unwrap();
    drop(c);
    b.restart(Stop::Kill).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let want: Vec<String> = remaining[2..].iter().copied().map(body).collect();
    assert_eq!(only_bodies(&get_all(&ch, Q).await), want);
    assert_eq!(only_bodies(&get_all(&ch, OTHER).await), ["o0", "o1", "o2"]);
}

/// A partial entry after the last whole one (a torn write) is cut, without a copy; every ack
/// stays.
#[tokio::test]
async fn partial_ack_entry_at_the_tail_is_cut() {
    let (mut b, ack) = prepared_with_acks().await;
    append(&ack, &garbage(5, 11));
    b.spawn().await;
    assert_logged(&b, ACK_TAIL_CUT, &ack, &["at=56", "bytes=5"]);
    assert_found(&b, &["torn_ack_tails: 1", "files_copied_aside: 0"]);
    assert_eq!(file_len(&ack), 8 + 4 * 12);
    assert_eq!(copies_of(&ack), Vec::<PathBuf>::new(), "a torn write is no damage worth a copy");
    assert_ack_recovery(&mut b, &(4..10).collect::<Vec<_>>()).await;
}

/// The last entry cut short: it is cut off, and only its message comes back.
#[tokio::test]
async fn torn_last_ack_entry_loses_only_that_ack() {
    let (mut b, ack) = prepared_with_acks().await;
    set_len(&ack, 8 + 3 * 12 + 6);
    b.spawn().await;
    assert_logged(&b, ACK_TAIL_CUT, &ack, &["at=44", "bytes=6"]);
    assert_eq!(file_len(&ack), 8 + 3 * 12);
    assert_eq!(copies_of(&ack), Vec::<PathBuf>::new(), "a torn write is no damage worth a copy");
    assert_ack_recovery(&mut b, &(3..10).collect::<Vec<_>>()).await;
}

/// An entry that fails its checksum (in the middle of the file, or the last one) is skipped:
/// only its message comes back, the entries after it still count. The file is not cut but
/// copied aside, and acks appended after the damaged entry hold across another crash (which
/// finds the same damage and does not copy it again).
#[tokio::test]
async fn corrupt_ack_entry_loses_only_that_ack() {
    for entry in [1usize, 3] {
        let (mut b, ack) = prepared_with_acks().await;
        let at = 8 + entry * 12;
        flip(&ack, at + 2);
        let damaged = read(&ack);
        b.spawn().await;
        assert_logged(&b, SKIPPED_ACKS, &ack, &[&format!("at={at}"), "entries=1"]);
        assert_not_logged(&b, ACK_TAIL_CUT, &ack);
        assert_logged(&b, COPIED_ASIDE, &ack, &[]);
        assert_found(&b, &["corrupt_ack_entries_skipped: 1", "files_copied_aside: 1"]);
        assert_eq!(read(&ack), damaged, "entry {entry}: the ack file was changed in place");
        assert_eq!(copies_of(&ack), [aside(&ack, 1)], "entry {entry}");
        assert_eq!(read(&aside(&ack, 1)), damaged, "entry {entry}");
        let remaining: Vec<usize> = std::iter::once(entry).chain(4..10).collect();
        assert_ack_recovery(&mut b, &remaining).await;
        assert_logged(&b, SKIPPED_ACKS, &ack, &[&format!("at={at}")]);
        assert_not_logged(&b, COPIED_ASIDE, &ack);
        assert_eq!(copies_of(&ack), [aside(&ack, 1)], "entry {entry}: the same damage copied twice");
    }
}

/// A damaged ack-file header costs no ack: the header is rewritten (after a copy is kept) and
/// the entries behind it count.
#[tokio::test]
async fn ack_file_with_a_bad_header_keeps_its_acks() {
    let (mut b, ack) = prepared_with_acks().await;
    let original = read(&ack);
    flip(&ack, 0);
    let damaged = read(&ack);
    b.spawn().await;
    assert_logged(&b, ACK_HEADER_REPAIRED, &ack, &[]);
    assert_found(&b, &["ack_headers_repaired: 1", "corrupt_ack_entries_skipped: 0", "files_copied_aside: 1"]);
    assert_eq!(read(&ack), original, "the header is rewritten and nothing else changed");
    assert_eq!(copies_of(&ack), [aside(&ack, 1)]);
    assert_eq!(read(&aside(&ack, 1)), damaged);
    assert_ack_recovery(&mut b, &(4..10).collect::<Vec<_>>()).await;
    assert_not_logged(&b, ACK_HEADER_REPAIRED, &ack);
}

/// An ack file with nothing valid in it (bad header, no valid entry) is set aside as
/// `.corrupt`: its acks are lost, the messages come back, and new acks go to a new ack file.
#[tokio::test]
async fn ack_file_with_nothing_valid_is_set_aside() {
    let (mut b, ack) = prepared_with_acks().await;
    let damaged = garbage(8 + 4 * 12, 13);
    std::fs::write(&ack, &damaged).unwrap();
    b.spawn().await;
    assert_logged(&b, ACK_SET_ASIDE, &ack, &["skipped=4"]);
    assert_found(&b, &["ack_files_set_aside: 1", "corrupt_ack_entries_skipped: 4"]);
    assert!(!ack.exists(), "the ack file is still in place");
    assert_eq!(read(&aside(&ack, 1)), damaged);
    assert_ack_recovery(&mut b, &(0..10).collect::<Vec<_>>()).await;
    // every message was acknowledged since: ten entries, in a new file
    assert_eq!(file_len(&ack), 8 + 10 * 12, "a new ack file holds the acks written since");
    assert_eq!(copies_of(&ack), [aside(&ack, 1)]);
}

/// Records cut from the end of the active segment (a torn tail) leave their offsets free, but
/// an ack entry written for one of them must not apply to the new message that would reuse its
/// offset: that message was confirmed and never acknowledged.
#[tokio::test]
async fn acks_of_dropped_records_do_not_apply_to_new_messages() {
    let n = 10;
    let mut b = prepared(n, &[]).await;
    b.spawn().await;
    {
        let c = b.connect().await;
        let ch = c.channel().await;
        // take m0..m7, acknowledge only m7; the others go back when the channel closes
        let mut last = None;
        for i in 0..8 {
            let m =
                within(ch.basic_get(Q.into(), BasicGetOptions::default())).await.unwrap().expect("message");
            assert_eq!(text(&m.delivery.data), body(i));
            last = Some(m);
        }
        within(last.unwrap().delivery.acker.ack(BasicAckOptions::default())).await.unwrap();
        within(ch.close(200, "bye".into())).await.unwrap();
        let ch = c.channel().await;
        assert_eq!(declare_durable(&ch, Q).await, (n - 1) as u32);
    }
    assert!(b.stop(Stop::Term).success());
    // cut the segment in the middle of record 5: records 5..9 (offsets 5..9) are a torn tail,
    // cut at recovery, and the ack of offset 7 names a record that is gone
    let seg = only_segment(&b);
    let (start, len) = record_spans(&read(&seg))[5];
    set_len(&seg, (start + len / 2) as u64);
    b.spawn().await;
    assert_logged(&b, TAIL_CUT, &seg, &[&format!("at={start}")]);
    assert_logged(&b, STRAY_ACK, &seg.with_extension("ack"), &["first_offset=7"]);
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        assert_eq!(declare_durable(&ch, Q).await, 5);
        for i in 0..5 {
            publish_persistent(&ch, Q, &format!("new{i}")).await;
        }
    }
    b.restart(Stop::Kill).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let mut want = bodies_of(0..5);
    want.extend((0..5).map(|i| format!("new{i}")));
    assert_eq!(only_bodies(&get_all(&ch, Q).await), want, "a confirmed message was lost");
}
