//! A consumer: one connection, one channel, deliveries parsed straight off the read buffer,
//! the acks of one read written together.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use std::collections::VecDeque;

use warren_protocol::methods::{
    BasicAck, BasicConsume, BasicQos, ConnectionClose, Method, TxCommit, TxSelect,
};
use warren_protocol::{FieldTable, Frame};

use crate::client::{close_error, Conn};
use crate::message::{body_timestamp, PublishEncoder};
use crate::run::Ctx;
use crate::stats::Counters;

const CHANNEL: u16 = 1;

pub struct Consumer {
    conn: Conn,
    queue: String,
}

/// Where the consumer is within a delivery (method, header, body frames).
enum Content {
    Idle,
    Header { tag: u64 },
    Body { tag: u64, remaining: u64, stamp: Option<Option<u64>> },
}

/// Acknowledgement policy: one basic.ack per message, or one with multiple=true every N.
pub struct Acker {
    every: u32,
    unacked: u32,
    last_tag: u64,
}

impl Acker {
    pub fn new(every: u32) -> Acker {
        Acker { every: every.max(1), unacked: 0, last_tag: 0 }
    }

    /// Called for each delivery; returns the ack to send now, if any.
    #[inline]
    pub fn on_delivery(&mut self, tag: u64) -> Option<BasicAck> {
        self.last_tag = tag;
        self.unacked += 1;
        if self.unacked >= self.every {
            self.unacked = 0;
            Some(BasicAck { delivery_tag: tag, multiple: self.every > 1 })
        } else {
            None
        }
    }

    /// The ack covering everything still unacknowledged.
    pub fn flush(&mut self) -> Option<BasicAck> {
        if self.unacked == 0 {
            return None;
        }
        self.unacked = 0;
        Some(BasicAck { delivery_tag: self.last_tag, multiple: true })
    }
}

impl Consumer {
    /// Connects and sets the prefetch; consuming starts in `run`, so a backlog is drained from
    /// the start of the measurement.
    pub async fn connect(ctx: &Ctx, id: usize, queue: String) -> Result<Consumer> {
        let _permit = ctx.connect.acquire().await?;
        let mut conn = Conn::open(&ctx.uri, &format!("warren-perf consumer {id}")).await?;
        conn.open_channel(CHANNEL).await?;
        if ctx.opts.prefetch > 0 {
            match conn
                .rpc(CHANNEL, BasicQos { prefetch_count: ctx.opts.prefetch, ..Default::default() })
                .await?
            {
                Method::BasicQosOk(_) => {}
                m => bail!("expected basic.qos-ok, got {}", m.name()),
            }
        }
        if ctx.opts.tx_batch > 0 {
            match conn.rpc(CHANNEL, TxSelect {}).await? {
                Method::TxSelectOk(_) => {}
                m => bail!("expected tx.select-ok, got {}", m.name()),
            }
        }
        Ok(Consumer { conn, queue })
    }

