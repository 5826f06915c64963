//! [`RawConn`], a hand-driven AMQP 0-9-1 connection over a tokio socket, for tests that must
//! send malformed or unusual frames, or observe exact wire-level details (delivery tags of
//! confirms, reply codes of methods a client library does not expose). The frames themselves
//! are built and read with `warren-testkit`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_testkit::methods::{self, parse_close, Close};
use warren_testkit::{
    method_frame, parse_frame, payload_len, Frame, FRAME_BODY, FRAME_HEADER, FRAME_HEAD_LEN, FRAME_HEARTBEAT,
    PROTOCOL_HEADER, W,
};

/// What `read_frame` saw.
#[derive(Debug)]
pub enum Read {
    Frame(Frame),
    Eof,
}

pub struct RawConn {
    pub stream: TcpStream,
    pub frame_max: u32,
    pub channel_max: u16,
}

impl RawConn {
    /// Opens a TCP connection without sending anything.
    pub async fn tcp(addr: SocketAddr) -> RawConn {
        let stream = super::within(TcpStream::connect(addr)).await.expect("tcp connect");
        stream.set_nodelay(true).ok();
        RawConn { stream, frame_max: 0, channel_max: 0 }
    }

    /// Opens a connection and performs the full handshake by hand as
    /// guest/guest on vhost "/" with heartbeats disabled.
    pub async fn handshake(addr: SocketAddr) -> RawConn {
        Self::handshake_vhost(addr, "/").await
    }

    pub async fn handshake_vhost(addr: SocketAddr, vhost: &str) -> RawConn {
        let props = methods::client_properties(
            "warren-raw-test",
            &["consumer_cancel_notify", "publisher_confirms", "basic.nack"],
        );
        Self::handshake_with(addr, vhost, &props).await
    }

    /// The handshake as guest/guest on `vhost`, announcing these client properties (encoded
    /// table content, see [`methods::client_properties`]); heartbeats disabled.
    pub async fn handshake_with(addr: SocketAddr, vhost: &str, client_properties: &[u8]) -> RawConn {
        let mut c = Self::tcp(addr).await;
        c.send(PROTOCOL_HEADER).await;
        let start = c.expect_method(0, (10, 10)).await;
        let mut a = start.args();
        assert_eq!((a.u8(), a.u8()), (0, 9), "connection.start version");
        c.send_method(0, 10, 11, &methods::start_ok_plain(client_properties, "guest", "guest")).await;
        let tune = c.expect_method(0, (10, 30)).await;
        let mut a = tune.args();
        let channel_max = a.u16();
        let frame_max = a.u32();
        let _heartbeat = a.u16();
        c.channel_max = channel_max;
        c.frame_max = frame_max;
        c.send_method(0, 10, 31, &methods::tune_ok(channel_max, frame_max, 0)).await;
        c.send_method(0, 10, 40, &methods::connection_open(vhost)).await;
        c.expect_method(0, (10, 41)).await;
        c
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        super::within(self.stream.write_all(bytes)).await.expect("write to broker");
    }

    /// Like `send` but tolerates the broker having closed the socket.
    pub async fn send_lenient(&mut self, bytes: &[u8]) {
        let _ = super::within(self.stream.write_all(bytes)).await;
    }

    pub async fn send_method(&mut self, channel: u16, class: u16, method: u16, args: &[u8]) {
        self.send(&method_frame(channel, class, method, args)).await
    }

    pub async fn open_channel(&mut self, channel: u16) {
        self.send_method(channel, 20, 10, &W::new().shortstr("").build()).await;
        self.expect_method(channel, (20, 11)).await;
    }

    /// Publishes a message with no properties on `channel`.
    pub async fn publish(&mut self, channel: u16, exchange: &str, routing_key: &str, body: &[u8]) {
        self.send(&methods::publish_frames(channel, exchange, routing_key, body)).await;
    }

