//! The crash test: publishers with confirms and consumers with manual acks run against one
//! durable queue while the broker is killed (SIGKILL) at random moments and restarted on the
//! same data directory; the clients reconnect after every restart. At the end everything is
//! drained (and the broker crashed and drained once more), and the test checks:
//!
//! * every confirmed message was delivered at least once (none lost);
//! * no delivered body is corrupt (each carries its id, a payload derived from the id, and a
//!   checksum);
//! * no message is delivered again once its ack is known processed (an ack is known processed
//!   once a later synchronous method on the same channel, basic.qos, got its reply);
//! * a message delivered before (and not known acked) comes back with redelivered=true.
//!
//! Knobs (environment):
//! * `WARREN_CRASH_CYCLES` - number of kill/restart cycles (default 20, about half a minute);
//! * `WARREN_CRASH_SEED` - the RNG seed (printed by every run, to reproduce one).
//!
//! A long run (200 cycles, a few minutes):
//!
//! ```sh
//! WARREN_CRASH_CYCLES=200 cargo test -p warren-server --test it crash:: -- --nocapture
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::durable::DurableBroker;
use crate::common::rng::Rng;
use crate::common::within;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

const QUEUE: &str = "crash-q";
const PUBLISHERS: usize = 2;
const CONSUMERS: usize = 2;
const PUBLISH_BATCH: usize = 25;
const PREFETCH: u16 = 50;
/// A consumer proves its acks processed (basic.qos round trip) after this many.
const ACKS_PER_SYNC: usize = 10;
/// Per mille of deliveries a consumer leaves unacknowledged (they come back after the next
/// crash, or when the consumer's connection closes at the end).
const LEAVE_UNACKED_PER_MILLE: u64 = 20;
/// Publishers pause while this many published messages have not been delivered yet, so the
/// final drain stays short.
const MAX_BACKLOG: u64 = 20_000;
/// A client gives up reconnecting after this long.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(60);
/// Bound on any single client operation while the broker may die under it.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Deterministic randomness and message bodies

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The payload of message `id`: its length and bytes follow from the id alone.
fn payload(id: u64) -> Vec<u8> {
    let mut rng = Rng(id ^ 0x0005_eed0_f1d5);
    let len = rng.range(8, 2048) as usize;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `id (u64 LE) | payload length (u32 LE) | payload | fnv1a of everything before (u64 LE)`.
fn encode(id: u64) -> Vec<u8> {
    let p = payload(id);
    let mut body = Vec::with_capacity(p.len() + 20);
    body.extend_from_slice(&id.to_le_bytes());
    body.extend_from_slice(&(p.len() as u32).to_le_bytes());
    body.extend_from_slice(&p);
    let sum = fnv1a(&body);
    body.extend_from_slice(&sum.to_le_bytes());
    body
}

/// The id of an intact body, or why it is corrupt.
fn decode(body: &[u8]) -> Result<u64, String> {
    if body.len() < 20 {
        return Err(format!("body of {} bytes", body.len()));
    }
    let (content, sum) = body.split_at(body.len() - 8);
    if fnv1a(content) != u64::from_le_bytes(sum.try_into().unwrap()) {
        return Err(format!("checksum mismatch in a body of {} bytes", body.len()));
    }
    let id = u64::from_le_bytes(content[..8].try_into().unwrap());
    let len = u32::from_le_bytes(content[8..12].try_into().unwrap()) as usize;
    if len != content.len() - 12 || content[12..] != payload(id)[..] {
        return Err(format!("payload of id {id} differs"));
    }
    Ok(id)
}

// ---------------------------------------------------------------------------------------------
// What the clients saw

#[derive(Default)]
struct Track {
    published: u64,
    confirmed: HashSet<u64>,
    nacked: u64,
    /// Deliveries per id.
    delivered: HashMap<u64, u32>,
    deliveries: u64,
    redelivered: u64,
    /// Deliveries of an id delivered before (each must carry redelivered=true).
    repeat_deliveries: u64,
    acked_known: HashSet<u64>,
    corrupt: Vec<String>,
    /// Ids delivered again after their ack was known processed.
    resurrected: Vec<u64>,
    /// Ids delivered again without the redelivered flag.
    missing_redelivered_flag: Vec<u64>,
    reconnects: u64,
}

struct Shared {
    url: String,
    track: Mutex<Track>,
    next_id: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn track(&self) -> std::sync::MutexGuard<'_, Track> {
        self.track.lock().unwrap()
    }

    fn backlog(&self) -> u64 {
        let t = self.track();
        t.published.saturating_sub(t.delivered.len() as u64)
    }
}

async fn connect_retry(shared: &Shared) -> Option<Connection> {
    let deadline = Instant::now() + RECONNECT_DEADLINE;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(&shared.url, ConnectionProperties::default()),
        )
        .await;
        if let Ok(Ok(conn)) = attempt {
            return Some(conn);
        }
        assert!(
            Instant::now() < deadline,
            "could not reconnect to {} within {RECONNECT_DEADLINE:?}",
            shared.url
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn op<T>(f: impl std::future::Future<Output = lapin::Result<T>>) -> Option<T> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(Ok(v)) => Some(v),
        _ => None,
    }
}

