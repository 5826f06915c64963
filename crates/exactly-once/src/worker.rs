//! The worker: consume-transform-publish in one transaction per batch.
//!
//! On a channel in transaction mode (tx.select) it takes up to `batch` inputs from `in`
//! (manual acks, prefetch = batch), publishes each one's output to `out` and its audit record to
//! `audit` (two queues: the transaction must span them), acks the inputs, and commits. On any
//! failure it drops the connection and starts over: the broker discards the uncommitted
//! transaction and delivers the inputs again. With atomic, durable commits that makes every
//! input appear exactly once in each output, whatever crashes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};

use crate::event::{Event, Stage};
use crate::retry::{Error, Patience};
use crate::topology::{ready_count, Topology, ATTEMPT_HEADER};

#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub url: String,
    pub topology: Topology,
    /// Inputs per transaction at most.
    pub batch: u16,
    /// How long a batch waits for more inputs once it has one.
    pub batch_wait: Duration,
    /// After this long without an input, the worker looks whether it should finish.
    pub idle: Duration,
    pub patience: Patience,
}

impl WorkerOptions {
    pub fn new(url: impl Into<String>, topology: Topology) -> WorkerOptions {
        WorkerOptions {
            url: url.into(),
            topology,
            batch: 10,
            batch_wait: Duration::from_millis(5),
            idle: Duration::from_millis(200),
            patience: Patience::default(),
        }
    }
}

/// What a worker did so far (shared with whoever watches it).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Inputs whose transaction committed (each counted once per commit that included it).
    pub committed_inputs: AtomicU64,
    pub commits: AtomicU64,
    /// Inputs received and not committed yet.
    pub in_flight: AtomicU64,
    /// Sessions that ended in a failure (the transaction then open, if any, was discarded).
    pub failures: AtomicU64,
    /// Inputs that were no event (acked in the transaction, nothing published for them).
    pub foreign_inputs: AtomicU64,
}

/// Runs until `finish` is set and the input queue is empty with nothing in flight, or fails
/// after a long stretch without progress.
pub async fn work(opts: &WorkerOptions, stats: &WorkerStats, finish: &AtomicBool) -> Result<(), Error> {
    let mut progress = Instant::now();
    loop {
        let conn = opts.patience.connect(&opts.url, progress).await?;
        let outcome = session(opts, stats, finish, &conn, &mut progress).await;
        stats.in_flight.store(0, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                let _ = opts.patience.op("close", conn.close(200, "finished".into())).await;
                return Ok(());
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                // the broker sees the connection end and discards the open transaction
                drop(conn);
                opts.patience.pause_or_give_up(progress, e).await?;
            }
        }
    }
}

async fn session(
    opts: &WorkerOptions,
    stats: &WorkerStats,
    finish: &AtomicBool,
    conn: &Connection,
    progress: &mut Instant,
) -> Result<(), Error> {
    let p = &opts.patience;
    let t = &opts.topology;
    p.op("declare", t.declare(conn)).await?;
    let ch = p.op("channel.open", conn.create_channel()).await?;
    p.op("basic.qos", ch.basic_qos(opts.batch, BasicQosOptions::default())).await?;
    p.op("tx.select", ch.tx_select()).await?;
    let input = t.input();
    let mut inputs = p
        .op(
            "basic.consume",
            ch.basic_consume(
                input.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
    *progress = Instant::now();
    loop {
        let first = match tokio::time::timeout(opts.idle, next(&mut inputs, &input)).await {
            Ok(d) => d?,
            Err(_) => {
                // idle: a standby (single active consumer) or an empty queue
                *progress = Instant::now();
                if finish.load(Ordering::SeqCst)
                    && p.op("queue.declare", ready_count(conn, &input)).await? == 0
                {
                    return Ok(());
                }
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < usize::from(opts.batch) {
            match tokio::time::timeout(opts.batch_wait, next(&mut inputs, &input)).await {
                Ok(d) => batch.push(d?),
                Err(_) => break,
            }
        }
        stats.in_flight.store(batch.len() as u64, Ordering::Relaxed);
        commit_batch(opts, stats, &ch, &batch).await?;
        stats.in_flight.store(0, Ordering::Relaxed);
        stats.committed_inputs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        *progress = Instant::now();
    }
}

/// Persistent, with the event's key as message-id and the input's publish attempt.
fn output_properties(event: &Event, input: &Delivery) -> BasicProperties {
    let mut headers = FieldTable::default();
    let attempt = input.properties.headers().as_ref().and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned());
    if let Some(attempt) = attempt {
        headers.insert(ATTEMPT_HEADER.into(), attempt);
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(event.dedup_key().into())
        .with_headers(headers)
}

async fn next(inputs: &mut Consumer, queue: &str) -> Result<Delivery, Error> {
    match inputs.next().await {
        Some(d) => Ok(d?),
        None => Err(Error::ConsumerEnded(queue.to_owned())),
    }
}

/// Publishes the outputs of `batch`, acks it, and commits: one transaction.
async fn commit_batch(
    opts: &WorkerOptions,
    stats: &WorkerStats,
    ch: &Channel,
    batch: &[Delivery],
) -> Result<(), Error> {
    let p = &opts.patience;
    let (output, audit) = (opts.topology.output(), opts.topology.audit());
    for delivery in batch {
        let event = match Event::parse(&delivery.data, Stage::Input) {
            Ok(e) => e,
            Err(_) => {
                stats.foreign_inputs.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let properties = output_properties(&event, delivery);
        for (queue, stage) in [(&output, Stage::Output), (&audit, Stage::Audit)] {
            // not in confirm mode: the returned future is already resolved
            p.op(
                "basic.publish",
                ch.basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &event.body(stage),
                    properties.clone(),
                ),
            )
            .await?
            .await?;
        }
    }
    let last = batch.last().expect("a batch holds one input at least").delivery_tag;
    p.op("basic.ack", ch.basic_ack(last, BasicAckOptions { multiple: true })).await?;
    p.op("tx.commit", ch.tx_commit()).await?;
    Ok(())
}
