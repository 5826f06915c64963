//! A disk that really fills up, on a small tmpfs holding the data directory (root only: the
//! tests skip with a note where a tmpfs cannot be mounted).
//!
//! * With the free-space alarm off (`--disk-free-limit 0`), a publisher going flat out meets
//!   ENOSPC: the store's write fault blocks it ("low on disk"), logged once, not per message;
//!   the batches that failed are nacked, and everything acked survives `kill -9` and a restart.
//!   Freeing space clears the fault by itself and publishing works again.
//! * With a limit, the store counts what it writes against the free space last read, so the
//!   alarm rises before the disk is full, however fast the publisher: no write ever fails.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Event};
use tokio::sync::mpsc;

use crate::common::durable::{DurableBroker, Stop};
use crate::common::{within, TIMEOUT};
use crate::disk_alarm::{fill, free_bytes, Tmpfs};

const MIB: u64 = 1 << 20;
const Q: &str = "disk-full";
/// Big enough that a few thousand messages fill the tmpfs.
const BODY: usize = 16 * 1024;
/// Publishes awaiting their confirm, at most.
const WINDOW: usize = 256;
/// How long a publisher keeps going without being blocked before the test gives up.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(60);
/// After connection.blocked, confirms still arrive for what the broker had read; this long
/// without one and the rest never will (those publishes are still in the socket).
const QUIET: Duration = Duration::from_secs(2);
/// Logged by the store when a write fails, once per fault.
const FAULT_LINE: &str = "the store cannot write";
const FAULT_CLEARED_LINE: &str = "the store can write again";

/// Message `id`'s body: its id, then bytes derived from it, so a torn or mixed-up body shows.
fn body(id: u64) -> Vec<u8> {
    let mut b = format!("msg-{id:08}-").into_bytes();
    b.extend((0..BODY - b.len()).map(|i| (id as usize * 31 + i) as u8));
    b
}

fn id_of(body: &[u8]) -> u64 {
    let text = std::str::from_utf8(&body[4..12]).expect("body prefix");
    text.parse().expect("body id")
}

/// What a flat-out publisher saw.
#[derive(Debug, Default)]
struct Outcome {
    acked: BTreeSet<u64>,
    nacked: BTreeSet<u64>,
    /// Publishes tried; those neither acked nor nacked have no known outcome.
    sent: u64,
    /// connection.blocked's reason, and how long after the start it came.
    blocked: Option<(String, Duration)>,
}

/// Connection events the tests wait for.
struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    fn listen(conn: &Connection) -> Events {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut events = conn.events_listener();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if tx.send(e).is_err() {
                    break;
                }
            }
        });
        Events(rx)
    }

    /// The reason of a connection.blocked that has arrived, if one has.
    fn blocked(&mut self) -> Option<String> {
        while let Ok(e) = self.0.try_recv() {
            if let Event::ConnectionBlocked(reason) = e {
                return Some(reason);
            }
        }
        None
    }

    /// Waits for connection.unblocked; false if it did not come within `wait`.
    async fn unblocked_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, async {
            while let Some(e) = self.0.recv().await {
                if matches!(e, Event::ConnectionUnblocked) {
                    return;
                }
            }
            std::future::pending::<()>().await
        })
        .await
        .is_ok()
    }
}

async fn connect(b: &DurableBroker) -> Connection {
    within(Connection::connect(&b.url(), ConnectionProperties::default())).await.expect("connect")
}