/// Publishes batches with confirms until told to stop; reconnects after every failure.
async fn publisher(shared: Arc<Shared>) {
    let mut first = true;
    'connect: loop {
        let Some(conn) = connect_retry(&shared).await else { return };
        if !std::mem::take(&mut first) {
            shared.track().reconnects += 1;
        }
        let Some(ch) = op(conn.create_channel()).await else { continue };
        if op(ch.confirm_select(ConfirmSelectOptions::default())).await.is_none() {
            continue;
        }
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                let _ = op(conn.close(200, "done".into())).await;
                return;
            }
            if shared.backlog() > MAX_BACKLOG {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let mut pending = Vec::with_capacity(PUBLISH_BATCH);
            for _ in 0..PUBLISH_BATCH {
                let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                let props =
                    BasicProperties::default().with_delivery_mode(2).with_message_id(id.to_string().into());
                let sent = op(ch.basic_publish(
                    "".into(),
                    QUEUE.into(),
                    BasicPublishOptions::default(),
                    &encode(id),
                    props,
                ))
                .await;
                shared.track().published += 1;
                match sent {
                    Some(confirm) => pending.push((id, confirm)),
                    None => continue 'connect,
                }
            }
            for (id, confirm) in pending {
                match tokio::time::timeout(OP_TIMEOUT, confirm).await {
                    Ok(Ok(Confirmation::Ack(_))) => {
                        shared.track().confirmed.insert(id);
                    }
                    Ok(Ok(_)) => shared.track().nacked += 1,
                    _ => continue 'connect,
                }
            }
        }
    }
}

/// Records one delivery; returns its id if the body is intact.
fn record_delivery(shared: &Shared, body: &[u8], message_id: Option<&str>, redelivered: bool) -> Option<u64> {
    let mut t = shared.track();
    t.deliveries += 1;
    if redelivered {
        t.redelivered += 1;
    }
    let id = match decode(body) {
        Ok(id) if message_id == Some(id.to_string().as_str()) => id,
        Ok(id) => {
            t.corrupt.push(format!("id {id} with message-id {message_id:?}"));
            return None;
        }
        Err(why) => {
            t.corrupt.push(why);
            return None;
        }
    };
    if t.acked_known.contains(&id) {
        t.resurrected.push(id);
    }
    let before = t.delivered.get(&id).copied().unwrap_or(0);
    if before > 0 {
        t.repeat_deliveries += 1;
        if !redelivered {
            t.missing_redelivered_flag.push(id);
        }
    }
    t.delivered.insert(id, before + 1);
    Some(id)
}

/// Consumes with manual acks; every `ACKS_PER_SYNC` acks a basic.qos round trip makes them
/// known processed. `stop_when_empty`: the final drain, which ends once the queue is empty.
async fn consumer(shared: Arc<Shared>, seed: u64, stop_when_empty: bool) {
    let mut rng = Rng(seed);
    let mut first = true;
    'connect: loop {
        let Some(conn) = connect_retry(&shared).await else { return };
        if !std::mem::take(&mut first) {
            shared.track().reconnects += 1;
        }
        let Some(ch) = op(conn.create_channel()).await else { continue };
        if op(ch.basic_qos(PREFETCH, BasicQosOptions::default())).await.is_none() {
            continue;
        }
        let Some(mut deliveries) = op(ch.basic_consume(
            QUEUE.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        else {
            continue;
        };
        let mut sent_acks: Vec<u64> = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_millis(200), deliveries.next()).await;
            let d = match next {
                Err(_) => {
                    // idle: settle what is pending, then maybe finish
                    if !sync_acks(&shared, &ch, &mut sent_acks).await {
                        continue 'connect;
                    }
                    let finish = if stop_when_empty {
                        queue_is_empty(&conn).await
                    } else {
                        shared.stop.load(Ordering::SeqCst)
                    };
                    if finish {
                        let _ = op(conn.close(200, "done".into())).await;
                        return;
                    }
                    continue;
                }
                Ok(Some(Ok(d))) => d,
                Ok(_) => continue 'connect,
            };
            let message_id = d.properties.message_id().as_ref().map(|s| s.as_str().to_owned());
            let id = record_delivery(&shared, &d.data, message_id.as_deref(), d.redelivered);
            if !stop_when_empty && id.is_some() && rng.range(1, 1000) <= LEAVE_UNACKED_PER_MILLE {
                continue;
            }
            if op(d.acker.ack(BasicAckOptions::default())).await.is_none() {
                continue 'connect;
            }
            if let Some(id) = id {
                sent_acks.push(id);
            }
            if sent_acks.len() >= ACKS_PER_SYNC && !sync_acks(&shared, &ch, &mut sent_acks).await {
                continue 'connect;
            }
        }
    }
}

