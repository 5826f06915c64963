//! A raw-frame AMQP client for scenarios that must see the wire: every
//! method the server sends, in order, with all its fields, and the raw
//! content-header property bytes. Methods are encoded and decoded with
//! `warren-protocol`; frame envelopes, content headers and property lists
//! are taken apart here, so what the server sent is shown as sent.
//!
//! Received methods are queued per channel and logged when the scenario
//! takes them (`recv`), so the transcript order is the scenario's order
//! within a channel and does not depend on how the server interleaves
//! channels. `channel.close` and `connection.close` from the server are
//! answered with their `-ok` as soon as they arrive, as real clients do.
//! Writes never fail a scenario: after the server closed the socket the
//! outcome shows up as `EOF` on the next receive.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use warren_protocol::frame::{write_body, write_header, write_method, PROTOCOL_HEADER};
use warren_protocol::methods::*;
use warren_protocol::{FieldTable, FieldValue, Method};

use crate::harness::{Abort, Ctx, Res, Target, REPLY_TIMEOUT};
use crate::wire::{self, Props, Table};

/// The content of a basic.deliver / get-ok / return.
#[derive(Clone, Debug)]
pub struct Content {
    pub class_id: u16,
    pub weight: u16,
    pub body_size: u64,
    /// Property flags + list exactly as received.
    pub props: Bytes,
    pub body: Vec<u8>,
}

/// One method received from the server (with its content, if any).
#[derive(Clone, Debug)]
pub struct Msg {
    pub ch: u16,
    pub method: Method,
    /// Raw method arguments (after class and method id).
    pub args: Bytes,
    pub content: Option<Content>,
}

fn wrong(m: &Msg, want: &str) -> Abort {
    Abort(format!("expected {want}, got {}", m.method.name()))
}

impl Msg {
    pub fn name(&self) -> &'static str {
        self.method.name()
    }
    pub fn is(&self, name: &str) -> bool {
        self.method.name() == name
    }
    /// Renders the method, its fields and content for the transcript.
    pub fn render(&self) -> String {
        let mut s = match &self.method {
            Method::ConnectionStart(_) => {
                format!("connection.start {}", wire::render_connection_start(&self.args))
            }
            m => describe(m),
        };
        if let Some(c) = &self.content {
            s.push_str(&format!(
                " | class={} weight={} body-size={} props: {} | body: {}",
                c.class_id,
                c.weight,
                c.body_size,
                wire::render_properties(&c.props),
                wire::render_body(&c.body)
            ));
        }
        s
    }
    /// The queue of a queue.declare-ok.
    pub fn queue(&self) -> Res<String> {
        match &self.method {
            Method::QueueDeclareOk(m) => Ok(m.queue.to_string()),
            _ => Err(wrong(self, "queue.declare-ok")),
        }
    }
    /// (message_count, consumer_count) of a queue.declare-ok.
    pub fn counts(&self) -> Res<(u32, u32)> {
        match &self.method {
            Method::QueueDeclareOk(m) => Ok((m.message_count, m.consumer_count)),
            _ => Err(wrong(self, "queue.declare-ok")),
        }
    }
    pub fn delivery_tag(&self) -> Res<u64> {
        match &self.method {
            Method::BasicDeliver(m) => Ok(m.delivery_tag),
            Method::BasicGetOk(m) => Ok(m.delivery_tag),
            _ => Err(wrong(self, "basic.deliver or basic.get-ok")),
        }
    }
    pub fn consumer_tag(&self) -> Res<String> {
        match &self.method {
            Method::BasicConsumeOk(m) => Ok(m.consumer_tag.to_string()),
            Method::BasicDeliver(m) => Ok(m.consumer_tag.to_string()),
            Method::BasicCancel(m) => Ok(m.consumer_tag.to_string()),
            Method::BasicCancelOk(m) => Ok(m.consumer_tag.to_string()),
            _ => Err(wrong(self, "a method with a consumer tag")),
        }
    }
    pub fn body(&self) -> Option<&[u8]> {
        self.content.as_ref().map(|c| c.body.as_slice())
    }
}

