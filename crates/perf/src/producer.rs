//! A producer: one connection, one channel, batched publishes; a separate task reads confirms.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use warren_protocol::methods::{ConfirmSelect, ConnectionClose, Method};
use warren_protocol::Frame;

use crate::client::{close_error, Conn, FrameReader};
use crate::clock::{Pacer, Schedule};
use crate::message::PublishEncoder;
use crate::run::Ctx;
use crate::stats::{ConfirmTracker, ConfirmWindow, Counters};

/// A write ends once the buffer holds this much.
const MAX_WRITE: usize = 128 * 1024;
const CHANNEL: u16 = 1;

pub struct Producer {
    conn: Conn,
    keys: Vec<String>,
    id: usize,
}

impl Producer {
    /// Connects and prepares the channel (confirm.select when confirming).
    pub async fn connect(ctx: &Ctx, id: usize, keys: Vec<String>) -> Result<Producer> {
        let _permit = ctx.connect.acquire().await?;
        let mut conn = Conn::open(&ctx.uri, &format!("warren-perf producer {id}")).await?;
        conn.open_channel(CHANNEL).await?;
        if ctx.opts.confirm > 0 {
            match conn.rpc(CHANNEL, ConfirmSelect { nowait: false }).await? {
                Method::ConfirmSelectOk(_) => {}
                m => bail!("expected confirm.select-ok, got {}", m.name()),
            }
        }
        Ok(Producer { conn, keys, id })
    }

    /// Publishes from `start_ns` until stopped (or --pmessages are out and confirmed).
    pub async fn run(self, ctx: Arc<Ctx>, counters: Arc<Counters>, start_ns: u64) -> Result<()> {
        let opts = &ctx.opts;
        let Conn { reader, mut writer, frame_max } = self.conn;
        // Distinct per run and per producer: the run's start time, the producer's number above it.
        let salt = opts.unique_keys.then(|| start_ns.wrapping_add((self.id as u64) << 48));
        let (exchange, keys) = (&opts.exchange, &self.keys);
        let mut encoder =
            PublishEncoder::with_keys(CHANNEL, exchange, keys, opts.persistent, opts.size, frame_max, salt);
        let window = (opts.confirm > 0).then(|| Arc::new(ConfirmWindow::new(opts.confirm)));
        let read_task = tokio::spawn(read_loop(ctx.clone(), reader, window.clone(), counters.clone()));
        let mut stop = ctx.stop.clone();
        let clock = ctx.clock;
        let limit = opts.pmessages;
        let schedule = (opts.rate > 0.0).then(|| Schedule::new(start_ns, opts.rate));
        let mut pacer = if schedule.is_some() { Some(Pacer::new()?) } else { None };
        let min_pacing_ns = opts.min_pacing_us * 1000;
        let mut last_wake = 0u64;
        let batch = opts.batch as u64;
        let mut sent = 0u64;

        // Ok(true): stopped, close the connection in order; Ok(false): abandon it (a write was cut short).
        let result: Result<bool> = async {
            'publish: loop {
                if ctx.stopping() {
                    break;
                }
                if limit > 0 && sent >= limit {
                    if let Some(w) = &window {
                        while w.lowest_unconfirmed() <= limit {
                            tokio::select! {
                                    _ = w.progress.notified() => {}
                                _ = stop.changed() => break 'publish,
                            }
                        }
                    }
                    counters.finish(clock.now_ns());
                    ctx.finished.notify_one();
                    let _ = stop.changed().await;
                    break;
                }
                let now = clock.now_ns();
                let mut n = batch;
                if limit > 0 {
                    n = n.min(limit - sent);
                }
                if let Some(w) = &window {
                    let room = w.room(sent + 1);
                    if room == 0 {
                        tokio::select! {
                            _ = w.progress.notified() => {}
                            _ = stop.changed() => break,
                        }
                        continue;
                    }
                    n = n.min(room);
                }
                if let (Some(s), Some(p)) = (&schedule, pacer.as_mut()) {
                    let due = s.due_by(now).saturating_sub(sent);
                    if due == 0 {
                        let next = s.intended_ns(sent).max(last_wake + min_pacing_ns);
                        tokio::select! {
                            r = p.sleep_until(clock.instant(next)) => r?,
                            _ = stop.changed() => break,
                        }
                        last_wake = clock.now_ns();
                        continue;
                    }
                    n = n.min(due);
                }
                let mut k = 0;
                while k < n {
                    let i = sent + k;
                    let intended = match &schedule {
                        Some(s) => s.intended_ns(i),
                        None => now,
                    };
                    if let Some(w) = &window {
                        w.set_send_time(i + 1, intended);
                    }
                    encoder.encode(&mut writer.buf, i, clock.unix_ns(intended));
                    k += 1;
                    if writer.buf.len() >= MAX_WRITE {
                        break;
                    }
                }
                sent += k;
                counters.sent.store(sent, Ordering::Release);
                tokio::select! {
                    r = writer.flush() => r?,
                    _ = stop.changed() => return Ok(false),
                }
            }
            // Orderly close: the reader sees close-ok and ends.
            writer.method(
                0,
                ConnectionClose { reply_code: 200, reply_text: "bye".into(), ..Default::default() },
            );
            Ok(tokio::time::timeout(Duration::from_secs(2), writer.flush()).await.is_ok_and(|r| r.is_ok()))
        }
        .await;
        match result {
            Ok(true) => match tokio::time::timeout(Duration::from_secs(3), read_task).await {
                Ok(Ok(r)) => r,
                _ => Ok(()),
            },
            Ok(false) => {
                read_task.abort();
                Ok(())
            }
            Err(e) => {
                read_task.abort();
                Err(e)
            }
        }
    }
}

/// Reads confirms (and anything else the broker sends) until close-ok.
async fn read_loop(
    ctx: Arc<Ctx>,
    mut reader: FrameReader,
    window: Option<Arc<ConfirmWindow>>,
    counters: Arc<Counters>,
) -> Result<()> {
    let mut tracker = window.as_ref().map(|w| ConfirmTracker::new(w));
    let mut lat = Vec::with_capacity(4096);
    let mut nack_lat = Vec::new();
    loop {
        if let Err(e) = reader.fill().await {
            return if ctx.stopping() { Ok(()) } else { Err(e) };
        }
        let now = ctx.clock.now_ns();
        let (mut acked, mut nacked) = (0, 0);
        while let Some(frame) = reader.next()? {
            let Frame::Method { method, .. } = frame else { continue };
            match (&method, &mut tracker, &window) {
                (Method::BasicAck(a), Some(t), Some(w)) => {
                    let published = counters.sent.load(Ordering::Acquire);
                    acked += t.apply(w, a.delivery_tag, a.multiple, published, now, &mut lat);
                }
                (Method::BasicNack(a), Some(t), Some(w)) => {
                    let published = counters.sent.load(Ordering::Acquire);
                    nacked += t.apply(w, a.delivery_tag, a.multiple, published, now, &mut nack_lat);
                    nack_lat.clear();
                }
                (Method::ConnectionCloseOk(_), _, _) => return Ok(()),
                (Method::ConnectionClose(_) | Method::ChannelClose(_), _, _) => {
                    return Err(close_error(&method).expect("a close method"));
                }
                _ => {}
            }
        }
        if acked > 0 {
            counters.confirmed.fetch_add(acked, Ordering::Relaxed);
        }
        if nacked > 0 {
            counters.nacked.fetch_add(nacked, Ordering::Relaxed);
        }
        if !lat.is_empty() {
            ctx.confirm_lat.record_all(&lat);
            lat.clear();
        }
    }
}
