//! Hostile and broken clients: sockets that never finish their handshake, a broker out of file
//! descriptors, floods of bad logins, and headers built to defeat the decoder.
//!
//! Most of these tests spawn their own `warren` (they need its flags, its limits and its log).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_testkit::methods::{self, parse_close};
use warren_testkit::{content_header_frame_with, frame, Frame, FRAME_BODY, PROTOCOL_HEADER, R, W};

use crate::common::durable::DurableBroker;
use crate::common::raw::RawConn;
use crate::common::*;

/// What every refused client is told, whatever the reason.
const REFUSED: &str =
    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.";

/// Waits until one line of the broker's log has every one of these fragments; returns it.
async fn logged(broker: &DurableBroker, fragments: &[&str]) -> String {
    let what = format!("a log line with {fragments:?}");
    eventually(&what, || async {
        broker.log().lines().find(|line| fragments.iter().all(|f| line.contains(f))).map(str::to_owned)
    })
    .await
}

/// How many lines of the broker's log have every one of these fragments.
fn count_lines(broker: &DurableBroker, fragments: &[&str]) -> usize {
    broker.log().lines().filter(|line| fragments.iter().all(|f| line.contains(f))).count()
}

/// Publishes through the default exchange and reads the message back: the client is served.
async fn round_trip(client: &Client, queue: &str, body: &str) {
    let ch = client.channel().await;
    publish(&ch, "", queue, body.as_bytes()).await;
    let got = eventually("the message is back", || async { get_body(&ch, queue).await }).await;
    assert_eq!(text(&got), body);
    within(ch.close(200, "bye".into())).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Slow and half-open clients
// ---------------------------------------------------------------------------------------------

/// Connects and sends a byte every `every`: the protocol header, then zeros, never a whole
/// handshake. Returns how long after connecting the broker closed the socket, and what it sent.
async fn dribble(addr: SocketAddr, every: Duration) -> (Duration, Vec<u8>) {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let connected = Instant::now();
    let mut drip = tokio::time::interval(every);
    let mut bytes = PROTOCOL_HEADER.iter().copied().chain(std::iter::repeat(0));
    let mut received = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            _ = drip.tick() => {
                let byte = bytes.next().unwrap_or_default();
                if socket.write_all(&[byte]).await.is_err() {
                    return (connected.elapsed(), received);
                }
            }
            read = socket.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (connected.elapsed(), received),
                Ok(n) => received.extend_from_slice(&buf[..n]),
            },
        }
    }
}

/// A slowloris (many sockets each sending a byte now and then, never finishing the handshake)
/// holds nothing past the handshake timeout: every socket is closed then, without a word, and
/// a real client is served all the while.
#[tokio::test]
async fn slowloris_sockets_are_closed_at_the_handshake_timeout_while_a_client_is_served() {
    const SOCKETS: usize = 100;
    let broker = DurableBroker::start(&["--handshake-timeout", "1000"]).await;
    let drip = Duration::from_millis(300);
    let dribblers: Vec<_> = (0..SOCKETS).map(|_| tokio::spawn(dribble(broker.addr(), drip))).collect();
    let client = broker.connect().await;
    let queue = uniq("slowloris");
    declare_queue(&client.channel().await, &queue).await;
    round_trip(&client, &queue, "while they dribble").await;
    for d in dribblers {
        let (closed_after, received) = within(d).await.unwrap();
        // At 300 ms a byte the header takes 2.1 s: the broker never had a reason to answer.
        assert!(received.is_empty(), "the broker sent {received:?}");
        assert!(closed_after >= Duration::from_millis(900), "closed after only {closed_after:?}");
        assert!(closed_after < Duration::from_secs(5), "closed after {closed_after:?}");
    }
    let timeout_lines = || count_lines(&broker, &["WARN", "handshake not completed within 1000 ms"]);
    eventually("every socket's end is logged", || async { (timeout_lines() == SOCKETS).then_some(()) }).await;
    round_trip(&client, &queue, "after them").await;
    client.close().await;
}

// ---------------------------------------------------------------------------------------------
// Out of file descriptors
// ---------------------------------------------------------------------------------------------

/// CPU time (user and system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // The fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3, utime and stime fields 14 and 15.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64)
}

fn clock_ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output();
    out.ok().and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok()).unwrap_or(100)
}

