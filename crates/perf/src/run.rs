//! One run: declare the topology, connect consumers and producers, start them together, report
//! once a second, stop on time / counts / Ctrl-C, and summarise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use warren_protocol::methods::{ExchangeDeclare, Method, QueueBind, QueueDeclare, QueuePurge};
use warren_protocol::FieldTable;

use crate::client::Conn;
use crate::clock::Clock;
use crate::consumer::Consumer;
use crate::options::{AmqpUri, Options};
use crate::producer::Producer;
use crate::stats::{round2, Counters, Percentiles, SharedLatency, Totals};

/// What every task of a run shares.
pub struct Ctx {
    pub opts: Options,
    pub uri: AmqpUri,
    pub clock: Clock,
    pub stop: watch::Receiver<bool>,
    stopping: AtomicBool,
    /// Signalled when a producer or consumer reaches its message count.
    pub finished: Notify,
    pub confirm_lat: SharedLatency,
    pub consumer_lat: SharedLatency,
    /// tx.commit to commit-ok, of transactional consumers (--tx-batch).
    pub commit_lat: SharedLatency,
    pub connect: Semaphore,
}

impl Ctx {
    pub fn new(opts: Options, uri: AmqpUri, stop: watch::Receiver<bool>) -> Ctx {
        let permits = opts.connect_concurrency;
        Ctx {
            opts,
            uri,
            clock: Clock::new(),
            stop,
            stopping: AtomicBool::new(false),
            finished: Notify::new(),
            confirm_lat: SharedLatency::default(),
            consumer_lat: SharedLatency::default(),
            commit_lat: SharedLatency::default(),
            connect: Semaphore::new(permits),
        }
    }

    #[inline]
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// Declares the exchange, queues and bindings (unless --predeclared).
pub async fn declare(ctx: &Ctx) -> Result<()> {
    let opts = &ctx.opts;
    if opts.predeclared {
        return Ok(());
    }
    let topo = opts.topology();
    let mut conn = Conn::open(&ctx.uri, "warren-perf setup").await?;
    conn.open_channel(1).await?;
    let durable = opts.durable_queues();
    if !opts.exchange.is_empty() && !opts.exchange.starts_with("amq.") {
        let m = ExchangeDeclare {
            exchange: opts.exchange.as_str().into(),
            kind: opts.exchange_type.as_str().into(),
            durable,
            arguments: opts.exchange_args.as_ref().map(|a| a.to_table()).unwrap_or_default(),
            ..Default::default()
        };
        match conn.rpc(1, m).await.with_context(|| format!("declaring exchange '{}'", opts.exchange))? {
            Method::ExchangeDeclareOk(_) => {}
            m => bail!("expected exchange.declare-ok, got {}", m.name()),
        }
    }
    let arguments = opts.queue_args.as_ref().map(|a| a.to_table()).unwrap_or_default();
    for q in &topo.queues {
        let m = QueueDeclare {
            queue: q.as_str().into(),
            durable,
            auto_delete: !opts.no_auto_delete,
            arguments: arguments.clone(),
            ..Default::default()
        };
        match conn.rpc(1, m).await.with_context(|| format!("declaring queue '{q}'"))? {
            Method::QueueDeclareOk(_) => {}
            m => bail!("expected queue.declare-ok, got {}", m.name()),
        }
    }
    if opts.tx_batch > 0 {
        let q = opts.tx_out.as_str();
        let m = QueueDeclare {
            queue: q.into(),
            durable,
            auto_delete: !opts.no_auto_delete,
            ..Default::default()
        };
        match conn.rpc(1, m).await.with_context(|| format!("declaring queue '{q}'"))? {
            Method::QueueDeclareOk(_) => {}
            m => bail!("expected queue.declare-ok, got {}", m.name()),
        }
        match conn.rpc(1, QueuePurge { queue: q.into(), ..Default::default() }).await? {
            Method::QueuePurgeOk(_) => {}
            m => bail!("expected queue.purge-ok, got {}", m.name()),
        }
    }
    for (q, key) in &topo.bindings {
        let m = QueueBind {
            queue: q.as_str().into(),
            exchange: opts.exchange.as_str().into(),
            routing_key: key.as_str().into(),
            arguments: FieldTable::new(),
            ..Default::default()
        };
        match conn.rpc(1, m).await.with_context(|| format!("binding queue '{q}' to '{}'", opts.exchange))? {
            Method::QueueBindOk(_) => {}
            m => bail!("expected queue.bind-ok, got {}", m.name()),
        }
    }
    conn.close().await;
    Ok(())
}

/// Rates of one reporting interval.
#[derive(Clone, Debug)]
pub struct Sample {
    pub t: f64,
    pub send_rate: f64,
    pub confirm_rate: f64,
    pub receive_rate: f64,
    pub confirm_latency: Option<Percentiles>,
    pub consumer_latency: Option<Percentiles>,
    pub commit_latency: Option<Percentiles>,
}

/// Everything a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub elapsed: f64,
    pub totals: Totals,
    pub confirm_latency: Option<Percentiles>,
    pub consumer_latency: Option<Percentiles>,
    pub commit_latency: Option<Percentiles>,
    pub samples: Vec<Sample>,
    /// CPU time (user + system) warren-perf itself used during the measurement.
    pub cpu_seconds: f64,
    pub error: Option<String>,
}

