//! Sans-IO tests of the connection state machine: bytes and simulated time in, frames and events
//! out, with a fake `Host` standing in for the broker.
//!
//! Methods are written with `warren-protocol`'s typed encoder; frames that are only bytes
//! (bodies, heartbeats, whole publishes, broken frames) come from `warren-testkit` (`raw`), so
//! they do not depend on the codec whose reader the connection uses.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use warren_connection::{AmqpError, CloseReason, Connection, ConnectionConfig, Event, Host, LoginRefused};
use warren_protocol::frame::{self, Frame, PROTOCOL_HEADER};
use warren_protocol::methods::*;
use warren_protocol::{BasicProperties, FieldTable, FieldValue};
use warren_testkit as raw;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Users guest/guest and alice/secret; vhosts "/" and "dev". Records every call.
struct FakeHost {
    auth_calls: Vec<(String, String)>,
    vhost_calls: Vec<(String, String)>,
    /// Refusals reported: user, mechanism, reason, and when.
    refused: Vec<(String, String, LoginRefused, Instant)>,
}

impl FakeHost {
    fn new() -> Self {
        FakeHost { auth_calls: Vec::new(), vhost_calls: Vec::new(), refused: Vec::new() }
    }
}

impl Host for FakeHost {
    fn authenticate(&mut self, username: &str, password: &str, _now: Instant) -> Result<(), LoginRefused> {
        self.auth_calls.push((username.to_owned(), password.to_owned()));
        match (username, password) {
            ("guest", "guest") | ("alice", "secret") => Ok(()),
            ("guest" | "alice", _) => Err(LoginRefused::BadPassword),
            _ => Err(LoginRefused::UnknownUser),
        }
    }

    /// Certificates naming guest or alice log in; any other name is unknown.
    fn authenticate_external(&mut self, username: &str, _now: Instant) -> Result<(), LoginRefused> {
        self.auth_calls.push((username.to_owned(), "<certificate>".to_owned()));
        match username {
            "guest" | "alice" => Ok(()),
            _ => Err(LoginRefused::UnknownUser),
        }
    }

    fn login_refused(&mut self, username: &str, mechanism: &str, reason: LoginRefused, now: Instant) {
        self.refused.push((username.to_owned(), mechanism.to_owned(), reason, now));
    }

    fn open_vhost(&mut self, username: &str, vhost: &str) -> Result<(), AmqpError> {
        self.vhost_calls.push((username.to_owned(), vhost.to_owned()));
        match vhost {
            "/" | "dev" => Ok(()),
            "forbidden" => Err(AmqpError::access_refused(format!(
                "access to vhost '{vhost}' refused for user '{username}'"
            ))),
            _ => Err(AmqpError::not_allowed(format!("vhost {vhost} not found"))),
        }
    }
}

struct Client {
    conn: Connection,
    host: FakeHost,
    input: BytesMut,
    now: Instant,
    start: Instant,
    events: Vec<Event>,
}

impl Client {
    fn new() -> Self {
        Self::with_config(ConnectionConfig::default())
    }

    fn with_config(config: ConnectionConfig) -> Self {
        let start = Instant::now();
        Client {
            conn: Connection::new(config, start),
            host: FakeHost::new(),
            input: BytesMut::new(),
            now: start,
            start,
            events: Vec::new(),
        }
    }

    /// Moves the simulated clock to `secs` seconds after the connection was created.
    fn at(&mut self, secs: f64) -> Instant {
        self.now = self.start + Duration::from_secs_f64(secs);
        self.now
    }

