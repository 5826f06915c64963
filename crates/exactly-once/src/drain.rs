//! The checker's input: draining the output queues, and the verdict on both.

use std::fmt;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};

use crate::check::{check_queue, Delivered, Expected, QueueReport};
use crate::event::Stage;
use crate::retry::{Error, Patience};
use crate::topology::{Topology, ATTEMPT_HEADER};

/// Takes every message out of `queue` and returns them in delivery order. It reads at
/// least as many as the queue held when it started, then stops after `idle` without one; the
/// messages are acked (all at once, at the end) only once they are all read, so a drain that
/// fails leaves the queue as it was.
pub async fn drain(
    conn: &Connection,
    queue: &str,
    idle: Duration,
    patience: &Patience,
) -> Result<Vec<Delivered>, Error> {
    let ch = patience.op("channel.open", conn.create_channel()).await?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let held =
        patience.op("queue.declare", ch.queue_declare(queue.into(), passive, FieldTable::default())).await?;
    let held = held.message_count();
    let mut deliveries = patience
        .op(
            "basic.consume",
            ch.basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()),
        )
        .await?;
    let mut bodies = Vec::with_capacity(held as usize);
    let mut last_tag = None;
    loop {
        let wait = if bodies.len() < held as usize { patience.op_timeout } else { idle };
        match tokio::time::timeout(wait, deliveries.next()).await {
            Ok(Some(d)) => {
                let d = d?;
                last_tag = Some(d.delivery_tag);
                bodies.push(Delivered::new(d.data, attempt(&d.properties)));
            }
            Ok(None) => return Err(Error::ConsumerEnded(queue.to_owned())),
            Err(_) if bodies.len() < held as usize => return Err(Error::Stalled(held, queue.to_owned())),
            Err(_) => break,
        }
    }
    if let Some(tag) = last_tag {
        patience.op("basic.ack", ch.basic_ack(tag, BasicAckOptions { multiple: true })).await?;
    }
    // close-ok comes after the ack was processed
    patience.op("channel.close", ch.close(200, "drained".into())).await?;
    Ok(bodies)
}

/// The input's publish attempt that an output carries.
fn attempt(properties: &BasicProperties) -> Option<u32> {
    let value = properties.headers().as_ref()?.inner().get(ATTEMPT_HEADER)?.clone();
    match value {
        AMQPValue::LongUInt(n) => Some(n),
        AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
        AMQPValue::LongInt(n) => u32::try_from(n).ok(),
        AMQPValue::ShortUInt(n) => Some(u32::from(n)),
        AMQPValue::ShortInt(n) => u32::try_from(n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u32::from(n)),
        AMQPValue::ShortShortInt(n) => u32::try_from(n).ok(),
        _ => None,
    }
}

/// The verdict on a run: both outputs.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub output: QueueReport,
    pub audit: QueueReport,
}

impl RunReport {
    pub fn new(
        topology: &Topology,
        expected: &Expected,
        output: &[Delivered],
        audit: &[Delivered],
    ) -> RunReport {
        RunReport {
            output: check_queue(&topology.output(), Stage::Output, expected, output),
            audit: check_queue(&topology.audit(), Stage::Audit, expected, audit),
        }
    }

    pub fn is_exactly_once_in_order(&self) -> bool {
        self.output.is_exactly_once_in_order() && self.audit.is_exactly_once_in_order()
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.output, self.audit)
    }
}