/// `basic.deliver { consumer_tag: "x", delivery_tag: 1, … }`: the spec name
/// and every field (tables are not expected in server-sent methods other
/// than connection.start, which [`Msg::render`] renders from raw bytes).
pub fn describe(m: &Method) -> String {
    let dbg = format!("{m:?}");
    // `Variant(Struct { fields })` or `Variant(Struct)`.
    let inner = dbg.find('(').map(|i| &dbg[i + 1..dbg.len() - 1]).unwrap_or("");
    match inner.find('{') {
        Some(i) => format!("{} {}", m.name(), &inner[i..]),
        None => m.name().to_string(),
    }
}

/// Login and vhost for a handshake.
#[derive(Clone, Debug)]
pub struct Login {
    pub user: String,
    pub pass: String,
    pub vhost: String,
    /// Log every handshake frame (else only a summary line).
    pub log_all: bool,
    /// Announce the consumer_cancel_notify capability.
    pub cancel_notify: bool,
    /// Announce the authentication_failure_close capability.
    pub auth_failure_close: bool,
}

impl Default for Login {
    fn default() -> Login {
        Login {
            user: "guest".into(),
            pass: "guest".into(),
            vhost: "/".into(),
            log_all: false,
            cancel_notify: true,
            auth_failure_close: true,
        }
    }
}

/// What a handshake ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    Yes,
    /// The server closed the connection (logged).
    Refused,
}

struct Pending {
    method: Method,
    args: Bytes,
    header: Option<(u16, u16, u64, Bytes)>,
    body: Vec<u8>,
}

pub struct Raw {
    cx: Ctx,
    label: String,
    stream: TcpStream,
    rbuf: BytesMut,
    queues: BTreeMap<u16, VecDeque<Msg>>,
    pending: BTreeMap<u16, Pending>,
    eof: bool,
    /// Suppresses transcript lines (for polling).
    pub quiet: bool,
    pub frame_max: u32,
    pub channel_max: u16,
}

impl Raw {
    /// A TCP connection, nothing sent yet.
    pub async fn tcp(cx: &Ctx, label: &str) -> Res<Raw> {
        let stream = crate::harness::within("tcp connect", TcpStream::connect(cx.addr()))
            .await?
            .map_err(|e| Abort(format!("tcp connect: {e}")))?;
        stream.set_nodelay(true).ok();
        Ok(Raw {
            cx: cx.clone(),
            label: label.to_string(),
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            queues: BTreeMap::new(),
            pending: BTreeMap::new(),
            eof: false,
            quiet: false,
            frame_max: 0,
            channel_max: 0,
        })
    }

    /// Connects as guest to "/" and logs one summary line.
    pub async fn connect(cx: &Ctx, label: &str) -> Res<Raw> {
        let mut c = Raw::tcp(cx, label).await?;
        match c.handshake(&Login::default()).await? {
            Opened::Yes => Ok(c),
            Opened::Refused => Err(Abort(format!("{label}: connection refused"))),
        }
    }

    /// Performs the handshake (capabilities announced like a modern
    /// client; heartbeats off).
    pub async fn handshake(&mut self, login: &Login) -> Res<Opened> {
        let quiet = self.quiet;
        self.quiet = quiet || !login.log_all;
        let r = self.handshake_steps(login).await;
        self.quiet = quiet;
        let r = r?;
        if r.is_none() && !login.log_all {
            self.log(format!("connected: channel_max={} frame_max={}", self.channel_max, self.frame_max));
        }
        match r {
            None => Ok(Opened::Yes),
            Some(m) => {
                if !login.log_all {
                    // The unexpected method was not logged in quiet mode.
                    self.log(format!("ch{} <- {}", m.ch, m.render()));
                }
                self.expect_eof().await?;
                Ok(Opened::Refused)
            }
        }
    }