    /// Appends raw bytes and lets the connection consume them, collecting every event
    /// (the way the server loop alternates handle_input and event handling).
    fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        self.pump();
    }

    /// Moves events the connection holds (also those from direct calls like `close_channel`).
    fn drain_events(&mut self) -> bool {
        let mut got = false;
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
            got = true;
        }
        got
    }

    fn pump(&mut self) {
        // Like the server loop: events are handled before more input is offered.
        self.drain_events();
        loop {
            self.conn.handle_input(&mut self.input, self.now, &mut self.host);
            if !self.drain_events() {
                break;
            }
        }
    }

    fn send(&mut self, channel: u16, method: impl Into<Method>) {
        let mut buf = BytesMut::new();
        frame::write_method(&mut buf, channel, &method.into());
        self.feed(&buf);
    }

    fn send_header(&mut self, channel: u16, body_size: u64) {
        let mut props = BytesMut::new();
        BasicProperties { content_type: Some("text/plain".into()), ..Default::default() }.encode(&mut props);
        let mut buf = BytesMut::new();
        frame::write_header(&mut buf, channel, 60, body_size, &props);
        self.feed(&buf);
    }

    fn send_body(&mut self, channel: u16, payload: &[u8]) {
        self.feed(&raw::frame(raw::FRAME_BODY, channel, payload));
    }

    fn send_publish(&mut self, channel: u16, exchange: &str, key: &str) {
        let p = BasicPublish { exchange: exchange.into(), routing_key: key.into(), ..Default::default() };
        self.send(channel, p);
    }

    /// Every frame written since the last call.
    fn output(&mut self) -> Vec<Frame> {
        let mut out = self.conn.take_output();
        let mut frames = Vec::new();
        while let Some(f) = frame::parse_frame(&mut out, 0).expect("server output parses") {
            frames.push(f);
        }
        assert!(out.is_empty(), "trailing partial frame in server output: {out:?}");
        frames
    }

    fn methods(&mut self) -> Vec<(u16, Method)> {
        self.output()
            .into_iter()
            .map(|f| match f {
                Frame::Method { channel, method } => (channel, method),
                other => panic!("expected only method frames, got {other:?}"),
            })
            .collect()
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.drain_events();
        std::mem::take(&mut self.events)
    }

    /// Protocol header; returns connection.start.
    fn header(&mut self) -> ConnectionStart {
        self.feed(PROTOCOL_HEADER);
        match single(self.methods()) {
            (0, Method::ConnectionStart(s)) => s,
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    fn start_ok_plain(&mut self, user: &str, pass: &str, client_properties: FieldTable) {
        let response = Bytes::from(format!("\0{user}\0{pass}"));
        self.send(
            0,
            ConnectionStartOk {
                client_properties,
                mechanism: "PLAIN".into(),
                response,
                locale: "en_US".into(),
            },
        );
    }

    fn expect_tune(&mut self) -> ConnectionTune {
        match single(self.methods()) {
            (0, Method::ConnectionTune(t)) => t,
            other => panic!("expected connection.tune, got {other:?}"),
        }
    }

    fn tune_ok(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
        self.send(0, ConnectionTuneOk { channel_max, frame_max, heartbeat });
    }

    fn open(&mut self, vhost: &str) {
        self.send(0, ConnectionOpen { virtual_host: vhost.into(), ..Default::default() });
    }

    /// Full handshake up to open-ok with the given tune-ok values.
    fn handshake(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
        self.header();
        self.start_ok_plain("guest", "guest", FieldTable::new());
        self.expect_tune();
        self.tune_ok(channel_max, frame_max, heartbeat);
        let out = self.output();
        assert!(out.is_empty(), "tune-ok has no reply: {out:?}");
        self.open("/");
        match single(self.methods()) {
            (0, Method::ConnectionOpenOk(_)) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        assert!(self.conn.is_open());
        let events = self.take_events();
        assert!(matches!(events.as_slice(), [Event::Opened { .. }]), "{events:?}");
    }

    fn open_channel(&mut self, channel: u16) {
        self.send(channel, ChannelOpen::default());
        match single(self.methods()) {
            (c, Method::ChannelOpenOk(_)) if c == channel => {}
            other => panic!("expected channel.open-ok on {channel}, got {other:?}"),
        }
        assert_eq!(self.take_events(), vec![Event::ChannelOpened(channel)]);
    }

    /// Expects exactly one frame: connection.close; checks the state is closing (not closed).
    fn expect_connection_close(&mut self) -> ConnectionClose {
        let close = match single(self.methods()) {
            (0, Method::ConnectionClose(c)) => c,
            other => panic!("expected connection.close, got {other:?}"),
        };
        assert!(!self.conn.is_open(), "connection still open after sending connection.close");
        assert!(!self.conn.is_closed(), "closing waits for close-ok");
        close
    }
}

fn single<T: std::fmt::Debug>(mut v: Vec<T>) -> T {
    assert_eq!(v.len(), 1, "expected exactly one item, got {v:?}");
    v.remove(0)
}

fn opened() -> Client {
    let mut c = Client::new();
    c.handshake(2047, 131_072, 0);
    c
}

fn opened_with_channel() -> Client {
    let mut c = opened();
    c.open_channel(1);
    c
}

fn capabilities(names: &[&str]) -> FieldTable {
    let mut caps = FieldTable::new();
    for n in names {
        caps.insert(*n, FieldValue::Bool(true));
    }
    let mut props = FieldTable::new();
    props.insert("product", FieldValue::LongStr(Bytes::from_static(b"test client")));
    props.insert("capabilities", FieldValue::Table(caps));
    props
}

// ---------------------------------------------------------------------------------------------
// Protocol header and connection.start
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_protocol_header_is_answered_with_ours_and_closes() {
    for bad in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"AMQP\x01\x01\x00\x0a", b"AMQP\x00\x00\x09\x02"] {
        let mut c = Client::new();
        c.feed(bad);
        let out = c.conn.take_output();
        assert_eq!(&out[..], b"AMQP\x00\x00\x09\x01", "reply to {bad:?}");
        assert!(c.conn.is_closed());
        assert!(c.take_events().is_empty());
    }
}

#[test]
fn protocol_header_may_arrive_in_pieces() {
    let mut c = Client::new();
    c.feed(b"AMQ");
    assert!(!c.conn.has_output());
    assert!(!c.conn.is_closed());
    c.feed(b"P\x00\x00");
    assert!(!c.conn.has_output());
    c.feed(b"\x09\x01");
    assert!(matches!(single(c.methods()), (0, Method::ConnectionStart(_))));
}

#[test]
fn protocol_header_broken_midway_is_refused() {
    let mut c = Client::new();
    c.feed(b"AMQ");
    c.feed(b"X");
    assert_eq!(&c.conn.take_output()[..], PROTOCOL_HEADER);
    assert!(c.conn.is_closed());
}

#[test]
fn connection_start_announces_mechanisms_and_capabilities() {
    let mut c = Client::new();
    let start = c.header();
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    assert_eq!(&start.mechanisms[..], b"PLAIN AMQPLAIN");
    assert_eq!(&start.locales[..], b"en_US");
    let props = &start.server_properties;
    assert_eq!(props.get("product").and_then(FieldValue::as_str), Some("Warren"));
    assert!(props.get("version").and_then(FieldValue::as_str).is_some_and(|v| !v.is_empty()));
    let Some(FieldValue::Table(caps)) = props.get("capabilities") else {
        panic!("no capabilities table in {props:?}");
    };
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        assert_eq!(caps.get(name), Some(&FieldValue::Bool(true)), "capability {name}");
    }
    assert!(!c.conn.is_open());
    assert!(!c.conn.is_closed());
}

#[test]
fn connection_start_uses_configured_server_properties() {
    let config = ConnectionConfig {
        server_properties: warren_connection::server_properties("Other", "9.9.9"),
        ..Default::default()
    };
    let mut c = Client::with_config(config);
    let start = c.header();
    assert_eq!(start.server_properties.get("product").and_then(FieldValue::as_str), Some("Other"));
    assert_eq!(start.server_properties.get("version").and_then(FieldValue::as_str), Some("9.9.9"));
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_login_leads_to_tune_with_server_limits() {
    let mut c = Client::new();
    c.header();
    c.start_ok_plain("alice", "secret", FieldTable::new());
    assert_eq!(c.host.auth_calls, vec![("alice".to_owned(), "secret".to_owned())]);
    let tune = c.expect_tune();
    assert_eq!((tune.channel_max, tune.frame_max, tune.heartbeat), (2047, 131_072, 60));
    assert_eq!(c.conn.username(), "alice");
    assert!(!c.conn.is_open());
}

#[test]
fn plain_login_ignores_authorization_identity() {
    let mut c = Client::new();
    c.header();
    let start_ok = ConnectionStartOk {
        client_properties: FieldTable::new(),
        mechanism: "PLAIN".into(),
        response: Bytes::from_static(b"someone\0guest\0guest"),
        locale: "en_US".into(),
    };
    c.send(0, start_ok);
    assert_eq!(c.host.auth_calls, vec![("guest".to_owned(), "guest".to_owned())]);
    c.expect_tune();
}

#[test]
fn tune_reflects_configured_limits() {
    let config = ConnectionConfig { channel_max: 64, frame_max: 65_536, heartbeat: 15, ..Default::default() };
    let mut c = Client::with_config(config);
    c.header();
    c.start_ok_plain("guest", "guest", FieldTable::new());
    let tune = c.expect_tune();
    assert_eq!((tune.channel_max, tune.frame_max, tune.heartbeat), (64, 65_536, 15));
}

#[test]
fn amqplain_login() {
    let mut c = Client::new();
    c.header();
    let mut table = FieldTable::new();
    table.insert("LOGIN", FieldValue::LongStr(Bytes::from_static(b"alice")));
    table.insert("PASSWORD", FieldValue::LongStr(Bytes::from_static(b"secret")));
    let mut encoded = BytesMut::new();
    table.encode(&mut encoded);
    // AMQPLAIN's response is the table without its length prefix.
    let response = encoded.freeze().slice(4..);
    c.send(
        0,
        ConnectionStartOk {
            client_properties: FieldTable::new(),
            mechanism: "AMQPLAIN".into(),
            response,
            locale: "en_US".into(),
        },
    );
    assert_eq!(c.host.auth_calls, vec![("alice".to_owned(), "secret".to_owned())]);
    c.expect_tune();
    assert_eq!(c.conn.username(), "alice");
}

#[test]
fn bad_password_with_authentication_failure_close_gets_403() {
    let mut c = Client::new();
    c.header();
    c.start_ok_plain("guest", "wrong", capabilities(&["authentication_failure_close"]));
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 403);
    assert!(
        close
            .reply_text
            .starts_with("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN"),
        "{}",
        close.reply_text
    );
    // RabbitMQ names no method in this close.
    assert_eq!((close.class_id, close.method_id), (0, 0));
    assert!(c.take_events().is_empty());
    c.send(0, ConnectionCloseOk);
    assert!(c.conn.is_closed());
    assert!(c.output().is_empty());
}

