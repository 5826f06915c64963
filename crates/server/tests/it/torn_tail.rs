//! Damaged queue logs: with the broker stopped, segment and ack files are cut, extended with
//! garbage or have a byte flipped; the broker must start, keep exactly the valid prefix of each
//! file, say in its log what it cut, and serve every queue normally afterwards.
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

/// The broker's log of the current run says it cut `file` and why.
fn assert_logged_cut(b: &DurableBroker, what: &str, file: &Path, reason: Option<&str>) {
    let log = b.log();
    let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
    let line = log
        .lines()
        .find(|l| l.contains(what) && l.contains(&file_name))
        .unwrap_or_else(|| panic!("the broker did not log \"{what}\" for {file_name}; log:\n{log}"));
    if let Some(reason) = reason {
        assert!(
            line.contains(reason),
            "the cut of {file_name} is logged without reason \"{reason}\": {line}"
        );
    }
}

const SEGMENT_CUT: &str = "truncating segment after its last valid record";
const ACK_CUT: &str = "truncating ack file after its last valid entry";

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

// ---------------------------------------------------------------------------------------------
// Segment tails

/// The last record cut short at several points (inside its 8-byte prefix, in the middle, one
/// byte short): it is dropped, the ones before it stay, and the file is cut back to a record
/// boundary, so a record appended after the restart survives the next one.
#[tokio::test]
async fn truncated_last_record_is_dropped() {
    let n = 10;
    for cut in [3usize, 0, 1] {
        let mut b = prepared(n, &[]).await;
        let seg = only_segment(&b);
        let data = std::fs::read(&seg).unwrap();
        let spans = record_spans(&data);
        assert_eq!(spans.len(), n);
        let (start, len) = spans[n - 1];
        let keep = match cut {
            3 => start + 3,
            0 => start + len / 2,
            _ => start + len - 1,
        };
        set_len(&seg, keep as u64);
        b.spawn().await;
        assert_logged_cut(&b, SEGMENT_CUT, &seg, Some("torn record at the end"));
        assert_eq!(file_len(&seg), start as u64, "segment not cut back to its last whole record");

        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        assert_eq!(declare_durable(&ch, Q).await, (n - 1) as u32);
        publish_persistent(&ch, Q, "appended").await;
        drop(c);
        b.restart(Stop::Kill).await;
        let c = b.connect().await;
        let ch = c.channel().await;
        let mut want = bodies_of(0..n - 1);
        want.push("appended".into());
        let got = get_all(&ch, Q).await;
        assert_eq!(only_bodies(&got), want, "cut {cut}");
        assert_eq!(only_bodies(&get_all(&ch, OTHER).await), ["o0", "o1", "o2"]);
    }
}

/// Garbage after the last record (random bytes, and bytes shaped like a record prefix with a
/// plausible length) is cut off; every record stays.
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
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("random", garbage(100, 3), ""),
        ("zeros", vec![0u8; 64], "record length out of range"),
        ("prefix with a bad checksum", plausible, "record checksum mismatch"),
        ("prefix claiming more than is there", shaped_torn, "torn record at the end"),
    ];
    for (what, bytes, reason) in cases {
        let mut b = prepared(n, &[]).await;
        let seg = only_segment(&b);
        let good_len = file_len(&seg);
        append(&seg, &bytes);
        b.spawn().await;
        assert_logged_cut(&b, SEGMENT_CUT, &seg, (!reason.is_empty()).then_some(reason));
        assert!(b.log().contains(&format!("cut_bytes={}", bytes.len())), "{what}: cut size not logged");
        assert_eq!(file_len(&seg), good_len, "{what}: garbage not cut");
        {
            let c = b.connect().await;
            let ch = confirm_channel(&c).await;
            publish_persistent(&ch, Q, "appended").await;
        }
        b.restart(Stop::Kill).await;
        let c = b.connect().await;
        let ch = c.channel().await;
        let mut want = bodies_of(0..n);
        want.push("appended".into());
        assert_eq!(only_bodies(&get_all(&ch, Q).await), want, "{what}");
        assert_eq!(only_bodies(&get_all(&ch, OTHER).await), ["o0", "o1", "o2"], "{what}");
    }
}

/// A byte flipped inside a record in the middle of the segment (in its body, its checksum or
/// its length): the records before it are recovered, it and everything after it in the
/// segment are dropped, and the broker serves every queue normally.
#[tokio::test]
async fn flipped_byte_in_a_middle_record_drops_it_and_the_rest_of_the_segment() {
    let n = 10;
    let bad = 5;
    // offsets within the record: 0 = length, 5 = checksum, len - 2 = body
    for (what, at_in_record) in [("body", None), ("checksum", Some(5usize)), ("length", Some(0usize))] {
        let mut b = prepared(n, &[]).await;
        let seg = only_segment(&b);
        let data = std::fs::read(&seg).unwrap();
        let (start, len) = record_spans(&data)[bad];
        flip(&seg, start + at_in_record.unwrap_or(len - 2));
        b.spawn().await;
        assert_logged_cut(&b, SEGMENT_CUT, &seg, None);
        assert_eq!(file_len(&seg), start as u64, "{what}: segment not cut at the damaged record");
        assert_serves_normally(&b, &bodies_of(0..bad)).await;
        // and the result is stable across another crash
        b.restart(Stop::Kill).await;
        let c = b.connect().await;
        let ch = c.channel().await;
        assert_eq!(declare_durable(&ch, Q).await, 0, "{what}");
        assert_eq!(declare_durable(&ch, OTHER).await, 0, "{what}");
    }
}