    /// Returns the unexpected method if the server did not open.
    async fn handshake_steps(&mut self, login: &Login) -> Res<Option<Msg>> {
        self.send_bytes("protocol header", PROTOCOL_HEADER).await;
        let start = self.recv(0).await?;
        if !start.is("connection.start") {
            return Ok(Some(start));
        }
        let mut caps = FieldTable::new();
        for cap in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
            "per_consumer_qos",
        ] {
            if cap == "consumer_cancel_notify" && !login.cancel_notify
                || cap == "authentication_failure_close" && !login.auth_failure_close
            {
                continue;
            }
            caps.insert(cap, FieldValue::Bool(true));
        }
        let mut props = FieldTable::new();
        props.insert("product", FieldValue::LongStr(Bytes::from_static(b"warren-difftest")));
        props.insert("capabilities", FieldValue::Table(caps));
        let mut response = vec![0u8];
        response.extend_from_slice(login.user.as_bytes());
        response.push(0);
        response.extend_from_slice(login.pass.as_bytes());
        self.send(
            0,
            ConnectionStartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: Bytes::from(response),
                locale: "en_US".into(),
            },
        )
        .await;
        let tune = self.recv(0).await?;
        let Method::ConnectionTune(t) = &tune.method else {
            return Ok(Some(tune));
        };
        self.channel_max = t.channel_max;
        self.frame_max = t.frame_max;
        let tune_ok = ConnectionTuneOk { channel_max: t.channel_max, frame_max: t.frame_max, heartbeat: 0 };
        self.send(0, tune_ok).await;
        let open = ConnectionOpen { virtual_host: login.vhost.as_str().into(), ..Default::default() };
        let ok = self.call(0, open).await?;
        if !ok.is("connection.open-ok") {
            return Ok(Some(ok));
        }
        Ok(None)
    }

    fn log(&self, line: String) {
        if !self.quiet {
            self.cx.log(format!("{} {line}", self.label));
        }
    }

    /// Writes raw bytes (logged as `what`); errors are ignored (see module
    /// docs).
    pub async fn send_bytes(&mut self, what: &str, bytes: &[u8]) {
        self.log(format!("-> {what}"));
        let _ = tokio::time::timeout(REPLY_TIMEOUT, self.stream.write_all(bytes)).await;
    }

    async fn write(&mut self, bytes: &[u8]) {
        let _ = tokio::time::timeout(REPLY_TIMEOUT, self.stream.write_all(bytes)).await;
    }

    /// Sends a method (logged).
    pub async fn send(&mut self, ch: u16, m: impl Into<Method>) {
        let m = m.into();
        self.log(format!("ch{ch} -> {}", describe(&m)));
        let mut out = BytesMut::new();
        write_method(&mut out, ch, &m);
        self.write(&out).await;
    }

    /// Sends a method and takes the next method on the same channel.
    pub async fn call(&mut self, ch: u16, m: impl Into<Method>) -> Res<Msg> {
        self.send(ch, m).await;
        self.recv(ch).await
    }

    /// basic.publish + content header (raw property bytes) + body frames.
    pub async fn publish_raw(&mut self, ch: u16, publish: BasicPublish, props: &[u8], body: &[u8]) {
        self.log(format!(
            "ch{ch} -> {} | props: {} | body: {}",
            describe(&publish.clone().into()),
            wire::render_properties(props),
            wire::render_body(body)
        ));
        let mut out = BytesMut::new();
        write_method(&mut out, ch, &publish.into());
        write_header(&mut out, ch, 60, body.len() as u64, props);
        let chunk = if self.frame_max == 0 { body.len().max(1) } else { self.frame_max as usize - 8 };
        for part in body.chunks(chunk) {
            write_body(&mut out, ch, part);
        }
        self.write(&out).await;
    }

    /// Publishes with the given properties.
    pub async fn publish(&mut self, ch: u16, exchange: &str, routing_key: &str, props: &Props, body: &[u8]) {
        let p =
            BasicPublish { exchange: exchange.into(), routing_key: routing_key.into(), ..Default::default() };
        self.publish_raw(ch, p, &props.encode(), body).await
    }

    /// Publishes with mandatory=true.
    pub async fn publish_mandatory(
        &mut self,
        ch: u16,
        exchange: &str,
        routing_key: &str,
        props: &Props,
        body: &[u8],
    ) {
        let p = BasicPublish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: true,
            ..Default::default()
        };
        self.publish_raw(ch, p, &props.encode(), body).await
    }

    /// Publishes a body with no properties to the default exchange.
    pub async fn publish_to_queue(&mut self, ch: u16, queue: &str, body: &[u8]) {
        self.publish(ch, "", queue, &Props::new(), body).await
    }

    /// Reads more bytes (until `deadline`) and queues complete methods.
    /// Returns false on timeout.
    async fn pump(&mut self, deadline: Instant) -> bool {
        if self.eof {
            return true;
        }
        match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => self.eof = true,
            Ok(Ok(_)) => {}
        }
        self.parse_frames().await;
        true
    }

    async fn parse_frames(&mut self) {
        loop {
            if self.rbuf.len() < 7 {
                return;
            }
            let ty = self.rbuf[0];
            let ch = u16::from_be_bytes([self.rbuf[1], self.rbuf[2]]);
            let size = u32::from_be_bytes([self.rbuf[3], self.rbuf[4], self.rbuf[5], self.rbuf[6]]) as usize;
            if ty == b'A' && self.rbuf.len() >= 8 && &self.rbuf[..4] == b"AMQP" {
                // A protocol header from the server (it refuses our version).
                let h = self.rbuf.split_to(8);
                self.cx.log(format!("{} <- protocol header {}", self.label, wire::quote(&h)));
                continue;
            }
            if self.rbuf.len() < size + 8 {
                return;
            }
            let mut frame = self.rbuf.split_to(size + 8).freeze();
            let end = frame[size + 7];
            frame.advance(7);
            let payload = frame.slice(..size);
            if end != 0xCE {
                self.anomaly(ch, format!("frame type {ty} without frame-end (0x{end:02x})"));
                continue;
            }
            match ty {
                1 => match Method::decode(payload.clone()) {
                    Ok(method) => {
                        let args = payload.slice(4..);
                        self.on_method(ch, method, args).await;
                    }
                    Err(e) => self.anomaly(ch, format!("undecodable method {e:?}: {}", wire::hex(&payload))),
                },
                2 => {
                    let mut p = payload.clone();
                    if p.len() < 14 {
                        self.anomaly(ch, format!("short content header {}", wire::hex(&payload)));
                        continue;
                    }
                    let class_id = p.get_u16();
                    let weight = p.get_u16();
                    let body_size = p.get_u64();
                    match self.pending.get_mut(&ch) {
                        Some(pd) if pd.header.is_none() => {
                            pd.header = Some((class_id, weight, body_size, p));
                            self.complete(ch);
                        }
                        _ => self.anomaly(ch, "content header without a content method".into()),
                    }
                }
                3 => match self.pending.get_mut(&ch) {
                    Some(pd) if pd.header.is_some() => {
                        pd.body.extend_from_slice(&payload);
                        self.complete(ch);
                    }
                    _ => self
                        .anomaly(ch, format!("body frame without content header: {}", wire::quote(&payload))),
                },
                8 => {}
                _ => self.anomaly(ch, format!("frame of unknown type {ty}")),
            }
        }
    }

    fn anomaly(&mut self, ch: u16, what: String) {
        self.cx.log(format!("{} ch{ch} <- !! {what}", self.label));
    }

    async fn on_method(&mut self, ch: u16, method: Method, args: Bytes) {
        match &method {
            Method::ChannelClose(_) => {
                let mut out = BytesMut::new();
                write_method(&mut out, ch, &ChannelCloseOk.into());
                self.write(&out).await;
            }
            Method::ConnectionClose(_) => {
                let mut out = BytesMut::new();
                write_method(&mut out, 0, &ConnectionCloseOk.into());
                self.write(&out).await;
            }
            _ => {}
        }
        if self.pending.contains_key(&ch) {
            self.anomaly(ch, format!("{} before the previous content was complete", method.name()));
            self.pending.remove(&ch);
        }
        if method.has_content() {
            self.pending.insert(ch, Pending { method, args, header: None, body: Vec::new() });
        } else {
            self.queues.entry(ch).or_default().push_back(Msg { ch, method, args, content: None });
        }
    }

    fn complete(&mut self, ch: u16) {
        let done = match self.pending.get(&ch) {
            Some(Pending { header: Some((_, _, size, _)), body, .. }) => body.len() as u64 >= *size,
            _ => false,
        };
        if done {
            let p = self.pending.remove(&ch).unwrap();
            let (class_id, weight, body_size, props) = p.header.unwrap();
            if p.body.len() as u64 > body_size {
                self.anomaly(ch, format!("body of {} bytes for body-size {body_size}", p.body.len()));
            }
            let content = Content { class_id, weight, body_size, props, body: p.body };
            self.queues.entry(ch).or_default().push_back(Msg {
                ch,
                method: p.method,
                args: p.args,
                content: Some(content),
            });
        }
    }

    fn take_first(&mut self, ch: u16, name: Option<&str>) -> Option<Msg> {
        let q = self.queues.get_mut(&ch)?;
        let i = match name {
            None => 0,
            Some(n) => q.iter().position(|m| m.is(n))?,
        };
        q.remove(i)
    }

    fn take_connection_close(&mut self) -> Option<Msg> {
        self.take_first(0, Some("connection.close"))
    }

    async fn recv_inner(&mut self, ch: u16, name: Option<&str>, timeout: Duration) -> Res<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.take_first(ch, name) {
                self.log(format!("ch{ch} <- {}", m.render()));
                return Ok(m);
            }
            if ch != 0 {
                if let Some(m) = self.take_connection_close() {
                    self.log(format!("ch0 <- {}", m.render()));
                    return Err(Abort(format!("{}: connection closed while waiting on ch{ch}", self.label)));
                }
            }
            if self.eof {
                self.log("<- EOF".to_string());
                return Err(Abort(format!("{}: EOF while waiting on ch{ch}", self.label)));
            }
            if !self.pump(deadline).await {
                let what = name.unwrap_or("a method");
                return Err(Abort(format!("{}: timeout waiting for {what} on ch{ch}", self.label)));
            }
        }
    }

    /// Takes the next method on channel `ch` (logged).
    pub async fn recv(&mut self, ch: u16) -> Res<Msg> {
        self.recv_inner(ch, None, REPLY_TIMEOUT).await
    }

    /// Takes the first method named `name` on channel `ch`, leaving others
    /// queued (for things whose interleaving is timing, e.g. confirms vs
    /// deliveries).
    pub async fn recv_of(&mut self, ch: u16, name: &str) -> Res<Msg> {
        self.recv_inner(ch, Some(name), REPLY_TIMEOUT).await
    }

    /// Waits until the server closes the socket; logs what arrives first.
    pub async fn expect_eof(&mut self) -> Res<()> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let chans: Vec<u16> = self.queues.keys().copied().collect();
            for ch in chans {
                while let Some(m) = self.take_first(ch, None) {
                    self.log(format!("ch{ch} <- {}", m.render()));
                }
            }
            if self.eof {
                self.log("<- EOF".to_string());
                return Ok(());
            }
            if !self.pump(deadline).await {
                return Err(Abort(format!("{}: server did not close the connection", self.label)));
            }
        }
    }

    /// Logs every method received but not taken yet (as `unread`).
    fn log_unread(&mut self) {
        let chans: Vec<u16> = self.queues.keys().copied().collect();
        for ch in chans {
            while let Some(m) = self.take_first(ch, None) {
                self.log(format!("ch{ch} <- (unread) {}", m.render()));
            }
        }
    }

    /// connection.close(200) and wait for close-ok; whatever arrived and
    /// was not taken is logged as `unread` first.
    pub async fn close(mut self) -> Res<()> {
        self.send(
            0,
            ConnectionClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 },
        )
        .await;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if let Some(ok) = self.take_first(0, Some("connection.close-ok")) {
                self.log_unread();
                self.log(format!("ch0 <- {}", ok.render()));
                return Ok(());
            }
            if let Some(m) = self.take_connection_close() {
                self.log_unread();
                self.log(format!("ch0 <- {}", m.render()));
                return Ok(());
            }
            if self.eof {
                self.log_unread();
                self.log("<- EOF".to_string());
                return Ok(());
            }
            if !self.pump(deadline).await {
                self.log_unread();
                return Err(Abort(format!("{}: no connection.close-ok", self.label)));
            }
        }
    }

    /// Drops the TCP connection without closing (logged).
    pub fn drop_tcp(self) {
        self.log("-> (tcp closed)".to_string());
    }

    // ---- shorthands for common methods ----

    pub async fn open(&mut self, ch: u16) -> Res<Msg> {
        self.call(ch, ChannelOpen::default()).await
    }

    /// queue.declare with flags given as (durable, exclusive, auto_delete).
    pub async fn declare_queue(&mut self, ch: u16, name: &str, flags: QFlags, args: Table) -> Res<Msg> {
        let m = QueueDeclare {
            queue: name.into(),
            passive: flags.passive,
            durable: flags.durable,
            exclusive: flags.exclusive,
            auto_delete: flags.auto_delete,
            arguments: args.to_field_table(),
            ..Default::default()
        };
        self.call(ch, m).await
    }

    /// A plain queue (non-durable, non-exclusive, no arguments).
    pub async fn queue(&mut self, ch: u16, name: &str) -> Res<Msg> {
        self.declare_queue(ch, name, QFlags::default(), Table::new()).await
    }

    pub async fn passive(&mut self, ch: u16, name: &str) -> Res<Msg> {
        self.declare_queue(ch, name, QFlags { passive: true, ..Default::default() }, Table::new()).await
    }

    pub async fn exchange(&mut self, ch: u16, name: &str, kind: &str) -> Res<Msg> {
        let m = ExchangeDeclare { exchange: name.into(), kind: kind.into(), ..Default::default() };
        self.call(ch, m).await
    }

    pub async fn bind(&mut self, ch: u16, queue: &str, exchange: &str, key: &str, args: Table) -> Res<Msg> {
        let m = QueueBind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: key.into(),
            arguments: args.to_field_table(),
            ..Default::default()
        };
        self.call(ch, m).await
    }

    pub async fn consume(&mut self, ch: u16, queue: &str, tag: &str, no_ack: bool) -> Res<Msg> {
        let m = BasicConsume { queue: queue.into(), consumer_tag: tag.into(), no_ack, ..Default::default() };
        self.call(ch, m).await
    }

    pub async fn get(&mut self, ch: u16, queue: &str, no_ack: bool) -> Res<Msg> {
        self.call(ch, BasicGet { queue: queue.into(), no_ack, ..Default::default() }).await
    }

    pub async fn ack(&mut self, ch: u16, tag: u64, multiple: bool) {
        self.send(ch, BasicAck { delivery_tag: tag, multiple }).await
    }

    pub async fn qos(&mut self, ch: u16, prefetch: u16, global: bool) -> Res<Msg> {
        self.call(ch, BasicQos { prefetch_size: 0, prefetch_count: prefetch, global }).await
    }

    pub async fn confirm_select(&mut self, ch: u16) -> Res<Msg> {
        self.call(ch, ConfirmSelect { nowait: false }).await
    }

    /// Drains a queue with no-ack basic.get until get-empty (each logged).
    pub async fn drain(&mut self, ch: u16, queue: &str) -> Res<usize> {
        let mut n = 0;
        loop {
            let m = self.get(ch, queue, true).await?;
            if !m.is("basic.get-ok") {
                return Ok(n);
            }
            n += 1;
            if n > 1000 {
                return Err(Abort("more than 1000 messages drained".into()));
            }
        }
    }

    /// Polls (quietly, with passive declares on `ch`) until `queue` holds
    /// `want` ready messages, then logs the last observation once. For
    /// queues filled asynchronously (dead-lettering, expiry).
    pub async fn await_count(&mut self, ch: u16, queue: &str, want: u32) -> Res<()> {
        let deadline = Instant::now() + crate::harness::POLL_DEADLINE;
        let quiet = self.quiet;
        self.quiet = true;
        let mut last;
        loop {
            let r = self.passive(ch, queue).await;
            last = match &r {
                Ok(m) => match m.counts() {
                    Ok((n, c)) => format!("message_count={n} consumer_count={c}"),
                    Err(_) => m.render(),
                },
                Err(Abort(a)) => format!("aborted: {a}"),
            };
            let done = matches!(r.as_ref().map(|m| m.counts()), Ok(Ok((n, _))) if n == want);
            if done || r.is_err() || !matches!(r, Ok(ref m) if m.is("queue.declare-ok")) {
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.quiet = quiet;
        self.log(format!("ch{ch} poll {queue} for {want} ready: {last}"));
        Ok(())
    }

    /// Waits for confirms of sequence numbers `1..=upto` (counting from the
    /// channel's first publish after confirm.select) and logs the set (see
    /// `differences::summarize_confirms`). Returns and deliveries on the
    /// channel stay queued.
    pub async fn await_confirms(&mut self, ch: u16, from: u64, upto: u64) -> Res<()> {
        let mut acked = Vec::new();
        let mut nacked = Vec::new();
        let mut outstanding: std::collections::BTreeSet<u64> = (from..=upto).collect();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let result = loop {
            if outstanding.is_empty() {
                break Ok(());
            }
            let q = self.queues.entry(ch).or_default();
            if let Some(i) = q.iter().position(|m| m.is("basic.ack") || m.is("basic.nack")) {
                let m = q.remove(i).unwrap();
                let (tag, multiple, list) = match &m.method {
                    Method::BasicAck(a) => (a.delivery_tag, a.multiple, &mut acked),
                    Method::BasicNack(n) => (n.delivery_tag, n.multiple, &mut nacked),
                    _ => unreachable!(),
                };
                let covered: Vec<u64> =
                    if multiple { outstanding.range(..=tag).copied().collect() } else { vec![tag] };
                for t in covered {
                    if !outstanding.remove(&t) {
                        self.anomaly(ch, format!("confirm for sequence number {t} that is not outstanding"));
                    }
                    list.push(t);
                }
                continue;
            }
            if let Some(m) =
                self.take_first(ch, Some("channel.close")).or_else(|| self.take_connection_close())
            {
                self.log(format!("ch{} <- {}", m.ch, m.render()));
                break Err(Abort(format!("{}: closed while waiting for confirms", self.label)));
            }
            if self.eof {
                self.log("<- EOF".to_string());
                break Err(Abort(format!("{}: EOF while waiting for confirms", self.label)));
            }
            if !self.pump(deadline).await {
                break Err(Abort(format!("{}: confirms up to {upto} did not arrive", self.label)));
            }
        };
        self.log(format!("ch{ch} <- confirms {}", crate::differences::summarize_confirms(&acked, &nacked)));
        result
    }
}

impl Raw {
    /// channel.close(200) from the client, waiting for close-ok.
    pub async fn close_channel(&mut self, ch: u16) -> Res<Msg> {
        self.call(ch, ChannelClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 })
            .await
    }

    /// Polls (quietly, passive declares on a spare channel) until `queue`
    /// no longer exists, then logs the outcome once. For deletions the
    /// server performs asynchronously (exclusive queues of a closed
    /// connection, auto-delete queues).
    pub async fn await_queue_gone(&mut self, queue: &str) -> Res<()> {
        const SPARE: u16 = 2000;
        let deadline = Instant::now() + crate::harness::POLL_DEADLINE;
        let quiet = self.quiet;
        self.quiet = true;
        let last = loop {
            let r = async {
                self.open(SPARE).await?;
                let m = self.passive(SPARE, queue).await?;
                if m.is("queue.declare-ok") {
                    self.close_channel(SPARE).await?;
                }
                Ok::<Msg, Abort>(m)
            }
            .await;
            match r {
                Ok(m) if m.is("queue.declare-ok") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(m) => break m.render(),
                Err(Abort(a)) => break format!("aborted: {a}"),
            }
        };
        self.quiet = quiet;
        self.log(format!("poll {queue} until gone: {last}"));
        Ok(())
    }
}