/// A basic.qos round trip on the channel of the acks: once it is answered, they were processed.
async fn sync_acks(shared: &Shared, ch: &Channel, sent: &mut Vec<u64>) -> bool {
    if sent.is_empty() {
        return true;
    }
    if op(ch.basic_qos(PREFETCH, BasicQosOptions::default())).await.is_none() {
        sent.clear();
        return false;
    }
    shared.track().acked_known.extend(sent.drain(..));
    true
}

async fn queue_is_empty(conn: &Connection) -> bool {
    let Some(ch) = op(conn.create_channel()).await else { return false };
    let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
    let empty = op(ch.queue_declare(QUEUE.into(), passive, FieldTable::default()))
        .await
        .is_some_and(|q| q.message_count() == 0);
    let _ = op(ch.close(200, "bye".into())).await;
    empty
}

async fn drain(shared: &Arc<Shared>, seed: u64) {
    shared.stop.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(120), consumer(shared.clone(), seed, true))
        .await
        .expect("the final drain did not finish within 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_random_crashes() {
    let cycles: u32 = std::env::var("WARREN_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("WARREN_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    println!("crash test: seed={seed} cycles={cycles} (reproduce with WARREN_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = Rng(seed);

    let mut b = DurableBroker::start(&[]).await;
    {
        let c = b.connect().await;
        let ch = c.channel().await;
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        within(ch.queue_declare(QUEUE.into(), durable, FieldTable::default())).await.expect("declare");
    }
    let shared = Arc::new(Shared {
        url: b.url(),
        track: Mutex::new(Track::default()),
        next_id: AtomicU64::new(1),
        stop: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for _ in 0..PUBLISHERS {
        tasks.push(tokio::spawn(publisher(shared.clone())));
    }
    for _ in 0..CONSUMERS {
        tasks.push(tokio::spawn(consumer(shared.clone(), rng.next(), false)));
    }

    for cycle in 1..=cycles {
        let delay = rng.range(100, 1500);
        // the workload runs for a random time before the crash
        tokio::time::sleep(Duration::from_millis(delay)).await;
        for t in &tasks {
            assert!(!t.is_finished(), "a client task ended early (cycle {cycle})");
        }
        b.kill();
        b.spawn().await;
        if cycle % 10 == 0 {
            let t = shared.track();
            println!(
                "  cycle {cycle}: published={} confirmed={} delivered={} acked={} ({:?})",
                t.published,
                t.confirmed.len(),
                t.delivered.len(),
                t.acked_known.len(),
                started.elapsed()
            );
        }
    }

    // let the clients finish their round (the broker stays up), then drain everything
    let cycles_took = started.elapsed();
    shared.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a client did not stop")
            .expect("client task");
    }
    drain(&shared, rng.next()).await;
    // and once more after a last crash: nothing acknowledged may come back
    b.kill();
    b.spawn().await;
    drain(&shared, rng.next()).await;
    println!(
        "crash test: cycles took {cycles_took:?}, stopping and draining {:?}",
        started.elapsed() - cycles_took
    );

    let t = shared.track();
    let lost: Vec<u64> = {
        let mut v: Vec<u64> =
            t.confirmed.iter().filter(|id| !t.delivered.contains_key(id)).copied().collect();
        v.sort_unstable();
        v
    };
    let unknown: Vec<u64> =
        t.delivered.keys().filter(|id| **id >= shared.next_id.load(Ordering::SeqCst)).copied().collect();
    println!(
        "crash test: seed={seed} cycles={cycles} published={} confirmed={} nacked={} delivered={} (distinct {}) \
         redelivered={} repeat_deliveries={} acked={} lost={} resurrected={} corrupt={} missing_redelivered_flag={} \
         reconnects={} elapsed={:?}",
        t.published,
        t.confirmed.len(),
        t.nacked,
        t.deliveries,
        t.delivered.len(),
        t.redelivered,
        t.repeat_deliveries,
        t.acked_known.len(),
        lost.len(),
        t.resurrected.len(),
        t.corrupt.len(),
        t.missing_redelivered_flag.len(),
        t.reconnects,
        started.elapsed()
    );
    assert!(t.confirmed.len() > 100, "too little work was done to mean anything");
    assert!(
        lost.is_empty(),
        "confirmed messages lost: {} (first ids {:?})",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    assert!(t.corrupt.is_empty(), "corrupt deliveries: {:?}", &t.corrupt[..t.corrupt.len().min(20)]);
    assert!(
        t.resurrected.is_empty(),
        "delivered again after their ack was known processed: {:?}",
        &t.resurrected[..t.resurrected.len().min(20)]
    );
    assert!(
        t.missing_redelivered_flag.is_empty(),
        "delivered again without redelivered=true: {:?}",
        &t.missing_redelivered_flag[..t.missing_redelivered_flag.len().min(20)]
    );
    assert!(unknown.is_empty(), "ids never published were delivered: {unknown:?}");
}