/// At its file-descriptor limit the broker cannot accept: it backs off instead of spinning,
/// logs a line now and then instead of one per failure, keeps serving its clients, and
/// accepts again once descriptors are free.
#[tokio::test]
async fn at_the_fd_limit_the_broker_backs_off_keeps_serving_and_accepts_again() {
    // The extra sockets must not be dropped by the handshake timeout while the test runs.
    let broker = DurableBroker::start_with_fd_limit(&["--handshake-timeout", "120000"], 64).await;
    let pid = broker.pid().unwrap();
    let client = broker.connect().await;
    let queue = uniq("fd-limit");
    declare_queue(&client.channel().await, &queue).await;

    // More sockets than descriptors are left: the kernel completes their handshakes into the
    // listen backlog whether or not the broker can take them.
    let mut extra = Vec::new();
    for _ in 0..120 {
        let mut socket = within(TcpStream::connect(broker.addr())).await.expect("connect");
        within(socket.write_all(PROTOCOL_HEADER)).await.expect("send the header");
        extra.push(socket);
    }
    logged(&broker, &["WARN", "accept failed", "ulimit -n"]).await;

    let (cpu_before, wall) = (cpu_time(pid), Instant::now());
    // A measuring interval, not a wait for a condition: how busy is the broker meanwhile?
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu, wall) = (cpu_time(pid) - cpu_before, wall.elapsed());
    assert!(cpu < wall / 4, "the broker used {cpu:?} of CPU in {wall:?} while it could not accept");
    let failures_logged = count_lines(&broker, &["accept failed"]);
    assert!((1..=3).contains(&failures_logged), "{failures_logged} lines about failed accepts");

    round_trip(&client, &queue, "served at the limit").await;

    drop(extra);
    let newcomer = eventually("a new client gets in", || async { broker.try_connect().await.ok() }).await;
    within(newcomer.close(200, "bye".into())).await.unwrap();
    logged(&broker, &["INFO", "accepting connections again"]).await;
    round_trip(&client, &queue, "after the limit").await;
    client.close().await;
}

// ---------------------------------------------------------------------------------------------
// Bad logins
// ---------------------------------------------------------------------------------------------

/// Logs in by hand as `user`/`password` from `source` (a loopback address); returns the
/// connection and the broker's answer to start-ok: connection.tune if let in, else a close.
async fn login_from(source: IpAddr, addr: SocketAddr, user: &str, password: &str) -> (RawConn, Frame) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source, 0)).unwrap_or_else(|e| panic!("bind {source}: {e}"));
    let stream = within(socket.connect(addr)).await.expect("connect");
    let mut c = RawConn { stream, frame_max: 0, channel_max: 0 };
    c.send(PROTOCOL_HEADER).await;
    c.expect_method(0, (10, 10)).await;
    let properties = methods::client_properties("warren-hostile-test", &["authentication_failure_close"]);
    c.send_method(0, 10, 11, &methods::start_ok_plain(&properties, user, password)).await;
    let answer = c.next_frame().await;
    (c, answer)
}

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Asserts the login was refused with RabbitMQ's 403, and answers the close.
async fn assert_refused((mut c, answer): (RawConn, Frame)) {
    assert_eq!(answer.method_id(), Some((10, 50)), "expected connection.close, got {answer:?}");
    let close = parse_close(&answer);
    assert_eq!((close.code, close.text.as_str()), (403, REFUSED));
    c.send_lenient(&warren_testkit::method_frame(0, 10, 51, &[])).await;
}

/// 200 bad logins as fast as clients can make them: each is refused, but only a few a second
/// are logged; the rest are summed up in a line, and none is lost from the count.
#[tokio::test]
async fn a_flood_of_bad_logins_is_logged_at_a_bounded_rate_and_counted_in_full() {
    const TASKS: usize = 10;
    const EACH: usize = 20;
    let broker = DurableBroker::start(&[]).await;
    let started = Instant::now();
    let floods: Vec<_> = (0..TASKS)
        .map(|_| {
            let addr = broker.addr();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    assert_refused(login_from(localhost(), addr, "guest", "wrong").await).await;
                }
            })
        })
        .collect();
    for f in floods {
        within(f).await.unwrap();
    }
    let elapsed = started.elapsed();
    let each_line =
        ["WARN", "login refused user=\"guest\"", "reason=\"invalid password\"", "peer=127.0.0.1:"];
    let accounted = || {
        let log = broker.log();
        let logged = log.lines().filter(|l| each_line.iter().all(|f| l.contains(f))).count();
        let summed: usize = log
            .lines()
            .filter(|l| l.contains("more logins refused than are logged"))
            .filter_map(|l| l.split("not_logged=").nth(1)?.split_whitespace().next()?.parse::<usize>().ok())
            .sum();
        (logged, summed)
    };
    let (logged, summed) = eventually("every refusal is logged or summed up", || async {
        let (logged, summed) = accounted();
        (logged + summed == TASKS * EACH).then_some((logged, summed))
    })
    .await;
    // 10 a second: as many periods as the flood spans, plus a partial one at each end.
    let most = 10 * (elapsed.as_secs() as usize + 2);
    assert!(logged >= 10 && logged <= most, "{logged} refusals logged in {elapsed:?}, {summed} summed up");
    assert_eq!(count_lines(&broker, &["closing AMQP connection", "login refused"]), 0, "one line a refusal");
}

