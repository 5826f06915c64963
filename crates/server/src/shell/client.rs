//! A small blocking AMQP 0-9-1 client for `warren publish` and `warren consume`, on Warren's own
//! codec: one connection, one channel, frames parsed off a read buffer and written through a
//! buffer flushed once per batch. (warren-perf's client is async and tuned for load generation
//! inside a binary crate; a shell tool reads stdin and writes stdout, which blocking code does
//! plainly.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use warren_protocol::methods::{
    ChannelOpen, ConnectionClose, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, Method,
};
use warren_protocol::{
    parse_frame, write_content, write_method, FieldTable, FieldValue, Frame, PROTOCOL_HEADER,
};

use super::amqp_url::AmqpUrl;
use crate::exit_code;

/// The largest frame asked for.
const FRAME_MAX: u32 = 131_072;
/// The one channel used.
pub const CHANNEL: u16 = 1;
/// How long connecting and the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why talking to the broker failed.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// Nothing answered at the address.
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// The broker closed the channel or the connection: its reply code and text.
    #[error("{url}: the broker closed the {what}: {code} {text}")]
    Closed { url: String, what: &'static str, code: u16, text: String },
    /// The connection broke, or the broker said something out of turn.
    #[error("{url}: {cause}")]
    Broken { url: String, cause: String },
    /// The client could not be set up (an unreadable CA file).
    #[error("{0}")]
    Setup(String),
}

impl AmqpError {
    /// The process's exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            AmqpError::Unreachable { .. } | AmqpError::Broken { .. } => exit_code::UNREACHABLE,
            // ACCESS_REFUSED (a login, a permission) and NOT_ALLOWED (the vhost).
            AmqpError::Closed { code: 403 | 530, .. } => exit_code::NOT_AUTHORISED,
            AmqpError::Closed { code: 404, .. } => exit_code::NOT_FOUND,
            AmqpError::Closed { .. } | AmqpError::Setup(_) => exit_code::FAILED,
        }
    }
}

/// What frames travel over: TCP, or TLS over TCP.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// An open connection with channel [`CHANNEL`] open.
pub struct Connection {
    stream: Box<dyn Stream>,
    read: BytesMut,
    write: BytesMut,
    frame_max: u32,
    url: String,
}

