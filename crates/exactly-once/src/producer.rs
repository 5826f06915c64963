//! The producer: publishes events `1..=count` in order, persistent, with publisher confirms and
//! a deduplication key, and after any failure reconnects and publishes again, in order, every
//! event that was not confirmed. Some of those reached the queue before the failure; the
//! broker's deduplication drops them (and confirms them), so a retry does not duplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, Connection, PublisherConfirm};

use crate::event::{Event, Stage};
use crate::retry::{Error, Patience};
use crate::topology::{Topology, ATTEMPT_HEADER, DEDUP_HEADER};

#[derive(Clone, Debug)]
pub struct ProducerOptions {
    pub url: String,
    pub id: String,
    pub count: u64,
    /// Publishes awaiting their confirm at most.
    pub window: usize,
    pub topology: Topology,
    pub patience: Patience,
    /// Events per second at most (first publishes; retries are not held back).
    pub rate: Option<u32>,
}

impl ProducerOptions {
    pub fn new(
        url: impl Into<String>,
        topology: Topology,
        id: impl Into<String>,
        count: u64,
    ) -> ProducerOptions {
        ProducerOptions {
            url: url.into(),
            id: id.into(),
            count,
            window: 100,
            topology,
            patience: Patience::default(),
            rate: None,
        }
    }
}

/// What a producer did so far (shared with whoever watches it).
#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Every basic.publish sent, retries included.
    pub publishes: AtomicU64,
    /// Publishes of an event that had been published before (retries).
    pub republished: AtomicU64,
    /// Events confirmed; the producer is done when this reaches its count.
    pub confirmed: AtomicU64,
    pub reconnects: AtomicU64,
}

/// The properties of an event's message: persistent, with its key as deduplication header
/// and as message-id, and the number of this publish of it.
pub fn event_properties(event: &Event, attempt: u32) -> BasicProperties {
    let key = event.dedup_key();
    let mut headers = FieldTable::default();
    headers.insert(DEDUP_HEADER.into(), AMQPValue::LongString(key.as_str().into()));
    headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt));
    BasicProperties::default().with_delivery_mode(2).with_message_id(key.into()).with_headers(headers)
}

/// Runs until every event is confirmed; fails only after a long stretch without progress.
pub async fn produce(opts: &ProducerOptions, stats: &ProducerStats) -> Result<(), Error> {
    let mut next_unconfirmed = 1;
    let mut highest_published = 0;
    // publishes so far of the events not confirmed yet
    let mut attempts: HashMap<u64, u32> = HashMap::new();
    let started = tokio::time::Instant::now();
    let mut progress = Instant::now();
    let mut first = true;
    while next_unconfirmed <= opts.count {
        if !std::mem::take(&mut first) {
            stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let conn = opts.patience.connect(&opts.url, progress).await?;
        let mut session = Session {
            opts,
            stats,
            started,
            next_unconfirmed,
            highest_published,
            progress,
            attempts: &mut attempts,
        };
        let outcome = session.run(&conn).await;
        (next_unconfirmed, highest_published, progress) =
            (session.next_unconfirmed, session.highest_published, session.progress);
        match outcome {
            Ok(()) => {
                let _ = opts.patience.op("close", conn.close(200, "all confirmed".into())).await;
            }
            Err(e) => opts.patience.pause_or_give_up(progress, e).await?,
        }
    }
    Ok(())
}

/// One connection's worth of publishing.
struct Session<'a> {
    opts: &'a ProducerOptions,
    stats: &'a ProducerStats,
    started: tokio::time::Instant,
    next_unconfirmed: u64,
    highest_published: u64,
    progress: Instant,
    attempts: &'a mut HashMap<u64, u32>,
}

impl Session<'_> {
    /// When event `seq` may be published first (retries are due at once).
    fn due(&self, seq: u64) -> tokio::time::Instant {
        match self.opts.rate {
            Some(rate) if seq > self.highest_published => {
                self.started + Duration::from_secs_f64((seq - 1) as f64 / f64::from(rate.max(1)))
            }
            _ => self.started,
        }
    }

    async fn run(&mut self, conn: &Connection) -> Result<(), Error> {
        let p = &self.opts.patience;
        p.op("declare", self.opts.topology.declare(conn)).await?;
        let ch = p.op("channel.open", conn.create_channel()).await?;
        p.op("confirm.select", ch.confirm_select(ConfirmSelectOptions::default())).await?;
        let exchange = self.opts.topology.input_exchange();
        let mut in_flight: VecDeque<(u64, PublisherConfirm)> = VecDeque::new();
        let mut next = self.next_unconfirmed;
        loop {
            while in_flight.len() < self.opts.window && next <= self.opts.count {
                // paced: while confirms are pending, wait for them rather than for the clock
                let due = self.due(next);
                if due > tokio::time::Instant::now() {
                    if !in_flight.is_empty() {
                        break;
                    }
                    tokio::time::sleep_until(due).await;
                }
                let event = Event::new(self.opts.id.as_str(), next);
                let attempt = self.attempts.entry(next).or_insert(0);
                *attempt += 1;
                let properties = event_properties(&event, *attempt);
                let confirm = p
                    .op(
                        "basic.publish",
                        ch.basic_publish(
                            exchange.as_str().into(),
                            "".into(),
                            BasicPublishOptions::default(),
                            &event.body(Stage::Input),
                            properties,
                        ),
                    )
                    .await?;
                self.stats.publishes.fetch_add(1, Ordering::Relaxed);
                if next <= self.highest_published {
                    self.stats.republished.fetch_add(1, Ordering::Relaxed);
                }
                self.highest_published = self.highest_published.max(next);
                in_flight.push_back((next, confirm));
                next += 1;
            }
            let Some((seq, confirm)) = in_flight.pop_front() else { return Ok(()) };
            match p.op("confirm", confirm).await? {
                Confirmation::Ack(_) | Confirmation::NotRequested => {
                    self.next_unconfirmed = seq + 1;
                    self.attempts.remove(&seq);
                    self.progress = Instant::now();
                    self.stats.confirmed.fetch_add(1, Ordering::Relaxed);
                }
                // A retry on this channel would come after later events: start over instead.
                Confirmation::Nack(_) => {
                    return Err(Error::Nacked(Event::new(self.opts.id.as_str(), seq).to_string()));
                }
            }
        }
    }
}
