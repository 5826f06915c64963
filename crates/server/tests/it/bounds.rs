//! The server's bounds and operations: listeners, the handshake timeout, the connection limit,
//! graceful shutdown and the operational log lines.
//!
//! These tests always spawn their own `warren` (they need its flags, its signals and its log).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::durable::{wait_port, DurableBroker};
use crate::common::*;

/// Runs `warren` with these flags until it exits by itself (or panics after [`TIMEOUT`]).
fn run_to_exit(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warren");
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("wait for warren").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("reap warren");
            panic!("warren did not exit within {TIMEOUT:?}: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect warren's output")
}

/// A loopback address on a free port.
fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

async fn try_connect(url: &str) -> lapin::Result<lapin::Connection> {
    within(lapin::Connection::connect(url, lapin::ConnectionProperties::default())).await
}

fn url(addr: SocketAddr) -> String {
    format!("amqp://guest:guest@{addr}/%2F")
}

// ---------------------------------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_address_in_use_stops_startup_before_the_data_directory_is_opened() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let free = free_addr().to_string();
    let started = Instant::now();
    let out = run_to_exit(&[
        "--listen",
        &free,
        "--listen",
        &addr.to_string(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stderr = durable::strip_ansi(&String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "warren started on an address in use:\n{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {addr}: ")), "the address is not named:\n{stderr}");
    assert!(stderr.contains("in use"), "the cause is not given:\n{stderr}");
    assert!(!stderr.contains("recovered the data directory"), "it recovered first:\n{stderr}");
    assert!(!Path::new(&data).exists(), "it opened the data directory first");
    assert!(started.elapsed() < Duration::from_secs(5), "it took {:?} to give up", started.elapsed());
}

#[tokio::test]
async fn every_listen_address_serves_clients() {
    let (a, b, c) = (free_addr(), free_addr(), free_addr());
    let broker = DurableBroker::start(&["--listen", &format!("{a},{b}"), "--listen", &c.to_string()]).await;
    for addr in [broker.addr(), a, b, c] {
        wait_port(addr).await;
        let client = Client::connect(&url(addr)).await;
        let ch = client.channel().await;
        declare_queue(&ch, &uniq("listen")).await;
        client.close().await;
    }
}

/// guest may only connect from loopback; through a dual-stack `[::]` listener an IPv4 loopback
/// client shows up as `::ffff:127.0.0.1`, which is loopback too.
#[tokio::test]
async fn guest_connects_through_an_ipv6_wildcard_listener_over_ipv4_loopback() {
    let port = match std::net::TcpListener::bind("[::]:0") {
        Ok(l) => l.local_addr().unwrap().port(),
        Err(e) => {
            println!("skipped: this machine cannot listen on [::] ({e})");
            return;
        }
    };
    let broker = DurableBroker::start(&["--listen", &format!("[::]:{port}")]).await;
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_port(v4).await;
    let client = Client::connect(&url(v4)).await;
    let ch = client.channel().await;
    declare_queue(&ch, &uniq("mapped")).await;
    client.close().await;
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    if tokio::net::TcpStream::connect(v6).await.is_ok() {
        Client::connect(&url(v6)).await.close().await;
    }
    drop(broker);
}

// ---------------------------------------------------------------------------------------------
// Handshake timeout
// ---------------------------------------------------------------------------------------------