#[test]
fn bad_password_without_capability_closes_silently() {
    let mut c = Client::new();
    c.header();
    c.start_ok_plain("guest", "wrong", capabilities(&["publisher_confirms"]));
    assert!(c.output().is_empty(), "no close frame for clients that did not ask for one");
    assert!(c.conn.is_closed());
    assert!(c.take_events().is_empty());
}

#[test]
fn authentication_failure_close_set_to_false_closes_silently() {
    let mut c = Client::new();
    c.header();
    let mut caps = FieldTable::new();
    caps.insert("authentication_failure_close", FieldValue::Bool(false));
    let mut props = FieldTable::new();
    props.insert("capabilities", FieldValue::Table(caps));
    c.start_ok_plain("nobody", "guest", props);
    assert!(c.output().is_empty());
    assert!(c.conn.is_closed());
}

#[test]
fn malformed_plain_response_is_a_failed_login() {
    let mut c = Client::new();
    c.header();
    c.send(
        0,
        ConnectionStartOk {
            client_properties: capabilities(&["authentication_failure_close"]),
            mechanism: "PLAIN".into(),
            response: Bytes::from_static(b"guestguest"),
            locale: "en_US".into(),
        },
    );
    assert!(c.host.auth_calls.is_empty(), "nothing to check without credentials");
    assert_eq!(c.expect_connection_close().reply_code, 403);
    let reported: Vec<_> = c.host.refused.iter().map(|(u, m, r, _)| (u.as_str(), m.as_str(), *r)).collect();
    assert_eq!(reported, [("", "PLAIN", LoginRefused::Malformed)]);
}

fn start_ok_external(client_properties: FieldTable) -> ConnectionStartOk {
    ConnectionStartOk {
        client_properties,
        mechanism: "EXTERNAL".into(),
        // What clients send; ignored, as RabbitMQ does.
        response: Bytes::new(),
        locale: "en_US".into(),
    }
}

#[test]
fn external_is_offered_only_with_a_certificate_login() {
    let mut c = Client::new();
    c.conn.offer_external("alice".to_owned());
    let start = c.header();
    assert_eq!(&start.mechanisms[..], b"PLAIN AMQPLAIN EXTERNAL");
    assert_eq!(&Client::new().header().mechanisms[..], b"PLAIN AMQPLAIN");
}

#[test]
fn external_logs_in_as_the_certificates_user_without_a_password() {
    let mut c = Client::new();
    c.conn.offer_external("alice".to_owned());
    c.header();
    c.send(0, start_ok_external(FieldTable::new()));
    assert_eq!(c.host.auth_calls, vec![("alice".to_owned(), "<certificate>".to_owned())]);
    c.expect_tune();
    assert_eq!(c.conn.username(), "alice");
}

#[test]
fn external_for_an_unknown_user_is_a_refused_login() {
    let mut c = Client::new();
    c.conn.offer_external("mallory".to_owned());
    c.header();
    c.send(0, start_ok_external(capabilities(&["authentication_failure_close"])));
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 403);
    assert!(
        close
            .reply_text
            .starts_with("ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL"),
        "{}",
        close.reply_text
    );
    let reported: Vec<_> = c.host.refused.iter().map(|(u, m, r, _)| (u.as_str(), m.as_str(), *r)).collect();
    assert_eq!(reported, [("mallory", "EXTERNAL", LoginRefused::UnknownUser)]);
}

#[test]
fn plain_still_works_where_external_is_offered() {
    let mut c = Client::new();
    c.conn.offer_external("alice".to_owned());
    c.header();
    c.start_ok_plain("guest", "guest", FieldTable::new());
    c.expect_tune();
    assert_eq!(c.conn.username(), "guest", "the password's user, not the certificate's");
}

#[test]
fn unknown_mechanism_is_refused() {
    let mut c = Client::new();
    c.header();
    c.send(
        0,
        ConnectionStartOk {
            client_properties: FieldTable::new(),
            mechanism: "EXTERNAL".into(),
            response: Bytes::new(),
            locale: "en_US".into(),
        },
    );
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 503);
    assert!(close.reply_text.contains("EXTERNAL"), "{}", close.reply_text);
    assert!(c.host.auth_calls.is_empty());
}

#[test]
fn method_out_of_handshake_order_is_refused() {
    let mut c = Client::new();
    c.header();
    c.open("/");
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 503);
    assert!(c.host.vhost_calls.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Tune negotiation
// ---------------------------------------------------------------------------------------------

fn tuned(channel_max: u16, frame_max: u32, heartbeat: u16) -> Client {
    let mut c = Client::new();
    c.header();
    c.start_ok_plain("guest", "guest", FieldTable::new());
    c.expect_tune();
    c.tune_ok(channel_max, frame_max, heartbeat);
    c
}

#[test]
fn tune_ok_frame_max_zero_is_refused() {
    let mut c = tuned(2047, 0, 0);
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 530);
    assert_eq!((close.class_id, close.method_id), (10, 31));
    assert!(close.reply_text.starts_with("NOT_ALLOWED - negotiated frame_max = 0"), "{}", close.reply_text);
}

#[test]
fn tune_ok_frame_max_above_server_max_is_refused() {
    let mut c = tuned(2047, 131_073, 0);
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 530);
    assert!(close.reply_text.contains("131073"), "{}", close.reply_text);
}

#[test]
fn tune_ok_frame_max_below_minimum_is_refused() {
    let mut c = tuned(2047, 4095, 0);
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 530);
    assert!(close.reply_text.contains("lower than the minimum"), "{}", close.reply_text);
}

#[test]
fn tune_ok_at_the_limits_is_accepted() {
    let mut c = tuned(2047, 4096, 0);
    assert!(c.output().is_empty());
    assert_eq!(c.conn.frame_max(), 4096);
    let mut c = tuned(2047, 131_072, 0);
    assert!(c.output().is_empty());
    assert_eq!(c.conn.frame_max(), 131_072);
}

#[test]
fn tune_ok_channel_max_zero_is_refused() {
    // As RabbitMQ: 0 means "no limit", which is above the server's limit.
    let mut c = tuned(0, 131_072, 0);
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 530);
    assert_eq!(
        &*close.reply_text,
        "NOT_ALLOWED - negotiated channel_max = 0 (no limit) is higher than the maximum allowed value (2047)"
    );
    assert_eq!((close.class_id, close.method_id), (10, 31));
}

#[test]
fn tune_ok_lower_channel_max_is_taken() {
    let mut c = tuned(100, 131_072, 0);
    assert!(c.output().is_empty());
    assert_eq!(c.conn.channel_max(), 100);
    let mut c = tuned(2047, 131_072, 0);
    assert!(c.output().is_empty());
    assert_eq!(c.conn.channel_max(), 2047);
}

#[test]
fn tune_ok_channel_max_above_servers_is_refused() {
    let mut c = tuned(2048, 131_072, 0);
    assert_eq!(c.expect_connection_close().reply_code, 530);
}