/// CPU time (user + system) this process has used so far, in seconds.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

impl Report {
    pub fn to_json(&self, opts: &Options, uri: &AmqpUri) -> Value {
        let t = &self.totals;
        json!({
            "uri": uri.to_string(),
            "producers": opts.producers,
            "consumers": opts.consumers,
            "size": opts.size,
            "confirm": opts.confirm,
            "prefetch": opts.prefetch,
            "auto_ack": opts.auto_ack,
            "multi_ack": opts.effective_multi_ack(),
            "persistent": opts.persistent,
            "rate": opts.rate,
            "queues": opts.queue_names().len(),
            "exchange": opts.exchange,
            "exchange_type": opts.exchange_type.as_str(),
            "elapsed_s": round2(self.elapsed),
            "sent": t.sent,
            "confirmed": t.confirmed,
            "nacked": t.nacked,
            "received": t.received,
            "send_rate": round2(rate(t.sent, self.elapsed)),
            "confirm_rate": round2(rate(t.confirmed, self.elapsed)),
            "receive_rate": round2(rate(t.received, self.elapsed)),
            "confirm_latency_us": Percentiles::to_json(self.confirm_latency),
            "consumer_latency_us": Percentiles::to_json(self.consumer_latency),
            "tx_batch": opts.tx_batch,
            "commit_latency_us": Percentiles::to_json(self.commit_latency),
            "intervals": self.samples.iter().map(|s| json!({
                "t": round2(s.t),
                "send_rate": round2(s.send_rate),
                "confirm_rate": round2(s.confirm_rate),
                "receive_rate": round2(s.receive_rate),
                "confirm_p99_us": s.confirm_latency.map(|p| p.p99),
                "consumer_p99_us": s.consumer_latency.map(|p| p.p99),
                "commit_p99_us": s.commit_latency.map(|p| p.p99),
            })).collect::<Vec<_>>(),
            "client_cpu_s": round2(self.cpu_seconds),
            "error": self.error,
        })
    }

    pub fn print_text(&self, opts: &Options, uri: &AmqpUri) {
        let t = &self.totals;
        println!(
            "warren-perf summary: {uri}, {} producer(s), {} consumer(s), {} B bodies, confirm window {}, {:.2} s",
            opts.producers, opts.consumers, opts.size, opts.confirm, self.elapsed
        );
        if opts.producers > 0 {
            println!("  sent       {:>12} msgs  {:>12.0} msg/s", t.sent, rate(t.sent, self.elapsed));
        }
        if opts.confirm > 0 {
            println!(
                "  confirmed  {:>12} msgs  {:>12.0} msg/s",
                t.confirmed,
                rate(t.confirmed, self.elapsed)
            );
            if t.nacked > 0 {
                println!("  nacked     {:>12} msgs", t.nacked);
            }
        }
        if opts.consumers > 0 {
            println!("  received   {:>12} msgs  {:>12.0} msg/s", t.received, rate(t.received, self.elapsed));
        }
        for (name, p) in [
            ("confirm latency ", self.confirm_latency),
            ("consumer latency", self.consumer_latency),
            ("commit latency  ", self.commit_latency),
        ] {
            if let Some(p) = p {
                println!(
                    "  {name}  mean {:.0} p50 {:.0} p90 {:.0} p99 {:.0} p99.9 {:.0} max {:.0} µs ({} samples)",
                    p.mean, p.p50, p.p90, p.p99, p.p999, p.max, p.count
                );
            }
        }
        let msgs = t.sent.max(t.received);
        if msgs > 0 {
            println!(
                "  warren-perf CPU {:.2} s ({:.2} µs per message sent or received)",
                self.cpu_seconds,
                self.cpu_seconds * 1e6 / msgs as f64
            );
        }
        if let Some(e) = &self.error {
            println!("  error: {e}");
        }
    }
}