async fn confirm_channel(conn: &Connection) -> Channel {
    let ch = within(conn.create_channel()).await.expect("channel");
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.expect("confirm.select");
    within(ch.queue_declare(
        Q.into(),
        QueueDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .expect("declare");
    ch
}

async fn publish(ch: &Channel, id: u64) -> lapin::Result<lapin::PublisherConfirm> {
    let props = BasicProperties::default().with_delivery_mode(2);
    ch.basic_publish("".into(), Q.into(), BasicPublishOptions::default(), &body(id), props).await
}

/// Publishes persistent messages with ids from `first` as fast as confirms allow (at most
/// [`WINDOW`] unconfirmed) until the connection is blocked or [`PUBLISH_DEADLINE`] passes, then
/// collects the confirms still coming.
async fn publish_until_blocked(ch: &Channel, events: &mut Events, first: u64) -> Outcome {
    let (tx, mut confirms) = mpsc::unbounded_channel();
    let mut out = Outcome::default();
    let start = Instant::now();
    let mut id = first;
    let mut pending = 0usize;
    while out.blocked.is_none() && start.elapsed() < PUBLISH_DEADLINE {
        if pending >= WINDOW {
            if let Ok(Some(outcome)) = tokio::time::timeout(Duration::from_millis(100), confirms.recv()).await
            {
                record(&mut out, outcome, &mut pending);
            }
        } else {
            // A publish that does not go out in time (the client holds it while blocked) keeps
            // its id: it may still reach the broker.
            let sent = tokio::time::timeout(Duration::from_millis(100), publish(ch, id)).await;
            if let Ok(Ok(confirm)) = sent {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send((id, confirm.await));
                });
                pending += 1;
            }
            (id, out.sent) = (id + 1, out.sent + 1);
        }
        while let Ok(outcome) = confirms.try_recv() {
            record(&mut out, outcome, &mut pending);
        }
        out.blocked = events.blocked().map(|reason| (reason, start.elapsed()));
    }
    while let Ok(Some(outcome)) = tokio::time::timeout(QUIET, confirms.recv()).await {
        record(&mut out, outcome, &mut pending);
    }
    out
}

fn record(out: &mut Outcome, (id, confirmation): (u64, lapin::Result<Confirmation>), pending: &mut usize) {
    *pending -= 1;
    match confirmation {
        Ok(Confirmation::Ack(_)) => out.acked.insert(id),
        Ok(Confirmation::Nack(_)) => out.nacked.insert(id),
        other => panic!("message {id}: unexpected confirmation {other:?}"),
    };
}

/// Every message of the queue, by basic.get with acks; each body must be intact.
async fn get_all(ch: &Channel) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    while let Some(m) = within(ch.basic_get(Q.into(), BasicGetOptions { no_ack: true })).await.expect("get") {
        let id = id_of(&m.delivery.data);
        assert!(m.delivery.data == body(id), "message {id} came back altered");
        assert!(ids.insert(id), "message {id} delivered twice");
    }
    ids
}

fn count(log: &str, line: &str) -> usize {
    log.lines().filter(|l| l.contains(line)).count()
}

/// Starts a broker with `args` on a data directory on a fresh tmpfs of `size`, after writing
/// `filler` bytes there; None where no tmpfs can be mounted.
async fn broker_on_tmpfs(size: u64, filler: u64, args: &[&str]) -> Option<(Tmpfs, DurableBroker)> {
    let Some(tmpfs) = Tmpfs::mount(size) else {
        eprintln!("note: no tmpfs (not root?): disk-full test skipped");
        return None;
    };
    fill(&filler_path(tmpfs.path()), filler);
    let b = DurableBroker::start_in(&tmpfs.path().join("data"), args).await;
    Some((tmpfs, b))
}

fn filler_path(mount: &Path) -> std::path::PathBuf {
    mount.join("filler")
}

