//! A deliberately tiny, hand-rolled AMQP 0-9-1 wire codec for tests that
//! must send malformed or unusual frames, or observe exact wire-level
//! details (delivery tags of confirms, reply codes of methods a client
//! library does not expose).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

/// Builder for method arguments / frame payloads.
#[derive(Default, Clone)]
pub struct W(pub Vec<u8>);

impl W {
    pub fn new() -> W {
        W(Vec::new())
    }
    pub fn u8(mut self, v: u8) -> W {
        self.0.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> W {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> W {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> W {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn shortstr(mut self, s: &str) -> W {
        assert!(s.len() < 256);
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn longstr(mut self, s: &[u8]) -> W {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }
    /// An empty field table.
    pub fn empty_table(self) -> W {
        self.u32(0)
    }
    /// A field table given as raw encoded content.
    pub fn raw_table(mut self, content: &[u8]) -> W {
        self.0.extend_from_slice(&(content.len() as u32).to_be_bytes());
        self.0.extend_from_slice(content);
        self
    }
    /// Packed bits, first flag in the lowest bit.
    pub fn bits(self, flags: &[bool]) -> W {
        let mut b = 0u8;
        for (i, f) in flags.iter().enumerate() {
            if *f {
                b |= 1 << i;
            }
        }
        self.u8(b)
    }
    pub fn bytes(mut self, b: &[u8]) -> W {
        self.0.extend_from_slice(b);
        self
    }
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// Encodes a whole frame.
pub fn frame(ty: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 8);
    v.push(ty);
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(FRAME_END);
    v
}

/// Encodes a method frame.
pub fn method_frame(channel: u16, class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(args.len() + 4);
    p.extend_from_slice(&class.to_be_bytes());
    p.extend_from_slice(&method.to_be_bytes());
    p.extend_from_slice(args);
    frame(FRAME_METHOD, channel, &p)
}

/// Encodes a basic content header frame with no properties.
pub fn content_header_frame(channel: u16, body_size: u64) -> Vec<u8> {
    let p = W::new().u16(60).u16(0).u64(body_size).u16(0).build();
    frame(FRAME_HEADER, channel, &p)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub ty: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

impl Frame {
    /// (class-id, method-id) of a method frame.
    pub fn method_id(&self) -> Option<(u16, u16)> {
        if self.ty != FRAME_METHOD || self.payload.len() < 4 {
            return None;
        }
        Some((
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            u16::from_be_bytes([self.payload[2], self.payload[3]]),
        ))
    }
    /// Reader over the method arguments.
    pub fn args(&self) -> R<'_> {
        R { buf: &self.payload[4.min(self.payload.len())..], pos: 0 }
    }
}

/// Cursor over method arguments.
pub struct R<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> R<'a> {
    pub fn new(buf: &'a [u8]) -> R<'a> {
        R { buf, pos: 0 }
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    pub fn shortstr(&mut self) -> String {
        let n = self.u8() as usize;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    pub fn longstr(&mut self) -> Vec<u8> {
        let n = self.u32() as usize;
        self.take(n).to_vec()
    }
}

/// A close (connection.close or channel.close) as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

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
        let mut c = Self::tcp(addr).await;
        c.send(PROTOCOL_HEADER).await;
        let start = c.expect_method(0, (10, 10)).await;
        let mut a = start.args();
        assert_eq!((a.u8(), a.u8()), (0, 9), "connection.start version");
        // start-ok: client-properties, mechanism, response, locale
        let caps = W::new()
            .shortstr("consumer_cancel_notify")
            .u8(b't')
            .u8(1)
            .shortstr("publisher_confirms")
            .u8(b't')
            .u8(1)
            .shortstr("basic.nack")
            .u8(b't')
            .u8(1)
            .build();
        let props = W::new()
            .shortstr("product")
            .u8(b'S')
            .longstr(b"warren-raw-test")
            .shortstr("capabilities")
            .u8(b'F')
            .raw_table(&caps)
            .build();
        let args =
            W::new().raw_table(&props).shortstr("PLAIN").longstr(b"\0guest\0guest").shortstr("en_US").build();
        c.send(&method_frame(0, 10, 11, &args)).await;
        let tune = c.expect_method(0, (10, 30)).await;
        let mut a = tune.args();
        let channel_max = a.u16();
        let frame_max = a.u32();
        let _heartbeat = a.u16();
        c.channel_max = channel_max;
        c.frame_max = frame_max;
        let args = W::new().u16(channel_max).u32(frame_max).u16(0).build();
        c.send(&method_frame(0, 10, 31, &args)).await;
        let args = W::new().shortstr(vhost).shortstr("").u8(0).build();
        c.send(&method_frame(0, 10, 40, &args)).await;
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
        let args = W::new().u16(0).shortstr(exchange).shortstr(routing_key).bits(&[false, false]).build();
        let mut bytes = method_frame(channel, 60, 40, &args);
        bytes.extend(content_header_frame(channel, body.len() as u64));
        if !body.is_empty() {
            bytes.extend(frame(FRAME_BODY, channel, body));
        }
        self.send(&bytes).await;
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
        let head = self.read_exact_or_eof(7).await;
        if head.len() < 7 {
            return Read::Eof;
        }
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let rest = self.read_exact_or_eof(size + 1).await;
        assert_eq!(rest.len(), size + 1, "broker sent a truncated frame (header {head:?})");
        assert_eq!(rest[size], FRAME_END, "broker frame without frame-end");
        Read::Frame(Frame {
            ty: head[0],
            channel: u16::from_be_bytes([head[1], head[2]]),
            payload: rest[..size].to_vec(),
        })
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

pub fn parse_close(f: &Frame) -> Close {
    let mut a = f.args();
    Close { code: a.u16(), text: a.shortstr(), class_id: a.u16(), method_id: a.u16() }
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
    c.send_method(0, 10, 50, &W::new().u16(200).shortstr("bye").u16(0).u16(0).build()).await;
    c.expect_method(0, (10, 51)).await;
}