    pub async fn run(self, ctx: Arc<Ctx>, counters: Arc<Counters>) -> Result<()> {
        let opts = &ctx.opts;
        let Conn { mut reader, mut writer, frame_max } = self.conn;
        let auto_ack = opts.auto_ack;
        // --tx-batch: each delivery is published anew to the output queue, and every `batch` of
        // them acknowledged and committed. Like a client that waits for tx.commit-ok (RabbitMQ
        // refuses a method sent after tx.commit before its reply), deliveries that arrive while a
        // commit is outstanding wait for it.
        let batch = opts.tx_batch;
        let mut transform = (batch > 0).then(|| {
            PublishEncoder::new(
                CHANNEL,
                "",
                std::slice::from_ref(&opts.tx_out),
                opts.persistent,
                opts.size,
                frame_max,
            )
        });
        let mut in_tx = 0u32;
        let mut commit_sent: Option<u64> = None;
        let mut waiting: VecDeque<u64> = VecDeque::new();
        let mut commit_lat: Vec<u64> = Vec::new();
        let mut transformed = 0u64;
        let limit = opts.cmessages;
        let clock = ctx.clock;
        let mut stop = ctx.stop.clone();
        let mut acker = Acker::new(opts.effective_multi_ack());
        writer.method(
            CHANNEL,
            BasicConsume {
                queue: self.queue.as_str().into(),
                no_ack: auto_ack,
                arguments: FieldTable::new(),
                ..Default::default()
            },
        );
        writer.flush().await?;
        let mut state = Content::Idle;
        let mut lat: Vec<u64> = Vec::with_capacity(4096);
        let mut received = 0u64;
        let mut orderly = true;
        loop {
            tokio::select! {
                r = reader.fill() => {
                    if let Err(e) = r {
                        return if ctx.stopping() { Ok(()) } else { Err(e) };
                    }
                }
                _ = stop.changed() => break,
            }
            let now = clock.now_ns();
            let now_unix = clock.unix_ns(now);
            let mut got = 0u64;
            while let Some(frame) = reader.next()? {
                let done_tag = match frame {
                    Frame::Method { method: Method::BasicDeliver(d), .. } => {
                        state = Content::Header { tag: d.delivery_tag };
                        None
                    }
                    Frame::Header { header, .. } => match state {
                        Content::Header { tag } if header.body_size == 0 => {
                            state = Content::Idle;
                            Some((tag, None))
                        }
                        Content::Header { tag } => {
                            state = Content::Body { tag, remaining: header.body_size, stamp: None };
                            None
                        }
                        _ => bail!("content header without a delivery"),
                    },
                    Frame::Body { payload, .. } => match &mut state {
                        Content::Body { tag, remaining, stamp } => {
                            let stamp = *stamp.get_or_insert_with(|| body_timestamp(&payload));
                            *remaining = remaining.saturating_sub(payload.len() as u64);
                            if *remaining == 0 {
                                let t = *tag;
                                state = Content::Idle;
                                Some((t, stamp))
                            } else {
                                None
                            }
                        }
                        _ => bail!("content body without a delivery"),
                    },
                    Frame::Method { method, .. } => match method {
                        Method::BasicCancel(c) => {
                            bail!(
                                "the broker cancelled the consumer on '{}' (ctag {})",
                                self.queue,
                                c.consumer_tag
                            )
                        }
                        Method::TxCommitOk(_) => {
                            if let Some(sent) = commit_sent.take() {
                                commit_lat.push(now.saturating_sub(sent));
                            }
                            None
                        }
                        Method::ConnectionClose(_) | Method::ChannelClose(_) => {
                            return Err(close_error(&method)
                                .expect("a close method")
                                .context(format!("consuming from '{}'", self.queue)));
                        }
                        _ => None,
                    },
                    Frame::Heartbeat { .. } => None,
                };
                if let Some((tag, stamp)) = done_tag {
                    got += 1;
                    if let Some(ts) = stamp {
                        lat.push(now_unix.saturating_sub(ts));
                    }
                    if transform.is_some() {
                        waiting.push_back(tag);
                    } else if !auto_ack {
                        if let Some(ack) = acker.on_delivery(tag) {
                            writer.method(CHANNEL, ack);
                        }
                    }
                }
            }
            if let Some(encoder) = transform.as_mut() {
                while commit_sent.is_none() {
                    let Some(tag) = waiting.pop_front() else { break };
                    encoder.encode(&mut writer.buf, transformed, now_unix);
                    transformed += 1;
                    in_tx += 1;
                    if in_tx >= batch {
                        in_tx = 0;
                        writer.method(CHANNEL, BasicAck { delivery_tag: tag, multiple: true });
                        writer.method(CHANNEL, TxCommit {});
                        commit_sent = Some(now);
                    }
                }
            }
            if got > 0 {
                received += got;
                counters.received.fetch_add(got, Ordering::Relaxed);
                counters.last_receive_ns.store(now, Ordering::Relaxed);
                ctx.consumer_lat.record_all(&lat);
                lat.clear();
            }
            if !commit_lat.is_empty() {
                ctx.commit_lat.record_all(&commit_lat);
                commit_lat.clear();
            }
            let finished = limit > 0 && received >= limit && !counters.is_finished();
            if finished {
                if let Some(ack) = acker.flush() {
                    writer.method(CHANNEL, ack);
                }
            }
            tokio::select! {
                r = writer.flush() => r?,
                _ = stop.changed() => { orderly = false; break; }
            }
            if finished {
                counters.finish(now);
                ctx.finished.notify_one();
            }
        }
        if !orderly {
            return Ok(());
        }
        // Orderly close; deliveries still arriving are dropped (the broker requeues them).
        writer.method(0, ConnectionClose { reply_code: 200, reply_text: "bye".into(), ..Default::default() });
        let closed = tokio::time::timeout(Duration::from_secs(3), async {
            writer.flush().await?;
            loop {
                if let Frame::Method { method: Method::ConnectionCloseOk(_), .. } = reader.frame().await? {
                    return Ok::<_, anyhow::Error>(());
                }
            }
        })
        .await;
        match closed {
            Ok(r) => r.or_else(|e| if ctx.stopping() { Ok(()) } else { Err(e) }),
            Err(_) => Ok(()), // no close-ok in time: the run is over anyway
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_acks() {
        let mut a = Acker::new(1);
        assert_eq!(a.on_delivery(1), Some(BasicAck { delivery_tag: 1, multiple: false }));
        assert_eq!(a.on_delivery(2), Some(BasicAck { delivery_tag: 2, multiple: false }));
        assert_eq!(a.flush(), None);
    }

    #[test]
    fn multiple_acks_every_n() {
        let mut a = Acker::new(3);
        assert_eq!(a.on_delivery(1), None);
        assert_eq!(a.on_delivery(2), None);
        assert_eq!(a.on_delivery(3), Some(BasicAck { delivery_tag: 3, multiple: true }));
        assert_eq!(a.on_delivery(4), None);
        assert_eq!(a.flush(), Some(BasicAck { delivery_tag: 4, multiple: true }));
        assert_eq!(a.flush(), None);
    }
}