#[test]
fn heartbeat_is_taken_from_tune_ok() {
    let c = tuned(2047, 131_072, 7);
    assert_eq!(c.conn.heartbeat(), Duration::from_secs(7));
    let c = tuned(2047, 131_072, 0);
    assert_eq!(c.conn.heartbeat(), Duration::ZERO);
    let handshake = Some(c.start + Duration::from_secs(10));
    assert_eq!(c.conn.poll_timeout(), handshake, "no heartbeat: only the handshake's deadline");
}

// ---------------------------------------------------------------------------------------------
// connection.open
// ---------------------------------------------------------------------------------------------

#[test]
fn open_reports_vhost_user_and_client_properties() {
    let mut c = Client::new();
    c.header();
    let props = capabilities(&["consumer_cancel_notify"]);
    c.start_ok_plain("alice", "secret", props.clone());
    c.expect_tune();
    c.tune_ok(2047, 131_072, 0);
    c.open("dev");
    assert!(matches!(single(c.methods()), (0, Method::ConnectionOpenOk(_))));
    assert!(c.conn.is_open());
    assert_eq!(c.host.vhost_calls, vec![("alice".to_owned(), "dev".to_owned())]);
    assert_eq!(
        c.take_events(),
        vec![Event::Opened {
            vhost: "dev".into(),
            username: "alice".into(),
            auth_mechanism: "PLAIN".into(),
            client_properties: props
        }]
    );
}

#[test]
fn open_unknown_vhost_closes_with_the_hosts_code() {
    let mut c = tuned(2047, 131_072, 0);
    c.open("nope");
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 530);
    assert_eq!(&*close.reply_text, "NOT_ALLOWED - vhost nope not found");
    assert_eq!((close.class_id, close.method_id), (10, 40));
    assert!(c.take_events().is_empty());
}

#[test]
fn open_refused_vhost_closes_with_403() {
    let mut c = tuned(2047, 131_072, 0);
    c.open("forbidden");
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 403);
    assert!(close.reply_text.starts_with("ACCESS_REFUSED - "), "{}", close.reply_text);
}

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------

#[test]
fn channel_open_close_and_reopen() {
    let mut c = opened();
    c.open_channel(1);
    c.open_channel(7);
    assert!(c.conn.channel_is_open(1));
    assert!(c.conn.channel_is_open(7));
    assert!(!c.conn.channel_is_open(2));

    c.send(1, ChannelClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 });
    assert!(matches!(single(c.methods()), (1, Method::ChannelCloseOk(_))));
    assert_eq!(c.take_events(), vec![Event::ChannelClosed(1)]);
    assert!(!c.conn.channel_is_open(1));
    assert!(c.conn.channel_is_open(7));

    // The number is free again.
    c.open_channel(1);
    assert!(c.conn.is_open());
}

#[test]
fn channel_methods_become_events() {
    let mut c = opened_with_channel();
    let declare = QueueDeclare { queue: "q".into(), durable: true, ..Default::default() };
    c.send(1, declare.clone());
    assert!(c.output().is_empty(), "the connection leaves replies to the broker");
    assert_eq!(c.take_events(), vec![Event::Method { channel: 1, method: declare.into() }]);
}

#[test]
fn server_closed_channel_drops_traffic_until_close_ok() {
    let mut c = opened_with_channel();
    c.conn.close_channel(1, AmqpError::precondition_failed("nope").at(50, 10));
    let close = match single(c.methods()) {
        (1, Method::ChannelClose(cl)) => cl,
        other => panic!("expected channel.close, got {other:?}"),
    };
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - nope");
    assert_eq!((close.class_id, close.method_id), (50, 10));
    assert_eq!(c.take_events(), vec![Event::ChannelClosed(1)]);
    assert!(!c.conn.channel_is_open(1));

    // Methods and content in flight are dropped silently.
    c.send(1, BasicQos { prefetch_count: 1, ..Default::default() });
    c.send_publish(1, "", "q");
    c.send_header(1, 3);
    c.send_body(1, b"abc");
    assert!(c.output().is_empty());
    assert!(c.take_events().is_empty());
    c.send(1, ChannelCloseOk);
    assert!(c.output().is_empty());
    assert!(c.take_events().is_empty(), "ChannelClosed was already reported");
    c.open_channel(1);
    assert!(c.conn.is_open());
}

#[test]
fn channel_close_crossing_server_close_gets_close_ok() {
    let mut c = opened_with_channel();
    c.conn.close_channel(1, AmqpError::not_found("gone"));
    c.output();
    c.take_events();
    c.send(1, ChannelClose { reply_code: 200, reply_text: "".into(), class_id: 0, method_id: 0 });
    assert!(matches!(single(c.methods()), (1, Method::ChannelCloseOk(_))));
    assert!(c.take_events().is_empty());
    assert!(c.conn.is_open());
}

#[test]
fn channel_open_on_channel_zero_is_a_channel_error() {
    let mut c = opened();
    c.send(0, ChannelOpen::default());
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 504, "{}", close.reply_text);
    assert_eq!((close.class_id, close.method_id), (20, 10));
}

#[test]
fn channel_open_on_channel_zero_closes_the_connection() {
    // Whatever the code, it is a hard error: the connection goes.
    let mut c = opened();
    c.send(0, ChannelOpen::default());
    let close = c.expect_connection_close();
    assert!(close.reply_code >= 500, "{close:?}");
    assert!(c.take_events().is_empty());
}

#[test]
fn channel_max_limits_open_channels_not_their_numbers() {
    // As RabbitMQ: a channel number above channel_max is fine while fewer are open.
    let mut c = Client::new();
    c.handshake(2, 131_072, 0);
    c.open_channel(10);
    c.open_channel(2000);
    c.send(3, ChannelOpen::default());
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 530);
    assert_eq!(
        &*close.reply_text,
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
    );
    assert_eq!((close.class_id, close.method_id), (0, 0));
    let mut events = c.take_events();
    events.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(events, vec![Event::ChannelClosed(10), Event::ChannelClosed(2000)]);
}

#[test]
fn a_closed_channel_frees_its_place_under_channel_max() {
    let mut c = Client::new();
    c.handshake(1, 131_072, 0);
    c.open_channel(5);
    c.send(5, ChannelClose::default());
    assert!(matches!(single(c.methods()), (5, Method::ChannelCloseOk(_))));
    c.take_events();
    c.open_channel(6);
    assert!(c.conn.is_open());
}

#[test]
fn second_channel_open_is_a_channel_error() {
    let mut c = opened_with_channel();
    c.send(1, ChannelOpen::default());
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 504);
    assert_eq!(&*close.reply_text, "CHANNEL_ERROR - second 'channel.open' seen");
    assert_eq!(c.take_events(), vec![Event::ChannelClosed(1)]);
}

#[test]
fn method_on_unopened_channel_is_a_channel_error() {
    let mut c = opened_with_channel();
    c.send(3, QueueDeclare { queue: "q".into(), ..Default::default() });
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 504);
    assert_eq!(&*close.reply_text, "CHANNEL_ERROR - expected 'channel.open'");
    assert_eq!((close.class_id, close.method_id), (50, 10));
    assert_eq!(c.take_events(), vec![Event::ChannelClosed(1)], "no Method event, channel 1 released");
}

