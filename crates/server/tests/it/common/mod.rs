//! Shared harness for Warren's integration tests.
//!
//! * If `WARREN_TEST_URL` is set (e.g. `amqp://guest:guest@127.0.0.1:5682/`),
//!   every test talks to that broker (this is how the suite is validated
//!   against the reference RabbitMQ, see `scripts/rabbitmq-ref.sh`).
//! * Otherwise each test spawns its own `warren` binary on a free loopback
//!   port with a fresh data directory and kills it when the [`Broker`] handle
//!   is dropped.
//!
//! Tests never sleep to wait for a condition: they poll with a deadline.
#![allow(dead_code)]

pub mod admin_cli;
pub mod durable;
pub mod http;
pub mod raw;
pub mod rng;

use std::fmt::Debug;
use std::fs::File;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::{Stream, StreamExt};
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ErrorKind, Event};

/// Upper bound for any single broker interaction in a test.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long the spawned broker gets to start accepting TCP connections.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker under test: either the external one from `WARREN_TEST_URL` or a
/// `warren` process owned by this handle.
pub struct Broker {
    addr: SocketAddr,
    child: Option<Child>,
    log: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Broker {
    /// Returns a handle to the broker the tests should use.
    pub async fn start() -> Broker {
        match std::env::var("WARREN_TEST_URL") {
            Ok(url) if !url.trim().is_empty() => {
                Broker { addr: addr_from_url(url.trim()), child: None, log: None, _dir: None }
            }
            _ => Self::spawn().await,
        }
    }

    async fn spawn() -> Broker {
        let dir = tempfile::Builder::new().prefix("warren-test-").tempdir().expect("create temp dir");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let log = dir.path().join("broker.log");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let out = File::create(&log).expect("create broker log");
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            // Any free port: tests run many brokers at once, and 15672 may be taken.
            .arg("--management-listen")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn warren binary");
        let mut broker = Broker { addr, child: Some(child), log: Some(log), _dir: Some(dir) };
        broker.wait_ready().await;
        broker
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("warren exited during startup with {status}; log:\n{}", self.log_contents());
                }
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "warren did not accept connections on {} within {:?}; log:\n{}",
                    self.addr,
                    STARTUP_TIMEOUT,
                    self.log_contents()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_contents(&self) -> String {
        self.log.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default()
    }

    /// The resident memory of the broker process we spawned, in bytes (None for an external
    /// broker, or where /proc cannot tell).
    pub fn rss(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// The broker's TCP address (for raw-socket tests).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL for guest/guest on the default vhost.
    pub fn url(&self) -> String {
        self.url_with("guest", "guest", "/")
    }

    /// A URL with explicit credentials and vhost.
    pub fn url_with(&self, user: &str, pass: &str, vhost: &str) -> String {
        format!("amqp://{user}:{pass}@{}/{}", self.addr, percent_encode(vhost))
    }

    /// Opens a client connection as guest on "/".
    pub async fn connect(&self) -> Client {
        Client::connect(&self.url()).await
    }

    /// Tries to open a connection with the given URL.
    pub async fn try_connect(&self, url: &str) -> lapin::Result<Connection> {
        within(Connection::connect(url, ConnectionProperties::default())).await
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                let log = self.log_contents();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("---- last lines of the warren log ----");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn addr_from_url(url: &str) -> SocketAddr {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("WARREN_TEST_URL without scheme: {url}"));
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let hostport = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:5672") };
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .unwrap_or_else(|| panic!("cannot resolve broker address {hostport}"))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Picks a currently free loopback port (bind to :0 and release it).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().unwrap().port()
}

/// A unique name for queues/exchanges so that tests can run in parallel
/// against one broker.
pub fn uniq(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// Awaits `f`, panicking if it takes longer than [`TIMEOUT`].
pub async fn within<F: Future>(f: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(v) => v,
        Err(_) => panic!("operation timed out after {TIMEOUT:?}"),
    }
}

/// Polls `check` until it returns `Some`, or panics after [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("condition not reached within {TIMEOUT:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The (reply-code, reply-text) of an AMQP protocol error, if it is one.
pub fn amqp_error(e: &lapin::Error) -> Option<(u16, String)> {
    match e.kind() {
        ErrorKind::ProtocolError(err) => Some((err.get_id(), err.get_message().to_string())),
        _ => None,
    }
}

/// Awaits an operation that must fail with a channel/connection close and
/// returns its (reply-code, reply-text).
pub async fn expect_err<T: Debug>(f: impl Future<Output = lapin::Result<T>>) -> (u16, String) {
    match within(f).await {
        Ok(v) => panic!("expected an AMQP error, got Ok({v:?})"),
        Err(e) => amqp_error(&e).unwrap_or_else(|| panic!("expected an AMQP error, got {e:?}")),
    }
}

/// Asserts that an operation fails with exactly this reply code and text.
pub async fn assert_err<T: Debug>(f: impl Future<Output = lapin::Result<T>>, code: u16, text: &str) {
    let (c, t) = expect_err(f).await;
    assert_eq!((c, t.as_str()), (code, text), "unexpected close reason");
}

/// A lapin connection plus a subscription to its events, so that
/// asynchronous channel/connection closes (e.g. after a basic.ack with an
/// unknown delivery tag, which has no reply) can be observed with their
/// reply code and text.
pub struct Client {
    pub conn: Connection,
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let conn = within(Connection::connect(url, ConnectionProperties::default()))
            .await
            .expect("connect to broker");
        let events = Box::pin(conn.events_listener());
        Client { conn, events }
    }

    pub async fn channel(&self) -> Channel {
        within(self.conn.create_channel()).await.expect("open channel")
    }

    /// Waits for the next asynchronous AMQP error (channel or connection
    /// close sent by the broker) and returns (reply-code, reply-text).
    pub async fn next_error(&mut self) -> (u16, String) {
        loop {
            let ev = within(self.events.next()).await.expect("connection event stream ended");
            if let Event::Error(e) = ev {
                if let Some(err) = amqp_error(&e) {
                    return err;
                }
            }
        }
    }

    /// Asserts that the broker closes a channel/the connection with this
    /// reply code and text (asynchronously).
    pub async fn assert_next_error(&mut self, code: u16, text: &str) {
        let (c, t) = self.next_error().await;
        assert_eq!((c, t.as_str()), (code, text), "unexpected close reason");
    }

    pub async fn close(&self) {
        let _ = within(self.conn.close(200, "bye".into())).await;
    }
}

/// Declares a non-durable, non-exclusive queue with default arguments.
pub async fn declare_queue(ch: &Channel, name: &str) -> lapin::Queue {
    within(ch.queue_declare(name.into(), QueueDeclareOptions::default(), FieldTable::default()))
        .await
        .unwrap_or_else(|e| panic!("declare queue {name}: {e:?}"))
}

/// Publishes a message and waits until the client has handed it over.
pub async fn publish(ch: &Channel, exchange: &str, routing_key: &str, body: &[u8]) {
    publish_with(ch, exchange, routing_key, body, BasicProperties::default()).await
}

pub async fn publish_with(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) {
    within(async {
        ch.basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), body, props)
            .await
            .expect("basic.publish")
            .await
            .expect("publish confirmation")
    })
    .await;
}