#[tokio::test]
async fn enospc_blocks_publishers_and_loses_nothing_confirmed() {
    let Some((tmpfs, mut b)) = broker_on_tmpfs(64 * MIB, 32 * MIB, &["--disk-free-limit", "0"]).await else {
        return;
    };
    let conn = connect(&b).await;
    let mut events = Events::listen(&conn);
    let ch = confirm_channel(&conn).await;

    let first = publish_until_blocked(&ch, &mut events, 0).await;
    eprintln!(
        "full disk: {} acked, {} nacked, {} sent, blocked {:?}, {} bytes free",
        first.acked.len(),
        first.nacked.len(),
        first.sent,
        first.blocked,
        free_bytes(tmpfs.path())
    );
    let (reason, _) = first.blocked.clone().expect("the publisher was never blocked");
    assert_eq!(reason, "low on disk");
    assert!(!first.nacked.is_empty(), "no publish was nacked: the disk never filled up");
    assert!(!first.acked.is_empty());
    // The fault holds while the disk stays full (two probe periods), logged once.
    assert!(!events.unblocked_within(Duration::from_millis(2500)).await, "unblocked on a full disk");
    assert_eq!(count(&b.log(), FAULT_LINE), 1, "the fault is logged once:\n{}", b.log());
    drop(conn);

    // kill -9 on the full disk; everything acked is there after the restart, intact
    b.restart(Stop::Kill).await;
    let conn = connect(&b).await;
    let ch = confirm_channel(&conn).await;
    let stored = get_all(&ch).await;
    let lost: Vec<_> = first.acked.difference(&stored).collect();
    assert!(lost.is_empty(), "{} acked messages lost: {lost:?}", lost.len());
    assert!(stored.iter().all(|id| *id < first.sent), "a message that was never published");
    eprintln!("after the crash: {} messages recovered, {} of them acked", stored.len(), first.acked.len());
    drop(conn);

    // fill the disk again from this run, then free space: the fault clears by itself
    let conn = connect(&b).await;
    let mut events = Events::listen(&conn);
    let ch = confirm_channel(&conn).await;
    within(ch.queue_purge(Q.into(), QueuePurgeOptions::default())).await.expect("purge");
    let second = publish_until_blocked(&ch, &mut events, 1_000_000).await;
    assert_eq!(second.blocked.as_ref().map(|b| b.0.as_str()), Some("low on disk"), "{second:?}");
    std::fs::remove_file(filler_path(tmpfs.path())).expect("remove filler");
    let freed = Instant::now();
    assert!(events.unblocked_within(TIMEOUT).await, "still blocked {TIMEOUT:?} after space came back");
    eprintln!("unblocked {:?} after space came back", freed.elapsed());
    let confirm = within(publish(&ch, 2_000_000)).await.expect("publish after the alarm");
    assert!(
        matches!(within(confirm).await, Ok(Confirmation::Ack(_))),
        "a publish after the alarm was not acked"
    );
    let log = b.log();
    assert!(count(&log, FAULT_LINE) >= 1, "this run's fault was not logged:\n{log}");
    assert_eq!(
        count(&log, FAULT_LINE),
        count(&log, FAULT_CLEARED_LINE),
        "a fault not logged once each way:\n{log}"
    );
    assert!(count(&log, FAULT_LINE) <= 2, "the fault was logged over and over:\n{log}");
}

#[tokio::test]
async fn the_disk_alarm_rises_before_the_disk_is_full() {
    let limit = 16 * MIB;
    let limit_arg = limit.to_string();
    let Some((tmpfs, b)) = broker_on_tmpfs(64 * MIB, 8 * MIB, &["--disk-free-limit", &limit_arg]).await
    else {
        return;
    };
    let conn = connect(&b).await;
    let mut events = Events::listen(&conn);
    let ch = confirm_channel(&conn).await;
    let out = publish_until_blocked(&ch, &mut events, 0).await;
    let free = free_bytes(tmpfs.path());
    let (reason, after) = out.blocked.clone().expect("the publisher was never blocked");
    eprintln!(
        "blocked after {after:?} ({} MiB published, {} acked): {:.1} MiB free, limit {} MiB",
        out.sent * BODY as u64 / MIB,
        out.acked.len(),
        free as f64 / MIB as f64,
        limit / MIB
    );
    assert_eq!(reason, "low on disk");
    assert!(out.nacked.is_empty(), "{} publishes nacked: a write failed", out.nacked.len());
    assert_eq!(count(&b.log(), FAULT_LINE), 0, "a write failed:\n{}", b.log());
    assert!(free > 0, "the disk filled up");
}