fn progress_line(opts: &Options, s: &Sample) -> String {
    let mut line = format!("{:>7.1}s", s.t);
    if opts.producers > 0 {
        line += &format!("  sent {:>9.0}/s", s.send_rate);
        if opts.confirm > 0 {
            line += &format!(
                "  confirmed {:>9.0}/s  confirm p50/p99/p99.9 {}",
                s.confirm_rate,
                Percentiles::short(s.confirm_latency)
            );
        }
    }
    if opts.consumers > 0 {
        line += &format!("  received {:>9.0}/s", s.receive_rate);
        if opts.size >= crate::message::TIMESTAMP_BYTES {
            line += &format!("  consumer p50/p99/p99.9 {}", Percentiles::short(s.consumer_latency));
        }
        if opts.tx_batch > 0 {
            line += &format!("  commit p50/p99/p99.9 {}", Percentiles::short(s.commit_latency));
        }
    }
    line
}

/// When limited work is done: the time the run ended, if it has.
fn done_at(
    opts: &Options,
    producers: &[Arc<Counters>],
    consumers: &[Arc<Counters>],
    now_ns: u64,
) -> Option<u64> {
    let p_limited = !producers.is_empty() && opts.pmessages > 0;
    let c_limited = !consumers.is_empty() && opts.cmessages > 0;
    let all_done = |cs: &[Arc<Counters>]| cs.iter().all(|c| c.is_finished());
    let last =
        |cs: &[Arc<Counters>]| cs.iter().map(|c| c.finished_ns.load(Ordering::Relaxed)).max().unwrap_or(0);
    if c_limited {
        if all_done(consumers) && (!p_limited || all_done(producers)) {
            return Some(last(consumers).max(if p_limited { last(producers) } else { 0 }));
        }
        return None;
    }
    if p_limited && all_done(producers) {
        if consumers.is_empty() {
            return Some(last(producers));
        }
        // Unlimited consumers: done once nothing has arrived for a second.
        let last_rx = consumers.iter().map(|c| c.last_receive_ns.load(Ordering::Relaxed)).max().unwrap_or(0);
        let quiet_since = last_rx.max(last(producers));
        if now_ns.saturating_sub(quiet_since) >= 1_000_000_000 {
            return Some(quiet_since);
        }
    }
    None
}