/// Basic.get with manual ack mode.
pub async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    within(ch.basic_get(queue.into(), lapin::options::BasicGetOptions::default())).await.expect("basic.get")
}

/// Basic.get in no-ack mode, returning only the body.
pub async fn get_body(ch: &Channel, queue: &str) -> Option<Vec<u8>> {
    within(ch.basic_get(queue.into(), lapin::options::BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get")
        .map(|m| m.delivery.data)
}

/// Number of ready messages in a queue (via a passive declare).
pub async fn message_count(ch: &Channel, queue: &str) -> u32 {
    within(ch.queue_declare(
        queue.into(),
        QueueDeclareOptions { passive: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap_or_else(|e| panic!("passive declare {queue}: {e:?}"))
    .message_count()
}

/// Polls until the queue holds exactly `n` ready messages.
pub async fn wait_message_count(ch: &Channel, queue: &str, n: u32) {
    let what = format!("queue {queue} has {n} messages");
    eventually(&what, || async { (message_count(ch, queue).await == n).then_some(()) }).await
}

/// Drains every message from a queue with no-ack basic.get, returning bodies.
pub async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = get_body(ch, queue).await {
        out.push(b);
    }
    out
}

/// Next delivery from a consumer (panics on timeout, error or cancel).
pub async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    within(consumer.next()).await.expect("consumer ended").expect("consumer error")
}

/// Returns a delivery only if one is already buffered client-side.
pub async fn try_delivery(consumer: &mut Consumer) -> Option<Delivery> {
    match tokio::time::timeout(Duration::from_millis(1), consumer.next()).await {
        Ok(Some(Ok(d))) => Some(d),
        Ok(Some(Err(e))) => panic!("consumer error: {e:?}"),
        Ok(None) | Err(_) => None,
    }
}

pub fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

pub fn bodies(msgs: &[Vec<u8>]) -> Vec<String> {
    msgs.iter().map(|b| text(b)).collect()
}

/// Publishes on a channel in confirm mode and waits for the publisher confirm.
pub async fn confirmed(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
    mandatory: bool,
) -> lapin::Confirmation {
    within(async {
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions { mandatory, ..Default::default() },
            body,
            props,
        )
        .await
        .expect("basic.publish")
        .await
        .expect("publisher confirm")
    })
    .await
}