/// queue.declare flags.
#[derive(Clone, Copy, Default, Debug)]
pub struct QFlags {
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
}

impl QFlags {
    pub fn exclusive() -> QFlags {
        QFlags { exclusive: true, ..Default::default() }
    }
    pub fn auto_delete() -> QFlags {
        QFlags { auto_delete: true, ..Default::default() }
    }
    pub fn durable() -> QFlags {
        QFlags { durable: true, ..Default::default() }
    }
}

/// Deletes the queues and exchanges a scenario named (best effort, not
/// logged), so a long-lived reference broker does not fill up.
pub async fn cleanup(target: &Target, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let work = async {
        let cx = Ctx::new(target.clone(), "cleanup", "-");
        let mut c = Raw::tcp(&cx, "cleanup").await?;
        c.quiet = true;
        c.handshake(&Login::default()).await?;
        let mut ch = 1;
        c.open(ch).await?;
        for n in names {
            let q = QueueDelete { queue: n.as_str().into(), ..Default::default() };
            let e = ExchangeDelete { exchange: n.as_str().into(), ..Default::default() };
            for m in [Method::from(q), Method::from(e)] {
                let r = c.call(ch, m).await?;
                if r.is("channel.close") {
                    ch += 1;
                    c.open(ch).await?;
                }
            }
        }
        c.close().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(15), work).await;
}
