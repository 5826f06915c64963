//! Resource alarms: publishing connections are blocked (connection.blocked to clients that
//! advertise the capability, and their further publishes are not read) while the data
//! directory's disk has less free space than the limit (`--disk-free-limit`), or the broker uses
//! more memory than `--vm-memory-high-watermark`. A disk that really fills up is in
//! [`crate::disk_full`].
//!
//! The limit cannot be changed while the broker runs (there is no flag or command for it), so
//! the alarm is raised either by starting with a limit above the disk's free space, or - when
//! the tests run as root and may mount - by filling and freeing a small tmpfs holding the data
//! directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::durable::{DurableBroker, Stop};
use crate::common::raw::RawConn;
use crate::common::*;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use warren_testkit::{content_header_frame_with, frame, method_frame, methods, Frame, FRAME_BODY, W};

const Q: &str = "dq-alarm";
/// Far above any disk's free space.
const HUGE_LIMIT: &str = "9223372036854775807";

const CONNECTION_BLOCKED: (u16, u16) = (10, 60);
const CONNECTION_UNBLOCKED: (u16, u16) = (10, 61);
const BASIC_ACK: (u16, u16) = (60, 80);

/// A hand-driven client that advertises the `connection.blocked` capability (and publisher
/// confirms), on vhost "/" as guest. Returns the connection and every frame that arrived after
/// connection.open-ok up to the reply of a round trip (a passive queue.declare on channel 1,
/// which is left open).
async fn blocked_aware_client(addr: SocketAddr) -> (RawConn, Vec<Frame>) {
    let props =
        methods::client_properties("warren-disk-alarm-test", &["connection.blocked", "publisher_confirms"]);
    let mut c = RawConn::handshake_with(addr, "/", &props).await;
    c.send_method(1, 20, 10, &W::new().shortstr("").build()).await;
    let mut seen = read_until(&mut c, |f| f.method_id() == Some((20, 11))).await;
    let declare = W::new().u16(0).shortstr(Q).bits(&[true, true, false, false, false]).empty_table().build();
    c.send_method(1, 50, 10, &declare).await;
    seen.extend(read_until(&mut c, |f| f.method_id() == Some((50, 11))).await);
    (c, seen)
}

/// Reads frames until one matches (returned last), panicking after [`TIMEOUT`].
async fn read_until(c: &mut RawConn, mut done: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut frames = Vec::new();
    loop {
        let f = tokio::time::timeout_at(deadline, c.next_frame())
            .await
            .unwrap_or_else(|_| panic!("no awaited frame within {TIMEOUT:?}; got {frames:?}"));
        if f.method_id() == Some((10, 50)) || f.method_id() == Some((20, 40)) {
            panic!("closed by the broker: {:?}", methods::parse_close(&f));
        }
        let stop = done(&f);
        frames.push(f);
        if stop {
            return frames;
        }
    }
}

fn has_method(frames: &[Frame], id: (u16, u16)) -> bool {
    frames.iter().any(|f| f.method_id() == Some(id))
}

/// The highest delivery tag confirmed by the basic.ack frames among `frames`.
fn confirmed_up_to(frames: &[Frame]) -> u64 {
    frames.iter().filter(|f| f.method_id() == Some(BASIC_ACK)).map(|f| f.args().u64()).max().unwrap_or(0)
}

fn blocked_reason(frames: &[Frame]) -> Option<String> {
    frames.iter().find(|f| f.method_id() == Some(CONNECTION_BLOCKED)).map(|f| f.args().shortstr())
}

/// basic.publish of a persistent message on channel 1 to queue `Q`.
fn persistent_publish(body: &[u8]) -> Vec<u8> {
    let mut bytes = method_frame(1, 60, 40, &methods::publish("", Q, false, false));
    // property flags: delivery-mode only (bit 12), then its octet
    bytes.extend(content_header_frame_with(1, body.len() as u64, 0x1000, &[2]));
    bytes.extend(frame(FRAME_BODY, 1, body));
    bytes
}