fn say(opts: &Options, line: &str) {
    if opts.quiet {
        return;
    }
    if opts.json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// Runs the workload described by the options against `uri`.
pub async fn run(opts: Options, uri: AmqpUri) -> Result<Report> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Arc::new(Ctx::new(opts.clone(), uri, stop_rx));
    declare(&ctx).await?;
    let topo = opts.topology();
    if opts.consumers > 0 && opts.consumers < topo.queues.len() {
        eprintln!(
            "warning: {} queues but only {} consumers: some queues have no consumer",
            topo.queues.len(),
            opts.consumers
        );
    }

    // Connect everyone first, so that connection set-up is not measured.
    let mut pending = Vec::new();
    for (i, q) in topo.consumer_queues.iter().enumerate() {
        let (ctx, q) = (ctx.clone(), q.clone());
        pending.push(tokio::spawn(async move { Consumer::connect(&ctx, i, q).await }));
    }
    let mut consumers = Vec::new();
    for p in pending {
        consumers.push(p.await?.context("connecting a consumer")?);
    }
    let mut pending = Vec::new();
    for (i, keys) in topo.producer_keys.iter().enumerate() {
        let (ctx, keys) = (ctx.clone(), keys.clone());
        pending.push(tokio::spawn(async move { Producer::connect(&ctx, i, keys).await }));
    }
    let mut producers = Vec::new();
    for p in pending {
        producers.push(p.await?.context("connecting a producer")?);
    }

    let clock = ctx.clock;
    let start_ns = clock.now_ns();
    let cpu_start = process_cpu_seconds();
    if opts.json {
        // Markers for scripts that measure the broker over exactly the measured interval.
        eprintln!("@measure start");
    }
    let mut tasks = JoinSet::new();
    let mut c_counters = Vec::new();
    for c in consumers {
        let counters = Arc::new(Counters::default());
        c_counters.push(counters.clone());
        let ctx = ctx.clone();
        tasks.spawn(async move { c.run(ctx, counters).await });
    }
    let mut p_counters = Vec::new();
    for p in producers {
        let counters = Arc::new(Counters::default());
        p_counters.push(counters.clone());
        let ctx = ctx.clone();
        tasks.spawn(async move { p.run(ctx, counters, start_ns).await });
    }
    let all = || p_counters.iter().chain(c_counters.iter()).map(|c| &**c);

    let start = clock.instant(start_ns);
    let mut tick = tokio::time::interval_at((start + Duration::from_secs(1)).into(), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = opts.duration.map(|d| start + Duration::from_secs_f64(d));
    let sleep_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_deadline);
    let mut prev = Totals::default();
    let mut prev_ns = start_ns;
    let mut samples = Vec::new();
    let mut error = None;
    let end_ns = loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = clock.now_ns();
                let tot = Totals::sum(all());
                let dt = (now - prev_ns) as f64 / 1e9;
                let s = Sample {
                    t: (now - start_ns) as f64 / 1e9,
                    send_rate: (tot.sent - prev.sent) as f64 / dt,
                    confirm_rate: (tot.confirmed - prev.confirmed) as f64 / dt,
                    receive_rate: (tot.received - prev.received) as f64 / dt,
                    confirm_latency: ctx.confirm_lat.take_interval(),
                    consumer_latency: ctx.consumer_lat.take_interval(),
                    commit_latency: ctx.commit_lat.take_interval(),
                };
                say(&opts, &progress_line(&opts, &s));
                samples.push(s);
                prev = tot;
                prev_ns = now;
                if let Some(end) = done_at(&opts, &p_counters, &c_counters, now) {
                    break end;
                }
            }
            _ = ctx.finished.notified() => {
                if let Some(end) = done_at(&opts, &p_counters, &c_counters, clock.now_ns()) {
                    break end;
                }
            }
            _ = &mut sleep_deadline => {
                // Rates are over exactly the time the run was meant to last.
                break start_ns + Duration::from_secs_f64(opts.duration.unwrap_or(0.0)).as_nanos() as u64;
            }
            joined = tasks.join_next(), if !tasks.is_empty() => {
                let failure = match joined {
                    Some(Ok(Err(e))) => Some(format!("{e:#}")),
                    Some(Err(e)) => Some(format!("a task failed: {e}")),
                    _ => None,
                };
                if let Some(f) = failure {
                    eprintln!("error: {f}");
                    error = Some(f);
                    break clock.now_ns();
                }
            }
            _ = tokio::signal::ctrl_c() => break clock.now_ns(),
        }
    };
    let totals = Totals::sum(all());
    let cpu_seconds = process_cpu_seconds() - cpu_start;
    if opts.json {
        eprintln!("@measure end");
    }
    ctx.set_stopping();
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok(Err(e)) = joined {
                if error.is_none() {
                    error = Some(format!("{e:#}"));
                }
            }
        }
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    Ok(Report {
        elapsed: (end_ns.saturating_sub(start_ns)) as f64 / 1e9,
        totals,
        confirm_latency: ctx.confirm_lat.total(),
        consumer_latency: ctx.consumer_lat.total(),
        commit_latency: ctx.commit_lat.total(),
        samples,
        cpu_seconds,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn opts(args: &[&str]) -> Options {
        let mut v = vec!["warren-perf"];
        v.extend_from_slice(args);
        Options::try_parse_from(v).unwrap()
    }

    fn counters(n: usize) -> Vec<Arc<Counters>> {
        (0..n).map(|_| Arc::new(Counters::default())).collect()
    }

    #[test]
    fn end_conditions() {
        let s = 1_000_000_000u64;
        // Producer-only with a count: done when the producer is.
        let o = opts(&["--consumers", "0", "--pmessages", "10"]);
        let p = counters(1);
        assert_eq!(done_at(&o, &p, &[], 5), None);
        p[0].finish(7);
        assert_eq!(done_at(&o, &p, &[], 8), Some(7));
        // Consumer-only with a count.
        let o = opts(&["--producers", "0", "--cmessages", "10"]);
        let c = counters(2);
        c[0].finish(3);
        assert_eq!(done_at(&o, &[], &c, 8), None);
        c[1].finish(5);
        assert_eq!(done_at(&o, &[], &c, 8), Some(5));
        // Limited producers, unlimited consumers: wait for a quiet second after the last delivery.
        let o = opts(&["--pmessages", "10"]);
        let (p, c) = (counters(1), counters(1));
        p[0].finish(2 * s);
        c[0].last_receive_ns.store(3 * s, Ordering::Relaxed);
        assert_eq!(done_at(&o, &p, &c, 3 * s + 10), None);
        assert_eq!(done_at(&o, &p, &c, 4 * s), Some(3 * s));
        // No limits: never done by counts.
        let o = opts(&[]);
        assert_eq!(done_at(&o, &counters(1), &counters(1), 100 * s), None);
    }

    async fn sink_uri() -> AmqpUri {
        let listener = crate::sink::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::sink::serve(listener, 16));
        AmqpUri::parse(&format!("amqp://guest:guest@{addr}/")).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_run_against_the_sink() {
        let uri = sink_uri().await;
        let o = opts(&[
            "--duration",
            "0.5",
            "--confirm",
            "100",
            "--prefetch",
            "100",
            "--multi-ack",
            "10",
            "--quiet",
        ]);
        let r = run(o, uri).await.unwrap();
        assert_eq!(r.error, None);
        assert!(r.totals.sent > 100 && r.totals.confirmed > 100 && r.totals.received > 100, "{r:?}");
        assert!(r.totals.confirmed <= r.totals.sent);
        assert!(r.confirm_latency.is_some() && r.consumer_latency.is_some());
        assert!((r.elapsed - 0.5).abs() < 0.01, "{}", r.elapsed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counted_and_paced_runs_end_by_themselves() {
        let uri = sink_uri().await;
        // 2000 messages at 4000 msg/s: about half a second, every one confirmed.
        let o = opts(&[
            "--consumers",
            "0",
            "--pmessages",
            "2000",
            "--rate",
            "4000",
            "--confirm",
            "50",
            "--quiet",
        ]);
        let r = run(o, uri.clone()).await.unwrap();
        assert_eq!((r.totals.sent, r.totals.confirmed), (2000, 2000));
        assert!(r.elapsed > 0.45 && r.elapsed < 5.0, "{}", r.elapsed);
        let o = opts(&["--producers", "0", "--cmessages", "5000", "--auto-ack", "--quiet"]);
        let r = run(o, uri.clone()).await.unwrap();
        assert!(r.totals.received >= 5000);
        let o = opts(&["--idle-connections", "20", "--duration", "0.1", "--quiet"]);
        let idle = crate::idle::run(&o, uri).await.unwrap();
        assert_eq!((idle.opened, idle.failed), (20, 0));
    }

    #[test]
    fn report_json_shape() {
        let o = opts(&["--confirm", "10"]);
        let r = Report {
            elapsed: 2.0,
            totals: Totals { sent: 100, confirmed: 90, nacked: 0, received: 80 },
            confirm_latency: None,
            consumer_latency: None,
            commit_latency: None,
            samples: vec![],
            cpu_seconds: 0.5,
            error: None,
        };
        let uri = AmqpUri::parse(&o.uri).unwrap();
        let j = r.to_json(&o, &uri);
        assert_eq!(j["send_rate"], 50.0);
        assert_eq!(j["confirm_rate"], 45.0);
        assert_eq!(j["receive_rate"], 40.0);
        assert_eq!(j["confirm_latency_us"], Value::Null);
        assert_eq!(j["confirm"], 10);
    }
}
