//! `exactly-once`: the example pipeline's roles as commands, against any AMQP URL.
//!
//! ```sh
//! exactly-once produce --id p1 --count 10000 &
//! exactly-once work &            # as many as you like; one is active at a time
//! exactly-once check --expect p1=10000
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use exactly_once::check::Expected;
use exactly_once::event::valid_producer_id;
use exactly_once::{
    drain, produce, work, Patience, ProducerOptions, ProducerStats, RunReport, Topology, WorkerOptions,
    WorkerStats,
};

#[derive(Parser)]
#[command(
    name = "exactly-once",
    about = "An exactly-once pipeline (producer, transactional worker, checker) over AMQP 0-9-1"
)]
struct Cli {
    /// The broker.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Put in front of the names of the exchange and queues (in-x, in, out, audit).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Give up after this many seconds without progress.
    #[arg(long, default_value_t = 120)]
    give_up_after: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish events 1..=COUNT of producer ID to in-x, retrying whatever was not confirmed.
    Produce {
        #[arg(long)]
        id: String,
        #[arg(long)]
        count: u64,
        /// Publishes awaiting their confirm at most.
        #[arg(long, default_value_t = 100)]
        window: usize,
        /// The deduplication window declared on in-x (x-cache-size).
        #[arg(long, default_value_t = 100_000)]
        cache_size: u32,
        /// Events per second at most.
        #[arg(long)]
        rate: Option<u32>,
    },
    /// Consume from in; per batch, publish to out and audit and ack, in one transaction.
    Work {
        /// Inputs per transaction at most.
        #[arg(long, default_value_t = 10)]
        batch: u16,
        /// Exit once the input queue is empty (instead of running until interrupted).
        #[arg(long)]
        until_empty: bool,
    },
    /// Benchmark transactional consume-transform-publish: inputs per second and commit latency.
    Bench {
        /// Inputs per transaction.
        #[arg(long, default_value_t = 10)]
        batch: u16,
        /// Concurrent transactional channels (a connection and an input queue each).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Inputs in all (preloaded before the clock starts).
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        #[arg(long, default_value_t = 100)]
        body_size: usize,
    },
    /// Drain out and audit and check that each holds every event exactly once, in order.
    Check {
        /// PRODUCER=COUNT, once per producer.
        #[arg(long = "expect", value_parser = parse_expectation, required = true)]
        expect: Vec<(String, u64)>,
        /// Stop reading a queue after this many milliseconds without a message.
        #[arg(long, default_value_t = 1000)]
        idle_ms: u64,
    },
}

fn parse_expectation(s: &str) -> Result<(String, u64), String> {
    let (id, count) = s.split_once('=').ok_or("expected PRODUCER=COUNT")?;
    if !valid_producer_id(id) {
        return Err(format!("invalid producer id {id:?} (letters, digits, '-', '_')"));
    }
    Ok((id.to_owned(), count.parse().map_err(|_| format!("invalid count {count:?}"))?))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let patience = Patience { give_up_after: Duration::from_secs(cli.give_up_after), ..Patience::default() };
    let topology = Topology::with_prefix(cli.prefix.as_str());
    let result = match cli.command {
        Command::Produce { id, count, window, cache_size, rate } => {
            if !valid_producer_id(&id) {
                eprintln!("exactly-once: invalid producer id {id:?} (letters, digits, '-', '_')");
                return ExitCode::from(2);
            }
            let topology = Topology { cache_size, ..topology };
            let opts = ProducerOptions {
                window: window.max(1),
                patience,
                rate,
                ..ProducerOptions::new(cli.url, topology, id, count)
            };
            let stats = ProducerStats::default();
            let r = produce(&opts, &stats).await;
            println!(
                "produced {}: {} confirmed, {} publishes ({} retries), {} reconnects",
                opts.id,
                stats.confirmed.load(Ordering::Relaxed),
                stats.publishes.load(Ordering::Relaxed),
                stats.republished.load(Ordering::Relaxed),
                stats.reconnects.load(Ordering::Relaxed)
            );
            r.map(|()| ExitCode::SUCCESS)
        }
        Command::Work { batch, until_empty } => {
            let opts =
                WorkerOptions { batch: batch.max(1), patience, ..WorkerOptions::new(cli.url, topology) };
            let stats = WorkerStats::default();
            let finish = Arc::new(AtomicBool::new(until_empty));
            let r = tokio::select! {
                r = work(&opts, &stats, &finish) => r,
                // interrupted: the connection is dropped with the transaction open, as in a crash
                _ = tokio::signal::ctrl_c() => Ok(()),
            };
            println!(
                "worked: {} inputs committed in {} transactions, {} failed sessions",
                stats.committed_inputs.load(Ordering::Relaxed),
                stats.commits.load(Ordering::Relaxed),
                stats.failures.load(Ordering::Relaxed)
            );
            r.map(|()| ExitCode::SUCCESS)
        }
        Command::Bench { batch, workers, messages, body_size } => {
            let opts = exactly_once::bench::BenchOptions {
                url: cli.url,
                batch: batch.max(1),
                workers: workers.max(1),
                messages: messages.max(1),
                body_size,
            };
            exactly_once::bench::run(&opts).await.map(|r| {
                println!(
                    "RESULT batch={} workers={} messages={} seconds={:.3} msgs_per_s={:.0} commits_per_s={:.0} \
                     commit_p50_us={} commit_p99_us={}",
                    r.batch,
                    r.workers,
                    r.messages,
                    r.elapsed.as_secs_f64(),
                    r.messages_per_second(),
                    r.commits_per_second(),
                    r.commit_p50.as_micros(),
                    r.commit_p99.as_micros()
                );
                ExitCode::SUCCESS
            })
        }
        Command::Check { expect, idle_ms } => check(&cli.url, &topology, expect, idle_ms, &patience).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("exactly-once: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn check(
    url: &str,
    topology: &Topology,
    expect: Vec<(String, u64)>,
    idle_ms: u64,
    patience: &Patience,
) -> Result<ExitCode, exactly_once::Error> {
    let expected: Expected = expect.into_iter().collect();
    let conn = patience
        .op("connect", lapin::Connection::connect(url, lapin::ConnectionProperties::default()))
        .await?;
    let idle = Duration::from_millis(idle_ms);
    let output = drain(&conn, &topology.output(), idle, patience).await?;
    let audit = drain(&conn, &topology.audit(), idle, patience).await?;
    let _ = conn.close(200, "checked".into()).await;
    let report = RunReport::new(topology, &expected, &output, &audit);
    print!("{report}");
    Ok(if report.is_exactly_once_in_order() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