impl Connection {
    /// Connects (over TLS for amqps, trusting `cacert`), logs in (PLAIN), tunes (no
    /// heartbeats: a shell tool may sit blocked on its input or output for as long as it
    /// likes), opens the vhost and the channel.
    pub fn open(url: &AmqpUrl, name: &str, cacert: Option<&Path>) -> Result<Connection, AmqpError> {
        let shown = url.show();
        let unreachable = |cause: String| AmqpError::Unreachable { url: shown.clone(), cause };
        let addresses = std::net::ToSocketAddrs::to_socket_addrs(&(url.host.as_str(), url.port))
            .map_err(|e| unreachable(e.to_string()))?;
        let mut last = String::from("no address");
        let mut stream = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let mut tcp = stream.ok_or_else(|| unreachable(last))?;
        let _ = tcp.set_nodelay(true);
        // Only until the vhost is open: then reads wait as long as the broker is silent.
        tcp.set_read_timeout(Some(CONNECT_TIMEOUT)).map_err(|e| unreachable(e.to_string()))?;
        let timeouts = tcp.try_clone().map_err(|e| unreachable(e.to_string()))?;
        let stream: Box<dyn Stream> = if url.tls {
            let config = crate::tls_client::config(cacert).map_err(AmqpError::Setup)?;
            let server = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| unreachable(e.to_string()))?;
            let mut tls = rustls::ClientConnection::new(config, server)
                .map_err(|e| unreachable(format!("TLS: {e}")))?;
            // The handshake now, so that a refused certificate says so rather than failing a write.
            while tls.is_handshaking() {
                tls.complete_io(&mut tcp).map_err(|e| unreachable(format!("TLS: {e}")))?;
            }
            Box::new(rustls::StreamOwned::new(tls, tcp))
        } else {
            Box::new(tcp)
        };
        let mut c = Connection {
            stream,
            read: BytesMut::with_capacity(64 * 1024),
            write: BytesMut::new(),
            frame_max: FRAME_MAX,
            url: shown,
        };
        c.write.extend_from_slice(PROTOCOL_HEADER);
        c.flush()?;
        match c.method()? {
            (0, Method::ConnectionStart(_)) => {}
            (_, m) => return Err(c.broken(format!("expected connection.start, got {}", m.name()))),
        }
        let mut client_properties = FieldTable::new();
        let mut capabilities = FieldTable::new();
        // authentication_failure_close: a wrong password earns a 403 close, not just a hang-up.
        for cap in
            ["publisher_confirms", "basic.nack", "consumer_cancel_notify", "authentication_failure_close"]
        {
            capabilities.insert(cap, FieldValue::Bool(true));
        }
        client_properties.insert("product", FieldValue::LongStr("warren".into()));
        client_properties.insert("version", FieldValue::LongStr(env!("CARGO_PKG_VERSION").into()));
        client_properties
            .insert("connection_name", FieldValue::LongStr(bytes::Bytes::copy_from_slice(name.as_bytes())));
        client_properties.insert("capabilities", FieldValue::Table(capabilities));
        let response = format!("\0{}\0{}", url.user, url.password);
        c.send(ConnectionStartOk {
            client_properties,
            mechanism: "PLAIN".into(),
            response: response.into_bytes().into(),
            locale: "en_US".into(),
        });
        c.flush()?;
        let tune = match c.method()? {
            (0, Method::ConnectionTune(t)) => t,
            (_, m) => return Err(c.unexpected(m, "connection.tune")),
        };
        c.frame_max = if tune.frame_max == 0 { FRAME_MAX } else { tune.frame_max.min(FRAME_MAX) };
        let channel_max = if tune.channel_max == 0 { 2047 } else { tune.channel_max.min(2047) };
        c.send(ConnectionTuneOk { channel_max, frame_max: c.frame_max, heartbeat: 0 });
        c.send(ConnectionOpen { virtual_host: url.vhost.as_str().into(), ..Default::default() });
        c.flush()?;
        match c.method()? {
            (0, Method::ConnectionOpenOk(_)) => {}
            (_, m) => return Err(c.unexpected(m, "connection.open-ok")),
        }
        match c.rpc(ChannelOpen::default())? {
            Method::ChannelOpenOk(_) => {}
            m => return Err(c.unexpected(m, "channel.open-ok")),
        }
        timeouts.set_read_timeout(None).map_err(|e| c.broken(e.to_string()))?;
        Ok(c)
    }

    /// Buffers a method on the channel (or 0 for the connection's).
    pub fn send(&mut self, method: impl Into<Method>) {
        let method = method.into();
        let channel = if method.class_id() == 10 { 0 } else { CHANNEL };
        write_method(&mut self.write, channel, &method);
    }

    /// Buffers a message's header and body frames.
    pub fn send_content(&mut self, properties: &[u8], body: &[u8]) {
        write_content(&mut self.write, CHANNEL, 60, properties, body, self.frame_max);
    }

    /// How many bytes are buffered for writing.
    pub fn buffered(&self) -> usize {
        self.write.len()
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> Result<(), AmqpError> {
        if !self.write.is_empty() {
            self.stream.write_all(&self.write).map_err(|e| self.broken(format!("writing: {e}")))?;
            self.write.clear();
        }
        Ok(())
    }

    /// The next frame, reading as needed; a close from the broker is an error.
    pub fn frame(&mut self) -> Result<Frame, AmqpError> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(frame);
            }
            self.fill()?;
        }
    }

    /// The next frame already read, if any; a close from the broker is an error.
    pub fn buffered_frame(&mut self) -> Result<Option<Frame>, AmqpError> {
        let frame = parse_frame(&mut self.read, self.frame_max)
            .map_err(|e| self.broken(format!("bad frame: {e}")))?;
        if let Some(Frame::Method { method, .. }) = &frame {
            self.check_close(method)?;
        }
        Ok(frame)
    }

    fn fill(&mut self) -> Result<(), AmqpError> {
        if self.read.capacity() - self.read.len() < 16 * 1024 {
            self.read.reserve(64 * 1024);
        }
        let start = self.read.len();
        let room = self.read.capacity() - start;
        self.read.resize(start + room, 0);
        match self.stream.read(&mut self.read[start..]) {
            Ok(0) => {
                self.read.truncate(start);
                Err(self.broken("the broker closed the connection".into()))
            }
            Ok(n) => {
                self.read.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                self.read.truncate(start);
                Err(self.broken(format!("reading: {e}")))
            }
        }
    }

    /// The next method frame (heartbeats and content skipped).
    fn method(&mut self) -> Result<(u16, Method), AmqpError> {
        loop {
            if let Frame::Method { channel, method } = self.frame()? {
                return Ok((channel, method));
            }
        }
    }

    /// Sends a synchronous method and waits for its reply (anything else arriving meanwhile,
    /// such as confirms, is not expected before the first publish).
    pub fn rpc(&mut self, method: impl Into<Method>) -> Result<Method, AmqpError> {
        self.send(method);
        self.flush()?;
        Ok(self.method()?.1)
    }

    /// An error for a close from the broker, answered as the protocol asks.
    fn check_close(&mut self, method: &Method) -> Result<(), AmqpError> {
        let (what, code, text) = match method {
            Method::ConnectionClose(c) => ("connection", c.reply_code, c.reply_text.to_string()),
            Method::ChannelClose(c) => ("channel", c.reply_code, c.reply_text.to_string()),
            _ => return Ok(()),
        };
        Err(AmqpError::Closed { url: self.url.clone(), what, code, text })
    }

    fn unexpected(&self, m: Method, expected: &str) -> AmqpError {
        self.broken(format!("expected {expected}, got {}", m.name()))
    }

    fn broken(&self, cause: String) -> AmqpError {
        AmqpError::Broken { url: self.url.clone(), cause }
    }

    /// Closes the connection in order: what was sent before is processed first (a publish,
    /// an ack), and a channel error the broker had sent comes back as the error.
    pub fn close(mut self) -> Result<(), AmqpError> {
        self.send(ConnectionClose { reply_code: 200, reply_text: "bye".into(), ..Default::default() });
        self.flush()?;
        loop {
            match self.frame()? {
                Frame::Method { method: Method::ConnectionCloseOk(_), .. } => return Ok(()),
                _ => continue,
            }
        }
    }
}