async fn confirm_select(c: &mut RawConn) {
    c.send_method(1, 85, 10, &W::new().bits(&[false]).build()).await;
    read_until(c, |f| f.method_id() == Some((85, 11))).await;
}

async fn confirm_channel(c: &Client) -> Channel {
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.expect("confirm.select");
    ch
}

async fn publish_confirmed(ch: &Channel, body: &str) {
    let confirmation = within(async {
        ch.basic_publish(
            "".into(),
            Q.into(),
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
    assert!(matches!(confirmation, Confirmation::Ack(_)));
}

async fn declare_durable(ch: &Channel) -> u32 {
    within(ch.queue_declare(
        Q.into(),
        QueueDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .expect("declare")
    .message_count()
}

/// The number of ready messages in `Q`, asked over a connection that does not advertise
/// `connection.blocked` and never publishes.
async fn raw_message_count(addr: SocketAddr) -> u32 {
    let mut c = RawConn::handshake(addr).await;
    c.open_channel(1).await;
    let declare = W::new().u16(0).shortstr(Q).bits(&[true, true, false, false, false]).empty_table().build();
    c.send_method(1, 50, 10, &declare).await;
    let ok = c.expect_method(1, (50, 11)).await;
    let mut a = ok.args();
    a.shortstr();
    a.u32()
}

/// A broker whose queue `Q` holds `n` confirmed persistent messages, restarted with `args`.
async fn with_confirmed_messages(n: usize, args: &[&str]) -> DurableBroker {
    let mut b = DurableBroker::start(&[]).await;
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_durable(&ch).await;
        for i in 0..n {
            publish_confirmed(&ch, &format!("c{i}")).await;
        }
    }
    assert!(b.stop(Stop::Term).success());
    b.set_args(args);
    b.spawn().await;
    b
}

/// Every message of `Q` via basic.get with acks.
async fn get_all(ch: &Channel) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = within(ch.basic_get(Q.into(), BasicGetOptions::default())).await.expect("basic.get") {
        out.push(text(&m.delivery.data));
        within(m.delivery.acker.ack(BasicAckOptions::default())).await.expect("ack");
    }
    within(ch.basic_qos(0, BasicQosOptions::default())).await.expect("qos");
    out
}

/// With the alarm on from the start: a publishing connection gets connection.blocked ("low on
/// disk", RabbitMQ's text); the publish that made it a publisher is taken in and confirmed (as
/// in RabbitMQ, which blocks a connection once it publishes); the ones after it are not read,
/// so never confirmed and never stored. Everything confirmed before is still there.
#[tokio::test]
async fn publisher_is_blocked_and_nothing_confirmed_is_lost() {
    let mut b = with_confirmed_messages(20, &["--disk-free-limit", HUGE_LIMIT]).await;

    let (mut c, mut seen) = blocked_aware_client(b.addr()).await;
    confirm_select(&mut c).await;
    c.send(&persistent_publish(b"first")).await;
    seen.extend(read_until(&mut c, |f| f.method_id() == Some(BASIC_ACK)).await);
    if blocked_reason(&seen).is_none() {
        seen.extend(read_until(&mut c, |f| f.method_id() == Some(CONNECTION_BLOCKED)).await);
    }
    assert_eq!(blocked_reason(&seen).as_deref(), Some("low on disk"));
    assert_eq!(confirmed_up_to(&seen), 1);

    // blocked now: these are not taken in
    c.send(&persistent_publish(b"second")).await;
    c.send(&persistent_publish(b"third")).await;
    let later = c.frames_within(Duration::from_millis(1500)).await;
    assert!(!has_method(&later, BASIC_ACK), "a publish was confirmed while blocked: {later:?}");
    assert!(!has_method(&later, CONNECTION_UNBLOCKED), "unblocked while the alarm is on");
    assert_eq!(raw_message_count(b.addr()).await, 21, "messages in the queue while blocked");
    drop(c);

    // after a crash and a start without the alarm: exactly the confirmed ones, intact
    b.set_args(&[]);
    b.restart(Stop::Kill).await;
    let client = b.connect().await;
    let ch = client.channel().await;
    let mut want: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    want.push("first".into());
    assert_eq!(get_all(&ch).await, want);
}

/// RabbitMQ sends connection.blocked only to connections that publish while the alarm is on
/// (rabbit_reader: should_block is set by publish_received); a connection that only consumes is
/// neither blocked nor told it is.
#[tokio::test]
async fn consuming_connection_is_not_sent_connection_blocked() {
    let b = with_confirmed_messages(3, &["--disk-free-limit", HUGE_LIMIT]).await;
    let (_c, seen) = blocked_aware_client(b.addr()).await;
    assert_eq!(
        blocked_reason(&seen),
        None,
        "a connection that has not published was sent connection.blocked"
    );
}

/// What that means for a lapin consumer: lapin stops writing while it believes its connection
/// blocked, so a consumer could not acknowledge (or even start) during a disk alarm, when
/// draining queues is what frees space.
#[tokio::test]
async fn lapin_consumer_drains_the_queue_during_a_disk_alarm() {
    let b = with_confirmed_messages(20, &["--disk-free-limit", HUGE_LIMIT]).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    within(ch.basic_qos(5, BasicQosOptions::default())).await.unwrap();
    let mut consumer =
        within(ch.basic_consume(Q.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()))
            .await
            .unwrap();
    for i in 0..20 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(text(&d.data), format!("c{i}"));
        within(d.acker.ack(BasicAckOptions::default())).await.unwrap();
    }
    within(ch.basic_qos(5, BasicQosOptions::default())).await.unwrap();
    assert_eq!(raw_message_count(b.addr()).await, 0);
}

/// An operator must be able to see why publishers hang: the alarm is logged also when it is
/// already on as the broker starts (today only a change of state is logged).
#[tokio::test]
async fn alarm_on_at_start_is_logged() {
    let b = DurableBroker::start(&["--disk-free-limit", HUGE_LIMIT]).await;
    eventually("the alarm is logged", || async {
        b.log().contains("free disk space is below the limit").then_some(())
    })
    .await;
}

/// The memory alarm (`--vm-memory-high-watermark`), here below what the broker uses from the
/// start: a publisher is blocked with RabbitMQ's "low on memory", and the log says why.
#[tokio::test]
async fn memory_alarm_blocks_publishers() {
    let b = with_confirmed_messages(1, &["--vm-memory-high-watermark", "absolute:1MB"]).await;
    assert_eq!(publish_until_blocked(b.addr()).await, "low on memory");
    assert!(b.log().contains("memory use is above the high watermark"), "not logged:\n{}", b.log());
}

/// Both alarms at once read as RabbitMQ 3.10 words them.
#[tokio::test]
async fn disk_and_memory_alarms_together() {
    let args = ["--vm-memory-high-watermark", "absolute:1MB", "--disk-free-limit", HUGE_LIMIT];
    let b = with_confirmed_messages(1, &args).await;
    assert_eq!(publish_until_blocked(b.addr()).await, "low on disk & memory");
}

/// Publishes one persistent message with confirms from a client that asks to be told about
/// blocking; returns connection.blocked's reason.
async fn publish_until_blocked(addr: SocketAddr) -> String {
    let (mut c, mut seen) = blocked_aware_client(addr).await;
    assert_eq!(blocked_reason(&seen), None, "blocked before publishing");
    confirm_select(&mut c).await;
    c.send(&persistent_publish(b"first")).await;
    seen.extend(read_until(&mut c, |f| f.method_id() == Some(CONNECTION_BLOCKED)).await);
    blocked_reason(&seen).expect("connection.blocked")
}

// ---------------------------------------------------------------------------------------------
// Alarm raised and cleared at runtime, on a small tmpfs

/// A tmpfs mounted for the test, unmounted when dropped.
pub(crate) struct Tmpfs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes, or None when this is not possible here (not root, no
    /// permission in a container...).
    pub(crate) fn mount(size: u64) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new().prefix("warren-tmpfs-").tempdir().ok()?;
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).ok()?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("cannot mount a tmpfs ({}): skipping", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        Some(Tmpfs { _dir: dir, mount })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

pub(crate) fn free_bytes(path: &Path) -> u64 {
    let out =
        std::process::Command::new("df").args(["-B1", "--output=avail"]).arg(path).output().expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

/// Writes `n` bytes (real data: a sparse file would take no space on tmpfs).
pub(crate) fn fill(path: &Path, n: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("create filler");
    let block = vec![0x5au8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len() as u64) as usize;
        f.write_all(&block[..k]).expect("write filler");
        left -= k as u64;
    }
    f.sync_all().unwrap();
}

#[tokio::test]
async fn blocked_while_the_disk_is_full_and_unblocked_when_space_comes_back() {
    const MIB: u64 = 1 << 20;
    let Some(tmpfs) = Tmpfs::mount(64 * MIB) else { return };
    let data = tmpfs.path().join("data");
    let limit = 24 * MIB;
    let mut b = DurableBroker::start_in(&data, &["--disk-free-limit", &limit.to_string()]).await;
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_durable(&ch).await;
        publish_confirmed(&ch, "before").await;
    }

    let (mut c, seen) = blocked_aware_client(b.addr()).await;
    assert_eq!(blocked_reason(&seen), None, "blocked with free space above the limit");
    confirm_select(&mut c).await;
    c.send(&persistent_publish(b"p0")).await;
    let seen = read_until(&mut c, |f| f.method_id() == Some(BASIC_ACK)).await;
    assert_eq!(confirmed_up_to(&seen), 1);

    // take the free space below the limit: the broker notices within its check interval
    let filler = tmpfs.path().join("filler");
    let free = free_bytes(tmpfs.path());
    assert!(free > limit + 8 * MIB, "tmpfs has only {free} bytes free");
    fill(&filler, free - limit + 8 * MIB);
    let raised = Instant::now();
    let seen = read_until(&mut c, |f| f.method_id() == Some(CONNECTION_BLOCKED)).await;
    assert_eq!(blocked_reason(&seen).as_deref(), Some("low on disk"));
    eprintln!("connection.blocked {:?} after the disk filled up", raised.elapsed());

    c.send(&persistent_publish(b"p1")).await;
    c.send(&persistent_publish(b"p2")).await;
    let later = c.frames_within(Duration::from_millis(1500)).await;
    assert!(!has_method(&later, BASIC_ACK), "a publish was confirmed while blocked: {later:?}");
    assert_eq!(raw_message_count(b.addr()).await, 2);

    // free the space: unblocked, and what waited in the socket is taken in and confirmed
    std::fs::remove_file(&filler).unwrap();
    let seen = read_until(&mut c, |f| f.method_id() == Some(CONNECTION_UNBLOCKED)).await;
    assert!(has_method(&seen, CONNECTION_UNBLOCKED));
    let mut acks = seen;
    while confirmed_up_to(&acks) < 3 {
        acks.extend(read_until(&mut c, |f| f.method_id() == Some(BASIC_ACK)).await);
    }
    c.send(&persistent_publish(b"p3")).await;
    while confirmed_up_to(&acks) < 4 {
        acks.extend(read_until(&mut c, |f| f.method_id() == Some(BASIC_ACK)).await);
    }
    drop(c);

    b.restart(Stop::Kill).await;
    let client = b.connect().await;
    let ch = client.channel().await;
    assert_eq!(get_all(&ch).await, ["before", "p0", "p1", "p2", "p3"]);
    drop(client);
    b.kill();
    let log = b.all_logs();
    assert!(log.contains("free disk space is below the limit"), "alarm not logged:\n{log}");
    assert!(log.contains("free disk space is back above the limit"), "end of alarm not logged:\n{log}");
}