#[test]
fn channel_flow_active_is_acknowledged() {
    let mut c = opened_with_channel();
    c.send(1, ChannelFlow { active: true });
    match single(c.methods()) {
        (1, Method::ChannelFlowOk(ok)) => assert!(ok.active),
        other => panic!("expected channel.flow-ok, got {other:?}"),
    }
    assert!(c.take_events().is_empty());
    assert!(c.conn.is_open());
}

#[test]
fn channel_flow_inactive_is_not_implemented() {
    let mut c = opened_with_channel();
    c.send(1, ChannelFlow { active: false });
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 540);
    assert_eq!((close.class_id, close.method_id), (20, 20));
}

#[test]
fn connection_method_on_a_channel_is_refused() {
    let mut c = opened_with_channel();
    c.send(1, ConnectionTuneOk { channel_max: 0, frame_max: 131_072, heartbeat: 0 });
    assert_eq!(c.expect_connection_close().reply_code, 503);
}

#[test]
fn server_only_content_method_from_client_is_refused() {
    // As RabbitMQ: its content is read first, then the method is refused.
    let mut c = opened_with_channel();
    c.send(1, BasicDeliver { consumer_tag: "x".into(), delivery_tag: 1, ..Default::default() });
    assert!(c.output().is_empty(), "waits for the content header");
    c.send_header(1, 0);
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 503);
    assert_eq!((close.class_id, close.method_id), (60, 60));
}

#[test]
fn server_only_content_method_without_its_content_is_an_unexpected_frame() {
    let mut c = opened_with_channel();
    c.send(1, BasicDeliver { consumer_tag: "x".into(), delivery_tag: 1, ..Default::default() });
    c.send(1, BasicQos::default());
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 505);
    assert_eq!(
        &*close.reply_text,
        "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
    );
    assert_eq!((close.class_id, close.method_id), (60, 60));
}

// ---------------------------------------------------------------------------------------------
// Content assembly
// ---------------------------------------------------------------------------------------------

#[test]
fn publish_header_and_bodies_make_one_publish_event() {
    let mut c = opened_with_channel();
    let publish = BasicPublish {
        exchange: "ex".into(),
        routing_key: "rk".into(),
        mandatory: true,
        ..Default::default()
    };
    c.send(1, publish.clone());
    c.send_header(1, 11);
    assert!(c.take_events().is_empty(), "incomplete content");
    c.send_body(1, b"hel");
    c.send_body(1, b"lo ");
    assert!(c.take_events().is_empty(), "incomplete content");
    c.send_body(1, b"world");
    assert!(c.output().is_empty());
    let events = c.take_events();
    let [Event::Publish { channel, publish: got, header, body }] = events.as_slice() else {
        panic!("expected one publish event, got {events:?}");
    };
    assert_eq!(*channel, 1);
    assert_eq!(*got, publish);
    assert_eq!(header.class_id, 60);
    assert_eq!(header.body_size, 11);
    assert_eq!(header.decode_properties().unwrap().content_type.as_deref(), Some("text/plain"));
    assert_eq!(&body[..], b"hello world");
}