/// With max_failed_logins_per_minute, an address that failed that often is refused at once, even
/// with the right password, as RabbitMQ refuses any login; other addresses are let in.
#[tokio::test]
async fn past_the_failed_login_limit_an_address_is_refused_unchecked() {
    let broker = DurableBroker::start(&["--max-failed-logins-per-minute", "3"]).await;
    let addr = broker.addr();
    for _ in 0..3 {
        assert_refused(login_from(localhost(), addr, "guest", "wrong").await).await;
    }
    assert_eq!(count_lines(&broker, &["login refused", "reason=\"invalid password\""]), 3);
    assert_refused(login_from(localhost(), addr, "guest", "guest").await).await;
    let (code, text) = expect_err(broker.try_connect()).await;
    assert_eq!((code, text.as_str()), (403, REFUSED), "lapin is refused too");
    let limited =
        ["WARN", "login refused", "user=\"guest\"", "reason=\"too many failed logins from this address\""];
    logged(&broker, &limited).await;
    // Another loopback address has its own count.
    let (mut other, answer) = login_from(IpAddr::from([127, 0, 0, 2]), addr, "guest", "guest").await;
    assert_eq!(answer.method_id(), Some((10, 30)), "expected connection.tune, got {answer:?}");
    other.send_method(0, 10, 31, &methods::tune_ok(2047, 131_072, 0)).await;
    other.send_method(0, 10, 40, &methods::connection_open("/")).await;
    other.expect_method(0, (10, 41)).await;
}

// ---------------------------------------------------------------------------------------------
// Headers nested deeper than the decoder goes
// ---------------------------------------------------------------------------------------------

/// Headers table content: `app` = "kept", `deep` = a table nested `depth` levels (each `n` ->
/// the next), and the encoded `deep` entry alone.
fn deep_headers(depth: usize) -> (Vec<u8>, Vec<u8>) {
    let value = warren_testkit::methods::nested_table_value(depth);
    let deep_entry = [&b"\x04deep"[..], &value].concat();
    let content = [&b"\x03appS\x00\x00\x00\x04kept"[..], &deep_entry].concat();
    (content, deep_entry)
}

/// queue.declare with these arguments (encoded table content).
async fn declare_with(c: &mut RawConn, queue: &str, arguments: &[u8]) {
    let args = W::new().u16(0).shortstr(queue).bits(&[false; 5]).raw_table(arguments).build();
    c.send_method(1, 50, 10, &args).await;
    c.expect_method(1, (50, 11)).await;
}

/// basic.get until a message comes; returns its delivery tag and its content header frame.
async fn get_raw(c: &mut RawConn, queue: &str) -> (u64, Frame) {
    let what = format!("a message in {queue}");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        c.send_method(1, 60, 70, &W::new().u16(0).shortstr(queue).bits(&[false]).build()).await;
        let answer = c.next_frame().await;
        if answer.method_id() == Some((60, 71)) {
            let tag = answer.args().u64();
            let header = c.next_frame().await;
            c.next_frame().await; // the body
            return (tag, header);
        }
        assert_eq!(answer.method_id(), Some((60, 72)), "expected get-ok or get-empty");
        assert!(Instant::now() < deadline, "no {what} within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A message whose headers nest deeper than the broker decodes is dead-lettered with all its
/// properties: still persistent, every header as it was sent, and x-death added.
#[tokio::test]
async fn a_dead_lettered_message_with_headers_nested_too_deep_keeps_its_properties() {
    const HEADERS: u16 = 1 << 13;
    const DELIVERY_MODE: u16 = 1 << 12;
    let broker = Broker::start().await;
    let mut c = RawConn::handshake(broker.addr()).await;
    c.open_channel(1).await;
    let (queue, dead_letters) = (uniq("deep"), uniq("deep-dlq"));
    declare_with(&mut c, &dead_letters, &[]).await;
    let dlx = W::new().shortstr("x-dead-letter-exchange").u8(b'S').longstr(b"");
    let dlx = dlx.shortstr("x-dead-letter-routing-key").u8(b'S').longstr(dead_letters.as_bytes()).build();
    declare_with(&mut c, &queue, &dlx).await;

    let (headers, deep_entry) = deep_headers(100);
    let properties = W::new().raw_table(&headers).u8(2).build();
    let publish = warren_testkit::method_frame(1, 60, 40, &methods::publish("", &queue, false, false));
    let header = content_header_frame_with(1, 4, HEADERS | DELIVERY_MODE, &properties);
    c.send(&[publish, header, frame(FRAME_BODY, 1, b"deep")].concat()).await;
    let (tag, _) = get_raw(&mut c, &queue).await;
    c.send_method(1, 60, 90, &W::new().u64(tag).bits(&[false]).build()).await;

    let (_, header) = get_raw(&mut c, &dead_letters).await;
    let mut r = R::new(&header.payload);
    let (_class, _weight, _size, flags) = (r.u16(), r.u16(), r.u64(), r.u16());
    assert_eq!(flags, HEADERS | DELIVERY_MODE, "the copy's properties: {flags:#06x}");
    let table = r.longstr();
    assert_eq!(r.u8(), 2, "still persistent");
    let has = |part: &[u8]| table.windows(part.len()).any(|w| w == part);
    assert!(has(&deep_entry), "the deep header is gone or changed");
    assert!(has(b"\x03appS\x00\x00\x00\x04kept"), "the app header is gone or changed");
    assert!(has(b"\x07x-death") && has(b"\x13x-first-death-queue"), "no x-death recorded");
}
