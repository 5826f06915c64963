//! A lean AMQP 0-9-1 client: just what a load generator needs, with no per-message allocation
//! beyond the codec's zero-copy frames. Frames are parsed off a `BytesMut` read buffer and
//! written into a `BytesMut` that is flushed with one write per batch.

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use warren_protocol::methods::{
    ChannelOpen, ConnectionClose, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, Method,
};
use warren_protocol::{parse_frame, write_method, FieldTable, FieldValue, Frame, PROTOCOL_HEADER};

use crate::options::AmqpUri;

/// The largest frame we ask for (the broker may offer less).
pub const CLIENT_FRAME_MAX: u32 = 131_072;

/// Read buffer: keep at least this much free space before a read.
const READ_MIN_FREE: usize = 32 * 1024;
const READ_GROW: usize = 128 * 1024;

/// The read half of a connection with its parse buffer.
pub struct FrameReader {
    half: OwnedReadHalf,
    buf: BytesMut,
    frame_max: u32,
}

impl FrameReader {
    /// Reads more bytes from the socket; fails on EOF.
    pub async fn fill(&mut self) -> Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_MIN_FREE {
            self.buf.reserve(READ_GROW);
        }
        let n = self.half.read_buf(&mut self.buf).await.context("reading from the broker")?;
        if n == 0 {
            bail!("the broker closed the connection");
        }
        Ok(n)
    }

    /// The next whole frame in the buffer, if any.
    #[inline]
    pub fn next(&mut self) -> Result<Option<Frame>> {
        parse_frame(&mut self.buf, self.frame_max).map_err(|e| anyhow!("bad frame from the broker: {e}"))
    }

    /// The next frame, reading as needed.
    pub async fn frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = self.next()? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }

    /// The next method frame, skipping heartbeats. Content frames are an error here.
    pub async fn method(&mut self) -> Result<(u16, Method)> {
        loop {
            match self.frame().await? {
                Frame::Method { channel, method } => return Ok((channel, method)),
                Frame::Heartbeat { .. } => {}
                other => bail!("unexpected frame while waiting for a method: {other:?}"),
            }
        }
    }
}

/// The write half of a connection with its output buffer.
pub struct FrameWriter {
    half: OwnedWriteHalf,
    pub buf: BytesMut,
}

impl FrameWriter {
    pub fn method(&mut self, channel: u16, m: impl Into<Method>) {
        write_method(&mut self.buf, channel, &m.into());
    }