#[test]
fn publishes_in_one_read_keep_their_order() {
    let mut c = opened_with_channel();
    c.open_channel(2);
    let mut buf = Vec::new();
    for (ch, key, body) in [(1u16, "a", &b"one"[..]), (2, "b", b"two"), (1, "c", b"")] {
        buf.extend(raw::methods::publish_frames(ch, "", key, body));
    }
    c.feed(&buf);
    let got: Vec<(u16, String, Vec<u8>)> = c
        .take_events()
        .into_iter()
        .map(|e| match e {
            Event::Publish { channel, publish, body, .. } => {
                (channel, publish.routing_key.to_string(), body.to_vec())
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![(1, "a".into(), b"one".to_vec()), (2, "b".into(), b"two".to_vec()), (1, "c".into(), vec![])]
    );
}

#[test]
fn content_of_two_channels_may_interleave() {
    let mut c = opened_with_channel();
    c.open_channel(2);
    c.send_publish(1, "", "one");
    c.send_publish(2, "", "two");
    c.send_header(1, 2);
    c.send_header(2, 2);
    c.send_body(2, b"22");
    c.send_body(1, b"11");
    let got: Vec<(u16, Vec<u8>)> = c
        .take_events()
        .into_iter()
        .map(|e| match e {
            Event::Publish { channel, body, .. } => (channel, body.to_vec()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(got, vec![(2, b"22".to_vec()), (1, b"11".to_vec())]);
}

#[test]
fn heartbeat_between_content_frames_is_fine() {
    let mut c = opened_with_channel();
    c.send_publish(1, "", "q");
    let hb = raw::heartbeat_frame();
    c.feed(&hb);
    c.send_header(1, 1);
    c.feed(&hb);
    c.send_body(1, b"x");
    assert!(c.output().is_empty());
    assert!(matches!(single(c.take_events()), Event::Publish { .. }));
}

#[test]
fn empty_body_completes_at_the_header() {
    let mut c = opened_with_channel();
    c.send_publish(1, "", "q");
    assert!(c.take_events().is_empty());
    c.send_header(1, 0);
    let events = c.take_events();
    let [Event::Publish { channel: 1, body, header, .. }] = events.as_slice() else {
        panic!("expected a publish, got {events:?}");
    };
    assert!(body.is_empty());
    assert_eq!(header.body_size, 0);
    // The channel takes methods again right away.
    c.send(1, BasicQos::default());
    assert!(matches!(single(c.take_events()), Event::Method { channel: 1, .. }));
}

#[test]
fn body_without_publish_is_unexpected() {
    let mut c = opened_with_channel();
    c.send_body(1, b"stray");
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 505);
    assert!(c.take_events().iter().all(|e| matches!(e, Event::ChannelClosed(1))));
}

#[test]
fn header_without_publish_is_unexpected() {
    let mut c = opened_with_channel();
    c.send_header(1, 5);
    assert_eq!(c.expect_connection_close().reply_code, 505);
}

#[test]
fn body_before_header_is_unexpected() {
    let mut c = opened_with_channel();
    c.send_publish(1, "", "q");
    c.send_body(1, b"early");
    assert_eq!(c.expect_connection_close().reply_code, 505);
}

#[test]
fn second_header_is_unexpected() {
    let mut c = opened_with_channel();
    c.send_publish(1, "", "q");
    c.send_header(1, 5);
    c.send_header(1, 5);
    assert_eq!(c.expect_connection_close().reply_code, 505);
}

#[test]
fn method_while_content_is_expected_is_unexpected() {
    let mut c = opened_with_channel();
    c.send_publish(1, "", "q");
    c.send_header(1, 10);
    c.send_body(1, b"half");
    c.send(1, BasicQos::default());
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 505);
    // RabbitMQ names the publish whose content was cut short.
    assert_eq!((close.class_id, close.method_id), (60, 40));
    let events = c.take_events();
    assert!(!events.iter().any(|e| matches!(e, Event::Publish { .. } | Event::Method { .. })), "{events:?}");
    assert_eq!(events, vec![Event::ChannelClosed(1)]);
}

#[test]
fn method_instead_of_header_is_unexpected() {
    let mut c = opened_with_channel();
    c.send_publish(1, "", "q");
    c.send_publish(1, "", "q");
    assert_eq!(c.expect_connection_close().reply_code, 505);
}

#[test]
fn body_larger_than_announced_never_completes() {
    // As RabbitMQ: the content stays incomplete and the next method is the unexpected frame.
    let mut c = opened_with_channel();
    c.send_publish(1, "", "q");
    c.send_header(1, 4);
    c.send_body(1, b"abc");
    c.send_body(1, b"de");
    assert!(c.output().is_empty());
    assert!(!c.take_events().iter().any(|e| matches!(e, Event::Publish { .. })));
    c.send(1, BasicQos::default());
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 505);
    assert_eq!(
        &*close.reply_text,
        "UNEXPECTED_FRAME - expected content body, got non content body frame instead"
    );
    assert_eq!((close.class_id, close.method_id), (60, 40));
}

#[test]
fn body_size_above_max_message_size_closes_the_channel() {
    let config = ConnectionConfig { max_message_size: 1000, ..Default::default() };
    let mut c = Client::with_config(config);
    c.handshake(2047, 131_072, 0);
    c.open_channel(1);
    c.send_publish(1, "", "q");
    c.send_header(1, 1001);
    let close = match single(c.methods()) {
        (1, Method::ChannelClose(cl)) => cl,
        other => panic!("expected channel.close, got {other:?}"),
    };
    assert_eq!(close.reply_code, 406);
    assert!(close.reply_text.contains("1001") && close.reply_text.contains("1000"), "{}", close.reply_text);
    assert_eq!((close.class_id, close.method_id), (60, 40));
    assert_eq!(c.take_events(), vec![Event::ChannelClosed(1)]);
    // The body that follows is dropped with the channel; the connection stays up.
    c.send_body(1, &[0; 1001]);
    assert!(c.output().is_empty());
    assert!(c.take_events().is_empty());
    assert!(c.conn.is_open());

    // Exactly the limit is fine.
    c.open_channel(2);
    c.send_publish(2, "", "q");
    c.send_header(2, 1000);
    c.send_body(2, &[7; 1000]);
    assert!(matches!(single(c.take_events()), Event::Publish { channel: 2, .. }));
}

#[test]
fn frame_bigger_than_negotiated_frame_max_is_a_frame_error() {
    let mut c = Client::new();
    c.handshake(2047, 4096, 0);
    c.open_channel(1);
    c.send_publish(1, "", "q");
    c.send_header(1, 10_000);
    // 4088 bytes of payload + 8 of envelope = 4096: fits exactly.
    c.send_body(1, &[1; 4088]);
    assert!(c.output().is_empty());
    assert!(c.conn.is_open());
    c.send_body(1, &[1; 4089]);
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 501);
    assert!(!c.take_events().iter().any(|e| matches!(e, Event::Publish { .. })));
}

#[test]
fn frame_before_tune_ok_is_held_to_the_servers_frame_max() {
    let config = ConnectionConfig { frame_max: 8192, ..Default::default() };
    let mut c = Client::with_config(config);
    c.header();
    let start_ok = ConnectionStartOk {
        client_properties: FieldTable::new(),
        mechanism: "PLAIN".into(),
        response: Bytes::from(vec![b'a'; 9000]),
        locale: "en_US".into(),
    };
    c.send(0, start_ok);
    assert_eq!(c.expect_connection_close().reply_code, 501);
    assert!(c.host.auth_calls.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Heartbeats and timeouts
// ---------------------------------------------------------------------------------------------

fn count_heartbeats(frames: &[Frame]) -> usize {
    frames.iter().filter(|f| matches!(f, Frame::Heartbeat { channel: 0 })).count()
}

#[test]
fn heartbeat_is_sent_when_due() {
    let mut c = Client::new();
    c.handshake(2047, 131_072, 10);
    // Sent every half interval (5 s), counted from the last input (time 0).
    assert_eq!(c.conn.poll_timeout(), Some(c.start + Duration::from_secs(5)));
    let t = c.at(4.9);
    c.conn.handle_timeout(t);
    assert!(c.output().is_empty(), "not due yet");
    let t = c.at(5.0);
    c.conn.handle_timeout(t);
    let frames = c.output();
    assert_eq!(frames, vec![Frame::Heartbeat { channel: 0 }]);
    assert_eq!(c.conn.poll_timeout(), Some(c.start + Duration::from_secs(10)));
    assert!(c.conn.is_open());
}

#[test]
fn heartbeat_frames_from_the_client_keep_it_alive() {
    let mut c = Client::new();
    c.handshake(2047, 131_072, 10);
    let hb = raw::heartbeat_frame();
    let mut sent = 0;
    // The client beats every 9 s; by 60 s it would have been dropped three times over.
    for step in 1..=6 {
        let target = f64::from(step) * 9.0;
        while let Some(due) = c.conn.poll_timeout() {
            if due > c.start + Duration::from_secs_f64(target) {
                break;
            }
            c.now = due;
            c.conn.handle_timeout(due);
        }
        sent += count_heartbeats(&c.output());
        assert!(c.conn.is_open(), "dropped before {target}s");
        c.at(target);
        c.feed(&hb);
    }
    assert!(sent >= 9, "server heartbeats sent: {sent}");
    assert!(c.take_events().is_empty());
}

#[test]
fn silence_while_the_server_holds_off_reading_is_not_a_missed_heartbeat() {
    let mut c = Client::new();
    c.handshake(2047, 131_072, 10);
    let t = c.at(5.0);
    c.conn.hold_reading(true, t);
    // A long hold (a slow consumer's queue, a disk alarm): heartbeats still go out, nobody is
    // dropped for not being read.
    while let Some(due) = c.conn.poll_timeout() {
        if due > c.start + Duration::from_secs(120) {
            break;
        }
        c.now = due;
        c.conn.handle_timeout(due);
    }
    assert!(c.conn.is_open());
    assert!(count_heartbeats(&c.output()) >= 20);
    // Once reading resumes the silence counts from then.
    let resumed = c.at(120.0);
    c.conn.hold_reading(false, resumed);
    let t = c.at(139.0);
    c.conn.handle_timeout(t);
    assert!(c.conn.is_open());
    let t = c.at(140.0);
    c.conn.handle_timeout(t);
    assert_eq!(reason(&c), Some(CloseReason::MissedHeartbeats(Duration::from_secs(10))));
}

#[test]
fn silent_peer_is_dropped_after_two_intervals() {
    let mut c = Client::new();
    c.handshake(2047, 131_072, 10);
    let mut heartbeats = 0;
    let mut last = c.start;
    while !c.conn.is_closed() {
        let due = c.conn.poll_timeout().expect("a timer while heartbeats run");
        assert!(due >= last, "time goes forward");
        assert!(due <= c.start + Duration::from_secs(20), "silence limit is two intervals");
        last = due;
        c.now = due;
        c.conn.handle_timeout(due);
        heartbeats += count_heartbeats(&c.output());
    }
    assert_eq!(last, c.start + Duration::from_secs(20));
    assert_eq!(heartbeats, 3, "beats at 5, 10 and 15 s");
    assert!(c.output().is_empty(), "no close frame for a dead peer");
}

#[test]
fn silence_just_under_two_intervals_is_tolerated() {
    let mut c = Client::new();
    c.handshake(2047, 131_072, 10);
    let t = c.at(19.99);
    c.conn.handle_timeout(t);
    assert!(c.conn.is_open());
    let t = c.at(20.0);
    c.conn.handle_timeout(t);
    assert!(c.conn.is_closed());
}

#[test]
fn input_moves_the_silence_deadline() {
    let mut c = Client::new();
    c.handshake(2047, 131_072, 10);
    c.at(15.0);
    c.open_channel(1);
    let t = c.at(25.0);
    c.conn.handle_timeout(t);
    assert!(c.conn.is_open(), "input at 15 s: alive until 35 s");
    let t = c.at(35.0);
    c.conn.handle_timeout(t);
    assert!(c.conn.is_closed());
}

#[test]
fn short_heartbeat_is_sent_at_least_a_second_apart() {
    let mut c = Client::new();
    c.handshake(2047, 131_072, 1);
    assert_eq!(c.conn.poll_timeout(), Some(c.start + Duration::from_secs(1)));
}

// ---------------------------------------------------------------------------------------------
// Handshake timeout
// ---------------------------------------------------------------------------------------------

#[test]
fn a_silent_client_is_dropped_at_the_handshake_timeout() {
    let mut c = Client::new();
    assert_eq!(c.conn.poll_timeout(), Some(c.start + Duration::from_secs(10)), "RabbitMQ's 10 s");
    let t = c.at(9.999);
    c.conn.handle_timeout(t);
    assert!(!c.conn.is_closed());
    let t = c.at(10.0);
    c.conn.handle_timeout(t);
    assert!(c.conn.is_closed());
    assert!(c.output().is_empty(), "as RabbitMQ, nothing is sent");
}

#[test]
fn input_does_not_move_the_handshake_deadline() {
    let mut c = Client::new();
    // One byte a second: the header alone takes 8 s.
    for (i, byte) in PROTOCOL_HEADER.iter().enumerate() {
        c.at(i as f64);
        c.feed(&[*byte]);
    }
    assert!(matches!(single(c.methods()), (0, Method::ConnectionStart(_))));
    c.at(9.0);
    c.start_ok_plain("guest", "guest", FieldTable::new());
    c.expect_tune();
    let t = c.at(10.0);
    c.conn.handle_timeout(t);
    assert!(c.conn.is_closed(), "still in the handshake at 10 s");
    assert!(c.output().is_empty());
}

#[test]
fn an_open_connection_has_no_handshake_deadline() {
    let mut c = Client::new();
    c.at(9.0);
    c.handshake(2047, 131_072, 0);
    assert_eq!(c.conn.poll_timeout(), None);
    let t = c.at(3600.0);
    c.conn.handle_timeout(t);
    assert!(c.conn.is_open());
}

#[test]
fn the_handshake_timeout_is_configurable_and_zero_disables_it() {
    let config = ConnectionConfig { handshake_timeout: Duration::from_millis(250), ..Default::default() };
    let mut c = Client::with_config(config);
    c.header();
    assert_eq!(c.conn.poll_timeout(), Some(c.start + Duration::from_millis(250)));
    let t = c.at(0.25);
    c.conn.handle_timeout(t);
    assert!(c.conn.is_closed());

    let config = ConnectionConfig { handshake_timeout: Duration::ZERO, ..Default::default() };
    let mut c = Client::with_config(config);
    assert_eq!(c.conn.poll_timeout(), None);
    c.header();
    let t = c.at(3600.0);
    c.conn.handle_timeout(t);
    assert!(!c.conn.is_closed());
}

#[test]
fn a_handshake_closing_with_an_error_waits_for_close_ok_not_the_handshake_deadline() {
    let mut c = Client::new();
    c.header();
    c.start_ok_plain("guest", "guest", FieldTable::new());
    c.expect_tune();
    c.tune_ok(2047, 131_072, 0);
    c.at(9.0);
    c.open("no-such-vhost");
    c.expect_connection_close();
    let t = c.at(10.0);
    c.conn.handle_timeout(t);
    assert!(!c.conn.is_closed(), "closing: the handshake deadline no longer applies");
    c.send(0, ConnectionCloseOk);
    assert!(c.conn.is_closed());
}

// ---------------------------------------------------------------------------------------------
// Connection close
// ---------------------------------------------------------------------------------------------

#[test]
fn after_server_close_only_close_and_close_ok_count() {
    let mut c = opened_with_channel();
    c.open_channel(2);
    c.send(1, ChannelFlow { active: false });
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 540);
    let mut released: Vec<Event> = c.take_events();
    released.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(released, vec![Event::ChannelClosed(1), Event::ChannelClosed(2)]);

    c.send(3, ChannelOpen::default());
    c.send(1, QueueDeclare::default());
    c.send_publish(2, "", "q");
    c.send_header(2, 0);
    assert!(c.output().is_empty(), "ignored while closing");
    assert!(c.take_events().is_empty(), "ignored while closing");
    assert!(!c.conn.is_closed());

    c.send(0, ConnectionCloseOk);
    assert!(c.conn.is_closed());
    assert!(c.output().is_empty());
    assert!(!c.conn.linger_before_close(), "we sent close, the client confirmed: no linger");
}

#[test]
fn close_crossing_server_close_is_answered() {
    let mut c = opened_with_channel();
    c.conn.close_connection(AmqpError::new(320, "shutting down"));
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 320);
    assert_eq!(&*close.reply_text, "CONNECTION_FORCED - shutting down");
    c.send(0, ConnectionClose { reply_code: 200, reply_text: "".into(), class_id: 0, method_id: 0 });
    assert!(matches!(single(c.methods()), (0, Method::ConnectionCloseOk(_))));
    assert!(c.conn.is_closed());
}

#[test]
fn shutdown_closes_an_open_connection_with_320_and_waits_for_close_ok() {
    let mut c = opened_with_channel();
    let now = c.at(100.0);
    c.conn.force_close(AmqpError::broker_forced("shutdown"), now);
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 320);
    assert_eq!(
        &*close.reply_text,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    );
    assert_eq!((close.class_id, close.method_id), (0, 0));
    assert_eq!(c.take_events(), vec![Event::ChannelClosed(1)]);
    // The client had been quiet for 100 s: it still gets the whole close timeout to answer.
    assert_eq!(c.conn.poll_timeout(), Some(now + Duration::from_secs(3)));
    c.send(0, ConnectionCloseOk);
    assert!(c.conn.is_closed());
}