/// A client that dribbles its protocol header one byte a second is dropped once the handshake
/// timeout has passed, without a word (as RabbitMQ).
#[tokio::test]
async fn a_client_that_does_not_finish_the_handshake_in_time_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let broker = DurableBroker::start(&["--handshake-timeout", "1500"]).await;
    let mut socket = tokio::net::TcpStream::connect(broker.addr()).await.unwrap();
    let connected = Instant::now();
    let mut drip = tokio::time::interval(Duration::from_secs(1));
    let mut header = warren_testkit::PROTOCOL_HEADER.iter();
    let mut received = Vec::new();
    let mut buf = [0u8; 64];
    let closed_after = within(async {
        loop {
            tokio::select! {
                _ = drip.tick() => {
                    if let Some(byte) = header.next() {
                        if socket.write_all(&[*byte]).await.is_err() {
                            return connected.elapsed();
                        }
                    }
                }
                read = socket.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return connected.elapsed(),
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                },
            }
        }
    })
    .await;
    assert!(received.is_empty(), "the broker sent {received:?}");
    assert!(closed_after >= Duration::from_millis(1400), "dropped after only {closed_after:?}");
    assert!(closed_after < Duration::from_secs(5), "dropped after {closed_after:?}");
    // A client that does not dawdle is served.
    broker.connect().await.close().await;
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------------

const SHUTDOWN_TEXT: &str = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'";

/// SIGTERM: every open connection is sent connection.close 320 with RabbitMQ's text, the broker
/// exits 0 within a few seconds, and what was written is there after a restart.
#[tokio::test]
async fn sigterm_closes_every_connection_with_320_and_exits_0() {
    let mut broker = DurableBroker::start(&[]).await;
    let mut lapin_client = broker.connect().await;
    let ch = lapin_client.channel().await;
    let queue = uniq("shutdown");
    within(ch.queue_declare(
        queue.as_str().into(),
        lapin::options::QueueDeclareOptions { durable: true, ..Default::default() },
        lapin::types::FieldTable::default(),
    ))
    .await
    .unwrap();
    let persistent = lapin::BasicProperties::default().with_delivery_mode(2);
    for i in 0..10 {
        let body = format!("m{i}");
        within(ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            Default::default(),
            body.as_bytes(),
            persistent.clone(),
        ))
        .await
        .unwrap();
    }
    // Taken and acknowledged before the stop: must not come back.
    for _ in 0..4 {
        let m = get(&ch, &queue).await.expect("a message");
        within(m.ack(Default::default())).await.unwrap();
    }
    wait_message_count(&ch, &queue, 6).await;
    let mut raw = raw::RawConn::handshake(broker.addr()).await;
    raw.open_channel(1).await;
    // One still in its handshake is simply dropped.
    let mut half_open = raw::RawConn::tcp(broker.addr()).await;
    half_open.send(warren_testkit::PROTOCOL_HEADER).await;

    let stopped = Instant::now();
    let stopping = tokio::task::spawn_blocking(move || {
        let status = broker.terminate();
        (broker, status)
    });
    let close = within(raw.expect_connection_close()).await;
    assert_eq!((close.code, close.text.as_str()), (320, SHUTDOWN_TEXT));
    assert_eq!((close.class_id, close.method_id), (0, 0));
    lapin_client.assert_next_error(320, SHUTDOWN_TEXT).await;
    let frames = within(half_open.expect_eof()).await;
    let methods: Vec<_> = frames.iter().map(|f| f.method_id()).collect();
    assert_eq!(methods, [Some((10, 10))], "only connection.start before the end");
    let (mut broker, status) = stopping.await.unwrap();
    assert!(status.success(), "warren exited with {status}; log:\n{}", broker.log());
    assert!(stopped.elapsed() < Duration::from_secs(5), "took {:?} to stop", stopped.elapsed());

    broker.spawn().await;
    let client = broker.connect().await;
    let ch = client.channel().await;
    let bodies: Vec<String> = drain(&ch, &queue).await.iter().map(|b| text(b)).collect();
    assert_eq!(bodies, ["m4", "m5", "m6", "m7", "m8", "m9"]);
}

/// A client that never answers the close does not hold the stop up for long.
#[tokio::test]
async fn sigterm_does_not_wait_long_for_a_silent_client() {
    let mut broker = DurableBroker::start(&[]).await;
    let mut raw = raw::RawConn::handshake(broker.addr()).await;
    raw.open_channel(1).await;
    let stopped = Instant::now();
    let status = tokio::task::spawn_blocking(move || broker.terminate()).await.unwrap();
    assert!(status.success(), "warren exited with {status}");
    assert!(stopped.elapsed() < Duration::from_secs(6), "took {:?} to stop", stopped.elapsed());
    // The close was sent even though nobody answered it.
    let frames = within(raw.expect_eof()).await;
    let close = frames.iter().find(|f| f.method_id() == Some((10, 50))).expect("a connection.close");
    assert_eq!(warren_testkit::methods::parse_close(close).code, 320);
}