    /// Writes out everything buffered (one write syscall unless the socket is full).
    pub async fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.half.write_all(&self.buf).await.context("writing to the broker")?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// An open connection (handshake done) split into halves.
pub struct Conn {
    pub reader: FrameReader,
    pub writer: FrameWriter,
    pub frame_max: u32,
}

/// Turns a broker's close method into an error that says what happened.
pub fn close_error(m: &Method) -> Option<anyhow::Error> {
    match m {
        Method::ConnectionClose(c) => Some(anyhow!(
            "the broker closed the connection: {} {} (class {} method {})",
            c.reply_code,
            c.reply_text,
            c.class_id,
            c.method_id
        )),
        Method::ChannelClose(c) => Some(anyhow!(
            "the broker closed the channel: {} {} (class {} method {})",
            c.reply_code,
            c.reply_text,
            c.class_id,
            c.method_id
        )),
        _ => None,
    }
}

impl Conn {
    /// Connects, authenticates (PLAIN), tunes (heartbeats off) and opens the vhost.
    pub async fn open(uri: &AmqpUri, name: &str) -> Result<Conn> {
        let stream = TcpStream::connect((uri.host.as_str(), uri.port))
            .await
            .with_context(|| format!("connecting to {}:{}", uri.host, uri.port))?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut reader = FrameReader { half: r, buf: BytesMut::with_capacity(16 * 1024), frame_max: 0 };
        let mut writer = FrameWriter { half: w, buf: BytesMut::with_capacity(16 * 1024) };
        writer.buf.extend_from_slice(PROTOCOL_HEADER);
        writer.flush().await?;

        // A server that does not speak 0-9-1 answers with its own protocol header.
        reader.fill().await?;
        if reader.buf.starts_with(b"AMQP") {
            bail!("the broker does not support AMQP 0-9-1 (it answered {:?})", &reader.buf[..]);
        }
        match reader.method().await? {
            (0, Method::ConnectionStart(s)) => {
                let mechs = String::from_utf8_lossy(&s.mechanisms);
                if !mechs.split(' ').any(|m| m == "PLAIN") {
                    bail!("the broker does not offer PLAIN authentication (it offers {mechs})");
                }
            }
            (_, m) => bail!("expected connection.start, got {}", m.name()),
        }
        let mut caps = FieldTable::new();
        for cap in ["publisher_confirms", "basic.nack", "consumer_cancel_notify", "connection.blocked"] {
            caps.insert(cap, FieldValue::Bool(true));
        }
        let mut props = FieldTable::new();
        props.insert("product", FieldValue::LongStr("warren-perf".into()));
        props.insert("version", FieldValue::LongStr(env!("CARGO_PKG_VERSION").into()));
        props.insert("connection_name", FieldValue::LongStr(bytes::Bytes::copy_from_slice(name.as_bytes())));
        props.insert("capabilities", FieldValue::Table(caps));
        let mut response = Vec::with_capacity(2 + uri.user.len() + uri.password.len());
        response.push(0);
        response.extend_from_slice(uri.user.as_bytes());
        response.push(0);
        response.extend_from_slice(uri.password.as_bytes());
        writer.method(
            0,
            ConnectionStartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: response.into(),
                locale: "en_US".into(),
            },
        );
        writer.flush().await?;
        let tune = match reader.method().await? {
            (0, Method::ConnectionTune(t)) => t,
            (_, m) => {
                return Err(
                    close_error(&m).unwrap_or_else(|| anyhow!("expected connection.tune, got {}", m.name()))
                )
                .context("authentication failed?")
            }
        };
        let frame_max =
            if tune.frame_max == 0 { CLIENT_FRAME_MAX } else { tune.frame_max.min(CLIENT_FRAME_MAX) };
        let channel_max = if tune.channel_max == 0 { 2047 } else { tune.channel_max.min(2047) };
        writer.method(0, ConnectionTuneOk { channel_max, frame_max, heartbeat: 0 });
        writer.method(0, ConnectionOpen { virtual_host: uri.vhost.as_str().into(), ..Default::default() });
        writer.flush().await?;
        reader.frame_max = frame_max;
        match reader.method().await? {
            (0, Method::ConnectionOpenOk(_)) => {}
            (_, m) => {
                return Err(close_error(&m)
                    .unwrap_or_else(|| anyhow!("expected connection.open-ok, got {}", m.name())))
            }
        }
        Ok(Conn { reader, writer, frame_max })
    }

    /// Sends a synchronous request and waits for its reply on the same channel.
    pub async fn rpc(&mut self, channel: u16, m: impl Into<Method>) -> Result<Method> {
        let m = m.into();
        let name = m.name();
        self.writer.method(channel, m);
        self.writer.flush().await?;
        loop {
            let (ch, reply) = self.reader.method().await?;
            if let Some(e) = close_error(&reply) {
                return Err(e.context(format!("in reply to {name}")));
            }
            if ch == channel {
                return Ok(reply);
            }
        }
    }

    pub async fn open_channel(&mut self, channel: u16) -> Result<()> {
        match self.rpc(channel, ChannelOpen::default()).await? {
            Method::ChannelOpenOk(_) => Ok(()),
            m => bail!("expected channel.open-ok, got {}", m.name()),
        }
    }

    /// Gives back the buffers' memory (for connections that will stay idle).
    pub fn shrink(&mut self) {
        if self.reader.buf.is_empty() {
            self.reader.buf = BytesMut::new();
        }
        self.writer.buf = BytesMut::new();
    }

    /// connection.close, waiting (briefly) for close-ok.
    pub async fn close(mut self) {
        self.writer
            .method(0, ConnectionClose { reply_code: 200, reply_text: "bye".into(), ..Default::default() });
        if self.writer.flush().await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), async {
            loop {
                match self.reader.frame().await {
                    Ok(Frame::Method { method: Method::ConnectionCloseOk(_), .. }) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}
