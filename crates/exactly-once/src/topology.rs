//! The exchanges and queues of the pipeline, and the declaration every client runs on connect.
//!
//! ```text
//! producers --> in-x (fanout, durable, x-message-deduplication) --> in (durable, single active consumer)
//! worker: in --(one transaction)--> out (durable) + audit (durable), and the ack of the input
//! ```
//!
//! `in` has a single active consumer: workers stand by for each other, so the events of a
//! producer are processed in the order they were published, whichever worker runs.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};

/// The exchange argument that turns deduplication on (LavinMQ's convention, which Warren
/// follows); brokers without deduplication ignore unknown exchange arguments.
pub const DEDUP_ARGUMENT: &str = "x-message-deduplication";
/// How many keys the exchange remembers.
pub const CACHE_SIZE_ARGUMENT: &str = "x-cache-size";
/// The message header whose value is the deduplication key.
pub const DEDUP_HEADER: &str = "x-deduplication-header";
/// The message header that numbers the producer's publishes of one event (1, then 2 for its
/// first retry, ...); the worker copies it to the outputs, so the checker can tell where a
/// duplicate was born.
pub const ATTEMPT_HEADER: &str = "x-publish-attempt";

/// Names and settings of the pipeline's exchanges and queues.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Put in front of every name, so several runs can share a broker.
    pub prefix: String,
    /// The deduplication window: how many keys the input exchange remembers. Retries only ever
    /// repeat events that were in flight, so producers x their window is the least that works.
    pub cache_size: u32,
}

impl Default for Topology {
    fn default() -> Topology {
        Topology { prefix: String::new(), cache_size: 100_000 }
    }
}

/// What the declaration found out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared {
    /// Whether the broker took the input exchange with the deduplication arguments (a broker
    /// may take them and still not deduplicate: RabbitMQ without the plugin ignores them).
    pub dedup_arguments_accepted: bool,
}

impl Topology {
    pub fn with_prefix(prefix: impl Into<String>) -> Topology {
        Topology { prefix: prefix.into(), ..Topology::default() }
    }

    pub fn input_exchange(&self) -> String {
        format!("{}in-x", self.prefix)
    }

    pub fn input(&self) -> String {
        format!("{}in", self.prefix)
    }

    pub fn output(&self) -> String {
        format!("{}out", self.prefix)
    }

    pub fn audit(&self) -> String {
        format!("{}audit", self.prefix)
    }

    fn dedup_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(DEDUP_ARGUMENT.into(), AMQPValue::Boolean(true));
        args.insert(CACHE_SIZE_ARGUMENT.into(), AMQPValue::LongLongInt(i64::from(self.cache_size)));
        args
    }

    /// Declares everything (idempotent). The input exchange is declared with the deduplication
    /// arguments; should the broker refuse them, it is checked for (passive) and else declared
    /// without them, so the pipeline runs on any broker and the checker tells what it did.
    pub async fn declare(&self, conn: &Connection) -> lapin::Result<Declared> {
        let durable_exchange = ExchangeDeclareOptions { durable: true, ..Default::default() };
        let ch = conn.create_channel().await?;
        let exchange = self.input_exchange();
        let accepted = ch
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable_exchange,
                self.dedup_arguments(),
            )
            .await
            .is_ok();
        let ch = if accepted { ch } else { self.declare_without_dedup(conn, &exchange).await? };
        let mut sac = FieldTable::default();
        sac.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        declare_queue(&ch, &self.input(), sac).await?;
        declare_queue(&ch, &self.output(), FieldTable::default()).await?;
        declare_queue(&ch, &self.audit(), FieldTable::default()).await?;
        ch.queue_bind(
            self.input().as_str().into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        // closing waits for close-ok, so every declaration is done when this returns
        ch.close(200, "declared".into()).await?;
        Ok(Declared { dedup_arguments_accepted: accepted })
    }

    /// After a refusal closed the first channel: the exchange as it is, or a plain one.
    async fn declare_without_dedup(&self, conn: &Connection, exchange: &str) -> lapin::Result<Channel> {
        let ch = conn.create_channel().await?;
        let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
        if ch
            .exchange_declare(exchange.into(), ExchangeKind::Fanout, passive, FieldTable::default())
            .await
            .is_ok()
        {
            return Ok(ch);
        }
        let ch = conn.create_channel().await?;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare(exchange.into(), ExchangeKind::Fanout, durable, FieldTable::default()).await?;
        Ok(ch)
    }
}

async fn declare_queue(ch: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(name.into(), durable, args).await.map(|_| ())
}

/// The number of ready messages in `queue` (passive declare on a channel of its own).
pub async fn ready_count(conn: &Connection, queue: &str) -> lapin::Result<u32> {
    let ch = conn.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let count = ch.queue_declare(queue.into(), passive, FieldTable::default()).await?.message_count();
    ch.close(200, "counted".into()).await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix() {
        let t = Topology::with_prefix("run7-");
        assert_eq!(
            [t.input_exchange(), t.input(), t.output(), t.audit()],
            ["run7-in-x", "run7-in", "run7-out", "run7-audit"]
        );
        assert_eq!(Topology::default().input(), "in");
    }

    #[test]
    fn the_input_exchange_asks_for_deduplication_with_a_window() {
        let args = Topology { prefix: String::new(), cache_size: 500 }.dedup_arguments();
        assert_eq!(args.inner().get(DEDUP_ARGUMENT), Some(&AMQPValue::Boolean(true)));
        assert_eq!(args.inner().get(CACHE_SIZE_ARGUMENT), Some(&AMQPValue::LongLongInt(500)));
    }
}
