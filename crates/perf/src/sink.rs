//! A sink AMQP server for measuring the generator itself: it completes the handshake, answers
//! every declaration, absorbs publishes (confirming them with one multiple ack per read), and
//! feeds each consumer synthetic deliveries within its prefetch. It does no routing and keeps
//! no messages, so it costs far less than a broker.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren_protocol::methods::*;
use warren_protocol::{parse_frame, write_method, FieldTable, FieldValue, Frame, PROTOCOL_HEADER};

use crate::clock::Clock;
use crate::message::DeliverEncoder;

const FRAME_MAX: u32 = 131_072;
/// Output buffered before the sink stops generating deliveries and waits for the socket.
const MAX_PENDING_OUT: usize = 256 * 1024;
/// Unacknowledged deliveries allowed to a consumer with no prefetch limit.
const UNLIMITED_PREFETCH: u64 = 10_000;

pub async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("binding the sink to {addr}"))
}

/// Accepts connections forever; each gets its own task.
pub async fn serve(listener: TcpListener, size: usize) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, size).await {
                        eprintln!("sink: connection ended: {e:#}");
                    }
                });
            }
            Err(e) => {
                eprintln!("sink: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

pub fn local_addr(l: &TcpListener) -> Result<SocketAddr> {
    Ok(l.local_addr()?)
}

struct SinkConsumer {
    encoder: DeliverEncoder,
    no_ack: bool,
    prefetch: u64,
    delivered: u64,
    acked: u64,
}

#[derive(Default)]
struct SinkChannel {
    confirm: bool,
    published: u64,
    confirmed: u64,
    prefetch: u16,
    consumer: Option<SinkConsumer>,
    /// Highest delivery tag acknowledged with multiple=true.
    acked_upto: u64,
}

async fn connection(mut stream: TcpStream, size: usize) -> Result<()> {
    stream.set_nodelay(true)?;
    let clock = Clock::new();
    let mut rbuf = BytesMut::with_capacity(128 * 1024);
    let mut out = BytesMut::with_capacity(128 * 1024);
    while rbuf.len() < 8 {
        if stream.read_buf(&mut rbuf).await? == 0 {
            return Ok(());
        }
    }
    if &rbuf[..8] != PROTOCOL_HEADER {
        stream.write_all(PROTOCOL_HEADER).await?;
        bail!("not an AMQP 0-9-1 client");
    }
    rbuf.advance(8);
    let mut props = FieldTable::new();
    props.insert("product", FieldValue::LongStr("warren-perf sink".into()));
    let start = ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: "PLAIN".into(),
        locales: "en_US".into(),
    };
    write_method(&mut out, 0, &start.into());
    let mut channels: HashMap<u16, SinkChannel> = HashMap::new();
    let mut ctag_seq = 0u64;
    let mut closing = false;
    let (mut rd, mut wr) = stream.split();
    loop {
        // Take in everything that has arrived.
        while let Some(frame) = parse_frame(&mut rbuf, FRAME_MAX)? {
            let Frame::Method { channel, method } = frame else { continue };
            let reply: Option<Method> = match method {
                Method::ConnectionStartOk(_) => {
                    Some(ConnectionTune { channel_max: 2047, frame_max: FRAME_MAX, heartbeat: 0 }.into())
                }
                Method::ConnectionOpen(_) => Some(ConnectionOpenOk::default().into()),
                Method::ConnectionClose(_) => {
                    closing = true;
                    Some(ConnectionCloseOk.into())
                }
                Method::ChannelOpen(_) => {
                    channels.insert(channel, SinkChannel::default());
                    Some(ChannelOpenOk::default().into())
                }
                Method::ChannelClose(_) => {
                    channels.remove(&channel);
                    Some(ChannelCloseOk.into())
                }
                Method::ConfirmSelect(c) => {
                    channels.entry(channel).or_default().confirm = true;
                    (!c.nowait).then(|| ConfirmSelectOk.into())
                }
                Method::ExchangeDeclare(d) => (!d.nowait).then(|| ExchangeDeclareOk.into()),
                Method::QueueDeclare(d) => (!d.nowait).then(|| {
                    let queue = if d.queue.is_empty() { "amq.gen-sink".into() } else { d.queue.clone() };
                    QueueDeclareOk { queue, message_count: 0, consumer_count: 0 }.into()
                }),
                Method::QueueBind(b) => (!b.nowait).then(|| QueueBindOk.into()),
                Method::QueueDelete(d) => (!d.nowait).then(|| QueueDeleteOk { message_count: 0 }.into()),
                Method::QueuePurge(d) => (!d.nowait).then(|| QueuePurgeOk { message_count: 0 }.into()),
                Method::BasicQos(q) => {
                    channels.entry(channel).or_default().prefetch = q.prefetch_count;
                    Some(BasicQosOk.into())
                }
                Method::BasicConsume(c) => {
                    ctag_seq += 1;
                    let tag = if c.consumer_tag.is_empty() {
                        format!("sink-ctag-{ctag_seq}")
                    } else {
                        c.consumer_tag.to_string()
                    };
                    let ch = channels.entry(channel).or_default();
                    ch.consumer = Some(SinkConsumer {
                        encoder: DeliverEncoder::new(channel, &tag, &c.queue, size, FRAME_MAX),
                        no_ack: c.no_ack,
                        prefetch: if ch.prefetch == 0 { UNLIMITED_PREFETCH } else { u64::from(ch.prefetch) },
                        delivered: 0,
                        acked: 0,
                    });
                    (!c.nowait).then(|| BasicConsumeOk { consumer_tag: tag.into() }.into())
                }
                Method::BasicCancel(c) => {
                    if let Some(ch) = channels.get_mut(&channel) {
                        ch.consumer = None;
                    }
                    (!c.nowait).then(|| BasicCancelOk { consumer_tag: c.consumer_tag }.into())
                }
                Method::BasicPublish(_) => {
                    channels.entry(channel).or_default().published += 1;
                    None
                }
                Method::BasicAck(a) => {
                    if let Some(ch) = channels.get_mut(&channel) {
                        if let Some(c) = ch.consumer.as_mut() {
                            if a.multiple {
                                c.acked += a.delivery_tag.saturating_sub(ch.acked_upto);
                                ch.acked_upto = ch.acked_upto.max(a.delivery_tag);
                            } else {
                                c.acked += 1;
                            }
                        }
                    }
                    None
                }
                _ => None,
            };
            if let Some(r) = reply {
                write_method(&mut out, channel, &r);
            }
        }
        if closing {
            wr.write_all(&out).await?;
            return Ok(());
        }
        // Confirm everything published so far, one multiple ack per channel.
        for (&id, ch) in channels.iter_mut() {
            if ch.confirm && ch.published > ch.confirmed {
                ch.confirmed = ch.published;
                write_method(&mut out, id, &BasicAck { delivery_tag: ch.published, multiple: true }.into());
            }
        }
        // Feed consumers within their prefetch.
        let now = clock.unix_ns(clock.now_ns());
        for ch in channels.values_mut() {
            let Some(c) = ch.consumer.as_mut() else { continue };
            while out.len() < MAX_PENDING_OUT
                && (c.no_ack || c.delivered - c.acked.min(c.delivered) < c.prefetch)
            {
                c.delivered += 1;
                c.encoder.encode(&mut out, c.delivered, now);
                if c.no_ack {
                    c.acked = c.delivered;
                }
            }
        }
        // Wait for input or for room to write, whichever comes first.
        if rbuf.capacity() - rbuf.len() < 32 * 1024 {
            rbuf.reserve(128 * 1024);
        }
        tokio::select! {
            r = rd.read_buf(&mut rbuf) => {
                if r? == 0 {
                    return Ok(());
                }
            }
            r = wr.write_buf(&mut out), if !out.is_empty() => {
                r?;
            }
        }
    }
}