#[test]
fn close_ok_that_arrives_before_the_released_channels_are_handled_still_counts() {
    let mut c = opened_with_channel();
    let now = c.at(1.0);
    c.conn.force_close(AmqpError::broker_forced("shutdown"), now);
    c.expect_connection_close();
    let mut input = BytesMut::new();
    frame::write_method(&mut input, 0, &ConnectionCloseOk {}.into());
    // Events are still pending: the machine leaves the input for later rather than dropping it.
    c.conn.handle_input(&mut input, now, &mut c.host);
    assert_eq!(c.conn.poll_event(), Some(Event::ChannelClosed(1)));
    c.conn.handle_input(&mut input, now, &mut c.host);
    assert!(c.conn.is_closed());
}

#[test]
fn shutdown_drops_a_connection_in_its_handshake_silently() {
    let mut c = Client::new();
    c.header();
    c.start_ok_plain("guest", "guest", FieldTable::new());
    c.expect_tune();
    let now = c.at(1.0);
    c.conn.force_close(AmqpError::broker_forced("shutdown"), now);
    assert!(c.conn.is_closed());
    assert!(c.output().is_empty());
}

#[test]
fn shutdown_leaves_a_closing_connection_alone() {
    let mut c = opened_with_channel();
    c.send(1, ChannelFlow { active: false });
    assert_eq!(c.expect_connection_close().reply_code, 540);
    let now = c.at(1.0);
    c.conn.force_close(AmqpError::broker_forced("shutdown"), now);
    assert!(c.output().is_empty(), "one close is enough");
    assert!(!c.conn.is_closed());
}