// ---------------------------------------------------------------------------------------------
// Connection limit
// ---------------------------------------------------------------------------------------------

const LIMIT_TEXT: &str = "NOT_ALLOWED - connection refused: node connection limit (2) is reached";

/// Runs the handshake by hand up to connection.open and returns what the broker answers it with.
async fn open_answer(addr: SocketAddr) -> warren_testkit::Frame {
    use warren_testkit::{method_frame, W};
    let mut c = raw::RawConn::tcp(addr).await;
    c.send(warren_testkit::PROTOCOL_HEADER).await;
    c.expect_method(0, (10, 10)).await;
    let args = W::new().empty_table().shortstr("PLAIN").longstr(b"\0guest\0guest").shortstr("en_US").build();
    c.send(&method_frame(0, 10, 11, &args)).await;
    c.expect_method(0, (10, 30)).await;
    c.send(&method_frame(0, 10, 31, &W::new().u16(2047).u32(131_072).u16(0).build())).await;
    c.send(&method_frame(0, 10, 40, &W::new().shortstr("/").shortstr("").u8(0).build())).await;
    c.next_frame().await
}

/// max_connections counts accepted sockets (in their handshake or not); one over it is refused
/// at connection.open with 530, as RabbitMQ 3.11.x+ does; a closed connection frees its place.
#[tokio::test]
async fn connections_over_max_connections_are_refused_at_open() {
    let broker = DurableBroker::start(&["--max-connections", "2"]).await;
    let first = broker.connect().await;
    // A socket that has said nothing yet still holds a place.
    let idle = tokio::net::TcpStream::connect(broker.addr()).await.unwrap();
    let refused = open_answer(broker.addr()).await;
    assert_eq!(refused.method_id(), Some((10, 50)), "expected connection.close, got {refused:?}");
    let close = warren_testkit::methods::parse_close(&refused);
    assert_eq!((close.code, close.text.as_str()), (530, LIMIT_TEXT));
    assert_eq!((close.class_id, close.method_id), (10, 40));
    let (code, text) = expect_err(broker.try_connect()).await;
    assert_eq!((code, text.as_str()), (530, LIMIT_TEXT));

    drop(idle);
    let second =
        eventually("the idle socket's place is free", || async { broker.try_connect().await.ok() }).await;
    assert!(broker.try_connect().await.is_err(), "a third connection was let in");
    within(second.close(200, "bye".into())).await.unwrap();
    first.close().await;
    eventually("both places are free", || async {
        (open_answer(broker.addr()).await.method_id() == Some((10, 41))).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Operational log lines
// ---------------------------------------------------------------------------------------------

/// Waits until one line of the broker's log has every one of these fragments; returns it.
async fn logged(broker: &DurableBroker, fragments: &[&str]) -> String {
    let what = format!("a log line with {fragments:?}");
    eventually(&what, || async {
        broker.log().lines().find(|line| fragments.iter().all(|f| line.contains(f))).map(str::to_owned)
    })
    .await
}

/// Completes a handshake by hand with this heartbeat and returns the open connection.
async fn open_with_heartbeat(addr: SocketAddr, heartbeat: u16) -> raw::RawConn {
    use warren_testkit::{method_frame, W};
    let mut c = raw::RawConn::tcp(addr).await;
    c.send(warren_testkit::PROTOCOL_HEADER).await;
    c.expect_method(0, (10, 10)).await;
    let args = W::new().empty_table().shortstr("PLAIN").longstr(b"\0guest\0guest").shortstr("en_US").build();
    c.send(&method_frame(0, 10, 11, &args)).await;
    c.expect_method(0, (10, 30)).await;
    c.send(&method_frame(0, 10, 31, &W::new().u16(2047).u32(131_072).u16(heartbeat).build())).await;
    c.send(&method_frame(0, 10, 40, &W::new().shortstr("/").shortstr("").u8(0).build())).await;
    c.expect_method(0, (10, 41)).await;
    c
}

#[tokio::test]
async fn refused_logins_are_logged_with_user_reason_and_peer() {
    let broker = DurableBroker::start(&[]).await;
    let bad_password = format!("amqp://guest:wrong@{}/%2F", broker.addr());
    assert!(try_connect(&bad_password).await.is_err());
    let line =
        logged(&broker, &["WARN", "login refused", "user=\"guest\"", "reason=\"invalid password\""]).await;
    assert!(line.contains("peer=127.0.0.1:"), "no peer in: {line}");
    let unknown = format!("amqp://nobody:guest@{}/%2F", broker.addr());
    assert!(try_connect(&unknown).await.is_err());
    logged(&broker, &["WARN", "login refused", "user=\"nobody\"", "reason=\"unknown user\""]).await;
}

#[tokio::test]
async fn connection_lifecycle_is_logged() {
    let broker = DurableBroker::start(&[]).await;
    // Opened and closed by the client.
    let mut client = broker.connect().await;
    let line =
        logged(&broker, &["INFO", "user authenticated and granted access to vhost", "user=\"guest\""]).await;
    assert!(line.contains("vhost=\"/\"") && line.contains("peer=127.0.0.1:"), "{line}");
    let ch = client.channel().await;
    // A channel error, at warn.
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let missing = uniq("missing");
    let _ = ch.queue_declare(missing.as_str().into(), passive, Default::default()).await;
    client.assert_next_error(404, &format!("NOT_FOUND - no queue '{missing}' in vhost '/'")).await;
    logged(&broker, &["WARN", "channel error", "channel=1", "code=404", &missing]).await;
    client.close().await;
    logged(&broker, &["INFO", "closing AMQP connection", "reason=\"client closed the connection\""]).await;

    // Gone without connection.close, at warn.
    drop(raw::RawConn::handshake(broker.addr()).await);
    let vanished = "reason=\"client closed the TCP connection without connection.close\"";
    logged(&broker, &["WARN", "closing AMQP connection", "user=\"guest\"", vanished]).await;

    // A connection error, at warn, with its code and text.
    let mut raw = raw::RawConn::handshake(broker.addr()).await;
    raw.send_method(0, 10, 40, &warren_testkit::W::new().shortstr("/").shortstr("").u8(0).build()).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.code, 504);
    logged(&broker, &["WARN", "connection error", "code=504", &close.text]).await;

    // Missed heartbeats, at warn.
    let _silent = open_with_heartbeat(broker.addr(), 1).await;
    logged(&broker, &["WARN", "closing AMQP connection", "missed heartbeats from client, timeout: 1s"]).await;
}

#[tokio::test]
async fn handshake_timeouts_and_shutdown_are_logged() {
    let mut broker = DurableBroker::start(&["--handshake-timeout", "300"]).await;
    let mut stalled = raw::RawConn::tcp(broker.addr()).await;
    stalled.send(warren_testkit::PROTOCOL_HEADER).await;
    within(stalled.expect_eof()).await;
    logged(&broker, &["WARN", "closing AMQP connection", "handshake not completed within 300 ms"]).await;
    let mut raw = raw::RawConn::handshake(broker.addr()).await;
    let stopping = tokio::task::spawn_blocking(move || {
        let status = broker.terminate();
        (broker, status)
    });
    within(raw.expect_connection_close()).await;
    let (broker, status) = stopping.await.unwrap();
    assert!(status.success());
    logged(
        &broker,
        &["INFO", "closing AMQP connection", "broker forced connection closure with reason 'shutdown'"],
    )
    .await;
    logged(&broker, &["INFO", "shutting down: closing client connections", "connections=1"]).await;
}