    /// Reads raw bytes until `n` are available or EOF.
    pub async fn read_exact_or_eof(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match super::within(self.stream.read(&mut buf[got..])).await {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
        buf.truncate(got);
        buf
    }

    /// Reads one frame, or reports EOF (a reset counts as EOF).
    pub async fn read_frame(&mut self) -> Read {
        let head = self.read_exact_or_eof(FRAME_HEAD_LEN).await;
        let Ok(head) = <[u8; FRAME_HEAD_LEN]>::try_from(head) else {
            return Read::Eof;
        };
        let rest = self.read_exact_or_eof(payload_len(&head) + 1).await;
        let bytes = [&head[..], &rest].concat();
        match parse_frame(&bytes) {
            Some((frame, _)) => Read::Frame(frame),
            None => panic!("broker sent a truncated frame (header {head:?})"),
        }
    }

    /// Reads frames (skipping heartbeats) until a frame arrives.
    pub async fn next_frame(&mut self) -> Frame {
        loop {
            match self.read_frame().await {
                Read::Frame(f) if f.ty == FRAME_HEARTBEAT => continue,
                Read::Frame(f) => return f,
                Read::Eof => panic!("unexpected EOF from broker"),
            }
        }
    }

    /// Reads the next non-heartbeat frame and checks it is the given method.
    pub async fn expect_method(&mut self, channel: u16, id: (u16, u16)) -> Frame {
        let f = self.next_frame().await;
        if let Some((10, 50)) = f.method_id() {
            let c = parse_close(&f);
            panic!("expected method {id:?} on channel {channel}, got connection.close {c:?}");
        }
        if let Some((20, 40)) = f.method_id() {
            let c = parse_close(&f);
            panic!("expected method {id:?} on channel {channel}, got channel.close {c:?}");
        }
        assert_eq!((f.channel, f.method_id()), (channel, Some(id)), "unexpected frame {f:?}");
        f
    }

    /// Reads until a connection.close arrives (skipping other frames),
    /// answers it with close-ok and returns it. Panics on EOF first.
    pub async fn expect_connection_close(&mut self) -> Close {
        loop {
            let f = self.next_frame().await;
            if f.channel == 0 && f.method_id() == Some((10, 50)) {
                let close = parse_close(&f);
                self.send_lenient(&method_frame(0, 10, 51, &[])).await;
                return close;
            }
        }
    }

    /// Reads until a channel.close on `channel` arrives, answers close-ok.
    pub async fn expect_channel_close(&mut self, channel: u16) -> Close {
        loop {
            let f = self.next_frame().await;
            if f.channel == 0 && f.method_id() == Some((10, 50)) {
                panic!("expected channel.close, got connection.close {:?}", parse_close(&f));
            }
            if f.channel == channel && f.method_id() == Some((20, 40)) {
                let close = parse_close(&f);
                self.send(&method_frame(channel, 20, 41, &[])).await;
                return close;
            }
        }
    }

    /// Asserts the broker closes the TCP connection (after possibly
    /// sending some frames, which are returned).
    pub async fn expect_eof(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match self.read_frame().await {
                Read::Frame(f) => frames.push(f),
                Read::Eof => return frames,
            }
        }
    }

    /// Reads whatever arrives within `d` (returns early on EOF).
    pub async fn frames_within(&mut self, d: Duration) -> Vec<Frame> {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.read_frame()).await {
                Ok(Read::Frame(f)) => frames.push(f),
                Ok(Read::Eof) | Err(_) => return frames,
            }
        }
    }
}

/// Sanity check used by raw tests: the broker still serves a brand-new,
/// unrelated connection (handshake + channel + declare + publish + get).
pub async fn assert_broker_alive(addr: SocketAddr) {
    let mut c = RawConn::handshake(addr).await;
    c.open_channel(1).await;
    // queue.declare exclusive server-named, no-wait=false
    let args = W::new().u16(0).shortstr("").bits(&[false, false, true, true, false]).empty_table().build();
    c.send_method(1, 50, 10, &args).await;
    let ok = c.expect_method(1, (50, 11)).await;
    let q = ok.args().shortstr();
    assert!(q.starts_with("amq.gen-"), "server-named queue {q}");
    c.publish(1, "", &q, b"alive").await;
    // basic.get no-ack
    let args = W::new().u16(0).shortstr(&q).bits(&[true]).build();
    c.send_method(1, 60, 70, &args).await;
    let f = c.next_frame().await;
    assert_eq!(f.method_id(), Some((60, 71)), "basic.get-ok expected");
    let h = c.next_frame().await;
    assert_eq!(h.ty, FRAME_HEADER);
    let b = c.next_frame().await;
    assert_eq!((b.ty, b.payload.as_slice()), (FRAME_BODY, &b"alive"[..]));
    c.send_method(0, 10, 50, &methods::close(200, "bye", 0, 0)).await;
    c.expect_method(0, (10, 51)).await;
}