#[test]
fn unanswered_server_close_times_out() {
    let mut c = opened_with_channel();
    c.send(1, ChannelFlow { active: false });
    c.expect_connection_close();
    let deadline = c.conn.poll_timeout().expect("close has a deadline");
    assert!(deadline > c.now && deadline <= c.now + Duration::from_secs(30), "{deadline:?}");
    c.conn.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!c.conn.is_closed());
    c.conn.handle_timeout(deadline);
    assert!(c.conn.is_closed());
}

#[test]
fn client_close_is_confirmed_and_releases_channels() {
    let mut c = opened_with_channel();
    c.open_channel(5);
    c.send(0, ConnectionClose { reply_code: 200, reply_text: "Goodbye".into(), class_id: 0, method_id: 0 });
    assert!(matches!(single(c.methods()), (0, Method::ConnectionCloseOk(_))));
    let mut events = c.take_events();
    events.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(events, vec![Event::ChannelClosed(1), Event::ChannelClosed(5)]);
    assert!(c.conn.is_closed());
    assert!(c.conn.linger_before_close());
    // Nothing more is processed.
    c.send(1, QueueDeclare::default());
    assert!(c.output().is_empty());
    assert!(c.take_events().is_empty());
}

#[test]
fn client_close_during_handshake_is_confirmed() {
    let mut c = tuned(2047, 131_072, 0);
    c.send(0, ConnectionClose { reply_code: 200, reply_text: "".into(), class_id: 0, method_id: 0 });
    assert!(matches!(single(c.methods()), (0, Method::ConnectionCloseOk(_))));
    assert!(c.conn.is_closed());
    assert!(c.conn.linger_before_close());
}

#[test]
fn eof_releases_channels_without_linger() {
    let mut c = opened_with_channel();
    c.conn.handle_eof();
    assert_eq!(c.conn.poll_event(), Some(Event::ChannelClosed(1)));
    assert!(c.conn.is_closed());
    assert!(!c.conn.linger_before_close());
}

#[test]
fn frames_after_a_fatal_one_in_the_same_read_are_dropped() {
    let mut c = opened_with_channel();
    let mut buf = BytesMut::new();
    frame::write_method(&mut buf, 1, &ChannelFlow { active: false }.into());
    frame::write_method(&mut buf, 1, &QueueDeclare::default().into());
    c.feed(&buf);
    assert_eq!(c.expect_connection_close().reply_code, 540);
    assert!(!c.take_events().iter().any(|e| matches!(e, Event::Method { .. })));
    assert!(c.input.is_empty(), "the rest of the read is discarded");
}

#[test]
fn unparseable_frame_closes_with_its_reply_code() {
    let mut c = opened_with_channel();
    // A method frame (basic.qos) with a bad frame-end octet.
    let mut buf = raw::method_frame(1, 60, 10, &raw::W::new().u32(0).u16(0).bits(&[false]).build());
    *buf.last_mut().unwrap() = 0;
    c.feed(&buf);
    assert_eq!(c.expect_connection_close().reply_code, 501);
}

// ---------------------------------------------------------------------------------------------
// Close reasons (what the log says about a connection's end)
// ---------------------------------------------------------------------------------------------

fn reason(c: &Client) -> Option<CloseReason> {
    c.conn.close_reason().cloned()
}

#[test]
fn a_client_close_is_the_reason() {
    let mut c = opened_with_channel();
    assert_eq!(reason(&c), None);
    c.send(0, ConnectionClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 });
    assert_eq!(reason(&c), Some(CloseReason::ClientClosed));
}

#[test]
fn a_vanished_client_is_told_apart_from_a_health_check() {
    let mut c = opened();
    c.conn.handle_eof();
    assert_eq!(reason(&c), Some(CloseReason::Eof));
    let mut c = Client::new();
    c.conn.handle_eof();
    assert_eq!(reason(&c), Some(CloseReason::NothingReceived));
}

#[test]
fn an_error_stays_the_reason_through_the_close_ok_or_its_timeout() {
    let mut c = opened_with_channel();
    c.send(1, ChannelFlow { active: false });
    c.expect_connection_close();
    let expected = Some(CloseReason::Error(AmqpError::not_implemented("active=false").at(20, 20)));
    assert_eq!(reason(&c), expected);
    c.send(0, ConnectionCloseOk);
    assert_eq!(reason(&c), expected);

    let mut c = opened_with_channel();
    c.send(1, ChannelFlow { active: false });
    c.expect_connection_close();
    let deadline = c.conn.poll_timeout().unwrap();
    c.conn.handle_timeout(deadline);
    assert!(c.conn.is_closed());
    assert_eq!(reason(&c), expected);
}

#[test]
fn timeouts_are_reasons() {
    let mut c = Client::new();
    c.handshake(2047, 131_072, 10);
    let t = c.at(20.0);
    c.conn.handle_timeout(t);
    assert_eq!(reason(&c), Some(CloseReason::MissedHeartbeats(Duration::from_secs(10))));

    let mut c = Client::new();
    c.header();
    let t = c.at(10.0);
    c.conn.handle_timeout(t);
    assert_eq!(reason(&c), Some(CloseReason::HandshakeTimeout(Duration::from_secs(10))));
}

#[test]
fn a_refused_login_names_the_hosts_reason() {
    let mut c = Client::new();
    c.header();
    let at = c.at(2.5);
    c.start_ok_plain("guest", "wrong", capabilities(&["authentication_failure_close"]));
    c.expect_connection_close();
    c.send(0, ConnectionCloseOk);
    assert_eq!(reason(&c), Some(CloseReason::LoginRefused(LoginRefused::BadPassword)));
    // The host is told, with the time of the input, so it can log and count the refusal.
    let reported = c.host.refused.clone();
    assert_eq!(reported, [("guest".to_owned(), "PLAIN".to_owned(), LoginRefused::BadPassword, at)]);

    let mut c = Client::new();
    c.header();
    c.start_ok_plain("nobody", "guest", FieldTable::new());
    assert_eq!(reason(&c), Some(CloseReason::LoginRefused(LoginRefused::UnknownUser)));
}

#[test]
fn a_shutdown_is_a_forced_close() {
    let mut c = opened();
    let now = c.at(1.0);
    c.conn.force_close(AmqpError::broker_forced("shutdown"), now);
    assert!(reason(&c).is_some_and(|r| r.is_forced()));
}
