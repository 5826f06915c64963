//! The transactional benchmark: consume-transform-publish with a given number of inputs per
//! commit, on a given number of concurrent channels (each its own connection and input queue,
//! so many single-message transactions run at once and can share the broker's fsyncs).
//!
//! Each input is preloaded (persistent, confirmed), then every worker takes `batch` inputs,
//! publishes one output to `out` and one to `audit` per input, acks them and commits, until
//! its queue is empty. Reported: messages (inputs) per second over the whole run, commits per
//! second, and the commit latency (tx.commit sent until tx.commit-ok).

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::retry::Error;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub url: String,
    /// Inputs per transaction.
    pub batch: u16,
    /// Concurrent transactional channels.
    pub workers: usize,
    /// Inputs in all.
    pub messages: u64,
    pub body_size: usize,
}

#[derive(Clone, Debug)]
pub struct BenchResult {
    pub batch: u16,
    pub workers: usize,
    pub messages: u64,
    pub elapsed: Duration,
    pub commits: u64,
    pub commit_p50: Duration,
    pub commit_p99: Duration,
}

impl BenchResult {
    pub fn messages_per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    pub fn commits_per_second(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64()
    }
}

/// The `q`-quantile of sorted durations (nearest rank).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn connect(url: &str) -> Result<Connection, Error> {
    Ok(Connection::connect(url, ConnectionProperties::default()).await?)
}

pub async fn run(opts: &BenchOptions) -> Result<BenchResult, Error> {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let prefix = format!("tx-bench-{}-{nanos:x}-", std::process::id());
    let inputs: Vec<String> = (0..opts.workers).map(|i| format!("{prefix}in-{i}")).collect();
    let (output, audit) = (format!("{prefix}out"), format!("{prefix}audit"));
    let conn = connect(&opts.url).await?;
    let ch = conn.create_channel().await?;
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    for q in inputs.iter().chain([&output, &audit]) {
        ch.queue_declare(q.as_str().into(), durable, FieldTable::default()).await?;
    }
    preload(&conn, &inputs, opts).await?;

    let started = Instant::now();
    let share = opts.messages / opts.workers as u64;
    let mut tasks = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let count = share + u64::from((i as u64) < opts.messages % opts.workers as u64);
        let (url, input, output, audit, batch) =
            (opts.url.clone(), input.clone(), output.clone(), audit.clone(), opts.batch);
        tasks.push(tokio::spawn(async move { worker(&url, &input, &output, &audit, batch, count).await }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("bench worker")?);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();

    for q in inputs.iter().chain([&output, &audit]) {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await?;
    }
    let _ = conn.close(200, "bench done".into()).await;
    Ok(BenchResult {
        batch: opts.batch,
        workers: opts.workers,
        messages: opts.messages,
        elapsed,
        commits: latencies.len() as u64,
        commit_p50: quantile(&latencies, 0.5),
        commit_p99: quantile(&latencies, 0.99),
    })
}

/// Fills the input queues round-robin, persistent, with confirms.
async fn preload(conn: &Connection, inputs: &[String], opts: &BenchOptions) -> Result<(), Error> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = vec![b'x'; opts.body_size];
    let mut pending = Vec::new();
    for n in 0..opts.messages {
        let queue = &inputs[(n % inputs.len() as u64) as usize];
        let props = BasicProperties::default().with_delivery_mode(2);
        pending.push(
            ch.basic_publish("".into(), queue.as_str().into(), BasicPublishOptions::default(), &body, props)
                .await?,
        );
        if pending.len() >= 1000 {
            for c in pending.drain(..) {
                c.await?;
            }
        }
    }
    for c in pending {
        c.await?;
    }
    Ok(())
}

/// Processes `count` inputs of `input`, `batch` per transaction; returns the commit latencies.
async fn worker(
    url: &str,
    input: &str,
    output: &str,
    audit: &str,
    batch: u16,
    count: u64,
) -> Result<Vec<Duration>, Error> {
    let conn = connect(url).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(batch, BasicQosOptions::default()).await?;
    ch.tx_select().await?;
    let mut deliveries = ch
        .basic_consume(input.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let mut latencies = Vec::with_capacity((count / u64::from(batch) + 1) as usize);
    let mut done = 0;
    while done < count {
        let size = u64::from(batch).min(count - done);
        let mut last = 0;
        for _ in 0..size {
            let d = deliveries.next().await.ok_or_else(|| Error::ConsumerEnded(input.to_owned()))??;
            for queue in [output, audit] {
                let props = BasicProperties::default().with_delivery_mode(2);
                ch.basic_publish("".into(), queue.into(), BasicPublishOptions::default(), &d.data, props)
                    .await?
                    .await?;
            }
            last = d.delivery_tag;
        }
        ch.basic_ack(last, BasicAckOptions { multiple: true }).await?;
        let sent = Instant::now();
        ch.tx_commit().await?;
        latencies.push(sent.elapsed());
        done += size;
    }
    let _ = conn.close(200, "bench done".into()).await;
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let ms = |n: u64| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(quantile(&sorted, 0.5), ms(50));
        assert_eq!(quantile(&sorted, 0.99), ms(99));
        assert_eq!(quantile(&sorted, 1.0), ms(100));
        assert_eq!(quantile(&[ms(7)], 0.99), ms(7));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