/// Recovery works segment by segment: damage in the middle of one segment drops the rest of
/// that segment only; the segments before and after it are recovered whole.
#[tokio::test]
async fn flipped_byte_in_a_middle_segment_drops_the_rest_of_that_segment_only() {
    let n = 40;
    let mut b = prepared(n, &["--segment-size", "1024"]).await;
    let segs = files_with_ext(&q_dir(&b), "seg");
    assert!(segs.len() >= 3, "expected at least 3 segments, got {}", segs.len());
    // which message each record of each segment holds (all are persistent: one record each)
    let mut index = 0;
    let mut per_segment = Vec::new();
    for s in &segs {
        let spans = record_spans(&std::fs::read(s).unwrap());
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
    b.spawn().await;
    assert_logged_cut(&b, SEGMENT_CUT, &segs[victim], Some("record checksum mismatch"));
    let lost = first_index + k..first_index + spans.len();
    let want: Vec<String> = (0..n).filter(|i| !lost.contains(i)).map(body).collect();
    assert_serves_normally(&b, &want).await;
}

/// A segment whose header is damaged is not a segment: it is set aside as `.corrupt` (with its
/// ack file) and the queue goes on without it.
#[tokio::test]
async fn segment_with_a_bad_header_is_set_aside() {
    let n = 10;
    let mut b = prepared(n, &[]).await;
    let seg = only_segment(&b);
    flip(&seg, 2);
    b.spawn().await;
    let log = b.log();
    assert!(log.contains("not a segment file (bad header)"), "not logged:\n{log}");
    let mut aside = seg.clone().into_os_string();
    aside.push(".corrupt");
    assert!(Path::new(&aside).is_file(), "{} missing", Path::new(&aside).display());
    assert_serves_normally(&b, &[]).await;
    b.restart(Stop::Kill).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(declare_durable(&ch, Q).await, 0);
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

/// After recovery: exactly these bodies (and `redelivered` on all of them, as every recovered
/// message is), and acks written after the repair hold across another crash.
async fn assert_ack_recovery(b: &mut DurableBroker, want_from: usize) {
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(declare_durable(&ch, Q).await, (10 - want_from) as u32);
    // ack two more, then crash
    for i in want_from..want_from + 2 {
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
    assert_eq!(only_bodies(&get_all(&ch, Q).await), bodies_of(want_from + 2..10));
    assert_eq!(only_bodies(&get_all(&ch, OTHER).await), ["o0", "o1", "o2"]);
}

#[tokio::test]
async fn partial_ack_entry_at_the_tail_is_cut() {
    let (mut b, ack) = prepared_with_acks().await;
    append(&ack, &garbage(5, 11));
    b.spawn().await;
    assert_logged_cut(&b, ACK_CUT, &ack, None);
    assert_eq!(file_len(&ack), 8 + 4 * 12);
    assert_ack_recovery(&mut b, 4).await;
}

#[tokio::test]
async fn torn_last_ack_entry_loses_only_that_ack() {
    let (mut b, ack) = prepared_with_acks().await;
    set_len(&ack, 8 + 3 * 12 + 6);
    b.spawn().await;
    assert_logged_cut(&b, ACK_CUT, &ack, None);
    assert_eq!(file_len(&ack), 8 + 3 * 12);
    assert_ack_recovery(&mut b, 3).await;
}

#[tokio::test]
async fn corrupt_last_ack_entry_loses_only_that_ack() {
    let (mut b, ack) = prepared_with_acks().await;
    flip(&ack, 8 + 3 * 12 + 2);
    b.spawn().await;
    assert_logged_cut(&b, ACK_CUT, &ack, None);
    assert_eq!(file_len(&ack), 8 + 3 * 12);
    assert_ack_recovery(&mut b, 3).await;
}

#[tokio::test]
async fn ack_file_with_a_bad_header_loses_its_acks() {
    let (mut b, ack) = prepared_with_acks().await;
    flip(&ack, 0);
    b.spawn().await;
    let log = b.log();
    assert!(log.contains("ack file has no valid header; its acks are lost"), "not logged:\n{log}");
    assert_ack_recovery(&mut b, 0).await;
}

/// After a cut, the offsets of the dropped records are handed out again to new messages. An
/// ack entry that was written for a dropped record must not apply to the new message that
/// reuses its offset: that message was confirmed and never acknowledged.
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
    // damage record 5: records 5..9 (offsets 5..9) are dropped at recovery
    let seg = only_segment(&b);
    let (start, len) = record_spans(&std::fs::read(&seg).unwrap())[5];
    flip(&seg, start + len - 1);
    b.spawn().await;
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
